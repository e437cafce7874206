//! `GET /v1/tenant`: the tenant behind the API key; `PATCH /v1/tenant`: its settings.

use actix_web::{HttpResponse, get, patch, web};
use convene_domain::Region;

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
    /// The region whose media nodes run its meetings unless a token's `context.region` asks for another
    /// (`eu-west-1`); `null`: any region. A meeting goes to another region when none of this one's nodes
    /// can take it.
    #[schema(value_type = Option<String>)]
    pub media_region: Option<Region>,
}

impl From<crate::entities::tenant::Model> for TenantInfo {
    fn from(row: crate::entities::tenant::Model) -> Self {
        Self {
            id: row.id,
            name: row.name,
            created_at: row.created_at,
            // Written only through `Region`.
            media_region: row.media_region.and_then(|region| Region::parse(&region).ok()),
        }
    }
}

/// What `PATCH /v1/tenant` changes: only the fields sent.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantChange {
    /// A region name (`null`: any region).
    #[serde(default, deserialize_with = "crate::meetings::rooms::present")]
    #[schema(value_type = Option<String>)]
    media_region: Option<Option<Region>>,
}

/// `GET /v1/tenant`: the tenant the key belongs to (a cheap way to check a key).
#[utoipa::path(get, path = "/v1/tenant", tag = "tenant", security(("api_key" = [])),
    responses((status = 200, description = "The key's tenant", body = TenantInfo), (status = 401, description = "No live API key", body = ErrorBody)))]
#[get("/tenant")]
pub(super) async fn current_tenant(tenant: ApiTenant, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let row = tenants::find(&state.db, tenant.0).await.map_err(internal)?.ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(TenantInfo::from(row)))
}

/// `PATCH /v1/tenant`: changes the tenant's settings.
#[utoipa::path(patch, path = "/v1/tenant", tag = "tenant", security(("api_key" = [])),
    request_body(content = TenantChange, description = "Only the fields sent change; `null` clears one"),
    responses((status = 200, description = "The changed tenant", body = TenantInfo), (status = 400, description = "A field is unusable; the message names it", body = ErrorBody), (status = 401, description = "No live API key", body = ErrorBody)))]
#[patch("/tenant")]
pub(super) async fn update_tenant(
    tenant: ApiTenant,
    change: web::Json<TenantChange>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let row = match &change.media_region {
        Some(region) => tenants::set_media_region(&state.db, tenant.0, region.as_ref()).await,
        None => tenants::find(&state.db, tenant.0).await,
    };
    let row = row.map_err(internal)?.ok_or(ApiError::NotFound)?;
    Ok(HttpResponse::Ok().json(TenantInfo::from(row)))
}
