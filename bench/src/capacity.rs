//! `convene capacity`: the bandwidth a set of meetings needs, from the same layer bitrates the benchmark's
//! bots publish, and, given a benchmark result, the CPU it costs and the nodes to run it on.

use std::fmt;

use crate::{BenchResult, Resolution};

/// Opus as the bots send it: 20 ms frames of about 100 bytes.
const AUDIO_MBPS: f64 = 0.04;

/// What to size.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityOptions {
    /// Meetings at once.
    pub meetings: usize,
    /// Participants per meeting.
    pub participants: usize,
    /// The publishers' top layer.
    pub resolution: Resolution,
    /// A benchmark result to take the CPU cost from.
    pub measured: Option<BenchResult>,
    /// Cores per node.
    pub node_cores: usize,
    /// The share of a node's CPU to plan for (headroom for bursts and joins).
    pub utilisation: f64,
}

/// The sizing.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Layer bitrates, lowest first, Mbit/s.
    pub layers_mbps: [f64; 3],
    /// Into the SFU per meeting.
    pub meeting_in_mbps: f64,
    /// Out of the SFU per meeting.
    pub meeting_out_mbps: f64,
    /// Into the SFU, all meetings.
    pub total_in_mbps: f64,
    /// Out of the SFU, all meetings.
    pub total_out_mbps: f64,
    /// CPU cores busy forwarding, from the measurement.
    pub cores_needed: Option<f64>,
    /// Nodes of the given size.
    pub nodes: Option<usize>,
    options: CapacityOptions,
}

