//! Removals that outlive the meeting: `room_removals` (a token and user id a moderator removed from a room,
//! refused until the token expires) and `room_closures` (when a room was last ended for everyone or
//! deleted: tokens issued before then do not open it again).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RoomRemovals::Table)
                    .col(uuid(RoomRemovals::Id).primary_key())
                    .col(uuid(RoomRemovals::TenantId))
                    .col(string_len(RoomRemovals::Room, 64))
                    .col(string_len(RoomRemovals::TokenDigest, 64))
                    .col(string_len_null(RoomRemovals::UserId, 200))
                    .col(boolean(RoomRemovals::Rejected))
                    .col(timestamp_with_time_zone_null(RoomRemovals::Until))
                    .col(timestamp_with_time_zone(RoomRemovals::CreatedAt))
                    .foreign_key(&mut crate::tenant_foreign_key(RoomRemovals::Table, RoomRemovals::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_room_removals_room")
                    .table(RoomRemovals::Table)
                    .col(RoomRemovals::TenantId)
                    .col(RoomRemovals::Room)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RoomClosures::Table)
                    .col(uuid(RoomClosures::TenantId))
                    .col(string_len(RoomClosures::Room, 64))
                    .col(timestamp_with_time_zone(RoomClosures::ClosedAt))
                    .col(string_len(RoomClosures::Reason, 16))
                    .primary_key(Index::create().col(RoomClosures::TenantId).col(RoomClosures::Room))
                    .foreign_key(&mut crate::tenant_foreign_key(RoomClosures::Table, RoomClosures::TenantId))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RoomClosures::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(RoomRemovals::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum RoomRemovals {
    Table,
    Id,
    TenantId,
    Room,
    TokenDigest,
    UserId,
    Rejected,
    Until,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RoomClosures {
    Table,
    TenantId,
    Room,
    ClosedAt,
    Reason,
}
