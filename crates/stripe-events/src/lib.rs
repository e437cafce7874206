//! Stripe's webhook wire format: the signature check (`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
//! "<t>.<raw body>">`, within a tolerance, so a captured request cannot be replayed later) and the events
//! billing uses, parsed leniently (only the fields used), so an endpoint rendering another API version still
//! works. Pure functions of the bytes Stripe (or anyone) sends, so they are fuzzed on their own; applying an
//! event is the API's `billing::webhooks`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;

/// How far a signature's timestamp may be from now: Stripe's own libraries use five minutes.
pub const TOLERANCE_SECS: i64 = 300;
/// Longer than any header Stripe sends (it carries a few signatures while secrets roll).
const MAX_HEADER_BYTES: usize = 2048;

/// Why a webhook's signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("the Stripe-Signature header is missing")]
    Missing,
    /// The header is not `t=…,v1=…`.
    #[error("the Stripe-Signature header is malformed")]
    Malformed,
    /// No `v1` signature matches the body with our secret.
    #[error("no signature matches the body")]
    Mismatch,
    /// Signed too long ago (or in the future): a replay, or a clock far off.
    #[error("the signature's timestamp is outside the {TOLERANCE_SECS} s tolerance")]
    Expired,
}

/// Checks `header` against the raw `payload` with the endpoint's `secret`, at `now` (Unix seconds).
pub fn verify(payload: &[u8], header: Option<&str>, secret: &str, now: i64) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    if header.len() > MAX_HEADER_BYTES {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for pair in header.split(',') {
        match pair.trim().split_once('=') {
            Some(("t", value)) => timestamp = Some(value.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", value)) => signatures.push(value),
            // Other schemes (`v0`, test-mode extras) are not ours to check.
            Some(_) => {}
            None => return Err(SignatureError::Malformed),
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    let matches = signatures.iter().any(|candidate| {
        data_encoding::HEXLOWER_PERMISSIVE
            .decode(candidate.as_bytes())
            .is_ok_and(|bytes| mac.clone().verify_slice(&bytes).is_ok())
    });
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    // Checked after the signature, so an attacker learns nothing about our clock from forged requests.
    if now.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Expired);
    }
    Ok(())
}

/// The body is not an event that can be read; sending it again will not help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// One event, with the change it carries.
#[derive(Debug)]
pub struct Event {
    /// Stripe's id (`evt_…`): each is applied once.
    pub id: String,
    /// Its type, e.g. `invoice.paid`.
    pub kind: String,
    /// When Stripe created it: changes apply only over older state.
    pub created: DateTime<Utc>,
    /// What it says.
    pub change: Change,
}

/// What an event says, for the types billing uses.
#[derive(Debug)]
pub enum Change {
    /// `checkout.session.completed`.
    CheckoutCompleted(CheckoutSession),
    /// `customer.subscription.created`, `.updated` or `.deleted`.
    Subscription {
        /// The subscription as it now is.
        subscription: Subscription,
        /// Whether it was deleted.
        deleted: bool,
    },
    /// `invoice.paid` or `invoice.payment_failed`.
    Invoice {
        /// The invoice.
        invoice: Invoice,
        /// Whether it was paid.
        paid: bool,
    },
    /// Any other type: not used.
    Unused,
}

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
    data: EnvelopeData,
}

#[derive(Deserialize)]
struct EnvelopeData {
    object: serde_json::Value,
}

/// Reads a (verified) event body.
pub fn parse(payload: &[u8]) -> Result<Event, Malformed> {
    let envelope: Envelope = serde_json::from_slice(payload).map_err(|error| Malformed(error.to_string()))?;
    let created = time(envelope.created)?;
    let value = envelope.data.object;
    let kind = envelope.kind;
    let change = match kind.as_str() {
        "checkout.session.completed" => Change::CheckoutCompleted(object(&kind, value)?),
        "customer.subscription.created" | "customer.subscription.updated" | "customer.subscription.deleted" => {
            Change::Subscription {
                subscription: object(&kind, value)?,
                deleted: kind == "customer.subscription.deleted",
            }
        }
        "invoice.paid" | "invoice.payment_failed" => {
            Change::Invoice { invoice: object(&kind, value)?, paid: kind == "invoice.paid" }
        }
        _ => Change::Unused,
    };
    Ok(Event { id: envelope.id, kind, created, change })
}

/// A reference Stripe sends as an id, or as the object when expanded.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Reference {
    /// Just the id.
    Id(String),
    /// The expanded object.
    Object {
        /// Its id.
        id: String,
    },
}

impl Reference {
    /// The id, however it was sent.
    pub fn id(&self) -> &str {
        match self {
            Reference::Id(id) | Reference::Object { id } => id,
        }
    }
}

/// A Checkout Session.
#[derive(Debug, Deserialize)]
pub struct CheckoutSession {
    /// `subscription` for the sessions billing starts.
    pub mode: Option<String>,
    /// The tenant id billing put there.
    pub client_reference_id: Option<String>,
    /// The customer it created or used.
    pub customer: Option<Reference>,
}

/// A subscription.
#[derive(Debug, Deserialize)]
pub struct Subscription {
    /// `sub_…`.
    pub id: String,
    /// Whose it is.
    pub customer: Reference,
    /// `active`, `past_due`, `canceled`, …
    pub status: String,
    /// Whether it ends when the period does.
    #[serde(default)]
    pub cancel_at_period_end: bool,
    /// What Checkout put there (`tenant_id`).
    #[serde(default)]
    pub metadata: HashMap<String, String>,
    /// Its prices.
    pub items: SubscriptionItems,
    /// The period's start, in API versions before 2025-03-31 (later ones have it on each item).
    pub current_period_start: Option<i64>,
    /// The period's end, likewise.
    pub current_period_end: Option<i64>,
}

