//! The process roles: `up` (everything), `api` (site + control plane), `media` (a media node) and the
//! one-shot `migrate` and `admin` commands. Each role checks its inputs in an order that fails fast and
//! leaves nothing half-done: ports, then the data directory, then the database, then serving.

use std::{io::Write, net::SocketAddr, path::Path, sync::Arc};

use anyhow::Context;
use convene_media::{
    MediaMetrics, MediaNode, NodeConfig,
    gateway::{DialRequests, Dialer, Gateway, GatewayConfig, PhoneDirectory, Trunk},
};
use sea_orm::DatabaseConnection;
use secrecy::SecretString;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    billing::{
        Billing,
        metrics::BillingMetrics,
        stripe::{StripeApi, StripeClient},
    },
    http::AppState,
    http::csrf::OwnOrigins,
    http::routes::health::Dependencies,
    http::routes::site::Site,
    http::routes::{
        auth::CookiePolicy,
        backend::SiteBackend,
        signal::{NodeServices, PasswordGuesses},
        v1::MeetUrl,
    },
    http::server::{self, HttpApp, SiteServices},
    meetings::admission::Admission,
    meetings::dial_in::{self, DialInService},
    meetings::recordings::{
        RecordingService,
        storage::{Bucket, Storage},
    },
    meetings::room_commands::{HostedRooms, RoomCommands},
    meetings::room_sessions::SessionRecorder,
    meetings::room_tokens,
    meetings::scheduled::MeetingService,
    nodes::{
        client::{ControlPlane, GatewayAddress, PhoneLine},
        proxy::MediaNodes,
        recordings::ShipTracks,
        wire::Heartbeat,
    },
    people::accounts::Accounts,
    people::team::TeamService,
    people::tenants::{self, NewTenant},
    platform::db,
    platform::envelope::Envelope,
    platform::mail::{self, MailRelay},
    platform::metrics::Metrics,
    platform::settings::{Backend, Settings},
    webhooks::{delivery::Reach, endpoints::WebhookService},
};

/// The publishers' full simulcast layer the allocator sizes tiles against (a 720p stage; 1080p publishers
/// still get their top layer on a stage).
const TOP_HEIGHT: u32 = 720;
/// Phone calls one process takes at once (the gateway answers 503 beyond).
const SIP_MAX_CALLS: usize = 1_000;

/// Which parts a serving process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serve {
    /// Site, API and media node in one process.
    All,
    /// Site and API.
    Api,
    /// A media node.
    Media,
}

/// A started role: its bound addresses, and the tasks that serve until shutdown.
#[derive(Debug)]
pub struct Started {
    /// The HTTP server's address (the real port when the setting asked for port 0).
    pub http_addr: SocketAddr,
    /// The operators' listener (metrics and probes).
    pub metrics_addr: SocketAddr,
    /// The media node's UDP address, for roles that run one.
    pub media_addr: Option<SocketAddr>,
    /// The SIP gateway's address (UDP and TCP), for the role that hosts rooms.
    pub sip_addr: Option<SocketAddr>,
    http: JoinHandle<std::io::Result<()>>,
    media: Option<JoinHandle<()>>,
    sip: Option<JoinHandle<()>>,
    /// Counts participant-minutes and sends them to Stripe until shutdown.
    usage: Option<JoinHandle<()>>,
    /// Sends the mail outbox until shutdown.
    mail: Option<JoinHandle<()>>,
    /// Composes recordings where the database is and recordings are made (here, or on media nodes).
    composer: Option<JoinHandle<()>>,
    /// Delivers webhooks until shutdown.
    webhooks: Option<JoinHandle<()>>,
    shutdown: CancellationToken,
    rooms: Option<convene_media::rooms::Rooms>,
    /// Ends once the rooms are gone and what they reported is on disk (delivered, if the database answers).
    outbox: Option<convene_media::outbox::Running>,
    shutdown_timeout: std::time::Duration,
}

