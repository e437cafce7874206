//! The public REST API under `/v1`: JSON in and out, `Authorization: Bearer <api key>`, and errors as
//! `{"error": "<snake_case_code>", "message": "..."}` with a matching status.

use actix_web::{
    FromRequest, HttpRequest, HttpResponse, ResponseError, delete, dev::Payload, get, http::StatusCode, http::header,
    post, web,
};
use convene_domain::TenantId;
use sea_orm::EntityTrait;

use convene_tokens::PublicKey;

use crate::{
    accounts::Accounts,
    api_keys,
    entities::tenant,
    envelope::Envelope,
    meetings::{MeetingError, MeetingInput, MeetingService, ScheduledMeeting},
    rate_limit::MAIL_WINDOW_SECS,
    room_sessions, room_tokens,
    rooms::{self, RoomError},
};

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
            .service(current_tenant)
            .service(jwks)
            .service(meeting_token)
            .service(list_keys)
            .service(register_key)
            .service(rotate_key)
            .service(delete_key)
            .service(create_room)
            .service(list_rooms)
            .service(get_room)
            .service(update_room)
            .service(delete_room)
            .service(schedule_meeting)
            .service(list_scheduled)
            .service(get_scheduled)
            .service(replace_scheduled)
            .service(cancel_scheduled)
            .service(list_meetings)
            .service(room_presence)
            .default_service(web::to(|| async { ApiError::NotFound })),
    );
}

/// The body of every `/v1` error.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code: `unauthorized`, `not_found`, `invalid_request`, `conflict`, `rate_limited` or
    /// `internal`.
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
    /// The resource exists already.
    #[error("{0}")]
    Conflict(String),
    /// Too many requests of this kind for now; the message says which.
    #[error("{0}")]
    RateLimited(String),
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
            ApiError::Conflict(_) => "conflict",
            ApiError::RateLimited(_) => "rate_limited",
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
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
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
        let accounts = request.app_data::<web::Data<Accounts>>().cloned();
        Box::pin(async move {
            let (Some(key), Some(accounts)) = (key, accounts) else { return Err(ApiError::Unauthorized) };
            match api_keys::authenticate(accounts.db(), &key).await {
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

/// The tenant an API key belongs to.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TenantInfo {
    /// Its id: the `sub` of its room tokens and the first part of their `kid`.
    pub id: uuid::Uuid,
    /// Its name.
    pub name: String,
    /// When it signed up.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A JSON Web Key Set.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Jwks {
    /// Public keys as JWKs (RFC 7517), each with its `kid`.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<jsonwebtoken::jwk::Jwk>,
}

/// The tenant's room-token keys.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct KeyList {
    /// Every key, newest last.
    pub keys: Vec<room_tokens::KeyListing>,
}

/// A page of rooms.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RoomPage {
    /// Rooms by name.
    pub rooms: Vec<rooms::Room>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

/// A page of meetings (room sessions).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct MeetingPage {
    /// Sessions, newest first.
    pub meetings: Vec<room_sessions::Session>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<uuid::Uuid>,
}

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

/// Who is in a room now.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Presence {
    /// The room.
    pub room: String,
    /// Everyone in it, in order of joining.
    pub participants: Vec<room_sessions::Stay>,
}

/// `GET /v1/tenant`: the tenant the key belongs to (a cheap way to check a key).
#[utoipa::path(get, path = "/v1/tenant", tag = "tenant", security(("api_key" = [])),
    responses((status = 200, description = "The key's tenant", body = TenantInfo), (status = 401, description = "No live API key", body = ErrorBody)))]
#[get("/tenant")]
async fn current_tenant(tenant: ApiTenant, accounts: web::Data<Accounts>) -> Result<HttpResponse, ApiError> {
    let row = tenant::Entity::find_by_id(tenant.0.as_uuid())
        .one(accounts.db())
        .await
        .map_err(|error| {
            tracing::error!(%error, "cannot load a tenant");
            ApiError::Internal
        })?
        .ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(TenantInfo { id: row.id, name: row.name, created_at: row.created_at }))
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "a /v1 request failed");
    ApiError::Internal
}

