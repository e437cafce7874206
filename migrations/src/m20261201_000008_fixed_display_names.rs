//! `rooms.fixed_display_names`: participants keep the name their meeting link gives them instead of choosing
//! one before joining. Existing rooms keep today's behaviour (names may be changed).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Rooms::Table)
                    .add_column(boolean(Rooms::FixedDisplayNames).default(false))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Rooms::Table).drop_column(Rooms::FixedDisplayNames).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum Rooms {
    Table,
    FixedDisplayNames,
}
