//! The media benchmark and the capacity planner behind `convene bench` and `convene capacity`.
//!
//! A run starts the SFU under test as a process of its own (so its CPU is measured alone, from `/proc`),
//! ramps meetings of webrtc-rs bots up one at a time (each bot publishes three simulcast layers and audio and
//! receives like a client: one stage and thumbnails), measures a window after each meeting joins (the
//! chart's points), then measures the full meetings for the run's length. The bots measure what reaches them
//! (bytes, packets, layers, loss, one-way delay from a stamp in every payload); the SFU's own figures are its
//! CPU time and peak memory. Janus's VideoRoom runs under the same bots, with the same layer choices, so the
//! two sit side by side in one run whatever the machine's speed.

pub mod capacity;
mod chart;
mod measure;
pub mod phone;
mod targets;
pub mod tokens;

use std::{
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use anyhow::{Context, bail};
pub use convene_bots::BotStack;
use serde::{Deserialize, Serialize};

use self::{
    measure::Window,
    targets::{Participant, Sfu},
};

/// The most meetings, participants per meeting and seconds a run takes: every load loop is bounded.
pub const MAX_MEETINGS: usize = 50;
/// See [`MAX_MEETINGS`].
pub const MAX_PARTICIPANTS: usize = 50;
/// See [`MAX_MEETINGS`].
pub const MAX_SECONDS: u64 = 3600;
/// After a meeting joins, layers settle (keyframes, the bandwidth estimates probing up to the stage) before a
/// ramp window.
const SETTLE: Duration = Duration::from_secs(5);
/// How long each ramp point is measured.
const RAMP_WINDOW: Duration = Duration::from_secs(3);

/// Which SFU a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetChoice {
    /// Convene's own media node (`convene up`).
    Convene,
    /// Janus's VideoRoom plugin (Debian's `janus`).
    Janus,
    /// Both, one after the other with the same bots.
    Both,
    /// Convene's SIP gateway, with sipp's callers (`--participants` per meeting).
    Phone,
    /// Convene's control plane minting room tokens (`--participants` clients at once).
    Tokens,
}

impl TargetChoice {
    fn targets(self) -> &'static [Target] {
        match self {
            Self::Convene => &[Target::Convene],
            Self::Janus => &[Target::Janus],
            Self::Both => &[Target::Convene, Target::Janus],
            Self::Phone | Self::Tokens => &[],
        }
    }
}

impl FromStr for TargetChoice {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "convene" => Ok(Self::Convene),
            "janus" => Ok(Self::Janus),
            "both" => Ok(Self::Both),
            "phone" => Ok(Self::Phone),
            "tokens" => Ok(Self::Tokens),
            other => Err(format!("unknown target {other:?}: use convene, janus, both, phone or tokens")),
        }
    }
}

/// One SFU under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Convene's media node.
    Convene,
    /// Janus's VideoRoom.
    Janus,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Self::Convene => "convene",
            Self::Janus => "janus",
        }
    }
}

/// The publishers' top layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// 720p, with 360p and 180p below.
    P720,
    /// 1080p, with 540p and 270p below.
    P1080,
}

impl Resolution {
    /// The bots' camera at this resolution (the layers' bitrates are the benchmark's assumptions).
    pub fn profile(self) -> convene_bots::VideoProfile {
        match self {
            Self::P720 => convene_bots::VideoProfile::p720(),
            Self::P1080 => convene_bots::VideoProfile::p1080(),
        }
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::P720 => "720p",
            Self::P1080 => "1080p",
        })
    }
}

impl FromStr for Resolution {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "720p" => Ok(Self::P720),
            "1080p" => Ok(Self::P1080),
            other => Err(format!("unknown resolution {other:?}: use 720p or 1080p")),
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Which SFU, or both.
    pub target: TargetChoice,
    /// Meetings at once.
    pub meetings: usize,
    /// Participants per meeting.
    pub participants: usize,
    /// How long the full load is measured.
    pub seconds: u64,
    /// The publishers' top layer.
    pub resolution: Resolution,
    /// Where results go (created if missing).
    pub out: PathBuf,
    /// The `convene` binary to start as the SFU under test.
    pub convene: PathBuf,
    /// The names of Convene's settings, none of which the SFU under test inherits from the caller.
    pub settings: Vec<&'static str>,
    /// The log filter of the SFU under test (its log goes to `convene.log` in the result's folder).
    pub sfu_log: String,
    /// Every meeting is recorded while measuring (Convene only).
    pub record: bool,
    /// The database of the Convene under test, when not SQLite in its data directory.
    pub database_url: Option<String>,
    /// The bots' media stack, for either target.
    pub bots: BotStack,
}

