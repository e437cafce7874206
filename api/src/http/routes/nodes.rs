//! The control plane's endpoints for its media nodes, under `/_node/v1` with the node secret as a bearer
//! token: heartbeats (`nodes::registry`) and the room events of each node's outbox (`SessionRecorder`,
//! which counts a redelivered event once). Registered only when `CONVENE_NODE_SECRET` is set.

use actix_web::{HttpRequest, HttpResponse, http::header, post, web};
use chrono::Utc;
use convene_media::outbox::{Deliver, Envelope};

use crate::{
    http::AppState,
    nodes::{
        proxy::MediaNodes,
        registry,
        wire::{Heartbeat, authorized, valid_node_id},
    },
};

/// Registers the endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // An envelope is one room event: small. A node sending more is broken.
    let json = web::JsonConfig::default().limit(64 * 1024).error_handler(|error, _| {
        let body = serde_json::json!({ "error": "invalid_request", "message": error.to_string() });
        actix_web::error::InternalError::from_response(error, HttpResponse::BadRequest().json(body)).into()
    });
    cfg.service(web::scope("/_node/v1").app_data(json).service(heartbeat).service(events));
}

fn error(status: actix_web::http::StatusCode, code: &str, message: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": code, "message": message.to_string() }))
}

/// Why a caller may not use the endpoints.
#[derive(Debug, Clone, Copy)]
enum Refused {
    /// This process takes no media nodes.
    NoNodes,
    /// The caller does not hold the node secret.
    Unauthorized,
}

impl Refused {
    fn response(self) -> HttpResponse {
        match self {
            Refused::NoNodes => error(actix_web::http::StatusCode::NOT_FOUND, "not_found", "not found"),
            Refused::Unauthorized => {
                let message = "send the node secret as `Authorization: Bearer <CONVENE_NODE_SECRET>`";
                error(actix_web::http::StatusCode::UNAUTHORIZED, "unauthorized", message)
            }
        }
    }
}

/// The media nodes, if the caller holds their secret.
fn nodes<'a>(request: &HttpRequest, state: &'a AppState) -> Result<&'a MediaNodes, Refused> {
    // Registered only with a secret; checked again so a misconfiguration cannot open it.
    let nodes = state.nodes.as_ref().ok_or(Refused::NoNodes)?;
    let header = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    if !authorized(header, &nodes.secret) {
        return Err(Refused::Unauthorized);
    }
    Ok(nodes)
}

/// `POST /_node/v1/heartbeat`: a node is alive, with its load.
#[post("/heartbeat")]
async fn heartbeat(request: HttpRequest, state: web::Data<AppState>, body: web::Json<Heartbeat>) -> HttpResponse {
    let nodes = match nodes(&request, &state) {
        Ok(nodes) => nodes,
        Err(refused) => return refused.response(),
    };
    if let Err(bad) = body.check() {
        return error(actix_web::http::StatusCode::BAD_REQUEST, "invalid_request", bad);
    }
    match registry::heartbeat(&nodes.db, &body, Utc::now()).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(failure) => {
            tracing::error!(error = %failure, "could not keep a media node's heartbeat");
            error(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again")
        }
    }
}

/// `POST /_node/v1/events`: one event of a node's outbox; 204 once it is recorded (or was before).
#[post("/events")]
async fn events(request: HttpRequest, state: web::Data<AppState>, body: web::Json<Envelope>) -> HttpResponse {
    let nodes = match nodes(&request, &state) {
        Ok(nodes) => nodes,
        Err(refused) => return refused.response(),
    };
    if !valid_node_id(&body.node) {
        return error(actix_web::http::StatusCode::BAD_REQUEST, "invalid_request", "node: not a node id");
    }
    match nodes.events.deliver(&body).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        // The node's outbox keeps it and tries again.
        Err(undelivered) => error(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable", undelivered),
    }
}
