//! People and their sessions: public signup (one transaction, then a verification mail), email
//! verification links, sign-in and sign-out, and resolving a session cookie into the person behind it.
//!
//! Rules kept here: an unknown address and a wrong password give the same answer in similar time; sign-in
//! attempts are limited per address and per client; tokens are random, single-use, expiring and stored
//! only as hashes.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, TimeDelta, Utc};
use convene_app::model::{Membership, Viewer};
use convene_domain::{EmailAddress, Role, TenantId};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use secrecy::{ExposeSecret, SecretString};
use url::Url;
use uuid::Uuid;

use crate::{
    audit::{self, AuditEvent},
    entities::{email_token, membership, session, tenant, user},
    mail::{Email, Mailer},
    password::{Password, WeakPassword},
    rate_limit::{MAIL_WINDOW, RateLimiter},
    secrets::{random_token, token_hash},
    team::Actor,
    tenants::{self, CreateTenantError, NewTenant},
};

/// How long a session lasts without being used.
pub const SESSION_LIFETIME: TimeDelta = TimeDelta::days(14);
/// How long a verification link stays valid.
const VERIFY_LINK_LIFETIME: TimeDelta = TimeDelta::hours(24);
/// `last_seen_at` is written at most this often per session.
const SEEN_PRECISION: TimeDelta = TimeDelta::minutes(1);
/// Sign-in attempts allowed per address, and per client address, in [`LOGIN_WINDOW`].
const LOGIN_LIMIT_PER_ACCOUNT: u32 = 5;
const LOGIN_LIMIT_PER_CLIENT: u32 = 20;
const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Verification mails a person may ask for per hour.
const RESEND_LIMIT: u32 = 3;
/// Sign-ups per client address per hour.
const SIGNUPS_PER_CLIENT: u32 = 10;
/// Password reset requests per client address per hour.
const RESETS_PER_CLIENT: u32 = 10;
const RESEND_WINDOW: Duration = Duration::from_secs(60 * 60);

/// The accounts service: shared by the HTTP handlers and the site's server functions.
#[derive(Debug, Clone)]
pub struct Accounts {
    db: DatabaseConnection,
    mailer: Mailer,
    public_url: Url,
    limiter: Arc<RateLimiter>,
}

/// A new session: the cookie value, shown to the browser once and stored only as a hash.
#[derive(Debug)]
pub struct NewSession {
    /// The cookie value.
    pub token: SecretString,
}

/// Where a request comes from, for limits and the audit log.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The peer's IP address.
    pub ip: Option<String>,
    /// The browser's `User-Agent`.
    pub user_agent: Option<String>,
}

/// The signup form.
#[derive(Debug)]
pub struct Signup {
    /// Organisation name.
    pub organisation: String,
    /// The person's name.
    pub name: String,
    /// Their email.
    pub email: String,
    /// Their password.
    pub password: SecretString,
}

/// Why signup failed.
#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    /// The person's name is missing.
    #[error("enter your name")]
    Name,
    /// Tenant creation refused the input (or failed).
    #[error(transparent)]
    Create(#[from] CreateTenantError),
    /// Storage failed.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// Too many sign-ups from this client.
    #[error("too many sign-ups from your network in the last hour; try again later")]
    RateLimited,
    /// Randomness or hashing failed.
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

/// Why sign-in failed. Unknown address and wrong password are one variant on purpose.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong address or password.
    #[error("the email address or password is not right")]
    BadCredentials,
    /// Too many attempts.
    #[error("too many sign-in attempts; wait a few minutes and try again")]
    RateLimited,
    /// Every membership of this person is disabled.
    #[error("your access has been disabled; ask your organisation's owner")]
    Disabled,
    /// Storage failed.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// Randomness or hashing failed.
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

/// Why a password reset link was not sent.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// Too many requests from this client.
    #[error("too many reset requests from your network in the last hour; try again later")]
    RateLimited,
    /// Storage or mail failed.
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

/// Why a link from an email does not work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkError {
    /// No such link (mistyped or cut off).
    #[error("this link is not valid; it may have been cut off when copied")]
    Unknown,
    /// Used before.
    #[error("this link has already been used")]
    Used,
    /// Too old.
    #[error("this link has expired; ask for a new one")]
    Expired,
    /// Storage failed.
    #[error("database error: {0}")]
    Database(String),
}

