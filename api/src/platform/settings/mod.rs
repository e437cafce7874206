//! Typed settings, loaded once at start from an optional TOML file and the `CONVENE_*` environment variables
//! (the environment wins). Nothing else in the program reads the environment.
//!
//! Every value is parsed here, at the edge; a bad one stops the program with a message that names the
//! setting, where it came from and what a good value looks like. Secrets are `SecretString`s, so `Debug`
//! and logs show them redacted.

pub mod plans;

use std::{
    collections::BTreeMap,
    fmt,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use convene_domain::Region;
use convene_media::gateway::{AllowedPeers, RtpPorts, Trunk};

use self::plans::{DEFAULT_PLANS, Plans};
use crate::platform::envelope::SecretKey;

/// The settings, documented once: name, default and meaning. `--help` and the README show this table.
pub const SETTINGS: &[(&str, &str, &str)] = &[
    ("CONVENE_CONFIG", "(none)", "TOML file with any of the settings below, keys in lowercase without the prefix"),
    ("CONVENE_HTTP_ADDR", "127.0.0.1:3000", "address the HTTP server listens on"),
    (
        "CONVENE_METRICS_ADDR",
        "127.0.0.1:9090",
        "internal listener for operators: /metrics, /healthz, /readyz (keep it off the public network)",
    ),
    ("CONVENE_PUBLIC_URL", "http://localhost:3000", "the main site's URL as people reach it"),
    ("CONVENE_MEET_URL", "http://meet.localhost:3000", "the meet host's URL; its host must differ from the site's"),
    ("CONVENE_DATA_DIR", "./data", "where the SQLite database, mail files and recordings are kept"),
    ("CONVENE_DATABASE_URL", "SQLite in the data dir", "postgres://user:password@host/db or sqlite://path"),
    (
        "CONVENE_SECRET_KEY",
        "(SQLite: generated into the data dir)",
        "32 random bytes in base64 that seal the stored private signing keys; required with Postgres",
    ),
    ("CONVENE_PREVIOUS_SECRET_KEYS", "(none)", "comma-separated earlier secret keys, still opened during a rotation"),
    ("CONVENE_SMTP_URL", "(unset: mail goes to .eml files)", "smtp://host:port or smtps://user:password@host"),
    ("CONVENE_MAIL_FROM", "Convene <no-reply@localhost>", "sender of the mail Convene sends"),
    ("CONVENE_MEDIA_UDP_ADDR", "127.0.0.1:10000", "UDP address of the media node's first shard (shard i: port + i)"),
    ("CONVENE_MEDIA_PUBLIC_IP", "(the UDP address's IP)", "IP address clients send media to, when not the bound one"),
    (
        "CONVENE_MEDIA_PUBLIC_PORT",
        "(the UDP address's port)",
        "port clients send shard 0's media to, when a NAT maps it",
    ),
    ("CONVENE_MEDIA_SHARDS", "0 (one per core)", "media threads, each with its own UDP port"),
    (
        "CONVENE_CONTROL_URL",
        "(unset)",
        "a `convene media` node's control plane: the http:// URL of `convene api`, on the private network",
    ),
    (
        "CONVENE_NODE_SECRET",
        "(unset: no media nodes)",
        "secret shared by the control plane and its media nodes, at least 32 characters",
    ),
    ("CONVENE_NODE_URL", "(http:// and CONVENE_HTTP_ADDR)", "how the control plane reaches this media node's HTTP"),
    ("CONVENE_NODE_REGION", "default", "the media node's region (letters, digits, hyphens)"),
    ("CONVENE_SIP_ADDR", "127.0.0.1:5060", "address of the SIP gateway (a media node runs one only when set)"),
    (
        "CONVENE_SIP_ALLOW",
        "(unset: any address)",
        "comma-separated addresses and CIDR ranges SIP is taken from (trunks, SBCs, other media nodes); the rest is dropped",
    ),
    (
        "CONVENE_SIP_RTP_PORTS",
        "(unset: any free port)",
        "first-last UDP ports calls' audio uses with trunks (one a call), for firewalls: 20000-20999",
    ),
    (
        "CONVENE_SIP_TRUNK",
        "(unset: no calling out)",
        "sip:host[:port][;transport=udp|tcp] of the SIP trunk (outbound proxy) that phones are called through",
    ),
    ("CONVENE_SIP_TRUNK_USERNAME", "(unset)", "user name for the trunk's digest authentication"),
    ("CONVENE_SIP_TRUNK_PASSWORD", "(unset)", "password for the trunk's digest authentication"),
    (
        "CONVENE_RECORDINGS_QUOTA_GB",
        "20",
        "most disk the recordings in the data dir may take; a recording that reaches it stops, the meeting goes on",
    ),
    (
        "CONVENE_RECORDINGS_URL",
        "(unset: the data dir)",
        "s3://bucket/prefix: composed recordings go to S3-compatible storage, reached with the standard AWS_* \
         variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP) or \
         the instance's or pod's role",
    ),
    (
        "CONVENE_STREAMING_ALLOW_PRIVATE",
        "0",
        "1 lets live streams go to loopback and private addresses (development, tests); else only public ones",
    ),
    (
        "CONVENE_WEBHOOKS_ALLOW_LOOPBACK",
        "0",
        "1 lets webhook endpoints be http:// and on loopback or private addresses (development, tests); else https to \
         public ones only",
    ),
    ("CONVENE_STRIPE_SECRET_KEY", "(unset: billing off)", "Stripe secret key"),
    ("CONVENE_STRIPE_WEBHOOK_SECRET", "(unset)", "Stripe webhook signing secret"),
    ("CONVENE_STRIPE_API_BASE", "https://api.stripe.com", "Stripe API base URL (tests point it at a fake)"),
    ("CONVENE_PLANS", "(the bundled Free plan)", "TOML file of the plans: limits, Stripe prices, grace period"),
    ("CONVENE_USAGE_REPORT_SECS", "60", "how often participant-minutes are counted and sent to Stripe"),
    ("CONVENE_SITE_DIR", "<binary dir>/../site", "built browser bundle (pkg/) from `cargo xtask`"),
    ("CONVENE_LOG", "info", "log filter, e.g. `info,convene_api=debug`"),
    ("CONVENE_LOG_FORMAT", "text", "`text` for people, `json` for log collectors"),
    ("CONVENE_SHUTDOWN_TIMEOUT_SECS", "30", "how long a graceful shutdown waits for in-flight requests"),
];

/// Everything the program is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where the HTTP server listens.
    pub http_addr: SocketAddr,
    /// Where the operators' listener (metrics) listens.
    pub metrics_addr: SocketAddr,
    /// The main site's public URL.
    pub public_url: Url,
    /// The meet host's public URL.
    pub meet_url: Url,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The database to use.
    pub database_url: DatabaseUrl,
    /// The key that seals private signing keys; `None` means the data dir's own (SQLite only).
    pub secret_key: Option<SecretKey>,
    /// Earlier secret keys, opened but never sealed with, while a rotation re-seals.
    pub previous_secret_keys: Vec<SecretKey>,
    /// Outgoing mail server; `None` writes mail to files.
    pub smtp_url: Option<SecretString>,
    /// The sender of outgoing mail.
    pub mail_from: String,
    /// The media node's UDP address.
    pub media_udp_addr: SocketAddr,
    /// The IP address clients send media to, when it is not the bound one.
    pub media_public_ip: Option<IpAddr>,
    /// The port clients send shard 0's media to, when a NAT maps it to the bound one.
    pub media_public_port: Option<u16>,
    /// Media shards (threads); 0 for one per core.
    pub media_shards: usize,
    /// Media nodes and their control plane.
    pub nodes: NodeSettings,
    /// The SIP gateway's address.
    pub sip_addr: SocketAddr,
    /// Where SIP may come from; `None`: anywhere.
    pub sip_allow: Option<AllowedPeers>,
    /// The UDP ports calls' audio uses with trunks; `None`: any.
    pub sip_rtp_ports: Option<RtpPorts>,
    /// The SIP trunk phones are called through, with its credentials; `None`: no calling out.
    pub sip_trunk: Option<Trunk>,
    /// The most bytes recordings may take on this node's disk.
    pub recordings_quota: u64,
    /// Where composed recordings are kept, when not on this node's disk.
    pub recordings_bucket: Option<BucketSettings>,
    /// Live streams may go to loopback and private addresses.
    pub streaming_allow_private: bool,
    /// Webhook endpoints may be plain http and on loopback or private addresses.
    pub webhooks_allow_loopback: bool,
    /// Stripe access.
    pub stripe: StripeSettings,
    /// The plans tenants can be on.
    pub plans: Plans,
    /// How often participant-minutes are counted and their meter events sent.
    pub usage_report_interval: Duration,
    /// The built browser bundle.
    pub site_dir: PathBuf,
    /// The log filter directive.
    pub log_filter: String,
    /// How logs are written.
    pub log_format: LogFormat,
    /// How long graceful shutdown waits.
    pub shutdown_timeout: Duration,
}

