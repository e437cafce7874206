//! The control plane through its real HTTP server, on a real database: one binary, one module per area
//! (zero2prod's layout). Each test gets its own Postgres database; a smoke part runs on SQLite.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.
#![recursion_limit = "256"] // Stripe objects are large `json!` literals.

mod accounts;
mod billing;
mod dead_letters;
mod dial_in;
mod dial_out;
mod fake_stripe;
mod health;
mod helpers;
mod mail_outbox;
mod media;
mod meetings;
mod nodes;
mod openapi;
mod phone;
mod recordings;
mod rooms;
mod shutdown;
mod signal;
mod site;
mod softphone;
mod team;
mod tenants;
mod tokens;
mod webhooks;