/// `GET /v1/tenants/{id}/jwks.json`: the public keys that verify the tenant's room tokens (no key needed).
#[utoipa::path(get, path = "/v1/tenants/{id}/jwks.json", tag = "signing keys",
    params(("id" = String, Path, description = "The tenant's id")),
    responses((status = 200, description = "The tenant's public keys", body = Jwks), (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[get("/tenants/{id}/jwks.json")]
async fn jwks(id: web::Path<String>, accounts: web::Data<Accounts>) -> Result<HttpResponse, ApiError> {
    let tenant = TenantId::parse(&id).map_err(|_| ApiError::NotFound)?;
    if !room_tokens::tenant_exists(accounts.db(), tenant).await.map_err(internal)? {
        return Err(ApiError::NotFound);
    }
    let (_, keys) = room_tokens::key_ring(accounts.db(), tenant).await.map_err(internal)?;
    let keys = keys.iter().map(PublicKey::jwk).collect::<Result<Vec<_>, _>>().map_err(internal)?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "public, max-age=300")).json(Jwks { keys }))
}

/// `POST /v1/meeting-tokens`: a room token for one person, signed with the tenant's key.
#[utoipa::path(post, path = "/v1/meeting-tokens", tag = "meeting tokens", security(("api_key" = [])),
    request_body = room_tokens::TokenRequest,
    responses((status = 201, description = "The token and, for a named room, its link", body = room_tokens::MintedToken),
        (status = 400, description = "A field is unusable; the message names it", body = ErrorBody), (status = 401, description = "No live API key", body = ErrorBody)))]
#[post("/meeting-tokens")]
async fn meeting_token(
    tenant: ApiTenant,
    request: web::Json<room_tokens::TokenRequest>,
    accounts: web::Data<Accounts>,
    (meet_url, envelope): (web::Data<MeetUrl>, web::Data<Envelope>),
) -> Result<HttpResponse, ApiError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .map_err(internal)?;
    match room_tokens::mint(accounts.db(), &envelope, tenant.0, request.into_inner(), &meet_url.0, now).await {
        Ok(minted) => Ok(HttpResponse::Created().json(minted)),
        Err(error) => Err(mint_error(error)),
    }
}

fn mint_error(error: room_tokens::MintError) -> ApiError {
    match error {
        room_tokens::MintError::Invalid(message) => ApiError::BadRequest(message),
        other => internal(other),
    }
}

/// `GET /v1/signing-keys`: the tenant's room-token keys.
#[utoipa::path(get, path = "/v1/signing-keys", tag = "signing keys", security(("api_key" = [])),
    responses((status = 200, description = "The tenant's keys", body = KeyList), (status = 401, description = "No live API key", body = ErrorBody)))]
#[get("/signing-keys")]
async fn list_keys(tenant: ApiTenant, accounts: web::Data<Accounts>) -> Result<HttpResponse, ApiError> {
    let keys = room_tokens::list_keys(accounts.db(), tenant.0).await.map_err(internal)?;
    Ok(HttpResponse::Ok().json(KeyList { keys }))
}

/// `POST /v1/signing-keys`: registers the tenant's own public key (PEM or JWK).
#[utoipa::path(post, path = "/v1/signing-keys", tag = "signing keys", security(("api_key" = [])),
    request_body = room_tokens::KeyRegistration,
    responses((status = 201, description = "The key is registered", body = room_tokens::KeyListing),
        (status = 400, description = "A field is unusable; the message names it", body = ErrorBody), (status = 401, description = "No live API key", body = ErrorBody)))]