/// A subscription's items.
#[derive(Debug, Deserialize)]
pub struct SubscriptionItems {
    /// Each item.
    pub data: Vec<SubscriptionItem>,
}

/// One subscription item.
#[derive(Debug, Deserialize)]
pub struct SubscriptionItem {
    /// Its price.
    pub price: Price,
    /// The period's start, in API versions from 2025-03-31.
    pub current_period_start: Option<i64>,
    /// The period's end, likewise.
    pub current_period_end: Option<i64>,
}

/// A price.
#[derive(Debug, Deserialize)]
pub struct Price {
    /// `price_…`, matched against the plans.
    pub id: String,
}

/// An invoice.
#[derive(Debug, Deserialize)]
pub struct Invoice {
    /// `in_…`.
    pub id: String,
    /// Whose it is.
    pub customer: Option<Reference>,
    /// The number people see.
    pub number: Option<String>,
    /// `paid`, `open`, …
    pub status: Option<String>,
    /// Amounts in the currency's smallest unit.
    pub amount_due: i64,
    /// Amounts in the currency's smallest unit.
    pub amount_paid: i64,
    /// ISO code, lowercase.
    pub currency: String,
    /// Where the customer sees it.
    pub hosted_invoice_url: Option<String>,
    /// The period it bills, seconds since the epoch.
    pub period_start: i64,
    /// The period it bills, seconds since the epoch.
    pub period_end: i64,
    /// When it was made.
    pub created: i64,
    /// What it bills for.
    pub parent: Option<InvoiceParent>,
}

/// What an invoice bills for.
#[derive(Debug, Deserialize)]
pub struct InvoiceParent {
    /// The subscription, when it bills one.
    pub subscription_details: Option<SubscriptionDetails>,
}

/// The subscription an invoice bills.
#[derive(Debug, Deserialize)]
pub struct SubscriptionDetails {
    /// Its metadata (`tenant_id`).
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

fn object<T: serde::de::DeserializeOwned>(kind: &str, value: serde_json::Value) -> Result<T, Malformed> {
    serde_json::from_value(value).map_err(|error| Malformed(format!("{kind}: {error}")))
}

/// Seconds since the epoch as a time, refused when out of range.
pub fn time(seconds: i64) -> Result<DateTime<Utc>, Malformed> {
    DateTime::from_timestamp(seconds, 0).ok_or_else(|| Malformed(format!("{seconds} is not a time")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(payload: &str, secret: &str, t: i64) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(format!("{t}.{payload}").as_bytes());
        format!("t={t},v1={}", data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes()))
    }

    #[test]
    fn signatures_are_checked_against_the_raw_body_within_the_tolerance() {
        let body = r#"{"id":"evt_1"}"#;
        let now = 1_800_000_000;
        let good = sign(body, "whsec_a", now);
        assert_eq!(verify(body.as_bytes(), Some(&good), "whsec_a", now + 299), Ok(()));
        // Secrets roll: any of several v1 signatures may match.
        let rolled = format!("{},v1={}", sign(body, "whsec_old", now), good.split("v1=").nth(1).expect("v1"));
        assert_eq!(verify(body.as_bytes(), Some(&rolled), "whsec_a", now), Ok(()));
        let cases = [
            (None, SignatureError::Missing),
            (Some("garbage".to_owned()), SignatureError::Malformed),
            (Some(format!("t=x,{}", good.split(',').nth(1).expect("v1"))), SignatureError::Malformed),
            (Some(format!("t={now}")), SignatureError::Malformed),
            (Some(sign(body, "whsec_other", now)), SignatureError::Mismatch),
            (Some(sign(r#"{"id":"evt_2"}"#, "whsec_a", now)), SignatureError::Mismatch),
            (Some(sign(body, "whsec_a", now - 301)), SignatureError::Expired),
            (Some(sign(body, "whsec_a", now + 301)), SignatureError::Expired),
            (Some(format!("t={now},v1=zz")), SignatureError::Mismatch),
            (Some("t=1,".repeat(1000)), SignatureError::Malformed),
        ];
        for (header, expected) in cases {
            assert_eq!(verify(body.as_bytes(), header.as_deref(), "whsec_a", now), Err(expected), "{header:?}");
        }
    }

    #[test]
    fn events_are_read_by_type_and_unreadable_ones_say_why() {
        let paid = br#"{"id":"evt_1","type":"invoice.paid","created":1800000000,"data":{"object":{"id":"in_1",
            "customer":"cus_1","amount_due":900,"amount_paid":900,"currency":"eur","period_start":1,"period_end":2,
            "created":3}}}"#;
        let event = parse(paid).expect("readable");
        assert!(matches!(event.change, Change::Invoice { paid: true, ref invoice } if invoice.id == "in_1"));
        let other = br#"{"id":"evt_2","type":"customer.created","created":1800000000,"data":{"object":{}}}"#;
        assert!(matches!(parse(other).expect("readable").change, Change::Unused));
        let broken = br#"{"id":"evt_3","type":"invoice.paid","created":1800000000,"data":{"object":{"id":1}}}"#;
        assert!(parse(broken).expect_err("not an invoice").0.starts_with("invoice.paid:"));
        let far = br#"{"id":"evt_4","type":"x","created":9223372036854775807,"data":{"object":{}}}"#;
        assert!(parse(far).expect_err("out of range").0.contains("is not a time"));
        assert!(parse(b"not json").is_err());
    }
}
