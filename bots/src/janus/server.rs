//! A Janus gateway of one's own: a minimal configuration (the VideoRoom behind the HTTP API on loopback, ICE
//! on a loopback address, nothing else loaded), the process, and its rooms.

use std::fs::OpenOptions;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::api::{self, Session, VIDEOROOM};
use crate::bot::BotError;
use crate::media;

/// Debian's Janus.
pub const JANUS_BINARY: &str = "/usr/bin/janus";
/// The address Janus gathers ICE candidates on. Janus skips loopback interfaces, so the address sits on an
/// interface of its own (see [`JanusServer::start`]); traffic to it stays on the host like any 127/8 traffic.
pub const ICE_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const ICE_INTERFACE: &str = "cnv-janus";
const ICE_INTERFACE_PEER: &str = "cnv-janus-peer";
/// Room settings: room for any meeting the benchmark makes, a REMB cap above every bot profile, and a
/// keyframe request every 10 s as Janus's demos use.
const MAX_PUBLISHERS: u32 = 1000;
const ROOM_BITRATE_BPS: u32 = 20_000_000;
const FIR_FREQ_S: u32 = 10;
/// How often a starting Janus is asked whether it is up, and how long it may take to answer.
const START_POLL: Duration = Duration::from_millis(100);
/// The longest wait for a room request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of the log an error quotes.
const LOG_TAIL_LINES: usize = 20;
const LOG_TAIL_BYTES: usize = 16 * 1024;

/// Where and how a [`JanusServer`] runs.
#[derive(Debug, Clone)]
pub struct JanusConfig {
    /// Its configuration files and log (`janus.log`); created if missing.
    pub dir: PathBuf,
    /// The HTTP API's port on 127.0.0.1.
    pub http_port: u16,
    /// The UDP ports ICE and RTP use, both included.
    pub rtp_ports: (u16, u16),
    /// The `janus` executable.
    pub binary: PathBuf,
    /// Where the package keeps `plugins/` and `transports/`.
    pub lib_dir: PathBuf,
    /// The longest wait for the HTTP API to answer after the start.
    pub start_timeout: Duration,
}

impl JanusConfig {
    /// Debian's Janus, given 10 s to start.
    pub fn new(dir: impl Into<PathBuf>, http_port: u16, rtp_ports: (u16, u16)) -> Self {
        Self {
            dir: dir.into(),
            http_port,
            rtp_ports,
            binary: PathBuf::from(JANUS_BINARY),
            lib_dir: PathBuf::from(format!("/usr/lib/{}-linux-gnu/janus", std::env::consts::ARCH)),
            start_timeout: Duration::from_secs(10),
        }
    }

    fn plugin(&self) -> PathBuf {
        self.lib_dir.join("plugins/libjanus_videoroom.so")
    }

    fn transport(&self) -> PathBuf {
        self.lib_dir.join("transports/libjanus_http.so")
    }

    /// The directory as the configuration quotes it.
    fn quoted_dir(&self) -> Result<&str, JanusServerError> {
        self.dir.to_str().filter(|dir| !dir.contains(['"', '\\', '\n'])).ok_or_else(|| {
            JanusServerError::Config(format!("{} cannot be quoted in a Janus configuration", self.dir.display()))
        })
    }

    fn check(&self) -> Result<(), JanusServerError> {
        let (first, last) = self.rtp_ports;
        if first == 0 || first > last {
            return Err(JanusServerError::Config(format!("the RTP port range {first}-{last} is empty")));
        }
        self.quoted_dir()?;
        for path in [self.binary.clone(), self.plugin(), self.transport()] {
            if !path.exists() {
                return Err(JanusServerError::NotInstalled { path });
            }
        }
        Ok(())
    }

