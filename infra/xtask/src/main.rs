//! The developer task runner (`cargo xtask <task>`), so that a fresh Debian machine with rustup needs
//! exactly two commands:
//!
//! - `cargo xtask up`: installs the build tools and ffmpeg, builds the browser bundles and the release binary,
//!   migrates `./data` and runs `convene up`.
//! - `cargo xtask test`: makes sure the services tests talk to exist and run (Postgres, Chromium, Janus, ffmpeg, an SMTP
//!   sink), builds the bundles, checks formatting and lints, then runs every test.
//!
//! `cargo xtask build` (bundle and release binary only) serves packaging, such as the container file;
//! `cargo xtask fuzz --seconds N [target…]` fuzzes the parsers of outside bytes (a short run is part of
//! `test`); `cargo xtask check-deploy` checks the deployment files under `infra/deploy` offline (part of
//! `test` too).
//!
//! Every step says what it does; every step is idempotent.

mod deploy;
mod fuzz;
mod services;
mod site;
#[cfg(test)]
mod tidy;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context, bail};

const USAGE: &str = "usage: cargo xtask <up|test|build|fuzz|check-deploy> [args]

  up     build everything and run `convene up` on ./data (extra args go to `convene up`)
  test   install and start what the tests need, check formatting and lints, run every test
  build  build the browser bundles and the release binary only
  fuzz   [--seconds N] [target...]: fuzz each parser of outside bytes for N seconds (default 60)
  check-deploy  check the Helm chart, Terraform module and compose file under infra/deploy offline";

/// Tests and lints cover `convene bench`, which serving builds leave out.
const BENCH_FEATURE: &str = "convene-api/bench";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let result = match task.as_deref() {
        Some("up") => up(&rest),
        Some("build") => build().map(drop),
        Some("test") => test(&rest),
        Some("check-deploy") => target_dir().and_then(|target| deploy::check(&target)),
        Some("fuzz") => {
            fuzz::parse_args(&rest).and_then(|(seconds, targets)| fuzz::fuzz(&target_dir()?, seconds, &targets))
        }
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a step heading, so a long run shows where it is.
fn step(text: &str) {
    println!("\n==> {text}");
}

/// Runs a command from the workspace root, failing with the command line when it fails.
fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command.current_dir(workspace_root()).status().with_context(|| format!("cannot start {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn workspace_root() -> &'static Path {
    // infra/xtask/ -> the workspace root.
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Where cargo puts its output (honours CARGO_TARGET_DIR and .cargo/config.toml).
fn target_dir() -> anyhow::Result<PathBuf> {
    let output = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(workspace_root())
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).context("parsing cargo metadata")?;
    let dir = metadata["target_directory"].as_str().context("cargo metadata has no target_directory")?;
    Ok(PathBuf::from(dir))
}

/// Builds the bundles and the release binary; returns the binary's path.
fn build() -> anyhow::Result<PathBuf> {
    let target = target_dir()?;
    site::build(&target)?;
    step("Building the release binary");
    run(cargo().args(["build", "--release", "--package", "convene-api", "--bin", "convene"]))?;
    Ok(target.join("release").join("convene"))
}

fn up(args: &[String]) -> anyhow::Result<()> {
    services::ensure_ffmpeg()?;
    let convene = build()?;

    step("Migrating the database");
    run(Command::new(&convene).arg("migrate"))?;

    step("Starting convene up (Ctrl-C stops it)");
    exec(Command::new(&convene).arg("up").args(args).current_dir(workspace_root()))
}

/// Replaces this process with `command`, so Ctrl-C and SIGTERM reach the server directly.
fn exec(command: &mut Command) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let error = command.exec();
    Err(error).with_context(|| format!("cannot start {command:?}"))
}

fn test(args: &[String]) -> anyhow::Result<()> {
    services::ensure_postgres()?;
    services::ensure_chromium()?;
    services::ensure_janus()?;
    services::ensure_ffmpeg()?;
    services::ensure_sip_clients()?;
    services::ensure_openapi_validator()?;
    services::ensure_s3_server()?;
    services::ensure_webhook_verifier()?;
    let target = target_dir()?;
    // Quick, and independent of the build: first, so a broken chart or module fails the run early.
    deploy::check(&target)?;
    let smtp = services::start_smtp_sink(&target)?;
    site::build(&target)?;

    step("Checking formatting");
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;

    step("Linting (clippy, warnings are errors)");
    run(cargo().args([
        "clippy",
        "--workspace",
        "--exclude",
        "convene-hydrate",
        "--all-targets",
        "--features",
        BENCH_FEATURE,
        "--",
        "-D",
        "warnings",
    ]))?;
    // The serving build, without the benchmark, must be as clean as the tested one.
    run(cargo().args(["clippy", "--package", "convene-api", "--bin", "convene", "--", "-D", "warnings"]))?;
    run(cargo().args(site::WASM_CLIPPY_ARGS))?;

    step("Running every test");
    let mut runner = if has_nextest() {
        let mut command = cargo();
        command.args(["nextest", "run", "--workspace", "--exclude", "convene-hydrate", "--no-fail-fast"]);
        command.args(["--features", BENCH_FEATURE]);
        command
    } else {
        let mut command = cargo();
        command.args(["test", "--workspace", "--exclude", "convene-hydrate", "--no-fail-fast"]);
        command.args(["--features", BENCH_FEATURE]);
        command
    };
    run(runner
        .args(args)
        .env("CONVENE_TEST_DATABASE_URL", services::test_database_url())
        .env("CONVENE_TEST_SMTP_URL", &smtp.url)
        .env("CONVENE_TEST_MAILDIR", &smtp.maildir))?;

    // Filtered runs (arguments for the test runner) test one thing; a full run fuzzes briefly too.
    if args.is_empty() {
        fuzz::fuzz(&target, fuzz::SECONDS_IN_TEST, &[])?;
    }
    Ok(())
}

fn has_nextest() -> bool {
    cargo().args(["nextest", "--version"]).output().is_ok_and(|output| output.status.success())
}