impl From<DbErr> for LinkError {
    fn from(error: DbErr) -> Self {
        LinkError::Database(error.to_string())
    }
}

/// Why a verification mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum ResendError {
    /// Asked too often.
    #[error("a verification mail was sent recently; check your inbox or try again in an hour")]
    RateLimited,
    /// Already verified.
    #[error("your email address is already confirmed")]
    AlreadyVerified,
    /// Storage failed.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// Mail or randomness failed.
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

/// What a single-use mail link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkPurpose {
    VerifyEmail,
    ChangeEmail,
    ResetPassword,
}

impl LinkPurpose {
    fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::VerifyEmail => "verify_email",
            LinkPurpose::ChangeEmail => "change_email",
            LinkPurpose::ResetPassword => "reset_password",
        }
    }

    /// The page the link opens.
    fn page(self) -> &'static str {
        match self {
            LinkPurpose::VerifyEmail | LinkPurpose::ChangeEmail => "verify",
            LinkPurpose::ResetPassword => "reset-password",
        }
    }

    /// Reset links are short-lived: they grant the account.
    fn lifetime(self) -> TimeDelta {
        match self {
            LinkPurpose::VerifyEmail | LinkPurpose::ChangeEmail => VERIFY_LINK_LIFETIME,
            LinkPurpose::ResetPassword => TimeDelta::hours(1),
        }
    }
}

