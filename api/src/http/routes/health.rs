//! Operations endpoints: `/healthz` (the process is alive) and `/readyz` (its dependencies answer) on every
//! host of the public listener, for load balancers; those two and `/metrics` (Prometheus) on the internal
//! listener (`CONVENE_METRICS_ADDR`), since metrics describe every tenant's activity.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use actix_web::{HttpResponse, get, http::header::ContentType, web};
use sea_orm::DatabaseConnection;
use serde_json::json;

use crate::platform::metrics::Metrics;

/// What `/readyz` checks: whichever of these this process depends on.
#[derive(Debug, Clone, Default)]
pub struct Dependencies {
    /// The database, for roles that use one.
    pub database: Option<DatabaseConnection>,
    /// The media node's UDP address, for roles that run or need one.
    pub media: Option<SocketAddr>,
    /// The rooms this process hosts, for roles that host them (a draining node is not ready).
    pub rooms: Option<convene_media::rooms::Rooms>,
    /// The media node's shards, for roles that run one (a node with a stopped shard is neither alive nor
    /// ready).
    pub media_health: Option<convene_media::MediaHealth>,
}

/// Bounds each readiness check, so a hung database cannot hang the probe that is meant to detect it.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Registers the probes, for the public listener.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

/// Registers the probes and the metrics, for the internal listener.
pub fn configure_internal(cfg: &mut web::ServiceConfig) {
    configure(cfg);
    cfg.service(metrics);
}

/// The media shards that stopped, in words for the check, if any did.
fn stopped_shards(dependencies: &Dependencies) -> Option<String> {
    let stopped = dependencies.media_health.as_ref()?.stopped_shards();
    let names: Vec<String> = stopped.iter().map(ToString::to_string).collect();
    (!names.is_empty()).then(|| format!("stopped: shard {}", names.join(", ")))
}

/// Alive unless a media shard has stopped: then the process cannot do its work, and restarting it is the fix.
#[get("/healthz")]
async fn healthz(dependencies: web::Data<Dependencies>) -> HttpResponse {
    match stopped_shards(&dependencies) {
        None => HttpResponse::Ok().json(json!({ "status": "ok" })),
        Some(stopped) => HttpResponse::ServiceUnavailable()
            .json(json!({ "status": "failing", "checks": { "media_shards": stopped } })),
    }
}

#[get("/readyz")]
async fn readyz(dependencies: web::Data<Dependencies>) -> HttpResponse {
    let mut checks = serde_json::Map::new();
    let mut ready = true;
    if let Some(db) = &dependencies.database {
        let outcome = match tokio::time::timeout(CHECK_TIMEOUT, db.ping()).await {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(error)) => {
                tracing::warn!(%error, "readiness: database ping failed");
                "unreachable".to_owned()
            }
            Err(_) => "timed out".to_owned(),
        };
        ready &= outcome == "ok";
        checks.insert("database".to_owned(), outcome.into());
    }
    if let Some(rooms) = &dependencies.rooms {
        let draining = rooms.is_draining();
        ready &= !draining;
        checks.insert("rooms".to_owned(), if draining { "draining" } else { "ok" }.into());
    }
    if let Some(stopped) = stopped_shards(&dependencies) {
        ready = false;
        checks.insert("media_shards".to_owned(), stopped.into());
    }
    if let Some(media) = dependencies.media {
        let outcome = match convene_media::probe(media, CHECK_TIMEOUT).await {
            Ok(_) => "ok".to_owned(),
            Err(error) => {
                tracing::warn!(%error, "readiness: media node probe failed");
                "unreachable".to_owned()
            }
        };
        ready &= outcome == "ok";
        checks.insert("media".to_owned(), outcome.into());
    }
    let body = json!({ "status": if ready { "ready" } else { "unavailable" }, "checks": checks });
    if ready { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}

#[get("/metrics")]
async fn metrics(metrics: web::Data<Arc<Metrics>>) -> HttpResponse {
    match metrics.encode() {
        Ok(text) => {
            HttpResponse::Ok().content_type("application/openmetrics-text; version=1.0.0; charset=utf-8").body(text)
        }
        Err(error) => {
            tracing::error!(%error, "cannot encode metrics");
            HttpResponse::InternalServerError().content_type(ContentType::plaintext()).body("cannot encode metrics")
        }
    }
}
