//! The benchmark's smoke run: `convene bench` against Convene and Janus with a small meeting for a few
//! seconds, then `convene capacity` from its result. It checks the figures are sane (everyone received
//! everyone, the stage in the top layer, no loss on loopback), not that they are fast: speed is the full
//! benchmark's business, documented in the README.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// Tests fail loudly by design.
// The benchmark is in builds with the `bench` feature (`cargo xtask test` turns it on).
#![cfg(feature = "bench")]

use std::{path::Path, process::Command};

use serde_json::Value;

fn convene() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_convene"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("CONVENE_")) {
        command.env_remove(name);
    }
    command.env("CONVENE_LOG", "warn");
    command
}

fn result(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display())))
        .unwrap()
}

#[test]
fn a_short_run_against_both_sfus_gives_sane_figures_and_sizes_a_deployment() {
    let out = tempfile::tempdir().unwrap();
    let output = convene()
        .args(["bench", "--target", "both", "--meetings", "1", "--participants", "3", "--seconds", "3"])
        .args(["--resolution", "720p", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(printed.contains("side by side"), "{printed}");
    assert!(out.path().join("chart.svg").exists());

    for target in ["convene", "janus"] {
        let figures = result(&out.path().join(target).join("result.json"));
        assert_sane(target, &figures);
        assert_eq!(figures["bots"], "webrtc");
        assert!(out.path().join(target).join("chart.svg").exists());
    }
    assert!(printed.contains("per packet forwarded:"), "{printed}");

    let output = convene()
        .args(["capacity", "--meetings", "10", "--participants", "10", "--resolution", "720p", "--measured"])
        .arg(out.path().join("convene").join("result.json"))
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
    for expected in ["454.0 Mbit/s in, 543.6 Mbit/s out", "assumptions", "Mbit per CPU-second", "nodes of 2 cores"] {
        assert!(printed.contains(expected), "missing {expected:?} in:\n{printed}");
    }
}

/// What every run of three people in one meeting must show, whichever SFU and bots.
fn assert_sane(target: &str, figures: &Value) {
    let number = |name: &str| figures[name].as_f64().unwrap_or_else(|| panic!("{target}: no {name}: {figures}"));
    assert_eq!(figures["target"], target);
    assert_eq!((figures["meetings"].as_u64(), figures["participants"].as_u64()), (Some(1), Some(3)));
    assert_eq!(figures["resolution"], "720p");
    assert_eq!(figures["receivers_total"], 3);
    assert_eq!(figures["receivers_with_media"], 3, "{target}: every receiver got media: {figures}");
    // Everyone sees the thumbnails in the bottom layer; the two who watch the speaker get the top layer,
    // though a receiver whose estimate dipped (a busy machine) may hold a middle one for a while.
    let high = number("streams_high_per_receiver");
    assert!(high > 0.3 && high < 2.0 / 3.0 + 0.01, "{target}: the speaker reaches the top layer: {figures}");
    assert!((number("streams_low_per_receiver") - 4.0 / 3.0).abs() < 0.01, "{target}: {figures}");
    assert!(number("loss_ratio") < 0.01, "{target}: no loss on loopback: {figures}");
    assert!(number("sfu_cpu_seconds") > 0.0 && number("sfu_peak_rss_mb") > 1.0, "{target}: {figures}");
    // 3 × 4.5 Mbit/s published; about 7.9 Mbit/s forwarded.
    assert!(number("forwarded_mbps_in") > 10.0 && number("forwarded_mbps_out") > 5.0, "{target}: {figures}");
    assert!(number("packets_per_second_out") > 500.0 && number("mbps_out_per_cpu_second") > 0.0);
    assert!(number("delay_p50_ms") < number("delay_p99_ms") + 0.001 && number("delay_p99_ms") < 500.0);
    assert!(number("join_p95_ms") > 0.0 && number("join_p95_ms") < 20_000.0, "{target}: {figures}");
    assert!(number("bot_us_per_packet") > 0.0, "{target}: {figures}");
    assert_eq!(figures["ramp"].as_array().map(Vec::len), Some(1));
    // What a forwarded packet costs in str0m calls and system calls: Convene's metrics count them.
    let costs = ["session_timeouts_per_packet", "session_polls_per_packet", "datagrams_per_send"];
    if target == "convene" {
        assert!(costs.iter().all(|cost| number(cost) > 0.0), "{figures}");
        assert!((1.0..=32.0).contains(&number("datagrams_per_send")), "{figures}");
    } else {
        assert!(costs.iter().all(|cost| figures[cost].is_null()), "{figures}");
    }
}

#[test]
fn a_short_run_with_light_bots_gives_the_same_sane_figures_for_both_sfus() {
    let out = tempfile::tempdir().unwrap();
    let output = convene()
        .args(["bench", "--target", "both", "--bots", "light", "--meetings", "1", "--participants", "3"])
        .args(["--seconds", "3", "--resolution", "720p", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(printed.contains("bots (light)"), "{printed}");
    for target in ["convene", "janus"] {
        let figures = result(&out.path().join(target).join("result.json"));
        assert_sane(target, &figures);
        assert_eq!(figures["bots"], "light");
    }
}

#[test]
fn a_short_phone_run_puts_every_caller_in_a_room_with_audio_all_along() {
    let out = tempfile::tempdir().unwrap();
    let output = convene()
        .args(["bench", "--target", "phone", "--meetings", "2", "--participants", "3", "--seconds", "3", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(printed.contains("calls per core"), "{printed}");
    let figures = result(&out.path().join("result.json"));
    let number = |name: &str| figures[name].as_f64().unwrap_or_else(|| panic!("no {name}: {figures}"));
    assert_eq!((figures["meetings"].as_u64(), figures["calls"].as_u64()), (Some(2), Some(6)));
    assert_eq!(figures["calls_completed"], 6, "every call went as scripted: {figures}");
    // 50 packets a second is every 20 ms; a loaded test machine may lose a few.
    assert!(number("packets_per_call_per_second") > 45.0, "audio reached every caller: {figures}");
    assert!(number("cpu_seconds") > 0.0 && number("calls_per_core") > 0.0, "{figures}");
    // Listeners heard their room's speaker after the joining prompt, and its marks a moment after they left.
    assert!(number("pin_to_audio_median_ms") > 1_000.0, "{figures}");
    assert!(number("marks_heard") > 0.0 && number("mouth_to_ear_median_ms") < 1_000.0, "{figures}");
}

#[test]
fn a_short_token_run_mints_with_every_client_and_reports_latency_and_cpu() {
    let out = tempfile::tempdir().unwrap();
    let args = ["bench", "--target", "tokens", "--participants", "4", "--seconds", "2", "--out"];
    let output = convene().args(args).arg(out.path()).output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(printed.contains("tokens/s"), "{printed}");
    let figures = result(&out.path().join("result.json"));
    let number = |name: &str| figures[name].as_f64().unwrap_or_else(|| panic!("no {name}: {figures}"));
    assert_eq!(figures["clients"], 4);
    assert!(number("tokens") > 10.0 && number("tokens_per_second") > 5.0, "{figures}");
    assert_eq!((number("failures"), number("timeouts")), (0.0, 0.0), "every request minted: {figures}");
    assert!(number("median_ms") > 0.0 && number("p99_ms") >= number("median_ms"), "{figures}");
    assert!(number("max_ms") >= number("p99_ms"), "{figures}");
    assert!(number("server_cpu_seconds") > 0.0 && number("clients_cpu_seconds") > 0.0, "{figures}");
}

#[test]
fn bad_benchmark_arguments_are_refused_before_anything_starts() {
    let out = tempfile::tempdir().unwrap();
    for (args, expected) in [
        (vec!["--target", "jitsi"], "unknown target"),
        (vec!["--resolution", "4k"], "unknown resolution"),
        (vec!["--meetings", "0"], "--meetings must be"),
        (vec!["--participants", "1"], "--participants must be"),
        (vec!["--seconds", "100000"], "--seconds must be"),
    ] {
        let output = convene().arg("bench").args(&args).arg("--out").arg(out.path()).output().unwrap();
        let text = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && text.contains(expected), "{args:?}: {text}");
    }
    let output =
        convene().args(["capacity", "--meetings", "1", "--participants", "5", "--measured", "/nope"]).output().unwrap();
    assert!(!output.status.success() && String::from_utf8_lossy(&output.stderr).contains("cannot read /nope"));
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "nothing was written");
}
