//! The `convene` command line: parses arguments, loads settings once, starts logging and runs a role.

use std::{collections::BTreeMap, path::PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use convene_domain::{CountryCode, PhoneNumber, TenantId};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::{
    people::tenants::NewTenant,
    platform::envelope::SecretKey,
    platform::settings::{SETTINGS, Settings},
    platform::telemetry,
    roles::{self, NumberCommand, Serve},
};

/// Convene: video meetings for companies, in one program.
#[derive(Debug, Parser)]
#[command(name = "convene", version, about, after_long_help = settings_help(), arg_required_else_help = true)]
pub struct Cli {
    /// Settings file (TOML); the same as CONVENE_CONFIG. Environment variables override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything in one process: the site, the API and a media node (the single-machine set-up).
    Up,
    /// Run the control plane: the site, the REST API and webhooks.
    Api,
    /// Run a media node: its UDP port, plus health and metrics over HTTP.
    Media,
    /// Bring the database schema up to date, then exit.
    Migrate,
    /// Stop the media node of the process on this machine's CONVENE_METRICS_ADDR taking new meetings (its
    /// meetings go on); with --wait, return only once it hosts none: a pre-stop hook.
    Drain {
        /// Wait until the node hosts no meeting.
        #[arg(long)]
        wait: bool,
    },
    /// Administrative tasks.
    #[command(subcommand)]
    Admin(Admin),
    /// Load the media node (or Janus, for comparison) with WebRTC bots and write the figures to DIR/result.json
    /// and a chart to DIR/chart.svg.
    #[cfg(feature = "bench")]
    Bench {
        /// The SFU to measure: convene, janus, or both (one after the other, with the same bots); or phone:
        /// the SIP gateway, with sipp calling in `--participants` callers to each of `--meetings` rooms; or
        /// tokens: the control plane, with `--participants` clients minting room tokens at once.
        #[arg(long, default_value = "convene")]
        target: convene_bench::TargetChoice,
        /// Meetings at once (joined one at a time, measuring each step).
        #[arg(long, default_value_t = 1)]
        meetings: usize,
        /// Participants per meeting.
        #[arg(long, default_value_t = 10)]
        participants: usize,
        /// Seconds measured once every meeting is in.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// The publishers' top layer: 720p or 1080p.
        #[arg(long, default_value = "720p")]
        resolution: convene_bench::Resolution,
        /// Where results go.
        #[arg(long, value_name = "DIR", default_value = "bench-results")]
        out: PathBuf,
        /// The log filter of the Convene SFU under test (written to DIR/convene.log).
        #[arg(long, value_name = "FILTER", default_value = "warn")]
        sfu_log: String,
        /// Record every meeting while measuring (Convene only), so the figures include the recorder.
        #[arg(long)]
        record: bool,
        /// The database of the Convene under test (default: SQLite in DIR). A Postgres one should be made for
        /// the run: the benchmark adds its organisation and meetings to it.
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
        /// The bots' media stack: webrtc (webrtc-rs, browser-like, about 11 µs of CPU a packet) or light
        /// (str0m, cheap enough to load the SFU to its limit), for Convene's bots and Janus's alike.
        #[arg(long, default_value = "webrtc")]
        bots: convene_bench::BotStack,
    },
    /// Size a deployment: the bandwidth of the meetings, and with a benchmark result, the nodes to run them.
    #[cfg(feature = "bench")]
    Capacity {
        /// Meetings at once.
        #[arg(long)]
        meetings: usize,
        /// Participants per meeting.
        #[arg(long)]
        participants: usize,
        /// The publishers' top layer: 720p or 1080p.
        #[arg(long, default_value = "720p")]
        resolution: convene_bench::Resolution,
        /// A result.json from `convene bench` to take the CPU cost from.
        #[arg(long, value_name = "FILE")]
        measured: Option<PathBuf>,
        /// Cores per media node.
        #[arg(long, default_value_t = 2)]
        node_cores: usize,
        /// The share of a node's CPU to plan for.
        #[arg(long, default_value_t = 0.75)]
        utilisation: f64,
    },
    /// `bench` and `capacity` in a build without them: says how to get them.
    #[cfg(not(feature = "bench"))]
    #[command(name = "bench", alias = "capacity", hide = true, disable_help_flag = true)]
    WithoutBench {
        /// Whatever was given.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum Admin {
    /// Create an organisation with its owner account and a first API key; prints them as JSON.
    CreateTenant {
        /// The organisation's name.
        #[arg(long)]
        name: String,
        /// The owner's email address (their login).
        #[arg(long)]
        owner_email: String,
        /// The owner's password: at least 8 characters, not a common one.
        #[arg(long)]
        owner_password: String,
        /// The owner's display name (default: the part of the email before the @).
        #[arg(long)]
        owner_name: Option<String>,
    },
    /// Print a new random secret key for CONVENE_SECRET_KEY (32 bytes, base64).
    GenerateSecretKey,
    /// Phone numbers for dial-in: assign one to an organisation, take one back, or list them (as JSON).
    #[command(subcommand)]
    DialInNumbers(DialInNumbers),
    /// Seal every stored private signing key with the current CONVENE_SECRET_KEY. To rotate: set the new key
    /// as CONVENE_SECRET_KEY and the old one in CONVENE_PREVIOUS_SECRET_KEYS, run this (every start does it
    /// too), then remove the old key.
    ResealKeys,
}

#[derive(Debug, Subcommand)]
enum DialInNumbers {
    /// Assign a number to an organisation: calls the SIP trunk delivers for it reach that organisation's
    /// meetings by PIN.
    Add {
        /// The organisation's id.
        #[arg(long)]
        tenant: String,
        /// The number in international form, like +15551234567.
        #[arg(long)]
        number: String,
        /// Where the number is local: two letters, like US or GB.
        #[arg(long)]
        country: String,
        /// Free to call from its country.
        #[arg(long)]
        toll_free: bool,
    },
    /// Take a number back from whichever organisation has it.
    Remove {
        /// The number.
        #[arg(long)]
        number: String,
    },
    /// Every assigned number with its organisation.
    List,
}

/// Log directives that silence webrtc-rs below errors.
#[cfg(feature = "bench")]
const QUIET_WEBRTC: &str =
    "webrtc=error,webrtc_ice=error,webrtc_dtls=error,dtls=error,webrtc_srtp=error,webrtc_mdns=error,interceptor=error";

fn settings_help() -> String {
    let width = SETTINGS.iter().map(|(name, _, _)| name.len()).max().unwrap_or(0);
    let rows: Vec<String> = SETTINGS
        .iter()
        .map(|(name, default, meaning)| format!("  {name:width$}  {meaning} [default: {default}]"))
        .collect();
    format!("Settings (environment variables, or keys of the --config file):\n{}", rows.join("\n"))
}

/// Runs the parsed command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut env: BTreeMap<String, String> = std::env::vars().collect();
    if let Some(config) = &cli.config {
        env.insert("CONVENE_CONFIG".to_owned(), config.to_string_lossy().into_owned());
    }
    let loaded = Settings::load(&env)?;
    let settings = loaded.settings;
    // The benchmark's bots run webrtc-rs in this process; its per-connection chatter is not ours to show.
    let filter = match cli.command {
        #[cfg(feature = "bench")]
        Command::Bench { .. } => format!("{},{QUIET_WEBRTC}", settings.log_filter),
        _ => settings.log_filter.clone(),
    };
    // rsipstack logs every SIP message at info: a trunk's keepalives (or a flood) would fill the logs.
    // Asking for it by name (`rsipstack=debug`) still shows them.
    let filter = if filter.contains("rsipstack") { filter } else { format!("{filter},rsipstack=warn") };
    telemetry::init(&filter, settings.log_format)?;
    for name in loaded.unknown_variables {
        tracing::warn!(variable = %name, "ignoring an environment variable that is not a Convene setting");
    }

    match cli.command {
        Command::Up => serve(Serve::All, &settings).await,
        Command::Api => serve(Serve::Api, &settings).await,
        Command::Media => serve(Serve::Media, &settings).await,
        Command::Drain { wait } => roles::drain(&settings, wait, &mut std::io::stdout()).await,
        Command::Migrate => {
            roles::migrate(&settings).await?;
            println!("The database is up to date ({}).", settings.database_url);
            Ok(())
        }
        Command::Admin(Admin::CreateTenant { name, owner_email, owner_password, owner_name }) => {
            let new = NewTenant {
                name,
                owner_email,
                owner_password: SecretString::from(owner_password),
                owner_name,
                // The operator vouches for the address, and the CLI is how a developer gets a first key.
                email_verified: true,
                first_api_key: Some("Default key".to_owned()),
            };
            roles::create_tenant(&settings, new, &mut std::io::stdout()).await
        }
        Command::Admin(Admin::GenerateSecretKey) => {
            println!("{}", SecretKey::generate()?.to_base64().expose_secret());
            Ok(())
        }
        Command::Admin(Admin::ResealKeys) => roles::reseal_keys(&settings, &mut std::io::stdout()).await,
        Command::Admin(Admin::DialInNumbers(command)) => {
            let command = match command {
                DialInNumbers::Add { tenant, number, country, toll_free } => NumberCommand::Add {
                    tenant: TenantId::parse(&tenant).context("--tenant")?,
                    number: PhoneNumber::parse(&number).context("--number")?,
                    country: CountryCode::parse(&country).context("--country")?,
                    toll_free,
                },
                DialInNumbers::Remove { number } => {
                    NumberCommand::Remove(PhoneNumber::parse(&number).context("--number")?)
                }
                DialInNumbers::List => NumberCommand::List,
            };
            roles::dial_in_numbers(&settings, command, &mut std::io::stdout()).await
        }
        #[cfg(not(feature = "bench"))]
        Command::WithoutBench { .. } => anyhow::bail!(
            "this convene was built without the benchmark (its WebRTC bots are left out of serving builds); \
             build one with it: cargo build --release -p convene-api --features bench"
        ),
        #[cfg(feature = "bench")]
        Command::Bench {
            target,
            meetings,
            participants,
            seconds,
            resolution,
            out,
            sfu_log,
            record,
            database_url,
            bots,
        } => {
            let convene = std::env::current_exe().context("cannot find the convene binary to start")?;
            let settings = SETTINGS.iter().map(|(name, _, _)| *name).collect();
            let options = convene_bench::BenchOptions {
                target,
                meetings,
                participants,
                seconds,
                resolution,
                out,
                convene,
                settings,
                sfu_log,
                record,
                database_url,
                bots,
            };
            convene_bench::run(&options).await.map(drop)
        }
        #[cfg(feature = "bench")]
        Command::Capacity { meetings, participants, resolution, measured, node_cores, utilisation } => {
            if meetings == 0 || participants < 2 || node_cores == 0 {
                anyhow::bail!("--meetings and --node-cores must be at least 1, --participants at least 2");
            }
            let measured = match measured {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                    Some(
                        serde_json::from_str(&text)
                            .with_context(|| format!("{} is not a result.json from convene bench", path.display()))?,
                    )
                }
                None => None,
            };
            let options = convene_bench::capacity::CapacityOptions {
                meetings,
                participants,
                resolution,
                measured,
                node_cores,
                utilisation,
            };
            print!("{}", convene_bench::capacity::plan(options));
            Ok(())
        }
    }
}

async fn serve(role: Serve, settings: &Settings) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    roles::serve(role, settings, shutdown, &mut std::io::stdout()).await
}

/// Cancels `shutdown` on SIGINT (Ctrl-C) or SIGTERM (systemd, Kubernetes).
async fn cancel_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
    shutdown.cancel();
}
