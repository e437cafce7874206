//! `GET /v1/tenant`: the tenant behind the API key.

use actix_web::{HttpResponse, get, web};

use super::{ApiError, ApiTenant, ErrorBody, internal};
use crate::http::AppState;
use crate::people::tenants;

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

/// `GET /v1/tenant`: the tenant the key belongs to (a cheap way to check a key).
#[utoipa::path(get, path = "/v1/tenant", tag = "tenant", security(("api_key" = [])),
    responses((status = 200, description = "The key's tenant", body = TenantInfo), (status = 401, description = "No live API key", body = ErrorBody)))]
#[get("/tenant")]
pub(super) async fn current_tenant(tenant: ApiTenant, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let row = tenants::find(&state.db, tenant.0).await.map_err(internal)?.ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(TenantInfo { id: row.id, name: row.name, created_at: row.created_at }))
}
