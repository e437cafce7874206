//! Per-tenant keys for room tokens: our own (with a private half, to mint) and keys a tenant registers from
//! its own backend (public half only). Retired keys stop minting but keep verifying until their tokens expire.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .col(uuid(SigningKeys::Id).primary_key())
                    .col(uuid(SigningKeys::TenantId))
                    .col(string_len(SigningKeys::KeyName, 64))
                    .col(string_len(SigningKeys::Algorithm, 10))
                    .col(text(SigningKeys::PublicKey))
                    .col(string_len(SigningKeys::KeyFormat, 4))
                    .col(text_null(SigningKeys::PrivatePem))
                    .col(timestamp_with_time_zone(SigningKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(SigningKeys::RetiredAt))
                    .foreign_key(&mut crate::tenant_foreign_key(SigningKeys::Table, SigningKeys::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_signing_keys_tenant_name")
                    .table(SigningKeys::Table)
                    .col(SigningKeys::TenantId)
                    .col(SigningKeys::KeyName)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(SigningKeys::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Id,
    TenantId,
    KeyName,
    Algorithm,
    PublicKey,
    KeyFormat,
    PrivatePem,
    CreatedAt,
    RetiredAt,
}