/// Starts a serving role; it serves until `shutdown` is cancelled. Ports are bound first, then the data
/// directory and database are checked, so any failure leaves nothing behind.
pub async fn start(role: Serve, settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<Started> {
    // Boxed: starting every part holds more state than a caller's future should carry.
    Box::pin(start_parts(role, settings, shutdown)).await
}

async fn start_parts(role: Serve, settings: &Settings, shutdown: CancellationToken) -> anyhow::Result<Started> {
    let listener = server::bind(settings.http_addr).context("CONVENE_HTTP_ADDR")?;
    let http_addr = listener.local_addr().context("reading the HTTP listener's address")?;
    let internal = server::bind(settings.metrics_addr).context("CONVENE_METRICS_ADDR")?;
    let metrics_addr = internal.local_addr().context("reading the metrics listener's address")?;
    let mut metrics = Metrics::new();
    let media_metrics = (role != Serve::Api).then(|| MediaMetrics::register(&mut metrics.registry));
    let media = if let Some(media_metrics) = media_metrics.clone() {
        let config = NodeConfig {
            udp_addr: settings.media_udp_addr,
            public_ip: settings.media_public_ip,
            public_port: settings.media_public_port,
            shards: settings.media_shards,
            top_height: TOP_HEIGHT,
        };
        Some(MediaNode::bind(config, media_metrics).context("CONVENE_MEDIA_UDP_ADDR")?)
    } else {
        None
    };
    let media_addr = media.as_ref().map(MediaNode::local_addr);
    let media_health = media.as_ref().map(MediaNode::health);
    let plane = media.as_ref().map(MediaNode::plane);

    // Media nodes never touch the database: only the control-plane roles open it.
    let uses_database = role != Serve::Media;
    let database = if uses_database {
        ensure_writable_dir(&settings.data_dir)?;
        // Boxed, like the gateway's start: connecting holds large state this future need not carry.
        Some(Box::pin(open_database(settings)).await?)
    } else {
        None
    };
    // Phones are called through the trunk by the gateway, which runs where rooms are hosted: `up`, and media
    // nodes that run one.
    let gateway_here = role == Serve::All || (role == Serve::Media && settings.nodes.phone_gateway);
    let (mut dialer, dial_requests) = match &settings.sip_trunk {
        Some(_) if gateway_here => {
            let (dialer, requests) = convene_media::gateway::dialer();
            (Some(dialer), Some(requests))
        }
        _ => (None, None),
    };
    let site = match &database {
        Some(db) => {
            let plane = plane.clone().filter(|_| role == Serve::All).map(|plane| (plane, dialer.take()));
            let envelope = Box::pin(sealing_envelope(settings, db)).await?;
            // A control plane without rooms of its own has media nodes, if they have a secret to come with.
            let node_secret = settings.nodes.secret.clone().filter(|_| role == Serve::Api);
            if role == Serve::Api && node_secret.is_none() {
                tracing::warn!(
                    "CONVENE_NODE_SECRET is not set: no media node can report here, so no meeting can be held"
                );
            }
            let hosts = (plane, node_secret);
            Some(site_services(settings, (db.clone(), envelope), &shutdown, &mut metrics.registry, hosts)?)
        }
        None => None,
    };
    // A media node's rooms, reporting to its control plane.
    let node = match (plane.filter(|_| role == Serve::Media), media_metrics) {
        (Some(plane), Some(media_metrics)) => {
            let media = (plane, media_metrics, dialer.take());
            Some(start_node(settings, media, http_addr, &shutdown, &mut metrics.registry)?)
        }
        _ => None,
    };
    if let (Some(db), Some((site, ..))) = (&database, &site)
        && site.state.nodes.is_some()
    {
        tokio::spawn(crate::nodes::registry::run_sweeper(db.clone(), shutdown.clone()));
    }

    let media = media.map(|node| tokio::spawn(node.run(shutdown.clone())));
    // Usage is counted where the database is, once per process; the outbox makes extra processes harmless.
    let usage = site.as_ref().map(|(site, ..)| {
        tokio::spawn(site.state.billing.meter().run(settings.usage_report_interval, shutdown.clone()))
    });
    // Where recordings reach the database: made here, or by media nodes through the bucket.
    let composer = site
        .as_ref()
        .filter(|(site, ..)| site.state.rooms.is_some() || site.state.nodes.is_some())
        .map(|(site, ..)| tokio::spawn(site.state.recordings.clone().run_composer(shutdown.clone())));
    // Every control-plane process delivers webhooks; claims keep two from sending the same delivery.
    let webhooks = site.as_ref().map(|(site, ..)| tokio::spawn(site.state.webhooks.deliverer().run(shutdown.clone())));
    let (node, node_outbox) = node.unzip();
    let (site, outbox, mail) = match site {
        Some((site, outbox, relay)) => (Some(site), outbox, Some(tokio::spawn(relay.run(shutdown.clone())))),
        None => (None, node_outbox, None),
    };
    let rooms = site
        .as_ref()
        .and_then(|site| site.state.rooms.clone())
        .or_else(|| node.as_ref().map(|node| node.hosted.rooms.clone()));
    // Callers join rooms where rooms are hosted: `up` asks its database about them, a media node (with
    // CONVENE_SIP_ADDR set) its control plane. Boxed: the gateway's start-up state would swell this future.
    let media_ip = media_addr.map_or(settings.media_udp_addr.ip(), |addr| addr.ip());
    let calling_out = settings.sip_trunk.clone().zip(dial_requests);
    let (sip_addr, sip) = match (&site, &node, &rooms) {
        (Some(site), _, Some(rooms)) => {
            let directory = site.state.admission.clone();
            let (addr, _, task) =
                Box::pin(start_gateway(settings, (media_ip, calling_out), directory, rooms, &shutdown)).await?;
            (Some(addr), Some(task))
        }
        (None, Some(node), Some(rooms)) if settings.nodes.phone_gateway => {
            let directory = node.phone_line.clone();
            let (addr, advertised, task) =
                Box::pin(start_gateway(settings, (media_ip, calling_out), directory, rooms, &shutdown)).await?;
            // Heartbeats carry it from now on, so other nodes' gateways can pass callers here.
            let _ = node.gateway_address.set(advertised);
            (Some(addr), Some(task))
        }
        _ => (None, None),
    };
    let dependencies = Dependencies { database, media: media_addr, rooms: rooms.clone(), media_health };
    let metrics = Arc::new(metrics);
    let operators = server::serve_internal(internal, dependencies.clone(), metrics.clone(), shutdown.clone());
    let app = HttpApp { dependencies, metrics, site, node };
    let public = server::serve(listener, app, shutdown.clone(), settings.shutdown_timeout);
    let http = tokio::spawn(async move {
        let (public, operators) = tokio::join!(public, operators);
        public.and(operators)
    });
    tracing::info!(%http_addr, %metrics_addr, ?media_addr, ?role, "serving");
    Ok(Started {
        http_addr,
        metrics_addr,
        media_addr,
        sip_addr,
        http,
        media,
        sip,
        usage,
        mail,
        composer,
        webhooks,
        shutdown,
        rooms,
        outbox,
        shutdown_timeout: settings.shutdown_timeout,
    })
}

impl Started {
    /// Drain mode: rooms already running go on, no new room starts here, and `/readyz` answers 503 so
    /// placement and load balancers send new meetings elsewhere.
    pub fn drain(&self) {
        if let Some(rooms) = &self.rooms {
            rooms.drain();
        }
    }

    /// Waits until the role has shut down: the HTTP server has finished its in-flight requests and the
    /// media node has stopped.
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.http.await.context("the HTTP server task failed")?;
        // The HTTP server only returns on shutdown or a fatal error; either way the media node stops too.
        self.shutdown.cancel();
        if let Some(media) = self.media {
            media.await.context("the media node task failed")?;
        }
        if let Some(sip) = self.sip {
            sip.await.context("the SIP gateway task failed")?;
        }
        if let Some(usage) = self.usage {
            usage.await.context("the usage meter task failed")?;
        }
        if let Some(mail) = self.mail {
            mail.await.context("the mail relay task failed")?;
        }
        if let Some(composer) = self.composer {
            composer.await.context("the recording composer task failed")?;
        }
        if let Some(webhooks) = self.webhooks {
            webhooks.await.context("the webhook deliveries task failed")?;
        }
        drop(self.rooms);
        if let Some(outbox) = self.outbox
            && tokio::time::timeout(self.shutdown_timeout, outbox.finish()).await.is_err()
        {
            tracing::warn!("the media outbox was still delivering at shutdown; the rest goes out at the next start");
        }
        served.context("the HTTP server stopped with an error")?;
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

/// Runs a serving role until `shutdown` is cancelled, writing the start-up message for people to `banner`.
pub async fn serve(
    role: Serve,
    settings: &Settings,
    shutdown: CancellationToken,
    banner: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let started = start(role, settings, shutdown).await?;
    if let Some(rooms) = started.rooms.clone() {
        tokio::spawn(drain_on_signal(rooms));
    }
    // The banner is for people; a closed stdout (a supervisor that stopped reading) must not stop the server.
    if let Err(error) = write_banner(
        banner,
        role,
        settings,
        (started.http_addr, started.metrics_addr),
        (started.media_addr, started.sip_addr),
    ) {
        tracing::warn!(%error, "could not print the start-up message");
    }
    started.wait().await
}

/// Drains on SIGUSR1 (`kill -USR1 <pid>`): the step before stopping a node without cutting meetings.
async fn drain_on_signal(rooms: convene_media::rooms::Rooms) {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()) {
        Ok(mut signal) => {
            if signal.recv().await.is_some() {
                tracing::info!("SIGUSR1: draining; no new rooms, running rooms continue");
                rooms.drain();
            }
        }
        Err(error) => tracing::warn!(%error, "cannot listen for SIGUSR1; drain mode is unavailable"),
    }
}

/// How often `convene drain --wait` asks whether the node still hosts meetings.
const DRAIN_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// `convene drain`: asks the local process's media node, on its internal listener, to take no new meetings;
/// with `wait`, returns once it hosts none.
pub async fn drain(settings: &Settings, wait: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct State {
        rooms: i64,
        participants: i64,
    }
    async fn answer(response: reqwest::Result<reqwest::Response>, url: &str) -> anyhow::Result<State> {
        let response = response.with_context(|| format!("no media node answers at {url} (CONVENE_METRICS_ADDR)"))?;
        anyhow::ensure!(response.status().is_success(), "{url} answered {}: is this a media node?", response.status());
        response.json::<State>().await.context("reading the node's answer")
    }
    let mut addr = settings.metrics_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}/operator/drain");
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build()?;
    let mut state = answer(http.post(&url).send().await, &url).await?;
    writeln!(out, "Draining: no new meetings here; {} running with {} people.", state.rooms, state.participants)?;
    while wait && state.rooms > 0 {
        tokio::time::sleep(DRAIN_POLL).await;
        state = answer(http.get(&url).send().await, &url).await?;
    }
    if wait {
        writeln!(out, "No meeting is left on this node.")?;
    }
    Ok(())
}

