//! `/v1/meetings` and presence: past and ongoing sessions in a tenant's rooms, and who is in one now.

use actix_web::{HttpResponse, get, web};

use super::{ApiError, ApiTenant, ErrorBody, Page, cursor, internal, rooms::room_error};
use crate::{
    http::AppState,
    meetings::{
        room_sessions,
        rooms::{self, RoomError},
    },
};

/// A page of meetings (room sessions).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct MeetingPage {
    /// Sessions, newest first.
    pub meetings: Vec<room_sessions::Session>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<uuid::Uuid>,
}

/// Who is in a room now.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Presence {
    /// The room.
    pub room: String,
    /// Everyone in it, in order of joining.
    pub participants: Vec<room_sessions::Stay>,
}

/// `GET /v1/meetings?limit=&after=`: past and ongoing sessions, newest first, with participants and durations;
/// `next` is the `after` of the following page.
#[utoipa::path(get, path = "/v1/meetings", tag = "meetings", security(("api_key" = [])), params(Page),
    responses((status = 200, description = "A page of sessions, newest first", body = MeetingPage),
        (status = 400, description = "A field is unusable; the message names it", body = ErrorBody),
        (status = 401, description = "No live API key", body = ErrorBody)))]
#[get("/meetings")]
pub(super) async fn list_meetings(
    tenant: ApiTenant,
    page: web::Query<Page>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let after = cursor(page.after.as_deref())?;
    let limit = page.limit.unwrap_or(50);
    let (meetings, next) = room_sessions::list(&state.db, tenant.0, limit, after).await.map_err(internal)?;
    Ok(HttpResponse::Ok().json(MeetingPage { meetings, next }))
}

/// `GET /v1/rooms/{name}/presence`: who is in the room now.
#[utoipa::path(get, path = "/v1/rooms/{name}/presence", tag = "meetings", security(("api_key" = [])),
    params(("name" = String, Path, description = "The room's name")),
    responses((status = 200, description = "Who is in the room now", body = Presence),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[get("/rooms/{name}/presence")]
pub(super) async fn room_presence(
    tenant: ApiTenant,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let room = convene_domain::RoomName::parse(&name).map_err(|_| ApiError::NotFound)?;
    let db = &state.db;
    let known = match rooms::get(db, tenant.0, room.as_str()).await {
        Ok(_) => true,
        Err(RoomError::NotFound) => room_sessions::has_history(db, tenant.0, &room).await.map_err(internal)?,
        Err(error) => return Err(room_error(error)),
    };
    if !known {
        return Err(ApiError::NotFound);
    }
    let participants = room_sessions::presence(db, tenant.0, &room).await.map_err(internal)?;
    Ok(HttpResponse::Ok().json(Presence { room: room.as_str().to_owned(), participants }))
}
