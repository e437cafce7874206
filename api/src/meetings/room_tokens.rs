//! Minting room tokens for a tenant, and the keys behind them: a tenant's first token creates its Ed25519
//! (EdDSA) key; the JWKS lists every key that still verifies, so anyone (the media node, a tenant's own
//! services) can check tokens with public keys alone.

use std::{
    num::NonZeroUsize,
    sync::{Arc, LazyLock, Mutex},
};

use chrono::Utc;
use convene_domain::{RoomName, TenantId};
use convene_tokens::{
    Context, Features, KeyAlgorithm, KeyId, KeyRing, PublicKey, RoomClaims, SigningKey, TokenError, User,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use secrecy::ExposeSecret;
use serde::Deserialize;
use url::Url;
use uuid::Uuid;

use crate::{
    entities::{signing_key, tenant},
    platform::{
        envelope::{Envelope, OpenError},
        recent::{FRESH_FOR, Recent},
    },
};

/// The issuer of tokens we mint.
pub const ISSUER: &str = "convene";
/// Token lifetime when the caller names none.
const DEFAULT_LIFETIME_SECONDS: u64 = 2 * 60 * 60;
/// The longest lifetime a caller may ask for: a week covers a scheduled meeting's invitation.
const MAX_LIFETIME_SECONDS: u64 = 7 * 24 * 60 * 60;

/// `POST /v1/meeting-tokens`, as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The room, or `*` for any room of the tenant.
    pub room: String,
    /// Who the token is for.
    pub user: TokenUser,
    /// Whether they moderate.
    #[serde(default)]
    pub moderator: bool,
    /// What they may use.
    #[serde(default)]
    pub features: Features,
    /// Expiry, seconds since the epoch (default: two hours from now; at most a week ahead).
    #[serde(default)]
    pub exp: Option<u64>,
    /// The region whose media nodes should run the meeting if this person opens it (`eu-west-1`); absent,
    /// the organisation's region, or any.
    #[serde(default)]
    pub region: Option<String>,
}

/// `user` in a token request.
// Not the claim type `convene_tokens::User`: a request is closed (unknown fields refused, `moderator` beside
// it) while claims stay open and lenient for Jitsi's tokens; minting turns one into the other and checks it
// with the claim's own `User::check`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenUser {
    /// The caller's own id for the person.
    #[serde(default)]
    pub id: Option<String>,
    /// Display name (required).
    pub name: String,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Avatar URL.
    #[serde(default)]
    pub avatar: Option<String>,
}

