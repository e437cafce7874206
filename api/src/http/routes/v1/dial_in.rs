//! `/v1/rooms/{name}/dial-in` and `/v1/dial-in-numbers`: how people join a tenant's meetings by phone;
//! `/v1/rooms/{name}/dial-out`: calling a phone into a meeting.

use actix_web::{HttpResponse, get, post, web};
use convene_domain::{PhoneNumber, RoomName};

use super::{ApiError, ApiTenant, ErrorBody, internal};
use crate::{
    http::AppState,
    meetings::dial_in::{DialInError, DialInNumber, DialOut, RoomDialIn},
};

/// The numbers a tenant's callers dial.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DialInNumbers {
    /// Toll-free first; empty until the operator assigns some.
    pub numbers: Vec<DialInNumber>,
}

fn dial_in_error(error: DialInError) -> ApiError {
    match error {
        DialInError::NotFound => ApiError::NotFound,
        DialInError::NotInPlan(words) => ApiError::Forbidden(words),
        DialInError::Refused(words) => ApiError::Conflict(words),
        DialInError::Unavailable(words) => ApiError::Unavailable(words),
        error @ (DialInError::Taken(_) | DialInError::UnknownTenant(_) | DialInError::Database(_)) => internal(error),
    }
}

/// `GET /v1/rooms/{name}/dial-in`: the room's PIN (given on first ask, kept for the room's life) and the
/// numbers to dial, each with a one-tap dial string and `tel:` link.
#[utoipa::path(get, path = "/v1/rooms/{name}/dial-in", tag = "dial-in", security(("api_key" = [])),
    params(("name" = String, Path, description = "The room's name")),
    responses((status = 200, description = "How to join the room by phone", body = RoomDialIn),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 403, description = "The plan does not include phone dial-in", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[get("/rooms/{name}/dial-in")]
pub(super) async fn room_dial_in(
    tenant: ApiTenant,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let room = RoomName::parse(&name).map_err(|_| ApiError::NotFound)?;
    let details = state.dial_in.room(tenant.0, &room).await.map_err(dial_in_error)?;
    Ok(HttpResponse::Ok().json(details))
}

/// `GET /v1/dial-in-numbers`: the numbers the tenant's callers dial.
#[utoipa::path(get, path = "/v1/dial-in-numbers", tag = "dial-in", security(("api_key" = [])),
    responses((status = 200, description = "The tenant's dial-in numbers", body = DialInNumbers),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 403, description = "The plan does not include phone dial-in", body = ErrorBody)))]
#[get("/dial-in-numbers")]
pub(super) async fn dial_in_numbers(tenant: ApiTenant, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let numbers = state.dial_in.numbers(tenant.0).await.map_err(dial_in_error)?;
    Ok(HttpResponse::Ok().json(DialInNumbers { numbers }))
}

/// Whom to call into a meeting.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DialOutRequest {
    /// The number in international form, like `+15551234567` (spaces, dashes and brackets allowed).
    pub number: String,
}

/// `POST /v1/rooms/{name}/dial-out`: calls a phone into the meeting going on in the room, through the SIP
/// trunk the operator configured; the phone joins as invited (no lobby, password or PIN). The meeting's
/// moderators see the call ring, then answered, busy, unanswered or failed.
#[utoipa::path(post, path = "/v1/rooms/{name}/dial-out", tag = "dial-in", security(("api_key" = [])),
    params(("name" = String, Path, description = "The room's name")), request_body = DialOutRequest,
    responses((status = 202, description = "The phone is being called", body = DialOut),
        (status = 400, description = "The number is not in international form", body = ErrorBody),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 403, description = "The plan does not include phone calls", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody),
        (status = 409, description = "Nobody is in the meeting, it is end-to-end encrypted, the number was removed, \
            the server has no trunk, or too many phones are being called", body = ErrorBody),
        (status = 503, description = "The meeting's media node did not answer; try again", body = ErrorBody)))]
#[post("/rooms/{name}/dial-out")]
pub(super) async fn dial_out(
    tenant: ApiTenant,
    name: web::Path<String>,
    body: web::Json<DialOutRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let room = RoomName::parse(&name).map_err(|_| ApiError::NotFound)?;
    let number = PhoneNumber::parse(&body.number).map_err(|error| ApiError::BadRequest(format!("number: {error}")))?;
    let call = state.dial_in.dial_out(tenant.0, &room, &number).await.map_err(dial_in_error)?;
    Ok(HttpResponse::Accepted().json(call))
}
