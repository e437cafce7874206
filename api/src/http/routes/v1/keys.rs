//! Room tokens and the keys that sign and verify them: `/v1/meeting-tokens`, `/v1/signing-keys` and each
//! tenant's public JWKS.

use actix_web::{HttpResponse, delete, get, http::header, post, web};
use convene_domain::TenantId;
use convene_tokens::PublicKey;

use super::{ApiError, ApiTenant, ErrorBody, internal};
use crate::{http::AppState, meetings::room_tokens};

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

/// `GET /v1/tenants/{id}/jwks.json`: the public keys that verify the tenant's room tokens (no key needed).
#[utoipa::path(get, path = "/v1/tenants/{id}/jwks.json", tag = "signing keys",
    params(("id" = String, Path, description = "The tenant's id")),
    responses((status = 200, description = "The tenant's public keys", body = Jwks), (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[get("/tenants/{id}/jwks.json")]
pub(super) async fn jwks(id: web::Path<String>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let tenant = TenantId::parse(&id).map_err(|_| ApiError::NotFound)?;
    if !room_tokens::tenant_exists(&state.db, tenant).await.map_err(internal)? {
        return Err(ApiError::NotFound);
    }
    let (_, keys) = room_tokens::key_ring(&state.db, tenant).await.map_err(internal)?;
    let keys = keys.iter().map(PublicKey::jwk).collect::<Result<Vec<_>, _>>().map_err(internal)?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "public, max-age=300")).json(Jwks { keys }))
}

/// `POST /v1/meeting-tokens`: a room token for one person, signed with the tenant's key.
#[utoipa::path(post, path = "/v1/meeting-tokens", tag = "meeting tokens", security(("api_key" = [])),
    request_body = room_tokens::TokenRequest,
    responses((status = 201, description = "The token and, for a named room, its link", body = room_tokens::MintedToken),
        (status = 400, description = "A field is unusable; the message names it", body = ErrorBody), (status = 401, description = "No live API key", body = ErrorBody)))]
#[post("/meeting-tokens")]
pub(super) async fn meeting_token(
    tenant: ApiTenant,
    request: web::Json<room_tokens::TokenRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .map_err(internal)?;
    match room_tokens::mint(&state.db, &state.envelope, tenant.0, request.into_inner(), &state.meet_url.0, now).await {
        Ok(minted) => Ok(HttpResponse::Created().json(minted)),
        Err(error) => Err(mint_error(error)),
    }
}

pub(super) fn mint_error(error: room_tokens::MintError) -> ApiError {
    match error {
        room_tokens::MintError::Invalid(message) => ApiError::BadRequest(message),
        other => internal(other),
    }
}

/// `GET /v1/signing-keys`: the tenant's room-token keys.
#[utoipa::path(get, path = "/v1/signing-keys", tag = "signing keys", security(("api_key" = [])),
    responses((status = 200, description = "The tenant's keys", body = KeyList), (status = 401, description = "No live API key", body = ErrorBody)))]
#[get("/signing-keys")]
pub(super) async fn list_keys(tenant: ApiTenant, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let keys = room_tokens::list_keys(&state.db, tenant.0).await.map_err(internal)?;
    Ok(HttpResponse::Ok().json(KeyList { keys }))
}

/// `POST /v1/signing-keys`: registers the tenant's own public key (PEM or JWK).
#[utoipa::path(post, path = "/v1/signing-keys", tag = "signing keys", security(("api_key" = [])),
    request_body = room_tokens::KeyRegistration,
    responses((status = 201, description = "The key is registered", body = room_tokens::KeyListing),
        (status = 400, description = "A field is unusable; the message names it", body = ErrorBody), (status = 401, description = "No live API key", body = ErrorBody)))]
#[post("/signing-keys")]
pub(super) async fn register_key(
    tenant: ApiTenant,
    registration: web::Json<room_tokens::KeyRegistration>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let key = room_tokens::register_key(&state.db, tenant.0, registration.into_inner()).await.map_err(mint_error)?;
    Ok(HttpResponse::Created().json(key))
}

/// `POST /v1/signing-keys/rotate`: a new key for our tokens; the old one keeps verifying.
#[utoipa::path(post, path = "/v1/signing-keys/rotate", tag = "signing keys", security(("api_key" = [])),
    responses((status = 201, description = "The new key", body = room_tokens::KeyListing),
        (status = 400, description = "The tenant has its most keys; delete one first", body = ErrorBody),
        (status = 401, description = "No live API key", body = ErrorBody)))]
#[post("/signing-keys/rotate")]
pub(super) async fn rotate_key(tenant: ApiTenant, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let key = room_tokens::rotate(&state.db, &state.envelope, tenant.0).await.map_err(mint_error)?;
    Ok(HttpResponse::Created().json(key))
}

/// `DELETE /v1/signing-keys/{name}`: the key stops verifying.
#[utoipa::path(delete, path = "/v1/signing-keys/{name}", tag = "signing keys", security(("api_key" = [])),
    params(("name" = String, Path, description = "The key's name (the part of the `kid` after the slash)")),
    responses((status = 204, description = "The key no longer verifies"), (status = 401, description = "No live API key", body = ErrorBody), (status = 404, description = "Not found (or another tenant's)", body = ErrorBody)))]
#[delete("/signing-keys/{name}")]
pub(super) async fn delete_key(
    tenant: ApiTenant,
    name: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if room_tokens::delete_key(&state.db, tenant.0, &name).await.map_err(internal)? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}
