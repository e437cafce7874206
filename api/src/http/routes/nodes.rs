//! The endpoints between a control plane and its media nodes, under `/_node/v1` with the node secret as a
//! bearer token. On the control plane (registered only when `CONVENE_NODE_SECRET` is set): heartbeats
//! (`nodes::registry`), the room events of each node's outbox (`SessionRecorder`, which counts a
//! redelivered event once), and the questions of nodes' phone gateways. On a media node: the API's
//! commands to a meeting running there.

use actix_web::{HttpRequest, HttpResponse, http::header, post, web};
use chrono::Utc;
use convene_domain::{RoomName, TenantId};
use convene_media::{
    gateway::{CallFacts, DialInRefusal, GUESS_WINDOW, PhoneAdmission, PhoneDirectory, pin_guess_keys},
    outbox::{Deliver, Envelope},
};

use crate::{
    http::{AppState, routes::signal::NodeServices},
    meetings::room_commands::RoomCommands,
    nodes::{
        proxy::MediaNodes,
        registry,
        relay_ticket::{self, RelayTicket},
        wire::{CommandAnswer, Heartbeat, NodeCommand, PhoneAnswer, PhoneQuestion, authorized, valid_node_id},
    },
};

/// Registers the endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // An envelope is one room event: small. A node sending more is broken.
    let json = web::JsonConfig::default().limit(64 * 1024).error_handler(|error, _| {
        let body = serde_json::json!({ "error": "invalid_request", "message": error.to_string() });
        actix_web::error::InternalError::from_response(error, HttpResponse::BadRequest().json(body)).into()
    });
    cfg.service(web::scope("/_node/v1").app_data(json).service(heartbeat).service(events).service(phone));
}

