//! Reading mail a test caused: from the SMTP sink's maildir when `cargo xtask test` runs one
//! (`CONVENE_TEST_MAILDIR`), otherwise from the `.eml` files the app writes without SMTP.
//!
//! Tests share one sink, so every app under test sends from its own address ("tag") and a test only sees
//! the mail of its own app.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use mailparse::MailHeaderMap;

/// How long a test waits for a mail to arrive.
const MAIL_WAIT: Duration = Duration::from_secs(10);

/// A received mail, parsed.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The `From` header.
    pub from: String,
    /// The `To` header.
    pub to: String,
    /// The subject.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
    /// The `Date`, in seconds.
    pub date: i64,
    /// The inline `text/calendar` part, if any: its `method` parameter and its body.
    pub calendar: Option<(String, String)>,
    /// Attachments: file name, MIME type and body.
    pub attachments: Vec<(String, String, String)>,
}

impl Mail {
    /// Parses a raw message with a text and an HTML part (at any depth), and any calendar parts.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let parsed = mailparse::parse_mail(raw).ok()?;
        let header = |name: &str| parsed.headers.get_first_value(name).unwrap_or_default();
        let mut leaves = Vec::new();
        collect_leaves(&parsed, &mut leaves);
        let attachment_name = |part: &mailparse::ParsedMail<'_>| {
            let disposition = part.get_content_disposition();
            (disposition.disposition == mailparse::DispositionType::Attachment)
                .then(|| disposition.params.get("filename").cloned().unwrap_or_default())
        };
        let inline = |mime: &str| {
            leaves
                .iter()
                .find(|part| part.ctype.mimetype == mime && attachment_name(part).is_none())
                .and_then(|part| part.get_body().ok())
        };
        let calendar = leaves
            .iter()
            .find(|part| part.ctype.mimetype == "text/calendar" && attachment_name(part).is_none())
            .and_then(|part| {
                let method = part.ctype.params.get("method").cloned().unwrap_or_default();
                part.get_body().ok().map(|body| (method, body))
            });
        let attachments = leaves
            .iter()
            .filter_map(|part| {
                let name = attachment_name(part)?;
                Some((name, part.ctype.mimetype.clone(), part.get_body().ok()?))
            })
            .collect();
        Some(Self {
            from: header("From"),
            to: header("To"),
            subject: header("Subject"),
            text: inline("text/plain")?,
            html: inline("text/html")?,
            date: mailparse::dateparse(&header("Date")).unwrap_or_default(),
            calendar,
            attachments,
        })
    }

    /// The first link in the text part that starts with `prefix`.
    pub fn link(&self, prefix: &str) -> String {
        let start = self.text.find(prefix).unwrap_or_else(|| panic!("no {prefix} link in:\n{}", self.text));
        self.text[start..].split_whitespace().next().unwrap_or_default().to_owned()
    }
}

/// The parts of a message that hold content, depth first.
fn collect_leaves<'a>(part: &'a mailparse::ParsedMail<'a>, leaves: &mut Vec<&'a mailparse::ParsedMail<'a>>) {
    if part.subparts.is_empty() {
        leaves.push(part);
    }
    for sub in &part.subparts {
        collect_leaves(sub, leaves);
    }
}

/// Where one app's mail can be read.
#[derive(Debug, Clone)]
pub struct Mailbox {
    folder: PathBuf,
    tag: String,
}

impl Mailbox {
    /// A mailbox for an app that sends from `<tag>@convene.test` and, without a sink, writes files into
    /// `app_mail_dir`. Also returns the SMTP URL the app should use, if a sink runs.
    pub fn for_app(app_mail_dir: PathBuf) -> (Self, Option<String>) {
        let tag = format!("app-{}", uuid::Uuid::new_v4().simple());
        let (folder, smtp) = match (std::env::var("CONVENE_TEST_MAILDIR"), std::env::var("CONVENE_TEST_SMTP_URL")) {
            (Ok(maildir), Ok(smtp)) => (PathBuf::from(maildir).join("new"), Some(smtp)),
            _ => (app_mail_dir, None),
        };
        (Self { folder, tag }, smtp)
    }

    /// The sender address the app must use (`CONVENE_MAIL_FROM`).
    pub fn sender(&self) -> String {
        format!("Convene <{}@convene.test>", self.tag)
    }

    /// The newest mail of this app to `address` whose subject contains `subject`, waiting for it.
    pub async fn wait_for(&self, address: &str, subject: &str) -> Mail {
        let deadline = Instant::now() + MAIL_WAIT;
        loop {
            let mut found: Vec<Mail> = std::fs::read_dir(&self.folder)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| std::fs::read(entry.path()).ok())
                .filter_map(|raw| Mail::parse(&raw))
                .filter(|mail| mail.from.contains(&self.tag) && mail.to.contains(address))
                .filter(|mail| mail.subject.contains(subject))
                .collect();
            found.sort_by_key(|mail| mail.date);
            if let Some(mail) = found.pop() {
                return mail;
            }
            assert!(Instant::now() < deadline, "no mail to {address} about {subject:?} in {}", self.folder.display());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
