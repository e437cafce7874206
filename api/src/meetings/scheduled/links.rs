//! Participant links and starting: the moderator's start, following a link as a member, an invitee or a
//! guest, and the room token each gets (valid until the occurrence ends, plus an overrun).

use super::*;

/// A token lasts until its occurrence ends plus this, so a meeting can overrun.
pub(super) const OVERRUN: TimeDelta = TimeDelta::hours(1);
/// Room tokens live at most this long (the minting limit).
pub(super) const LONGEST_TOKEN: TimeDelta = TimeDelta::days(7);
/// The user ids of guests' tokens start so.
pub(in crate::meetings) const GUEST_PREFIX: &str = "guest-";
/// The user ids of tokens from an invitee's personal link: this prefix and the invitation's id, so the
/// token stops opening the room once the invitation is withdrawn.
pub(in crate::meetings) const INVITEE_PREFIX: &str = "invitee-";
/// Personal link secrets are 52 characters ([`random_token`]); longer ones are not looked up.
const LONGEST_SECRET: usize = 64;

impl MeetingService {
    /// The moderator's "Start": a moderator token for the meeting's room.
    pub async fn start(&self, actor: Actor, id: Uuid) -> Result<String, MeetingError> {
        let loaded = self.load(actor.tenant, id).await?;
        let organiser = self.organiser(actor).await?;
        let now = Utc::now();
        if loaded.row.cancelled_at.is_some() {
            return Err(MeetingError::Closed("cancelled"));
        }
        let Some((_, end)) = Schedule::of(&loaded.row).current(now) else { return Err(MeetingError::Closed("over")) };
        let person = TokenUser {
            id: Some(organiser.id.to_string()),
            name: organiser.display_name,
            email: Some(organiser.email),
            avatar: None,
        };
        Ok(self.room_link(actor.tenant, &loaded.room, person, true, end, now).await?)
    }

    /// Opens the meeting behind a participant link: members of the tenant and invited (confirmed) addresses
    /// join signed in, those whose role moderates (as it is now) as moderators; guests join by name when
    /// the meeting admits them. Answers the meet URL with the token.
    pub async fn join(&self, code: &str, joiner: Joiner) -> Result<String, JoinError> {
        let loaded = self.by_code(code).await?;
        let now = Utc::now();
        match state_of(&loaded.row, now) {
            JoinState::Open => {}
            JoinState::Ended => return Err(JoinError::Ended),
            JoinState::Cancelled => return Err(JoinError::Cancelled),
        }
        let Some((_, end)) = Schedule::of(&loaded.row).current(now) else { return Err(JoinError::Ended) };
        let tenant = TenantId::from(loaded.row.tenant_id);
        let (person, moderator) = match joiner {
            Joiner::Invitee(secret) => {
                let invitee = self.invitee_by_link(loaded.row.id, &secret).await?.ok_or(JoinError::StaleLink)?;
                let person = TokenUser {
                    id: Some(format!("{INVITEE_PREFIX}{}", invitee.id.simple())),
                    name: invited_name(&invitee.email),
                    email: Some(invitee.email),
                    avatar: None,
                };
                (person, false)
            }
            Joiner::Guest(name) => {
                if !loaded.room.guests_allowed {
                    return Err(JoinError::SignInRequired);
                }
                let name = name.trim();
                if name.is_empty() || name.chars().count() > 80 {
                    return Err(JoinError::GuestName);
                }
                let person = TokenUser {
                    id: Some(format!("{GUEST_PREFIX}{}", Uuid::new_v4().simple())),
                    name: name.to_owned(),
                    email: None,
                    avatar: None,
                };
                (person, false)
            }
            Joiner::Person(id) => {
                let person = users_by_id(&self.db, [id]).await?.remove(&id).ok_or(JoinError::SignInRequired)?;
                let role = membership::Entity::find_by_id((loaded.row.tenant_id, id))
                    .one(&self.db)
                    .await?
                    .filter(|member| member.disabled_at.is_none())
                    .and_then(|member| Role::parse(&member.role).ok());
                let invited = person.email_verified_at.is_some() && loaded.invitees.contains(&person.email);
                if role.is_none() && !invited {
                    return Err(JoinError::NotInvited);
                }
                // The role now, not at scheduling: an organiser demoted to participant joins as one.
                let moderator = role.is_some_and(|role| role != Role::Participant);
                let person = TokenUser {
                    id: Some(person.id.to_string()),
                    name: person.display_name,
                    email: Some(person.email),
                    avatar: None,
                };
                (person, moderator)
            }
        };
        Ok(self.room_link(tenant, &loaded.room, person, moderator, end, now).await?)
    }

