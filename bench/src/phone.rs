//! The phone gateway under load (`convene bench --target phone`): `convene up` with a number assigned,
//! `--meetings` rooms, and Debian's sipp calling in `--participants` callers per room at 20 calls a second.
//! Each caller types its room's PIN by SIP INFO and then sends 20 ms of G.711 every 20 ms: the first caller
//! of each room a tone (the speaker), the others silence (as phones on mute still do); one sipp for each
//! group. Every caller's
//! audio comes back to a socket of the benchmark's own, which counts packets and the longest gap. The
//! gateway's CPU time comes from `/proc` over the measured window.

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use convene_bots::sipp::{self, Caller};
use serde::Serialize;
use tokio::net::UdpSocket;

use crate::{BenchOptions, targets::ConveneSfu};

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
}

/// One caller's ear: what reached it in the window.
#[derive(Debug, Default, Clone, Copy)]
struct Heard {
    packets: u64,
    longest_gap: Duration,
}

/// Counts the packets reaching `socket` from now until `until`, and the longest silence between them. What
/// waited in the socket from before is read first and not counted.
async fn listen(socket: UdpSocket, until: tokio::time::Instant) -> Heard {
    let mut buffer = [0u8; 1500];
    while socket.try_recv_from(&mut buffer).is_ok() {}
    let mut heard = Heard::default();
    let mut last = tokio::time::Instant::now();
    while let Ok(Ok(_)) = tokio::time::timeout_at(until, socket.recv_from(&mut buffer)).await {
        let now = tokio::time::Instant::now();
        heard.packets += 1;
        heard.longest_gap = heard.longest_gap.max(now - last);
        last = now;
    }
    heard.longest_gap = heard.longest_gap.max(until.saturating_duration_since(last));
    heard
}

/// The scenario a caller plays: fields 0–8 the PIN, 9 the port its audio comes back to; it sends `sound`
/// (sipp reads the file once, so it cannot come from a field), stays `stay_ms`, then hangs up.
fn scenario(sound: &Path, stay_ms: u128) -> String {
    let caller = Caller::new("+1555[call_number]");
    let keys = (0..9).map(|field| format!("[field{field}]")).chain(std::iter::once("#".to_owned())).collect::<Vec<_>>();
    sipp::scenario(&format!(
        "{}{}{}<pause milliseconds=\"{stay_ms}\"/>\n{}",
        caller.dial(&sipp::offer("[field9]", "sendrecv"), false),
        caller.info_keys(keys.iter().map(String::as_str), 2),
        sipp::stream(sound),
        caller.in_dialog("BYE", 20, "", ""),
    ))
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
         audio to each caller: {:.1} packets/s, {} caller(s) with a gap over 60 ms, longest {:.0} ms; {} of {} calls completed",
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
    );
    println!("written to {}", dir.display());
    Ok(result)
}

async fn load(sfu: &ConveneSfu, options: &BenchOptions, dir: &Path, calls: usize) -> anyhow::Result<PhoneResult> {
    let sip = sfu.sip().context("convene up printed no SIP address")?;
    let (tone, silence) = (dir.join("tone.wav"), dir.join("silence.wav"));
    std::fs::write(&tone, sipp::ulaw_wav(Some(400.0), 10)).context("cannot write tone.wav")?;
    std::fs::write(&silence, sipp::ulaw_wav(None, 10)).context("cannot write silence.wav")?;
    let mut ears = Vec::with_capacity(calls);
    // Two groups, each one sipp: the first caller of every room speaks, the others are silent.
    let mut rows = [String::from("SEQUENTIAL\n"), String::from("SEQUENTIAL\n")];
    for meeting in 0..options.meetings {
        let room = format!("bench-{meeting}");
        let pin = sfu.room_pin(&room).await?;
        let digits: Vec<String> = pin.chars().map(String::from).collect();
        for caller in 0..options.participants {
            let ear = UdpSocket::bind("127.0.0.1:0").await.context("no socket for a caller's audio")?;
            let port = ear.local_addr()?.port();
            rows[usize::from(caller > 0)] += &format!("{};{port}\n", digits.join(";"));
            ears.push(ear);
        }
    }
    // Callers stay through the joins, the settling and the window, then hang up.
    let joining = Duration::from_secs_f64(calls as f64 / CALL_RATE as f64) + JOIN_MARGIN;
    let stay = joining + SETTLE + Duration::from_secs(options.seconds);
    let groups = [("speakers", &tone, options.meetings), ("listeners", &silence, calls - options.meetings)];
    let mut callers = Vec::new();
    for ((name, sound, count), rows) in groups.into_iter().zip(rows) {
        if count == 0 {
            continue;
        }
        std::fs::write(dir.join(format!("{name}.csv")), rows).context("cannot write the callers' file")?;
        std::fs::write(dir.join(format!("{name}.xml")), scenario(sound, stay.as_millis()))
            .context("cannot write the callers' scenario")?;
        callers.push((name, count));
    }
    let started = Instant::now();
    let sipps: Vec<_> =
        callers.into_iter().map(|(name, count)| tokio::spawn(sipp(dir.to_owned(), name, sip, count))).collect();
    let all = sfu.wait_present(options.meetings, options.participants, joining).await;
    let join_time = started.elapsed();
    if !all {
        sipps.iter().for_each(tokio::task::JoinHandle::abort);
        bail!("not every caller was in its room within {} s; see {}", joining.as_secs(), dir.display());
    }
    // Past the joining prompts, then the window.
    tokio::time::sleep(SETTLE).await;
    let window = Duration::from_secs(options.seconds);
    let until = tokio::time::Instant::now() + window;
    let cpu_before = cpu_seconds(sfu.pid());
    let listening = ears.into_iter().map(|ear| tokio::spawn(listen(ear, until)));
    let heard: Vec<Heard> =
        futures_util::future::join_all(listening).await.into_iter().filter_map(Result::ok).collect();
    let cpu = cpu_seconds(sfu.pid()) - cpu_before;
    let mut completed = 0;
    for sipp in sipps {
        completed += sipp.await.context("sipp's task failed")??;
    }
    let busy = cpu / window.as_secs_f64();
    let gap = heard.iter().map(|heard| heard.longest_gap).max().unwrap_or_default();
    Ok(PhoneResult {
        meetings: options.meetings,
        calls,
        seconds: window.as_secs_f64(),
        all_joined_seconds: join_time.as_secs_f64(),
        cpu_seconds: cpu,
        cpu_percent: busy * 100.0,
        calls_per_core: if busy > 0.0 { calls as f64 / busy } else { 0.0 },
        packets_per_call_per_second: heard.iter().map(|heard| heard.packets as f64).sum::<f64>()
            / heard.len().max(1) as f64
            / window.as_secs_f64(),
        calls_with_gaps: heard.iter().filter(|heard| heard.longest_gap > GAP).count(),
        longest_gap_ms: gap.as_secs_f64() * 1000.0,
        calls_completed: completed,
    })
}

fn cpu_seconds(pid: u32) -> f64 {
    convene_media::process::usage(Some(pid)).map_or(0.0, |usage| usage.cpu_seconds)
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
