//! `/v1/webhooks`: a tenant's webhook endpoints, their secrets, delivery logs, test events and deliveries
//! sent again.

use actix_web::{HttpResponse, delete, get, post, web};
use uuid::Uuid;

use super::{ApiError, ApiTenant, ErrorBody, internal};
use crate::{
    http::AppState,
    webhooks::endpoints::{self, CreatedEndpoint, Endpoint, EndpointChange, LoggedAttempt, NewEndpoint, WebhookError},
};

/// The tenant's endpoints.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EndpointList {
    /// Oldest first.
    pub endpoints: Vec<Endpoint>,
}

/// A new secret, shown this once.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct NewSecret {
    /// `whsec_…`: signs every delivery from now on.
    pub secret: String,
}

/// An endpoint's latest tries.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryLog {
    /// Newest first.
    pub attempts: Vec<LoggedAttempt>,
}

/// A queued test event.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Queued {
    /// Its `webhook-id`.
    pub message_id: String,
}

/// Which delivery to send again.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resend {
    /// The delivery, from the endpoint's log.
    pub delivery_id: Uuid,
}

/// `?limit=` of the delivery log.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// At most this many tries (1 to 100; 50 when absent).
    #[serde(default)]
    limit: Option<u64>,
}

fn webhook_error(error: WebhookError) -> ApiError {
    match error {
        WebhookError::NotFound => ApiError::NotFound,
        error @ WebhookError::Invalid { .. } => ApiError::BadRequest(error.to_string()),
        error @ WebhookError::TooMany => ApiError::Conflict(error.to_string()),
        error @ (WebhookError::Database(_) | WebhookError::Internal(_)) => internal(error),
    }
}

fn endpoint_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::NotFound)
}

/// `POST /v1/webhooks`.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", security(("api_key" = [])), request_body = NewEndpoint,
    responses((status = 201, description = "The endpoint, with its secret (shown only now)", body = CreatedEndpoint),
        (status = 400, description = "A field is unusable; the message names it", body = ErrorBody),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 409, description = "The organisation has as many endpoints as it may", body = ErrorBody)))]
#[post("/webhooks")]
pub(super) async fn create_webhook(
    tenant: ApiTenant,
    new: web::Json<NewEndpoint>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let created = state.webhooks.create(tenant.0, new.into_inner()).await.map_err(webhook_error)?;
    Ok(HttpResponse::Created().json(created))
}

/// `GET /v1/webhooks`.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", security(("api_key" = [])),
    responses((status = 200, description = "The endpoints", body = EndpointList), (status = 401, description = "No live API key", body = ErrorBody)))]
#[get("/webhooks")]
pub(super) async fn list_webhooks(tenant: ApiTenant, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let endpoints = state.webhooks.list(tenant.0).await.map_err(webhook_error)?;
    Ok(HttpResponse::Ok().json(EndpointList { endpoints }))
}

/// `GET /v1/webhooks/{id}`.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "The endpoint")),
    responses((status = 200, description = "The endpoint", body = Endpoint), (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[get("/webhooks/{id}")]
pub(super) async fn get_webhook(
    tenant: ApiTenant,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = state.webhooks.get(tenant.0, endpoint_id(&id)?).await.map_err(webhook_error)?;
    Ok(HttpResponse::Ok().json(endpoint))
}

/// `PATCH /v1/webhooks/{id}`.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "The endpoint")),
    request_body(content = EndpointChange, description = "Only the fields sent change"),
    responses((status = 200, description = "The changed endpoint", body = Endpoint),
        (status = 400, description = "A field is unusable; the message names it", body = ErrorBody),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[actix_web::patch("/webhooks/{id}")]
pub(super) async fn update_webhook(
    tenant: ApiTenant,
    id: web::Path<String>,
    change: web::Json<EndpointChange>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let changed = state.webhooks.update(tenant.0, endpoint_id(&id)?, change.into_inner()).await;
    Ok(HttpResponse::Ok().json(changed.map_err(webhook_error)?))
}

/// `DELETE /v1/webhooks/{id}`: the endpoint, its queued deliveries and its log.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "The endpoint")),
    responses((status = 204, description = "It is gone"), (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[delete("/webhooks/{id}")]
pub(super) async fn delete_webhook(
    tenant: ApiTenant,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.webhooks.delete(tenant.0, endpoint_id(&id)?).await.map_err(webhook_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /v1/webhooks/{id}/secret`: a new secret, which signs every delivery from now on (for 24 hours the
/// old one signs beside it).
#[utoipa::path(post, path = "/v1/webhooks/{id}/secret", tag = "webhooks", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "The endpoint")),
    responses((status = 200, description = "The new secret (shown only now); for 24 hours deliveries carry the old one's signature too", body = NewSecret),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[post("/webhooks/{id}/secret")]
pub(super) async fn rotate_webhook_secret(
    tenant: ApiTenant,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let secret = state.webhooks.rotate_secret(tenant.0, endpoint_id(&id)?).await.map_err(webhook_error)?;
    Ok(HttpResponse::Ok().json(NewSecret { secret }))
}

/// `GET /v1/webhooks/{id}/deliveries?limit=`: the endpoint's latest tries.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "The endpoint"), LogQuery),
    responses((status = 200, description = "The latest tries, newest first", body = DeliveryLog),
        (status = 400, description = "A field is unusable; the message names it", body = ErrorBody),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[get("/webhooks/{id}/deliveries")]
pub(super) async fn webhook_deliveries(
    tenant: ApiTenant,
    id: web::Path<String>,
    query: web::Query<LogQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=endpoints::MOST_LOGGED).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit: 1 to {}", endpoints::MOST_LOGGED)));
    }
    let attempts = state.webhooks.log(tenant.0, endpoint_id(&id)?, limit).await.map_err(webhook_error)?;
    Ok(HttpResponse::Ok().json(DeliveryLog { attempts }))
}

/// `POST /v1/webhooks/{id}/test`: queues a `webhook.test` event for this endpoint.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "The endpoint")),
    responses((status = 202, description = "Queued", body = Queued),
        (status = 400, description = "The endpoint is paused", body = ErrorBody),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[post("/webhooks/{id}/test")]
pub(super) async fn test_webhook(
    tenant: ApiTenant,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let message_id = state.webhooks.send_test(tenant.0, endpoint_id(&id)?).await.map_err(webhook_error)?;
    Ok(HttpResponse::Accepted().json(Queued { message_id }))
}

/// `POST /v1/webhooks/{id}/resend`: sends a delivery again, after the endpoint's others waiting.
#[utoipa::path(post, path = "/v1/webhooks/{id}/resend", tag = "webhooks", security(("api_key" = [])),
    params(("id" = Uuid, Path, description = "The endpoint")), request_body = Resend,
    responses((status = 202, description = "Queued again"),
        (status = 400, description = "A field is unusable; the message names it", body = ErrorBody),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "No such endpoint or delivery (or another tenant's)", body = ErrorBody)))]
#[post("/webhooks/{id}/resend")]
pub(super) async fn resend_webhook(
    tenant: ApiTenant,
    id: web::Path<String>,
    resend: web::Json<Resend>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.webhooks.resend(tenant.0, endpoint_id(&id)?, resend.delivery_id).await.map_err(webhook_error)?;
    Ok(HttpResponse::Accepted().finish())
}
