//! `recordings`: the meetings a media node recorded, from the node's outbox events (started, stopped), and
//! what composing them made (processing, ready or failed with why); and `rooms.auto_record`, rooms that
//! record themselves when their meeting starts.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Recordings::Table)
                    .col(uuid(Recordings::Id).primary_key())
                    .col(uuid(Recordings::TenantId))
                    .col(string_len(Recordings::Room, 64))
                    .col(string_len(Recordings::Node, 64))
                    .col(string_len(Recordings::StartedBy, 200))
                    .col(string_len_null(Recordings::StartedByUser, 200))
                    .col(string_len_null(Recordings::NotifyEmail, 320))
                    .col(timestamp_with_time_zone(Recordings::StartedAt))
                    .col(timestamp_with_time_zone_null(Recordings::StoppedAt))
                    .col(string_len(Recordings::State, 16))
                    .col(string_len_null(Recordings::Failure, 500))
                    .col(boolean(Recordings::Interrupted).default(false))
                    .col(big_integer(Recordings::TrackBytes).default(0))
                    .col(big_integer_null(Recordings::DurationMs))
                    .col(big_integer_null(Recordings::FileBytes))
                    .col(text_null(Recordings::Participants))
                    .col(integer(Recordings::Attempts).default(0))
                    .col(timestamp_with_time_zone_null(Recordings::ClaimedAt))
                    .foreign_key(&mut crate::tenant_foreign_key(Recordings::Table, Recordings::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_recordings_tenant_started")
                    .table(Recordings::Table)
                    .col(Recordings::TenantId)
                    .col(Recordings::StartedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_recordings_state").table(Recordings::Table).col(Recordings::State).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Rooms::Table).add_column(boolean(Rooms::AutoRecord).default(false)).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Rooms::Table).drop_column(Rooms::AutoRecord).to_owned()).await?;
        manager.drop_table(Table::drop().table(Recordings::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Rooms {
    Table,
    AutoRecord,
}

#[derive(DeriveIden)]
enum Recordings {
    Table,
    Id,
    TenantId,
    Room,
    Node,
    StartedBy,
    StartedByUser,
    NotifyEmail,
    StartedAt,
    StoppedAt,
    State,
    Failure,
    Interrupted,
    TrackBytes,
    DurationMs,
    FileBytes,
    Participants,
    Attempts,
    ClaimedAt,
}
