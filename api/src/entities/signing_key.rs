//! A tenant's room-token key: ours (with the private half) or one the tenant registered (public only).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The key part of the `kid` (`<tenant id>/<key name>`).
    pub key_name: String,
    /// `RS256` or `EdDSA`.
    pub algorithm: String,
    /// The public key, as PEM or as a JWK (JSON), per `key_format`.
    pub public_key: String,
    /// `pem` or `jwk`.
    pub key_format: String,
    /// The private half (PKCS#8 PEM) sealed by [`crate::platform::envelope::Envelope`], for keys we mint with.
    pub sealed_private_key: Option<String>,
    pub created_at: DateTimeUtc,
    /// Set when a newer key took over minting; the key still verifies.
    pub retired_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
