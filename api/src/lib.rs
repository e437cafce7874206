//! The control plane and the `convene` binary.
//!
//! `cli` parses the command line and loads `settings`; `roles` starts what a command needs; `server` is the
//! actix HTTP server every role serves through; `routes` holds the handlers; `db`, `entities` and the
//! service modules (`tenants`, `password`) own storage and rules.

pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod billing;
pub mod calendar;
pub mod cli;
pub mod csrf;
pub mod db;
pub mod entities;
pub mod envelope;
pub mod mail;
pub mod meetings;
pub mod metrics;
pub mod pagination;
pub mod password;
pub mod rate_limit;
pub mod removals;
pub mod roles;
pub mod room_sessions;
pub mod room_tokens;
pub mod rooms;
pub mod routes;
pub mod secrets;
pub mod server;
pub mod settings;
pub mod team;
pub mod telemetry;
pub mod tenants;
