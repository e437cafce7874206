//! The public REST API under `/v1`: JSON in and out, `Authorization: Bearer <api key>`, and errors as
//! `{"error": "<snake_case_code>", "message": "..."}` with a matching status.

use actix_web::{
    FromRequest, HttpRequest, HttpResponse, ResponseError, delete, dev::Payload, get, http::StatusCode, http::header,
    post, web,
};
use convene_domain::TenantId;
use sea_orm::EntityTrait;
use serde_json::json;

use convene_tokens::PublicKey;

use crate::{
    accounts::Accounts,
    api_keys,
    entities::tenant,
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
            .service(list_meetings)
            .service(room_presence)
            .default_service(web::to(|| async { ApiError::NotFound })),
    );
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
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized) {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(json!({ "error": self.code(), "message": self.to_string() }))
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

/// `GET /v1/tenant`: the tenant the key belongs to (a cheap way to check a key).
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
    Ok(HttpResponse::Ok().json(json!({ "id": row.id, "name": row.name, "created_at": row.created_at })))
}

fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "a /v1 request failed");
    ApiError::Internal
}

/// `GET /v1/tenants/{id}/jwks.json`: the public keys that verify the tenant's room tokens (no key needed).
#[get("/tenants/{id}/jwks.json")]
async fn jwks(id: web::Path<String>, accounts: web::Data<Accounts>) -> Result<HttpResponse, ApiError> {
    let tenant = TenantId::parse(&id).map_err(|_| ApiError::NotFound)?;
    if !room_tokens::tenant_exists(accounts.db(), tenant).await.map_err(internal)? {
        return Err(ApiError::NotFound);
    }
    let (_, keys) = room_tokens::key_ring(accounts.db(), tenant).await.map_err(internal)?;
    let keys = keys.iter().map(PublicKey::jwk).collect::<Result<Vec<_>, _>>().map_err(internal)?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "public, max-age=300")).json(json!({ "keys": keys })))
}

/// `POST /v1/meeting-tokens`: a room token for one person, signed with the tenant's key.
#[post("/meeting-tokens")]
async fn meeting_token(
    tenant: ApiTenant,
    request: web::Json<room_tokens::TokenRequest>,
    accounts: web::Data<Accounts>,
    meet_url: web::Data<MeetUrl>,
) -> Result<HttpResponse, ApiError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .map_err(internal)?;
    match room_tokens::mint(accounts.db(), tenant.0, request.into_inner(), &meet_url.0, now).await {
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
#[get("/signing-keys")]
async fn list_keys(tenant: ApiTenant, accounts: web::Data<Accounts>) -> Result<HttpResponse, ApiError> {
    let keys = room_tokens::list_keys(accounts.db(), tenant.0).await.map_err(internal)?;
    Ok(HttpResponse::Ok().json(json!({ "keys": keys })))
}

/// `POST /v1/signing-keys`: registers the tenant's own public key (PEM or JWK).
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
#[post("/signing-keys/rotate")]
async fn rotate_key(tenant: ApiTenant, accounts: web::Data<Accounts>) -> Result<HttpResponse, ApiError> {
    let key = room_tokens::rotate(accounts.db(), tenant.0).await.map_err(mint_error)?;
    Ok(HttpResponse::Created().json(key))
}

/// `DELETE /v1/signing-keys/{name}`: the key stops verifying.
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
#[post("/rooms")]
async fn create_room(
    tenant: ApiTenant,
    new: web::Json<rooms::NewRoom>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let room = rooms::create(accounts.db(), tenant.0, new.into_inner()).await.map_err(room_error)?;
    Ok(HttpResponse::Created().json(room))
}

/// Paging through rooms by name.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    #[serde(default)]
    limit: Option<u64>,
    #[serde(default)]
    after: Option<String>,
}

/// `GET /v1/rooms?limit=&after=`: rooms by name; `next` is the `after` of the following page.
#[get("/rooms")]
async fn list_rooms(
    tenant: ApiTenant,
    page: web::Query<Page>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let limit = page.limit.unwrap_or(50);
    let (rooms, next) = rooms::list(accounts.db(), tenant.0, limit, page.after.as_deref()).await.map_err(room_error)?;
    Ok(HttpResponse::Ok().json(json!({ "rooms": rooms, "next": next })))
}

/// `GET /v1/rooms/{name}`.
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
#[get("/meetings")]
async fn list_meetings(
    tenant: ApiTenant,
    page: web::Query<Page>,
    accounts: web::Data<Accounts>,
) -> Result<HttpResponse, ApiError> {
    let after = match page.after.as_deref() {
        Some(cursor) => Some(
            uuid::Uuid::parse_str(cursor)
                .map_err(|_| ApiError::BadRequest("after: use the `next` value of the previous page".to_owned()))?,
        ),
        None => None,
    };
    let limit = page.limit.unwrap_or(50);
    let (meetings, next) = room_sessions::list(accounts.db(), tenant.0, limit, after).await.map_err(internal)?;
    Ok(HttpResponse::Ok().json(json!({ "meetings": meetings, "next": next })))
}

/// `GET /v1/rooms/{name}/presence`: who is in the room now.
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
    Ok(HttpResponse::Ok().json(json!({ "room": room.as_str(), "participants": participants })))
}
