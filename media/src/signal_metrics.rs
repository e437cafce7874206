//! Prometheus figures for signalling: rooms and connections now, frames by outcome, refusals by reason.
//! Every label set is closed, so the families stay small.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// What happened to a client frame.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub enum FrameOutcome {
    /// Parsed and passed to the room.
    Accepted,
    /// Unreadable, oversized or binary.
    Malformed,
    /// Over the connection's message budget; dropped.
    RateLimited,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// The counters and gauges, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SignalMetrics {
    rooms: Gauge,
    connections: Gauge,
    frames: Family<OutcomeLabels, Counter>,
    refusals: Family<ReasonLabels, Counter>,
}

impl SignalMetrics {
    /// Creates them and registers them under `convene_signal_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let signal = registry.sub_registry_with_prefix("convene_signal");
        signal.register("rooms", "Rooms running on this node", metrics.rooms.clone());
        signal.register("connections", "Open signalling connections", metrics.connections.clone());
        signal.register("frames", "Client frames by outcome", metrics.frames.clone());
        signal.register("refusals", "Connections turned away or ended, by reason", metrics.refusals.clone());
        metrics
    }

    /// A client frame's outcome.
    pub fn frame(&self, outcome: FrameOutcome) {
        let outcome = match outcome {
            FrameOutcome::Accepted => "accepted",
            FrameOutcome::Malformed => "malformed",
            FrameOutcome::RateLimited => "rate_limited",
        };
        self.frames.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// A refusal sent to a client.
    pub fn refused(&self, reason: convene_signal::Refusal) {
        let reason = reason.code();
        self.refusals.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Rooms running now (the node's heartbeat reports it).
    pub fn rooms_running(&self) -> i64 {
        self.rooms.get()
    }

    /// Signalling connections open now: the node's participants.
    pub fn connections_open(&self) -> i64 {
        self.connections.get()
    }

    /// A connection opened (`1`) or closed (`-1`).
    pub fn connection(&self, change: i64) {
        self.connections.inc_by(change);
    }

    pub(crate) fn room(&self, change: i64) {
        self.rooms.inc_by(change);
    }
}
