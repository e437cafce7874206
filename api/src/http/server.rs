//! The HTTP server. Like mini-redis, it takes an already-bound listener and a shutdown signal, so tests
//! bind port 0 and stop servers when they like; every role (`up`, `api`, `media`) serves through here.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use actix_web::{
    App, HttpServer,
    middleware::{Compress, from_fn},
    web,
};
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;

use crate::{
    http::AppState,
    http::csrf::{self},
    http::routes::{self, health::Dependencies, signal::NodeServices, site::Site},
    platform::metrics::Metrics,
};

/// Request bodies above this are refused with 413 before a handler sees them.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// Everything the HTTP server serves.
#[derive(Debug, Clone)]
pub struct HttpApp {
    /// Checked by `/readyz`.
    pub dependencies: Dependencies,
    /// Served at `/metrics`, fed by the request middleware.
    pub metrics: Arc<Metrics>,
    /// The Leptos site and the account endpoints behind its forms, for roles that serve them.
    pub site: Option<SiteServices>,
    /// A media node's rooms, for the joiners its control plane passes on (`media`).
    pub node: Option<NodeServices>,
}

/// What the control plane's site needs.
#[derive(Debug, Clone)]
pub struct SiteServices {
    /// The Leptos surfaces.
    pub site: Site,
    /// The database and the services every handler shares.
    pub state: AppState,
}

/// Binding the HTTP port failed; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum HttpBindError {
    /// Something else listens there.
    #[error("{0} is already in use: stop the process using it or set CONVENE_HTTP_ADDR to a free address")]
    InUse(SocketAddr),
    /// Any other failure.
    #[error("cannot listen on {addr}: {source} (check CONVENE_HTTP_ADDR)")]
    Other {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
}

/// Binds the HTTP listener up front, so a taken port fails before anything else starts.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, HttpBindError> {
    std::net::TcpListener::bind(addr).map_err(|source| match source.kind() {
        io::ErrorKind::AddrInUse => HttpBindError::InUse(addr),
        _ => HttpBindError::Other { addr, source },
    })
}

/// Serves the operators' endpoints (probes, metrics and the operator's API) on the internal listener until
/// `shutdown`.
pub async fn serve_internal(
    listener: std::net::TcpListener,
    dependencies: Dependencies,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let dependencies = web::Data::new(dependencies);
    let metrics = web::Data::new(metrics);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(dependencies.clone())
            .app_data(metrics.clone())
            .configure(routes::health::configure_internal)
            .configure(routes::operator::configure)
    })
    .workers(1)
    .listen(listener)?
    .disable_signals()
    .run();
    run_until(server, shutdown).await
}

/// Serves until `shutdown` is cancelled, then stops accepting connections and lets in-flight requests
/// finish for up to `grace`.
pub async fn serve(
    listener: std::net::TcpListener,
    app: HttpApp,
    shutdown: CancellationToken,
    grace: Duration,
) -> io::Result<()> {
    let dependencies = web::Data::new(app.dependencies);
    let metrics = web::Data::new(app.metrics);
    let site = app.site;
    let node = app.node;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(dependencies.clone())
            .app_data(metrics.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .app_data(web::JsonConfig::default().limit(MAX_BODY_BYTES))
            .app_data(web::FormConfig::default().limit(MAX_BODY_BYTES))
            .wrap(from_fn(csrf::same_origin_only))
            .wrap(from_fn(crate::platform::metrics::record))
            .wrap(TracingLogger::<crate::platform::telemetry::RedactedSpans>::new())
            // The wasm bundle is ~800 KiB and ~300 KiB gzipped; pages and CSS shrink likewise.
            .wrap(Compress::default())
            .configure(routes::health::configure)
            .configure(|cfg| {
                if let Some(services) = &site {
                    cfg.app_data(web::Data::new(services.state.clone()))
                        .configure(routes::auth::configure)
                        .configure(routes::team::configure)
                        .configure(routes::webhooks::configure)
                        .configure(routes::meetings::configure)
                        .configure(routes::billing::configure)
                        .configure(routes::recordings::configure)
                        .configure(routes::jitsi::configure)
                        .configure(routes::v1::configure);
                    if services.state.rooms.is_some() || services.state.nodes.is_some() {
                        cfg.configure(routes::signal::configure);
                    }
                    if services.state.nodes.is_some() {
                        cfg.configure(routes::nodes::configure);
                    }
                    // Last: the site's catch-all routes must not shadow anything.
                    services.site.configure(cfg);
                }
                if let Some(node) = &node {
                    cfg.app_data(web::Data::new(node.clone()))
                        .configure(routes::signal::configure_node)
                        .configure(routes::nodes::configure_node);
                }
            })
    })
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(grace.as_secs())
    .run();
    run_until(server, shutdown).await
}

/// Runs `server` until `shutdown` is cancelled, then stops it gracefully (in-flight requests finish within its
/// shutdown timeout).
async fn run_until(server: actix_web::dev::Server, shutdown: CancellationToken) -> io::Result<()> {
    let handle = server.handle();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        handle.stop(true).await;
    });
    server.await
}
