//! Stripe's webhooks: the events that change a tenant's billing state. The signature check and the reading
//! of the body are `convene-stripe-events` (pure, and fuzzed on their own).
//!
//! Every event is handled once, by id: its `stripe_events` row is written in the transaction of its
//! effect. Stripe delivers out of order, so each change is applied only when it is newer than the state it
//! would replace (the event's `created`, and the subscription's lifecycle within the same second).

use chrono::{DateTime, Utc};
use convene_domain::TenantId;
use convene_stripe_events::{Change, CheckoutSession, Invoice, Reference, Subscription, time};
pub use convene_stripe_events::{SignatureError, TOLERANCE_SECS, verify};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QuerySelect,
};

use crate::entities::{billing_account, billing_invoice, stripe_event, tenant};
use crate::platform::settings::plans::Plans;
use crate::webhooks::events::EventType;

/// What handling an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It changed the tenant's billing state.
    Applied(String),
    /// It was handled before.
    Duplicate,
    /// Nothing to do (an unknown type or customer, or older than the state we have); it says why.
    Ignored(String),
}

/// Why an event could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The body is not an event we can read; sending it again will not help.
    #[error("the event cannot be read: {0}")]
    Malformed(String),
    /// The database failed; Stripe should try again later.
    #[error("the database failed: {0}")]
    Database(#[from] DbErr),
}

/// Statuses under which the subscription's plan applies (past due and unpaid within the grace rules).
pub fn is_live(status: &str) -> bool {
    matches!(status, "active" | "trialing" | "past_due" | "unpaid")
}

fn is_terminal(status: &str) -> bool {
    matches!(status, "canceled" | "incomplete_expired")
}

/// Where a status stands in a subscription's life, to order two events of the same second: Checkout's
/// `created` (incomplete) and the `updated` that activates it often share one.
fn lifecycle_rank(status: &str) -> u8 {
    match status {
        "incomplete" => 0,
        "trialing" => 1,
        "active" => 2,
        "past_due" | "paused" => 3,
        "unpaid" => 4,
        _ => 5,
    }
}

/// Handles one verified event.
pub async fn handle(db: &DatabaseConnection, plans: &Plans, payload: &[u8]) -> Result<Outcome, WebhookError> {
    let event = convene_stripe_events::parse(payload).map_err(|malformed| WebhookError::Malformed(malformed.0))?;
    let at = event.created;
    let id: String = event.id.chars().take(255).collect();
    if stripe_event::Entity::find_by_id(id.clone()).one(db).await?.is_some() {
        return Ok(Outcome::Duplicate);
    }
    // The event's row is written first: a twin delivered at the same moment waits on it, then finds it.
    let transaction = crate::platform::db::begin_write(db).await?;
    let claimed = stripe_event::ActiveModel {
        id: Set(id.clone()),
        event_type: Set(event.kind.chars().take(100).collect()),
        created_at: Set(at),
        received_at: Set(Utc::now()),
        outcome: Set(String::new()),
    }
    .insert(&transaction)
    .await;
    if let Err(error) = claimed {
        drop(transaction);
        return match stripe_event::Entity::find_by_id(id).one(db).await? {
            Some(_) => Ok(Outcome::Duplicate),
            None => Err(error.into()),
        };
    }
    let outcome = match event.change {
        Change::CheckoutCompleted(session) => checkout_completed(&transaction, session).await?,
        Change::Subscription { subscription, deleted } => {
            subscription_changed(&transaction, plans, subscription, deleted, at).await?
        }
        Change::Invoice { invoice, paid } => invoice_event(&transaction, invoice, paid, at).await?,
        Change::Unused => Outcome::Ignored(format!("{} events are not used", event.kind)),
    };
    let recorded = match &outcome {
        Outcome::Applied(what) | Outcome::Ignored(what) => what.chars().take(200).collect(),
        Outcome::Duplicate => String::new(),
    };
    stripe_event::Entity::update_many()
        .col_expr(stripe_event::Column::Outcome, sea_orm::sea_query::Expr::value(recorded))
        .filter(stripe_event::Column::Id.eq(id))
        .exec(&transaction)
        .await?;
    transaction.commit().await?;
    Ok(outcome)
}

async fn tenant_exists(db: &impl ConnectionTrait, text: &str) -> Result<Option<TenantId>, DbErr> {
    let Ok(tenant) = TenantId::parse(text) else { return Ok(None) };
    Ok(tenant::Entity::find_by_id(tenant.as_uuid()).one(db).await?.map(|_| tenant))
}

/// The tenant an object belongs to: by its customer once linked, else by the tenant Checkout put in its
/// metadata.
async fn account_for(
    db: &impl ConnectionTrait,
    customer: Option<&str>,
    tenant_hint: Option<&String>,
) -> Result<Option<billing_account::Model>, DbErr> {
    if let Some(customer) = customer
        && let Some(account) = billing_account::Entity::find()
            .filter(billing_account::Column::StripeCustomerId.eq(customer))
            .lock_exclusive()
            .one(db)
            .await?
    {
        return Ok(Some(account));
    }
    let Some(tenant) = tenant_hint else { return Ok(None) };
    let Some(tenant) = tenant_exists(db, tenant).await? else { return Ok(None) };
    account_of(db, tenant).await.map(Some)
}