/// Why a password or address change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PasswordChangeError {
    /// The current password is wrong.
    #[error("the current password is not right")]
    WrongPassword,
    /// The new password breaks a rule.
    #[error("{0}")]
    Weak(#[from] WeakPassword),
    /// The new address is unusable.
    #[error("{0}")]
    Email(String),
    /// The reset link is unusable.
    #[error("{0}")]
    Link(#[from] LinkError),
    /// Storage failed.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// Hashing, mail or randomness failed.
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

impl Accounts {
    /// The service over a database, a mailer and the site's public URL (for links in mail).
    pub fn new(db: DatabaseConnection, mailer: Mailer, public_url: Url) -> Self {
        Self { db, mailer, public_url, limiter: Arc::new(RateLimiter::default()) }
    }

    /// The database, for read models that combine several services (the site's backend).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Creates the organisation and its unconfirmed owner, and mails the link that confirms the address and
    /// signs them in. The answer is the same whether or not the address already has an account, so the form
    /// cannot be used to discover accounts: an existing account's address gets a mail instead (a fresh
    /// confirmation link if it was never confirmed, otherwise a note to sign in), and the same Argon2 work
    /// is done either way.
    pub async fn signup(&self, form: Signup, client: &Client) -> Result<(), SignupError> {
        let name = form.name.trim();
        if name.is_empty() {
            return Err(SignupError::Name);
        }
        // Each sign-up hashes a password and sends a mail: both cost, and both can be aimed at others.
        let key = format!("signup-ip:{}", client.ip.as_deref().unwrap_or_default());
        if !self.limiter.allow(&key, SIGNUPS_PER_CLIENT, MAIL_WINDOW, Instant::now()) {
            return Err(SignupError::RateLimited);
        }
        let password = SecretString::from(form.password.expose_secret().to_owned());
        let created = tenants::create_tenant(
            &self.db,
            NewTenant {
                name: form.organisation,
                owner_email: form.email,
                owner_password: form.password,
                owner_name: Some(name.to_owned()),
                email_verified: false,
                first_api_key: None,
            },
        )
        .await;
        let created = match created {
            Ok(created) => created,
            Err(CreateTenantError::EmailTaken(address)) => {
                // As costly as the hash a new account's password gets.
                crate::password::verify(None, password).await?;
                return self.tell_existing_account(&address).await;
            }
            Err(error) => return Err(error.into()),
        };
        let user_id = created.owner_user_id;
        audit::record(&self.db, created.tenant_id, Some(user_id), AuditEvent::Signup, "", client.ip.as_deref()).await?;
        self.send_verification(user_id).await.map_err(|error| anyhow::anyhow!("{error}"))?;
        Ok(())
    }

    /// Someone signed up with the address of an existing account: its owner gets a fresh confirmation link
    /// (never confirmed) or a note that they already have an account, a few times an hour at most.
    async fn tell_existing_account(&self, address: &str) -> Result<(), SignupError> {
        let Some(user) = user::Entity::find().filter(user::Column::Email.eq(address)).one(&self.db).await? else {
            return Ok(());
        };
        if !self.limiter.allow(&format!("signup-known:{}", user.id), RESEND_LIMIT, RESEND_WINDOW, Instant::now()) {
            return Ok(());
        }
        if user.email_verified_at.is_none() {
            return self.send_verification(user.id).await.map_err(|error| anyhow::anyhow!("{error}").into());
        }
        let sign_in = self.public_url.join("/login").map_err(anyhow::Error::from)?;
        let reset = self.public_url.join("/forgot-password").map_err(anyhow::Error::from)?;
        let reset_line = format!("Forgot your password? Choose a new one at {reset}.");
        self.send_link_mail(
            &user.email,
            "You already have a Convene account",
            &[
                &format!("Hello {},", user.display_name),
                "Someone, perhaps you, tried to create an organisation on Convene with this address. It already \
                 has an account, so nothing was created.",
                &reset_line,
            ],
            ("Sign in", sign_in.as_str()),
            "If it was not you, ignore this mail: your account is unchanged.",
        )
        .await?;
        Ok(())
    }

    /// Sends a fresh verification link, within the resend limit.
    pub async fn resend_verification(&self, user_id: Uuid) -> Result<(), ResendError> {
        if !self.limiter.allow(&format!("resend:{user_id}"), RESEND_LIMIT, RESEND_WINDOW, Instant::now()) {
            return Err(ResendError::RateLimited);
        }
        self.send_verification(user_id).await
    }

    async fn send_verification(&self, user_id: Uuid) -> Result<(), ResendError> {
        let user = user::Entity::find_by_id(user_id).one(&self.db).await?.ok_or_else(|| anyhow::anyhow!("no user"))?;
        if user.email_verified_at.is_some() {
            return Err(ResendError::AlreadyVerified);
        }
        let link = self.issue_link(&user, LinkPurpose::VerifyEmail, &user.email).await?;
        self.send_link_mail(
            &user.email,
            "Confirm your email address for Convene",
            &[&format!("Hello {},", user.display_name), "Please confirm that this is your email address."],
            ("Confirm my email address", &link),
            "The link works once and expires in 24 hours. If you did not sign up for Convene, ignore this mail.",
        )
        .await?;
        Ok(())
    }

    /// Stores a single-use link for `user` and returns its URL.
    async fn issue_link(&self, user: &user::Model, purpose: LinkPurpose, email: &str) -> anyhow::Result<String> {
        let token = random_token()?;
        let now = Utc::now();
        email_token::ActiveModel {
            token_hash: Set(token_hash(&token)),
            purpose: Set(purpose.as_str().to_owned()),
            user_id: Set(user.id),
            email: Set(email.to_owned()),
            created_at: Set(now),
            expires_at: Set(now + purpose.lifetime()),
            used_at: Set(None),
        }
        .insert(&self.db)
        .await?;
        let mut link = self.public_url.join(purpose.page())?;
        link.query_pairs_mut().append_pair("token", &token);
        Ok(link.to_string())
    }

    async fn send_link_mail(
        &self,
        to: &str,
        subject: &str,
        paragraphs: &[&str],
        action: (&str, &str),
        note: &str,
    ) -> anyhow::Result<()> {
        let to = EmailAddress::parse(to)?;
        self.mailer.queue(Email::new(&to, subject, paragraphs, action, note)).await?;
        Ok(())
    }

    /// A live link of one of `purposes` (not claimed yet).
    async fn live_link(&self, token: &str, purposes: &[LinkPurpose]) -> Result<email_token::Model, LinkError> {
        let row =
            email_token::Entity::find_by_id(token_hash(token.trim())).one(&self.db).await?.ok_or(LinkError::Unknown)?;
        if !purposes.iter().any(|purpose| purpose.as_str() == row.purpose) {
            return Err(LinkError::Unknown);
        }
        check_link(row.used_at, row.expires_at)?;
        Ok(row)
    }

    /// Marks a link used, exactly once even under concurrent clicks.
    async fn claim_link(&self, db: &impl sea_orm::ConnectionTrait, row: &email_token::Model) -> Result<(), LinkError> {
        let claimed = email_token::Entity::update_many()
            .col_expr(email_token::Column::UsedAt, sea_orm::sea_query::Expr::value(Utc::now()))
            .filter(email_token::Column::TokenHash.eq(row.token_hash.clone()))
            .filter(email_token::Column::UsedAt.is_null())
            .exec(db)
            .await?;
        if claimed.rows_affected != 1 {
            return Err(LinkError::Used);
        }
        Ok(())
    }

    /// Consumes a link from `/verify`: confirms the account's address, or moves the account to a new
    /// address it asked to change to. Answers whose account it was when the link was a sign-up's
    /// confirmation, which may sign them in; a change of address signs no one in (the new address may be
    /// a stranger's, mistyped).
    pub async fn verify_email(&self, token: &str) -> Result<Option<Uuid>, LinkError> {
        let row = self.live_link(token, &[LinkPurpose::VerifyEmail, LinkPurpose::ChangeEmail]).await?;
        let Some(user) = user::Entity::find_by_id(row.user_id).one(&self.db).await? else {
            return Err(LinkError::Unknown);
        };
        let changing = row.purpose == LinkPurpose::ChangeEmail.as_str();
        // A confirmation link for an address the account no longer has confirms nothing.
        if !changing && user.email != row.email {
            return Err(LinkError::Unknown);
        }
        if changing
            && let Ok(address) = EmailAddress::parse(&row.email)
            && tenants::email_taken(&self.db, &address).await?
        {
            return Err(LinkError::Unknown);
        }
        let txn = self.db.begin().await?;
        self.claim_link(&txn, &row).await?;
        let (user_id, previous) = (user.id, user.email.clone());
        let mut active: user::ActiveModel = user.into();
        active.email_verified_at = Set(Some(Utc::now()));
        if changing {
            active.email = Set(row.email.clone());
        }
        active.update(&txn).await?;
        txn.commit().await?;
        let (event, detail) = if changing {
            (AuditEvent::EmailChanged, format!("{previous} → {}", row.email))
        } else {
            (AuditEvent::EmailVerified, String::new())
        };
        self.record_everywhere(user_id, event, &detail, &Client::default()).await?;
        Ok((!changing).then_some(user_id))
    }

    /// Mails a password reset link if an account has this address. The answer is the same either way, so
    /// the form cannot be used to discover accounts; requests are limited per address.
    pub async fn request_password_reset(&self, email: &str, client: &Client) -> Result<(), ResetError> {
        // Per client first: one network asking for many addresses' links is a way to send mail.
        let key = format!("reset-ip:{}", client.ip.as_deref().unwrap_or_default());
        if !self.limiter.allow(&key, RESETS_PER_CLIENT, MAIL_WINDOW, Instant::now()) {
            return Err(ResetError::RateLimited);
        }
        let Ok(address) = EmailAddress::parse(email) else { return Ok(()) };
        if !self.limiter.allow(&format!("reset:{address}"), RESEND_LIMIT, RESEND_WINDOW, Instant::now()) {
            return Ok(());
        }
        let user = user::Entity::find().filter(user::Column::Email.eq(address.as_str())).one(&self.db).await;
        let Some(user) = user.map_err(anyhow::Error::from)? else { return Ok(()) };
        let link = self.issue_link(&user, LinkPurpose::ResetPassword, &user.email).await?;
        self.send_link_mail(
            &user.email,
            "Reset your Convene password",
            &[&format!("Hello {},", user.display_name), "Someone asked to reset the password of your Convene account."],
            ("Choose a new password", &link),
            "The link works once and expires in one hour. If you did not ask for this, ignore this mail: your \
             password stays as it is.",
        )
        .await?;
        Ok(())
    }

    /// Sets a new password through a reset link and ends every session of the account.
    pub async fn reset_password(&self, token: &str, password: SecretString) -> Result<(), PasswordChangeError> {
        let row = self.live_link(token, &[LinkPurpose::ResetPassword]).await?;
        // Check the new password before using up the link, so a refused password can be retried.
        let hash = Password::parse(password, &row.email)?.hash().await?;
        let txn = self.db.begin().await?;
        self.claim_link(&txn, &row).await?;
        set_password_and_end_sessions(&txn, row.user_id, hash, None).await?;
        txn.commit().await?;
        self.record_everywhere(row.user_id, AuditEvent::PasswordReset, "", &Client::default()).await?;
        Ok(())
    }

    /// Changes the password of a signed-in person who knows the current one; their other sessions end.
    pub async fn change_password(
        &self,
        session: &session::Model,
        current: SecretString,
        new: SecretString,
        client: &Client,
    ) -> Result<(), PasswordChangeError> {
        let user = self.user_checking_password(session, current).await?;
        let hash = Password::parse(new, &user.email)?.hash().await?;
        let txn = self.db.begin().await?;
        set_password_and_end_sessions(&txn, user.id, hash, Some(session.id)).await?;
        txn.commit().await?;
        self.record_everywhere(user.id, AuditEvent::PasswordChanged, "", client).await?;
        Ok(())
    }

    /// Starts a change of address: the new address gets a confirmation link; the account keeps the old one
    /// until the link is used.
    pub async fn request_email_change(
        &self,
        session: &session::Model,
        new_email: &str,
        current: SecretString,
    ) -> Result<(), PasswordChangeError> {
        let user = self.user_checking_password(session, current).await?;
        let address = EmailAddress::parse(new_email).map_err(|error| PasswordChangeError::Email(error.to_string()))?;
        if tenants::email_taken(&self.db, &address).await? {
            return Err(PasswordChangeError::Email(format!("{address} already belongs to an account")));
        }
        let link = self.issue_link(&user, LinkPurpose::ChangeEmail, address.as_str()).await?;
        self.send_link_mail(
            address.as_str(),
            "Confirm your new email address for Convene",
            &[
                &format!("Hello {},", user.display_name),
                "Please confirm that your Convene account should use this address.",
            ],
            ("Use this address", &link),
            "The link works once and expires in 24 hours. Until then your account keeps its current address.",
        )
        .await?;
        Ok(())
    }

    /// Ends every session of the person, this one included.
    pub async fn sign_out_everywhere(&self, session: &session::Model, client: &Client) -> Result<(), DbErr> {
        end_sessions(&self.db, session.user_id, None).await?;
        self.record_everywhere(session.user_id, AuditEvent::SessionsRevoked, "", client).await
    }

    async fn user_checking_password(
        &self,
        session: &session::Model,
        current: SecretString,
    ) -> Result<user::Model, PasswordChangeError> {
        let user =
            user::Entity::find_by_id(session.user_id).one(&self.db).await?.ok_or(PasswordChangeError::WrongPassword)?;
        if !crate::password::verify(Some(user.password_hash.clone()), current).await? {
            return Err(PasswordChangeError::WrongPassword);
        }
        Ok(user)
    }

    /// Records an event about a person in the log of every tenant they belong to.
    async fn record_everywhere(
        &self,
        user_id: Uuid,
        event: AuditEvent,
        detail: &str,
        client: &Client,
    ) -> Result<(), DbErr> {
        for membership in memberships_of(&self.db, user_id).await? {
            let tenant = TenantId::from(membership.tenant_id);
            audit::record(&self.db, tenant, Some(user_id), event, detail, client.ip.as_deref()).await?;
        }
        Ok(())
    }

    /// Signs in with an address and password.
    pub async fn login(&self, email: &str, password: SecretString, client: &Client) -> Result<NewSession, LoginError> {
        let now = Instant::now();
        // The client's limit first, so a flood of distinct addresses from one client is stopped before any of
        // them is counted; the account's limit on the parsed address (one key however it is spelled).
        let client_key = format!("login-ip:{}", client.ip.as_deref().unwrap_or_default());
        if !self.limiter.allow(&client_key, LOGIN_LIMIT_PER_CLIENT, LOGIN_WINDOW, now) {
            return Err(LoginError::RateLimited);
        }
        let address = EmailAddress::parse(email).ok();
        if let Some(address) = &address
            && !self.limiter.allow(&format!("login:{}", address.as_str()), LOGIN_LIMIT_PER_ACCOUNT, LOGIN_WINDOW, now)
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
        let valid = crate::password::verify(stored, password).await?;
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

/// Stores a new password hash and ends the person's sessions, except `keep` (the one making the change).
async fn set_password_and_end_sessions(
    db: &impl sea_orm::ConnectionTrait,
    user_id: Uuid,
    hash: String,
    keep: Option<Uuid>,
) -> Result<(), DbErr> {
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, sea_orm::sea_query::Expr::value(hash))
        .filter(user::Column::Id.eq(user_id))
        .exec(db)
        .await?;
    // Other reset links mailed before are used up too: a new password must not be undone by an old mail.
    email_token::Entity::update_many()
        .col_expr(email_token::Column::UsedAt, sea_orm::sea_query::Expr::value(Some(Utc::now())))
        .filter(email_token::Column::UserId.eq(user_id))
        .filter(email_token::Column::Purpose.eq(LinkPurpose::ResetPassword.as_str()))
        .filter(email_token::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    end_sessions(db, user_id, keep).await
}

/// Revokes every live session of a person except `keep`.
async fn end_sessions(db: &impl sea_orm::ConnectionTrait, user_id: Uuid, keep: Option<Uuid>) -> Result<(), DbErr> {
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

/// The users with these ids, in one query, by id (for pages that list people).
pub async fn users_by_id(
    db: &impl sea_orm::ConnectionTrait,
    ids: impl IntoIterator<Item = Uuid>,
) -> Result<std::collections::HashMap<Uuid, user::Model>, DbErr> {
    let ids: Vec<Uuid> = ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let found = user::Entity::find().filter(user::Column::Id.is_in(ids)).all(db).await?;
    Ok(found.into_iter().map(|person| (person.id, person)).collect())
}

/// Refuses used and expired links.
fn check_link(used_at: Option<DateTime<Utc>>, expires_at: DateTime<Utc>) -> Result<(), LinkError> {
    if used_at.is_some() {
        return Err(LinkError::Used);
    }
    if expires_at <= Utc::now() {
        return Err(LinkError::Expired);
    }
    Ok(())
}

async fn memberships_of(db: &DatabaseConnection, user_id: Uuid) -> Result<Vec<membership::Model>, DbErr> {
    membership::Entity::find()
        .filter(membership::Column::UserId.eq(user_id))
        .order_by_asc(membership::Column::CreatedAt)
        .all(db)
        .await
}
