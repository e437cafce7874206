//! A tenant's people: members with roles, invitations by email, role changes and removal. Permissions:
//! owners and admins invite (only owners may invite owners); owners change roles and remove members; the
//! last owner can be neither demoted nor removed. Every lookup is scoped to the actor's tenant, so another
//! tenant's ids are indistinguishable from unknown ones.

use chrono::{TimeDelta, Utc};
use convene_app::model::{InvitationDetails, Member, PendingInvitation, Team};
use convene_domain::{EmailAddress, Role, TenantId};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use secrecy::SecretString;
use url::Url;
use uuid::Uuid;

use crate::{
    entities::{invitation, membership, session, tenant, user},
    people::Actor,
    people::accounts::users_by_id,
    people::password::{Password, WeakPassword},
    platform::audit::{self, AuditEvent},
    platform::mail::{Email, Mailer},
    platform::rate_limit::{MAIL_WINDOW, SharedLimiter},
    platform::secrets::{random_token, token_hash},
};

/// How long an invitation link works.
const INVITATION_LIFETIME: TimeDelta = TimeDelta::days(7);

/// Why a team action was refused.
#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    /// Too many invitations from this organisation or client in the last hour.
    #[error("too many invitations in the last hour; try again later")]
    RateLimited,
    /// The role does not allow it.
    #[error("your role does not allow this")]
    Forbidden,
    /// No such member or invitation in this tenant.
    #[error("not found")]
    NotFound,
    /// The email is malformed.
    #[error("{0}")]
    Email(String),
    /// That person is already a member.
    #[error("{0} is already a member")]
    AlreadyMember(String),
    /// The last owner would be left without a successor.
    #[error("the organisation needs at least one owner; make someone else owner first")]
    LastOwner,
    /// The invitation link is unusable.
    #[error("{0}")]
    Link(crate::people::accounts::LinkError),
    /// The invitee must sign in as the invited address first.
    #[error("sign in as {0} to accept this invitation")]
    SignInFirst(String),
    /// Name missing on acceptance.
    #[error("enter your name")]
    Name,
    /// Weak password on acceptance.
    #[error("{0}")]
    WeakPassword(#[from] WeakPassword),
    /// Storage failed.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// Mail or randomness failed.
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

/// The team service.
#[derive(Debug, Clone)]
pub struct TeamService {
    db: DatabaseConnection,
    mailer: Mailer,
    public_url: Url,
    /// Invitation mail per organisation and per client.
    limiter: SharedLimiter,
}

/// Invitations per organisation, and per client address, per hour.
const INVITATIONS_PER_TENANT: u32 = 100;
const INVITATIONS_PER_CLIENT: u32 = 30;

impl TeamService {
    /// The service over a database, a mailer and the public URL for links.
    pub fn new(db: DatabaseConnection, mailer: Mailer, public_url: Url) -> Self {
        Self { limiter: SharedLimiter::new(db.clone()), db, mailer, public_url }
    }

    /// The team page: members and pending invitations.
    pub async fn team(&self, actor: Actor) -> Result<Team, TeamError> {
        let memberships = membership::Entity::find()
            .filter(membership::Column::TenantId.eq(actor.tenant.as_uuid()))
            .order_by_asc(membership::Column::CreatedAt)
            .all(&self.db)
            .await?;
        let people = users_by_id(&self.db, memberships.iter().map(|membership| membership.user_id)).await?;
        let mut members = Vec::with_capacity(memberships.len());
        for membership in memberships {
            let Some(person) = people.get(&membership.user_id).cloned() else { continue };
            let Ok(role) = Role::parse(&membership.role) else { continue };
            members.push(Member {
                user_id: person.id.to_string(),
                name: person.display_name,
                email: person.email,
                role,
                is_viewer: person.id == actor.user_id,
                disabled: membership.disabled_at.is_some(),
            });
        }
        let invitations = if actor.is_admin() {
            invitation::Entity::find()
                .filter(invitation::Column::TenantId.eq(actor.tenant.as_uuid()))
                .filter(invitation::Column::AcceptedAt.is_null())
                .filter(invitation::Column::RevokedAt.is_null())
                .filter(invitation::Column::ExpiresAt.gt(Utc::now()))
                .order_by_desc(invitation::Column::CreatedAt)
                .all(&self.db)
                .await?
                .into_iter()
                .filter_map(|row| {
                    Some(PendingInvitation {
                        id: row.id.to_string(),
                        email: row.email,
                        role: Role::parse(&row.role).ok()?,
                        expires_at: row.expires_at.to_rfc3339(),
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Team { viewer_role: actor.role, members, invitations })
    }

    /// Invites `email` with `role` and mails the link.
    pub async fn invite(&self, actor: Actor, email: &str, role: Role, ip: Option<&str>) -> Result<(), TeamError> {
        if !actor.is_admin() || (role == Role::Owner && actor.role != Role::Owner) {
            return Err(TeamError::Forbidden);
        }
        let email = EmailAddress::parse(email).map_err(|error| TeamError::Email(error.to_string()))?;
        let client = format!("invite-ip:{}", ip.unwrap_or_default());
        let tenant_key = format!("invite-tenant:{}", actor.tenant);
        if !self.limiter.allow(&client, INVITATIONS_PER_CLIENT, MAIL_WINDOW).await?
            || !self.limiter.allow(&tenant_key, INVITATIONS_PER_TENANT, MAIL_WINDOW).await?
        {
            return Err(TeamError::RateLimited);
        }
        if let Some(existing) =
            user::Entity::find().filter(user::Column::Email.eq(email.as_str())).one(&self.db).await?
            && membership::Entity::find_by_id((actor.tenant.as_uuid(), existing.id)).one(&self.db).await?.is_some()
        {
            return Err(TeamError::AlreadyMember(email.to_string()));
        }
        let tenant =
            tenant::Entity::find_by_id(actor.tenant.as_uuid()).one(&self.db).await?.ok_or(TeamError::NotFound)?;
        let inviter = user::Entity::find_by_id(actor.user_id).one(&self.db).await?.ok_or(TeamError::NotFound)?;
        let token = random_token()?;
        let now = Utc::now();
        invitation::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(actor.tenant.as_uuid()),
            email: Set(email.to_string()),
            role: Set(role.as_str().to_owned()),
            token_hash: Set(token_hash(&token)),
            invited_by: Set(Some(actor.user_id)),
            created_at: Set(now),
            expires_at: Set(now + INVITATION_LIFETIME),
            accepted_at: Set(None),
            revoked_at: Set(None),
        }
        .insert(&self.db)
        .await?;
        let mut link = self.public_url.join("invitations/accept").map_err(anyhow::Error::from)?;
        link.query_pairs_mut().append_pair("token", &token);
        let message = Email::new(
            &email,
            &format!("{} invited you to {} on Convene", inviter.display_name, tenant.name),
            &[
                "Hello,",
                &format!(
                    "{} invited you to join {} on Convene as {}.",
                    inviter.display_name,
                    tenant.name,
                    role.as_str()
                ),
            ],
            ("Accept the invitation", link.as_str()),
            "The link works once and expires in 7 days. If you did not expect this, ignore this mail.",
        );
        self.mailer.queue(message).await.map_err(anyhow::Error::from)?;
        let detail = format!("{} as {}", email, role.as_str());
        audit::record(&self.db, actor.tenant, Some(actor.user_id), AuditEvent::MemberInvited, &detail, ip).await?;
        Ok(())
    }

    /// Withdraws a pending invitation.
    pub async fn revoke_invitation(&self, actor: Actor, id: Uuid) -> Result<(), TeamError> {
        if !actor.is_admin() {
            return Err(TeamError::Forbidden);
        }
        let row = invitation::Entity::find_by_id(id)
            .filter(invitation::Column::TenantId.eq(actor.tenant.as_uuid()))
            .filter(invitation::Column::AcceptedAt.is_null())
            .filter(invitation::Column::RevokedAt.is_null())
            .one(&self.db)
            .await?
            .ok_or(TeamError::NotFound)?;
        let detail = row.email.clone();
        let mut active: invitation::ActiveModel = row.into();
        active.revoked_at = Set(Some(Utc::now()));
        active.update(&self.db).await?;
        audit::record(&self.db, actor.tenant, Some(actor.user_id), AuditEvent::InvitationRevoked, &detail, None)
            .await?;
        Ok(())
    }

    /// Changes a member's role (owners only; the last owner stays owner).
    pub async fn change_role(&self, actor: Actor, member: Uuid, role: Role) -> Result<(), TeamError> {
        let target = self.member(actor, member).await?;
        if target.disabled_at.is_some() {
            return Err(TeamError::NotFound);
        }
        if actor.role != Role::Owner {
            return Err(TeamError::Forbidden);
        }
        let previous = target.role.clone();
        if previous == Role::Owner.as_str() && role != Role::Owner && self.owner_count(actor.tenant).await? <= 1 {
            return Err(TeamError::LastOwner);
        }
        let mut active: membership::ActiveModel = target.into();
        active.role = Set(role.as_str().to_owned());
        active.update(&self.db).await?;
        let detail = format!("{member}: {previous} → {}", role.as_str());
        audit::record(&self.db, actor.tenant, Some(actor.user_id), AuditEvent::RoleChanged, &detail, None).await?;
        Ok(())
    }

    /// Removes a member (owners only; not the last owner). Their sessions in this tenant lose it.
    pub async fn remove(&self, actor: Actor, member: Uuid) -> Result<(), TeamError> {
        let target = self.member(actor, member).await?;
        if actor.role != Role::Owner {
            return Err(TeamError::Forbidden);
        }
        if target.role == Role::Owner.as_str() && self.owner_count(actor.tenant).await? <= 1 {
            return Err(TeamError::LastOwner);
        }
        let txn = crate::platform::db::begin_write(&self.db).await?;
        membership::Entity::delete_by_id((actor.tenant.as_uuid(), member)).exec(&txn).await?;
        detach_sessions(&txn, actor.tenant, member).await?;
        audit::record(&txn, actor.tenant, Some(actor.user_id), AuditEvent::MemberRemoved, &member.to_string(), None)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Disables or re-enables a member (owners only, not themselves, never the last owner). A disabled member
    /// keeps their history but cannot work in the tenant; their sessions there lose it at once.
    pub async fn set_disabled(&self, actor: Actor, member: Uuid, disabled: bool) -> Result<(), TeamError> {
        let target = self.member(actor, member).await?;
        if actor.role != Role::Owner || member == actor.user_id {
            return Err(TeamError::Forbidden);
        }
        if disabled && target.role == Role::Owner.as_str() && self.owner_count(actor.tenant).await? <= 1 {
            return Err(TeamError::LastOwner);
        }
        let txn = crate::platform::db::begin_write(&self.db).await?;
        let mut active: membership::ActiveModel = target.into();
        active.disabled_at = Set(disabled.then(Utc::now));
        active.update(&txn).await?;
        if disabled {
            detach_sessions(&txn, actor.tenant, member).await?;
        }
        let event = if disabled { AuditEvent::MemberDisabled } else { AuditEvent::MemberEnabled };
        audit::record(&txn, actor.tenant, Some(actor.user_id), event, &member.to_string(), None).await?;
        txn.commit().await?;
        Ok(())
    }

    /// A membership of the actor's tenant, enabled or not.
    async fn member(&self, actor: Actor, member: Uuid) -> Result<membership::Model, TeamError> {
        membership::Entity::find_by_id((actor.tenant.as_uuid(), member)).one(&self.db).await?.ok_or(TeamError::NotFound)
    }

    async fn owner_count(&self, tenant: TenantId) -> Result<usize, DbErr> {
        Ok(membership::Entity::find()
            .filter(membership::Column::TenantId.eq(tenant.as_uuid()))
            .filter(membership::Column::Role.eq(Role::Owner.as_str()))
            .filter(membership::Column::DisabledAt.is_null())
            .all(&self.db)
            .await?
            .len())
    }

    /// A live invitation behind a link.
    async fn live_invitation(&self, token: &str) -> Result<invitation::Model, TeamError> {
        let row = invitation::Entity::find()
            .filter(invitation::Column::TokenHash.eq(token_hash(token.trim())))
            .one(&self.db)
            .await?
            .ok_or(TeamError::Link(crate::people::accounts::LinkError::Unknown))?;
        if row.accepted_at.is_some() {
            return Err(TeamError::Link(crate::people::accounts::LinkError::Used));
        }
        if row.revoked_at.is_some() {
            return Err(TeamError::Link(crate::people::accounts::LinkError::Unknown));
        }
        if row.expires_at <= Utc::now() {
            return Err(TeamError::Link(crate::people::accounts::LinkError::Expired));
        }
        Ok(row)
    }

    /// What the invitation page shows.
    pub async fn invitation(&self, token: &str) -> Result<InvitationDetails, TeamError> {
        let row = self.live_invitation(token).await?;
        let tenant = tenant::Entity::find_by_id(row.tenant_id).one(&self.db).await?.ok_or(TeamError::NotFound)?;
        let has_account =
            user::Entity::find().filter(user::Column::Email.eq(&row.email)).one(&self.db).await?.is_some();
        Ok(InvitationDetails {
            tenant_name: tenant.name,
            email: row.email,
            role: Role::parse(&row.role).map_err(anyhow::Error::from)?,
            has_account,
        })
    }

    /// Accepts an invitation. A new person gives a name and password (the link proves the address); someone
    /// with an account must be signed in as the invited address. Returns the user id and tenant joined.
    pub async fn accept(
        &self,
        token: &str,
        signed_in: Option<Uuid>,
        new_account: Option<(String, SecretString)>,
    ) -> Result<(Uuid, TenantId), TeamError> {
        let row = self.live_invitation(token).await?;
        let existing = user::Entity::find().filter(user::Column::Email.eq(&row.email)).one(&self.db).await?;
        let now = Utc::now();
        let txn = crate::platform::db::begin_write(&self.db).await?;
        let user_id = match existing {
            Some(person) if signed_in == Some(person.id) => person.id,
            Some(person) => return Err(TeamError::SignInFirst(person.email)),
            None => {
                let (name, password) = new_account.ok_or(TeamError::Name)?;
                let name = name.trim().to_owned();
                if name.is_empty() {
                    return Err(TeamError::Name);
                }
                let hash = Password::parse(password, &row.email)?.hash().await?;
                let id = Uuid::now_v7();
                user::ActiveModel {
                    id: Set(id),
                    email: Set(row.email.clone()),
                    display_name: Set(name.chars().take(200).collect()),
                    password_hash: Set(hash),
                    // The link arrived at this address: that verifies it.
                    email_verified_at: Set(Some(now)),
                    created_at: Set(now),
                }
                .insert(&txn)
                .await?;
                id
            }
        };
        // Claim the invitation exactly once, even if two tabs accept at the same moment.
        let claimed = invitation::Entity::update_many()
            .col_expr(invitation::Column::AcceptedAt, sea_orm::sea_query::Expr::value(now))
            .filter(invitation::Column::Id.eq(row.id))
            .filter(invitation::Column::AcceptedAt.is_null())
            .exec(&txn)
            .await?;
        if claimed.rows_affected != 1 {
            return Err(TeamError::Link(crate::people::accounts::LinkError::Used));
        }
        membership::ActiveModel {
            tenant_id: Set(row.tenant_id),
            user_id: Set(user_id),
            role: Set(row.role.clone()),
            created_at: Set(now),
            disabled_at: Set(None),
        }
        .insert(&txn)
        .await?;
        let tenant = TenantId::from(row.tenant_id);
        audit::record(&txn, tenant, Some(user_id), AuditEvent::InvitationAccepted, &row.email, None).await?;
        txn.commit().await?;
        Ok((user_id, tenant))
    }
}

/// Takes a tenant away from a person's sessions (they stay signed in, elsewhere or nowhere).
async fn detach_sessions(db: &impl sea_orm::ConnectionTrait, tenant: TenantId, member: Uuid) -> Result<(), DbErr> {
    session::Entity::update_many()
        .col_expr(session::Column::TenantId, sea_orm::sea_query::Expr::value(Option::<Uuid>::None))
        .filter(session::Column::UserId.eq(member))
        .filter(session::Column::TenantId.eq(tenant.as_uuid()))
        .exec(db)
        .await?;
    Ok(())
}
