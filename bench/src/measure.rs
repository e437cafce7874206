//! One measurement window: the SFU's and the bots' CPU time, what the bots sent and received, which layers
//! reached each receiver, loss and one-way delay.

use std::time::Instant;

use convene_bots::{BotStats, DelayHistogram};
use convene_signal::TrackSource;

use crate::targets::Participant;

/// The bots' layer numbers (from their payload trailer): 0 is the bottom layer, 2 the top.
const TOP_LAYER: u8 = 2;
const BOTTOM_LAYER: u8 = 0;

/// A window being measured.
pub(crate) struct Window {
    started: Instant,
    sfu_cpu: f64,
    bots_cpu: f64,
    sent_bytes: u64,
    sent_packets: u64,
}

/// What a window measured.
pub(crate) struct Figures {
    pub(crate) seconds: f64,
    pub(crate) sfu_cpu_seconds: f64,
    pub(crate) bots_cpu_seconds: f64,
    pub(crate) bytes_in: u64,
    pub(crate) packets_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) packets_out: u64,
    pub(crate) receivers_with_media: usize,
    pub(crate) high_per_receiver: f64,
    pub(crate) low_per_receiver: f64,
    pub(crate) audio_per_receiver: f64,
    pub(crate) loss_ratio: f64,
    pub(crate) delays: DelayHistogram,
}

/// What forwarding a packet costs the media node, from its running totals (`convene_media_*` metrics):
/// str0m calls per forwarded packet and datagrams per send system call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct PacketCosts {
    session_timeouts: f64,
    session_polls: f64,
    udp_sends: f64,
    udp_datagrams_sent: f64,
    packets_out: f64,
}

impl PacketCosts {
    /// Reads the totals from a Prometheus text exposition; `None` when one is missing.
    pub(crate) fn parse(metrics: &str) -> Option<Self> {
        let total = |name: &str| {
            metrics.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse::<f64>().ok())
        };
        Some(Self {
            session_timeouts: total("convene_media_session_timeouts_total")?,
            session_polls: total("convene_media_session_polls_total")?,
            udp_sends: total("convene_media_udp_sends_total")?,
            udp_datagrams_sent: total("convene_media_udp_datagrams_sent_total")?,
            packets_out: total("convene_media_rtp_packets_total{direction=\"out\"}")?,
        })
    }

    /// What happened between `before` and `self`, per forwarded packet and per send: (timeouts per
    /// packet, polls per packet, datagrams per send); `None` when nothing was forwarded.
    pub(crate) fn since(&self, before: &Self) -> Option<(f64, f64, f64)> {
        let packets = self.packets_out - before.packets_out;
        let sends = self.udp_sends - before.udp_sends;
        (packets > 0.0 && sends > 0.0).then(|| {
            (
                (self.session_timeouts - before.session_timeouts) / packets,
                (self.session_polls - before.session_polls) / packets,
                (self.udp_datagrams_sent - before.udp_datagrams_sent) / sends,
            )
        })
    }
}

/// The CPU time process `pid` (this one when `None`) has used, in seconds.
pub(crate) fn cpu_seconds(pid: Option<u32>) -> f64 {
    convene_media::process::usage(pid).map_or(0.0, |usage| usage.cpu_seconds)
}

impl Window {
    /// Starts the bots' receive counters afresh and notes the CPU times and what was sent so far.
    pub(crate) fn open(sfu: u32, participants: &[Participant]) -> Self {
        participants.iter().for_each(Participant::reset_stats);
        Self {
            started: Instant::now(),
            sfu_cpu: cpu_seconds(Some(sfu)),
            bots_cpu: cpu_seconds(None),
            sent_bytes: participants.iter().map(|participant| participant.stats().sent.bytes).sum(),
            sent_packets: participants.iter().map(|participant| participant.stats().sent.packets).sum(),
        }
    }