/// Why a token was not minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    /// A field is unusable; the message names it.
    #[error("{0}")]
    Invalid(String),
    /// Storage failed.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// Key material failed.
    #[error("{0}")]
    Key(#[from] convene_tokens::KeyError),
    /// A stored private key did not open (the wrong `CONVENE_SECRET_KEY`, or damage).
    #[error("{0}")]
    Sealed(#[from] OpenError),
    /// Randomness failed.
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

/// A minted token and where it opens.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct MintedToken {
    /// The JWT.
    pub token: String,
    /// `<meet url>/<room>?jwt=<token>` (for `*` tokens, the caller adds the room).
    pub join_url: Option<String>,
}

/// Mints a token for `tenant`.
pub async fn mint(
    db: &DatabaseConnection,
    envelope: &Envelope,
    tenant: TenantId,
    request: TokenRequest,
    meet_url: &Url,
    now: u64,
) -> Result<MintedToken, MintError> {
    let room = if request.room == "*" {
        None
    } else {
        Some(RoomName::parse(&request.room).map_err(|error| MintError::Invalid(format!("room: {error}")))?)
    };
    let name = convene_signal::display_name(&request.user.name)
        .map_err(|message| MintError::Invalid(format!("user.name: {message}")))?;
    let exp = request.exp.unwrap_or(now + DEFAULT_LIFETIME_SECONDS);
    if exp <= now || exp > now + MAX_LIFETIME_SECONDS {
        return Err(MintError::Invalid("exp: must be in the future and at most 7 days ahead".to_owned()));
    }
    let user = User {
        id: request.user.id,
        name: name.to_owned(),
        email: request.user.email,
        avatar: request.user.avatar,
        moderator: request.moderator,
    };
    let context = Context { user, features: request.features, region: request.region };
    // The same rule verification applies: what is minted here is what the node will store.
    context.check().map_err(|invalid| {
        MintError::Invalid(format!("{}: {}", invalid.claim.trim_start_matches("context."), invalid.problem))
    })?;
    let claims = RoomClaims {
        aud: convene_tokens::AUDIENCE.to_owned(),
        iss: ISSUER.to_owned(),
        sub: tenant.to_string(),
        room: room.as_ref().map_or_else(|| "*".to_owned(), |room| room.as_str().to_owned()),
        exp,
        nbf: Some(now),
        iat: Some(now),
        context,
    };
    let key = active_signing_key(db, envelope, tenant).await?;
    let token = match key.algorithm {
        // An RSA signature takes milliseconds of CPU (keys made before Ed25519 became the default): off the
        // async workers, so the requests beside it are not held up.
        KeyAlgorithm::Rs256 => tokio::task::spawn_blocking(move || key.mint(&claims))
            .await
            .map_err(|error| MintError::Internal(anyhow::anyhow!("signing stopped: {error}")))??,
        KeyAlgorithm::EdDsa => key.mint(&claims)?,
    };
    let join_url = room.map(|room| {
        let mut url = meet_url.clone();
        url.set_path(room.as_str());
        url.query_pairs_mut().append_pair("jwt", &token);
        url.to_string()
    });
    Ok(MintedToken { token, join_url })
}

/// The key that mints for `tenant`: its row ([`active_key_row`]) with the private half opened and parsed,
/// once, into [`SIGNING_KEYS`].
async fn active_signing_key(
    db: &DatabaseConnection,
    envelope: &Envelope,
    tenant: TenantId,
) -> Result<Arc<SigningKey>, MintError> {
    let row = match ACTIVE_KEYS.get(&tenant) {
        Some(row) => row,
        None => active_key_row(db, envelope, tenant).await?,
    };
    SIGNING_KEYS.get_or_parse(row.id, || {
        let private = envelope.open(row.id, row.sealed_private_key.as_deref().unwrap_or_default())?;
        let id = KeyId::new(tenant, &row.key_name)?;
        Ok(Arc::new(SigningKey::from_pem(id, algorithm_of(&row.algorithm)?, private.expose_secret().as_bytes())?))
    })
}

/// The row of the key that mints for `tenant`, kept in [`ACTIVE_KEYS`]; created on first use (Ed25519: a
/// signature takes microseconds where RSA-2048 takes milliseconds), the private half sealed. Concurrent first
/// mints create one key between them (the tenant's row is locked while the key is chosen or stored).
async fn active_key_row(
    db: &DatabaseConnection,
    envelope: &Envelope,
    tenant: TenantId,
) -> Result<signing_key::Model, MintError> {
    let row = match find_active(db, tenant).await? {
        Some(row) => row,
        None => {
            let pair = convene_tokens::generate(KeyAlgorithm::EdDsa)?;
            let transaction = crate::platform::db::begin_write(db).await?;
            tenant::Entity::find_by_id(tenant.as_uuid()).lock_exclusive().one(&transaction).await?;
            let row = match find_active(&transaction, tenant).await? {
                // Another first mint stored its key while this one generated: use that one.
                Some(row) => row,
                None => {
                    let now = Utc::now();
                    let id = Uuid::now_v7();
                    signing_key::ActiveModel {
                        id: Set(id),
                        tenant_id: Set(tenant.as_uuid()),
                        // Date for people, random suffix for uniqueness across rotations on one day.
                        key_name: Set(format!(
                            "convene-{}-{}",
                            now.format("%Y%m%d"),
                            &Uuid::new_v4().simple().to_string()[..8]
                        )),
                        algorithm: Set(KeyAlgorithm::EdDsa.name().to_owned()),
                        public_key: Set(pair.public_pem),
                        key_format: Set(FORMAT_PEM.to_owned()),
                        sealed_private_key: Set(Some(envelope.seal(id, &pair.private_pem)?)),
                        created_at: Set(now),
                        retired_at: Set(None),
                    }
                    .insert(&transaction)
                    .await?
                }
            };
            transaction.commit().await?;
            row
        }
    };
    ACTIVE_KEYS.put(tenant, row.clone());
    Ok(row)
}

async fn find_active(db: &impl ConnectionTrait, tenant: TenantId) -> Result<Option<signing_key::Model>, DbErr> {
    signing_key::Entity::find()
        .filter(signing_key::Column::TenantId.eq(tenant.as_uuid()))
        .filter(signing_key::Column::SealedPrivateKey.is_not_null())
        .filter(signing_key::Column::RetiredAt.is_null())
        .order_by_desc(signing_key::Column::CreatedAt)
        .one(db)
        .await
}

/// The public keys that verify `tenant`'s tokens (none for a tenant that does not exist).
pub async fn key_ring(db: &DatabaseConnection, tenant: TenantId) -> Result<(KeyRing, Vec<PublicKey>), MintError> {
    let rows = signing_key::Entity::find()
        .filter(signing_key::Column::TenantId.eq(tenant.as_uuid()))
        .order_by_asc(signing_key::Column::CreatedAt)
        .all(db)
        .await?;
    let mut ring = KeyRing::default();
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        let key = public_key_of(tenant, &row)?;
        ring.insert(key.clone());
        keys.push(key);
    }
    Ok((ring, keys))
}

