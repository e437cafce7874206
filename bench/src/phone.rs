//! The phone gateway under load (`convene bench --target phone`): `convene up` with a number assigned,
//! `--meetings` rooms, and Debian's sipp calling in `--participants` callers per room at 20 calls a second.
//! Each caller types its room's PIN by SIP INFO. The first caller of each room (the speaker) joins first;
//! its audio comes from the benchmark itself: a 400 Hz tone, with a 200 ms burst of 1 kHz each second (the
//! marks). The others (listeners) send silence from sipp, as phones on mute still do. Every caller's audio
//! comes back to a socket of the benchmark's own, which counts packets and the longest gap in the measured
//! window, the time from a listener's answer to the first of the room it hears (PIN to audio: sipp types
//! the PIN at once), and the time from each mark sent to it heard (mouth to ear through the gateway, the
//! SFU and back). The gateway's CPU time comes from `/proc` over the window.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, bail};
use convene_bots::sipp::{self, Caller};
use convene_media::phone::{sdp::Codec, tones, voice::narrow_tone};
use serde::Serialize;
use tokio::{net::UdpSocket, time::Instant};

use crate::{BenchOptions, measure::cpu_seconds, targets::ConveneSfu};

/// The number sipp dials, assigned to the run's tenant.
pub(crate) const NUMBER: &str = "+15550000000";
/// New calls a second, as a busy trunk delivers them.
const CALL_RATE: usize = 20;
/// How long every caller may take to be in its room, beyond the time sipp takes to place the calls.
const JOIN_MARGIN: Duration = Duration::from_secs(10);
/// After the last caller joined, the joining prompts end before the window opens.
const SETTLE: Duration = Duration::from_secs(3);
/// A caller's audio missing this long is a gap a person hears.
const GAP: Duration = Duration::from_millis(60);
/// The speakers' voice, and the mark: how often, for how long.
const VOICE_HZ: f32 = 400.0;
const MARK_HZ: f32 = 1_000.0;
const MARK_EVERY: usize = 50;
const MARK_FRAMES: usize = 10;
/// A frame holds a tone when this share of its energy is at the tone's frequency.
const TONE_SHARE: f32 = 0.5;
/// The room is heard once its tones fill this many frames in a row (a vowel in a prompt can fill one).
const TONE_FRAMES: usize = 10;

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct PhoneResult {
    /// Rooms.
    pub meetings: usize,
    /// Callers in all.
    pub calls: usize,
    /// Seconds measured once every caller was in.
    pub seconds: f64,
    /// Seconds from the first INVITE until every caller was in its room.
    pub all_joined_seconds: f64,
    /// The gateway's CPU time over the window.
    pub cpu_seconds: f64,
    /// Of one core.
    pub cpu_percent: f64,
    /// Calls one core carries at this load (calls / cores busy).
    pub calls_per_core: f64,
    /// Audio packets each caller received a second (50 is every 20 ms).
    pub packets_per_call_per_second: f64,
    /// Callers whose audio had a gap longer than 60 ms in the window.
    pub calls_with_gaps: usize,
    /// The longest gap any caller had, ms.
    pub longest_gap_ms: f64,
    /// Calls sipp saw through to the end as scripted.
    pub calls_completed: usize,
    /// From a listener's answer (the PIN typed at once) to the room's audio, median and slowest, ms. It
    /// includes the joining prompt, which covers the room while it plays.
    pub pin_to_audio_median_ms: f64,
    pub pin_to_audio_max_ms: f64,
    /// From a mark sent to its start heard by a listener of the same room, median and 95th percentile, ms
    /// (20 ms frames: the figure is within a frame of the truth).
    pub mouth_to_ear_median_ms: f64,
    pub mouth_to_ear_p95_ms: f64,
    /// Marks measured.
    pub marks_heard: usize,
}

/// What one caller's socket saw, from the first packet on.
#[derive(Debug, Default, Clone)]
struct Ear {
    /// When the first packet came (the call was answered), and the first frame of the room's tones.
    answered: Option<Instant>,
    first_tone: Option<Instant>,
    /// Arrival times of every packet, and of each mark's first frame.
    packets: Vec<Instant>,
    marks: Vec<Instant>,
}