impl Settings {
    /// Where this process's media node keeps recordings.
    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }
}

/// An S3-compatible bucket for recordings: `CONVENE_RECORDINGS_URL` and the `AWS_*` variables beside it.
#[derive(Debug, Clone)]
pub struct BucketSettings {
    /// The bucket's name.
    pub bucket: String,
    /// The folder inside it, without slashes at either end (empty for the top).
    pub prefix: String,
    /// The `AWS_*` variables, lowercased (`aws_region`, `aws_endpoint_url`, ...); secret, since keys are among them.
    pub options: Vec<(String, SecretString)>,
}

impl BucketSettings {
    /// Parses `s3://bucket/prefix`, with `options` from the environment.
    fn parse(value: &str, options: Vec<(String, SecretString)>) -> Result<Self, String> {
        let url = Url::parse(value).map_err(|error| format!("is `{value}`, not a URL ({error})"))?;
        let bucket = url.host_str().unwrap_or_default().to_owned();
        // S3's naming rules: 3 to 63 lowercase letters, digits, dots and hyphens.
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b".-".contains(&byte));
        if url.scheme() != "s3" || !bucket_ok || url.query().is_some() || !url.username().is_empty() {
            return Err(format!("is `{value}`; use s3://bucket or s3://bucket/folder (credentials go in AWS_*)"));
        }
        let prefix = url.path().trim_matches('/').to_owned();
        Ok(Self { bucket, prefix, options })
    }
}

