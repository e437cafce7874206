//! `/v1/rooms`: a tenant's named rooms and their settings.

use actix_web::{HttpResponse, delete, get, post, web};

use super::{ApiError, ApiTenant, ErrorBody, Page, internal};
use crate::{
    http::AppState,
    meetings::rooms::{self, RoomError},
};

/// A page of rooms.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RoomPage {
    /// Rooms by name.
    pub rooms: Vec<rooms::Room>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

pub(super) fn room_error(error: RoomError) -> ApiError {
    match error {
        error @ RoomError::Invalid { .. } => ApiError::BadRequest(error.to_string()),
        RoomError::Taken(_) => ApiError::Conflict(error.to_string()),
        RoomError::NotFound => ApiError::NotFound,
        other => internal(other),
    }
}

/// `POST /v1/rooms`.
#[utoipa::path(post, path = "/v1/rooms", tag = "rooms", security(("api_key" = [])), request_body = rooms::NewRoom,
    responses((status = 201, description = "The room", body = rooms::Room), (status = 400, description = "A field is unusable; the message names it", body = ErrorBody), (status = 401, description = "No live API key", body = ErrorBody),
        (status = 409, description = "A room of that name exists", body = ErrorBody)))]
#[post("/rooms")]
pub(super) async fn create_room(
    tenant: ApiTenant,
    new: web::Json<rooms::NewRoom>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let room = rooms::create(&state.db, tenant.0, new.into_inner()).await.map_err(room_error)?;
    Ok(HttpResponse::Created().json(room))
}

/// `GET /v1/rooms?limit=&after=`: rooms by name; `next` is the `after` of the following page.
#[utoipa::path(get, path = "/v1/rooms", tag = "rooms", security(("api_key" = [])), params(Page),
    responses((status = 200, description = "A page of rooms by name", body = RoomPage), (status = 400, description = "A field is unusable; the message names it", body = ErrorBody), (status = 401, description = "No live API key", body = ErrorBody)))]
#[get("/rooms")]
pub(super) async fn list_rooms(
    tenant: ApiTenant,
    page: web::Query<Page>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = page.limit.unwrap_or(50);
    let (rooms, next) = rooms::list(&state.db, tenant.0, limit, page.after.as_deref()).await.map_err(room_error)?;
    Ok(HttpResponse::Ok().json(RoomPage { rooms, next }))
}

/// `GET /v1/rooms/{name}`.
#[utoipa::path(get, path = "/v1/rooms/{name}", tag = "rooms", security(("api_key" = [])), params(("name" = String, Path, description = "The room's name")),
    responses((status = 200, description = "The room", body = rooms::Room), (status = 401, description = "No live API key", body = ErrorBody), (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[get("/rooms/{name}")]
pub(super) async fn get_room(
    tenant: ApiTenant,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let room = rooms::get(&state.db, tenant.0, &name).await.map_err(room_error)?;
    Ok(HttpResponse::Ok().json(room))
}

/// `PATCH /v1/rooms/{name}`.
#[utoipa::path(patch, path = "/v1/rooms/{name}", tag = "rooms", security(("api_key" = [])), params(("name" = String, Path, description = "The room's name")),
    request_body(content = rooms::RoomChange, description = "Only the fields sent change; `null` clears an optional one"),
    responses((status = 200, description = "The changed room", body = rooms::Room), (status = 400, description = "A field is unusable; the message names it", body = ErrorBody), (status = 401, description = "No live API key", body = ErrorBody), (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[actix_web::patch("/rooms/{name}")]
pub(super) async fn update_room(
    tenant: ApiTenant,
    name: web::Path<String>,
    change: web::Json<rooms::RoomChange>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let room = rooms::update(&state.db, tenant.0, &name, change.into_inner()).await.map_err(room_error)?;
    Ok(HttpResponse::Ok().json(room))
}

/// `DELETE /v1/rooms/{name}`.
#[utoipa::path(delete, path = "/v1/rooms/{name}", tag = "rooms", security(("api_key" = [])),
    params(("name" = String, Path, description = "The room's name")),
    responses((status = 204, description = "The room is gone"), (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[delete("/rooms/{name}")]
pub(super) async fn delete_room(
    tenant: ApiTenant,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    rooms::delete(&state.db, tenant.0, &name).await.map_err(room_error)?;
    Ok(HttpResponse::NoContent().finish())
}
