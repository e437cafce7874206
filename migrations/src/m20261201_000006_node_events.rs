//! Where room sessions run and which node events the control plane has taken: `room_sessions.node_id`
//! (the media node hosting the session, so a node's restart can close what it hosted) and
//! `node_event_cursors` (the last sequence number taken from each node, so a redelivered event counts once).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(RoomSessions::Table)
                    .add_column(string_len_null(RoomSessions::NodeId, 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_room_sessions_node_open")
                    .table(RoomSessions::Table)
                    .col(RoomSessions::NodeId)
                    .col(RoomSessions::EndedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(NodeEventCursors::Table)
                    .col(string_len(NodeEventCursors::NodeId, 64).primary_key())
                    .col(big_integer(NodeEventCursors::LastSeq))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(NodeEventCursors::Table).to_owned()).await?;
        manager
            .drop_index(Index::drop().name("idx_room_sessions_node_open").table(RoomSessions::Table).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(RoomSessions::Table).drop_column(RoomSessions::NodeId).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum RoomSessions {
    Table,
    NodeId,
    EndedAt,
}

#[derive(DeriveIden)]
enum NodeEventCursors {
    Table,
    NodeId,
    LastSeq,
}
