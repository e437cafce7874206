//! Phone dial-in: `dial_in_numbers`, the numbers an operator assigned to tenants (each number belongs to one
//! tenant; the trunk delivers its calls to the gateway), and `rooms.pin`, each room's 9-digit PIN, unique in
//! the deployment (given when the room first needs one).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DialInNumbers::Table)
                    .col(uuid(DialInNumbers::Id).primary_key())
                    .col(uuid(DialInNumbers::TenantId))
                    .col(string_len_uniq(DialInNumbers::Number, 16))
                    .col(string_len(DialInNumbers::Country, 2))
                    .col(boolean(DialInNumbers::TollFree).default(false))
                    .col(timestamp_with_time_zone(DialInNumbers::CreatedAt))
                    .foreign_key(&mut crate::tenant_foreign_key(DialInNumbers::Table, DialInNumbers::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_dial_in_numbers_tenant")
                    .table(DialInNumbers::Table)
                    .col(DialInNumbers::TenantId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table(Rooms::Table).add_column(string_len_null(Rooms::Pin, 9)).to_owned())
            .await?;
        manager
            .create_index(Index::create().name("idx_rooms_pin").table(Rooms::Table).col(Rooms::Pin).unique().to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("idx_rooms_pin").table(Rooms::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(Rooms::Table).drop_column(Rooms::Pin).to_owned()).await?;
        manager.drop_table(Table::drop().table(DialInNumbers::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum DialInNumbers {
    Table,
    Id,
    TenantId,
    Number,
    Country,
    TollFree,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Rooms {
    Table,
    Pin,
}