    /// Writes the configuration: the VideoRoom plugin and the HTTP transport are linked into folders of
    /// their own, so nothing else loads.
    fn write(&self, server_name: &str) -> Result<PathBuf, JanusServerError> {
        let dir = self.quoted_dir()?;
        let log = self.dir.join("janus.log");
        for folder in ["plugins", "transports", "events", "loggers"] {
            let folder = self.dir.join(folder);
            std::fs::create_dir_all(&folder).map_err(|source| JanusServerError::Write { path: folder, source })?;
        }
        for (target, link) in [
            (self.plugin(), self.dir.join("plugins/libjanus_videoroom.so")),
            (self.transport(), self.dir.join("transports/libjanus_http.so")),
        ] {
            if std::fs::symlink_metadata(&link).is_ok() {
                std::fs::remove_file(&link).map_err(|source| JanusServerError::Write { path: link.clone(), source })?;
            }
            std::os::unix::fs::symlink(&target, &link)
                .map_err(|source| JanusServerError::Write { path: link, source })?;
        }
        let (first, last) = self.rtp_ports;
        let core = format!(
            r#"general: {{
    configs_folder = "{dir}"
    plugins_folder = "{dir}/plugins"
    transports_folder = "{dir}/transports"
    events_folder = "{dir}/events"
    loggers_folder = "{dir}/loggers"
    log_to_stdout = false
    log_to_file = "{dir}/janus.log"
    debug_level = 4
    debug_colors = false
    server_name = "{server_name}"
    interface = "{ICE_ADDRESS}"
    session_timeout = 60
}}
media: {{
    ipv6 = false
    rtp_port_range = "{first}-{last}"
}}
nat: {{
    nice_debug = false
    full_trickle = false
    ice_lite = false
    ice_enforce_list = "{ICE_ADDRESS}"
}}
events: {{
    broadcast = false
}}
"#
        );
        let http = format!(
            r#"general: {{
    json = "compact"
    base_path = "/janus"
    http = true
    port = {port}
    ip = "127.0.0.1"
    https = false
}}
admin: {{
    admin_http = false
    admin_https = false
}}
"#,
            port = self.http_port
        );
        for (name, text) in [
            ("janus.jcfg", core.as_str()),
            ("janus.transport.http.jcfg", http.as_str()),
            ("janus.plugin.videoroom.jcfg", "general: {\n}\n"),
        ] {
            let path = self.dir.join(name);
            std::fs::write(&path, text).map_err(|source| JanusServerError::Write { path, source })?;
        }
        Ok(log)
    }
}

/// Why a [`JanusServer`] did not start, or a room was not made.
#[derive(Debug, thiserror::Error)]
pub enum JanusServerError {
    /// The configuration cannot work.
    #[error("invalid Janus configuration: {0}")]
    Config(String),
    /// Janus is not installed (or not where the configuration says).
    #[error("{path} is missing: install Debian's janus package (`cargo xtask test` does)")]
    NotInstalled {
        /// The missing file.
        path: PathBuf,
    },
    /// A configuration file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The loopback address for ICE could not be set up (it needs root, and iproute2).
    #[error("cannot give Janus a loopback address for ICE, `ip {command}` failed: {reason}")]
    IceInterface {
        /// The `ip` arguments.
        command: String,
        /// Its error output.
        reason: String,
    },
    /// Something else listens on the HTTP port.
    #[error("the HTTP port 127.0.0.1:{port} is taken by another program")]
    PortTaken {
        /// The port.
        port: u16,
    },
    /// The process could not be started.
    #[error("cannot start {binary}: {source}")]
    Spawn {
        /// The executable.
        binary: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Janus exited before its HTTP API answered (a refused configuration, a port in use ...).
    #[error("janus exited ({status}) before its HTTP API answered; the end of {}:\n{tail}", log.display())]
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// The log file.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },
    /// The HTTP API did not answer in time.
    #[error("janus's HTTP API did not answer within {timeout:?}; the end of {}:\n{tail}", log.display())]
    Timeout {
        /// The wait.
        timeout: Duration,
        /// The log file.
        log: PathBuf,
        /// The log's last lines.
        tail: String,
    },
    /// A request to the running Janus failed.
    #[error("janus could not {what}: {error}")]
    Api {
        /// What was asked.
        what: String,
        /// Why it failed.
        error: BotError,
    },
}

/// A running Janus. Dropping it (or [`JanusServer::stop`]) kills the process and waits for it.
pub struct JanusServer {
    child: Child,
    http_port: u16,
    url: String,
    log: PathBuf,
    http: reqwest::Client,
}

impl std::fmt::Debug for JanusServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JanusServer").field("pid", &self.pid()).field("url", &self.url).finish()
    }
}

