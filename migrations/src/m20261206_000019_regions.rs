//! Placement by region and size: `tenants.media_region`, where the organisation's meetings run unless a
//! token asks for another region, and `media_nodes.cores`, the CPU a node may use, so a bigger node takes
//! more meetings.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one column at a time.
        manager
            .alter_table(
                Table::alter().table(Tenants::Table).add_column(string_len_null(Tenants::MediaRegion, 64)).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(MediaNodes::Table).add_column(integer(MediaNodes::Cores).default(1)).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(MediaNodes::Table).drop_column(MediaNodes::Cores).to_owned()).await?;
        manager.alter_table(Table::alter().table(Tenants::Table).drop_column(Tenants::MediaRegion).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    MediaRegion,
}

#[derive(DeriveIden)]
enum MediaNodes {
    Table,
    Cores,
}
