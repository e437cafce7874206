//! `media_nodes.sip_addr`: where a node's phone gateway takes SIP, from its heartbeats, so a gateway that
//! took a call for a meeting running on another node can pass the call to that node's gateway.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(MediaNodes::Table).add_column(string_len_null(MediaNodes::SipAddr, 64)).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(MediaNodes::Table).drop_column(MediaNodes::SipAddr).to_owned()).await
    }
}

#[derive(DeriveIden)]
enum MediaNodes {
    Table,
    SipAddr,
}