/// How media nodes and the control plane find and trust each other.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// The control plane a `convene media` node reports to.
    pub control_url: Option<Url>,
    /// The secret both sides hold; without it the control plane takes no nodes.
    pub secret: Option<SecretString>,
    /// How the control plane reaches this node's HTTP listener; `None`: `http://` and its bound address.
    pub url: Option<Url>,
    /// The node's region.
    pub region: Region,
    /// A media node runs the phone gateway only when `CONVENE_SIP_ADDR` is set: nodes sharing a host would
    /// otherwise compete for its default port.
    pub phone_gateway: bool,
}

/// Stripe credentials and endpoint.
#[derive(Debug, Clone)]
pub struct StripeSettings {
    /// The secret API key; billing is off without one.
    pub secret_key: Option<SecretString>,
    /// The webhook signing secret.
    pub webhook_secret: Option<SecretString>,
    /// The API base URL.
    pub api_base: Url,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Which database engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default.
    Sqlite,
    /// Production.
    Postgres,
}

/// A database URL: secret (it may hold a password), with a redacted form for messages.
#[derive(Clone)]
pub struct DatabaseUrl {
    url: SecretString,
    redacted: String,
    backend: Backend,
}

impl DatabaseUrl {
    /// Parses a `postgres://`, `postgresql://` or `sqlite:` URL.
    pub fn parse(text: &str) -> Result<Self, String> {
        let backend = if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Backend::Postgres
        } else if text.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err("must start with postgres://, postgresql:// or sqlite:".to_owned());
        };
        let redacted = match (backend, Url::parse(text)) {
            (Backend::Postgres, Ok(mut url)) => {
                if url.password().is_some() {
                    // Setting a password on a URL that already has one cannot fail.
                    let _ = url.set_password(Some("***"));
                }
                url.to_string()
            }
            (Backend::Postgres, Err(error)) => return Err(format!("is not a valid URL ({error})")),
            (Backend::Sqlite, _) => text.to_owned(),
        };
        Ok(Self { url: SecretString::from(text.to_owned()), redacted, backend })
    }

    /// The SQLite database file inside `data_dir`, created when missing.
    pub fn sqlite_in(data_dir: &Path) -> Self {
        let url = format!("sqlite://{}?mode=rwc", data_dir.join("convene.db").display());
        Self { redacted: url.clone(), url: SecretString::from(url), backend: Backend::Sqlite }
    }

    /// The full URL, password included: for the database driver only.
    pub fn expose(&self) -> &str {
        self.url.expose_secret()
    }

    /// The engine.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted)
    }
}

/// A setting with a bad value, or an unreadable settings file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(String);

impl SettingsError {
    /// A setting problem found outside this module (for example by the log filter parser).
    pub fn new(message: String) -> Self {
        Self(message)
    }
}

/// Where a raw value came from, for error messages.
#[derive(Debug, Clone)]
enum Origin {
    Environment,
    File(PathBuf),
}

/// The result of loading: the settings, plus `CONVENE_*` variables that match no setting (likely typos),
/// which the caller logs once logging is up.
#[derive(Debug)]
pub struct Loaded {
    /// The parsed settings.
    pub settings: Settings,
    /// Unrecognised `CONVENE_*` environment variable names.
    pub unknown_variables: Vec<String>,
}

