//! Billing: which plan each tenant is on, what it has used, and what that allows.
//!
//! Plans come from configuration (`plans`). A tenant's subscription state comes only from Stripe's verified
//! webhooks (`webhooks`), never from the redirect after Checkout. Usage comes from the media node's stays
//! and goes to Stripe through a durable outbox (`usage`). Limits are enforced where they bite: the
//! signalling connection asks for the tenant's [`Allowance`] when someone joins. With billing off (no
//! Stripe key), every tenant is on the default plan, its limits apply, and nothing calls Stripe.

pub mod metrics;
pub mod stripe;
pub mod usage;
pub mod webhooks;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use convene_app::model::{BillingPage, InvoiceListing, Overdue, PlanSummary};
use convene_domain::{Role, TenantId};
use convene_media::focus::{Allowance, Ceiling};
use convene_signal::Refusal;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use self::{
    metrics::BillingMetrics,
    stripe::{CheckoutRequest, StripeApi, StripeFailure},
    webhooks::{Outcome, SignatureError, WebhookError, is_live},
};
use crate::{
    entities::{billing_account, billing_invoice, session_participant, usage_period, user},
    people::Actor,
    platform::settings::plans::{Plan, Plans},
};

/// Invoices shown on the billing page.
const INVOICES_SHOWN: u64 = 24;

/// Why a billing action was refused.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    /// Only the organisation's owners manage its billing.
    #[error("only owners manage billing")]
    Forbidden,
    /// This server takes no payments.
    #[error("billing is not enabled on this server")]
    Disabled,
    /// No plan of that id can be bought.
    #[error("there is no such plan to buy")]
    UnknownPlan,
    /// The tenant has a subscription; plans change in the Customer Portal.
    #[error("the organisation already has a subscription; change it in the billing portal")]
    AlreadySubscribed,
    /// The tenant has no Stripe customer yet, so there is no portal to open.
    #[error("the organisation has no subscription yet")]
    NoCustomer,
    /// Stripe failed or refused.
    #[error(transparent)]
    Stripe(#[from] StripeFailure),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbErr),
}

/// Why a webhook was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum WebhookRefusal {
    /// No webhook secret is configured, so no event can be verified.
    #[error("billing is not enabled on this server")]
    Disabled,
    /// The signature did not verify.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The event could not be handled.
    #[error(transparent)]
    Event(#[from] WebhookError),
}

/// The plan that applies to a tenant with `account`: its subscription's while that is live and billing is
/// on, else the default plan.
pub(crate) fn plan_for<'a>(plans: &'a Plans, billing_on: bool, account: Option<&billing_account::Model>) -> &'a Plan {
    account
        .filter(|_| billing_on)
        .filter(|account| account.subscription_status.as_deref().is_some_and(is_live))
        .and_then(|account| account.plan_id.as_deref())
        .and_then(|id| plans.get(id))
        .unwrap_or_else(|| plans.default_plan())
}

/// A tenant's billing state at one moment, the one place its rules are read from.
struct Standing<'a> {
    plan: &'a Plan,
    account: Option<billing_account::Model>,
    period: (DateTime<Utc>, DateTime<Utc>),
    used_minutes: u64,
    in_progress_minutes: u64,
    /// When new meetings stop starting because a payment is failing.
    grace_ends: Option<DateTime<Utc>>,
    billed_overage: bool,
}

impl Standing<'_> {
    fn minutes(&self) -> u64 {
        self.used_minutes.saturating_add(self.in_progress_minutes)
    }
}

fn day(at: DateTime<Utc>) -> String {
    at.format("%-d %B %Y").to_string()
}

fn plural(count: u32, one: &str, many: &str) -> String {
    if count == 1 { format!("1 {one}") } else { format!("{count} {many}") }
}

/// Stripe amounts are in the currency's smallest unit; these currencies have no decimals.
fn amount(minor: i64, currency: &str) -> String {
    const ZERO_DECIMAL: &[&str] = &[
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
    ];
    let code = currency.to_uppercase();
    if ZERO_DECIMAL.contains(&currency.to_lowercase().as_str()) {
        return format!("{code} {minor}");
    }
    let sign = if minor < 0 { "-" } else { "" };
    let minor = minor.unsigned_abs();
    format!("{code} {sign}{}.{:02}", minor / 100, minor % 100)
}

