//! The operator's API, on the internal listener beside `/metrics` (so only the operator's network reaches
//! it): the phone numbers assigned to tenants for dial-in (`convene admin dial-in-numbers` does the same from
//! a shell), the control plane's media nodes, and draining the process's media node (`convene drain`, a
//! pre-stop hook). Errors have the `/v1` shape.

use actix_web::{HttpResponse, delete, get, post, web};
use convene_domain::{CountryCode, PhoneNumber, TenantId};
use serde::Deserialize;

use crate::{
    http::routes::{
        health::Dependencies,
        v1::{ApiError, internal},
    },
    meetings::dial_in::{self, DialInError},
};

/// Registers the operator's endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let json = web::JsonConfig::default()
        .limit(4 * 1024)
        .error_handler(|error, _| ApiError::BadRequest(error.to_string()).into());
    cfg.service(
        web::scope("/operator")
            .app_data(json)
            .service(list)
            .service(assign)
            .service(release)
            .service(drain)
            .service(drain_status)
            .service(media_nodes),
    );
}

/// `GET /operator/media-nodes`: the control plane's media nodes, their state and load.
#[get("/media-nodes")]
async fn media_nodes(dependencies: web::Data<Dependencies>) -> Result<HttpResponse, ApiError> {
    let nodes = crate::nodes::registry::list(database(&dependencies)?, chrono::Utc::now()).await.map_err(internal)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "nodes": nodes })))
}

/// `POST /operator/drain`: the media node takes no new meetings (as SIGUSR1 does); its meetings go on.
#[post("/drain")]
async fn drain(dependencies: web::Data<Dependencies>) -> Result<HttpResponse, ApiError> {
    let rooms = dependencies.rooms.as_ref().ok_or(ApiError::NotFound)?;
    if !rooms.is_draining() {
        tracing::info!("draining at the operator's request; no new rooms, running rooms continue");
        rooms.drain();
    }
    Ok(HttpResponse::Ok().json(drain_state(rooms)))
}

/// `GET /operator/drain`: whether the media node drains, and what it still hosts.
#[get("/drain")]
async fn drain_status(dependencies: web::Data<Dependencies>) -> Result<HttpResponse, ApiError> {
    let rooms = dependencies.rooms.as_ref().ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(drain_state(rooms)))
}

fn drain_state(rooms: &convene_media::rooms::Rooms) -> serde_json::Value {
    serde_json::json!({
        "draining": rooms.is_draining(),
        "rooms": rooms.metrics().rooms_running(),
        "participants": rooms.metrics().connections_open(),
    })
}

/// A number to assign.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Assignment {
    tenant_id: String,
    number: String,
    country: String,
    #[serde(default)]
    toll_free: bool,
}

fn database(dependencies: &Dependencies) -> Result<&sea_orm::DatabaseConnection, ApiError> {
    // A media node has no database, so nothing to assign.
    dependencies.database.as_ref().ok_or(ApiError::NotFound)
}

fn refusal(error: DialInError) -> ApiError {
    match error {
        DialInError::NotFound => ApiError::NotFound,
        error @ DialInError::Taken(_) => ApiError::Conflict(error.to_string()),
        error @ DialInError::UnknownTenant(_) => ApiError::BadRequest(format!("tenant_id: {error}")),
        error @ (DialInError::NotInPlan(_)
        | DialInError::Refused(_)
        | DialInError::Unavailable(_)
        | DialInError::Database(_)) => internal(error),
    }
}

/// `GET /operator/dial-in-numbers`: every assigned number with its tenant.
#[get("/dial-in-numbers")]
async fn list(dependencies: web::Data<Dependencies>) -> Result<HttpResponse, ApiError> {
    let numbers = dial_in::assigned(database(&dependencies)?).await.map_err(internal)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "numbers": numbers })))
}

/// `POST /operator/dial-in-numbers`: assigns a number to a tenant.
#[post("/dial-in-numbers")]
async fn assign(dependencies: web::Data<Dependencies>, body: web::Json<Assignment>) -> Result<HttpResponse, ApiError> {
    let bad = |field: &str, error: convene_domain::ParseError| ApiError::BadRequest(format!("{field}: {error}"));
    let tenant = TenantId::parse(&body.tenant_id).map_err(|error| bad("tenant_id", error))?;
    let number = PhoneNumber::parse(&body.number).map_err(|error| bad("number", error))?;
    let country = CountryCode::parse(&body.country).map_err(|error| bad("country", error))?;
    let assigned =
        dial_in::assign(database(&dependencies)?, tenant, &number, country, body.toll_free).await.map_err(refusal)?;
    Ok(HttpResponse::Created().json(assigned))
}

/// `DELETE /operator/dial-in-numbers/{number}`: takes a number back.
#[delete("/dial-in-numbers/{number}")]
async fn release(dependencies: web::Data<Dependencies>, number: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let number = PhoneNumber::parse(&number).map_err(|_| ApiError::NotFound)?;
    dial_in::release(database(&dependencies)?, &number).await.map_err(refusal)?;
    Ok(HttpResponse::NoContent().finish())
}
