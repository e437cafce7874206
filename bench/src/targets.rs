//! The SFUs under test, each started as a process of its own, and the bots that join them.

use std::{path::Path, process::Stdio, time::Duration};

use anyhow::{Context, bail};
use convene_bots::{BotOptions, BotStats, DelayHistogram, JanusBot, JanusConfig, JanusOptions, JanusServer};
use serde::Deserialize;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::{BenchOptions, Target, measure::PacketCosts};

/// The longest wait for an SFU to start, and for one bot to join.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const JOIN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a stopping SFU may take before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Janus's RTP ports for the run.
const JANUS_RTP_PORTS: (u16, u16) = (20_000, 40_000);

/// A bot in a meeting, whichever SFU it is on.
pub(crate) enum Participant {
    Convene(convene_bots::Bot),
    Janus(JanusBot),
}

impl Participant {
    pub(crate) fn stats(&self) -> BotStats {
        match self {
            Self::Convene(bot) => bot.stats(),
            Self::Janus(bot) => bot.stats(),
        }
    }

    pub(crate) fn delays(&self) -> DelayHistogram {
        match self {
            Self::Convene(bot) => bot.delays(),
            Self::Janus(bot) => bot.delays(),
        }
    }

    pub(crate) fn reset_stats(&self) {
        match self {
            Self::Convene(bot) => bot.reset_stats(),
            Self::Janus(bot) => bot.reset_stats(),
        }
    }

    pub(crate) async fn leave(self) {
        match self {
            Self::Convene(bot) => bot.leave().await,
            Self::Janus(bot) => bot.leave().await,
        }
    }
}

/// The SFU under test.
pub(crate) enum Sfu {
    Convene(Box<ConveneSfu>),
    Janus(JanusSfu),
}

