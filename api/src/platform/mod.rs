//! What every context runs on: typed settings (the only reader of the environment), the database, mail,
//! sealed secrets, rate limits, the audit log and telemetry.

pub mod audit;
pub mod db;
pub mod envelope;
pub mod mail;
pub mod metrics;
pub mod rate_limit;
pub mod secrets;
pub mod settings;
pub mod telemetry;