    /// Ends the window; `meeting_size` tells how many others each receiver should see.
    pub(crate) fn close(self, sfu: u32, participants: &[Participant], meeting_size: usize) -> Figures {
        let seconds = self.started.elapsed().as_secs_f64();
        let stats: Vec<BotStats> = participants.iter().map(Participant::stats).collect();
        let mut delays = DelayHistogram::default();
        participants.iter().for_each(|participant| delays.merge(&participant.delays()));
        let receivers = stats.len().max(1) as f64;
        let videos = |stats: &BotStats, layer: Option<u8>| {
            stats
                .tracks
                .iter()
                .filter(|track| track.source == Some(TrackSource::Camera) && track.packets > 0)
                .filter(|track| layer.is_none() || track.layer == layer)
                .count()
        };
        let count = |layer| stats.iter().map(|stats| videos(stats, Some(layer))).sum::<usize>() as f64 / receivers;
        let audio = stats
            .iter()
            .map(|stats| {
                stats
                    .tracks
                    .iter()
                    .filter(|track| track.source == Some(TrackSource::Microphone) && track.packets > 0)
                    .count()
            })
            .sum::<usize>() as f64;
        for (index, stats) in stats.iter().enumerate() {
            let (videos, audio) = (
                videos(stats, None),
                stats.tracks.iter().filter(|t| t.kind == convene_signal::MediaKind::Audio && t.packets > 0).count(),
            );
            if videos + 1 < meeting_size {
                tracing::warn!(
                    meeting = index / meeting_size,
                    participant = index % meeting_size,
                    videos,
                    audio,
                    tracks = ?stats.tracks.iter().map(|t| (t.mid.clone(), t.participant.map(|p| p.0), t.source, t.packets, t.layer)).collect::<Vec<_>>(),
                    "a receiver missed video"
                );
            }
        }
        let (packets, gaps) =
            stats.iter().fold((0, 0), |(packets, gaps), stats| (packets + stats.packets, gaps + stats.seq_gaps));
        Figures {
            seconds,
            sfu_cpu_seconds: cpu_seconds(Some(sfu)) - self.sfu_cpu,
            bots_cpu_seconds: cpu_seconds(None) - self.bots_cpu,
            bytes_in: stats.iter().map(|stats| stats.sent.bytes).sum::<u64>().saturating_sub(self.sent_bytes),
            packets_in: stats.iter().map(|stats| stats.sent.packets).sum::<u64>().saturating_sub(self.sent_packets),
            bytes_out: stats.iter().map(|stats| stats.bytes).sum(),
            packets_out: packets,
            receivers_with_media: stats.iter().filter(|stats| videos(stats, None) + 1 >= meeting_size).count(),
            high_per_receiver: count(TOP_LAYER),
            low_per_receiver: count(BOTTOM_LAYER),
            audio_per_receiver: audio / receivers,
            loss_ratio: if packets + gaps == 0 { 0.0 } else { gaps as f64 / (packets + gaps) as f64 },
            delays,
        }
    }
}

impl Figures {
    pub(crate) fn sfu_cpu_percent(&self) -> f64 {
        100.0 * self.sfu_cpu_seconds / self.seconds.max(f64::EPSILON)
    }

    pub(crate) fn mbps_in(&self) -> f64 {
        self.bytes_in as f64 * 8.0 / 1e6 / self.seconds.max(f64::EPSILON)
    }

    pub(crate) fn mbps_out(&self) -> f64 {
        self.bytes_out as f64 * 8.0 / 1e6 / self.seconds.max(f64::EPSILON)
    }

    /// The load generator's CPU per packet it sent or received, in microseconds.
    pub(crate) fn bot_us_per_packet(&self) -> Option<f64> {
        let packets = self.packets_in + self.packets_out;
        (packets > 0).then(|| self.bots_cpu_seconds * 1e6 / packets as f64)
    }

    pub(crate) fn packets_per_second_out(&self) -> f64 {
        self.packets_out as f64 / self.seconds.max(f64::EPSILON)
    }

    /// Mbit sent per CPU-second used; 0 when the SFU used no measurable CPU (nothing flowed).
    pub(crate) fn mbps_out_per_cpu_second(&self) -> f64 {
        if self.sfu_cpu_seconds <= 0.0 { 0.0 } else { self.bytes_out as f64 * 8.0 / 1e6 / self.sfu_cpu_seconds }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(timeouts: u64, polls: u64, sends: u64, datagrams: u64, out: u64) -> String {
        format!(
            "# HELP convene_media_session_timeouts Timer inputs.\n# TYPE convene_media_session_timeouts counter\n\
             convene_media_session_timeouts_total {timeouts}\nconvene_media_session_polls_total {polls}\n\
             convene_media_udp_sends_total {sends}\nconvene_media_udp_datagrams_sent_total {datagrams}\n\
             convene_media_rtp_packets_total{{direction=\"in\"}} 7\n\
             convene_media_rtp_packets_total{{direction=\"out\"}} {out}\n"
        )
    }

    #[test]
    fn costs_per_packet_come_from_the_difference_of_two_readings() {
        let before = PacketCosts::parse(&exposition(10, 100, 50, 60, 40)).unwrap();
        let after = PacketCosts::parse(&exposition(1_010, 4_100, 550, 2_060, 2_040)).unwrap();
        assert_eq!(after.since(&before), Some((0.5, 2.0, 4.0)));
        assert_eq!(before.since(&before), None, "nothing forwarded");
        assert_eq!(PacketCosts::parse("convene_media_session_polls_total 3\n"), None, "a total missing");
    }
}
