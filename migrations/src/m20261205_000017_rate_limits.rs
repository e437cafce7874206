//! `rate_limit_windows`: the control plane's rate limits (sign-in attempts, mail sent on someone's behalf),
//! one fixed window per key, shared by every replica behind the load balancer.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RateLimitWindows::Table)
                    .col(string_len(RateLimitWindows::Key, 32).primary_key())
                    .col(big_integer(RateLimitWindows::StartedMs))
                    .col(integer(RateLimitWindows::Count))
                    .to_owned(),
            )
            .await?;
        // Old windows are swept by their start.
        manager
            .create_index(
                Index::create()
                    .name("rate_limit_windows_started")
                    .table(RateLimitWindows::Table)
                    .col(RateLimitWindows::StartedMs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(RateLimitWindows::Table).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum RateLimitWindows {
    Table,
    Key,
    StartedMs,
    Count,
}