impl BenchOptions {
    fn check(&self) -> anyhow::Result<()> {
        if !(1..=MAX_MEETINGS).contains(&self.meetings) {
            bail!("--meetings must be 1 to {MAX_MEETINGS}");
        }
        if !(2..=MAX_PARTICIPANTS).contains(&self.participants) {
            bail!("--participants must be 2 to {MAX_PARTICIPANTS}");
        }
        if !(1..=MAX_SECONDS).contains(&self.seconds) {
            bail!("--seconds must be 1 to {MAX_SECONDS}");
        }
        if self.record && self.target != TargetChoice::Convene {
            bail!("--record measures Convene's recorder: use --target convene");
        }
        Ok(())
    }
}

/// One point of the ramp: the load after a meeting joined.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RampPoint {
    /// Participants in all meetings so far.
    pub participants: usize,
    /// The SFU's CPU over the window, in percent of one core.
    pub sfu_cpu_percent: f64,
    /// What the bots received, Mbit/s.
    pub forwarded_mbps_out: f64,
    /// One-way delay, median, ms.
    pub delay_p50_ms: Option<f64>,
    /// One-way delay, 99th percentile, ms.
    pub delay_p99_ms: Option<f64>,
}

/// A run's figures, as `result.json` holds them. The field names are a contract: keep them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BenchResult {
    /// `convene` or `janus`.
    pub target: String,
    /// Meetings at once.
    pub meetings: usize,
    /// Participants per meeting.
    pub participants: usize,
    /// Seconds measured at full load.
    pub seconds: u64,
    /// `720p` or `1080p`.
    pub resolution: String,
    /// Every participant is a receiver.
    pub receivers_total: usize,
    /// Receivers that got video from every other participant of their meeting.
    pub receivers_with_media: usize,
    /// Top-layer video streams per receiver, mean.
    pub streams_high_per_receiver: f64,
    /// Bottom-layer video streams per receiver, mean.
    pub streams_low_per_receiver: f64,
    /// Audio streams per receiver, mean (Convene leaves silent people out).
    pub audio_streams_per_receiver: f64,
    /// The SFU process's CPU time over the window (user and system, all threads).
    pub sfu_cpu_seconds: f64,
    /// The same as a share of one core, in percent.
    pub sfu_cpu_percent: f64,
    /// The SFU process's peak resident memory.
    pub sfu_peak_rss_mb: f64,
    /// What the bots sent, Mbit/s of RTP payload.
    pub forwarded_mbps_in: f64,
    /// What the bots received, Mbit/s of RTP payload.
    pub forwarded_mbps_out: f64,
    /// Packets the bots received per second.
    pub packets_per_second_out: f64,
    /// Mbit the SFU sent per CPU-second it used.
    pub mbps_out_per_cpu_second: f64,
    /// Packets missing at the receivers over packets expected.
    pub loss_ratio: f64,
    /// One-way delay, median, ms (null without samples).
    pub delay_p50_ms: Option<f64>,
    /// One-way delay, 99th percentile, ms.
    pub delay_p99_ms: Option<f64>,
    /// From a bot's hello (or join request) to its first media, 95th percentile, ms.
    pub join_p95_ms: Option<f64>,
    /// Bots that could not join.
    pub join_failures: usize,
    /// The load generator's own CPU time over the window (when near all cores, the bots are the limit).
    pub bots_cpu_seconds: f64,
    /// The bots' media stack: `webrtc` or `light`.
    #[serde(default)]
    pub bots: String,
    /// The load generator's CPU per packet it sent or received, in microseconds.
    #[serde(default)]
    pub bot_us_per_packet: Option<f64>,
    /// CPUs on the machine.
    pub machine_cpus: usize,
    /// The ramp, one point per meeting joined.
    pub ramp: Vec<RampPoint>,
    /// Every meeting was recorded during the window (`--record`).
    #[serde(default)]
    pub recorded: bool,
    /// What the recorder wrote during the window, MB (0 without `--record`).
    #[serde(default)]
    pub recorded_mb: f64,
    /// Timer inputs the media node handed its str0m sessions per packet forwarded (Convene only: what its
    /// metrics count; the window's edges are a metrics period, one second, apart from the CPU's).
    #[serde(default)]
    pub session_timeouts_per_packet: Option<f64>,
    /// Outputs asked of str0m sessions per packet forwarded (Convene only).
    #[serde(default)]
    pub session_polls_per_packet: Option<f64>,
    /// Datagrams per send system call, 1 to 32 (GSO runs; Convene only).
    #[serde(default)]
    pub datagrams_per_send: Option<f64>,
}

