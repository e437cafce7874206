//! The public REST API under `/v1`: JSON in and out, `Authorization: Bearer <api key>`, and errors as
//! `{"error": "<snake_case_code>", "message": "..."}` with a matching status.

use actix_web::{
    FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, get, http::StatusCode, http::header, web,
};
use convene_domain::TenantId;

use crate::{http::AppState, people::api_keys, platform::rate_limit::MAIL_WINDOW_SECS};

mod dial_in;
mod keys;
mod recordings;
mod rooms;
mod scheduled;
mod sessions;
mod tenant;
mod webhooks;

/// The meet host's public URL, for join links.
#[derive(Debug, Clone)]
pub struct MeetUrl(pub url::Url);

/// Bodies of `/v1` requests are small JSON documents.
const MAX_JSON_BYTES: usize = 64 * 1024;

/// Registers the `/v1` endpoints that exist so far.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let query = web::QueryConfig::default().error_handler(|error, _| ApiError::BadRequest(error.to_string()).into());
    let json = web::JsonConfig::default()
        .limit(MAX_JSON_BYTES)
        .error_handler(|error, _| ApiError::BadRequest(error.to_string()).into());
    cfg.service(
        web::scope("/v1")
            .app_data(json)
            .app_data(query)
            .service(openapi_document)
            .service(tenant::current_tenant)
            .service(tenant::update_tenant)
            .service(keys::jwks)
            .service(keys::meeting_token)
            .service(keys::list_keys)
            .service(keys::register_key)
            .service(keys::rotate_key)
            .service(keys::delete_key)
            .service(rooms::create_room)
            .service(rooms::list_rooms)
            .service(rooms::get_room)
            .service(rooms::update_room)
            .service(rooms::delete_room)
            .service(scheduled::schedule_meeting)
            .service(scheduled::list_scheduled)
            .service(scheduled::get_scheduled)
            .service(scheduled::replace_scheduled)
            .service(scheduled::cancel_scheduled)
            .service(sessions::list_meetings)
            .service(sessions::room_presence)
            .service(recordings::start_recording)
            .service(recordings::stop_recording)
            .service(recordings::start_live_stream)
            .service(recordings::stop_live_stream)
            .service(recordings::list_recordings)
            .service(recordings::get_recording)
            .service(recordings::delete_recording)
            .service(dial_in::room_dial_in)
            .service(dial_in::dial_in_numbers)
            .service(dial_in::dial_out)
            .service(webhooks::create_webhook)
            .service(webhooks::list_webhooks)
            .service(webhooks::get_webhook)
            .service(webhooks::update_webhook)
            .service(webhooks::delete_webhook)
            .service(webhooks::rotate_webhook_secret)
            .service(webhooks::webhook_deliveries)
            .service(webhooks::test_webhook)
            .service(webhooks::resend_webhook)
            .default_service(web::to(|| async { ApiError::NotFound })),
    );
}

/// The body of every `/v1` error.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code: `unauthorized`, `not_found`, `invalid_request`, `forbidden`, `conflict`, `rate_limited`,
    /// `unavailable` or `internal`.
    pub error: &'static str,
    /// What went wrong, for people; names the field at fault.
    pub message: String,
}

/// Every `/v1` failure, with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No key, a malformed header, or a revoked or unknown key.
    #[error("send a live API key as `Authorization: Bearer <key>`")]
    Unauthorized,
    /// No such resource (or another tenant's).
    #[error("not found")]
    NotFound,
    /// The request body or a field is unusable; the message names it.
    #[error("{0}")]
    BadRequest(String),
    /// The plan (or a setting) does not allow it; the message says what would.
    #[error("{0}")]
    Forbidden(String),
    /// The resource exists already, or its state does not allow this now.
    #[error("{0}")]
    Conflict(String),
    /// Too many requests of this kind for now; the message says which.
    #[error("{0}")]
    RateLimited(String),
    /// A part of the service the request needs did not answer (a meeting's media node); try again.
    #[error("{0}")]
    Unavailable(String),
    /// A server-side failure, logged.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound => "not_found",
            ApiError::BadRequest(_) => "invalid_request",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Conflict(_) => "conflict",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal => "internal",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::RateLimited(_) => {
                response.insert_header((header::RETRY_AFTER, MAIL_WINDOW_SECS.to_string()));
            }
            _ => {}
        }
        response.json(ErrorBody { error: self.code(), message: self.to_string() })
    }
}

impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;
    fn respond_to(self, _: &HttpRequest) -> HttpResponse {
        self.error_response()
    }
}

/// The tenant an API request acts for, from its bearer key.
#[derive(Debug, Clone, Copy)]
pub struct ApiTenant(pub TenantId);

impl FromRequest for ApiTenant {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(|key| key.trim().to_owned());
        let state = request.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let (Some(key), Some(state)) = (key, state) else { return Err(ApiError::Unauthorized) };
            match api_keys::authenticate(&state.db, &key).await {
                Ok(Some(tenant)) => Ok(ApiTenant(tenant)),
                Ok(None) => Err(ApiError::Unauthorized),
                Err(error) => {
                    tracing::error!(%error, "cannot check an API key");
                    Err(ApiError::Internal)
                }
            }
        })
    }
}

pub(super) fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "a /v1 request failed");
    ApiError::Internal
}

/// The OpenAPI 3.1 document of `/v1`, generated from the handlers and types above.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Convene API", description = "Rooms, meeting tokens, signing keys, meetings and webhooks of one tenant."),
    paths(
        tenant::current_tenant, tenant::update_tenant, keys::jwks, keys::meeting_token, keys::list_keys, keys::register_key, keys::rotate_key, keys::delete_key, rooms::create_room,
        rooms::list_rooms, rooms::get_room, rooms::update_room, rooms::delete_room, scheduled::schedule_meeting, scheduled::list_scheduled, scheduled::get_scheduled,
        scheduled::replace_scheduled, scheduled::cancel_scheduled, sessions::list_meetings, sessions::room_presence,
        recordings::start_recording, recordings::stop_recording, recordings::start_live_stream,
        recordings::stop_live_stream, recordings::list_recordings, recordings::get_recording,
        recordings::delete_recording, dial_in::room_dial_in, dial_in::dial_in_numbers, dial_in::dial_out,
        webhooks::create_webhook, webhooks::list_webhooks, webhooks::get_webhook, webhooks::update_webhook,
        webhooks::delete_webhook, webhooks::rotate_webhook_secret, webhooks::webhook_deliveries,
        webhooks::test_webhook, webhooks::resend_webhook
    ),
    modifiers(&BearerKey),
    tags(
        (name = "tenant", description = "The tenant behind the API key"),
        (name = "rooms", description = "Named rooms and their settings"),
        (name = "meeting tokens", description = "Room tokens (JWTs) that open a meeting for one person"),
        (name = "signing keys", description = "The keys that sign and verify room tokens"),
        (name = "scheduled meetings", description = "Meetings scheduled ahead, with invitations by mail"),
        (name = "meetings", description = "Past and ongoing sessions, and who is in a room now"),
        (name = "recordings", description = "Recording meetings and streaming them live, and the recordings made"),
        (name = "dial-in", description = "Joining meetings by phone: numbers and PINs; calling phones in"),
        (name = "webhooks", description = "Signed posts of the organisation's events (Standard Webhooks) to its endpoints"),
    )
)]
pub struct ApiDoc;

/// API keys travel as `Authorization: Bearer <key>`.
struct BearerKey;

impl utoipa::Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("An API key from the site's API keys page"))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("api_key", SecurityScheme::Http(scheme));
    }
}

/// `GET /v1/openapi.json`: this API's OpenAPI document (no key needed), built once.
#[get("/openapi.json")]
async fn openapi_document() -> HttpResponse {
    static DOCUMENT: std::sync::LazyLock<serde_json::Value> =
        std::sync::LazyLock::new(|| super::openapi::published(&<ApiDoc as utoipa::OpenApi>::openapi()));
    HttpResponse::Ok().json(&*DOCUMENT)
}

pub(super) fn cursor(after: Option<&str>) -> Result<Option<uuid::Uuid>, ApiError> {
    after
        .map(|text| {
            uuid::Uuid::parse_str(text)
                .map_err(|_| ApiError::BadRequest("after: use the `next` value of the previous page".to_owned()))
        })
        .transpose()
}

/// Paging: `limit` items (1–100, default 50) after the cursor `after`, which is the previous page's `next`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    #[serde(default)]
    pub(super) limit: Option<u64>,
    #[serde(default)]
    pub(super) after: Option<String>,
}
