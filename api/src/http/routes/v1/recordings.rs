//! `/v1/rooms/{name}/recording` and `/v1/recordings`: starting and stopping a meeting's recording, and the
//! recordings a tenant has; `/v1/rooms/{name}/live-stream`: streaming a meeting live.

use actix_web::{HttpResponse, delete, get, post, web};
use convene_domain::RoomName;
use convene_media::streaming::StreamTarget;

use super::{ApiError, ApiTenant, ErrorBody, cursor, internal};
use crate::{
    http::AppState,
    meetings::recordings::{self, Deleter, Recording, RecordingError},
};

/// A page of recordings.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RecordingPage {
    /// Recordings, newest first.
    pub recordings: Vec<Recording>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<uuid::Uuid>,
}

/// The recording a start or stop concerns.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RecordingControlled {
    /// The recording's id (see `GET /v1/recordings/{id}`).
    pub id: uuid::Uuid,
    /// The room.
    pub room: String,
    /// `recording` after a start, `processing` after a stop.
    pub state: recordings::RecordingState,
}

/// Paging through recordings: `limit` (1–100, default 50) after `after` (the previous page's `next`), of one
/// `room` if given.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RecordingQuery {
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    after: Option<String>,
    /// Only this room's recordings.
    #[serde(default)]
    room: Option<String>,
}

fn recording_error(error: RecordingError) -> ApiError {
    match error {
        RecordingError::NotFound => ApiError::NotFound,
        error @ RecordingError::Forbidden => ApiError::Forbidden(error.to_string()),
        RecordingError::NotInPlan(words) => ApiError::Forbidden(words),
        RecordingError::Conflict(words) => ApiError::Conflict(words),
        RecordingError::Database(error) => internal(error),
        error @ RecordingError::Storage(_) => internal(error),
        RecordingError::Unavailable(words) => ApiError::Unavailable(words),
    }
}

async fn control(tenant: ApiTenant, name: &str, state: &AppState, start: bool) -> Result<HttpResponse, ApiError> {
    let room = RoomName::parse(name).map_err(|_| ApiError::NotFound)?;
    let id = state.recordings.control(tenant.0, &room, start).await.map_err(recording_error)?;
    let (status, recording_state) = if start {
        (actix_web::http::StatusCode::CREATED, recordings::RecordingState::Recording)
    } else {
        (actix_web::http::StatusCode::OK, recordings::RecordingState::Processing)
    };
    Ok(HttpResponse::build(status).json(RecordingControlled {
        id,
        room: room.as_str().to_owned(),
        state: recording_state,
    }))
}

/// `POST /v1/rooms/{name}/recording`: records the meeting going on in the room until it is stopped or ends.
#[utoipa::path(post, path = "/v1/rooms/{name}/recording", tag = "recordings", security(("api_key" = [])),
    params(("name" = String, Path, description = "The room's name")),
    responses((status = 201, description = "Recording started; everyone in the meeting sees it", body = RecordingControlled),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 403, description = "The plan does not include recording", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody),
        (status = 409, description = "Nobody is in the meeting, it is end-to-end encrypted, or it is recorded already", body = ErrorBody),
        (status = 503, description = "The meeting's media node did not answer; try again", body = ErrorBody)))]
#[post("/rooms/{name}/recording")]
pub(super) async fn start_recording(
    tenant: ApiTenant,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    control(tenant, &name, &state, true).await
}

/// `DELETE /v1/rooms/{name}/recording`: stops recording; the recording is then composed.
#[utoipa::path(delete, path = "/v1/rooms/{name}/recording", tag = "recordings", security(("api_key" = [])),
    params(("name" = String, Path, description = "The room's name")),
    responses((status = 200, description = "Recording stopped", body = RecordingControlled),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody),
        (status = 409, description = "The meeting is not being recorded", body = ErrorBody),
        (status = 503, description = "The meeting's media node did not answer; try again", body = ErrorBody)))]
#[delete("/rooms/{name}/recording")]
pub(super) async fn stop_recording(
    tenant: ApiTenant,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    control(tenant, &name, &state, false).await
}

/// Where to stream a meeting: the service's RTMP address and the stream key it gave (YouTube Studio shows
/// both under "Stream settings").
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveStreamRequest {
    /// `rtmp://` or `rtmps://` address, for example `rtmp://a.rtmp.youtube.com/live2`.
    pub url: String,
    /// The stream key (kept secret: never shown again or logged).
    pub key: String,
}

/// A room's live stream after a start or stop.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LiveStreamState {
    /// The room.
    pub room: String,
    /// Whether the meeting is streamed live now.
    pub live: bool,
    /// Where it goes, without the key (absent after a stop).
    pub service: Option<String>,
}

