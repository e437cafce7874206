//! Outgoing mail through lettre, by way of a durable outbox: a request that causes mail renders it and
//! writes it to `mail_outbox` ([`Mailer::queue`]); a [`MailRelay`] task sends it over SMTP when
//! `CONVENE_SMTP_URL` is set, otherwise as `.eml` files under `<data dir>/mail` (and logged), so a single
//! machine works with no mail server at all. A slow or absent mail server then neither slows pages nor
//! loses mail: the relay retries with growing delays for about a day, then marks the mail dead and says so.
//!
//! Every message has a plain-text and an HTML part, built from the same words by [`Email::new`].

use std::{path::PathBuf, sync::Arc, time::Duration};

use chrono::{TimeDelta, Utc};
use lettre::{
    Address, AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    address::Envelope,
    message::{Attachment, Mailbox, MultiPart, SinglePart, header::ContentType},
};
use prometheus_client::{
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, sea_query::Expr,
};
use secrecy::ExposeSecret;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use convene_domain::EmailAddress;

use crate::{entities::mail_outbox, platform::calendar::Method, platform::settings::Settings};

/// An SMTP server that does not answer in this time fails the attempt, which is retried later.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Mails sent per round before the relay looks again.
const RELAY_BATCH: u64 = 20;
/// How often the relay looks for mail other processes queued (its own wake it at once).
const POLL: Duration = Duration::from_secs(2);
/// How long a relay holds a mail it is sending before another relay may take it; well above the timeout.
const CLAIM: TimeDelta = TimeDelta::minutes(2);
/// Attempts before a mail is given up: with delays doubling from 15 s up to an hour, about a day.
const MAX_ATTEMPTS: i32 = 30;
/// Sent mail stays this long, for operators, then goes.
const SENT_KEPT: TimeDelta = TimeDelta::days(7);

const PENDING: &str = "pending";
const SENT: &str = "sent";
const DEAD: &str = "dead";

/// Queues mail into the outbox.
#[derive(Debug, Clone)]
pub struct Mailer {
    db: DatabaseConnection,
    from: Mailbox,
    wake: Arc<Notify>,
}

/// Sends the outbox's mail until shutdown.
#[derive(Debug)]
pub struct MailRelay {
    db: DatabaseConnection,
    transport: Transport,
    from: Mailbox,
    wake: Arc<Notify>,
    metrics: MailMetrics,
}

#[derive(Debug, Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files { transport: AsyncFileTransport<Tokio1Executor>, dir: PathBuf },
}

/// The relay's counters, under `convene_mail_*`.
#[derive(Debug, Clone, Default)]
struct MailMetrics {
    sent: Counter,
    retries: Counter,
    dead: Counter,
    queued: Gauge,
}

/// Mail could not be built or queued.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// `CONVENE_SMTP_URL` or `CONVENE_MAIL_FROM` is unusable.
    #[error("{0}")]
    Config(String),
    /// The message could not be built (a bad address).
    #[error("cannot build the message: {0}")]
    Build(String),
    /// The outbox could not be written.
    #[error("cannot queue the message: {0}")]
    Queue(#[from] DbErr),
}

/// One message: a subject and the same content as text and as HTML.
#[derive(Debug, Clone)]
pub struct Email {
    to: EmailAddress,
    subject: String,
    text: String,
    html: String,
    calendar: Option<(Method, String)>,
}

impl Email {
    /// A message with a greeting, paragraphs, one call-to-action link, and a closing note. The HTML part
    /// escapes every value; the text part shows the link on its own line so any client can follow it.
    pub fn new(to: &EmailAddress, subject: &str, paragraphs: &[&str], action: (&str, &str), note: &str) -> Self {
        let (label, url) = action;
        let mut text = paragraphs.join("\n\n");
        text.push_str(&format!("\n\n{label}:\n{url}\n\n{note}\n\n-- \nConvene\n"));
        let body: String = paragraphs.iter().map(|paragraph| format!("<p>{}</p>", escape(paragraph))).collect();
        let html = format!(
            "<!DOCTYPE html><html><body style=\"font-family:system-ui,sans-serif;line-height:1.5;color:#15192b\">\
             {body}<p><a href=\"{url}\" style=\"display:inline-block;padding:10px 18px;background:#1f4fd8;\
             color:#fff;border-radius:8px;text-decoration:none\">{label}</a></p>\
             <p style=\"color:#55607a;font-size:14px\">{note}<br>If the button does not work, open this link: \
             <a href=\"{url}\">{url}</a></p></body></html>",
            url = escape(url),
            label = escape(label),
            note = escape(note),
        );
        Self { to: to.clone(), subject: subject.to_owned(), text, html, calendar: None }
    }

    /// Adds a calendar invitation, both inline (so mail clients offer to accept it) and as `invite.ics`.
    #[must_use]
    pub fn with_calendar(mut self, method: Method, ics: String) -> Self {
        self.calendar = Some((method, ics));
        self
    }

