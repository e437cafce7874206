//! Outgoing mail through lettre: over SMTP when `CONVENE_SMTP_URL` is set, otherwise written as `.eml`
//! files under `<data dir>/mail` (and logged), so a single machine works with no mail server at all.
//!
//! Every message has a plain-text and an HTML part, built from the same words by [`Email::new`].

use std::{path::PathBuf, time::Duration};

use lettre::{
    AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Attachment, Mailbox, MultiPart, SinglePart, header::ContentType},
};
use secrecy::ExposeSecret;

use convene_domain::EmailAddress;

use crate::{calendar::Method, settings::Settings};

/// An SMTP server that does not answer in this time fails the send instead of holding a request.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends mail.
#[derive(Debug, Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
}

#[derive(Debug, Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files { transport: AsyncFileTransport<Tokio1Executor>, dir: PathBuf },
}

/// Mail could not be built or sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// `CONVENE_SMTP_URL` or `CONVENE_MAIL_FROM` is unusable.
    #[error("{0}")]
    Config(String),
    /// The message could not be built (a bad address).
    #[error("cannot build the message: {0}")]
    Build(String),
    /// The server refused it or could not be reached.
    #[error("cannot send mail: {0}")]
    Send(String),
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

impl Mailer {
    /// The mailer the settings ask for.
    pub fn from_settings(settings: &Settings) -> Result<Self, MailError> {
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
        Ok(Self { transport, from })
    }

    /// Sends one message.
    pub async fn send(&self, email: Email) -> Result<(), MailError> {
        let to: Mailbox = email.to.as_str().parse().map_err(|error| MailError::Build(format!("{error}")))?;
        let (recipient, subject) = (email.to.clone(), email.subject.clone());
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&subject)
            .multipart(email.body()?)
            .map_err(|error| MailError::Build(error.to_string()))?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message).await.map_err(|error| MailError::Send(error.to_string()))?;
            }
            Transport::Files { transport, dir } => {
                let id = transport.send(message).await.map_err(|error| MailError::Send(error.to_string()))?;
                tracing::info!(to = %recipient, %subject, file = %dir.join(format!("{id}.eml")).display(),
                    "mail written to a file (set CONVENE_SMTP_URL to send it)");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
