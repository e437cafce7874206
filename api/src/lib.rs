//! The control plane and the `convene` binary.
//!
//! `cli` parses the command line and loads the settings; `roles` starts what a command needs. Below them,
//! one folder per context: `people` (accounts, teams, tenants, API keys), `meetings` (rooms, scheduled
//! meetings, room tokens, admission, room sessions), `billing` (plans, usage, Stripe), `http` (the server
//! and its handlers) and `platform` (settings, storage, mail, secrets, telemetry), with `entities` the
//! tables every context stores into.

pub mod billing;
pub mod cli;
pub mod entities;
pub mod http;
pub mod meetings;
pub mod nodes;
pub mod people;
pub mod platform;
pub mod roles;
pub mod webhooks;
