//! What the site and the API show of scheduled meetings: the meetings page, a meeting's page, the API's
//! views, and the participant link's page.

use super::*;

impl MeetingService {
    /// One meeting for the API.
    pub async fn scheduled(&self, tenant: TenantId, id: Uuid) -> Result<ScheduledMeeting, MeetingError> {
        let loaded = self.load(tenant, id).await?;
        let organizer =
            users_by_id(&self.db, [loaded.row.organizer_id]).await?.remove(&loaded.row.organizer_id).map(|u| u.email);
        Ok(self.api_view(loaded, organizer))
    }

    /// One page of the tenant's meetings for the API, newest first, before the meeting `after`.
    pub async fn scheduled_page(
        &self,
        tenant: TenantId,
        limit: u64,
        after: Option<Uuid>,
    ) -> Result<(Vec<ScheduledMeeting>, Option<Uuid>), MeetingError> {
        let mut query = meeting::Entity::find().filter(meeting::Column::TenantId.eq(tenant.as_uuid()));
        if let Some(after) = after {
            query = query.filter(meeting::Column::Id.lt(after));
        }
        let rows = query.order_by_desc(meeting::Column::Id).limit(pagination::fetch_size(limit)).all(&self.db).await?;
        let (rows, next) = pagination::page(rows, limit, |row| row.id);
        let organizers = users_by_id(&self.db, rows.iter().map(|row| row.organizer_id)).await?;
        let page = self
            .complete(rows)
            .await?
            .into_iter()
            .map(|loaded| {
                let organizer = organizers.get(&loaded.row.organizer_id).map(|person| person.email.clone());
                self.api_view(loaded, organizer)
            })
            .collect();
        Ok((page, next))
    }

    pub(super) fn api_view(&self, loaded: Loaded, organizer: Option<String>) -> ScheduledMeeting {
        let schedule = Schedule::of(&loaded.row);
        let room = loaded.room;
        ScheduledMeeting {
            settings: rooms::settings_of(&room),
            id: loaded.row.id,
            title: loaded.row.title,
            room: room.name,
            organizer,
            starts_at: loaded.row.starts_at,
            ends_at: loaded.row.ends_at,
            time_zone: schedule.time_zone.name().to_owned(),
            weekly_occurrences: schedule.weekly_occurrences,
            last_ends_at: loaded.row.last_ends_at,
            join_url: self.join_link(&loaded.row.join_code),
            invitees: loaded.invitees,
            cancelled_at: loaded.row.cancelled_at,
            undelivered: Vec::new(),
        }
    }

    /// The tenant's upcoming and past meetings.
    pub async fn list(&self, actor: Actor) -> Result<MeetingListing, MeetingError> {
        if actor.role == Role::Participant {
            return Err(MeetingError::Forbidden);
        }
        let now = Utc::now();
        let tenant = meeting::Column::TenantId.eq(actor.tenant.as_uuid());
        let upcoming = meeting::Entity::find()
            .filter(tenant.clone())
            .filter(meeting::Column::CancelledAt.is_null())
            .filter(meeting::Column::LastEndsAt.gt(now))
            .order_by_asc(meeting::Column::StartsAt)
            .all(&self.db)
            .await?;
        let past = meeting::Entity::find()
            .filter(tenant)
            .filter(
                Condition::any()
                    .add(meeting::Column::CancelledAt.is_not_null())
                    .add(meeting::Column::LastEndsAt.lte(now)),
            )
            .order_by_desc(meeting::Column::StartsAt)
            .limit(PAST_SHOWN)
            .all(&self.db)
            .await?;
        let mut upcoming = self.summaries(upcoming, now).await?;
        // A series sorts by its next occurrence, not its first.
        upcoming.sort_by_key(|(next, _)| *next);
        let past = self.summaries(past, now).await?;
        let (sessions, _) = room_sessions::list(&self.db, actor.tenant, HELD_SHOWN, None).await?;
        let titles: HashMap<&str, &str> =
            upcoming.iter().chain(&past).map(|(_, summary)| (summary.room.as_str(), summary.title.as_str())).collect();
        let held = sessions
            .into_iter()
            .map(|session| held_meeting(titles.get(session.room.as_str()).copied(), session))
            .collect();
        Ok(MeetingListing {
            upcoming: upcoming.into_iter().map(|(_, summary)| summary).collect(),
            past: past.into_iter().map(|(_, summary)| summary).collect(),
            held,
        })
    }