    pub(super) async fn room_link(
        &self,
        tenant: TenantId,
        room: &room::Model,
        person: TokenUser,
        moderator: bool,
        occurrence_end: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<String, MintError> {
        let expires = (occurrence_end + OVERRUN).min(now + LONGEST_TOKEN);
        let request = TokenRequest {
            room: room.name.clone(),
            user: person,
            moderator,
            features: convene_tokens::Features {
                recording: room.recording_allowed,
                livestreaming: room.recording_allowed,
                outbound_call: moderator,
                ..Default::default()
            },
            exp: Some(u64::try_from(expires.timestamp()).unwrap_or_default()),
            region: None,
        };
        let now = u64::try_from(now.timestamp()).unwrap_or_default();
        let minted = room_tokens::mint(&self.db, &self.envelope, tenant, request, &self.meet_url, now).await?;
        minted.join_url.ok_or_else(|| MintError::Invalid("the room has no link".to_owned()))
    }

    /// The invitation of meeting `meeting` whose latest personal link carries `secret`.
    pub(super) async fn invitee_by_link(
        &self,
        meeting: Uuid,
        secret: &str,
    ) -> Result<Option<meeting_invitee::Model>, DbErr> {
        if secret.is_empty() || secret.len() > LONGEST_SECRET {
            return Ok(None);
        }
        meeting_invitee::Entity::find()
            .filter(meeting_invitee::Column::MeetingId.eq(meeting))
            .filter(meeting_invitee::Column::LinkDigest.eq(token_hash(secret)))
            .one(&self.db)
            .await
    }

    pub(super) fn join_link(&self, code: &str) -> String {
        let mut link = self.public_url.clone();
        link.set_path(&format!("join/{code}"));
        link.to_string()
    }
}

/// Why a participant link did not open the meeting.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Unknown link.
    #[error("this link does not lead to a meeting")]
    NotFound,
    /// The last occurrence is over.
    #[error("this meeting is over")]
    Ended,
    /// Called off.
    #[error("this meeting was cancelled")]
    Cancelled,
    /// Signed in, but neither a member nor invited.
    #[error("this invitation is for someone else; sign in with the invited address")]
    NotInvited,
    /// No account and the meeting admits no guests.
    #[error("sign in to join this meeting")]
    SignInRequired,
    /// A personal link that is not (or no longer) an invitation to this meeting.
    #[error("this personal link no longer opens the meeting: the invitation was withdrawn or a newer mail replaced it")]
    StaleLink,
    /// A guest name that cannot be used.
    #[error("enter your name (1 to 80 characters)")]
    GuestName,
    /// Storage or minting failed.
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

impl From<DbErr> for JoinError {
    fn from(error: DbErr) -> Self {
        Self::Internal(error.into())
    }
}

impl From<MintError> for JoinError {
    fn from(error: MintError) -> Self {
        Self::Internal(error.into())
    }
}

/// Who follows a participant link.
#[derive(Debug, Clone)]
pub enum Joiner {
    /// A signed-in person.
    Person(Uuid),
    /// Someone without an account, with the name they typed.
    Guest(String),
    /// Whoever holds an invitee's personal link (the secret from their mail), as that invitee.
    Invitee(String),
}

/// The name an invitee joins under: their address's local part as words (`jane.doe+x@…` is "Jane Doe").
pub(super) fn invited_name(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    let local = local.split('+').next().unwrap_or(local);
    let words: Vec<String> = local
        .split(['.', '_', '-'])
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
        })
        .collect();
    if words.is_empty() { email.to_owned() } else { words.join(" ") }
}

pub(in crate::meetings) fn state_of(row: &meeting::Model, now: DateTime<Utc>) -> JoinState {
    if row.cancelled_at.is_some() {
        JoinState::Cancelled
    } else if row.last_ends_at <= now {
        JoinState::Ended
    } else {
        JoinState::Open
    }
}

#[cfg(test)]
mod tests {
    use super::invited_name;

    #[test]
    fn invitees_join_under_their_address_as_a_name() {
        assert_eq!(invited_name("jane.doe@example.com"), "Jane Doe");
        assert_eq!(invited_name("nia_new+meetings@elsewhere.example"), "Nia New");
        assert_eq!(invited_name("bob@studio.example"), "Bob");
        assert_eq!(invited_name("...@odd.example"), "...@odd.example", "no words: the address itself");
    }
}
