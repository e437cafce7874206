//! Scheduled meetings with their invitees, and the sessions the media node reports (who was in which room
//! when), behind `/v1/meetings` and `/v1/rooms/{name}/presence`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Meetings::Table)
                    .col(uuid(Meetings::Id).primary_key())
                    .col(uuid(Meetings::TenantId))
                    .col(uuid(Meetings::RoomId))
                    .col(uuid(Meetings::OrganizerId))
                    .col(string_len(Meetings::Title, 200))
                    .col(timestamp_with_time_zone(Meetings::StartsAt))
                    .col(timestamp_with_time_zone(Meetings::EndsAt))
                    .col(string_len(Meetings::TimeZone, 64))
                    .col(integer(Meetings::WeeklyOccurrences))
                    .col(timestamp_with_time_zone(Meetings::LastEndsAt))
                    .col(string_len(Meetings::JoinCode, 64).unique_key())
                    .col(integer(Meetings::Sequence))
                    .col(timestamp_with_time_zone_null(Meetings::CancelledAt))
                    .col(timestamp_with_time_zone(Meetings::CreatedAt))
                    .col(timestamp_with_time_zone(Meetings::UpdatedAt))
                    .foreign_key(&mut crate::tenant_foreign_key(Meetings::Table, Meetings::TenantId))
                    .foreign_key(&mut crate::owned_by(Meetings::Table, Meetings::RoomId, Rooms::Table, Rooms::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_meetings_tenant_last_ends_at")
                    .table(Meetings::Table)
                    .col(Meetings::TenantId)
                    .col(Meetings::LastEndsAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(MeetingInvitees::Table)
                    .col(uuid(MeetingInvitees::Id).primary_key())
                    .col(uuid(MeetingInvitees::TenantId))
                    .col(uuid(MeetingInvitees::MeetingId))
                    .col(string_len(MeetingInvitees::Email, 254))
                    .col(timestamp_with_time_zone(MeetingInvitees::InvitedAt))
                    .foreign_key(&mut crate::tenant_foreign_key(MeetingInvitees::Table, MeetingInvitees::TenantId))
                    .foreign_key(&mut crate::owned_by(
                        MeetingInvitees::Table,
                        MeetingInvitees::MeetingId,
                        Meetings::Table,
                        Meetings::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_meeting_invitees_meeting_email")
                    .table(MeetingInvitees::Table)
                    .col(MeetingInvitees::MeetingId)
                    .col(MeetingInvitees::Email)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RoomSessions::Table)
                    .col(uuid(RoomSessions::Id).primary_key())
                    .col(uuid(RoomSessions::TenantId))
                    .col(string_len(RoomSessions::RoomName, 64))
                    .col(timestamp_with_time_zone(RoomSessions::StartedAt))
                    .col(timestamp_with_time_zone_null(RoomSessions::EndedAt))
                    .foreign_key(&mut crate::tenant_foreign_key(RoomSessions::Table, RoomSessions::TenantId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_room_sessions_tenant_started_at")
                    .table(RoomSessions::Table)
                    .col(RoomSessions::TenantId)
                    .col(RoomSessions::StartedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SessionParticipants::Table)
                    .col(uuid(SessionParticipants::Id).primary_key())
                    .col(uuid(SessionParticipants::TenantId))
                    .col(uuid(SessionParticipants::SessionId))
                    .col(string_len(SessionParticipants::ParticipantId, 128))
                    .col(string_len(SessionParticipants::Name, 200))
                    .col(boolean(SessionParticipants::Moderator))
                    .col(timestamp_with_time_zone(SessionParticipants::JoinedAt))
                    .col(timestamp_with_time_zone_null(SessionParticipants::LeftAt))
                    .foreign_key(&mut crate::tenant_foreign_key(
                        SessionParticipants::Table,
                        SessionParticipants::TenantId,
                    ))
                    .foreign_key(&mut crate::owned_by(
                        SessionParticipants::Table,
                        SessionParticipants::SessionId,
                        RoomSessions::Table,
                        RoomSessions::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_session_participants_session")
                    .table(SessionParticipants::Table)
                    .col(SessionParticipants::SessionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SessionParticipants::Table.into_iden(),
            RoomSessions::Table.into_iden(),
            MeetingInvitees::Table.into_iden(),
            Meetings::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Rooms {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Meetings {
    Table,
    Id,
    TenantId,
    RoomId,
    OrganizerId,
    Title,
    StartsAt,
    EndsAt,
    TimeZone,
    /// 1 for a single meeting; n for n weekly occurrences.
    WeeklyOccurrences,
    /// When the last occurrence ends: links stop working then.
    LastEndsAt,
    JoinCode,
    /// The iCalendar SEQUENCE, raised by every change that is mailed.
    Sequence,
    CancelledAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum MeetingInvitees {
    Table,
    Id,
    TenantId,
    MeetingId,
    Email,
    InvitedAt,
}

#[derive(DeriveIden)]
enum RoomSessions {
    Table,
    Id,
    TenantId,
    RoomName,
    StartedAt,
    EndedAt,
}

#[derive(DeriveIden)]
enum SessionParticipants {
    Table,
    Id,
    TenantId,
    SessionId,
    ParticipantId,
    Name,
    Moderator,
    JoinedAt,
    LeftAt,
}