    pub(super) async fn summaries(
        &self,
        rows: Vec<meeting::Model>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, MeetingSummary)>, MeetingError> {
        Ok(self.complete(rows).await?.iter().map(|loaded| summary(loaded, now)).collect())
    }

    /// One meeting's page.
    pub async fn details(&self, actor: Actor, id: Uuid) -> Result<MeetingDetails, MeetingError> {
        if actor.role == Role::Participant {
            return Err(MeetingError::Forbidden);
        }
        let loaded = self.load(actor.tenant, id).await?;
        let now = Utc::now();
        let schedule = Schedule::of(&loaded.row);
        let organizer = users_by_id(&self.db, [loaded.row.organizer_id])
            .await?
            .remove(&loaded.row.organizer_id)
            .map_or_else(|| "a former member".to_owned(), |person| person.display_name);
        let ended = loaded.row.last_ends_at <= now;
        let occurrences: Vec<String> = schedule
            .occurrences()
            .filter(|(_, end)| ended || *end > now)
            .map(|occurrence| schedule.describe(occurrence))
            .collect();
        let room_settings = rooms::settings_of(&loaded.room);
        let local = |at: DateTime<Utc>| at.with_timezone(&schedule.time_zone).format("%Y-%m-%dT%H:%M").to_string();
        let draft = MeetingDraft {
            title: loaded.row.title.clone(),
            room: loaded.room.name.clone(),
            starts_at: local(loaded.row.starts_at),
            ends_at: local(loaded.row.ends_at),
            time_zone: schedule.time_zone.name().to_owned(),
            weekly_occurrences: schedule.weekly_occurrences,
            invitees: loaded.invitees.join("\n"),
            settings: room_settings.clone(),
        };
        let phone = match RoomName::parse(&loaded.room.name) {
            Ok(room) => self.dial_in.offered(TenantId::from(loaded.row.tenant_id), &room).await,
            Err(_) => None,
        };
        Ok(MeetingDetails {
            phone: phone.as_ref().map(RoomDialIn::for_people),
            summary: summary(&loaded, now).1,
            occurrences,
            organizer,
            join_link: self.join_link(&loaded.row.join_code),
            invitees: loaded.invitees,
            settings: room_settings.descriptions(),
            ended,
            draft,
        })
    }

    /// What the meeting client shows around a room of `tenant` for the token's `user_id`: the scheduled
    /// meeting's title and participant link, when a meeting owns the room, and the way back to the
    /// dashboard for members of the organisation.
    pub async fn client_context(
        &self,
        tenant: TenantId,
        room: &str,
        user_id: Option<&str>,
    ) -> Result<ClientContext, DbErr> {
        let name = RoomName::parse(room).ok();
        let room = room::Entity::find()
            .filter(room::Column::TenantId.eq(tenant.as_uuid()))
            .filter(room::Column::Name.eq(room))
            .one(&self.db)
            .await?;
        let meeting = match room {
            Some(room) => meeting::Entity::find().filter(meeting::Column::RoomId.eq(room.id)).one(&self.db).await?,
            None => None,
        };
        let member = match user_id.and_then(|id| Uuid::parse_str(id).ok()) {
            Some(person) => membership::Entity::find_by_id((tenant.as_uuid(), person))
                .one(&self.db)
                .await?
                .is_some_and(|member| member.disabled_at.is_none()),
            None => false,
        };
        let phone = match name {
            Some(name) if meeting.is_some() => self.dial_in.offered(tenant, &name).await,
            _ => None,
        };
        Ok(ClientContext {
            phone: phone.as_ref().map(RoomDialIn::for_people),
            invite_link: meeting.as_ref().map(|meeting| self.join_link(&meeting.join_code)),
            title: meeting.map(|meeting| meeting.title),
            home: member.then(|| self.public_url.join("dashboard").map(String::from).ok()).flatten(),
        })
    }

