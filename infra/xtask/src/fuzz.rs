//! `cargo xtask fuzz [--seconds N] [target…]`: coverage-guided fuzzing on stable Rust. The targets in
//! `fuzz/` are built with libFuzzer's coverage instrumentation (sancov, through flags stable rustc takes)
//! into a target directory of their own, so the main build cache is untouched, and each runs for N seconds
//! over its kept corpus and the committed seeds. A crash, a hang (one input taking over 10 s) or memory
//! past 2 GB fails the run and leaves the input under `<target>/fuzz/artifacts/<target>/`.

use std::{
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context, bail};

use crate::{cargo, run, step, workspace_root};

/// Every fuzz target (a binary of the `convene-fuzz` package).
pub const TARGETS: &[&str] = &[
    "room_token",
    "signal_message",
    "stun",
    "sdp_offer",
    "media_datagram",
    "rtp_payload",
    "stripe_webhook",
    "phone_keys",
    "sip_call",
];
/// Seconds per target in `cargo xtask test`: the seeds, then a short exploration.
pub const SECONDS_IN_TEST: u64 = 10;

/// cargo-fuzz's instrumentation, without the sanitizer (which needs nightly): coverage counters, the
/// program-counter table and comparison tracing, with debug assertions and overflow checks on.
const RUSTFLAGS: &str = "--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks";

/// Parses `--seconds N` and target names.
pub fn parse_args(args: &[String]) -> anyhow::Result<(u64, Vec<String>)> {
    let mut seconds = 60;
    let mut targets = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "--seconds" {
            let value = args.next().context("--seconds needs a number")?;
            seconds = value.parse().with_context(|| format!("--seconds {value} is not a whole number"))?;
        } else if TARGETS.contains(&arg.as_str()) {
            targets.push(arg.clone());
        } else {
            bail!("unknown fuzz target `{arg}`; the targets are {}", TARGETS.join(", "));
        }
    }
    Ok((seconds, targets))
}

/// Builds the targets and fuzzes each (all when `only` is empty) for `seconds`.
pub fn fuzz(target_dir: &Path, seconds: u64, only: &[String]) -> anyhow::Result<()> {
    let names: Vec<&str> = if only.is_empty() { TARGETS.to_vec() } else { only.iter().map(String::as_str).collect() };
    let host = host_triple()?;
    let fuzz_dir = target_dir.join("fuzz");
    step("Building the fuzz targets with coverage instrumentation");
    let mut build = cargo();
    // The host triple keeps the flags off build scripts and proc macros, which must not be instrumented.
    build.args(["build", "--release", "--package", "convene-fuzz", "--target", &host]);
    for name in &names {
        build.args(["--bin", name]);
    }
    run(build.env("RUSTFLAGS", RUSTFLAGS).env_remove("CARGO_ENCODED_RUSTFLAGS").env("CARGO_TARGET_DIR", &fuzz_dir))?;

    step(&format!("Fuzzing {} targets for {seconds} s each", names.len()));
    for name in names {
        let corpus = fuzz_dir.join("corpus").join(name);
        let artifacts = fuzz_dir.join("artifacts").join(name);
        std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
        std::fs::create_dir_all(&artifacts).with_context(|| format!("creating {}", artifacts.display()))?;
        let mut command = Command::new(fuzz_dir.join(&host).join("release").join(name));
        command
            .arg(format!("-max_total_time={seconds}"))
            .arg("-timeout=10")
            .arg("-rss_limit_mb=2048")
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1")
            .arg(&corpus);
        let seeds = workspace_root().join("fuzz").join("seeds").join(name);
        if seeds.is_dir() {
            command.arg(seeds);
        }
        let output = command.stdin(Stdio::null()).output().with_context(|| format!("starting the {name} target"))?;
        let log = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            bail!("fuzz target {name} failed ({}); the input is in {}", output.status, artifacts.display());
        }
        let stat = |key: &str| {
            log.lines().find_map(|line| line.strip_prefix(&format!("stat::{key}:"))).map_or("?", str::trim).to_owned()
        };
        let inputs = std::fs::read_dir(&corpus).map_or(0, Iterator::count);
        println!(
            "{name}: {} runs in {seconds} s ({} per second), {inputs} inputs in the corpus, peak {} MB: no crash, no hang",
            stat("number_of_executed_units"),
            stat("average_exec_per_sec"),
            stat("peak_rss_mb"),
        );
    }
    Ok(())
}

fn host_triple() -> anyhow::Result<String> {
    let output = Command::new("rustc").arg("-vV").output().context("running rustc -vV")?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines().find_map(|line| line.strip_prefix("host: ")).map(str::to_owned).context("rustc -vV names no host")
}