impl Ear {
    /// Packets inside the window, and the longest silence in it (its edges count).
    fn window(&self, from: Instant, until: Instant) -> (u64, Duration) {
        let mut last = from;
        let mut count = 0;
        let mut longest = Duration::ZERO;
        for &at in self.packets.iter().filter(|&&at| at >= from && at <= until) {
            count += 1;
            longest = longest.max(at - last);
            last = at;
        }
        (count, longest.max(until.saturating_duration_since(last)))
    }
}

/// The marks a room's speaker sent, by when.
type Marks = Arc<Mutex<Vec<Instant>>>;

/// Records what reaches `socket` until `until`; a speaker's socket (with `marks`) also speaks: the voice
/// with a mark each second, whose send times go to `marks`.
async fn ear(socket: UdpSocket, until: Instant, marks: Option<Marks>) -> Ear {
    let mut ear = Ear::default();
    let mut in_mark = false;
    // Frames in a row holding the room's tones, from when.
    let mut toned: (usize, Option<Instant>) = (0, None);
    let say = |sent: usize| {
        let marks = marks.as_ref()?;
        if sent.is_multiple_of(MARK_EVERY) {
            marks.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(Instant::now());
        }
        let marking = sent % MARK_EVERY < MARK_FRAMES;
        Some(narrow_tone(if marking { MARK_HZ } else { VOICE_HZ }, 6_000.0, sent))
    };
    let hear = |now: Instant, heard: sipp::Heard<'_>| {
        let sipp::Heard::Audio(heard) = heard else { return };
        ear.answered.get_or_insert(now);
        ear.packets.push(now);
        let mark = tones::tone_share(heard, MARK_HZ, tones::RATE) > TONE_SHARE;
        if mark || tones::tone_share(heard, VOICE_HZ, tones::RATE) > TONE_SHARE {
            toned = (toned.0 + 1, toned.1.or(Some(now)));
            if toned.0 >= TONE_FRAMES && ear.first_tone.is_none() {
                ear.first_tone = toned.1;
            }
        } else {
            toned = (0, None);
        }
        if mark && !in_mark {
            ear.marks.push(now);
        }
        in_mark = mark;
    };
    sipp::phone_media(socket, Codec::Pcmu, until, say, hear).await;
    ear
}

/// The scenario a caller plays: fields 0–8 the PIN, 9 the port its audio comes back to; it sends `sound`
/// if given (sipp reads the file once, so it cannot come from a field), stays `stay_ms`, then hangs up.
fn scenario(sound: Option<&Path>, stay_ms: u128) -> String {
    let caller = Caller::new("+1555[call_number]");
    let keys = (0..9).map(|field| format!("[field{field}]")).chain(std::iter::once("#".to_owned())).collect::<Vec<_>>();
    sipp::scenario(&format!(
        "{}{}{}<pause milliseconds=\"{stay_ms}\"/>\n{}",
        caller.dial(&sipp::offer("[field9]", "sendrecv"), false),
        caller.info_keys(keys.iter().map(String::as_str), 2),
        sound.map(sipp::stream).unwrap_or_default(),
        caller.in_dialog("BYE", 20, "", ""),
    ))
}

/// The median and the `quantile` of `values` (ms), 0 when there are none.
fn percentiles(mut values: Vec<f64>, quantile: f64) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(quantile))
}