/// A tenant's account row, made when it has none yet. It stays locked until the transaction ends (on
/// Postgres), so two events for one tenant apply one after the other, each against the other's result.
async fn account_of(db: &impl ConnectionTrait, tenant: TenantId) -> Result<billing_account::Model, DbErr> {
    if let Some(account) = billing_account::Entity::find_by_id(tenant.as_uuid()).lock_exclusive().one(db).await? {
        return Ok(account);
    }
    billing_account::ActiveModel {
        tenant_id: Set(tenant.as_uuid()),
        stripe_customer_id: Set(None),
        subscription_id: Set(None),
        subscription_status: Set(None),
        price_id: Set(None),
        plan_id: Set(None),
        current_period_start: Set(None),
        current_period_end: Set(None),
        cancel_at_period_end: Set(false),
        subscription_event_at: Set(None),
        overdue_since: Set(None),
        payment_event_at: Set(None),
        updated_at: Set(Utc::now()),
    }
    .insert(db)
    .await
}

/// Links the account to `customer` unless it belongs to another one; says why not.
async fn link_customer(
    db: &impl ConnectionTrait,
    account: &billing_account::Model,
    customer: &str,
) -> Result<Result<(), String>, DbErr> {
    match &account.stripe_customer_id {
        Some(linked) if linked == customer => return Ok(Ok(())),
        Some(linked) => return Ok(Err(format!("the tenant's customer is {linked}, not {customer}"))),
        None => {}
    }
    let taken =
        billing_account::Entity::find().filter(billing_account::Column::StripeCustomerId.eq(customer)).one(db).await?;
    if taken.is_some() {
        return Ok(Err(format!("customer {customer} belongs to another tenant")));
    }
    Ok(Ok(()))
}

async fn checkout_completed(db: &impl ConnectionTrait, session: CheckoutSession) -> Result<Outcome, DbErr> {
    if session.mode.as_deref() != Some("subscription") {
        return Ok(Outcome::Ignored("not a subscription checkout".to_owned()));
    }
    let Some(tenant) = session.client_reference_id.as_deref() else {
        return Ok(Outcome::Ignored("no client_reference_id".to_owned()));
    };
    let Some(tenant) = tenant_exists(db, tenant).await? else {
        return Ok(Outcome::Ignored(format!("client_reference_id {tenant} is no tenant")));
    };
    let Some(customer) = session.customer else { return Ok(Outcome::Ignored("no customer".to_owned())) };
    let account = account_of(db, tenant).await?;
    if let Err(why) = link_customer(db, &account, customer.id()).await? {
        return Ok(Outcome::Ignored(why));
    }
    let mut linked = account.into_active_model();
    linked.stripe_customer_id = Set(Some(customer.id().to_owned()));
    linked.updated_at = Set(Utc::now());
    linked.update(db).await?;
    Ok(Outcome::Applied(format!("tenant {tenant} is customer {}", customer.id())))
}

