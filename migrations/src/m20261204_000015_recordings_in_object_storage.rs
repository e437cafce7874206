//! `recordings` learn where their composed files are: `object_key` (the folder in object storage they were
//! uploaded to; empty while on the node's disk), and a failed upload's retries (`store_attempts`,
//! `retry_at`), which back off instead of failing the recording.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds columns one at a time.
        let columns = [
            string_len_null(Recordings::ObjectKey, 400),
            integer(Recordings::StoreAttempts).default(0).to_owned(),
            timestamp_with_time_zone_null(Recordings::RetryAt),
        ];
        for mut column in columns {
            manager.alter_table(Table::alter().table(Recordings::Table).add_column(&mut column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Recordings::ObjectKey, Recordings::StoreAttempts, Recordings::RetryAt] {
            manager.alter_table(Table::alter().table(Recordings::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Recordings {
    Table,
    ObjectKey,
    StoreAttempts,
    RetryAt,
}
