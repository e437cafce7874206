//! Creating a tenant with its first owner and API key, in one transaction: either all of it exists
//! afterwards or none of it does.

use chrono::Utc;
use convene_domain::{EmailAddress, ParseError, Role, TenantId, TenantName};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    TransactionTrait,
};
use secrecy::SecretString;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    entities::{api_key, membership, tenant, user},
    password::{Password, WeakPassword},
};

/// What a new tenant needs, as typed by a person (parsed here).
#[derive(Debug)]
pub struct NewTenant {
    /// The organisation's name.
    pub name: String,
    /// The owner's email address.
    pub owner_email: String,
    /// The owner's password.
    pub owner_password: SecretString,
    /// The owner's display name; the email's local part when absent.
    pub owner_name: Option<String>,
}

/// The result, printed once by `convene admin create-tenant`: the API key is not stored in clear anywhere.
#[derive(Debug, Serialize)]
pub struct CreatedTenant {
    /// The new tenant.
    pub tenant_id: TenantId,
    /// Its name.
    pub tenant_name: String,
    /// The owner's user id.
    pub owner_user_id: Uuid,
    /// The owner's normalised email.
    pub owner_email: String,
    /// The owner's role (always `owner`).
    pub owner_role: Role,
    /// The API key's id (for revocation).
    pub api_key_id: Uuid,
    /// The API key itself, shown this once.
    pub api_key: String,
}

/// Why a tenant could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateTenantError {
    /// A field failed to parse.
    #[error("{0}")]
    Invalid(#[from] ParseError),
    /// The password breaks a rule.
    #[error("{0}")]
    WeakPassword(#[from] WeakPassword),
    /// Someone already has an account with that email.
    #[error("an account with the email {0} already exists")]
    EmailTaken(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// Hashing failed.
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

/// Every new API key starts with this, so leaked keys are easy to recognise (and to scan for).
const API_KEY_PREFIX: &str = "cvn_";
/// Characters of the key kept in clear to tell keys apart in lists.
const API_KEY_SHOWN_LEN: usize = 12;

/// Creates a tenant, its owner and a first API key.
pub async fn create_tenant(db: &DatabaseConnection, new: NewTenant) -> Result<CreatedTenant, CreateTenantError> {
    let name = TenantName::parse(&new.name)?;
    let email = EmailAddress::parse(&new.owner_email)?;
    let password = Password::parse(new.owner_password, email.as_str())?;
    let display_name = match new.owner_name.as_deref().map(str::trim).filter(|name| !name.is_empty()) {
        Some(name) => name.to_owned(),
        None => email.as_str().split('@').next().unwrap_or_default().to_owned(),
    };
    if email_taken(db, &email).await? {
        return Err(CreateTenantError::EmailTaken(email.to_string()));
    }
    let password_hash = password.hash().await?;
    let (api_key, api_key_hash) = new_api_key()?;

    let now = Utc::now();
    let tenant_id = TenantId::new();
    let user_id = Uuid::now_v7();
    let api_key_id = Uuid::now_v7();
    let txn = db.begin().await?;
    tenant::ActiveModel { id: Set(tenant_id.as_uuid()), name: Set(name.as_str().to_owned()), created_at: Set(now) }
        .insert(&txn)
        .await?;
    let inserted = user::ActiveModel {
        id: Set(user_id),
        email: Set(email.to_string()),
        display_name: Set(display_name),
        password_hash: Set(password_hash),
        email_verified_at: Set(None),
        created_at: Set(now),
    }
    .insert(&txn)
    .await;
    // Two concurrent signups with one address both pass the check above; the unique index decides.
    if let Err(error) = inserted {
        return Err(if email_taken(db, &email).await? {
            CreateTenantError::EmailTaken(email.to_string())
        } else {
            error.into()
        });
    }
    membership::ActiveModel {
        tenant_id: Set(tenant_id.as_uuid()),
        user_id: Set(user_id),
        role: Set(Role::Owner.as_str().to_owned()),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    api_key::ActiveModel {
        id: Set(api_key_id),
        tenant_id: Set(tenant_id.as_uuid()),
        name: Set("Default key".to_owned()),
        prefix: Set(api_key.chars().take(API_KEY_SHOWN_LEN).collect()),
        secret_hash: Set(api_key_hash),
        created_at: Set(now),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;

    tracing::info!(%tenant_id, "tenant created");
    Ok(CreatedTenant {
        tenant_id,
        tenant_name: name.as_str().to_owned(),
        owner_user_id: user_id,
        owner_email: email.to_string(),
        owner_role: Role::Owner,
        api_key_id,
        api_key,
    })
}

async fn email_taken(db: &DatabaseConnection, email: &EmailAddress) -> Result<bool, DbErr> {
    Ok(user::Entity::find().filter(user::Column::Email.eq(email.as_str())).one(db).await?.is_some())
}

/// A new API key and the SHA-256 stored for it. Keys carry 256 random bits, so a fast hash is enough:
/// there is nothing to brute-force, unlike a password.
fn new_api_key() -> anyhow::Result<(String, String)> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|error| anyhow::anyhow!("no randomness for the API key: {error}"))?;
    let key = format!("{API_KEY_PREFIX}{}", data_encoding::BASE32_NOPAD.encode(&secret).to_lowercase());
    Ok((key.clone(), hash_api_key(&key)))
}

/// The stored form of an API key.
pub fn hash_api_key(key: &str) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(key.as_bytes()))
}
