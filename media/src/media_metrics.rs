//! The media node's Prometheus counters. Shards count in plain integers and publish here once a second:
//! a shared registry on the packet path would cost more than it tells.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{
    batch_io::SendTally,
    sfu::{Counters, Sfu, Traffic},
};

/// The media node's counters, registered in the process registry served at `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct MediaMetrics {
    packets: Family<DirectionLabels, Counter>,
    bytes: Family<DirectionLabels, Counter>,
    keyframe_requests: Counter,
    nacks: Counter,
    rooms: RoomMetrics,
    datagrams_dropped: Family<ReasonLabels, Counter>,
    probes_answered: Counter,
    sessions_failed: Counter,
    sessions: Gauge,
    session_timeouts: Counter,
    session_polls: Counter,
    udp_sends: Counter,
    udp_datagrams_sent: Counter,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: &'static str,
}

/// Rooms by size, per shard: bounded labels that name no tenant and no room (per-room detail is the
/// tenant's to see, through its own API).
#[derive(Debug, Clone, Default)]
struct RoomMetrics {
    rooms: Family<RoomSizeLabels, Gauge>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoomSizeLabels {
    shard: usize,
    participants: &'static str,
}

/// The size classes rooms are counted in.
const ROOM_SIZES: [(usize, &str); 6] =
    [(1, "1"), (2, "2"), (5, "3-5"), (10, "6-10"), (25, "11-25"), (usize::MAX, "26+")];

impl RoomMetrics {
    fn register(&self, registry: &mut Registry) {
        let media = registry.sub_registry_with_prefix("convene_media");
        media.register("rooms", "Rooms with media sessions, by shard and by participants", self.rooms.clone());
    }

    /// Sets a shard's counts from the sizes of its rooms.
    fn set(&self, shard: usize, sizes: impl Iterator<Item = usize>) {
        let mut counts = [0_i64; ROOM_SIZES.len()];
        for size in sizes {
            let class = ROOM_SIZES.iter().position(|(max, _)| size <= *max).unwrap_or(ROOM_SIZES.len() - 1);
            counts[class] += 1;
        }
        for ((_, participants), count) in ROOM_SIZES.iter().zip(counts) {
            self.rooms.get_or_create(&RoomSizeLabels { shard, participants }).set(count);
        }
    }
}

/// Drop reasons are a closed set, so the family stays small.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

impl MediaMetrics {
    /// RTP payload bytes forwarded so far (the node's heartbeat turns it into a rate).
    pub fn bytes_out(&self) -> u64 {
        self.bytes.get_or_create(&DirectionLabels { direction: "out" }).get()
    }

    /// Creates the counters and registers them under `convene_media_*`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let media = registry.sub_registry_with_prefix("convene_media");
        media.register(
            "rtp_packets",
            "RTP packets received from publishers (in) and forwarded (out)",
            metrics.packets.clone(),
        );
        media.register("rtp_bytes", "RTP payload bytes received (in) and forwarded (out)", metrics.bytes.clone());
        media.register(
            "datagrams_dropped",
            "Datagrams dropped: unknown_sender, unreadable or over_budget",
            metrics.datagrams_dropped.clone(),
        );
        media.register("sessions", "Participants with a media session", metrics.sessions.clone());
        let counters = [
            ("keyframe_requests", "Keyframe requests (PLI) sent to publishers", &metrics.keyframe_requests),
            ("stun_replies", "STUN reachability probes answered", &metrics.probes_answered),
            ("sessions_failed", "Media sessions closed after an error", &metrics.sessions_failed),
            ("nacks", "Retransmissions receivers asked for (NACK)", &metrics.nacks),
            // What each forwarded packet costs, in str0m calls and system calls.
            (
                "session_timeouts",
                "Timer inputs handed to media sessions (str0m handle_input with a timeout)",
                &metrics.session_timeouts,
            ),
            ("session_polls", "Outputs asked of media sessions (str0m poll_output)", &metrics.session_polls),
            ("udp_sends", "Send system calls on the media sockets (one GSO run each)", &metrics.udp_sends),
            ("udp_datagrams_sent", "Datagrams those send calls carried", &metrics.udp_datagrams_sent),
        ];
        for (name, help, counter) in counters {
            media.register(name, help, counter.clone());
        }
        metrics.rooms.register(registry);
        metrics
    }

    fn add(&self, (now, traffic, sent): Snapshot, (before, traffic_before, sent_before): Snapshot) {
        let inbound = DirectionLabels { direction: "in" };
        let outbound = DirectionLabels { direction: "out" };
        self.packets.get_or_create(&inbound).inc_by(traffic.packets_in - traffic_before.packets_in);
        self.packets.get_or_create(&outbound).inc_by(traffic.packets_out - traffic_before.packets_out);
        self.bytes.get_or_create(&inbound).inc_by(traffic.bytes_in - traffic_before.bytes_in);
        self.bytes.get_or_create(&outbound).inc_by(traffic.bytes_out - traffic_before.bytes_out);
        self.keyframe_requests.inc_by(traffic.keyframe_requests - traffic_before.keyframe_requests);
        self.nacks.inc_by(traffic.nacks - traffic_before.nacks);
        for (reason, now, before) in [
            ("unknown_sender", now.dropped_unknown_sender, before.dropped_unknown_sender),
            ("unreadable", now.dropped_unreadable, before.dropped_unreadable),
            ("over_budget", now.dropped_over_budget, before.dropped_over_budget),
        ] {
            self.datagrams_dropped.get_or_create(&ReasonLabels { reason }).inc_by(now - before);
        }
        self.probes_answered.inc_by(now.probes_answered - before.probes_answered);
        self.sessions_failed.inc_by(now.sessions_failed - before.sessions_failed);
        self.session_timeouts.inc_by(now.session_timeouts - before.session_timeouts);
        self.session_polls.inc_by(now.session_polls - before.session_polls);
        self.udp_sends.inc_by(sent.sends - sent_before.sends);
        self.udp_datagrams_sent.inc_by(sent.datagrams - sent_before.datagrams);
    }
}

/// A shard's running totals: its SFU's counters and traffic, and its socket's sends.
type Snapshot = (Counters, Traffic, SendTally);

/// What a shard last published, so each second adds only what is new.
#[derive(Default)]
pub(crate) struct Reported {
    shard: usize,
    node: Snapshot,
}

impl Reported {
    /// Nothing published yet for shard `shard`.
    pub(crate) fn new(shard: usize) -> Self {
        Self { shard, ..Self::default() }
    }

    pub(crate) fn publish(&mut self, sfu: &Sfu, sent: SendTally, metrics: &MediaMetrics) {
        let node = (sfu.counters(), sfu.traffic(), sent);
        metrics.add(node, self.node);
        metrics.sessions.set(i64::try_from(sfu.peer_count()).unwrap_or(i64::MAX));
        self.node = node;
        metrics.rooms.set(self.shard, sfu.room_sizes());
    }
}
