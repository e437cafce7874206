//! The plans, from configuration: a TOML file (`CONVENE_PLANS`, or the bundled `default-plans.toml`) read
//! once at start by `settings`. A plan has limits, and a paid plan its Stripe prices; nothing about plans
//! is written in code.

use std::fmt;

use serde::Deserialize;

/// The bundled plans file: one free plan, which is every tenant's when billing is off.
pub const DEFAULT_PLANS: &str = include_str!("default-plans.toml");

/// At most this many plans (they are all shown on the billing page).
const MAX_PLANS: usize = 20;
/// Limits beyond these are typing mistakes, not offers.
const MAX_PARTICIPANTS: u32 = 10_000;
const MAX_CONCURRENT_MEETINGS: u32 = 100_000;
const MAX_RETENTION_DAYS: u32 = 3650;

/// A plan's id in the configuration (`free`, `pro`): lowercase letters, digits and dashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PlanId(String);

impl PlanId {
    /// Parses an id from the plans file or the database.
    pub fn parse(text: &str) -> Option<Self> {
        let valid = (1..=64).contains(&text.len())
            && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        valid.then(|| Self(text.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a plan allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// People in one meeting, moderators included.
    pub participants_per_meeting: u32,
    /// Meetings going on at once.
    pub concurrent_meetings: u32,
    /// Participant-minutes included each billing period.
    pub included_minutes: u64,
    /// Meetings may be recorded.
    pub recording: bool,
    /// Meetings take phone callers.
    pub dial_in: bool,
    /// Days a finished recording is kept before it is deleted (`None`: until someone deletes it).
    pub recording_retention_days: Option<u32>,
}

/// One plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Its id.
    pub id: PlanId,
    /// Its name, for people.
    pub name: String,
    /// The Stripe price of its subscription; `None` for the free plan.
    pub price: Option<String>,
    /// The metered Stripe price for each participant-minute beyond the included ones; `None`: the included
    /// minutes are a cap.
    pub overage_price: Option<String>,
    /// How the site shows the price (`$15 a month`).
    pub price_label: Option<String>,
    /// How the site shows the overage price.
    pub overage_label: Option<String>,
    /// What it allows.
    pub limits: Limits,
}

/// Every plan, the default one, and the billing rules that go with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plans {
    plans: Vec<Plan>,
    default: usize,
    /// How long meetings keep starting after a payment fails.
    pub grace_period: chrono::Duration,
    /// The Stripe Billing Meter's event name.
    pub meter_event_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    default: String,
    grace_period_days: u32,
    meter_event_name: String,
    #[serde(default)]
    plan: Vec<PlanEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanEntry {
    id: String,
    name: String,
    price: Option<String>,
    overage_price: Option<String>,
    price_label: Option<String>,
    overage_label: Option<String>,
    participants_per_meeting: u32,
    concurrent_meetings: u32,
    included_minutes: u64,
    recording: bool,
    dial_in: bool,
    #[serde(default)]
    recording_retention_days: Option<u32>,
}

fn stripe_id(kind: &str, plan: &str, value: Option<String>) -> Result<Option<String>, String> {
    match value {
        Some(id) if !id.starts_with("price_") || id.len() > 255 || id.contains(char::is_whitespace) => {
            Err(format!("plan `{plan}`: {kind} `{id}` is not a Stripe price id (price_…)"))
        }
        other => Ok(other),
    }
}

fn label(plan: &str, value: Option<String>) -> Result<Option<String>, String> {
    match value {
        Some(text) if text.trim().is_empty() || text.chars().count() > 80 => {
            Err(format!("plan `{plan}`: labels are 1 to 80 characters"))
        }
        other => Ok(other),
    }
}

impl PlanEntry {
    fn parse(self) -> Result<Plan, String> {
        let id = PlanId::parse(&self.id)
            .ok_or_else(|| format!("plan id `{}` must be 1 to 64 lowercase letters, digits or dashes", self.id))?;
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 50 {
            return Err(format!("plan `{id}`: the name must be 1 to 50 characters"));
        }
        if !(1..=MAX_PARTICIPANTS).contains(&self.participants_per_meeting) {
            return Err(format!("plan `{id}`: participants_per_meeting must be 1 to {MAX_PARTICIPANTS}"));
        }
        if !(1..=MAX_CONCURRENT_MEETINGS).contains(&self.concurrent_meetings) {
            return Err(format!("plan `{id}`: concurrent_meetings must be 1 to {MAX_CONCURRENT_MEETINGS}"));
        }
        if self.recording_retention_days.is_some_and(|days| !(1..=MAX_RETENTION_DAYS).contains(&days)) {
            return Err(format!("plan `{id}`: recording_retention_days must be 1 to {MAX_RETENTION_DAYS}"));
        }
        let price = stripe_id("price", id.as_str(), self.price)?;
        let overage_price = stripe_id("overage_price", id.as_str(), self.overage_price)?;
        if overage_price.is_some() && price.is_none() {
            return Err(format!("plan `{id}`: an overage_price needs a price (overage is billed on the subscription)"));
        }
        Ok(Plan {
            price_label: label(id.as_str(), self.price_label)?,
            overage_label: label(id.as_str(), self.overage_label)?,
            name,
            price,
            overage_price,
            limits: Limits {
                participants_per_meeting: self.participants_per_meeting,
                concurrent_meetings: self.concurrent_meetings,
                included_minutes: self.included_minutes,
                recording: self.recording,
                dial_in: self.dial_in,
                recording_retention_days: self.recording_retention_days,
            },
            id,
        })
    }
}

impl Plans {
    /// Parses a plans file; the message says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|error| format!("is not a valid plans file: {error}"))?;
        if file.plan.is_empty() || file.plan.len() > MAX_PLANS {
            return Err(format!("must list 1 to {MAX_PLANS} plans as [[plan]] tables"));
        }
        let plans = file.plan.into_iter().map(PlanEntry::parse).collect::<Result<Vec<_>, _>>()?;
        // A price tells which plan a subscription is on, so each names one plan, once.
        let mut prices: Vec<&str> = Vec::new();
        for (index, plan) in plans.iter().enumerate() {
            if plans[..index].iter().any(|other| other.id == plan.id) {
                return Err(format!("lists plan `{}` twice", plan.id));
            }
            for price in [&plan.price, &plan.overage_price].into_iter().flatten() {
                if prices.contains(&price.as_str()) {
                    return Err(format!("plan `{}` uses Stripe price `{price}`, which is already used", plan.id));
                }
                prices.push(price);
            }
        }
        let default = plans
            .iter()
            .position(|plan| plan.id.as_str() == file.default)
            .ok_or_else(|| format!("names `{}` as the default plan, but lists no such plan", file.default))?;
        if plans[default].price.is_some() {
            return Err(format!(
                "the default plan `{}` must have no price: it is the plan without a subscription",
                file.default
            ));
        }
        if file.grace_period_days > 90 {
            return Err("grace_period_days must be 0 to 90".to_owned());
        }
        let meter = file.meter_event_name.trim();
        if meter.is_empty() || meter.len() > 100 {
            return Err("meter_event_name must be 1 to 100 characters".to_owned());
        }
        Ok(Self {
            plans,
            default,
            grace_period: chrono::Duration::days(i64::from(file.grace_period_days)),
            meter_event_name: meter.to_owned(),
        })
    }

    /// Every plan, in the file's order.
    pub fn all(&self) -> &[Plan] {
        &self.plans
    }

    /// The plan of tenants without a live subscription.
    pub fn default_plan(&self) -> &Plan {
        &self.plans[self.default]
    }

    /// A plan by id.
    pub fn get(&self, id: &str) -> Option<&Plan> {
        self.plans.iter().find(|plan| plan.id.as_str() == id)
    }

    /// The plan whose subscription price is `price`.
    pub fn by_price(&self, price: &str) -> Option<&Plan> {
        self.plans.iter().find(|plan| plan.price.as_deref() == Some(price))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAID: &str = r#"
default = "free"
grace_period_days = 3
meter_event_name = "participant_minutes"

[[plan]]
id = "free"
name = "Free"
participants_per_meeting = 3
concurrent_meetings = 1
included_minutes = 100
recording = false
dial_in = false

[[plan]]
id = "pro"
name = "Pro"
price = "price_pro"
overage_price = "price_pro_minutes"
participants_per_meeting = 50
concurrent_meetings = 5
included_minutes = 10000
recording = true
recording_retention_days = 90
dial_in = true
"#;

    #[test]
    fn the_bundled_file_is_one_free_plan_and_a_paid_file_parses() {
        let bundled = Plans::parse(DEFAULT_PLANS).expect("the bundled plans parse");
        assert_eq!(bundled.all().len(), 1);
        assert_eq!(bundled.default_plan().price, None);
        let plans = Plans::parse(PAID).expect("parses");
        assert_eq!(plans.by_price("price_pro").map(|plan| plan.id.as_str()), Some("pro"));
        assert_eq!(plans.get("pro").and_then(|plan| plan.overage_price.as_deref()), Some("price_pro_minutes"));
        assert_eq!(plans.grace_period, chrono::Duration::days(3));
        assert_eq!(plans.get("pro").and_then(|plan| plan.limits.recording_retention_days), Some(90));
        assert_eq!(plans.get("free").and_then(|plan| plan.limits.recording_retention_days), None);
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (PAID.replace("default = \"free\"", "default = \"gold\""), "no such plan"),
            (PAID.replace("id = \"pro\"", "id = \"free\""), "twice"),
            (PAID.replace("price_pro_minutes", "price_pro"), "already used"),
            (PAID.replace("\"price_pro\"", "\"prod_x\""), "not a Stripe price id"),
            (PAID.replace("participants_per_meeting = 3", "participants_per_meeting = 0"), "participants_per_meeting"),
            (PAID.replace("dial_in = false", "dial_in = false\ncolour = \"red\""), "unknown field"),
            (PAID.replace("default = \"free\"", "default = \"pro\""), "must have no price"),
            (PAID.replace("retention_days = 90", "retention_days = 0"), "recording_retention_days must be 1 to"),
            ("default = \"free\"".to_owned(), "missing field"),
        ];
        for (text, expected) in cases {
            let message = Plans::parse(&text).expect_err(expected);
            assert!(message.contains(expected), "{expected}: {message}");
        }
    }
}