/// Variables with our prefix that belong to tools around the program, not to it.
const NOT_SETTINGS: &[&str] =
    &["CONVENE_TEST_DATABASE_URL", "CONVENE_TEST_SMTP_URL", "CONVENE_TEST_MAILDIR", "CONVENE_BIN"];

impl Settings {
    /// Loads from an environment map: the process's in `convene`, a test's own map in tests (so no test
    /// mutates the process environment). `CONVENE_CONFIG` in the map names the optional file.
    pub fn load(env: &BTreeMap<String, String>) -> Result<Loaded, SettingsError> {
        let mut raw: BTreeMap<String, (String, Origin)> = BTreeMap::new();
        if let Some(path) = env.get("CONVENE_CONFIG").filter(|path| !path.is_empty()) {
            for (key, value) in read_file(Path::new(path))? {
                raw.insert(format!("CONVENE_{}", key.to_uppercase()), (value, Origin::File(PathBuf::from(path))));
            }
        }
        let known = |name: &str| SETTINGS.iter().any(|(setting, _, _)| *setting == name);
        let mut unknown_variables = Vec::new();
        for (name, value) in env {
            if !name.starts_with("CONVENE_") || NOT_SETTINGS.contains(&name.as_str()) {
                continue;
            }
            if known(name) {
                raw.insert(name.clone(), (value.clone(), Origin::Environment));
            } else {
                unknown_variables.push(name.clone());
            }
        }
        if let Some(name) = raw.keys().find(|name| !known(name)) {
            let (_, origin) = &raw[name];
            return Err(error(name, origin, "is not a setting; see `convene --help` for the list"));
        }
        let aws = env
            .iter()
            .filter(|(name, _)| name.starts_with("AWS_"))
            .map(|(name, value)| (name.to_ascii_lowercase(), SecretString::from(value.clone())))
            .collect();
        let settings = Parser { raw, aws }.parse()?;
        Ok(Loaded { settings, unknown_variables })
    }
}

fn read_file(path: &Path) -> Result<BTreeMap<String, String>, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        SettingsError(format!("CONVENE_CONFIG: cannot read the settings file {}: {source}", path.display()))
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|source| SettingsError(format!("CONVENE_CONFIG: {} is not valid TOML: {source}", path.display())))?;
    table
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                toml::Value::String(text) => text,
                toml::Value::Integer(number) => number.to_string(),
                other => {
                    return Err(SettingsError(format!(
                        "{key} in {}: expected a string or a number, found {}",
                        path.display(),
                        other.type_str()
                    )));
                }
            };
            Ok((key, text))
        })
        .collect()
}

fn error(name: &str, origin: &Origin, message: impl fmt::Display) -> SettingsError {
    match origin {
        Origin::Environment => SettingsError(format!("{name} (from the environment) {message}")),
        Origin::File(path) => {
            let key = name.trim_start_matches("CONVENE_").to_lowercase();
            SettingsError(format!("{key} in {} ({name}) {message}", path.display()))
        }
    }
}

struct Parser {
    raw: BTreeMap<String, (String, Origin)>,
    /// The `AWS_*` variables, for object storage.
    aws: Vec<(String, SecretString)>,
}