/// `convene migrate`: brings the schema up to date.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    ensure_writable_dir(&settings.data_dir)?;
    open_database(settings).await?;
    Ok(())
}

/// `convene admin create-tenant`: prints the new tenant as JSON on stdout.
pub async fn create_tenant(settings: &Settings, new: NewTenant, out: &mut dyn Write) -> anyhow::Result<()> {
    ensure_writable_dir(&settings.data_dir)?;
    let db = open_database(settings).await?;
    let created = tenants::create_tenant(&db, new).await?;
    serde_json::to_writer_pretty(&mut *out, &created)?;
    writeln!(out)?;
    Ok(())
}

/// What `convene admin dial-in-numbers` does.
#[derive(Debug)]
pub enum NumberCommand {
    /// Assigns a number to a tenant.
    Add {
        /// The tenant.
        tenant: convene_domain::TenantId,
        /// The number.
        number: convene_domain::PhoneNumber,
        /// Where it is local.
        country: convene_domain::CountryCode,
        /// Free to call.
        toll_free: bool,
    },
    /// Takes a number back.
    Remove(convene_domain::PhoneNumber),
    /// Lists every assigned number.
    List,
}

/// `convene admin dial-in-numbers`: the operator's dial-in numbers, printed as JSON.
pub async fn dial_in_numbers(settings: &Settings, command: NumberCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    ensure_writable_dir(&settings.data_dir)?;
    let db = open_database(settings).await?;
    let answer = match command {
        NumberCommand::Add { tenant, number, country, toll_free } => {
            serde_json::to_value(dial_in::assign(&db, tenant, &number, country, toll_free).await?)?
        }
        NumberCommand::Remove(number) => {
            dial_in::release(&db, &number).await.with_context(|| format!("{number} is not assigned"))?;
            serde_json::json!({ "removed": number })
        }
        NumberCommand::List => serde_json::json!({ "numbers": dial_in::assigned(&db).await? }),
    };
    serde_json::to_writer_pretty(&mut *out, &answer)?;
    writeln!(out)?;
    Ok(())
}

