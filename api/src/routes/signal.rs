//! The signalling WebSocket: `GET /_signal/{room}` upgrades; the first text frame must be `hello` with the
//! room token, verified with the tenant's public keys; then frames pass to the room's focus and back. The
//! path cannot clash with a room (room names have no underscore).

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, get, rt, web};
use actix_ws::{AggregatedMessage, Session};
use convene_domain::RoomName;
use convene_media::{
    focus::{Identity, RoomPolicy},
    rooms::{Delivery, Rooms},
};
use convene_signal::{ClientMessage, MAX_MESSAGE_BYTES, ParseError, Refusal, ServerMessage};

use crate::{accounts::Accounts, room_tokens, rooms};

/// A connection that has not said `hello` by then is closed.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Registers the endpoint.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(signal);
}

#[get("/_signal/{room}")]
async fn signal(
    request: HttpRequest,
    body: web::Payload,
    room: web::Path<String>,
    accounts: web::Data<Accounts>,
    rooms: web::Data<Rooms>,
) -> actix_web::Result<HttpResponse> {
    let Ok(room) = RoomName::parse(&room) else { return Ok(HttpResponse::NotFound().finish()) };
    let (response, session, stream) = actix_ws::handle(&request, body)?;
    let stream =
        stream.max_frame_size(MAX_MESSAGE_BYTES).aggregate_continuations().max_continuation_size(MAX_MESSAGE_BYTES);
    rt::spawn(serve(session, stream, room, accounts.into_inner(), rooms.get_ref().clone()));
    Ok(response)
}

async fn send(session: &mut Session, message: &ServerMessage) -> bool {
    session.text(message.to_json()).await.is_ok()
}

async fn refuse(mut session: Session, reason: Refusal, message: String) {
    let _ = send(&mut session, &ServerMessage::Refused { reason, message }).await;
    let _ = session.close(None).await;
}

async fn serve(
    mut session: Session,
    mut stream: actix_ws::AggregatedMessageStream,
    room: RoomName,
    accounts: std::sync::Arc<Accounts>,
    rooms: Rooms,
) {
    // The handshake: one `hello`, in time.
    let hello = loop {
        match tokio::time::timeout(HELLO_TIMEOUT, stream.recv()).await {
            Ok(Some(Ok(AggregatedMessage::Text(text)))) => break ClientMessage::parse(&text),
            Ok(Some(Ok(AggregatedMessage::Ping(bytes)))) => {
                if session.pong(&bytes).await.is_err() {
                    return;
                }
            }
            Ok(Some(Ok(AggregatedMessage::Pong(_)))) => {}
            Ok(Some(Ok(AggregatedMessage::Binary(_)))) => {
                break Err(ParseError::Malformed("frames are JSON text".into()));
            }
            _ => {
                let _ = session.close(None).await;
                return;
            }
        }
    };
    let (version, token, password) = match hello {
        Ok(ClientMessage::Hello { version, token, password }) => (version, token, password),
        Ok(_) => return refuse(session, Refusal::InvalidToken, "say hello with the room token first".into()).await,
        Err(error) => return refuse(session, Refusal::InvalidToken, error.to_string()).await,
    };
    let verified = match room_tokens::verify_link(accounts.db(), &token, &room).await {
        Ok(Ok(verified)) => verified,
        Ok(Err(error)) => return refuse(session, Refusal::InvalidToken, error.to_string()).await,
        Err(error) => {
            tracing::error!(%error, "cannot load a tenant's keys for a signalling connection");
            return refuse(session, Refusal::InvalidToken, "the meeting cannot be checked right now".into()).await;
        }
    };
    let policy = match rooms::get(accounts.db(), verified.tenant, room.as_str()).await {
        Ok(found) => RoomPolicy {
            lobby: found.settings.lobby,
            password: found.settings.password,
            max_participants: found.settings.max_participants.and_then(|max| usize::try_from(max).ok()),
            end_to_end_encryption: found.settings.end_to_end_encryption,
        },
        // Rooms made on the fly by a tenant's own tokens have the defaults.
        Err(_) => RoomPolicy::default(),
    };
    let user = verified.claims.context.user;
    let identity = Identity { user_id: user.id, name: user.name, moderator: user.moderator };
    let key = (verified.tenant.to_string(), room.as_str().to_owned());
    let Some(mut connection) = rooms.connect(key, policy, identity, version, password).await else {
        let _ = session.close(None).await;
        return;
    };
    let shutdown = rooms.shutdown().clone();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                let reason = actix_ws::CloseReason { code: actix_ws::CloseCode::Away, description: None };
                let _ = session.close(Some(reason)).await;
                break;
            }
            delivery = connection.outbox.recv() => match delivery {
                Some(Delivery::Message(message)) => {
                    if !send(&mut session, &message).await {
                        break;
                    }
                }
                Some(Delivery::Close) | None => {
                    let _ = session.close(None).await;
                    break;
                }
            },
            frame = stream.recv() => match frame {
                Some(Ok(AggregatedMessage::Text(text))) => match ClientMessage::parse(&text) {
                    Ok(message) => {
                        if !connection.send(message).await {
                            break;
                        }
                    }
                    Err(error) => {
                        if !send(&mut session, &ServerMessage::malformed(&error)).await {
                            break;
                        }
                    }
                },
                Some(Ok(AggregatedMessage::Binary(_))) => {
                    let error = ParseError::Malformed("frames are JSON text".into());
                    if !send(&mut session, &ServerMessage::malformed(&error)).await {
                        break;
                    }
                }
                Some(Ok(AggregatedMessage::Ping(bytes))) => {
                    if session.pong(&bytes).await.is_err() {
                        break;
                    }
                }
                Some(Ok(AggregatedMessage::Pong(_))) => {}
                // Close frames, protocol errors (oversized frames among them) and the end of the stream.
                _ => break,
            },
        }
    }
    // Dropping the connection tells the room this participant left.
    drop(connection);
}