async fn subscription_changed(
    db: &impl ConnectionTrait,
    plans: &Plans,
    subscription: Subscription,
    deleted: bool,
    at: DateTime<Utc>,
) -> Result<Outcome, DbErr> {
    let customer = subscription.customer.id().to_owned();
    let Some(account) = account_for(db, Some(&customer), subscription.metadata.get("tenant_id")).await? else {
        return Ok(Outcome::Ignored(format!("customer {customer} is no tenant's")));
    };
    if let Err(why) = link_customer(db, &account, &customer).await? {
        return Ok(Outcome::Ignored(why));
    }
    let status = if deleted { "canceled".to_owned() } else { subscription.status.clone() };
    let current_status = account.subscription_status.as_deref().unwrap_or("canceled");
    if account.subscription_id.as_deref() == Some(subscription.id.as_str()) {
        let stale = account.subscription_event_at.is_some_and(|applied| {
            applied > at || (applied == at && lifecycle_rank(&status) < lifecycle_rank(current_status))
        });
        if stale || (is_terminal(current_status) && !is_terminal(&status)) {
            return Ok(Outcome::Ignored(format!("older than the {current_status} state already applied")));
        }
    } else if is_terminal(&status) {
        return Ok(Outcome::Ignored(format!("subscription {} is not the tenant's current one", subscription.id)));
    } else if !is_terminal(current_status) && account.subscription_event_at.is_some_and(|applied| applied > at) {
        return Ok(Outcome::Ignored("older than the subscription the tenant has".to_owned()));
    }

    // The plan is the item whose price a plan charges; the overage item rides along.
    let item = subscription.items.data.iter().find(|item| plans.by_price(&item.price.id).is_some());
    let plan = item.and_then(|item| plans.by_price(&item.price.id));
    if plan.is_none() {
        tracing::warn!(subscription = %subscription.id, "a subscription's prices match no configured plan");
    }
    let period =
        |item_value: Option<i64>, top: Option<i64>| item_value.or(top).and_then(|s| DateTime::from_timestamp(s, 0));
    let start = period(item.and_then(|item| item.current_period_start), subscription.current_period_start);
    let end = period(item.and_then(|item| item.current_period_end), subscription.current_period_end);
    // A payment event newer than this state outranks what the state says about payment.
    let payment_newer = account.payment_event_at.is_some_and(|payment| payment > at);
    let overdue_since = match status.as_str() {
        "past_due" | "unpaid" if account.overdue_since.is_none() && payment_newer => None,
        "past_due" | "unpaid" => account.overdue_since.or(Some(at)),
        "active" | "trialing" if payment_newer => account.overdue_since,
        "active" | "trialing" => None,
        other if is_terminal(other) => None,
        _ => account.overdue_since,
    };
    let tenant = account.tenant_id;
    let mut changed = account.into_active_model();
    changed.stripe_customer_id = Set(Some(customer));
    changed.subscription_id = Set(Some(subscription.id.clone()));
    changed.subscription_status = Set(Some(status.clone()));
    changed.price_id = Set(item.map(|item| item.price.id.clone()));
    changed.plan_id = Set(plan.map(|plan| plan.id.to_string()));
    changed.current_period_start = Set(start);
    changed.current_period_end = Set(end);
    changed.cancel_at_period_end = Set(subscription.cancel_at_period_end);
    changed.subscription_event_at = Set(Some(at));
    changed.overdue_since = Set(overdue_since);
    changed.updated_at = Set(Utc::now());
    let changed = changed.update(db).await?;
    // The tenant's developers hear of it in the same transaction.
    let data = serde_json::json!({
        "subscription_id": subscription.id,
        "status": status,
        "plan": changed.plan_id,
        "current_period_start": start,
        "current_period_end": end,
        "cancel_at_period_end": subscription.cancel_at_period_end,
    });
    let event = (EventType::SubscriptionUpdated, data);
    crate::webhooks::events::emit(db, TenantId::from(tenant), event, None, at).await?;
    let plan = plan.map_or("no configured plan", |plan| plan.id.as_str());
    Ok(Outcome::Applied(format!("tenant {tenant}: subscription {} {status} on {plan}", subscription.id)))
}

async fn invoice_event(
    db: &impl ConnectionTrait,
    invoice: Invoice,
    paid: bool,
    at: DateTime<Utc>,
) -> Result<Outcome, DbErr> {
    let customer = invoice.customer.as_ref().map(Reference::id);
    let tenant_hint = invoice.parent.as_ref().and_then(|parent| parent.subscription_details.as_ref());
    let Some(account) =
        account_for(db, customer, tenant_hint.and_then(|details| details.metadata.get("tenant_id"))).await?
    else {
        return Ok(Outcome::Ignored(format!("customer {} is no tenant's", customer.unwrap_or("(none)"))));
    };
    let tenant = account.tenant_id;
    // A payment and a failure in the same second: the payment is the later news.
    let newer = |applied: Option<DateTime<Utc>>, applied_paid: bool| {
        applied.is_none_or(|applied| at > applied || (at == applied && paid && !applied_paid))
    };
    let status = invoice.status.clone().unwrap_or_else(|| if paid { "paid" } else { "open" }.to_owned());
    let stored = billing_invoice::Entity::find_by_id(invoice.id.clone()).one(db).await?;
    if stored.as_ref().is_none_or(|stored| newer(Some(stored.event_at), stored.status == "paid")) {
        let (Ok(period_start), Ok(period_end), Ok(created)) =
            (time(invoice.period_start), time(invoice.period_end), time(invoice.created))
        else {
            return Ok(Outcome::Ignored("the invoice's times are out of range".to_owned()));
        };
        let row = billing_invoice::ActiveModel {
            id: Set(invoice.id.chars().take(255).collect()),
            tenant_id: Set(tenant),
            number: Set(invoice.number.map(|number| number.chars().take(64).collect())),
            status: Set(status.chars().take(32).collect()),
            amount_due: Set(invoice.amount_due),
            amount_paid: Set(invoice.amount_paid),
            currency: Set(invoice.currency.chars().take(8).collect()),
            hosted_invoice_url: Set(invoice.hosted_invoice_url.filter(|url| url.len() <= 2048)),
            period_start: Set(period_start),
            period_end: Set(period_end),
            created_at: Set(created),
            event_at: Set(at),
        };
        match stored {
            Some(_) => row.update(db).await.map(drop)?,
            None => row.insert(db).await.map(drop)?,
        }
    }
    if !newer(account.payment_event_at, account.overdue_since.is_none()) {
        return Ok(Outcome::Ignored(format!("invoice {} is older than the payment state", invoice.id)));
    }
    let overdue_since = if paid { None } else { account.overdue_since.or(Some(at)) };
    let mut changed = account.into_active_model();
    changed.overdue_since = Set(overdue_since);
    changed.payment_event_at = Set(Some(at));
    changed.updated_at = Set(Utc::now());
    changed.update(db).await?;
    let what = if paid { "paid" } else { "failed" };
    Ok(Outcome::Applied(format!("tenant {tenant}: invoice {} {what}", invoice.id)))
}
