//! Sign-in and sessions: passwords checked under per-account and per-client limits with an equal-cost
//! answer for unknown addresses; sessions stored as token hashes with sliding expiry, moved between the
//! person's tenants, and resolved into the `Actor` and the `Viewer` the rest of the control plane uses.

use super::*;

impl Accounts {
    /// Ends every session of the person, this one included.
    pub async fn sign_out_everywhere(&self, session: &session::Model, client: &Client) -> Result<(), DbErr> {
        end_sessions(&self.db, session.user_id, None).await?;
        self.record_everywhere(session.user_id, AuditEvent::SessionsRevoked, "", client).await
    }

    /// Signs in with an address and password.
    pub async fn login(&self, email: &str, password: SecretString, client: &Client) -> Result<NewSession, LoginError> {
        // The client's limit first, so a flood of distinct addresses from one client is stopped before any of
        // them is counted; the account's limit on the parsed address (one key however it is spelled).
        let client_key = format!("login-ip:{}", client.ip.as_deref().unwrap_or_default());
        if !self.limiter.allow(&client_key, LOGIN_LIMIT_PER_CLIENT, LOGIN_WINDOW).await? {
            return Err(LoginError::RateLimited);
        }
        let address = EmailAddress::parse(email).ok();
        if let Some(address) = &address
            && !self
                .limiter
                .allow(&format!("login:{}", address.as_str()), LOGIN_LIMIT_PER_ACCOUNT, LOGIN_WINDOW)
                .await?
        {
            return Err(LoginError::RateLimited);
        }
        let user = match address {
            Some(address) => {
                user::Entity::find().filter(user::Column::Email.eq(address.as_str())).one(&self.db).await?
            }
            None => None,
        };
        // An unknown address still costs one Argon2 verification, so timing does not reveal accounts.
        let stored = user.as_ref().map(|user| user.password_hash.clone());
        let valid = crate::people::password::verify(stored, password).await?;
        let user = match user {
            Some(user) if valid => user,
            known => {
                if let Some(user) = known {
                    self.record_everywhere(user.id, AuditEvent::LoginFailed, "wrong password", client).await?;
                }
                return Err(LoginError::BadCredentials);
            }
        };
        self.sign_in(user.id, client).await
    }

    /// Starts a session for a person who proved who they are (a password, or a confirmation link from
    /// their mail), in their first enabled organisation; refused when every membership is disabled.
    pub async fn sign_in(&self, user_id: Uuid, client: &Client) -> Result<NewSession, LoginError> {
        let memberships = memberships_of(&self.db, user_id).await?;
        let enabled: Vec<_> = memberships.iter().filter(|membership| membership.disabled_at.is_none()).collect();
        if !memberships.is_empty() && enabled.is_empty() {
            return Err(LoginError::Disabled);
        }
        let tenant = enabled.first().map(|membership| TenantId::from(membership.tenant_id));
        if let Some(tenant) = tenant {
            let detail = client.user_agent.as_deref().unwrap_or_default();
            audit::record(&self.db, tenant, Some(user_id), AuditEvent::Login, detail, client.ip.as_deref()).await?;
        }
        Ok(self.start_session(user_id, tenant, client).await?)
    }

    /// Starts a session for a person, in `tenant` if given.
    pub async fn start_session(
        &self,
        user_id: Uuid,
        tenant: Option<TenantId>,
        client: &Client,
    ) -> anyhow::Result<NewSession> {
        let token = random_token()?;
        let now = Utc::now();
        session::ActiveModel {
            id: Set(Uuid::now_v7()),
            token_hash: Set(token_hash(&token)),
            user_id: Set(user_id),
            tenant_id: Set(tenant.map(TenantId::as_uuid)),
            created_at: Set(now),
            last_seen_at: Set(now),
            expires_at: Set(now + SESSION_LIFETIME),
            revoked_at: Set(None),
            ip: Set(client.ip.clone()),
            user_agent: Set(client.user_agent.as_ref().map(|agent| agent.chars().take(256).collect())),
        }
        .insert(&self.db)
        .await?;
        Ok(NewSession { token: SecretString::from(token) })
    }

