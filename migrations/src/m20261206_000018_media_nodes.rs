//! `media_nodes` (the media nodes that heartbeat to the control plane, with their load) and
//! `room_placements` (which node hosts each running room, so every participant of a meeting reaches the
//! same one).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MediaNodes::Table)
                    .col(string_len(MediaNodes::Id, 64).primary_key())
                    .col(string_len(MediaNodes::Url, 512))
                    .col(string_len(MediaNodes::Region, 64))
                    .col(boolean(MediaNodes::Draining))
                    .col(integer(MediaNodes::Participants))
                    .col(integer(MediaNodes::Rooms))
                    .col(integer(MediaNodes::MbitOut))
                    .col(integer(MediaNodes::CpuMillicores))
                    .col(big_integer(MediaNodes::StartedMs))
                    .col(big_integer(MediaNodes::LastSeenMs))
                    .col(big_integer_null(MediaNodes::GoneMs))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RoomPlacements::Table)
                    .col(uuid(RoomPlacements::TenantId))
                    .col(string_len(RoomPlacements::Room, 128))
                    .col(string_len(RoomPlacements::NodeId, 64))
                    .col(big_integer(RoomPlacements::PlacedMs))
                    .primary_key(Index::create().col(RoomPlacements::TenantId).col(RoomPlacements::Room))
                    .foreign_key(&mut crate::tenant_foreign_key(RoomPlacements::Table, RoomPlacements::TenantId))
                    .to_owned(),
            )
            .await?;
        // A node declared gone loses its placements at once.
        manager
            .create_index(
                Index::create()
                    .name("room_placements_node")
                    .table(RoomPlacements::Table)
                    .col(RoomPlacements::NodeId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RoomPlacements::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(MediaNodes::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum MediaNodes {
    Table,
    Id,
    Url,
    Region,
    Draining,
    Participants,
    Rooms,
    MbitOut,
    CpuMillicores,
    StartedMs,
    LastSeenMs,
    GoneMs,
}

#[derive(DeriveIden)]
enum RoomPlacements {
    Table,
    TenantId,
    Room,
    NodeId,
    PlacedMs,
}