impl Parser {
    /// Parses one setting with `parse`, or returns `default` when it is absent or empty.
    fn get<T>(
        &self,
        name: &str,
        default: impl FnOnce() -> T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, SettingsError> {
        match self.raw.get(name).filter(|(value, _)| !value.trim().is_empty()) {
            None => Ok(default()),
            Some((value, origin)) => parse(value.trim()).map_err(|message| error(name, origin, message)),
        }
    }

    fn origin(&self, name: &str) -> Origin {
        self.raw.get(name).map_or(Origin::Environment, |(_, origin)| origin.clone())
    }

    fn optional_secret(&self, name: &str) -> Result<Option<SecretString>, SettingsError> {
        self.get(name, || None, |value| Ok(Some(SecretString::from(value.to_owned()))))
    }

    fn parse(&self) -> Result<Settings, SettingsError> {
        let data_dir = self.get("CONVENE_DATA_DIR", || PathBuf::from("./data"), |value| Ok(PathBuf::from(value)))?;
        let public_url = self.get("CONVENE_PUBLIC_URL", || default_url("http://localhost:3000"), parse_site_url)?;
        let meet_url = self.get("CONVENE_MEET_URL", || default_url("http://meet.localhost:3000"), parse_site_url)?;
        if public_url.host_str() == meet_url.host_str() {
            let origin = self.origin("CONVENE_MEET_URL");
            return Err(error("CONVENE_MEET_URL", &origin, "must use a different host than CONVENE_PUBLIC_URL"));
        }
        let stripe = StripeSettings {
            secret_key: self.optional_secret("CONVENE_STRIPE_SECRET_KEY")?,
            webhook_secret: self.optional_secret("CONVENE_STRIPE_WEBHOOK_SECRET")?,
            api_base: self.get("CONVENE_STRIPE_API_BASE", || default_url("https://api.stripe.com"), parse_http_url)?,
        };
        if stripe.secret_key.is_some() && stripe.webhook_secret.is_none() {
            let origin = self.origin("CONVENE_STRIPE_SECRET_KEY");
            let message =
                "needs CONVENE_STRIPE_WEBHOOK_SECRET too: subscriptions change only through verified webhooks";
            return Err(error("CONVENE_STRIPE_SECRET_KEY", &origin, message));
        }
        let trunk_user = self.get("CONVENE_SIP_TRUNK_USERNAME", || None, |value| Ok(Some(value.to_owned())))?;
        let trunk_password = self.optional_secret("CONVENE_SIP_TRUNK_PASSWORD")?;
        let trunk_credential = match (trunk_user, trunk_password) {
            (Some(user), Some(password)) => Some((user, password.expose_secret().to_owned())),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                let origin = self.origin("CONVENE_SIP_TRUNK_USERNAME");
                let message = "and CONVENE_SIP_TRUNK_PASSWORD go together: set both for digest authentication";
                return Err(error("CONVENE_SIP_TRUNK_USERNAME", &origin, message));
            }
        };
        Ok(Settings {
            http_addr: self.get("CONVENE_HTTP_ADDR", || ([127, 0, 0, 1], 3000).into(), parse_socket_addr)?,
            metrics_addr: self.get("CONVENE_METRICS_ADDR", || ([127, 0, 0, 1], 9090).into(), parse_socket_addr)?,
            database_url: self.get("CONVENE_DATABASE_URL", || DatabaseUrl::sqlite_in(&data_dir), DatabaseUrl::parse)?,
            secret_key: self.get("CONVENE_SECRET_KEY", || None, |value| SecretKey::parse(value).map(Some))?,
            previous_secret_keys: self.get("CONVENE_PREVIOUS_SECRET_KEYS", Vec::new, |value| {
                value.split(',').filter(|key| !key.trim().is_empty()).map(SecretKey::parse).collect()
            })?,
            smtp_url: self.get(
                "CONVENE_SMTP_URL",
                || None,
                |value| {
                    let scheme = value.split("://").next().unwrap_or_default();
                    match scheme {
                        "smtp" | "smtps" => Ok(Some(SecretString::from(value.to_owned()))),
                        _ => Err("must start with smtp:// or smtps://".to_owned()),
                    }
                },
            )?,
            mail_from: self.get(
                "CONVENE_MAIL_FROM",
                || "Convene <no-reply@localhost>".to_owned(),
                |value| Ok(value.to_owned()),
            )?,
            media_udp_addr: self.get("CONVENE_MEDIA_UDP_ADDR", || ([127, 0, 0, 1], 10000).into(), parse_socket_addr)?,
            media_public_ip: self.get(
                "CONVENE_MEDIA_PUBLIC_IP",
                || None,
                |value| value.parse().map(Some).map_err(|_| "must be an IP address like 203.0.113.7".to_owned()),
            )?,
            media_public_port: self.get(
                "CONVENE_MEDIA_PUBLIC_PORT",
                || None,
                |value| match value.parse::<u16>() {
                    Ok(port) if port > 0 => Ok(Some(port)),
                    _ => Err("must be a UDP port from 1 to 65535".to_owned()),
                },
            )?,
            media_shards: self.get(
                "CONVENE_MEDIA_SHARDS",
                || 0,
                |value| match value.parse::<usize>() {
                    Ok(shards) if shards <= 256 => Ok(shards),
                    _ => Err("must be a number of threads from 0 (one per core) to 256".to_owned()),
                },
            )?,
            nodes: NodeSettings {
                control_url: self.get("CONVENE_CONTROL_URL", || None, |value| parse_private_url(value).map(Some))?,
                secret: self.get("CONVENE_NODE_SECRET", || None, parse_node_secret)?,
                url: self.get("CONVENE_NODE_URL", || None, |value| parse_private_url(value).map(Some))?,
                region: self.get("CONVENE_NODE_REGION", Region::default, |value| {
                    Region::parse(value).map_err(|error| error.to_string())
                })?,
                phone_gateway: self.raw.get("CONVENE_SIP_ADDR").is_some_and(|(value, _)| !value.trim().is_empty()),
            },
            sip_addr: self.get("CONVENE_SIP_ADDR", || ([127, 0, 0, 1], 5060).into(), parse_socket_addr)?,
            sip_allow: self.get("CONVENE_SIP_ALLOW", || None, |value| AllowedPeers::parse(value).map(Some))?,
            sip_rtp_ports: self.get("CONVENE_SIP_RTP_PORTS", || None, |value| RtpPorts::parse(value).map(Some))?,
            sip_trunk: self.get(
                "CONVENE_SIP_TRUNK",
                || None,
                |value| Trunk::parse(value, trunk_credential).map(Some),
            )?,
            recordings_quota: self.get(
                "CONVENE_RECORDINGS_QUOTA_GB",
                || 20 << 30,
                |value| match value.parse::<u64>() {
                    Ok(gigabytes) if (1..=1_000_000).contains(&gigabytes) => Ok(gigabytes << 30),
                    _ => Err(format!("is `{value}`; use a whole number of gigabytes from 1 to 1000000")),
                },
            )?,
            recordings_bucket: self.get(
                "CONVENE_RECORDINGS_URL",
                || None,
                |value| BucketSettings::parse(value, self.aws.clone()).map(Some),
            )?,
            streaming_allow_private: self.get("CONVENE_STREAMING_ALLOW_PRIVATE", || false, parse_allowance)?,
            webhooks_allow_loopback: self.get("CONVENE_WEBHOOKS_ALLOW_LOOPBACK", || false, parse_allowance)?,
            stripe,
            plans: self.get(
                "CONVENE_PLANS",
                || Plans::parse(DEFAULT_PLANS).unwrap_or_else(|error| unreachable!("the bundled plans: {error}")),
                |path| {
                    let text = std::fs::read_to_string(path).map_err(|error| format!("cannot read {path}: {error}"))?;
                    Plans::parse(&text).map_err(|error| format!("({path}) {error}"))
                },
            )?,
            usage_report_interval: self.get(
                "CONVENE_USAGE_REPORT_SECS",
                || Duration::from_secs(60),
                |value| match value.parse::<u64>() {
                    Ok(seconds) if (1..=3600).contains(&seconds) => Ok(Duration::from_secs(seconds)),
                    _ => Err(format!("is `{value}`; use a whole number of seconds from 1 to 3600")),
                },
            )?,
            site_dir: self.get("CONVENE_SITE_DIR", default_site_dir, |value| Ok(PathBuf::from(value)))?,
            log_filter: self.get("CONVENE_LOG", || "info".to_owned(), |value| Ok(value.to_owned()))?,
            log_format: self.get(
                "CONVENE_LOG_FORMAT",
                || LogFormat::Text,
                |value| match value {
                    "text" => Ok(LogFormat::Text),
                    "json" => Ok(LogFormat::Json),
                    _ => Err(format!("is `{value}`; use `text` or `json`")),
                },
            )?,
            shutdown_timeout: self.get(
                "CONVENE_SHUTDOWN_TIMEOUT_SECS",
                || Duration::from_secs(30),
                |value| match value.parse::<u64>() {
                    Ok(seconds) if seconds <= 3600 => Ok(Duration::from_secs(seconds)),
                    _ => Err(format!("is `{value}`; use a whole number of seconds from 0 to 3600")),
                },
            )?,
            data_dir,
            public_url,
            meet_url,
        })
    }
}

