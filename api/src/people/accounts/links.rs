//! Single-use links by mail: address confirmation (and resending it), password reset, change of address.
//! A link is a random token stored as its hash, claimed once with a conditional update, and expires.

use super::*;

/// What a single-use mail link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LinkPurpose {
    VerifyEmail,
    ChangeEmail,
    ResetPassword,
}

impl LinkPurpose {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::VerifyEmail => "verify_email",
            LinkPurpose::ChangeEmail => "change_email",
            LinkPurpose::ResetPassword => "reset_password",
        }
    }

    /// The page the link opens.
    pub(super) fn page(self) -> &'static str {
        match self {
            LinkPurpose::VerifyEmail | LinkPurpose::ChangeEmail => "verify",
            LinkPurpose::ResetPassword => "reset-password",
        }
    }

    /// Reset links are short-lived: they grant the account.
    pub(super) fn lifetime(self) -> TimeDelta {
        match self {
            LinkPurpose::VerifyEmail | LinkPurpose::ChangeEmail => VERIFY_LINK_LIFETIME,
            LinkPurpose::ResetPassword => TimeDelta::hours(1),
        }
    }
}

impl Accounts {
    /// Sends a fresh verification link, within the resend limit.
    pub async fn resend_verification(&self, user_id: Uuid) -> Result<(), ResendError> {
        if !self.limiter.allow(&format!("resend:{user_id}"), RESEND_LIMIT, RESEND_WINDOW).await? {
            return Err(ResendError::RateLimited);
        }
        self.send_verification(user_id).await
    }

    pub(super) async fn send_verification(&self, user_id: Uuid) -> Result<(), ResendError> {
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
    pub(super) async fn issue_link(
        &self,
        user: &user::Model,
        purpose: LinkPurpose,
        email: &str,
    ) -> anyhow::Result<String> {
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

    pub(super) async fn send_link_mail(
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
    pub(super) async fn live_link(
        &self,
        token: &str,
        purposes: &[LinkPurpose],
    ) -> Result<email_token::Model, LinkError> {
        let row =
            email_token::Entity::find_by_id(token_hash(token.trim())).one(&self.db).await?.ok_or(LinkError::Unknown)?;
        if !purposes.iter().any(|purpose| purpose.as_str() == row.purpose) {
            return Err(LinkError::Unknown);
        }
        check_link(row.used_at, row.expires_at)?;
        Ok(row)
    }

    /// Marks a link used, exactly once even under concurrent clicks.
    pub(super) async fn claim_link(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        row: &email_token::Model,
    ) -> Result<(), LinkError> {
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
        let txn = crate::platform::db::begin_write(&self.db).await?;
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
        if !self.limiter.allow(&key, RESETS_PER_CLIENT, MAIL_WINDOW).await.map_err(anyhow::Error::from)? {
            return Err(ResetError::RateLimited);
        }
        let Ok(address) = EmailAddress::parse(email) else { return Ok(()) };
        if !self
            .limiter
            .allow(&format!("reset:{address}"), RESEND_LIMIT, RESEND_WINDOW)
            .await
            .map_err(anyhow::Error::from)?
        {
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
        let txn = crate::platform::db::begin_write(&self.db).await?;
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
        let txn = crate::platform::db::begin_write(&self.db).await?;
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
}

/// Refuses used and expired links.
pub(super) fn check_link(used_at: Option<DateTime<Utc>>, expires_at: DateTime<Utc>) -> Result<(), LinkError> {
    if used_at.is_some() {
        return Err(LinkError::Used);
    }
    if expires_at <= Utc::now() {
        return Err(LinkError::Expired);
    }
    Ok(())
}
