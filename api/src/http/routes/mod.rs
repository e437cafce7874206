//! HTTP handlers, one module per area. Handlers parse input, call a service module and map its result;
//! they hold no business rules.

pub mod auth;
pub mod backend;
pub mod billing;
pub mod health;
pub mod jitsi;
pub mod meetings;
pub mod nodes;
pub mod openapi;
pub mod operator;
pub mod recordings;
pub mod signal;
pub mod site;
pub mod team;
pub mod v1;
pub mod webhooks;
