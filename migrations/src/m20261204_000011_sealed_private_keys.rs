//! `signing_keys.private_pem` becomes `sealed_private_key`: private halves are stored sealed (AES-256-GCM
//! under `CONVENE_SECRET_KEY`). Rows written in clear before are sealed by the program at its next start,
//! since SQL cannot reach the key.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rename(manager, SigningKeys::PrivatePem, SigningKeys::SealedPrivateKey).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        rename(manager, SigningKeys::SealedPrivateKey, SigningKeys::PrivatePem).await
    }
}

async fn rename(manager: &SchemaManager<'_>, from: SigningKeys, to: SigningKeys) -> Result<(), DbErr> {
    manager.alter_table(Table::alter().table(SigningKeys::Table).rename_column(from, to).to_owned()).await
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    PrivatePem,
    SealedPrivateKey,
}