fn default_url(text: &str) -> Url {
    // The defaults are literals that parse; a failure here is a programming error caught by the tests.
    Url::parse(text).unwrap_or_else(|error| unreachable!("default URL {text}: {error}"))
}

/// The bundle sits beside the binary's folder: `target/release/convene` serves `target/site`.
fn default_site_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|target| target.join("site")))
        .unwrap_or_else(|| PathBuf::from("site"))
}

fn parse_socket_addr(value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|_| format!("is `{value}`, not an address like 127.0.0.1:3000 or [::1]:3000"))
}

fn parse_http_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|error| format!("is `{value}`, not a URL ({error})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("is `{value}`; use an http:// or https:// URL with a host"));
    }
    Ok(url)
}

/// A URL between the control plane and its media nodes: plain `http://` on the private network (the node
/// secret travels in it, so it must not cross the internet), an origin without a path.
fn parse_private_url(value: &str) -> Result<Url, String> {
    let url = parse_site_url(value)?;
    if url.scheme() != "http" {
        return Err(format!("is `{value}`; nodes and the control plane talk http:// on the private network"));
    }
    Ok(url)
}

/// At least 32 characters: it lets a process into every meeting's signalling.
fn parse_node_secret(value: &str) -> Result<Option<SecretString>, String> {
    if value.chars().count() < 32 {
        return Err("is too short; use at least 32 random characters (openssl rand -base64 32)".to_owned());
    }
    Ok(Some(SecretString::from(value.to_owned())))
}

