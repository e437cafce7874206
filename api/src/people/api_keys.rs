//! API keys for the `/v1` REST API: created by owners and admins, shown once, stored as SHA-256, named,
//! with a last-used time, revocable. Keys carry 256 random bits, so SHA-256 is enough to store them:
//! unlike a password there is nothing to brute-force.

use std::sync::LazyLock;

use chrono::Utc;
use convene_domain::TenantId;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    entities::api_key,
    platform::{
        recent::{FRESH_FOR, Recent},
        secrets::token_hash,
    },
};

/// Every key starts with this, so leaked keys are easy to recognise (and to scan for).
const PREFIX: &str = "cvn_";
/// Characters of the key kept in clear to tell keys apart in lists.
const SHOWN_LEN: usize = 12;
/// Longest key name.
pub const MAX_NAME_LEN: usize = 100;
/// `last_used_at` is written at most this often per key, so busy keys do not write on every request.
const LAST_USED_PRECISION: chrono::TimeDelta = chrono::TimeDelta::minutes(1);
/// Live keys' tenants by the keys' hashes, so a backend minting a token per join reads its key once a
/// second (a revocation here is seen at once, on another replica within a second). Unknown keys are not
/// kept: guesses cannot push live keys out.
static AUTHENTICATED: LazyLock<Recent<String, TenantId>> = LazyLock::new(|| Recent::new(10_000, FRESH_FOR));

/// A key just created: the only moment its secret exists outside the caller's hands.
#[derive(Debug, Serialize)]
pub struct NewApiKey {
    /// The key's id (for revocation).
    pub api_key_id: Uuid,
    /// The key itself.
    pub api_key: String,
}

/// Why a key could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// Empty or overlong name.
    #[error("key names are 1 to {MAX_NAME_LEN} characters")]
    Name,
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// No randomness.
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

/// Creates a key for `tenant`, inside the caller's transaction or connection.
pub async fn create(db: &impl ConnectionTrait, tenant: TenantId, name: &str) -> Result<NewApiKey, ApiKeyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(ApiKeyError::Name);
    }
    let key = format!("{PREFIX}{}", crate::platform::secrets::random_token()?);
    let id = Uuid::now_v7();
    api_key::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant.as_uuid()),
        name: Set(name.to_owned()),
        prefix: Set(key.chars().take(SHOWN_LEN).collect()),
        secret_hash: Set(token_hash(&key)),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(NewApiKey { api_key_id: id, api_key: key })
}

/// The tenant's keys, newest first, revoked ones included (they stay listed for the record).
pub async fn list(db: &impl ConnectionTrait, tenant: TenantId) -> Result<Vec<api_key::Model>, DbErr> {
    api_key::Entity::find()
        .filter(api_key::Column::TenantId.eq(tenant.as_uuid()))
        .order_by_desc(api_key::Column::CreatedAt)
        .all(db)
        .await
}

/// Revokes a key of `tenant`. `false` when the tenant has no such live key: another tenant's key id is
/// indistinguishable from a missing one.
pub async fn revoke(db: &impl ConnectionTrait, tenant: TenantId, id: Uuid) -> Result<Option<api_key::Model>, DbErr> {
    let Some(key) = api_key::Entity::find_by_id(id)
        .filter(api_key::Column::TenantId.eq(tenant.as_uuid()))
        .filter(api_key::Column::RevokedAt.is_null())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let hash = key.secret_hash.clone();
    let mut active: api_key::ActiveModel = key.into();
    active.revoked_at = Set(Some(Utc::now()));
    let revoked = active.update(db).await?;
    // After the write, so only a request that read the key before it and answers after this can keep it, for
    // at most `FRESH_FOR`, as on another replica.
    AUTHENTICATED.forget(&hash);
    Ok(Some(revoked))
}

/// The tenant a presented key belongs to, if it is live; records its use.
pub async fn authenticate(db: &impl ConnectionTrait, presented: &str) -> Result<Option<TenantId>, DbErr> {
    if !presented.starts_with(PREFIX) || presented.len() > 128 {
        return Ok(None);
    }
    let hash = token_hash(presented);
    if let Some(tenant) = AUTHENTICATED.get(&hash) {
        return Ok(Some(tenant));
    }
    let Some(key) = api_key::Entity::find()
        .filter(api_key::Column::SecretHash.eq(&hash))
        .filter(api_key::Column::RevokedAt.is_null())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let tenant = TenantId::from(key.tenant_id);
    let now = Utc::now();
    if key.last_used_at.is_none_or(|last| now - last >= LAST_USED_PRECISION) {
        let mut active: api_key::ActiveModel = key.into();
        active.last_used_at = Set(Some(now));
        active.update(db).await?;
    }
    AUTHENTICATED.put(hash, tenant);
    Ok(Some(tenant))
}
