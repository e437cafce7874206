//! `meeting_invitees.link_digest`: each invitee's personal link (the SHA-256 of its secret; the secret is only
//! ever in the invitee's mail). The link lets that person in under their invited name without an account;
//! uninviting deletes the row and so the link, and each new invitation mail carries a fresh one.
//! Invitations sent before this have no personal link (NULL) and keep working through sign-in as before.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(MeetingInvitees::Table)
                    .add_column(string_len_null(MeetingInvitees::LinkDigest, 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_meeting_invitees_link_digest")
                    .table(MeetingInvitees::Table)
                    .col(MeetingInvitees::LinkDigest)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("idx_meeting_invitees_link_digest").table(MeetingInvitees::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter().table(MeetingInvitees::Table).drop_column(MeetingInvitees::LinkDigest).to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum MeetingInvitees {
    Table,
    LinkDigest,
}