/// Verifies a meeting link's token for `room` with the keys of the tenant its `kid` names.
pub async fn verify_link(
    db: &DatabaseConnection,
    token: &str,
    room: &RoomName,
) -> Result<Result<convene_tokens::Verified, TokenError>, MintError> {
    // Bound the work before parsing anything from outside; `verify` checks the same again.
    if token.len() > convene_tokens::MAX_TOKEN_LEN {
        return Ok(Err(TokenError::Malformed));
    }
    let Ok(header) = jsonwebtoken::decode_header(token.trim()) else { return Ok(Err(TokenError::Malformed)) };
    let Some(kid) = header.kid.as_deref().and_then(|kid| KeyId::parse(kid).ok()) else {
        return Ok(Err(TokenError::KeyId));
    };
    // Only the key the token names is read and parsed, not every key of the tenant.
    let row = signing_key::Entity::find()
        .filter(signing_key::Column::TenantId.eq(kid.tenant().as_uuid()))
        .filter(signing_key::Column::KeyName.eq(kid.name()))
        .one(db)
        .await?;
    let mut ring = KeyRing::default();
    if let Some(row) = row {
        ring.insert(public_key_of(kid.tenant(), &row)?);
    }
    Ok(convene_tokens::verify(token, &ring, room))
}

/// Keys a tenant may have, retired ones included: every JWKS answer lists them all.
pub const MAX_KEYS_PER_TENANT: u64 = 20;

/// Refuses another key once the tenant has [`MAX_KEYS_PER_TENANT`].
async fn within_key_limit(db: &DatabaseConnection, tenant: TenantId) -> Result<(), MintError> {
    let count =
        signing_key::Entity::find().filter(signing_key::Column::TenantId.eq(tenant.as_uuid())).count(db).await?;
    if count >= MAX_KEYS_PER_TENANT {
        return Err(MintError::Invalid(format!(
            "an organisation has at most {MAX_KEYS_PER_TENANT} signing keys: delete keys it no longer uses first"
        )));
    }
    Ok(())
}

/// How a stored public key is written.
const FORMAT_PEM: &str = "pem";
const FORMAT_JWK: &str = "jwk";

fn public_key_of(tenant: TenantId, row: &signing_key::Model) -> Result<PublicKey, MintError> {
    PARSED_KEYS.get_or_parse(row.id, || {
        let id = KeyId::new(tenant, &row.key_name)?;
        Ok(match row.key_format.as_str() {
            FORMAT_JWK => PublicKey::from_jwk(id, &row.public_key)?,
            _ => PublicKey::from_pem(id, algorithm_of(&row.algorithm)?, row.public_key.as_bytes())?,
        })
    })
}

/// Parsed public keys of the whole process, so `hello` and JWKS answers do not parse PEM or JWK text each
/// time; one entry per live key at [`MAX_KEYS_PER_TENANT`] for thousands of tenants.
static PARSED_KEYS: LazyLock<KeyCache<PublicKey>> = LazyLock::new(|| KeyCache::new(20_000));

/// The row of each tenant's minting key, so a backend minting a token per join reads it once a second
/// (rotating or deleting here is seen at once, on another replica within a second).
static ACTIVE_KEYS: LazyLock<Recent<TenantId, signing_key::Model>> = LazyLock::new(|| Recent::new(10_000, FRESH_FOR));

/// Opened and parsed private keys, so a mint neither decrypts nor parses its key: one a tenant that mints.
/// An opened key stays in memory only as long as it would for the mint anyway, plus the cache's turnover.
static SIGNING_KEYS: LazyLock<KeyCache<Arc<SigningKey>>> = LazyLock::new(|| KeyCache::new(10_000));

/// Parsed keys by their row's id. A row's key never changes (rotation adds a row; deletion removes it and
/// lookups go through the row first), so an entry cannot go stale; least recently used entries leave first.
struct KeyCache<Key>(Mutex<lru::LruCache<Uuid, Key>>);

impl<Key: Clone> KeyCache<Key> {
    fn new(capacity: usize) -> Self {
        Self(Mutex::new(lru::LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN))))
    }

    fn get_or_parse(&self, row: Uuid, parse: impl FnOnce() -> Result<Key, MintError>) -> Result<Key, MintError> {
        if let Some(key) = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&row) {
            return Ok(key.clone());
        }
        // Parsed outside the lock: a slow parse never holds up other lookups.
        let key = parse()?;
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).put(row, key.clone());
        Ok(key)
    }
}

