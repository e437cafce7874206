//! Helpers for tests that cross process boundaries: the real `convene` binary (built by `cargo xtask
//! test`, with its browser bundle) and headless Chromium from Debian's packages.

pub mod browser;
pub mod mail;
pub mod relay;

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// Chromium's flags for tests on this machine: no sandbox (tests run as root), no network chatter (the
/// machine has no network), fake camera and microphone, a fixed window for comparable screenshots.
pub const CHROMIUM_ARGS: [&str; 11] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--window-size=1280,800",
];

/// How long a page may take to load and hydrate in the headless browser.
const PAGE_BUDGET: Duration = Duration::from_secs(10);
/// Hard stop for one browser run, so a hung Chromium fails the test instead of hanging it.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// The `convene` binary under test: `CONVENE_BIN`, or the one cargo built beside this test.
pub fn convene_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("CONVENE_BIN") {
        return Ok(PathBuf::from(path));
    }
    // target/<profile>/deps/<test> -> target/<profile>/convene
    let exe = std::env::current_exe()?;
    let binary = exe.parent().and_then(|deps| deps.parent()).map(|profile| profile.join("convene"));
    match binary {
        Some(binary) if binary.is_file() => Ok(binary),
        _ => bail!("no convene binary beside {}: run the tests with `cargo xtask test`", exe.display()),
    }
}

/// A running `convene up` (or `convene api` with `convene media` nodes), stopped when dropped.
pub struct Convene {
    child: Child,
    /// Where it listens, e.g. `127.0.0.1:41234`.
    pub address: String,
    /// Its internal listener (metrics, the operator's API), e.g. `127.0.0.1:41235`.
    pub metrics_address: String,
    /// The role it runs: `up`, or `api` with `nodes`.
    role: &'static str,
    /// Its media nodes, in the `api` role.
    nodes: Vec<MediaNode>,
    /// Its mail.
    pub mailbox: mail::Mailbox,
    /// The API key of the tenant made before it started ([`Convene::up_with_tenant`]).
    api_key: Option<String>,
    http: reqwest::Client,
    data_dir: tempfile::TempDir,
    /// The settings it was started with beyond the test defaults, for a restart.
    settings: Vec<(String, String)>,
}

/// `convene` with none of the caller's own `CONVENE_*` settings.
fn convene_command() -> anyhow::Result<Command> {
    let mut command = Command::new(convene_binary()?);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("CONVENE_")) {
        command.env_remove(name);
    }
    Ok(command)
}

/// A `convene media` process of a [`Convene`] control plane.
struct MediaNode {
    child: Child,
    /// Its id (its outbox's).
    id: String,
    _data_dir: tempfile::TempDir,
}

/// The node secret of test clusters.
const NODE_SECRET: &str = "the-e2e-node-secret-of-forty-characters!";

impl Convene {
    /// Starts `convene up` on free ports with a private data dir and waits for its banner. Its public URLs
    /// name the real port (`http://localhost:<port>`, `http://meet.localhost:<port>`), so links in its mail
    /// work in a browser.
    pub async fn up() -> anyhow::Result<Self> {
        Self::start("up", tempfile::tempdir()?, None, &[]).await
    }

    /// [`Convene::up_with_tenant`] as a control plane (`convene api`) with `nodes` media nodes (`convene
    /// media`) beside it, each reporting to it; returns once every node has reported.
    pub async fn cluster_with_tenant(nodes: usize) -> anyhow::Result<Self> {
        Self::cluster_with_tenant_and(nodes, &[]).await
    }