#[post("/signing-keys")]
async fn register_key(
    tenant: ApiTenant,
    registration: web::Json<room_tokens::KeyRegistration>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let key =
        room_tokens::register_key(accounts.db(), tenant.0, registration.into_inner()).await.map_err(mint_error)?;
    Ok(HttpResponse::Created().json(key))
}

/// `POST /v1/signing-keys/rotate`: a new key for our tokens; the old one keeps verifying.
#[utoipa::path(post, path = "/v1/signing-keys/rotate", tag = "signing keys", security(("api_key" = [])),
    responses((status = 201, description = "The new key", body = room_tokens::KeyListing),
        (status = 400, description = "The tenant has its most keys; delete one first", body = ErrorBody),
        (status = 401, description = "No live API key", body = ErrorBody)))]
#[post("/signing-keys/rotate")]
async fn rotate_key(
    tenant: ApiTenant,
    accounts: web::Data<Accounts>,
    envelope: web::Data<Envelope>,
) -> Result<HttpResponse, ApiError> {
    let key = room_tokens::rotate(accounts.db(), &envelope, tenant.0).await.map_err(mint_error)?;
    Ok(HttpResponse::Created().json(key))
}

/// `DELETE /v1/signing-keys/{name}`: the key stops verifying.
#[utoipa::path(delete, path = "/v1/signing-keys/{name}", tag = "signing keys", security(("api_key" = [])),
    params(("name" = String, Path, description = "The key's name (the part of the `kid` after the slash)")),
    responses((status = 204, description = "The key no longer verifies"), (status = 401, description = "No live API key", body = ErrorBody), (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[delete("/signing-keys/{name}")]
async fn delete_key(
    tenant: ApiTenant,
    name: web::Path<String>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    if room_tokens::delete_key(accounts.db(), tenant.0, &name).await.map_err(internal)? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}

fn room_error(error: RoomError) -> ApiError {
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
async fn create_room(
    tenant: ApiTenant,
    new: web::Json<rooms::NewRoom>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let room = rooms::create(accounts.db(), tenant.0, new.into_inner()).await.map_err(room_error)?;
    Ok(HttpResponse::Created().json(room))
}

/// Paging: `limit` items (1–100, default 50) after the cursor `after`, which is the previous page's `next`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    after: Option<String>,
}

/// `GET /v1/rooms?limit=&after=`: rooms by name; `next` is the `after` of the following page.
#[utoipa::path(get, path = "/v1/rooms", tag = "rooms", security(("api_key" = [])), params(Page),
    responses((status = 200, description = "A page of rooms by name", body = RoomPage), (status = 400, description = "A field is unusable; the message names it", body = ErrorBody), (status = 401, description = "No live API key", body = ErrorBody)))]
#[get("/rooms")]
async fn list_rooms(
    tenant: ApiTenant,
    page: web::Query<Page>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let limit = page.limit.unwrap_or(50);
    let (rooms, next) = rooms::list(accounts.db(), tenant.0, limit, page.after.as_deref()).await.map_err(room_error)?;
    Ok(HttpResponse::Ok().json(RoomPage { rooms, next }))
}

