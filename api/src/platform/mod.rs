//! What every context runs on: typed settings (the only reader of the environment), the database and its
//! cursor pages, mail and iCalendar invitations, sealed secrets, rate limits, answers kept for a moment, the
//! audit log and telemetry.

pub mod audit;
pub mod calendar;
pub mod db;
pub mod envelope;
pub mod mail;
pub mod metrics;
pub mod pagination;
pub mod rate_limit;
pub mod recent;
pub mod secrets;
pub mod settings;
pub mod telemetry;