impl Sfu {
    pub(crate) async fn start(target: Target, options: &BenchOptions, dir: &Path) -> anyhow::Result<Self> {
        match target {
            Target::Convene => Ok(Self::Convene(Box::new(ConveneSfu::start(options, dir).await?))),
            Target::Janus => Ok(Self::Janus(JanusSfu::start(dir).await?)),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        match self {
            Self::Convene(sfu) => sfu.pid,
            Self::Janus(sfu) => sfu.server.pid(),
        }
    }

    /// Prepares meeting `index` (Janus needs its room made; Convene makes rooms as people join).
    pub(crate) async fn open_meeting(&mut self, index: usize) -> anyhow::Result<()> {
        match self {
            Self::Convene(_) => Ok(()),
            Self::Janus(sfu) => {
                sfu.server.create_room(room_number(index)).await.context("Janus refused to create a room")
            }
        }
    }

    /// Joins participant `index` of meeting `meeting`: the first one speaks and is everyone's stage.
    pub(crate) async fn join(
        &self,
        meeting: usize,
        index: usize,
        options: &BenchOptions,
    ) -> anyhow::Result<Participant> {
        let name = participant_name(meeting, index);
        let video = Some(options.resolution.profile());
        match self {
            Self::Convene(sfu) => {
                let token = sfu.token(meeting, index, &name).await?;
                let mut bot =
                    BotOptions::new(format!("ws://{}/_signal/{}", sfu.http, room_name(meeting)), &sfu.http, token);
                bot.video = video;
                bot.speaking = index == 0;
                bot.timeout = JOIN_TIMEOUT;
                bot.stack = options.bots;
                Ok(Participant::Convene(convene_bots::Bot::join(bot).await?))
            }
            Self::Janus(sfu) => {
                let mut bot = JanusOptions::new(sfu.server.url(), room_number(meeting), name);
                bot.video = video;
                bot.speaking = index == 0;
                bot.stage = Some(participant_name(meeting, 0));
                bot.timeout = JOIN_TIMEOUT;
                bot.stack = options.bots;
                Ok(Participant::Janus(JanusBot::join(bot).await?))
            }
        }
    }

    /// Starts recording every meeting (Convene only: `BenchOptions` refuses `--record` with Janus).
    pub(crate) async fn record(&self, meetings: usize) -> anyhow::Result<()> {
        match self {
            Self::Convene(sfu) => {
                for meeting in 0..meetings {
                    sfu.record(meeting).await?;
                }
                Ok(())
            }
            Self::Janus(_) => bail!("Janus is not recorded by this benchmark"),
        }
    }

    /// Bytes of recordings in the run's data directory.
    pub(crate) fn recorded_bytes(&self, dir: &Path) -> u64 {
        match self {
            Self::Convene(_) => convene_media::recording::directory_size(&dir.join("convene-data").join("recordings")),
            Self::Janus(_) => 0,
        }
    }

    /// The media node's per-packet costs so far, from its metrics (Convene only).
    pub(crate) async fn packet_costs(&self) -> Option<PacketCosts> {
        match self {
            Self::Convene(sfu) => {
                let metrics = sfu.client.get(format!("http://{}/metrics", sfu.metrics)).send().await.ok()?;
                PacketCosts::parse(&metrics.text().await.ok()?)
            }
            Self::Janus(_) => None,
        }
    }

    pub(crate) async fn stop(self) {
        match self {
            Self::Convene(sfu) => sfu.stop().await,
            Self::Janus(sfu) => sfu.server.stop().await,
        }
    }
}

fn room_name(meeting: usize) -> String {
    format!("bench-{meeting}")
}

fn room_number(meeting: usize) -> u64 {
    1000 + meeting as u64
}

fn participant_name(meeting: usize, index: usize) -> String {
    format!("m{meeting}-p{index}")
}

/// `convene up` on a data directory of its own, with a tenant made for the run.
pub(crate) struct ConveneSfu {
    child: Child,
    pid: u32,
    /// `host:port` of its HTTP server.
    http: String,
    /// Its SIP gateway.
    sip: Option<std::net::SocketAddr>,
    /// `host:port` of its metrics listener.
    metrics: String,
    api_key: String,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct CreatedTenant {
    tenant_id: String,
    api_key: String,
}

#[derive(Deserialize)]
struct MintedToken {
    token: String,
}

impl ConveneSfu {
    pub(crate) async fn start(options: &BenchOptions, dir: &Path) -> anyhow::Result<Self> {
        let convene = &options.convene;
        let data = dir.join("convene-data");
        let _ = std::fs::remove_dir_all(&data);
        // The run's tenant may hold every meeting the benchmark can ask for.
        let plans = dir.join("plans.toml");
        std::fs::write(&plans, bench_plans()).context("cannot write the benchmark's plans")?;
        // A database outside the data directory holds sealed keys: the run seals them with a key of its own.
        let secret_key = match &options.database_url {
            Some(_) => {
                let made = Command::new(convene).args(["admin", "generate-secret-key"]).output().await?;
                anyhow::ensure!(made.status.success(), "convene admin generate-secret-key failed");
                Some(String::from_utf8_lossy(&made.stdout).trim().to_owned())
            }
            None => None,
        };
        // A free port for the metrics listener, which prints no banner line to learn it from.
        let metrics = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("no free loopback port for convene's metrics")?
            .to_string();
        let command = |args: &[&str]| {
            let mut command = Command::new(convene);
            // The run's settings only: nothing of the caller's own Convene set-up (its database, its ports).
            for name in &options.settings {
                command.env_remove(name);
            }
            command
                .args(args)
                .env("CONVENE_DATA_DIR", &data)
                .env("CONVENE_PLANS", &plans)
                .env("CONVENE_HTTP_ADDR", "127.0.0.1:0")
                .env("CONVENE_MEDIA_UDP_ADDR", "127.0.0.1:0")
                .env("CONVENE_SIP_ADDR", "127.0.0.1:0")
                .env("CONVENE_METRICS_ADDR", &metrics)
                .env("CONVENE_LOG", &options.sfu_log)
                .kill_on_drop(true);
            if let (Some(url), Some(secret_key)) = (&options.database_url, &secret_key) {
                command.env("CONVENE_DATABASE_URL", url).env("CONVENE_SECRET_KEY", secret_key);
            }
            command
        };
        // A run's own organisation, also where a database outlives runs.
        let run = format!("{:016x}", random());
        let (password, email) = (format!("bench-{run}"), format!("bench-{run}@example.com"));
        let created = command(&[
            "admin",
            "create-tenant",
            "--name",
            "Benchmark",
            "--owner-email",
            &email,
            "--owner-password",
            &password,
        ])
        .output()
        .await
        .with_context(|| format!("cannot run {}", convene.display()))?;
        if !created.status.success() {
            bail!("convene admin create-tenant failed: {}", String::from_utf8_lossy(&created.stderr));
        }
        let created: CreatedTenant =
            serde_json::from_slice(&created.stdout).context("convene admin create-tenant printed no tenant")?;
        if options.target == crate::TargetChoice::Phone {
            let number = crate::phone::NUMBER;
            let args = ["admin", "dial-in-numbers", "add", "--tenant", &created.tenant_id, "--number", number];
            let assigned = command(&args).args(["--country", "US"]).output().await?;
            if !assigned.status.success() {
                bail!("convene admin dial-in-numbers failed: {}", String::from_utf8_lossy(&assigned.stderr));
            }
        }

        let log = std::fs::File::create(dir.join("convene.log")).context("cannot create convene.log")?;
        let mut child = command(&["up"])
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot start {} up", convene.display()))?;
        let pid = child.id().context("convene up exited at once")?;
        let stdout = child.stdout.take().context("convene up has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        // The banner: the HTTP address, then the SIP gateway's, then the line that ends it.
        let mut sip = None;
        let http = tokio::time::timeout(START_TIMEOUT, async {
            let mut http = None;
            while let Some(line) = lines.next_line().await? {
                let line = line.trim();
                if let Some(address) = line.strip_prefix("listening on http://") {
                    http = Some(address.to_owned());
                } else if let Some(address) = line.strip_prefix("phone dial-in (SIP) on udp and tcp ") {
                    sip = address.parse().ok();
                } else if line.starts_with("Stop with Ctrl-C") {
                    break;
                }
            }
            Ok::<_, std::io::Error>(http)
        })
        .await
        .context("convene up did not start in time")?
        .context("reading convene up's output")?
        .with_context(|| format!("convene up stopped before serving; see {}", dir.join("convene.log").display()))?;
        // Keep reading what it prints, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, pid, http, sip, metrics, api_key: created.api_key, client: reqwest::Client::new() })
    }

    /// Where room tokens are minted, and the tenant's API key.
    pub(crate) fn token_endpoint(&self) -> (String, String) {
        (format!("http://{}/v1/meeting-tokens", self.http), self.api_key.clone())
    }

    /// The SIP gateway's address.
    pub(crate) fn sip(&self) -> Option<std::net::SocketAddr> {
        self.sip
    }

    /// Its process.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Makes room `name` and answers its dial-in PIN.
    pub(crate) async fn room_pin(&self, name: &str) -> anyhow::Result<String> {
        let base = format!("http://{}/v1/rooms", self.http);
        let made = self.client.post(&base).bearer_auth(&self.api_key).json(&serde_json::json!({ "name": name }));
        let made = made.send().await.context("cannot reach convene to make a room")?;
        if !made.status().is_success() {
            bail!("convene refused a room: {}", made.text().await.unwrap_or_default());
        }
        let dial_in = self.client.get(format!("{base}/{name}/dial-in")).bearer_auth(&self.api_key).send().await?;
        let dial_in: serde_json::Value = dial_in.json().await.context("convene's dial-in answer")?;
        dial_in["pin"].as_str().map(str::to_owned).context("the room has no PIN")
    }

    /// Whether every room `bench-<i>` (of `meetings`) has `participants` present within `timeout`.
    pub(crate) async fn wait_present(&self, meetings: usize, participants: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pending: Vec<usize> = (0..meetings).collect();
        while tokio::time::Instant::now() < deadline {
            let mut still = Vec::new();
            for meeting in pending {
                let url = format!("http://{}/v1/rooms/bench-{meeting}/presence", self.http);
                let present = match self.client.get(url).bearer_auth(&self.api_key).send().await {
                    Ok(response) => response.json::<serde_json::Value>().await.ok(),
                    Err(_) => None,
                };
                let count = present.and_then(|body| body["participants"].as_array().map(Vec::len)).unwrap_or(0);
                if count < participants {
                    still.push(meeting);
                }
            }
            if still.is_empty() {
                return true;
            }
            pending = still;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }

    async fn token(&self, meeting: usize, index: usize, name: &str) -> anyhow::Result<String> {
        let body = serde_json::json!({
            "room": room_name(meeting),
            "user": { "id": name, "name": name },
            "moderator": index == 0,
        });
        let response = self
            .client
            .post(format!("http://{}/v1/meeting-tokens", self.http))
            .bearer_auth(&self.api_key)
            .json(&body)
            .send()
            .await
            .context("cannot reach convene for a token")?;
        if !response.status().is_success() {
            bail!("convene refused a token: {}", response.text().await.unwrap_or_default());
        }
        Ok(response.json::<MintedToken>().await.context("convene's token answer")?.token)
    }

    async fn record(&self, meeting: usize) -> anyhow::Result<()> {
        let response = self
            .client
            .post(format!("http://{}/v1/rooms/{}/recording", self.http, room_name(meeting)))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .context("cannot reach convene to record")?;
        if !response.status().is_success() {
            bail!("convene refused to record: {}", response.text().await.unwrap_or_default());
        }
        Ok(())
    }

    /// SIGTERM, as an operator would, then a kill if it does not stop in time.
    pub(crate) async fn stop(mut self) {
        let terminated = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status().await;
        let stopped = terminated.is_ok() && tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await.is_ok();
        if !stopped {
            let _ = self.child.kill().await;
        }
    }
}

/// Janus with a configuration written for the run.
pub(crate) struct JanusSfu {
    server: JanusServer,
}

impl JanusSfu {
    async fn start(dir: &Path) -> anyhow::Result<Self> {
        let config = dir.join("janus");
        let _ = std::fs::remove_dir_all(&config);
        // A port the kernel just handed out, free a moment ago: Janus binds it itself.
        let http_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .context("no free port for Janus")?
            .port();
        let server = JanusServer::start(JanusConfig::new(&config, http_port, JANUS_RTP_PORTS))
            .await
            .context("cannot start Janus (cargo xtask test installs Debian's janus package)")?;
        Ok(Self { server })
    }
}

fn bench_plans() -> String {
    format!(
        "default = \"bench\"\ngrace_period_days = 1\nmeter_event_name = \"participant_minutes\"\n\n[[plan]]\nid = \"bench\"\nname = \"Benchmark\"\nparticipants_per_meeting = {}\nconcurrent_meetings = {}\nincluded_minutes = 100000000\nrecording = true\ndial_in = true\n",
        crate::MAX_PARTICIPANTS,
        crate::MAX_MEETINGS
    )
}

fn random() -> u64 {
    let mut bytes = [0u8; 8];
    // A failed read leaves zeros: the password is for a throw-away tenant on loopback.
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}