/// `1` allows private addresses, `0` does not.
fn parse_allowance(value: &str) -> Result<bool, String> {
    match value {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(format!("is `{value}`; use 1 to allow private addresses or 0 not to")),
    }
}

/// A site URL is an origin: scheme, host and optional port, no path.
fn parse_site_url(value: &str) -> Result<Url, String> {
    let url = parse_http_url(value)?;
    if url.path() != "/" || url.query().is_some() {
        return Err(format!("is `{value}`; use just scheme, host and port, like https://example.com"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let env = pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
        Settings::load(&env).map(|loaded| loaded.settings)
    }

    #[test]
    fn defaults_match_the_documented_contract() {
        let settings = load(&[]).expect("defaults load");
        assert_eq!(settings.http_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(settings.public_url.as_str(), "http://localhost:3000/");
        assert_eq!(settings.meet_url.as_str(), "http://meet.localhost:3000/");
        assert_eq!(settings.data_dir, PathBuf::from("./data"));
        assert_eq!(settings.database_url.backend(), Backend::Sqlite);
        assert_eq!(settings.database_url.to_string(), "sqlite://./data/convene.db?mode=rwc");
        assert_eq!(settings.media_udp_addr.to_string(), "127.0.0.1:10000");
        assert_eq!(settings.sip_addr.to_string(), "127.0.0.1:5060");
        assert!(settings.smtp_url.is_none() && settings.stripe.secret_key.is_none());
        assert_eq!(settings.log_format, LogFormat::Text);
    }

    #[test]
    fn bad_values_name_the_setting_and_the_fix() {
        let cases = [
            ("CONVENE_HTTP_ADDR", "localhost", "CONVENE_HTTP_ADDR (from the environment) is `localhost`"),
            ("CONVENE_DATABASE_URL", "mysql://x", "must start with postgres://"),
            ("CONVENE_PUBLIC_URL", "ftp://x", "use an http:// or https:// URL"),
            ("CONVENE_MEET_URL", "http://meet.localhost/path", "just scheme, host and port"),
            ("CONVENE_MEET_URL", "http://localhost:4000", "different host than CONVENE_PUBLIC_URL"),
            ("CONVENE_LOG_FORMAT", "xml", "use `text` or `json`"),
            ("CONVENE_SHUTDOWN_TIMEOUT_SECS", "-1", "whole number of seconds"),
            ("CONVENE_MEDIA_PUBLIC_PORT", "0", "a UDP port from 1 to 65535"),
            ("CONVENE_MEDIA_PUBLIC_PORT", "70000", "a UDP port from 1 to 65535"),
            ("CONVENE_SMTP_URL", "mail.example.com", "smtp://"),
            ("CONVENE_STRIPE_SECRET_KEY", "sk_test_x", "needs CONVENE_STRIPE_WEBHOOK_SECRET"),
            ("CONVENE_PLANS", "/nonexistent/plans.toml", "cannot read /nonexistent/plans.toml"),
            ("CONVENE_USAGE_REPORT_SECS", "0", "from 1 to 3600"),
            ("CONVENE_RECORDINGS_URL", "https://s3.amazonaws.com/recordings", "use s3://bucket"),
            ("CONVENE_RECORDINGS_URL", "s3://Recordings_2026", "use s3://bucket"),
            ("CONVENE_RECORDINGS_URL", "s3://key:secret@recordings", "credentials go in AWS_*"),
        ];
        for (name, value, expected) in cases {
            let message = load(&[(name, value)]).expect_err(name).to_string();
            assert!(message.contains(expected) && message.contains(name), "{name}={value}: {message}");
        }
    }

    #[test]
    fn the_environment_overrides_the_file_and_file_errors_name_the_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("convene.toml");
        std::fs::write(&file, "http_addr = \"127.0.0.1:4000\"\ndata_dir = \"/srv/convene\"\n").expect("write");
        let config = file.to_str().expect("utf-8 path");
        let settings = load(&[("CONVENE_CONFIG", config), ("CONVENE_HTTP_ADDR", "127.0.0.1:5000")]).expect("loads");
        assert_eq!(settings.http_addr.to_string(), "127.0.0.1:5000");
        assert_eq!(settings.data_dir, PathBuf::from("/srv/convene"));

        std::fs::write(&file, "http_addr = \"nope\"\n").expect("write");
        let message = load(&[("CONVENE_CONFIG", config)]).expect_err("bad file value").to_string();
        assert!(message.starts_with("http_addr in ") && message.contains("(CONVENE_HTTP_ADDR)"), "{message}");

        std::fs::write(&file, "htp_addr = \"127.0.0.1:1\"\n").expect("write");
        let message = load(&[("CONVENE_CONFIG", config)]).expect_err("unknown key").to_string();
        assert!(message.contains("htp_addr") && message.contains("is not a setting"), "{message}");

        std::fs::write(&file, "http_addr = [").expect("write");
        let message = load(&[("CONVENE_CONFIG", config)]).expect_err("bad toml").to_string();
        assert!(message.contains("is not valid TOML"), "{message}");

        let missing = dir.path().join("missing.toml");
        let message = load(&[("CONVENE_CONFIG", missing.to_str().expect("utf-8"))]).expect_err("missing").to_string();
        assert!(message.contains("cannot read the settings file"), "{message}");
    }

    #[test]
    fn secrets_never_reach_debug_output_or_messages() {
        let settings = load(&[
            ("CONVENE_DATABASE_URL", "postgres://convene:hunter2@db.internal/convene"),
            ("CONVENE_STRIPE_SECRET_KEY", "sk_test_hunter2"),
            ("CONVENE_STRIPE_WEBHOOK_SECRET", "whsec_hunter2"),
            ("CONVENE_SMTP_URL", "smtps://mailer:hunter2@smtp.example.com"),
            ("CONVENE_RECORDINGS_URL", "s3://acme-recordings/meetings/2026/"),
            ("AWS_SECRET_ACCESS_KEY", "hunter2"),
            ("CONVENE_SIP_TRUNK", "sip:trunk.example.com;transport=tcp"),
            ("CONVENE_SIP_TRUNK_USERNAME", "convene"),
            ("CONVENE_SIP_TRUNK_PASSWORD", "hunter2"),
        ])
        .expect("loads");
        let bucket = settings.recordings_bucket.as_ref().expect("a bucket");
        assert_eq!((bucket.bucket.as_str(), bucket.prefix.as_str()), ("acme-recordings", "meetings/2026"));
        assert_eq!(bucket.options.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(), ["aws_secret_access_key"]);
        let debug = format!("{settings:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert_eq!(settings.database_url.to_string(), "postgres://convene:***@db.internal/convene");
        assert!(settings.database_url.expose().contains("hunter2"));

        let key = "aHVudGVyMmh1bnRlcjJodW50ZXIyaHVudGVyMmh1bnQ=";
        let previous = format!("{key}, {key}");
        let settings =
            load(&[("CONVENE_SECRET_KEY", key), ("CONVENE_PREVIOUS_SECRET_KEYS", previous.as_str())]).expect("loads");
        assert!(settings.secret_key.is_some() && settings.previous_secret_keys.len() == 2);
        assert!(!format!("{settings:?}").contains(key));
        let error = load(&[("CONVENE_SECRET_KEY", "hunter2")]).expect_err("not 32 bytes").to_string();
        assert!(error.contains("CONVENE_SECRET_KEY") && !error.contains("hunter2"), "{error}");
        let error = load(&[("CONVENE_SIP_TRUNK_PASSWORD", "hunter2")]).expect_err("no user name").to_string();
        assert!(error.contains("CONVENE_SIP_TRUNK_USERNAME") && !error.contains("hunter2"), "{error}");
        let error = load(&[("CONVENE_SIP_RTP_PORTS", "80-90")]).expect_err("privileged").to_string();
        assert!(error.contains("CONVENE_SIP_RTP_PORTS"), "{error}");
        let error = load(&[("CONVENE_SIP_ALLOW", "10.0.0.0/33")]).expect_err("no such range").to_string();
        assert!(error.contains("CONVENE_SIP_ALLOW") && error.contains("10.0.0.0/33"), "{error}");
        let error = load(&[("CONVENE_SIP_TRUNK", "pbx.example.com")]).expect_err("not sip:").to_string();
        assert!(error.contains("CONVENE_SIP_TRUNK"), "{error}");
    }

    #[test]
    fn the_readme_documents_every_setting() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README");
        for (name, _, _) in SETTINGS {
            assert!(readme.contains(&format!("| `{name}` |")), "README.md's settings table lacks {name}");
        }
    }

    #[test]
    fn unknown_prefixed_variables_are_reported_not_fatal() {
        let env = [("CONVENE_HTTP_ADR", "x"), ("CONVENE_TEST_DATABASE_URL", "y")]
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        let loaded = Settings::load(&env).expect("loads");
        assert_eq!(loaded.unknown_variables, vec!["CONVENE_HTTP_ADR".to_owned()]);
    }
}