    /// The live session behind a cookie value, refreshed (sliding expiry) at most once a minute.
    pub async fn session(&self, token: &str) -> Result<Option<session::Model>, DbErr> {
        let Some(found) = session::Entity::find()
            .filter(session::Column::TokenHash.eq(token_hash(token)))
            .filter(session::Column::RevokedAt.is_null())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let now = Utc::now();
        if found.expires_at <= now {
            return Ok(None);
        }
        if now - found.last_seen_at < SEEN_PRECISION {
            return Ok(Some(found));
        }
        let mut active: session::ActiveModel = found.into();
        active.last_seen_at = Set(now);
        active.expires_at = Set(now + SESSION_LIFETIME);
        Ok(Some(active.update(&self.db).await?))
    }

    /// Ends a session (sign-out).
    pub async fn logout(&self, token: &str, client: &Client) -> Result<(), DbErr> {
        let Some(found) = self.session(token).await? else { return Ok(()) };
        let (user_id, tenant) = (found.user_id, found.tenant_id);
        let mut active: session::ActiveModel = found.into();
        active.revoked_at = Set(Some(Utc::now()));
        active.update(&self.db).await?;
        if let Some(tenant) = tenant {
            audit::record(
                &self.db,
                TenantId::from(tenant),
                Some(user_id),
                AuditEvent::Logout,
                "",
                client.ip.as_deref(),
            )
            .await?;
        }
        Ok(())
    }

    /// Moves a session to another tenant the person belongs to (and is not disabled in). `false` when they
    /// do not belong to it: another tenant's id is treated like an unknown one.
    pub async fn switch_tenant(&self, session: session::Model, tenant: TenantId) -> Result<bool, DbErr> {
        let member = membership::Entity::find_by_id((tenant.as_uuid(), session.user_id))
            .filter(membership::Column::DisabledAt.is_null())
            .one(&self.db)
            .await?;
        if member.is_none() {
            return Ok(false);
        }
        let mut active: session::ActiveModel = session.into();
        active.tenant_id = Set(Some(tenant.as_uuid()));
        active.update(&self.db).await?;
        Ok(true)
    }

    /// The person behind a session acting in their active tenant (the first one they belong to when the
    /// session has none); `None` when they belong to no tenant.
    pub async fn actor(&self, session: &session::Model) -> Result<Option<Actor>, DbErr> {
        let enabled: Vec<_> = memberships_of(&self.db, session.user_id)
            .await?
            .into_iter()
            .filter(|membership| membership.disabled_at.is_none())
            .collect();
        let chosen = enabled
            .iter()
            .find(|membership| Some(membership.tenant_id) == session.tenant_id)
            .or_else(|| enabled.first());
        Ok(chosen.and_then(|membership| {
            Some(Actor {
                user_id: session.user_id,
                tenant: TenantId::from(membership.tenant_id),
                role: Role::parse(&membership.role).ok()?,
            })
        }))
    }

    /// What the site shows about the person behind a session.
    pub async fn viewer(&self, session: &session::Model) -> Result<Option<Viewer>, DbErr> {
        let Some(user) = user::Entity::find_by_id(session.user_id).one(&self.db).await? else { return Ok(None) };
        let mut memberships = Vec::new();
        for membership in memberships_of(&self.db, user.id).await? {
            if membership.disabled_at.is_some() {
                continue;
            }
            let Some(tenant) = tenant::Entity::find_by_id(membership.tenant_id).one(&self.db).await? else {
                continue;
            };
            let Ok(role) = Role::parse(&membership.role) else { continue };
            memberships.push(Membership { tenant_id: tenant.id.to_string(), tenant_name: tenant.name, role });
        }
        let active = session.tenant_id.map(|id| id.to_string());
        let tenant = memberships
            .iter()
            .find(|membership| Some(&membership.tenant_id) == active.as_ref())
            .or_else(|| memberships.first())
            .cloned();
        Ok(Some(Viewer {
            name: user.display_name,
            email: user.email,
            email_verified: user.email_verified_at.is_some(),
            tenant,
            memberships,
        }))
    }
}

/// Revokes every live session of a person except `keep`.
pub(super) async fn end_sessions(
    db: &impl sea_orm::ConnectionTrait,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> Result<(), DbErr> {
    let mut update = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, sea_orm::sea_query::Expr::value(Some(Utc::now())))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null());
    if let Some(keep) = keep {
        update = update.filter(session::Column::Id.ne(keep));
    }
    update.exec(db).await?;
    Ok(())
}

pub(super) async fn memberships_of(db: &DatabaseConnection, user_id: Uuid) -> Result<Vec<membership::Model>, DbErr> {
    membership::Entity::find()
        .filter(membership::Column::UserId.eq(user_id))
        .order_by_asc(membership::Column::CreatedAt)
        .all(db)
        .await
}