/// A public key a tenant registers to mint tokens in its own backend.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRegistration {
    /// The key part of the `kid`: letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// `RS256` or `EdDSA`, for a PEM key (a JWK says its own kind).
    #[serde(default)]
    pub algorithm: Option<String>,
    /// The public key as PEM (SubjectPublicKeyInfo).
    #[serde(default)]
    pub public_key_pem: Option<String>,
    /// The public key as a JWK.
    #[serde(default)]
    pub jwk: Option<serde_json::Value>,
}

/// A key as the API lists it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct KeyListing {
    /// `<tenant id>/<name>`.
    pub kid: String,
    /// `RS256` or `EdDSA`.
    pub algorithm: String,
    /// `convene` (we hold the private half) or `tenant` (registered public key).
    pub origin: &'static str,
    /// When it was added.
    pub created_at: chrono::DateTime<Utc>,
    /// When it stopped minting, for rotated keys.
    pub retired_at: Option<chrono::DateTime<Utc>>,
}

/// Registers a tenant's own public key; tokens its backend signs with the private half then verify.
pub async fn register_key(
    db: &DatabaseConnection,
    tenant: TenantId,
    registration: KeyRegistration,
) -> Result<KeyListing, MintError> {
    within_key_limit(db, tenant).await?;
    let id =
        KeyId::new(tenant, registration.name.trim()).map_err(|error| MintError::Invalid(format!("name: {error}")))?;
    let (public_key, format, algorithm) = match (registration.public_key_pem, registration.jwk) {
        (Some(pem), None) => {
            let Some(algorithm) = registration.algorithm.as_deref().and_then(KeyAlgorithm::from_name) else {
                return Err(MintError::Invalid("algorithm: RS256 or EdDSA is required with a PEM key".to_owned()));
            };
            PublicKey::from_pem(id.clone(), algorithm, pem.as_bytes())
                .map_err(|error| MintError::Invalid(format!("public_key_pem: {error}")))?;
            (pem, FORMAT_PEM, algorithm)
        }
        (None, Some(jwk)) => {
            let text = jwk.to_string();
            let key =
                PublicKey::from_jwk(id.clone(), &text).map_err(|error| MintError::Invalid(format!("jwk: {error}")))?;
            (text, FORMAT_JWK, key.algorithm)
        }
        _ => return Err(MintError::Invalid("give exactly one of public_key_pem and jwk".to_owned())),
    };
    let row = signing_key::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant.as_uuid()),
        key_name: Set(registration.name.trim().to_owned()),
        algorithm: Set(algorithm.name().to_owned()),
        public_key: Set(public_key),
        key_format: Set(format.to_owned()),
        sealed_private_key: Set(None),
        created_at: Set(Utc::now()),
        retired_at: Set(None),
    }
    .insert(db)
    .await
    .map_err(|_| MintError::Invalid(format!("name: a key named `{}` already exists", registration.name.trim())))?;
    Ok(listing(tenant, row))
}

fn listing(tenant: TenantId, row: signing_key::Model) -> KeyListing {
    KeyListing {
        kid: format!("{tenant}/{}", row.key_name),
        algorithm: row.algorithm,
        origin: if row.sealed_private_key.is_some() { "convene" } else { "tenant" },
        created_at: row.created_at,
        retired_at: row.retired_at,
    }
}

