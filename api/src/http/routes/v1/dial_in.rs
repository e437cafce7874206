//! `/v1/rooms/{name}/dial-in` and `/v1/dial-in-numbers`: how people join a tenant's meetings by phone.

use actix_web::{HttpResponse, get, web};
use convene_domain::RoomName;

use super::{ApiError, ApiTenant, ErrorBody, internal};
use crate::{
    http::AppState,
    meetings::dial_in::{DialInError, DialInNumber, RoomDialIn},
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
