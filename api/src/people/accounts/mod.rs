//! People and their sessions: public signup (one transaction, then a verification mail), email
//! verification links, sign-in and sign-out, and resolving a session cookie into the person behind it.
//!
//! Here: the service, its errors, sign-up and changes of password. `links` holds the single-use mail links,
//! `sessions` sign-in and sessions. Rules kept throughout: an unknown address and a wrong password give the
//! same answer in similar time; sign-in attempts are limited per address and per client, across replicas;
//! tokens are random, single-use, expiring and stored only as hashes.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use convene_app::model::{Membership, Viewer};
use convene_domain::{EmailAddress, Role, TenantId, TenantName};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use secrecy::{ExposeSecret, SecretString};
use url::Url;
use uuid::Uuid;

mod links;
mod sessions;

use links::LinkPurpose;
use sessions::{end_sessions, memberships_of};

use crate::{
    entities::{email_token, membership, session, tenant, user},
    people::Actor,
    people::password::{Password, WeakPassword},
    people::tenants::{self, CreateTenantError, NewTenant},
    platform::audit::{self, AuditEvent},
    platform::mail::{Email, Mailer},
    platform::rate_limit::{MAIL_WINDOW, SharedLimiter},
    platform::secrets::{random_token, token_hash},
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
    limiter: SharedLimiter,
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
    /// Fields that cannot be used, every one of them at once.
    #[error("{}", .0.iter().map(|problem| problem.message.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldProblem>),
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

/// A form field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// The field's name in the form.
    pub field: &'static str,
    /// What is wrong, in lower case (the page capitalises).
    pub message: String,
}

/// Every field's problem at once, so the form marks them all rather than one per attempt. The rules are
/// the ones `create_tenant` enforces.
fn signup_problems(form: &Signup) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    let mut problem = |field, message: String| problems.push(FieldProblem { field, message });
    if TenantName::parse(&form.organisation).is_err() {
        problem("organisation", "enter your organisation's name (up to 200 characters)".to_owned());
    }
    if form.name.trim().is_empty() {
        problem("name", "enter your name".to_owned());
    }
    let email = EmailAddress::parse(&form.email);
    match &email {
        Err(_) if form.email.trim().is_empty() => problem("email", "enter your email address".to_owned()),
        Err(error) => problem("email", error.to_string()),
        Ok(_) => {}
    }
    let email = email.as_ref().map(EmailAddress::as_str).unwrap_or_default();
    if let Err(weak) = Password::parse(SecretString::from(form.password.expose_secret().to_owned()), email) {
        problem("password", weak.to_string());
    }
    problems
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
        Self { limiter: SharedLimiter::new(db.clone()), db, mailer, public_url }
    }

    /// Creates the organisation and its unconfirmed owner, and mails the link that confirms the address and
    /// signs them in. The answer is the same whether or not the address already has an account, so the form
    /// cannot be used to discover accounts: an existing account's address gets a mail instead (a fresh
    /// confirmation link if it was never confirmed, otherwise a note to sign in), and the same Argon2 work
    /// is done either way.
    pub async fn signup(&self, form: Signup, client: &Client) -> Result<(), SignupError> {
        let problems = signup_problems(&form);
        if !problems.is_empty() {
            return Err(SignupError::Invalid(problems));
        }
        let name = form.name.trim();
        // Each sign-up hashes a password and sends a mail: both cost, and both can be aimed at others.
        let key = format!("signup-ip:{}", client.ip.as_deref().unwrap_or_default());
        if !self.limiter.allow(&key, SIGNUPS_PER_CLIENT, MAIL_WINDOW).await? {
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
                crate::people::password::verify(None, password).await?;
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
        if !self.limiter.allow(&format!("signup-known:{}", user.id), RESEND_LIMIT, RESEND_WINDOW).await? {
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

    async fn user_checking_password(
        &self,
        session: &session::Model,
        current: SecretString,
    ) -> Result<user::Model, PasswordChangeError> {
        let user =
            user::Entity::find_by_id(session.user_id).one(&self.db).await?.ok_or(PasswordChangeError::WrongPassword)?;
        if !crate::people::password::verify(Some(user.password_hash.clone()), current).await? {
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