/// The envelope that seals private signing keys, with every stored key moved under its current secret key
/// (keys in clear from before sealing existed, and keys sealed with a previous secret key in a rotation).
async fn sealing_envelope(settings: &Settings, db: &DatabaseConnection) -> anyhow::Result<Envelope> {
    let envelope = Envelope::for_settings(settings)?;
    let resealed = room_tokens::reseal_private_keys(db, &envelope).await?;
    if resealed > 0 {
        tracing::info!(resealed, "sealed stored private signing keys with the current secret key");
    }
    Ok(envelope)
}

/// `convene admin reseal-keys`: seals every stored private key with the current `CONVENE_SECRET_KEY`, the
/// step of a rotation after which the previous secret keys can be dropped.
pub async fn reseal_keys(settings: &Settings, out: &mut dyn Write) -> anyhow::Result<()> {
    ensure_writable_dir(&settings.data_dir)?;
    let db = open_database(settings).await?;
    let envelope = Envelope::for_settings(settings)?;
    let resealed = room_tokens::reseal_private_keys(&db, &envelope).await?;
    writeln!(out, "Resealed {resealed} private signing keys with the current secret key ({envelope:?}).")?;
    Ok(())
}

async fn open_database(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let db = db::connect(&settings.database_url).await?;
    db::migrate(&db, &settings.database_url).await?;
    Ok(db)
}