/// The billing service.
#[derive(Clone)]
pub struct Billing {
    db: DatabaseConnection,
    plans: Arc<Plans>,
    stripe: Option<Arc<dyn StripeApi>>,
    webhook_secret: Option<SecretString>,
    public_url: Url,
    metrics: BillingMetrics,
}

impl std::fmt::Debug for Billing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Billing").field("enabled", &self.is_enabled()).finish_non_exhaustive()
    }
}

impl Billing {
    /// Billing over `db`; `stripe` is `None` when billing is off.
    pub fn new(
        db: DatabaseConnection,
        plans: Arc<Plans>,
        (stripe, webhook_secret): (Option<Arc<dyn StripeApi>>, Option<SecretString>),
        public_url: Url,
        metrics: BillingMetrics,
    ) -> Self {
        Self { db, plans, stripe, webhook_secret, public_url, metrics }
    }

    /// Whether this server takes payments.
    pub fn is_enabled(&self) -> bool {
        self.stripe.is_some()
    }

    /// How long `tenant`'s plan keeps finished recordings, in days (`None`: until deleted).
    pub async fn recording_retention(&self, tenant: TenantId) -> Result<Option<u32>, DbErr> {
        Ok(self.plan_of(tenant).await?.limits.recording_retention_days)
    }

    /// The plan the tenant is on now.
    async fn plan_of(&self, tenant: TenantId) -> Result<&Plan, DbErr> {
        let account = billing_account::Entity::find_by_id(tenant.as_uuid()).one(&self.db).await?;
        Ok(plan_for(&self.plans, self.is_enabled(), account.as_ref()))
    }

    /// Why the tenant's plan refuses phone dial-in, if it does.
    pub async fn dial_in_refused(&self, tenant: TenantId) -> Result<Option<String>, DbErr> {
        let plan = self.plan_of(tenant).await?;
        Ok((!plan.limits.dial_in)
            .then(|| format!("The {} plan does not include phone dial-in; an owner can upgrade the plan.", plan.name)))
    }

    /// The shortest retention any plan has: recordings younger than this are kept whoever owns them.
    pub fn shortest_recording_retention(&self) -> Option<u32> {
        self.plans.all().iter().filter_map(|plan| plan.limits.recording_retention_days).min()
    }

    /// The meter that counts and sends this billing's usage.
    pub fn meter(&self) -> usage::UsageMeter {
        usage::UsageMeter::new(self.db.clone(), self.plans.clone(), self.stripe.clone(), self.metrics.clone())
    }