/// Runs the benchmark: for each target, `result.json` and `chart.svg` in `out` (one target) or in
/// `out/<target>/` with a comparison chart in `out` (both). Prints a summary as it goes.
pub async fn run(options: &BenchOptions) -> anyhow::Result<Vec<BenchResult>> {
    options.check()?;
    match options.target {
        TargetChoice::Phone => return phone::run(options).await.map(|_| Vec::new()),
        TargetChoice::Tokens => return tokens::run(options).await.map(|_| Vec::new()),
        _ => {}
    }
    std::fs::create_dir_all(&options.out).with_context(|| format!("cannot create {}", options.out.display()))?;
    let targets = options.target.targets();
    let mut results = Vec::new();
    for target in targets {
        let dir = if targets.len() == 1 { options.out.clone() } else { options.out.join(target.name()) };
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        println!(
            "\n{}: {} meeting(s) of {} at {}, {} s",
            target.name(),
            options.meetings,
            options.participants,
            options.resolution,
            options.seconds
        );
        let result = run_target(*target, options, &dir).await?;
        write_json(&dir.join("result.json"), &result)?;
        std::fs::write(dir.join("chart.svg"), chart::render(&[(target.name(), &result.ramp)]))
            .context("cannot write chart.svg")?;
        print!("{}", summary(&result));
        results.push(result);
    }
    if results.len() > 1 {
        let series: Vec<(&str, &[RampPoint])> =
            results.iter().map(|result| (result.target.as_str(), result.ramp.as_slice())).collect();
        std::fs::write(options.out.join("chart.svg"), chart::render(&series)).context("cannot write chart.svg")?;
        print!("{}", comparison(&results));
    }
    println!("\nwritten to {}", options.out.display());
    Ok(results)
}

async fn run_target(target: Target, options: &BenchOptions, dir: &Path) -> anyhow::Result<BenchResult> {
    let mut sfu = Sfu::start(target, options, dir).await?;
    let outcome = load(&mut sfu, options).await;
    let peak_rss = convene_media::process::usage(Some(sfu.pid())).map(|usage| usage.peak_rss_bytes).unwrap_or(0);
    let (participants, ramp, joins, failures) = match outcome {
        Ok(loaded) => loaded,
        Err(error) => {
            sfu.stop().await;
            return Err(error);
        }
    };
    if options.record
        && let Err(error) = sfu.record(options.meetings).await
    {
        sfu.stop().await;
        return Err(error);
    }
    let recorded_before = sfu.recorded_bytes(dir);
    let costs_before = sfu.packet_costs().await;
    let window = Window::open(sfu.pid(), &participants);
    tokio::time::sleep(Duration::from_secs(options.seconds)).await;
    let figures = window.close(sfu.pid(), &participants, options.participants);
    let costs = sfu.packet_costs().await.zip(costs_before).and_then(|(after, before)| after.since(&before));
    let recorded_mb = sfu.recorded_bytes(dir).saturating_sub(recorded_before) as f64 / 1e6;
    for participant in participants {
        participant.leave().await;
    }
    sfu.stop().await;
    Ok(BenchResult {
        target: target.name().to_owned(),
        meetings: options.meetings,
        participants: options.participants,
        seconds: options.seconds,
        resolution: options.resolution.to_string(),
        receivers_total: options.meetings * options.participants,
        receivers_with_media: figures.receivers_with_media,
        streams_high_per_receiver: figures.high_per_receiver,
        streams_low_per_receiver: figures.low_per_receiver,
        audio_streams_per_receiver: figures.audio_per_receiver,
        sfu_cpu_seconds: figures.sfu_cpu_seconds,
        sfu_cpu_percent: figures.sfu_cpu_percent(),
        sfu_peak_rss_mb: peak_rss as f64 / 1_048_576.0,
        forwarded_mbps_in: figures.mbps_in(),
        forwarded_mbps_out: figures.mbps_out(),
        packets_per_second_out: figures.packets_per_second_out(),
        mbps_out_per_cpu_second: figures.mbps_out_per_cpu_second(),
        loss_ratio: figures.loss_ratio,
        delay_p50_ms: figures.delays.quantile_ms(0.5),
        delay_p99_ms: figures.delays.quantile_ms(0.99),
        join_p95_ms: percentile(&joins, 0.95),
        join_failures: failures,
        bots_cpu_seconds: figures.bots_cpu_seconds,
        bots: options.bots.to_string(),
        bot_us_per_packet: figures.bot_us_per_packet(),
        machine_cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        ramp,
        recorded: options.record,
        recorded_mb,
        session_timeouts_per_packet: costs.map(|costs| costs.0),
        session_polls_per_packet: costs.map(|costs| costs.1),
        datagrams_per_send: costs.map(|costs| costs.2),
    })
}

