//! Headless meeting participants for tests and benchmarks of the media node.
//!
//! A [`Bot`] speaks the signalling protocol of `convene-signal` over a WebSocket and WebRTC (webrtc-rs) to
//! the node: it publishes synthetic simulcast VP8 (RIDs `q`, `h`, `f`) and Opus, shaped like a browser's
//! (real VP8 payload descriptors and frame headers, the audio-level extension), and measures what it receives
//! from others: per-track counters, sequence gaps, picture-id continuity across layer switches, one-way delay.
//! Every packet a bot sends carries a trailer (layer, send time, frame and packet number), so the receiving
//! bot can tell which layer the node forwarded and how late.
//!
//! [`sipp`] builds scenarios for Debian's sipp, the phone callers of the SIP gateway's tests and benchmark;
//! [`baresip`] runs Debian's baresip, a real softphone, for the gateway's tests; [`s3`] runs moto's
//! S3-compatible server for tests of recordings kept in a bucket.
//!
//! Everything is bounded: the message queue drops its oldest entries when full, and every task ends when the
//! bot is left, dropped, refused or disconnected.
//!
//! A bot's media runs on one of two stacks ([`BotStack`]): webrtc-rs with a browser's interceptors, the
//! conformance check, or the light stack, str0m in RTP mode with a socket per bot and many bots on each of a
//! few media threads, which the benchmark uses to load the node to its limit on the same machine.

pub mod baresip;
mod bot;
mod janus;
mod light;
mod media;
pub mod payload;
pub mod s3;
pub mod sipp;
mod stats;

pub use bot::{Admission, Bot, BotError, BotOptions, BotStack};
pub use janus::{ICE_ADDRESS, JANUS_BINARY, JanusBot, JanusConfig, JanusOptions, JanusServer, JanusServerError};
pub use media::{LayerProfile, RIDS, VideoProfile};
pub use stats::{BotStats, DelayHistogram, SendStats, TrackStats};

#[cfg(test)]
mod loopback_tests;
