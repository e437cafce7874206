//! Janus's VideoRoom under the same bots, for the benchmark: a [`JanusServer`] of one's own (Debian's
//! `janus`, configured for loopback) and [`JanusBot`]s that join its rooms over the HTTP API, publish like
//! [`crate::Bot`]s and measure what they receive the same way.

mod api;
mod bot;
mod server;

pub use bot::{JanusBot, JanusOptions};
pub use server::{ICE_ADDRESS, JANUS_BINARY, JanusConfig, JanusServer, JanusServerError};
