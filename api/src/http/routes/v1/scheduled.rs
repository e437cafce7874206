//! `/v1/scheduled-meetings`: meetings scheduled ahead in rooms of their own, with invitations by mail.

use actix_web::{HttpResponse, delete, get, post, web};

use super::{ApiError, ApiTenant, ErrorBody, Page, cursor, internal};
use crate::http::AppState;
use crate::meetings::{
    schedule::MeetingInput,
    scheduled::{MeetingError, ScheduledMeeting},
};

/// A page of scheduled meetings.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ScheduledPage {
    /// Meetings, newest first.
    pub scheduled_meetings: Vec<ScheduledMeeting>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<uuid::Uuid>,
}

/// A meeting to schedule (or its replacement), on behalf of one of the tenant's moderators.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct ScheduleRequest {
    /// The organiser: the address of a moderator, admin or owner of the tenant, with a confirmed address.
    pub organizer: String,
    /// The meeting.
    #[serde(flatten)]
    pub meeting: MeetingInput,
}

pub(super) fn meeting_error(error: MeetingError) -> ApiError {
    match error {
        error @ (MeetingError::Invalid { .. } | MeetingError::Unverified | MeetingError::Forbidden) => {
            ApiError::BadRequest(error.to_string())
        }
        MeetingError::NotFound => ApiError::NotFound,
        error @ MeetingError::Closed(_) => ApiError::Conflict(error.to_string()),
        error @ MeetingError::RateLimited => ApiError::RateLimited(error.to_string()),
        other => internal(other),
    }
}

/// `POST /v1/scheduled-meetings`: schedules a meeting in a new room and mails the invitations.
#[utoipa::path(post, path = "/v1/scheduled-meetings", tag = "scheduled meetings", security(("api_key" = [])),
    request_body = ScheduleRequest,
    responses((status = 201, description = "The meeting", body = ScheduledMeeting),
        (status = 400, description = "A field is unusable; the message names it", body = ErrorBody),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 429, description = "Too much meeting mail from this organisation this hour; see `Retry-After`", body = ErrorBody)))]
#[post("/scheduled-meetings")]
pub(super) async fn schedule_meeting(
    tenant: ApiTenant,
    request: web::Json<ScheduleRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let ScheduleRequest { organizer, meeting } = request.into_inner();
    let actor = state.meetings.api_actor(tenant.0, &organizer).await.map_err(meeting_error)?;
    let (id, delivery) = state.meetings.schedule(actor, meeting).await.map_err(meeting_error)?;
    let mut scheduled = state.meetings.scheduled(tenant.0, id).await.map_err(meeting_error)?;
    scheduled.undelivered = delivery.failed;
    Ok(HttpResponse::Created().json(scheduled))
}

/// `GET /v1/scheduled-meetings?limit=&after=`: the tenant's scheduled meetings, newest first.
#[utoipa::path(get, path = "/v1/scheduled-meetings", tag = "scheduled meetings", security(("api_key" = [])),
    params(Page),
    responses((status = 200, description = "A page of meetings", body = ScheduledPage),
        (status = 400, description = "A field is unusable; the message names it", body = ErrorBody),
        (status = 401, description = "No live API key", body = ErrorBody)))]
#[get("/scheduled-meetings")]
pub(super) async fn list_scheduled(
    tenant: ApiTenant,
    page: web::Query<Page>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let after = cursor(page.after.as_deref())?;
    let (scheduled_meetings, next) =
        state.meetings.scheduled_page(tenant.0, page.limit.unwrap_or(50), after).await.map_err(meeting_error)?;
    Ok(HttpResponse::Ok().json(ScheduledPage { scheduled_meetings, next }))
}

/// `GET /v1/scheduled-meetings/{id}`.
#[utoipa::path(get, path = "/v1/scheduled-meetings/{id}", tag = "scheduled meetings", security(("api_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "The meeting's id")),
    responses((status = 200, description = "The meeting", body = ScheduledMeeting),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[get("/scheduled-meetings/{id}")]
pub(super) async fn get_scheduled(
    tenant: ApiTenant,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(state.meetings.scheduled(tenant.0, id).await.map_err(meeting_error)?))
}

/// `PUT /v1/scheduled-meetings/{id}`: replaces the meeting (its room name stays); everyone invited is told.
#[utoipa::path(put, path = "/v1/scheduled-meetings/{id}", tag = "scheduled meetings", security(("api_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "The meeting's id")),
    request_body = ScheduleRequest,
    responses((status = 200, description = "The changed meeting", body = ScheduledMeeting),
        (status = 400, description = "A field is unusable; the message names it", body = ErrorBody),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody),
        (status = 409, description = "The meeting is cancelled or over", body = ErrorBody),
        (status = 429, description = "Too much meeting mail from this organisation this hour; see `Retry-After`", body = ErrorBody)))]
#[actix_web::put("/scheduled-meetings/{id}")]
pub(super) async fn replace_scheduled(
    tenant: ApiTenant,
    id: web::Path<String>,
    request: web::Json<ScheduleRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    let ScheduleRequest { organizer, meeting } = request.into_inner();
    // Another tenant's meeting is not found, whoever is named as organiser.
    state.meetings.scheduled(tenant.0, id).await.map_err(meeting_error)?;
    let actor = state.meetings.api_actor(tenant.0, &organizer).await.map_err(meeting_error)?;
    let delivery = state.meetings.update(actor, id, meeting).await.map_err(meeting_error)?;
    let mut scheduled = state.meetings.scheduled(tenant.0, id).await.map_err(meeting_error)?;
    scheduled.undelivered = delivery.failed;
    Ok(HttpResponse::Ok().json(scheduled))
}

/// `DELETE /v1/scheduled-meetings/{id}?organizer=`: cancels the meeting and tells everyone invited.
#[utoipa::path(delete, path = "/v1/scheduled-meetings/{id}", tag = "scheduled meetings", security(("api_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "The meeting's id"), Organizer),
    responses((status = 204, description = "Cancelled"),
        (status = 400, description = "A field is unusable; the message names it", body = ErrorBody),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody),
        (status = 409, description = "Already cancelled", body = ErrorBody),
        (status = 429, description = "Too much meeting mail from this organisation this hour; see `Retry-After`", body = ErrorBody)))]
#[delete("/scheduled-meetings/{id}")]
pub(super) async fn cancel_scheduled(
    tenant: ApiTenant,
    id: web::Path<String>,
    who: web::Query<Organizer>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    state.meetings.scheduled(tenant.0, id).await.map_err(meeting_error)?;
    let actor = state.meetings.api_actor(tenant.0, &who.organizer).await.map_err(meeting_error)?;
    state.meetings.cancel(actor, id).await.map_err(meeting_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Who cancels: the cancellation mail goes out in their name.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Organizer {
    /// A moderator, admin or owner of the tenant.
    organizer: String,
}