    async fn standing(&self, tenant: TenantId, now: DateTime<Utc>) -> Result<Standing<'_>, DbErr> {
        let account = billing_account::Entity::find_by_id(tenant.as_uuid()).one(&self.db).await?;
        let billing_on = self.is_enabled();
        let plan = plan_for(&self.plans, billing_on, account.as_ref());
        let period = usage::period_of(account.as_ref(), billing_on, now);
        let used = usage_period::Entity::find_by_id((tenant.as_uuid(), period.0)).one(&self.db).await?;
        let open_since: Vec<DateTime<Utc>> = session_participant::Entity::find()
            .select_only()
            .column(session_participant::Column::JoinedAt)
            .filter(session_participant::Column::TenantId.eq(tenant.as_uuid()))
            .filter(session_participant::Column::LeftAt.is_null())
            .into_tuple()
            .all(&self.db)
            .await?;
        let in_progress = open_since
            .into_iter()
            .map(|joined| u64::try_from((now - joined).num_minutes()).unwrap_or(0))
            .fold(0_u64, u64::saturating_add);
        let live = account
            .as_ref()
            .is_some_and(|account| billing_on && account.subscription_status.as_deref().is_some_and(is_live));
        let grace_ends = account
            .as_ref()
            .filter(|_| live)
            .and_then(|account| account.overdue_since)
            .map(|since| since + self.plans.grace_period);
        Ok(Standing {
            billed_overage: live && plan.overage_price.is_some(),
            used_minutes: used.map_or(0, |row| u64::try_from(row.minutes).unwrap_or(0)),
            in_progress_minutes: in_progress,
            plan,
            account,
            period,
            grace_ends,
        })
    }

    /// What `tenant`'s plan allows a meeting now, in words for whoever it turns away.
    pub async fn allowance(&self, tenant: TenantId) -> Result<Allowance, DbErr> {
        let now = Utc::now();
        let standing = self.standing(tenant, now).await?;
        let plan = standing.plan;
        let limits = &plan.limits;
        let participants = usize::try_from(limits.participants_per_meeting).unwrap_or(usize::MAX);
        let meetings = usize::try_from(limits.concurrent_meetings).unwrap_or(usize::MAX);
        let refused = if let Some(grace_ends) = standing.grace_ends.filter(|ends| *ends <= now) {
            Some((
                Refusal::PaymentOverdue,
                format!(
                    "This organisation's payment is overdue and its grace period ended on {}, so new meetings \
                     cannot start; meetings going on continue. An owner can settle it on the billing page.",
                    day(grace_ends)
                ),
            ))
        } else if !standing.billed_overage && standing.minutes() >= limits.included_minutes {
            Some((
                Refusal::PlanLimit,
                format!(
                    "This organisation has used the {} participant-minutes its {} plan includes until {}, so new \
                     meetings cannot start; an owner can upgrade the plan.",
                    limits.included_minutes,
                    plan.name,
                    day(standing.period.1)
                ),
            ))
        } else {
            None
        };
        Ok(Allowance {
            participants: Some(Ceiling {
                max: participants,
                message: format!(
                    "This meeting has the {} its organisation's {} plan allows; an owner can upgrade the plan.",
                    plural(limits.participants_per_meeting, "participant", "participants"),
                    plan.name
                ),
            }),
            meetings: Some(Ceiling {
                max: meetings,
                message: format!(
                    "The {} plan allows {} at a time and this organisation has that many going on; try again when \
                     one ends, or an owner can upgrade the plan.",
                    plan.name,
                    plural(limits.concurrent_meetings, "meeting", "meetings")
                ),
            }),
            new_meetings_refused: refused,
            recording_refused: (!limits.recording).then(|| {
                format!(
                    "The {} plan does not include recording or live streaming; an owner can upgrade the plan.",
                    plan.name
                )
            }),
            phone_refused: (!limits.dial_in).then(|| {
                format!("The {} plan does not include phone calls; an owner can upgrade the plan.", plan.name)
            }),
        })
    }

    fn summary(&self, plan: &Plan) -> PlanSummary {
        PlanSummary {
            id: plan.id.to_string(),
            name: plan.name.clone(),
            price_label: plan.price_label.clone(),
            overage_label: plan.overage_label.clone(),
            purchasable: self.is_enabled() && plan.price.is_some(),
            participants_per_meeting: plan.limits.participants_per_meeting,
            concurrent_meetings: plan.limits.concurrent_meetings,
            included_minutes: plan.limits.included_minutes,
            overage_billed: plan.overage_price.is_some(),
            recording: plan.limits.recording,
            dial_in: plan.limits.dial_in,
        }
    }

    /// The billing page of the actor's tenant (owners).
    pub async fn page(&self, actor: Actor) -> Result<BillingPage, BillingError> {
        if actor.role != Role::Owner {
            return Err(BillingError::Forbidden);
        }
        let now = Utc::now();
        let standing = self.standing(actor.tenant, now).await?;
        let invoices = billing_invoice::Entity::find()
            .filter(billing_invoice::Column::TenantId.eq(actor.tenant.as_uuid()))
            .order_by_desc(billing_invoice::Column::CreatedAt)
            .limit(INVOICES_SHOWN)
            .all(&self.db)
            .await?;
        let account = standing.account.as_ref();
        let subscribed = account.is_some_and(|account| account.subscription_status.as_deref().is_some_and(is_live));
        let overdue =
            account.and_then(|account| account.overdue_since).zip(standing.grace_ends).map(|(since, ends)| Overdue {
                since: since.to_rfc3339(),
                grace_ends: ends.to_rfc3339(),
                refusing: ends <= now,
            });
        Ok(BillingPage {
            billing_enabled: self.is_enabled(),
            plan: self.summary(standing.plan),
            status: account.and_then(|account| account.subscription_status.clone()),
            cancel_at_period_end: subscribed && account.is_some_and(|account| account.cancel_at_period_end),
            period_start: standing.period.0.to_rfc3339(),
            period_end: standing.period.1.to_rfc3339(),
            used_minutes: standing.used_minutes,
            in_progress_minutes: standing.in_progress_minutes,
            overdue,
            can_manage: self.is_enabled() && account.is_some_and(|account| account.stripe_customer_id.is_some()),
            subscribed: self.is_enabled() && subscribed,
            plans: self.plans.all().iter().map(|plan| self.summary(plan)).collect(),
            invoices: invoices
                .into_iter()
                .map(|invoice| InvoiceListing {
                    number: invoice.number,
                    created_at: invoice.created_at.to_rfc3339(),
                    amount: amount(invoice.amount_due, &invoice.currency),
                    status: invoice.status,
                    url: invoice.hosted_invoice_url,
                })
                .collect(),
        })
    }

    fn billing_url(&self, query: &str) -> Url {
        let mut url = self.public_url.join("/billing").unwrap_or_else(|_| self.public_url.clone());
        url.set_query((!query.is_empty()).then_some(query));
        url
    }

    /// A Checkout Session for `plan`: where the owner pays. The tenant's plan changes when Stripe's webhook
    /// says the subscription is live, not when the person comes back.
    pub async fn checkout(&self, actor: Actor, plan: &str) -> Result<Url, BillingError> {
        if actor.role != Role::Owner {
            return Err(BillingError::Forbidden);
        }
        let stripe = self.stripe.as_ref().ok_or(BillingError::Disabled)?;
        let plan = self.plans.get(plan).ok_or(BillingError::UnknownPlan)?;
        let price = plan.price.as_deref().ok_or(BillingError::UnknownPlan)?;
        let account = billing_account::Entity::find_by_id(actor.tenant.as_uuid()).one(&self.db).await?;
        if account.as_ref().is_some_and(|account| account.subscription_status.as_deref().is_some_and(is_live)) {
            return Err(BillingError::AlreadySubscribed);
        }
        let email = user::Entity::find_by_id(actor.user_id).one(&self.db).await?.map(|user| user.email);
        let request = CheckoutRequest {
            tenant: actor.tenant,
            customer: account.as_ref().and_then(|account| account.stripe_customer_id.as_deref()),
            email: email.as_deref().unwrap_or_default(),
            price,
            overage_price: plan.overage_price.as_deref(),
            success_url: self.billing_url("checkout=success"),
            cancel_url: self.billing_url("checkout=cancelled"),
        };
        Ok(stripe.checkout_session(request).await?)
    }

    /// A Customer Portal session: where the owner changes plan, payment method or cancels.
    pub async fn portal(&self, actor: Actor) -> Result<Url, BillingError> {
        if actor.role != Role::Owner {
            return Err(BillingError::Forbidden);
        }
        let stripe = self.stripe.as_ref().ok_or(BillingError::Disabled)?;
        let account = billing_account::Entity::find_by_id(actor.tenant.as_uuid()).one(&self.db).await?;
        let customer = account.and_then(|account| account.stripe_customer_id).ok_or(BillingError::NoCustomer)?;
        Ok(stripe.portal_session(&customer, &self.billing_url("")).await?)
    }

    /// Verifies and handles one webhook delivery: `payload` is the raw body.
    pub async fn webhook(&self, payload: &[u8], signature: Option<&str>) -> Result<Outcome, WebhookRefusal> {
        let result = self.verified_webhook(payload, signature).await;
        self.metrics.webhook(match &result {
            Ok(Outcome::Applied(_)) => "applied",
            Ok(Outcome::Duplicate) => "duplicate",
            Ok(Outcome::Ignored(_)) => "ignored",
            Err(WebhookRefusal::Disabled | WebhookRefusal::Signature(_)) => "invalid_signature",
            Err(WebhookRefusal::Event(WebhookError::Malformed(_))) => "malformed",
            Err(WebhookRefusal::Event(WebhookError::Database(_))) => "unavailable",
        });
        result
    }

    async fn verified_webhook(&self, payload: &[u8], signature: Option<&str>) -> Result<Outcome, WebhookRefusal> {
        let secret = self.webhook_secret.as_ref().ok_or(WebhookRefusal::Disabled)?;
        webhooks::verify(payload, signature, secret.expose_secret(), Utc::now().timestamp())?;
        Ok(webhooks::handle(&self.db, &self.plans, payload).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_show_their_currency_and_its_decimals() {
        assert_eq!(amount(1500, "usd"), "USD 15.00");
        assert_eq!(amount(5, "eur"), "EUR 0.05");
        assert_eq!(amount(-250, "gbp"), "GBP -2.50");
        assert_eq!(amount(1500, "jpy"), "JPY 1500");
    }
}