    fn body(self) -> Result<MultiPart, MailError> {
        let alternative = MultiPart::alternative_plain_html(self.text, self.html);
        let Some((method, ics)) = self.calendar else { return Ok(alternative) };
        let content_type = |kind: &str| {
            ContentType::parse(&format!("{kind}; charset=utf-8; method={}", method.as_str()))
                .map_err(|error| MailError::Build(error.to_string()))
        };
        let inline = SinglePart::builder().header(content_type("text/calendar")?).body(ics.clone());
        let attachment = Attachment::new("invite.ics".to_owned()).body(ics, content_type("application/ics")?);
        Ok(MultiPart::mixed().multipart(alternative.singlepart(inline)).singlepart(attachment))
    }
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// The queue and its relay, as the settings ask; the relay's counters go into `registry`.
pub fn from_settings(
    settings: &Settings,
    db: DatabaseConnection,
    registry: &mut Registry,
) -> Result<(Mailer, MailRelay), MailError> {
    let from: Mailbox = settings
        .mail_from
        .parse()
        .map_err(|error| MailError::Config(format!("CONVENE_MAIL_FROM `{}`: {error}", settings.mail_from)))?;
    let transport = match &settings.smtp_url {
        Some(url) => Transport::Smtp(
            AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                .map_err(|error| MailError::Config(format!("CONVENE_SMTP_URL is not usable: {error}")))?
                .timeout(Some(SMTP_TIMEOUT))
                .build(),
        ),
        None => {
            let dir = settings.data_dir.join("mail");
            std::fs::create_dir_all(&dir)
                .map_err(|error| MailError::Config(format!("cannot create {}: {error}", dir.display())))?;
            Transport::Files { transport: AsyncFileTransport::new(&dir), dir }
        }
    };
    let wake = Arc::new(Notify::new());
    let metrics = MailMetrics::register(registry);
    let mailer = Mailer { db: db.clone(), from: from.clone(), wake: wake.clone() };
    Ok((mailer, MailRelay { db, transport, from, wake, metrics }))
}

impl Mailer {
    /// Renders `email` and writes it to the outbox; the relay sends it (at once, if the server answers).
    pub async fn queue(&self, email: Email) -> Result<(), MailError> {
        let to: Mailbox = email.to.as_str().parse().map_err(|error| MailError::Build(format!("{error}")))?;
        let (recipient, subject) = (email.to.as_str().to_owned(), email.subject.clone());
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&subject)
            .multipart(email.body()?)
            .map_err(|error| MailError::Build(error.to_string()))?;
        let now = Utc::now();
        mail_outbox::ActiveModel {
            id: Set(Uuid::now_v7()),
            recipient: Set(recipient),
            subject: Set(subject.chars().take(400).collect()),
            message: Set(message.formatted()),
            state: Set(PENDING.to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            last_error: Set(None),
            created_at: Set(now),
            sent_at: Set(None),
        }
        .insert(&self.db)
        .await?;
        self.wake.notify_one();
        Ok(())
    }
}

/// How one attempt went.
enum Attempt {
    Sent,
    /// Worth trying again later (the server is down, slow, or busy).
    Failed(String),
    /// The server refused it for good, or it cannot be sent at all.
    Refused(String),
}

impl MailRelay {
    /// Sends due mail until `shutdown`; what is unsent stays in the outbox for the next start.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let more = tokio::select! {
                () = shutdown.cancelled() => return,
                round = self.relay_due() => round.unwrap_or_else(|error| {
                    tracing::warn!(%error, "cannot read the mail outbox now; the next round will");
                    false
                }),
            };
            if !more {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }

    /// Sends one batch of due mail; answers whether more may be due.
    async fn relay_due(&self) -> Result<bool, DbErr> {
        let now = Utc::now();
        let due = mail_outbox::Entity::find()
            .filter(mail_outbox::Column::State.eq(PENDING))
            .filter(mail_outbox::Column::NextAttemptAt.lte(now))
            .order_by_asc(mail_outbox::Column::NextAttemptAt)
            .limit(RELAY_BATCH)
            .all(&self.db)
            .await?;
        for mail in &due {
            if self.claim(mail, now).await? {
                let attempt = self.attempt(mail).await;
                self.record(mail, attempt).await?;
            }
        }
        mail_outbox::Entity::delete_many()
            .filter(mail_outbox::Column::State.eq(SENT))
            .filter(mail_outbox::Column::SentAt.lt(now - SENT_KEPT))
            .exec(&self.db)
            .await?;
        let queued = mail_outbox::Entity::find().filter(mail_outbox::Column::State.eq(PENDING)).count(&self.db).await?;
        self.metrics.queued.set(i64::try_from(queued).unwrap_or(i64::MAX));
        Ok(due.len() as u64 == RELAY_BATCH)
    }

