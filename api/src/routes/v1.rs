//! The public REST API under `/v1`: JSON in and out, `Authorization: Bearer <api key>`, and errors as
//! `{"error": "<snake_case_code>", "message": "..."}` with a matching status.

use actix_web::{
    FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, get, http::StatusCode, http::header, web,
};
use convene_domain::TenantId;
use sea_orm::EntityTrait;
use serde_json::json;

use crate::{accounts::Accounts, api_keys, entities::tenant};

/// Registers the `/v1` endpoints that exist so far.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope("/v1").service(current_tenant).default_service(web::to(|| async { ApiError::NotFound })));
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
    /// A server-side failure, logged.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::NotFound => "not_found",
            ApiError::Internal => "internal",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound => StatusCode::NOT_FOUND,
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
