//! Rooms: a tenant's named meeting places with their settings, addressed by name in `/v1/rooms/{name}` and
//! in meeting links.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Rooms::Table)
                    .col(uuid(Rooms::Id).primary_key())
                    .col(uuid(Rooms::TenantId))
                    .col(string_len(Rooms::Name, 64))
                    .col(string_len_null(Rooms::Title, 200))
                    .col(boolean(Rooms::Lobby))
                    .col(string_len_null(Rooms::Password, 64))
                    .col(integer_null(Rooms::MaxParticipants))
                    .col(boolean(Rooms::GuestsAllowed))
                    .col(boolean(Rooms::RecordingAllowed))
                    .col(boolean(Rooms::EndToEndEncryption))
                    .col(boolean(Rooms::HighFidelityAudio))
                    .col(string_len(Rooms::MaxResolution, 5))
                    .col(timestamp_with_time_zone(Rooms::CreatedAt))
                    .col(timestamp_with_time_zone(Rooms::UpdatedAt))
                    .foreign_key(&mut crate::tenant_foreign_key(Rooms::Table, Rooms::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_rooms_tenant_name")
                    .table(Rooms::Table)
                    .col(Rooms::TenantId)
                    .col(Rooms::Name)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Rooms::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Rooms {
    Table,
    Id,
    TenantId,
    Name,
    Title,
    Lobby,
    Password,
    MaxParticipants,
    GuestsAllowed,
    RecordingAllowed,
    EndToEndEncryption,
    HighFidelityAudio,
    MaxResolution,
    CreatedAt,
    UpdatedAt,
}