/// The tenant's keys, oldest first.
pub async fn list_keys(db: &DatabaseConnection, tenant: TenantId) -> Result<Vec<KeyListing>, DbErr> {
    Ok(signing_key::Entity::find()
        .filter(signing_key::Column::TenantId.eq(tenant.as_uuid()))
        .order_by_asc(signing_key::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(|row| listing(tenant, row))
        .collect())
}

/// Retires the key we mint with and makes a new one. The retired key keeps verifying the tokens it signed.
pub async fn rotate(db: &DatabaseConnection, envelope: &Envelope, tenant: TenantId) -> Result<KeyListing, MintError> {
    within_key_limit(db, tenant).await?;
    signing_key::Entity::update_many()
        .col_expr(signing_key::Column::RetiredAt, sea_orm::sea_query::Expr::value(Some(Utc::now())))
        .filter(signing_key::Column::TenantId.eq(tenant.as_uuid()))
        .filter(signing_key::Column::SealedPrivateKey.is_not_null())
        .filter(signing_key::Column::RetiredAt.is_null())
        .exec(db)
        .await?;
    ACTIVE_KEYS.forget(&tenant);
    let key = active_signing_key(db, envelope, tenant).await?;
    let row = find_active(db, tenant).await?.ok_or_else(|| MintError::Invalid(format!("{} vanished", key.id)))?;
    Ok(listing(tenant, row))
}

/// Deletes a key: tokens it signed stop verifying. `false` when the tenant has no key of that name.
pub async fn delete_key(db: &DatabaseConnection, tenant: TenantId, name: &str) -> Result<bool, DbErr> {
    let deleted = signing_key::Entity::delete_many()
        .filter(signing_key::Column::TenantId.eq(tenant.as_uuid()))
        .filter(signing_key::Column::KeyName.eq(name))
        .exec(db)
        .await?;
    ACTIVE_KEYS.forget(&tenant);
    Ok(deleted.rows_affected == 1)
}

/// Seals every stored private key with the current secret key: those sealed with a previous one (a
/// rotation) and those stored in clear before sealing existed. Returns how many rows changed; run at every
/// start and by `convene admin reseal-keys`. A key sealed with a secret key this process lacks stops it (the
/// settings are wrong, and every mint would fail); a damaged row is logged and left, so it stops no other.
pub async fn reseal_private_keys(db: &DatabaseConnection, envelope: &Envelope) -> Result<u64, MintError> {
    let rows = signing_key::Entity::find().filter(signing_key::Column::SealedPrivateKey.is_not_null()).all(db).await?;
    let mut resealed = 0;
    for row in rows {
        let Some(stored) = row.sealed_private_key.as_deref().filter(|stored| !envelope.is_current(stored)) else {
            continue;
        };
        let sealed = match envelope.reseal(row.id, stored) {
            Ok(sealed) => sealed,
            Err(OpenError::Damaged) => {
                tracing::error!(key = %row.key_name, tenant = %row.tenant_id, "a stored private key is damaged; it cannot mint");
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        signing_key::Entity::update_many()
            .col_expr(signing_key::Column::SealedPrivateKey, sea_orm::sea_query::Expr::value(sealed))
            .filter(signing_key::Column::Id.eq(row.id))
            // Unchanged since it was read: a concurrent reseal by another process wins, not both.
            .filter(signing_key::Column::SealedPrivateKey.eq(stored))
            .exec(db)
            .await?;
        resealed += 1;
    }
    Ok(resealed)
}

/// Whether the tenant exists (the JWKS of an unknown tenant is a 404, not an empty set).
pub async fn tenant_exists(db: &DatabaseConnection, tenant: TenantId) -> Result<bool, DbErr> {
    Ok(tenant::Entity::find_by_id(tenant.as_uuid()).one(db).await?.is_some())
}

fn algorithm_of(stored: &str) -> Result<KeyAlgorithm, MintError> {
    KeyAlgorithm::from_name(stored)
        .ok_or_else(|| MintError::Invalid(format!("stored key algorithm `{stored}` is unknown")))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn key(tenant: TenantId, name: &str) -> Result<PublicKey, MintError> {
        let pair = convene_tokens::generate(KeyAlgorithm::EdDsa)?;
        Ok(PublicKey::from_pem(KeyId::new(tenant, name)?, KeyAlgorithm::EdDsa, pair.public_pem.as_bytes())?)
    }

    #[test]
    fn a_key_is_parsed_once_and_the_cache_stays_bounded() {
        let tenant = TenantId::from(Uuid::new_v4());
        let cache = KeyCache::new(2);
        let parses = Cell::new(0);
        let parse = |name: &'static str| {
            let parses = &parses;
            move || {
                parses.set(parses.get() + 1);
                key(tenant, name)
            }
        };
        let (first, second, third) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let parsed = cache.get_or_parse(first, parse("a")).expect("parses");
        let cached = cache.get_or_parse(first, parse("a")).expect("cached");
        assert_eq!(parses.get(), 1, "the second lookup reads the cache");
        assert_eq!(parsed.id, cached.id);
        cache.get_or_parse(second, parse("b")).expect("parses");
        cache.get_or_parse(third, parse("c")).expect("parses");
        assert_eq!(cache.0.lock().expect("not poisoned").len(), 2, "bounded");
        cache.get_or_parse(first, parse("a")).expect("parsed again");
        assert_eq!(parses.get(), 4, "the least recently used entry left and is parsed again");
        let failed = cache.get_or_parse(Uuid::new_v4(), || Err(MintError::Invalid("bad".into())));
        assert!(failed.is_err(), "a parse failure is answered, not cached as a key");
    }
}