impl JanusServer {
    /// Writes the configuration into `config.dir`, starts Janus and returns once its HTTP API answers.
    ///
    /// Janus gathers ICE candidates on non-loopback interfaces only, while the bots and this machine's tests
    /// talk over loopback only; so the first start gives [`ICE_ADDRESS`] an interface of its own (a veth pair
    /// named `cnv-janus`, which needs root) and Janus gathers on that address alone.
    pub async fn start(config: JanusConfig) -> Result<Self, JanusServerError> {
        config.check()?;
        ensure_ice_interface().await?;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, config.http_port)).is_err() {
            return Err(JanusServerError::PortTaken { port: config.http_port });
        }
        let server_name = format!("convene-{:016x}", media::random_u64());
        let log = config.write(&server_name)?;
        let output = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|source| JanusServerError::Write { path: log.clone(), source })?;
        let errors = output.try_clone().map_err(|source| JanusServerError::Write { path: log.clone(), source })?;
        let child = Command::new(&config.binary)
            .arg("-F")
            .arg(&config.dir)
            .arg("-C")
            .arg(config.dir.join("janus.jcfg"))
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .spawn()
            .map_err(|source| JanusServerError::Spawn { binary: config.binary.clone(), source })?;
        let http =
            api::client().map_err(|error| JanusServerError::Api { what: "make an HTTP client".to_owned(), error })?;
        let mut server = Self {
            child,
            http_port: config.http_port,
            url: format!("http://127.0.0.1:{}/janus", config.http_port),
            log,
            http,
        };
        server.wait_until_up(&server_name, config.start_timeout).await?;
        Ok(server)
    }

    /// The process id (for its CPU time in `/proc/<pid>/stat`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The HTTP API's root, `http://127.0.0.1:<port>/janus`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Janus's log.
    pub fn log_file(&self) -> &Path {
        &self.log
    }

    /// Creates VideoRoom `room`: VP8 and Opus, the audio-level and transport-wide-cc extensions, a REMB cap
    /// above any bot profile and room for any meeting.
    pub async fn create_room(&self, room: u64) -> Result<(), JanusServerError> {
        let failed = |error: BotError| JanusServerError::Api { what: format!("create room {room}"), error };
        let session = Session::create(self.http.clone(), &self.url, REQUEST_TIMEOUT).await.map_err(failed)?;
        let request = json!({
            "request": "create",
            "room": room,
            "description": format!("convene {room}"),
            "publishers": MAX_PUBLISHERS,
            "bitrate": ROOM_BITRATE_BPS,
            "fir_freq": FIR_FREQ_S,
            "audiocodec": "opus",
            "videocodec": "vp8",
            "audiolevel_ext": true,
            "transport_wide_cc_ext": true,
            "notify_joining": false,
        });
        let created = async {
            let handle = session.attach(VIDEOROOM).await?;
            Ok::<_, BotError>(session.request(handle, request, None).await?)
        }
        .await;
        // The session was only for this request: a failure to end it changes nothing (it expires).
        let _ = session.destroy().await;
        match created.map_err(failed)? {
            event if event.data.videoroom == "created" => Ok(()),
            event => Err(failed(BotError::Protocol(format!("expected created, got {}", event.data.videoroom)))),
        }
    }

    /// Kills Janus and waits for it.
    pub async fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        // A SIGKILL ends Janus at once, so the wait is short.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn wait_until_up(&mut self, server_name: &str, timeout: Duration) -> Result<(), JanusServerError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(JanusServerError::Exited { status, log: self.log.clone(), tail: log_tail(&self.log) });
            }
            match api::server_name(&self.http, &self.url, START_POLL).await {
                Ok(name) if name == server_name => return Ok(()),
                // Another Janus took the port between the check and the start.
                Ok(_) => return Err(JanusServerError::PortTaken { port: self.http_port }),
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                return Err(JanusServerError::Timeout { timeout, log: self.log.clone(), tail: log_tail(&self.log) });
            }
            tokio::time::sleep(START_POLL).await;
        }
    }
}

impl Drop for JanusServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Puts [`ICE_ADDRESS`] on a veth pair of its own, up; does nothing when it is there already.
async fn ensure_ice_interface() -> Result<(), JanusServerError> {
    let exists = || Path::new("/sys/class/net").join(ICE_INTERFACE).exists();
    if !exists() {
        let added = ip(&["link", "add", ICE_INTERFACE, "type", "veth", "peer", "name", ICE_INTERFACE_PEER]).await;
        // Another process may have added it meanwhile.
        if added.is_err() && !exists() {
            return added;
        }
    }
    ip(&["addr", "replace", &format!("{ICE_ADDRESS}/32"), "dev", ICE_INTERFACE]).await?;
    // Janus only uses an interface that is running, and a veth runs once both ends are up.
    ip(&["link", "set", ICE_INTERFACE_PEER, "up"]).await?;
    ip(&["link", "set", ICE_INTERFACE, "up"]).await
}

async fn ip(args: &[&str]) -> Result<(), JanusServerError> {
    let failed = |reason: String| JanusServerError::IceInterface { command: args.join(" "), reason };
    let output = tokio::process::Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|error| failed(format!("{error} (is iproute2 installed?)")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(failed(String::from_utf8_lossy(&output.stderr).trim().to_owned()))
    }
}

/// The last lines of the log, for an error message.
fn log_tail(log: &Path) -> String {
    let Ok(bytes) = std::fs::read(log) else { return format!("({} cannot be read)", log.display()) };
    let text = String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(LOG_TAIL_BYTES)..]);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}
