//! `dead_letters`: events an outbox's consumer could not apply, however often it tried, set aside with the
//! reason so the events behind them go on (an operator's table, not a tenant's).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DeadLetters::Table)
                    .col(uuid(DeadLetters::Id).primary_key())
                    .col(string_len(DeadLetters::Source, 32))
                    .col(string_len(DeadLetters::Key, 200))
                    .col(text(DeadLetters::Payload))
                    .col(text(DeadLetters::Reason))
                    .col(integer(DeadLetters::Attempts))
                    .col(timestamp_with_time_zone(DeadLetters::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(DeadLetters::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum DeadLetters {
    Table,
    Id,
    Source,
    Key,
    Payload,
    Reason,
    Attempts,
    CreatedAt,
}
