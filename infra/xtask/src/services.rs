//! The services tests talk to, installed from Debian's packages and started when they are not running.
//! Idempotent: on a machine that has them running, each check is one quick probe.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Once,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use crate::{run, step};

const POSTGRES_ADDR: &str = "127.0.0.1:5432";
/// The password is set by `ensure_postgres` on a fresh install; with trust auth it is ignored.
const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres:postgres@127.0.0.1:5432/postgres";

/// The server URL tests create their databases on: `CONVENE_TEST_DATABASE_URL`, or the local default.
pub fn test_database_url() -> String {
    std::env::var("CONVENE_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_owned())
}

/// Postgres on 127.0.0.1:5432: installed if missing, started if down.
pub fn ensure_postgres() -> anyhow::Result<()> {
    step("Checking Postgres");
    if std::env::var_os("CONVENE_TEST_DATABASE_URL").is_some() {
        println!("using CONVENE_TEST_DATABASE_URL as given");
        return Ok(());
    }
    if port_open(POSTGRES_ADDR) {
        println!("Postgres answers on {POSTGRES_ADDR}");
        return Ok(());
    }
    let fresh = cluster_versions()?.is_empty();
    if fresh {
        apt_install(&["postgresql"])?;
    }
    for version in cluster_versions()? {
        println!("starting Postgres {version}");
        run(Command::new("pg_ctlcluster").args(["--skip-systemctl-redirect", &version, "main", "start"]))?;
    }
    wait_for_port(POSTGRES_ADDR, Duration::from_secs(30))?;
    if fresh {
        // Debian's default asks local TCP clients for a password: give the superuser the one tests use.
        run(Command::new("runuser").args([
            "-u",
            "postgres",
            "--",
            "psql",
            "-c",
            "ALTER USER postgres PASSWORD 'postgres'",
        ]))?;
    }
    Ok(())
}

/// Debian's Chromium and its WebDriver, for the browser tests, and a colour emoji font, so reactions in
/// the screenshots look as people see them.
pub fn ensure_chromium() -> anyhow::Result<()> {
    step("Checking Chromium, ChromeDriver and an emoji font");
    let emoji = Path::new("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf");
    if Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists() && emoji.exists() {
        println!("Chromium, ChromeDriver and the emoji font are installed");
        return Ok(());
    }
    apt_install(&["chromium", "chromium-driver", "fonts-noto-color-emoji"])
}

/// Debian's Janus gateway, which the bots' tests and the benchmark compare the media node with, and iproute2,
/// with which the bots give Janus a loopback address for ICE.
pub fn ensure_janus() -> anyhow::Result<()> {
    step("Checking Janus and iproute2");
    let has_ip = Command::new("ip").arg("-V").output().is_ok_and(|output| output.status.success());
    if Path::new("/usr/bin/janus").exists() && has_ip {
        println!("Janus and iproute2 are installed");
        return Ok(());
    }
    apt_install(&["janus", "iproute2"])
}

/// Debian's ffmpeg: the media node composes recordings with it, and the recording tests check files with
/// ffprobe.
pub fn ensure_ffmpeg() -> anyhow::Result<()> {
    step("Checking ffmpeg");
    if Path::new("/usr/bin/ffmpeg").exists() && Path::new("/usr/bin/ffprobe").exists() {
        println!("ffmpeg is installed");
        return Ok(());
    }
    apt_install(&["ffmpeg"])
}

/// Debian's SIP test clients: sipp (package sip-tester, with its RFC 4733 key recordings), which the phone
/// gateway's tests use as the trunk, and baresip (baresip-core), a real softphone.
pub fn ensure_sip_clients() -> anyhow::Result<()> {
    step("Checking sipp and baresip");
    let sipp = Path::new("/usr/bin/sipp").exists() && Path::new("/usr/share/sip-tester/dtmf_2833_pound.pcap").exists();
    let baresip = Path::new("/usr/bin/baresip").exists() && Path::new("/usr/lib/baresip/modules/ausine.so").exists();
    if sipp && baresip {
        println!("sipp and baresip are installed");
        return Ok(());
    }
    apt_install(&["sip-tester", "baresip-core"])
}

/// aiosmtpd, pinned: the SMTP sink mail tests read from.
const AIOSMTPD: &str = "aiosmtpd==1.4.6";
/// openapi-spec-validator, pinned: checks the API's OpenAPI 3.1 document.
const OPENAPI_SPEC_VALIDATOR: &str = "openapi-spec-validator==0.9.0";

/// Makes a Python module importable: from PyPI (pinned), or Debian's package where pip may not install.
fn ensure_python_module(module: &str, pip_spec: &str, debian_package: &str) -> anyhow::Result<()> {
    let importable =
        || Command::new("python3").args(["-c", &format!("import {module}")]).output().is_ok_and(|o| o.status.success());
    if importable() {
        return Ok(());
    }
    let pip = run(Command::new("python3").args(["-m", "pip", "install", "--quiet", pip_spec]));
    if pip.is_err() || !importable() {
        apt_install(&[debian_package])?;
    }
    Ok(())
}

/// moto, pinned, with its server's extras: the S3-compatible server recording tests upload to.
const MOTO: &str = "moto[server]==5.2.1";

/// The S3-compatible server the recording tests start on their own ports.
pub fn ensure_s3_server() -> anyhow::Result<()> {
    step("Checking moto's S3 server");
    ensure_python_module("moto.server", MOTO, "python3-moto")
}

/// The Standard Webhooks reference library, pinned: the webhook tests check every signature with it.
const STANDARDWEBHOOKS: &str = "standardwebhooks==1.0.0";

/// The library the webhook tests verify deliveries with (PyPI only: Debian does not package it).
pub fn ensure_webhook_verifier() -> anyhow::Result<()> {
    step("Checking the Standard Webhooks library");
    ensure_python_module("standardwebhooks", STANDARDWEBHOOKS, "python3-standardwebhooks")
}

/// The OpenAPI validator the API tests run.
pub fn ensure_openapi_validator() -> anyhow::Result<()> {
    step("Checking openapi-spec-validator");
    ensure_python_module("openapi_spec_validator", OPENAPI_SPEC_VALIDATOR, "python3-openapi-spec-validator")
}

/// A running SMTP sink that stores every message in a maildir; stopped when dropped.
pub struct SmtpSink {
    child: Child,
    /// `smtp://127.0.0.1:<port>`.
    pub url: String,
    /// The maildir messages land in (`new/`).
    pub maildir: PathBuf,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Installs aiosmtpd if missing and starts it on a
/// free loopback port with a fresh maildir under `target_dir`.
pub fn start_smtp_sink(target_dir: &Path) -> anyhow::Result<SmtpSink> {
    step("Starting the SMTP sink (aiosmtpd)");
    ensure_python_module("aiosmtpd", AIOSMTPD, "python3-aiosmtpd")?;
    let maildir = target_dir.join("test-mail").join(std::process::id().to_string());
    if maildir.exists() {
        std::fs::remove_dir_all(&maildir).with_context(|| format!("clearing {}", maildir.display()))?;
    }
    // aiosmtpd's Mailbox creates the maildir (with its tmp/new/cur) only when the folder does not exist yet.
    std::fs::create_dir_all(maildir.parent().unwrap_or(target_dir))?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let address = format!("127.0.0.1:{port}");
    let child = Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &address, "-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting aiosmtpd")?;
    let sink = SmtpSink { child, url: format!("smtp://{address}"), maildir };
    wait_for_port(&address, Duration::from_secs(20))?;
    println!("SMTP sink on {} writing to {}", sink.url, sink.maildir.display());
    Ok(sink)
}

fn cluster_versions() -> anyhow::Result<Vec<String>> {
    let dir = Path::new("/etc/postgresql");
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut versions = Vec::new();
    for entry in dir.read_dir().context("reading /etc/postgresql")? {
        let entry = entry?;
        if entry.path().join("main").is_dir() {
            versions.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(versions)
}

pub fn apt_install(packages: &[&str]) -> anyhow::Result<()> {
    static UPDATED: Once = Once::new();
    step(&format!("Installing {} from Debian's packages", packages.join(", ")));
    let mut update_result = Ok(());
    UPDATED.call_once(|| update_result = run(apt_get().arg("update")));
    update_result?;
    run(apt_get().args(["install", "-y", "--no-install-recommends"]).args(packages))
}

/// apt-get, through sudo when not root.
fn apt_get() -> Command {
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.starts_with(b"0"));
    let mut command = if is_root {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.arg("apt-get");
        sudo
    };
    command.env("DEBIAN_FRONTEND", "noninteractive");
    command
}

fn port_open(addr: &str) -> bool {
    addr.parse::<SocketAddr>().is_ok_and(|addr| TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok())
}

fn wait_for_port(addr: &str, limit: Duration) -> anyhow::Result<()> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if port_open(addr) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!("nothing answers on {addr} after {limit:?}")
}