/// `GET /v1/rooms/{name}`.
#[utoipa::path(get, path = "/v1/rooms/{name}", tag = "rooms", security(("api_key" = [])), params(("name" = String, Path, description = "The room's name")),
    responses((status = 200, description = "The room", body = rooms::Room), (status = 401, description = "No live API key", body = ErrorBody), (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[get("/rooms/{name}")]
async fn get_room(
    tenant: ApiTenant,
    name: web::Path<String>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let room = rooms::get(accounts.db(), tenant.0, &name).await.map_err(room_error)?;
    Ok(HttpResponse::Ok().json(room))
}

/// `PATCH /v1/rooms/{name}`.
#[utoipa::path(patch, path = "/v1/rooms/{name}", tag = "rooms", security(("api_key" = [])), params(("name" = String, Path, description = "The room's name")),
    request_body(content = rooms::RoomChange, description = "Only the fields sent change; `null` clears an optional one"),
    responses((status = 200, description = "The changed room", body = rooms::Room), (status = 400, description = "A field is unusable; the message names it", body = ErrorBody), (status = 401, description = "No live API key", body = ErrorBody), (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[actix_web::patch("/rooms/{name}")]
async fn update_room(
    tenant: ApiTenant,
    name: web::Path<String>,
    change: web::Json<rooms::RoomChange>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let room = rooms::update(accounts.db(), tenant.0, &name, change.into_inner()).await.map_err(room_error)?;
    Ok(HttpResponse::Ok().json(room))
}

/// `DELETE /v1/rooms/{name}`.
#[utoipa::path(delete, path = "/v1/rooms/{name}", tag = "rooms", security(("api_key" = [])),
    params(("name" = String, Path, description = "The room's name")),
    responses((status = 204, description = "The room is gone"), (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[delete("/rooms/{name}")]
async fn delete_room(
    tenant: ApiTenant,
    name: web::Path<String>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    rooms::delete(accounts.db(), tenant.0, &name).await.map_err(room_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v1/meetings?limit=&after=`: past and ongoing sessions, newest first, with participants and durations;
/// `next` is the `after` of the following page.
#[utoipa::path(get, path = "/v1/meetings", tag = "meetings", security(("api_key" = [])), params(Page),
    responses((status = 200, description = "A page of sessions, newest first", body = MeetingPage),
        (status = 400, description = "A field is unusable; the message names it", body = ErrorBody),
        (status = 401, description = "No live API key", body = ErrorBody)))]
#[get("/meetings")]
async fn list_meetings(
    tenant: ApiTenant,
    page: web::Query<Page>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let after = cursor(page.after.as_deref())?;
    let limit = page.limit.unwrap_or(50);
    let (meetings, next) = room_sessions::list(accounts.db(), tenant.0, limit, after).await.map_err(internal)?;
    Ok(HttpResponse::Ok().json(MeetingPage { meetings, next }))
}

/// `GET /v1/rooms/{name}/presence`: who is in the room now.
#[utoipa::path(get, path = "/v1/rooms/{name}/presence", tag = "meetings", security(("api_key" = [])),
    params(("name" = String, Path, description = "The room's name")),
    responses((status = 200, description = "Who is in the room now", body = Presence),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[get("/rooms/{name}/presence")]
async fn room_presence(
    tenant: ApiTenant,
    name: web::Path<String>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let room = convene_domain::RoomName::parse(&name).map_err(|_| ApiError::NotFound)?;
    let db = accounts.db();
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

/// The OpenAPI 3.1 document of `/v1`, generated from the handlers and types above.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Convene API", description = "Rooms, meeting tokens, signing keys and meetings of one tenant."),
    paths(
        current_tenant, jwks, meeting_token, list_keys, register_key, rotate_key, delete_key, create_room,
        list_rooms, get_room, update_room, delete_room, schedule_meeting, list_scheduled, get_scheduled,
        replace_scheduled, cancel_scheduled, list_meetings, room_presence
    ),
    modifiers(&BearerKey),
    tags(
        (name = "tenant", description = "The tenant behind the API key"),
        (name = "rooms", description = "Named rooms and their settings"),
        (name = "meeting tokens", description = "Room tokens (JWTs) that open a meeting for one person"),
        (name = "signing keys", description = "The keys that sign and verify room tokens"),
        (name = "scheduled meetings", description = "Meetings scheduled ahead, with invitations by mail"),
        (name = "meetings", description = "Past and ongoing sessions, and who is in a room now"),
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

fn meeting_error(error: MeetingError) -> ApiError {
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

fn cursor(after: Option<&str>) -> Result<Option<uuid::Uuid>, ApiError> {
    after
        .map(|text| {
            uuid::Uuid::parse_str(text)
                .map_err(|_| ApiError::BadRequest("after: use the `next` value of the previous page".to_owned()))
        })
        .transpose()
}

/// `POST /v1/scheduled-meetings`: schedules a meeting in a new room and mails the invitations.
#[utoipa::path(post, path = "/v1/scheduled-meetings", tag = "scheduled meetings", security(("api_key" = [])),
    request_body = ScheduleRequest,
    responses((status = 201, description = "The meeting", body = ScheduledMeeting),
        (status = 400, description = "A field is unusable; the message names it", body = ErrorBody),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 429, description = "Too much meeting mail from this organisation this hour; see `Retry-After`", body = ErrorBody)))]
#[post("/scheduled-meetings")]
async fn schedule_meeting(
    tenant: ApiTenant,
    request: web::Json<ScheduleRequest>,
    meetings: web::Data<MeetingService>,
) -> Result<HttpResponse, ApiError> {
    let ScheduleRequest { organizer, meeting } = request.into_inner();
    let actor = meetings.api_actor(tenant.0, &organizer).await.map_err(meeting_error)?;
    let (id, delivery) = meetings.schedule(actor, meeting).await.map_err(meeting_error)?;
    let mut scheduled = meetings.scheduled(tenant.0, id).await.map_err(meeting_error)?;
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
async fn list_scheduled(
    tenant: ApiTenant,
    page: web::Query<Page>,
    meetings: web::Data<MeetingService>,
) -> Result<HttpResponse, ApiError> {
    let after = cursor(page.after.as_deref())?;
    let (scheduled_meetings, next) =
        meetings.scheduled_page(tenant.0, page.limit.unwrap_or(50), after).await.map_err(meeting_error)?;
    Ok(HttpResponse::Ok().json(ScheduledPage { scheduled_meetings, next }))
}

/// `GET /v1/scheduled-meetings/{id}`.
#[utoipa::path(get, path = "/v1/scheduled-meetings/{id}", tag = "scheduled meetings", security(("api_key" = [])),
    params(("id" = uuid::Uuid, Path, description = "The meeting's id")),
    responses((status = 200, description = "The meeting", body = ScheduledMeeting),
        (status = 401, description = "No live API key", body = ErrorBody),
        (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[get("/scheduled-meetings/{id}")]
async fn get_scheduled(
    tenant: ApiTenant,
    id: web::Path<String>,
    meetings: web::Data<MeetingService>,
) -> Result<HttpResponse, ApiError> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(meetings.scheduled(tenant.0, id).await.map_err(meeting_error)?))
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
async fn replace_scheduled(
    tenant: ApiTenant,
    id: web::Path<String>,
    request: web::Json<ScheduleRequest>,
    meetings: web::Data<MeetingService>,
) -> Result<HttpResponse, ApiError> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    let ScheduleRequest { organizer, meeting } = request.into_inner();
    // Another tenant's meeting is not found, whoever is named as organiser.
    meetings.scheduled(tenant.0, id).await.map_err(meeting_error)?;
    let actor = meetings.api_actor(tenant.0, &organizer).await.map_err(meeting_error)?;
    let delivery = meetings.update(actor, id, meeting).await.map_err(meeting_error)?;
    let mut scheduled = meetings.scheduled(tenant.0, id).await.map_err(meeting_error)?;
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
async fn cancel_scheduled(
    tenant: ApiTenant,
    id: web::Path<String>,
    who: web::Query<Organizer>,
    meetings: web::Data<MeetingService>,
) -> Result<HttpResponse, ApiError> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    meetings.scheduled(tenant.0, id).await.map_err(meeting_error)?;
    let actor = meetings.api_actor(tenant.0, &who.organizer).await.map_err(meeting_error)?;
    meetings.cancel(actor, id).await.map_err(meeting_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Who cancels: the cancellation mail goes out in their name.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Organizer {
    /// A moderator, admin or owner of the tenant.
    organizer: String,
}