/// `POST /v1/rooms/{name}/live-stream`: streams the meeting going on in the room live (720p H.264 and AAC
/// over RTMP) until it is stopped, the meeting ends or the service refuses it.
#[utoipa::path(post, path = "/v1/rooms/{name}/live-stream", tag = "recordings", security(("api_key" = [])),
    params(("name" = String, Path, description = "The room's name")), request_body = LiveStreamRequest,
    responses((status = 201, description = "Streaming started; everyone in the meeting sees it", body = LiveStreamState),
        (status = 400, description = "The address or key is unusable; the message says why", body = ErrorBody),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 403, description = "The plan does not include recording and live streaming", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody),
        (status = 409, description = "Nobody is in the meeting, it is end-to-end encrypted, or it is live already", body = ErrorBody),
        (status = 503, description = "The meeting's media node did not answer; try again", body = ErrorBody)))]
#[post("/rooms/{name}/live-stream")]
pub(super) async fn start_live_stream(
    tenant: ApiTenant,
    name: web::Path<String>,
    body: web::Json<LiveStreamRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let room = RoomName::parse(&name).map_err(|_| ApiError::NotFound)?;
    let target = StreamTarget::parse(&body.url, &body.key).map_err(ApiError::BadRequest)?;
    let service = Some(target.service());
    state.recordings.stream(tenant.0, &room, Some(target)).await.map_err(recording_error)?;
    Ok(HttpResponse::Created().json(LiveStreamState { room: room.as_str().to_owned(), live: true, service }))
}

/// `DELETE /v1/rooms/{name}/live-stream`: stops streaming the meeting.
#[utoipa::path(delete, path = "/v1/rooms/{name}/live-stream", tag = "recordings", security(("api_key" = [])),
    params(("name" = String, Path, description = "The room's name")),
    responses((status = 200, description = "Streaming stopped", body = LiveStreamState),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody),
        (status = 409, description = "The meeting is not streamed live", body = ErrorBody),
        (status = 503, description = "The meeting's media node did not answer; try again", body = ErrorBody)))]
#[delete("/rooms/{name}/live-stream")]
pub(super) async fn stop_live_stream(
    tenant: ApiTenant,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let room = RoomName::parse(&name).map_err(|_| ApiError::NotFound)?;
    state.recordings.stream(tenant.0, &room, None).await.map_err(recording_error)?;
    Ok(HttpResponse::Ok().json(LiveStreamState { room: room.as_str().to_owned(), live: false, service: None }))
}

/// `GET /v1/recordings?room=&limit=&after=`: recordings, newest first.
#[utoipa::path(get, path = "/v1/recordings", tag = "recordings", security(("api_key" = [])), params(RecordingQuery),
    responses((status = 200, description = "A page of recordings, newest first", body = RecordingPage),
        (status = 400, description = "A field is unusable; the message names it", body = ErrorBody),
        (status = 401, description = "No live API key", body = ErrorBody)))]
#[get("/recordings")]
pub(super) async fn list_recordings(
    tenant: ApiTenant,
    query: web::Query<RecordingQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let after = cursor(query.after.as_deref())?;
    let room = query
        .room
        .as_deref()
        .map(|room| RoomName::parse(room).map_err(|error| ApiError::BadRequest(format!("room: {error}"))))
        .transpose()?;
    let limit = query.limit.unwrap_or(50);
    let (recordings, next) = state.recordings.list(tenant.0, room.as_ref(), limit, after).await.map_err(internal)?;
    Ok(HttpResponse::Ok().json(RecordingPage { recordings, next }))
}

/// `GET /v1/recordings/{id}`.
#[utoipa::path(get, path = "/v1/recordings/{id}", tag = "recordings", security(("api_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "The recording's id")),
    responses((status = 200, description = "The recording", body = Recording),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[get("/recordings/{id}")]
pub(super) async fn get_recording(
    tenant: ApiTenant,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    let recording = state.recordings.get(tenant.0, id).await.map_err(internal)?.ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(recording))
}

/// `DELETE /v1/recordings/{id}`: deletes the recording and its files.
#[utoipa::path(delete, path = "/v1/recordings/{id}", tag = "recordings", security(("api_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "The recording's id")),
    responses((status = 204, description = "The recording is gone"),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody),
        (status = 409, description = "It is still recording", body = ErrorBody)))]
#[delete("/recordings/{id}")]
pub(super) async fn delete_recording(
    tenant: ApiTenant,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    state.recordings.delete(tenant.0, id, Deleter::Api).await.map_err(recording_error)?;
    Ok(HttpResponse::NoContent().finish())
}