/// Sizes the meetings.
pub fn plan(options: CapacityOptions) -> Plan {
    let layers = options.resolution.profile().layers;
    let mbps = |index: usize| layers.get(index).map_or(0.0, |layer| f64::from(layer.bitrate_bps) / 1e6);
    let layers_mbps = [mbps(0), mbps(1), mbps(2)];
    let people = options.participants as f64;
    let sender_in = layers_mbps.iter().sum::<f64>() + AUDIO_MBPS;
    // Everyone but the speaker sees the speaker in the top layer and the rest in the bottom one; the speaker
    // sees everyone in the bottom layer. Only the speaker's audio is forwarded.
    let video_out =
        (people - 1.0) * (layers_mbps[2] + (people - 2.0) * layers_mbps[0]) + (people - 1.0) * layers_mbps[0];
    let meeting_out_mbps = video_out + (people - 1.0) * AUDIO_MBPS;
    let meeting_in_mbps = people * sender_in;
    let meetings = options.meetings as f64;
    let total_out_mbps = meetings * meeting_out_mbps;
    let cores_needed = options
        .measured
        .as_ref()
        .filter(|measured| measured.mbps_out_per_cpu_second > 0.0)
        .map(|measured| total_out_mbps / measured.mbps_out_per_cpu_second);
    let usable = options.node_cores as f64 * options.utilisation.clamp(0.05, 1.0);
    let nodes = cores_needed.map(|cores| (cores / usable).ceil().max(1.0) as usize);
    Plan {
        layers_mbps,
        meeting_in_mbps,
        meeting_out_mbps,
        total_in_mbps: meetings * meeting_in_mbps,
        total_out_mbps,
        cores_needed,
        nodes,
        options,
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        let [low, mid, high] = self.layers_mbps;
        writeln!(f, "{} meeting(s) of {} at {}", o.meetings, o.participants, o.resolution)?;
        writeln!(f, "assumptions:")?;
        writeln!(
            f,
            "  every participant publishes three layers: {high:.1} + {mid:.1} + {low:.1} Mbit/s, and audio at {AUDIO_MBPS:.2}"
        )?;
        writeln!(f, "  each receiver gets the speaker in the top layer and everyone else in the bottom one;")?;
        writeln!(f, "  the speaker gets everyone in the bottom layer; only the speaker's audio is forwarded")?;
        writeln!(f, "  figures are RTP payload; packet headers and RTCP add about 5 %")?;
        writeln!(f, "bandwidth:")?;
        writeln!(
            f,
            "  per meeting: {:.1} Mbit/s in, {:.1} Mbit/s out, {:.1} in all",
            self.meeting_in_mbps,
            self.meeting_out_mbps,
            self.meeting_in_mbps + self.meeting_out_mbps
        )?;
        writeln!(
            f,
            "  all meetings: {:.1} Mbit/s in, {:.1} Mbit/s out, {:.2} Gbit/s in all",
            self.total_in_mbps,
            self.total_out_mbps,
            (self.total_in_mbps + self.total_out_mbps) / 1000.0
        )?;
        match (&o.measured, self.cores_needed, self.nodes) {
            (Some(measured), Some(cores), Some(nodes)) => {
                writeln!(f, "CPU, from the benchmark result:")?;
                writeln!(
                    f,
                    "  {} sent {:.1} Mbit per CPU-second ({} meeting(s) of {} at {}, {:.1} Mbit/s out)",
                    measured.target,
                    measured.mbps_out_per_cpu_second,
                    measured.meetings,
                    measured.participants,
                    measured.resolution,
                    measured.forwarded_mbps_out
                )?;
                writeln!(f, "  assumed: the cost grows with the Mbit/s sent, for meetings of the same shape")?;
                writeln!(f, "  cores busy forwarding: {cores:.2}")?;
                writeln!(
                    f,
                    "  nodes of {} cores at {:.0} % utilisation: {nodes}",
                    o.node_cores,
                    o.utilisation.clamp(0.05, 1.0) * 100.0
                )?;
                writeln!(
                    f,
                    "  per node: {:.0} Mbit/s of traffic (check the NIC and the provider's packet-rate limit)",
                    (self.total_in_mbps + self.total_out_mbps) / nodes as f64
                )
            }
            _ => {
                writeln!(f, "CPU: give --measured <result.json> from `convene bench` to turn the bandwidth into nodes")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(meetings: usize) -> CapacityOptions {
        CapacityOptions {
            meetings,
            participants: 10,
            resolution: Resolution::P720,
            measured: None,
            node_cores: 2,
            utilisation: 0.75,
        }
    }

    #[test]
    fn the_customer_requirement_in_bandwidth() {
        let plan = plan(options(10));
        // 10 × (4.5 + 0.04) in; 9 × (3.3 + 8 × 0.3) + 9 × 0.3 + 9 × 0.04 out.
        assert!((plan.meeting_in_mbps - 45.4).abs() < 1e-9, "{plan:?}");
        assert!((plan.meeting_out_mbps - 54.36).abs() < 1e-9, "{plan:?}");
        assert!((plan.total_in_mbps + plan.total_out_mbps - 997.6).abs() < 1e-6);
        assert_eq!(plan.nodes, None);
        assert!(plan.to_string().contains("--measured"));
    }

    #[test]
    fn a_measurement_turns_into_nodes() {
        let measured = BenchResult {
            target: "convene".to_owned(),
            meetings: 5,
            participants: 10,
            seconds: 30,
            resolution: "720p".to_owned(),
            receivers_total: 50,
            receivers_with_media: 50,
            streams_high_per_receiver: 0.9,
            streams_low_per_receiver: 8.1,
            audio_streams_per_receiver: 0.9,
            sfu_cpu_seconds: 10.0,
            sfu_cpu_percent: 33.0,
            sfu_peak_rss_mb: 80.0,
            forwarded_mbps_in: 227.0,
            forwarded_mbps_out: 272.0,
            packets_per_second_out: 40_000.0,
            mbps_out_per_cpu_second: 400.0,
            loss_ratio: 0.0,
            delay_p50_ms: Some(2.0),
            delay_p99_ms: Some(8.0),
            join_p95_ms: Some(900.0),
            join_failures: 0,
            bots_cpu_seconds: 40.0,
            bots: "webrtc".to_owned(),
            bot_us_per_packet: Some(11.0),
            machine_cpus: 2,
            ramp: Vec::new(),
            recorded: false,
            recorded_mb: 0.0,
            session_timeouts_per_packet: None,
            session_polls_per_packet: None,
            datagrams_per_send: None,
        };
        let plan = plan(CapacityOptions { measured: Some(measured), ..options(15) });
        // 15 × 54.36 = 815.4 Mbit/s out at 400 per CPU-second: 2.04 cores, on 1.5 usable per node.
        assert!((plan.cores_needed.unwrap() - 2.0385).abs() < 1e-9);
        assert_eq!(plan.nodes, Some(2));
        assert!(plan.to_string().contains("nodes of 2 cores at 75 % utilisation: 2"));
    }
}