/// Joins the meetings one at a time, measuring a ramp point after each.
async fn load(
    sfu: &mut Sfu,
    options: &BenchOptions,
) -> anyhow::Result<(Vec<Participant>, Vec<RampPoint>, Vec<f64>, usize)> {
    let mut participants = Vec::new();
    let mut ramp = Vec::new();
    let mut failures = 0;
    for meeting in 0..options.meetings {
        sfu.open_meeting(meeting).await?;
        let joining = (0..options.participants).map(|index| sfu.join(meeting, index, options));
        for joined in futures_util::future::join_all(joining).await {
            match joined {
                Ok(participant) => participants.push(participant),
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, meeting, "a bot could not join");
                }
            }
        }
        tokio::time::sleep(SETTLE).await;
        let window = Window::open(sfu.pid(), &participants);
        tokio::time::sleep(RAMP_WINDOW).await;
        let figures = window.close(sfu.pid(), &participants, options.participants);
        let point = RampPoint {
            participants: (meeting + 1) * options.participants,
            sfu_cpu_percent: figures.sfu_cpu_percent(),
            forwarded_mbps_out: figures.mbps_out(),
            delay_p50_ms: figures.delays.quantile_ms(0.5),
            delay_p99_ms: figures.delays.quantile_ms(0.99),
        };
        println!(
            "  {:>4} participants: SFU {:>6.1} % of a core, {:>7.1} Mbit/s out, delay p50 {} p99 {}",
            point.participants,
            point.sfu_cpu_percent,
            point.forwarded_mbps_out,
            milliseconds(point.delay_p50_ms),
            milliseconds(point.delay_p99_ms)
        );
        ramp.push(point);
    }
    let joins: Vec<f64> = participants
        .iter()
        .filter_map(|participant| participant.stats().time_to_join)
        .map(|join| join.as_secs_f64() * 1000.0)
        .collect();
    Ok((participants, ramp, joins, failures))
}

fn percentile(values: &[f64], quantile: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied()
}

fn milliseconds(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.1} ms"))
}

fn write_json(path: &Path, result: &BenchResult) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(result).context("cannot encode the result")?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

fn summary(result: &BenchResult) -> String {
    format!(
        "  receivers with media {}/{} (join failures {}), per receiver {:.2} high + {:.2} low video, {:.2} audio
  SFU: {:.2} CPU-s in {} s ({:.1} % of a core), peak RSS {:.1} MB
  forwarded: {:.1} Mbit/s in, {:.1} Mbit/s out, {:.0} packets/s out; {:.1} Mbit out per CPU-second
  loss {:.4}, delay p50 {} p99 {}, join p95 {}; bots ({}) used {:.1} CPU-s on {} CPUs, {} µs per packet
  recording: {}
{}",
        result.receivers_with_media,
        result.receivers_total,
        result.join_failures,
        result.streams_high_per_receiver,
        result.streams_low_per_receiver,
        result.audio_streams_per_receiver,
        result.sfu_cpu_seconds,
        result.seconds,
        result.sfu_cpu_percent,
        result.sfu_peak_rss_mb,
        result.forwarded_mbps_in,
        result.forwarded_mbps_out,
        result.packets_per_second_out,
        result.mbps_out_per_cpu_second,
        result.loss_ratio,
        milliseconds(result.delay_p50_ms),
        milliseconds(result.delay_p99_ms),
        milliseconds(result.join_p95_ms),
        result.bots,
        result.bots_cpu_seconds,
        result.machine_cpus,
        result.bot_us_per_packet.map_or_else(|| "-".to_owned(), |us| format!("{us:.1}")),
        if result.recorded {
            format!("every meeting, {:.1} MB written in {} s", result.recorded_mb, result.seconds)
        } else {
            "off".to_owned()
        },
        match (result.session_timeouts_per_packet, result.session_polls_per_packet, result.datagrams_per_send) {
            (Some(timeouts), Some(polls), Some(datagrams)) => format!(
                "  per packet forwarded: {timeouts:.2} session timeouts, {polls:.2} session polls; \
                 {datagrams:.2} datagrams per send\n"
            ),
            _ => String::new(),
        },
    )
}

fn comparison(results: &[BenchResult]) -> String {
    let mut text = String::from("\nside by side:\n  target   CPU-s   Mbit/s out   Mbit per CPU-s   delay p99\n");
    for result in results {
        text.push_str(&format!(
            "  {:<7} {:>6.2} {:>12.1} {:>16.1} {:>11}\n",
            result.target,
            result.sfu_cpu_seconds,
            result.forwarded_mbps_out,
            result.mbps_out_per_cpu_second,
            milliseconds(result.delay_p99_ms)
        ));
    }
    if let [ours, theirs] = results
        && ours.sfu_cpu_seconds > 0.0
    {
        text.push_str(&format!(
            "  {} used {:.2}x the CPU of {} for the same meetings\n",
            theirs.target,
            theirs.sfu_cpu_seconds / ours.sfu_cpu_seconds,
            ours.target
        ));
    }
    text
}
