//! Creating a tenant with its first owner (and, for the CLI, a first API key) in one transaction: either
//! all of it exists afterwards or none of it does.

use chrono::Utc;
use convene_domain::{EmailAddress, ParseError, Region, Role, TenantId, TenantName};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter,
};
use secrecy::SecretString;
use serde::Serialize;
use uuid::Uuid;

use crate::{
    entities::{membership, tenant, user},
    people::api_keys::{self, ApiKeyError, NewApiKey},
    people::password::{Password, WeakPassword},
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
    /// Whether the owner's address counts as verified: true when an operator creates the tenant, false for
    /// a public signup (which sends a verification mail).
    pub email_verified: bool,
    /// Name of an API key to create with the tenant, if any.
    pub first_api_key: Option<String>,
}

/// The result. The API key, if one was made, is shown this once and stored only as a hash.
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
    /// The first API key.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<NewApiKey>,
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
    /// The API key could not be made.
    #[error("{0}")]
    ApiKey(#[from] ApiKeyError),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// Hashing failed.
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

/// Creates a tenant and its owner (and optionally an API key).
pub async fn create_tenant(db: &DatabaseConnection, new: NewTenant) -> Result<CreatedTenant, CreateTenantError> {
    let name = TenantName::parse(&new.name)?;
    let email = EmailAddress::parse(&new.owner_email)?;
    let password = Password::parse(new.owner_password, email.as_str())?;
    let display_name = match new.owner_name.as_deref().map(str::trim).filter(|name| !name.is_empty()) {
        Some(name) => name.chars().take(200).collect(),
        None => email.as_str().split('@').next().unwrap_or_default().to_owned(),
    };
    if email_taken(db, &email).await? {
        return Err(CreateTenantError::EmailTaken(email.to_string()));
    }
    let password_hash = password.hash().await?;

    let now = Utc::now();
    let tenant_id = TenantId::new();
    let user_id = Uuid::now_v7();
    let txn = crate::platform::db::begin_write(db).await?;
    tenant::ActiveModel {
        id: Set(tenant_id.as_uuid()),
        name: Set(name.as_str().to_owned()),
        created_at: Set(now),
        media_region: Set(None),
    }
    .insert(&txn)
    .await?;
    let inserted = user::ActiveModel {
        id: Set(user_id),
        email: Set(email.to_string()),
        display_name: Set(display_name),
        password_hash: Set(password_hash),
        email_verified_at: Set(new.email_verified.then_some(now)),
        created_at: Set(now),
    }
    .insert(&txn)
    .await;
    // Two concurrent signups with one address both pass the check above; the unique index decides.
    if let Err(error) = inserted {
        drop(txn);
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
        disabled_at: Set(None),
    }
    .insert(&txn)
    .await?;
    let api_key = match &new.first_api_key {
        Some(key_name) => Some(api_keys::create(&txn, tenant_id, key_name).await?),
        None => None,
    };
    txn.commit().await?;

    tracing::info!(%tenant_id, "tenant created");
    Ok(CreatedTenant {
        tenant_id,
        tenant_name: name.as_str().to_owned(),
        owner_user_id: user_id,
        owner_email: email.to_string(),
        owner_role: Role::Owner,
        api_key,
    })
}

/// Whether an account with this address exists.
pub async fn email_taken(db: &impl ConnectionTrait, email: &EmailAddress) -> Result<bool, DbErr> {
    Ok(user::Entity::find().filter(user::Column::Email.eq(email.as_str())).one(db).await?.is_some())
}

/// A tenant by id.
pub async fn find(db: &impl ConnectionTrait, id: TenantId) -> Result<Option<tenant::Model>, DbErr> {
    tenant::Entity::find_by_id(id.as_uuid()).one(db).await
}

/// Sets or clears (`None`) the region `id`'s meetings run in; the changed tenant, or `None` if there is none.
pub async fn set_media_region(
    db: &impl ConnectionTrait,
    id: TenantId,
    region: Option<&Region>,
) -> Result<Option<tenant::Model>, DbErr> {
    let Some(row) = find(db, id).await? else { return Ok(None) };
    let mut row: tenant::ActiveModel = row.into();
    row.media_region = Set(region.map(|region| region.as_str().to_owned()));
    row.update(db).await.map(Some)
}