    /// What a participant link's page shows; `invite` is the personal link's secret, when it has one.
    pub async fn join_details(
        &self,
        code: &str,
        person: Option<Uuid>,
        invite: Option<&str>,
    ) -> Result<JoinDetails, JoinError> {
        let loaded = self.by_code(code).await?;
        let now = Utc::now();
        let schedule = Schedule::of(&loaded.row);
        let organisation = tenant::Entity::find_by_id(loaded.row.tenant_id)
            .one(&self.db)
            .await?
            .map(|tenant| tenant.name)
            .unwrap_or_default();
        let signed_in_as = match person {
            Some(id) => users_by_id(&self.db, [id]).await?.remove(&id).map(|person| person.display_name),
            None => None,
        };
        let invited_as = match invite {
            Some(secret) => {
                self.invitee_by_link(loaded.row.id, secret).await?.map(|invitee| links::invited_name(&invitee.email))
            }
            None => None,
        };
        Ok(JoinDetails {
            title: loaded.row.title.clone(),
            organisation,
            when: schedule.describe(schedule.current(now).unwrap_or((loaded.row.starts_at, loaded.row.ends_at))),
            guests_allowed: loaded.room.guests_allowed,
            state: state_of(&loaded.row, now),
            signed_in_as,
            stale_link: invite.is_some() && invited_as.is_none(),
            invited_as,
        })
    }
}

/// A room session for the meetings page, named by its scheduled meeting's `title` when it has one.
fn held_meeting(title: Option<&str>, session: room_sessions::Session) -> HeldMeeting {
    // Someone who dropped out and came back is one person who stayed the sum of their stays.
    let mut people: Vec<(String, String, i64)> = Vec::new();
    for stay in session.participants {
        match people.iter_mut().find(|(id, _, _)| *id == stay.id) {
            Some((_, _, seconds)) => *seconds += stay.duration_seconds,
            None => people.push((stay.id, stay.name, stay.duration_seconds)),
        }
    }
    HeldMeeting {
        name: title.map_or_else(|| session.room.clone(), str::to_owned),
        started: session.started_at.format("%a %-d %b %Y, %H:%M UTC").to_string(),
        length: length(session.duration_seconds),
        ongoing: session.ended_at.is_none(),
        people: people.into_iter().map(|(_, name, seconds)| format!("{name} ({})", length(seconds))).collect(),
    }
}

/// A duration for people, to the nearest minute.
fn length(seconds: i64) -> String {
    match (seconds + 30) / 60 {
        0 => "under a minute".to_owned(),
        minutes @ 1..=59 => format!("{minutes} min"),
        minutes => format!("{} h {} min", minutes / 60, minutes % 60),
    }
}

/// A meeting for lists, at its occurrence going on or next (its first, once all are over); also that
/// occurrence's start, which upcoming lists sort by.
pub(super) fn summary(loaded: &Loaded, now: DateTime<Utc>) -> (DateTime<Utc>, MeetingSummary) {
    let row = &loaded.row;
    let schedule = Schedule::of(row);
    let shown = schedule.current(now).unwrap_or((row.starts_at, row.ends_at));
    let summary = MeetingSummary {
        id: row.id.to_string(),
        title: row.title.clone(),
        room: loaded.room.name.clone(),
        when: schedule.describe(shown),
        recurrence: schedule.recurrence(),
        invitees: loaded.invitees.len(),
        cancelled: row.cancelled_at.is_some(),
    };
    (shown.0, summary)
}