/// Registers a media node's endpoint for its control plane's commands.
pub fn configure_node(cfg: &mut web::ServiceConfig) {
    cfg.service(command);
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

/// `POST /_node/v1/phone`: a node's phone gateway asks what `convene up`'s asks its database (whether a
/// number is ours, whom a PIN lets in, whether a number may be called, which number to call from). A
/// caller let in places the meeting on the asking node, where the call joins it; for a meeting already
/// running on another node the asking gateway is given that node's gateway and a ticket to pass the call
/// there, and that node asks again with the ticket.
#[post("/phone")]
async fn phone(request: HttpRequest, state: web::Data<AppState>, body: web::Json<PhoneQuestion>) -> HttpResponse {
    let nodes = match nodes(&request, &state) {
        Ok(nodes) => nodes,
        Err(refused) => return refused.response(),
    };
    if let Err(bad) = body.check() {
        return error(actix_web::http::StatusCode::BAD_REQUEST, "invalid_request", bad);
    }
    let directory = &state.admission;
    let answer = match body.into_inner() {
        PhoneQuestion::Serves { number } => match directory.serves(&number).await {
            Ok(ours) => PhoneAnswer::Serves { ours },
            Err(failure) => return error(actix_web::http::StatusCode::SERVICE_UNAVAILABLE, "unavailable", failure),
        },
        PhoneQuestion::Admit { node, number, caller, pin } => {
            let call = CallFacts { number, caller };
            let admitted = match may_guess(nodes, &call).await {
                Ok(()) => directory.admit_dialled(&call, &pin).await,
                Err(refusal) => Err(refusal),
            };
            if admitted.as_ref().is_err_and(|refusal| *refusal == DialInRefusal::UnknownPin) {
                count_wrong_pin(nodes, &call).await;
            }
            joins_on(nodes, &node, admitted, Some(&call)).await
        }
        PhoneQuestion::AdmitToRoom { node, number, caller, room } => {
            let call = CallFacts { number, caller };
            let admitted = directory.admit_named(&call, &room).await;
            joins_on(nodes, &node, admitted, Some(&call)).await
        }
        PhoneQuestion::AdmitRelayed { node, ticket } => match redeem(nodes, &ticket, &node).await {
            Ok(ticket) => {
                let room = (ticket.tenant, &ticket.room);
                let admitted = directory.admit_phone(room.0, room.1, ticket.caller.as_deref(), Utc::now()).await;
                joins_on(nodes, &node, admitted, None).await
            }
            Err(refusal) => PhoneAnswer::Refused { refusal },
        },
        PhoneQuestion::MayCall { tenant, room, number } => {
            match directory.may_call(&(tenant.to_string(), room.to_string()), &number).await {
                Ok(()) => PhoneAnswer::MayCall,
                Err(refusal) => PhoneAnswer::Refused { refusal },
            }
        }
        PhoneQuestion::CallerId { tenant } => {
            PhoneAnswer::CallerId { number: directory.caller_id(&tenant.to_string()).await }
        }
    };
    HttpResponse::Ok().json(answer)
}

/// Whether `call`'s caller may try a PIN: the gateways' limits on wrong ones, counted across every node
/// (each gateway also counts what it sees), so calling another node buys no guesses.
async fn may_guess(nodes: &MediaNodes, call: &CallFacts) -> Result<(), DialInRefusal> {
    for (key, limit) in pin_guess_keys(call) {
        match nodes.limits.exhausted(&format!("phone pin {key}"), limit, GUESS_WINDOW).await {
            Ok(false) => {}
            Ok(true) => return Err(DialInRefusal::Unavailable),
            Err(failure) => {
                tracing::error!(error = %failure, "wrong PINs could not be read");
                return Err(DialInRefusal::Unavailable);
            }
        }
    }
    Ok(())
}

/// Counts a wrong PIN of `call`'s caller (a count that fails is logged: it errs on the caller's side, by
/// one guess).
async fn count_wrong_pin(nodes: &MediaNodes, call: &CallFacts) {
    for (key, limit) in pin_guess_keys(call) {
        if let Err(failure) = nodes.limits.allow(&format!("phone pin {key}"), limit, GUESS_WINDOW).await {
            tracing::error!(error = %failure, "a wrong PIN could not be counted");
        }
    }
}

/// The ticket `text` that another node's gateway passed a caller to `node` with, if it is ours, for that
/// node, fresh, and redeemed here for the first time.
async fn redeem(nodes: &MediaNodes, text: &str, node: &str) -> Result<RelayTicket, DialInRefusal> {
    let Some(ticket) = RelayTicket::open(&nodes.secret, text, node, Utc::now()) else {
        tracing::warn!(node, "a node presented a relay ticket that is not ours, not for it, or expired");
        return Err(DialInRefusal::UnknownPin);
    };
    match nodes.limits.allow(&format!("phone relay {}", ticket.nonce), 1, relay_ticket::LIFETIME).await {
        Ok(true) => Ok(ticket),
        Ok(false) => {
            tracing::warn!(node, "a relay ticket was presented again");
            Err(DialInRefusal::UnknownPin)
        }
        Err(failure) => {
            tracing::error!(error = %failure, "a relay ticket could not be marked used");
            Err(DialInRefusal::Unavailable)
        }
    }
}

/// A caller `admitted` joins on `node`: the meeting is placed there unless it already runs elsewhere; then
/// the caller of `relay` (a call's first question, not a relayed one) is passed to that node's gateway.
async fn joins_on(
    nodes: &MediaNodes,
    node: &str,
    admitted: Result<PhoneAdmission, DialInRefusal>,
    relay: Option<&CallFacts>,
) -> PhoneAnswer {
    let PhoneAdmission { room, policy, identity } = match admitted {
        Ok(admission) => admission,
        Err(refusal) => return PhoneAnswer::Refused { refusal },
    };
    let unavailable = PhoneAnswer::Refused { refusal: DialInRefusal::Unavailable };
    let (Ok(tenant), Ok(room)) = (TenantId::parse(&room.0), RoomName::parse(&room.1)) else { return unavailable };
    match registry::place(&nodes.db, (tenant, &room), (None, None, Some(node)), Utc::now()).await {
        Ok(Some(placed)) if placed.node == node => {
            PhoneAnswer::Admitted { tenant, room, policy: Box::new(policy), identity: Box::new(identity) }
        }
        Ok(Some(placed)) => match (relay, placed.sip) {
            (Some(call), Some(gateway)) => {
                let issued = RelayTicket::new((tenant, &room), &placed.node, call.caller.as_deref(), Utc::now());
                match issued {
                    Ok(ticket) => PhoneAnswer::Relay { gateway, ticket: ticket.seal(&nodes.secret) },
                    Err(failure) => {
                        tracing::error!(error = %failure, "no relay ticket could be made");
                        unavailable
                    }
                }
            }
            (Some(_), None) => {
                tracing::warn!(
                    room = room.as_str(),
                    caller_node = node,
                    running_on = %placed.node,
                    "a phone caller reached a node other than the meeting's, which runs no phone gateway to pass the call to"
                );
                unavailable
            }
            // A call is passed on once: the meeting moved while it was.
            (None, _) => {
                tracing::warn!(room = room.as_str(), caller_node = node, running_on = %placed.node, "a relayed caller's meeting moved to another node");
                unavailable
            }
        },
        Ok(None) => unavailable,
        Err(failure) => {
            tracing::error!(error = %failure, "a phone caller's meeting could not be placed");
            unavailable
        }
    }
}

/// `POST /_node/v1/command` on a media node: a command from the API for a meeting running here, answered
/// with what came of it (a [`CommandAnswer`]). The secret is checked before the body is read.
#[post("/_node/v1/command")]
async fn command(request: HttpRequest, node: web::Data<NodeServices>, body: web::Bytes) -> HttpResponse {
    let header = request.headers().get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    if !authorized(header, &node.secret) {
        return Refused::Unauthorized.response();
    }
    let command = match serde_json::from_slice::<NodeCommand>(&body) {
        Ok(command) => command,
        Err(bad) => return error(actix_web::http::StatusCode::BAD_REQUEST, "invalid_request", bad),
    };
    if let Err(bad) = command.check() {
        return error(actix_web::http::StatusCode::BAD_REQUEST, "invalid_request", bad);
    }
    let outcome = node.hosted.send((command.tenant, &command.room), command.command, &command.by).await;
    HttpResponse::Ok().json(CommandAnswer::from(outcome))
}