/// Binds the SIP gateway, whose callers join `rooms` as `directory` lets them, and runs it until shutdown.
async fn start_gateway(
    settings: &Settings,
    (media_ip, calling_out): (std::net::IpAddr, Option<(Trunk, DialRequests)>),
    directory: impl PhoneDirectory,
    rooms: &convene_media::rooms::Rooms,
    shutdown: &CancellationToken,
) -> anyhow::Result<(SocketAddr, SocketAddr, JoinHandle<()>)> {
    // Callers' audio reaches the node on its own address; a wildcard is reached on loopback.
    let media_ip = match media_ip {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let config = GatewayConfig {
        addr: settings.sip_addr,
        advertised_ip: settings.media_public_ip,
        max_calls: SIP_MAX_CALLS,
        media_ip,
        allowed_peers: settings.sip_allow.clone(),
        rtp_ports: settings.sip_rtp_ports.clone(),
    };
    let gateway = Gateway::bind(&config, directory, rooms.clone(), calling_out, shutdown.clone())
        .await
        .context("CONVENE_SIP_ADDR")?;
    Ok((gateway.local_addr(), gateway.advertised_addr(), tokio::spawn(gateway.run())))
}

/// Creates the data directory and proves it writable before anything is written into it.
fn ensure_writable_dir(dir: &Path) -> anyhow::Result<()> {
    let advice = "choose a writable folder with CONVENE_DATA_DIR or fix its permissions";
    std::fs::create_dir_all(dir)
        .with_context(|| format!("CONVENE_DATA_DIR {} cannot be created ({advice})", dir.display()))?;
    let probe = dir.join(".convene-write-check");
    std::fs::write(&probe, b"ok")
        .with_context(|| format!("CONVENE_DATA_DIR {} is not writable ({advice})", dir.display()))?;
    std::fs::remove_file(&probe)
        .with_context(|| format!("CONVENE_DATA_DIR {} is not writable ({advice})", dir.display()))?;
    Ok(())
}

/// A media node's rooms, reporting to its control plane: room events through the outbox, load in
/// heartbeats. Its rooms are reached only through the control plane, which passes on the joiners it admits.
fn start_node(
    settings: &Settings,
    (plane, media_metrics, dialer): (convene_media::MediaPlane, MediaMetrics, Option<Dialer>),
    http_addr: SocketAddr,
    shutdown: &CancellationToken,
    registry: &mut prometheus_client::registry::Registry,
) -> anyhow::Result<(NodeServices, convene_media::outbox::Running)> {
    let (Some(control_url), Some(secret)) = (settings.nodes.control_url.clone(), settings.nodes.secret.clone()) else {
        anyhow::bail!("`convene media` reports to a control plane: set CONVENE_CONTROL_URL and CONVENE_NODE_SECRET");
    };
    let url = match &settings.nodes.url {
        Some(url) => url.clone(),
        None if !http_addr.ip().is_unspecified() => url::Url::parse(&format!("http://{http_addr}/"))?,
        None => anyhow::bail!(
            "CONVENE_HTTP_ADDR listens on every address: set CONVENE_NODE_URL to how the control plane reaches this node"
        ),
    };
    ensure_writable_dir(&settings.data_dir)?;
    let control = ControlPlane::new(control_url, secret.clone()).context("cannot make the control plane's client")?;
    let dir = settings.data_dir.join("media-outbox");
    let (outbox, task) = convene_media::outbox::Outbox::open(&dir, Arc::new(control.clone()), shutdown.clone())
        .with_context(|| format!("cannot open the media outbox in {} (check CONVENE_DATA_DIR)", dir.display()))?;
    let id = outbox.node().to_owned();
    let heartbeat = Heartbeat {
        node: id.clone(),
        url: url.to_string(),
        region: settings.nodes.region.clone(),
        cores: std::thread::available_parallelism().map_or(1, |cores| u32::try_from(cores.get()).unwrap_or(u32::MAX)),
        started_ms: chrono::Utc::now().timestamp_millis(),
        draining: false,
        participants: 0,
        rooms: 0,
        mbit_out: 0,
        cpu_millicores: 0,
        sip: None,
    };
    let metrics = convene_media::signal_metrics::SignalMetrics::register(registry);
    // Meetings are recorded here only with a bucket, where the control plane's composer finds the tracks.
    let outbox: Arc<dyn convene_media::rooms::Reporter> = Arc::new(outbox);
    let (reporter, recordings) = match recording_storage(settings)?.bucket {
        Some(bucket) => {
            let dir = settings.recordings_dir();
            let shipping = ShipTracks { inner: outbox, bucket, dir: dir.clone(), shutdown: shutdown.clone() };
            let store = convene_media::recording::RecordingStore::new(dir, settings.recordings_quota);
            (Arc::new(shipping) as Arc<dyn convene_media::rooms::Reporter>, Some(store))
        }
        None => (outbox, None),
    };
    let mut rooms = convene_media::rooms::Rooms::new(shutdown.clone(), reporter, metrics, Some(plane))
        .with_private_streams(settings.streaming_allow_private);
    if let Some(store) = recordings {
        rooms = rooms.with_recordings(store);
    }
    if let Some(dialer) = dialer {
        rooms = rooms.with_dialer(dialer);
    }
    let phone_line = PhoneLine { control: control.clone(), node: id.clone() };
    let gateway_address = GatewayAddress::default();
    let load = (rooms.clone(), media_metrics, gateway_address.clone());
    tokio::spawn(control.run_heartbeats(heartbeat, load, shutdown.clone()));
    tracing::info!(node = %url, control_plane = ?settings.nodes.control_url.as_ref().map(url::Url::as_str), "reporting to the control plane");
    let hosted = HostedRooms { rooms, node: id };
    let password_guesses = PasswordGuesses::default();
    Ok((NodeServices { hosted, secret, password_guesses, phone_line, gateway_address }, task))
}

/// The site with the services behind its forms and server functions.
fn site_services(
    settings: &Settings,
    (db, envelope): (DatabaseConnection, Envelope),
    shutdown: &CancellationToken,
    registry: &mut prometheus_client::registry::Registry,
    // Where rooms are: the media plane, for the role that also hosts rooms (`up`, which runs everything),
    // with the phone gateway's dialer when it has a trunk to call out through; or media nodes that come
    // with this secret.
    (plane, node_secret): (Option<(convene_media::MediaPlane, Option<Dialer>)>, Option<SecretString>),
) -> anyhow::Result<(SiteServices, Option<convene_media::outbox::Running>, MailRelay)> {
    let (mailer, relay) = mail::from_settings(settings, db.clone(), registry)?;
    let accounts = Accounts::new(db.clone(), mailer.clone(), settings.public_url.clone());
    let team = TeamService::new(db.clone(), mailer.clone(), settings.public_url.clone());
    let (rooms, outbox) = match plane {
        Some((plane, dialer)) => {
            // The node's events reach the sessions through its outbox on disk, so a restart loses none.
            let recorder = Arc::new(SessionRecorder::new(db.clone(), registry));
            let dir = settings.data_dir.join("media-outbox");
            let (outbox, task) =
                convene_media::outbox::Outbox::open(&dir, recorder, shutdown.clone()).with_context(|| {
                    format!("cannot open the media outbox in {} (check CONVENE_DATA_DIR)", dir.display())
                })?;
            let node = outbox.node().to_owned();
            let metrics = convene_media::signal_metrics::SignalMetrics::register(registry);
            let recordings =
                convene_media::recording::RecordingStore::new(settings.recordings_dir(), settings.recordings_quota);
            let mut rooms = convene_media::rooms::Rooms::new(shutdown.clone(), Arc::new(outbox), metrics, Some(plane))
                .with_recordings(recordings)
                .with_private_streams(settings.streaming_allow_private);
            if let Some(dialer) = dialer {
                rooms = rooms.with_dialer(dialer);
            }
            (Some(HostedRooms { rooms, node }), Some(task))
        }
        None => (None, None),
    };
    let commands_client = reqwest::Client::builder()
        .timeout(crate::nodes::commands::COMMAND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("cannot make the media nodes' client")?;
    let nodes = node_secret.map(|secret| MediaNodes {
        db: db.clone(),
        secret,
        events: Arc::new(SessionRecorder::new(db.clone(), registry)),
        metrics: convene_media::signal_metrics::SignalMetrics::register(registry),
        http: commands_client,
        limits: crate::platform::rate_limit::SharedLimiter::new(db.clone()),
    });
    let stripe = StripeClient::from_settings(&settings.stripe)?.map(|client| Arc::new(client) as Arc<dyn StripeApi>);
    if stripe.is_some() && settings.plans.all().iter().all(|plan| plan.price.is_none()) {
        tracing::warn!("billing is on, but no plan has a Stripe price: set CONVENE_PLANS to a file with paid plans");
    }
    let billing = Billing::new(
        db.clone(),
        Arc::new(settings.plans.clone()),
        (stripe, settings.stripe.webhook_secret.clone()),
        settings.public_url.clone(),
        BillingMetrics::register(registry),
    );
    let urls = (settings.public_url.clone(), settings.meet_url.clone());
    let admission = Admission::new(db.clone(), billing.clone());
    // The API's commands to running meetings go to the rooms here, or to the media node of each.
    let commands = match (&rooms, &nodes) {
        (Some(hosted), _) => Some(Arc::new(hosted.clone()) as Arc<dyn RoomCommands>),
        (None, Some(nodes)) => Some(Arc::new(nodes.clone()) as Arc<dyn RoomCommands>),
        (None, None) => None,
    };
    let recordings = RecordingService::new(
        (db.clone(), billing.clone(), mailer.clone()),
        commands.clone(),
        (recording_storage(settings)?, envelope.clone(), settings.public_url.clone()),
    );
    let dial_in = DialInService::new(db.clone(), billing.clone(), commands);
    let reach = Reach { private_allowed: settings.webhooks_allow_loopback };
    let webhooks = WebhookService::new((db.clone(), envelope.clone(), mailer.clone()), reach, &settings.public_url);
    let meetings = MeetingService::new((db.clone(), mailer, dial_in.clone()), urls, envelope.clone());
    let origin = |url: &url::Url| url.origin().ascii_serialization();
    let state = AppState {
        db,
        accounts,
        team,
        meetings,
        billing,
        admission,
        recordings,
        dial_in,
        envelope,
        meet_url: MeetUrl(settings.meet_url.clone()),
        cookies: CookiePolicy { secure: settings.public_url.scheme() == "https" },
        origins: OwnOrigins(vec![origin(&settings.public_url), origin(&settings.meet_url)]),
        password_guesses: PasswordGuesses::default(),
        rooms: rooms.map(|hosted| hosted.rooms),
        nodes,
        webhooks,
    };
    let backend = Arc::new(SiteBackend(state.clone()));
    let services = SiteServices { site: Site::new(&settings.site_dir, meet_host(settings), backend), state };
    Ok((services, outbox, relay))
}

/// Where recordings' files are: the data dir, and the bucket `CONVENE_RECORDINGS_URL` names.
fn recording_storage(settings: &Settings) -> anyhow::Result<Storage> {
    let bucket = settings.recordings_bucket.as_ref().map(Bucket::new).transpose().map_err(anyhow::Error::msg)?;
    Ok(Storage { dir: settings.recordings_dir(), bucket })
}

fn meet_host(settings: &Settings) -> String {
    settings.meet_url.host_str().unwrap_or("meet.localhost").to_owned()
}

fn write_banner(
    out: &mut (dyn Write + Send),
    role: Serve,
    settings: &Settings,
    (http_addr, metrics_addr): (SocketAddr, SocketAddr),
    (media_addr, sip_addr): (Option<SocketAddr>, Option<SocketAddr>),
) -> anyhow::Result<()> {
    let site = settings.public_url.as_str().trim_end_matches('/');
    let meet = settings.meet_url.as_str().trim_end_matches('/');
    writeln!(out, "Convene {} is running.", env!("CARGO_PKG_VERSION"))?;
    writeln!(out, "  listening on http://{http_addr}")?;
    if let Some(media) = media_addr {
        writeln!(out, "  media node on udp://{media}")?;
    }
    if let Some(sip) = sip_addr {
        writeln!(out, "  phone dial-in (SIP) on udp and tcp {sip}")?;
        if let Some(peers) = &settings.sip_allow {
            writeln!(out, "  SIP taken only from {peers}")?;
        }
        if let Some(trunk) = &settings.sip_trunk {
            writeln!(out, "  phone dial-out through the trunk {trunk}")?;
        }
    }
    if role != Serve::Media {
        let database = match settings.database_url.backend() {
            Backend::Sqlite => format!("SQLite ({})", settings.database_url),
            Backend::Postgres => format!("Postgres ({})", settings.database_url),
        };
        writeln!(out, "  site:      {site}/")?;
        writeln!(out, "  meetings:  {meet}/<room>?jwt=<token>")?;
        writeln!(out, "  database:  {database}")?;
    }
    writeln!(out, "  health:    {site}/healthz, {site}/readyz")?;
    writeln!(out, "  metrics:   http://{metrics_addr}/metrics (internal listener, CONVENE_METRICS_ADDR)")?;
    if role != Serve::Media {
        writeln!(out)?;
        writeln!(out, "To get started, create your organisation and its owner account:")?;
        writeln!(
            out,
            "  convene admin create-tenant --name \"Acme\" --owner-email you@example.com --owner-password '<password>'"
        )?;
        writeln!(out, "It prints the tenant id and an API key for the /v1 REST API.")?;
        writeln!(out, "Or sign up in the browser: {site}/signup")?;
    }
    writeln!(out, "Stop with Ctrl-C.")?;
    out.flush()?;
    Ok(())
}