    /// Takes `mail` for this relay by moving its next attempt ahead; `false` when another relay took it.
    async fn claim(&self, mail: &mail_outbox::Model, now: chrono::DateTime<Utc>) -> Result<bool, DbErr> {
        let claimed = mail_outbox::Entity::update_many()
            .col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(now + CLAIM))
            .filter(mail_outbox::Column::Id.eq(mail.id))
            .filter(mail_outbox::Column::State.eq(PENDING))
            .filter(mail_outbox::Column::NextAttemptAt.eq(mail.next_attempt_at))
            .exec(&self.db)
            .await?;
        Ok(claimed.rows_affected == 1)
    }

    async fn attempt(&self, mail: &mail_outbox::Model) -> Attempt {
        let envelope =
            match mail.recipient.parse::<Address>().map(|to| Envelope::new(Some(self.from.email.clone()), vec![to])) {
                Ok(Ok(envelope)) => envelope,
                Ok(Err(error)) => return Attempt::Refused(error.to_string()),
                Err(error) => return Attempt::Refused(error.to_string()),
            };
        match &self.transport {
            Transport::Smtp(smtp) => match smtp.send_raw(&envelope, &mail.message).await {
                Ok(_) => Attempt::Sent,
                Err(error) if error.is_permanent() => Attempt::Refused(error.to_string()),
                Err(error) => Attempt::Failed(error.to_string()),
            },
            Transport::Files { transport, dir } => match transport.send_raw(&envelope, &mail.message).await {
                Ok(id) => {
                    tracing::info!(to = %mail.recipient, subject = %mail.subject,
                        file = %dir.join(format!("{id}.eml")).display(),
                        "mail written to a file (set CONVENE_SMTP_URL to send it)");
                    Attempt::Sent
                }
                Err(error) => Attempt::Failed(error.to_string()),
            },
        }
    }

    async fn record(&self, mail: &mail_outbox::Model, attempt: Attempt) -> Result<(), DbErr> {
        let now = Utc::now();
        let attempts = mail.attempts.saturating_add(1);
        let mut row = mail_outbox::ActiveModel { id: Set(mail.id), attempts: Set(attempts), ..Default::default() };
        match attempt {
            Attempt::Sent => {
                row.state = Set(SENT.to_owned());
                row.sent_at = Set(Some(now));
                row.last_error = Set(None);
                self.metrics.sent.inc();
            }
            Attempt::Failed(error) if attempts < MAX_ATTEMPTS => {
                let delay = retry_delay(attempts);
                tracing::warn!(to = %mail.recipient, subject = %mail.subject, attempts, %error,
                    retry_in_secs = delay.num_seconds(), "mail not sent yet; it waits in the outbox");
                row.next_attempt_at = Set(now + delay);
                row.last_error = Set(Some(error.chars().take(500).collect()));
                self.metrics.retries.inc();
            }
            Attempt::Failed(error) | Attempt::Refused(error) => {
                tracing::error!(to = %mail.recipient, subject = %mail.subject, attempts, %error,
                    "mail given up: it stays in the outbox as dead");
                row.state = Set(DEAD.to_owned());
                row.last_error = Set(Some(error.chars().take(500).collect()));
                self.metrics.dead.inc();
            }
        }
        row.update(&self.db).await?;
        Ok(())
    }
}

/// The wait after `attempts` failures: 15 s, doubling, at most an hour.
fn retry_delay(attempts: i32) -> TimeDelta {
    let doublings = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(16);
    TimeDelta::seconds(15_i64.saturating_mul(1 << doublings)).min(TimeDelta::hours(1))
}

impl MailMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        let mail = registry.sub_registry_with_prefix("convene_mail");
        mail.register("sent", "Mail handed to the mail server (or written to a file)", metrics.sent.clone());
        mail.register("retries", "Attempts that failed and will be tried again", metrics.retries.clone());
        mail.register("dead", "Mail given up after a refusal or about a day of failures", metrics.dead.clone());
        mail.register("queued", "Mail waiting in the outbox", metrics.queued.clone());
        metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_an_hour_and_give_up_after_about_a_day() {
        assert_eq!(retry_delay(1), TimeDelta::seconds(15));
        assert_eq!(retry_delay(2), TimeDelta::seconds(30));
        assert_eq!(retry_delay(9), TimeDelta::hours(1), "capped");
        assert_eq!(retry_delay(i32::MAX), TimeDelta::hours(1));
        let total: i64 = (1..MAX_ATTEMPTS).map(|attempts| retry_delay(attempts).num_seconds()).sum();
        assert!((20 * 3600..30 * 3600).contains(&total), "{total} s of retries");
    }

    #[test]
    fn html_escapes_everything_a_person_can_type() {
        let to = EmailAddress::parse("ann@example.com").expect("valid");
        let email =
            Email::new(&to, "Hi", &["<script>alert(1)</script> & \"quotes\""], ("Go", "https://x/?a=1&b=2"), "n");
        assert!(email.html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"));
        assert!(email.html.contains("href=\"https://x/?a=1&amp;b=2\""));
        assert!(email.text.contains("\nhttps://x/?a=1&b=2\n"), "the text part keeps the link usable");
    }
}
