//! `session_participants.phone`: a stay that is a phone call says how it came in (`dial_in` or
//! `dial_out`), so webhooks tell phone callers from people in browsers when they join and when they leave.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SessionParticipants::Table)
                    .add_column(string_len_null(SessionParticipants::Phone, 16))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(SessionParticipants::Table).drop_column(SessionParticipants::Phone).to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum SessionParticipants {
    Table,
    Phone,
}