    /// [`Convene::cluster_with_tenant`] with `settings` (`CONVENE_*` and `AWS_*` variables) for the control
    /// plane and every node.
    pub async fn cluster_with_tenant_and(nodes: usize, settings: &[(&str, String)]) -> anyhow::Result<Self> {
        let mut plane = settings.to_vec();
        plane.push(("CONVENE_NODE_SECRET", NODE_SECRET.to_owned()));
        let mut convene = Self::with_tenant("api", &plane).await?;
        for _ in 0..nodes {
            convene.start_node(settings).await?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while convene.media_nodes().await?.iter().filter(|node| node["state"] == "alive").count() < nodes {
            if Instant::now() > deadline {
                bail!("the media nodes never reported to the control plane");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(convene)
    }

    async fn start_node(&mut self, settings: &[(&str, String)]) -> anyhow::Result<()> {
        let data_dir = tempfile::tempdir()?;
        let mut child = convene_command()?
            .arg("media")
            .envs(settings.iter().map(|(name, value)| (*name, value.as_str())))
            .env("CONVENE_CONTROL_URL", format!("http://{}", self.address))
            .env("CONVENE_NODE_SECRET", NODE_SECRET)
            .env("CONVENE_DATA_DIR", data_dir.path())
            .env("CONVENE_HTTP_ADDR", "127.0.0.1:0")
            .env("CONVENE_METRICS_ADDR", "127.0.0.1:0")
            .env("CONVENE_MEDIA_UDP_ADDR", "127.0.0.1:0")
            .env("CONVENE_MEDIA_SHARDS", "1")
            .env("CONVENE_LOG", "warn")
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting convene media")?;
        wait_for_banner(&mut child, "media").await?;
        let id = std::fs::read_to_string(data_dir.path().join("media-outbox/node-id")).context("the node's id")?;
        self.nodes.push(MediaNode { child, id: id.trim().to_owned(), _data_dir: data_dir });
        Ok(())
    }

    /// The control plane's media nodes as `GET /operator/media-nodes` lists them.
    pub async fn media_nodes(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let url = format!("http://{}/operator/media-nodes", self.metrics_address);
        let listed: serde_json::Value = self.http.get(url).send().await?.error_for_status()?.json().await?;
        Ok(listed["nodes"].as_array().cloned().unwrap_or_default())
    }

    /// Kills, as a crash would (SIGKILL), the media node that hosts rooms; fails if none does.
    pub async fn kill_node_with_rooms(&mut self) -> anyhow::Result<()> {
        let listed = self.media_nodes().await?;
        let busy = listed.iter().find(|node| node["placed_rooms"].as_u64().unwrap_or(0) > 0);
        let id = busy.and_then(|node| node["id"].as_str()).context("no media node hosts a room")?;
        let index = self.nodes.iter().position(|node| node.id == id).context("the busy node is not ours")?;
        let mut node = self.nodes.remove(index);
        node.child.kill().await.context("killing the media node")?;
        Ok(())
    }

    /// [`Convene::up`] with a tenant made first by `convene admin create-tenant`, whose API key mints room
    /// tokens ([`Convene::join_url`]) and makes rooms ([`Convene::create_room`]).
    pub async fn up_with_tenant() -> anyhow::Result<Self> {
        Self::up_with_tenant_and(&[]).await
    }

    /// [`Convene::up_with_tenant`] with `settings` (`CONVENE_*` variables) over the test defaults.
    pub async fn up_with_tenant_and(settings: &[(&str, String)]) -> anyhow::Result<Self> {
        Self::with_tenant("up", settings).await
    }

    async fn with_tenant(role: &'static str, settings: &[(&str, String)]) -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir()?;
        let created = convene_command()?
            .args(["admin", "create-tenant", "--name", "Acme", "--owner-email", "owner@acme.example"])
            .args(["--owner-password", "correct horse battery"])
            .env("CONVENE_DATA_DIR", data_dir.path())
            .env("CONVENE_LOG", "warn")
            .output()
            .await
            .context("running convene admin create-tenant")?;
        if !created.status.success() {
            bail!("convene admin create-tenant failed: {}", String::from_utf8_lossy(&created.stderr));
        }
        let created: serde_json::Value = serde_json::from_slice(&created.stdout).context("its JSON")?;
        let api_key = created["api_key"].as_str().context("no api_key in its JSON")?.to_owned();
        Self::start(role, data_dir, Some(api_key), settings).await
    }

    async fn start(
        role: &'static str,
        data_dir: tempfile::TempDir,
        api_key: Option<String>,
        settings: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let (mailbox, smtp) = mail::Mailbox::for_app(data_dir.path().join("mail"));
        let mut settings: Vec<(String, String)> =
            settings.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect();
        if let Some(smtp) = smtp {
            settings.push(("CONVENE_SMTP_URL".to_owned(), smtp));
        }
        settings.push(("CONVENE_MAIL_FROM".to_owned(), mailbox.sender()));
        let (child, (address, metrics_address)) = launch(role, data_dir.path(), port, &settings).await?;
        let http = reqwest::Client::new();
        let nodes = Vec::new();
        Ok(Self { child, address, metrics_address, role, nodes, mailbox, api_key, http, data_dir, settings })
    }

    /// Kills the server as a crash would (SIGKILL: nothing is finished or flushed), then starts it again on
    /// the same data directory and port.
    pub async fn crash_and_restart(&mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("killing convene")?;
        let port = self.port().parse().context("convene's port")?;
        let (child, (address, metrics_address)) = launch(self.role, self.data_dir.path(), port, &self.settings).await?;
        (self.child, self.address, self.metrics_address) = (child, address, metrics_address);
        Ok(())
    }

    /// The port it listens on, for URLs on other host names (`meet.localhost`).
    pub fn port(&self) -> &str {
        self.address.rsplit(':').next().unwrap_or_default()
    }

    /// The main site's URL for `path`.
    pub fn site(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.port())
    }

    /// Its data directory (recordings, mail files, the outbox).
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// Calls the REST API as the tenant; returns the status and the answer's JSON (`null` when empty).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let key = self.api_key.as_deref().context("this convene has no tenant: start it with up_with_tenant")?;
        let mut request = self.http.request(method, format!("http://{}{path}", self.address)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let answer = if text.is_empty() { serde_json::Value::Null } else { serde_json::from_str(&text)? };
        Ok((status, answer))
    }

    /// Posts to the REST API as the tenant; returns the answer's JSON, failing on any refusal.
    async fn api(&self, path: &str, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let (status, answer) = self.call(reqwest::Method::POST, path, Some(body)).await?;
        if !(200..300).contains(&status) {
            bail!("POST {path} answered {status}: {answer}");
        }
        Ok(answer)
    }

    /// Makes a room with settings (`{"name": "...", "lobby": true}`, as `POST /v1/rooms` takes them).
    pub async fn create_room(&self, room: serde_json::Value) -> anyhow::Result<()> {
        self.api("/v1/rooms", room).await.map(drop)
    }

    /// A meeting link for `name` in `room`, on the meet host.
    pub async fn join_url(&self, room: &str, name: &str, moderator: bool) -> anyhow::Result<String> {
        self.token_url(
            serde_json::json!({ "room": room, "user": { "id": name, "name": name }, "moderator": moderator }),
        )
        .await
    }

    /// A meeting link for a token request as `POST /v1/meeting-tokens` takes it (with `features`, say).
    pub async fn token_url(&self, request: serde_json::Value) -> anyhow::Result<String> {
        let minted = self.api("/v1/meeting-tokens", request).await?;
        Ok(minted["join_url"].as_str().context("no join_url")?.to_owned())
    }

    /// Runs `convene admin <args>` on its data directory and settings, as an operator would beside it;
    /// returns the JSON it prints.
    pub async fn admin(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let output = convene_command()?
            .arg("admin")
            .args(args)
            .envs(self.settings.iter().map(|(name, value)| (name.as_str(), value.as_str())))
            .env("CONVENE_DATA_DIR", self.data_dir.path())
            .env("CONVENE_LOG", "warn")
            .output()
            .await
            .context("running convene admin")?;
        if !output.status.success() {
            bail!("convene admin {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        serde_json::from_slice(&output.stdout).context("its JSON")
    }

    /// Stops it with SIGTERM, as an operator would, and checks it exits cleanly.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().context("convene already exited")?;
        let killed = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await?;
        if !killed.success() {
            bail!("kill -TERM {pid} failed");
        }
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await??;
        if !status.success() {
            bail!("convene exited with {status}");
        }
        Ok(())
    }
}

/// Starts `convene <role>` on `data_dir` at `port` with `settings` over the test defaults and waits for its
/// banner; answers the process and the addresses of its listeners (public, internal).
async fn launch(
    role: &str,
    data_dir: &std::path::Path,
    port: u16,
    settings: &[(String, String)],
) -> anyhow::Result<(Child, (String, String))> {
    let mut child = convene_command()?
        .arg(role)
        .env("CONVENE_DATA_DIR", data_dir)
        .env("CONVENE_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("CONVENE_PUBLIC_URL", format!("http://localhost:{port}"))
        .env("CONVENE_MEET_URL", format!("http://meet.localhost:{port}"))
        .env("CONVENE_MEDIA_UDP_ADDR", "127.0.0.1:0")
        .env("CONVENE_SIP_ADDR", "127.0.0.1:0")
        .env("CONVENE_METRICS_ADDR", "127.0.0.1:0")
        .env("CONVENE_LOG", "warn")
        .envs(settings.iter().map(|(name, value)| (name.as_str(), value.as_str())))
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting convene {role}"))?;
    let addresses = wait_for_banner(&mut child, role).await?;
    Ok((child, addresses))
}

/// Reads a starting `convene`'s banner until it names its listeners (public, internal), then keeps reading
/// its output so the server never writes into a closed pipe.
async fn wait_for_banner(child: &mut Child, role: &str) -> anyhow::Result<(String, String)> {
    let stdout = child.stdout.take().context("convene's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut address = None;
    while Instant::now() < deadline {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await??;
        let Some(line) = line else { bail!("convene {role} exited before it was ready") };
        let line = line.trim();
        if let Some(listening) = line.strip_prefix("listening on http://") {
            address = Some(listening.to_owned());
        }
        let metrics = line.strip_prefix("metrics:").and_then(|rest| rest.split_whitespace().next());
        if let (Some(address), Some(metrics)) = (&address, metrics) {
            let metrics = metrics.trim_start_matches("http://").trim_end_matches("/metrics").to_owned();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok((address.clone(), metrics));
        }
    }
    bail!("convene {role} printed no addresses in time")
}

/// Runs of Chromium per page before giving up: on a loaded 2-core machine a headless run now and then exits
/// successfully without printing anything, and a second run of the same page is then fine.
const BROWSER_ATTEMPTS: usize = 3;

/// Loads `url` in headless Chromium, lets scripts run, and returns the DOM as it then stands.
pub async fn rendered_dom(url: &str) -> anyhow::Result<String> {
    for _ in 1..BROWSER_ATTEMPTS {
        let dom = dump_dom(url).await?;
        if !dom.trim().is_empty() {
            return Ok(dom);
        }
    }
    let dom = dump_dom(url).await?;
    if dom.trim().is_empty() {
        bail!("Chromium printed no DOM for {url} in {BROWSER_ATTEMPTS} runs");
    }
    Ok(dom)
}

async fn dump_dom(url: &str) -> anyhow::Result<String> {
    let profile = tempfile::tempdir()?;
    let run = Command::new("chromium")
        .args(CHROMIUM_ARGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={}", PAGE_BUDGET.as_millis()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output =
        tokio::time::timeout(BROWSER_TIMEOUT, run).await.context("Chromium hung")?.context("running chromium")?;
    if !output.status.success() {
        bail!("chromium exited with {}", output.status);
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