/// Runs the load and prints and returns what it measured.
pub async fn run(options: &BenchOptions) -> anyhow::Result<PhoneResult> {
    let dir = &options.out;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let calls = options.meetings * options.participants;
    println!("\nphone: {} meeting(s) of {} callers, {} s", options.meetings, options.participants, options.seconds);
    let sfu = ConveneSfu::start(options, dir).await?;
    let outcome = load(&sfu, options, dir, calls).await;
    sfu.stop().await;
    let result = outcome?;
    std::fs::write(dir.join("result.json"), serde_json::to_vec_pretty(&result)?).context("cannot write result.json")?;
    println!(
        "  {} callers in {:.1} s; gateway {:.2} CPU-s over {:.0} s ({:.0} % of a core): {:.0} calls per core\n  \
         audio to each caller: {:.1} packets/s, {} caller(s) with a gap over 60 ms, longest {:.0} ms; {} of {} calls completed\n  \
         PIN to audio: median {:.0} ms, slowest {:.0} ms; mouth to ear: median {:.0} ms, p95 {:.0} ms ({} marks)",
        result.calls,
        result.all_joined_seconds,
        result.cpu_seconds,
        result.seconds,
        result.cpu_percent,
        result.calls_per_core,
        result.packets_per_call_per_second,
        result.calls_with_gaps,
        result.longest_gap_ms,
        result.calls_completed,
        result.calls,
        result.pin_to_audio_median_ms,
        result.pin_to_audio_max_ms,
        result.mouth_to_ear_median_ms,
        result.mouth_to_ear_p95_ms,
        result.marks_heard,
    );
    println!("written to {}", dir.display());
    Ok(result)
}

async fn load(sfu: &ConveneSfu, options: &BenchOptions, dir: &Path, calls: usize) -> anyhow::Result<PhoneResult> {
    let sip = sfu.sip().context("convene up printed no SIP address")?;
    let silence = dir.join("silence.wav");
    std::fs::write(&silence, sipp::ulaw_wav(None, 10)).context("cannot write silence.wav")?;
    // Two groups, each one sipp: the first caller of every room speaks, the others listen.
    let mut rows = [String::from("SEQUENTIAL\n"), String::from("SEQUENTIAL\n")];
    let mut sockets = Vec::with_capacity(calls);
    for meeting in 0..options.meetings {
        let room = format!("bench-{meeting}");
        let pin = sfu.room_pin(&room).await?;
        let digits: Vec<String> = pin.chars().map(String::from).collect();
        for caller in 0..options.participants {
            let socket = UdpSocket::bind("127.0.0.1:0").await.context("no socket for a caller's audio")?;
            let port = socket.local_addr()?.port();
            rows[usize::from(caller > 0)] += &format!("{};{port}\n", digits.join(";"));
            sockets.push((meeting, caller == 0, socket));
        }
    }
    // Callers stay through both groups' joins, the settling and the window, then hang up.
    let joining = Duration::from_secs_f64(calls as f64 / CALL_RATE as f64) + JOIN_MARGIN;
    let stay = 2 * joining + SETTLE + Duration::from_secs(options.seconds);
    let until = Instant::now() + stay;
    let marks: Vec<Marks> = (0..options.meetings).map(|_| Marks::default()).collect();
    let ears: Vec<_> = sockets
        .into_iter()
        .map(|(meeting, speaks, socket)| {
            let marks = speaks.then(|| Arc::clone(&marks[meeting]));
            (meeting, speaks, tokio::spawn(ear(socket, until, marks)))
        })
        .collect();
    let groups =
        [("speakers", None, options.meetings), ("listeners", Some(silence.as_path()), calls - options.meetings)];
    let started = Instant::now();
    let mut sipps = Vec::new();
    for ((name, sound, count), rows) in groups.into_iter().zip(rows) {
        if count == 0 {
            continue;
        }
        std::fs::write(dir.join(format!("{name}.csv")), rows).context("cannot write the callers' file")?;
        std::fs::write(dir.join(format!("{name}.xml")), scenario(sound, stay.as_millis()))
            .context("cannot write the callers' scenario")?;
        sipps.push(tokio::spawn(sipp(dir.to_owned(), name, sip, count)));
        // Speakers first, so each listener hears its room from the moment it is in.
        let present = if name == "speakers" { 1 } else { options.participants };
        if !sfu.wait_present(options.meetings, present, joining).await {
            sipps.iter().for_each(tokio::task::JoinHandle::abort);
            bail!("not every {name} caller was in its room within {} s; see {}", joining.as_secs(), dir.display());
        }
    }
    let join_time = started.elapsed();
    // Past the joining prompts, then the window.
    tokio::time::sleep(SETTLE).await;
    let window = Duration::from_secs(options.seconds);
    let from = Instant::now();
    let cpu_before = cpu_seconds(Some(sfu.pid()));
    tokio::time::sleep(window).await;
    let cpu = cpu_seconds(Some(sfu.pid())) - cpu_before;
    let to = from + window;
    let mut completed = 0;
    for sipp in sipps {
        completed += sipp.await.context("sipp's task failed")??;
    }
    let mut heard = Vec::with_capacity(calls);
    let (mut joins, mut delays) = (Vec::new(), Vec::new());
    for (meeting, speaker, ear) in ears {
        let ear = ear.await.context("an ear's task failed")?;
        heard.push(ear.window(from, to));
        if speaker {
            continue;
        }
        if let (Some(answered), Some(tone)) = (ear.answered, ear.first_tone) {
            joins.push((tone - answered).as_secs_f64() * 1000.0);
        }
        let sent = marks[meeting].lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        for mark in ear.marks.iter().filter(|&&at| at >= from && at <= to) {
            if let Some(&sent) = sent.iter().rev().find(|&&sent| sent <= *mark) {
                delays.push((*mark - sent).as_secs_f64() * 1000.0);
            }
        }
    }
    let busy = cpu / window.as_secs_f64();
    let gap = heard.iter().map(|(_, gap)| *gap).max().unwrap_or_default();
    let (join_median, join_max) = percentiles(joins, 1.0);
    let marks_heard = delays.len();
    let (delay_median, delay_p95) = percentiles(delays, 0.95);
    Ok(PhoneResult {
        meetings: options.meetings,
        calls,
        seconds: window.as_secs_f64(),
        all_joined_seconds: join_time.as_secs_f64(),
        cpu_seconds: cpu,
        cpu_percent: busy * 100.0,
        calls_per_core: if busy > 0.0 { calls as f64 / busy } else { 0.0 },
        packets_per_call_per_second: heard.iter().map(|(packets, _)| *packets as f64).sum::<f64>()
            / heard.len().max(1) as f64
            / window.as_secs_f64(),
        calls_with_gaps: heard.iter().filter(|(_, gap)| *gap > GAP).count(),
        longest_gap_ms: gap.as_secs_f64() * 1000.0,
        calls_completed: completed,
        pin_to_audio_median_ms: join_median,
        pin_to_audio_max_ms: join_max,
        mouth_to_ear_median_ms: delay_median,
        mouth_to_ear_p95_ms: delay_p95,
        marks_heard,
    })
}

/// Runs the group `name`'s callers (`name.xml`, `name.csv`) to the end; the calls that went as scripted.
async fn sipp(dir: std::path::PathBuf, name: &str, gateway: SocketAddr, calls: usize) -> anyhow::Result<usize> {
    let stats = dir.join(format!("{name}-stats.csv"));
    let output = tokio::process::Command::new("sipp")
        .arg("-sf")
        .arg(dir.join(format!("{name}.xml")))
        .arg("-inf")
        .arg(dir.join(format!("{name}.csv")))
        .arg(gateway.to_string())
        .args(["-s", NUMBER, "-m", &calls.to_string(), "-l", &calls.to_string()])
        .args(["-r", &CALL_RATE.to_string(), "-i", "127.0.0.1", "-mi", "127.0.0.1"])
        .args(["-t", "u1", "-nostdin", "-timeout", "300s", "-trace_stat", "-stf"])
        .arg(&stats)
        .args(["-trace_err", "-error_file"])
        .arg(dir.join(format!("{name}-errors.log")))
        .current_dir(&dir)
        .kill_on_drop(true)
        .output()
        .await
        .context("cannot run sipp (Debian's sip-tester)")?;
    let stats = std::fs::read_to_string(&stats).unwrap_or_default();
    // The last line's SuccessfulCall(C) column.
    let header: Vec<&str> = stats.lines().next().unwrap_or_default().split(';').collect();
    let column = header.iter().position(|name| *name == "SuccessfulCall(C)");
    let completed = stats
        .lines()
        .last()
        .zip(column)
        .and_then(|(line, column)| line.split(';').nth(column)?.trim().parse().ok())
        .unwrap_or(0);
    if completed == 0 && !output.status.success() {
        bail!("sipp failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(completed)
}
