//! Participant-minutes: counted from the stays the media node reported (`room_sessions`), per tenant and
//! billing period, and the minutes beyond a plan's included ones sent to Stripe as Billing Meter events.
//!
//! A stay counts once it has ended, rounded up to whole minutes (at least one), in the period it ended in.
//! Counting claims each stay with a conditional update and writes the period's total and any meter event
//! into the outbox (`usage_reports`) in one transaction, so nothing is counted twice, even by two
//! processes. The sender then delivers the outbox in order with each event's own identifier, and keeps
//! what Stripe could not take for the next round: an outage or a restart loses nothing, and a retry is one
//! event to Stripe.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use chrono::{DateTime, Datelike, TimeZone, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    metrics::BillingMetrics,
    plan_for,
    stripe::{MeterEvent, StripeApi, StripeFailure},
    webhooks::is_live,
};
use crate::{
    entities::{billing_account, session_participant, usage_period, usage_report},
    platform::settings::plans::Plans,
};

/// Stays counted per transaction.
const COUNT_BATCH: u64 = 500;
/// Transactions per round, so one round ends even while stays keep ending.
const COUNT_BATCHES: usize = 20;
/// Meter events sent per round.
const SEND_BATCH: u64 = 100;

/// The calendar month (UTC) around `at`.
fn month_of(at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = |year, month| Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).single().unwrap_or(at);
    let (year, month) = (at.year(), at.month());
    let next = if month == 12 { start(year + 1, 1) } else { start(year, month + 1) };
    (start(year, month), next)
}

/// The billing period around `at`: the live subscription's (stepped forward or back by its length when
/// `at` is outside the period Stripe last told us of), else the calendar month. Counting and the billing
/// page both use this, so they agree.
pub fn period_of(
    account: Option<&billing_account::Model>,
    billing_on: bool,
    at: DateTime<Utc>,
) -> (DateTime<Utc>, DateTime<Utc>) {
    let subscription = account
        .filter(|_| billing_on)
        .filter(|account| account.subscription_status.as_deref().is_some_and(is_live))
        .and_then(|account| account.current_period_start.zip(account.current_period_end));
    let Some((mut start, mut end)) = subscription.filter(|(start, end)| start < end) else { return month_of(at) };
    let length = end - start;
    // Two years of periods either way; beyond that the stored period is too old to step from.
    for _ in 0..24 {
        if at < start {
            (start, end) = (start - length, start);
        } else if at >= end {
            (start, end) = (end, end + length);
        } else {
            return (start, end);
        }
    }
    month_of(at)
}

/// Whole minutes of a stay that ended, rounded up, at least one.
fn minutes(joined: DateTime<Utc>, left: DateTime<Utc>) -> i64 {
    let seconds = (left - joined).num_seconds().max(0);
    (seconds + 59).div_euclid(60).max(1)
}

/// How a sending round ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Everything it took was delivered or refused for good.
    Done,
    /// Stripe could not be reached; the rest waits for the next round.
    StripeUnreachable,
}

/// Counts participant-minutes and sends their meter events.
#[derive(Clone)]
pub struct UsageMeter {
    db: DatabaseConnection,
    plans: Arc<Plans>,
    stripe: Option<Arc<dyn StripeApi>>,
    metrics: BillingMetrics,
}

impl std::fmt::Debug for UsageMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageMeter").field("billing_on", &self.stripe.is_some()).finish_non_exhaustive()
    }
}

impl UsageMeter {
    /// Counts into `db` with `plans`; sends to `stripe` when billing is on.
    pub fn new(
        db: DatabaseConnection,
        plans: Arc<Plans>,
        stripe: Option<Arc<dyn StripeApi>>,
        metrics: BillingMetrics,
    ) -> Self {
        Self { db, plans, stripe, metrics }
    }

    /// Counts and sends every `interval` until `shutdown`; what is unsent waits in the outbox.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if let Err(error) = self.count().await {
                tracing::warn!(%error, "cannot count participant-minutes now; the next round will");
            }
            let sent = tokio::select! {
                () = shutdown.cancelled() => return,
                sent = self.send() => sent,
            };
            match sent {
                Ok(Round::StripeUnreachable) => tracing::warn!("Stripe is unreachable; usage waits in the outbox"),
                Ok(Round::Done) => {}
                Err(error) => tracing::warn!(%error, "cannot read the usage outbox now; the next round will"),
            }
        }
    }

    /// Counts every stay that ended since the last round; returns how many.
    pub async fn count(&self) -> Result<usize, DbErr> {
        let mut counted = 0;
        for _ in 0..COUNT_BATCHES {
            let transaction = crate::platform::db::begin_write(&self.db).await?;
            let stays = session_participant::Entity::find()
                .filter(session_participant::Column::MeteredMinutes.is_null())
                .filter(session_participant::Column::LeftAt.is_not_null())
                .order_by_asc(session_participant::Column::LeftAt)
                .limit(COUNT_BATCH)
                .all(&transaction)
                .await?;
            if stays.is_empty() {
                transaction.commit().await?;
                break;
            }
            let mut accounts: HashMap<Uuid, Option<billing_account::Model>> = HashMap::new();
            let mut totals: BTreeMap<(Uuid, DateTime<Utc>), i64> = BTreeMap::new();
            for stay in stays {
                let Some(left) = stay.left_at else { continue };
                let stay_minutes = minutes(stay.joined_at, left);
                // Claimed by a conditional update: a stay another process counted first is skipped.
                let claimed = session_participant::Entity::update_many()
                    .col_expr(
                        session_participant::Column::MeteredMinutes,
                        sea_orm::sea_query::Expr::value(i32::try_from(stay_minutes).unwrap_or(i32::MAX)),
                    )
                    .filter(session_participant::Column::Id.eq(stay.id))
                    .filter(session_participant::Column::MeteredMinutes.is_null())
                    .exec(&transaction)
                    .await?;
                if claimed.rows_affected == 0 {
                    continue;
                }
                let account = match accounts.get(&stay.tenant_id) {
                    Some(account) => account.clone(),
                    None => {
                        let account = billing_account::Entity::find_by_id(stay.tenant_id).one(&transaction).await?;
                        accounts.insert(stay.tenant_id, account.clone());
                        account
                    }
                };
                let (start, _) = period_of(account.as_ref(), self.stripe.is_some(), left);
                *totals.entry((stay.tenant_id, start)).or_default() += stay_minutes;
                counted += 1;
            }
            for ((tenant, start), added) in totals {
                let account = accounts.get(&tenant).cloned().flatten();
                self.add(&transaction, tenant, start, added, account.as_ref()).await?;
            }
            transaction.commit().await?;
        }
        Ok(counted)
    }

    /// Adds `added` minutes to a tenant's period and queues the overage they bring, if it is billed.
    async fn add(
        &self,
        db: &impl ConnectionTrait,
        tenant: Uuid,
        start: DateTime<Utc>,
        added: i64,
        account: Option<&billing_account::Model>,
    ) -> Result<(), DbErr> {
        // Locked (on Postgres; SQLite writes one at a time anyway) so two processes counting at once add up;
        // the periods are taken in key order, so they never wait on each other in a circle.
        let row = usage_period::Entity::find_by_id((tenant, start)).lock_exclusive().one(db).await?;
        let (before, reported) = row.as_ref().map_or((0, 0), |row| (row.minutes, row.overage_reported));
        let total = before.saturating_add(added);
        let plan = plan_for(&self.plans, self.stripe.is_some(), account);
        let included = i64::try_from(plan.limits.included_minutes).unwrap_or(i64::MAX);
        let overage = total.saturating_sub(included).max(0);
        let customer = account
            .filter(|account| account.subscription_status.as_deref().is_some_and(is_live))
            .and_then(|account| account.stripe_customer_id.clone())
            .filter(|_| plan.overage_price.is_some());
        let mut now_reported = reported;
        if let Some(customer) = customer
            && overage > reported
        {
            let id = Uuid::now_v7();
            usage_report::ActiveModel {
                id: Set(id),
                tenant_id: Set(tenant),
                identifier: Set(format!("convene-usage-{id}")),
                stripe_customer_id: Set(customer),
                minutes: Set(overage - reported),
                occurred_at: Set(Utc::now()),
                sent_at: Set(None),
                failed_at: Set(None),
                attempts: Set(0),
                last_error: Set(None),
            }
            .insert(db)
            .await?;
            now_reported = overage;
        }
        let period = usage_period::ActiveModel {
            tenant_id: Set(tenant),
            period_start: Set(start),
            minutes: Set(total),
            overage_reported: Set(now_reported),
        };
        match row {
            Some(_) => period.update(db).await.map(drop),
            None => period.insert(db).await.map(drop),
        }
    }

    /// Sends the outbox in order until it is empty, Stripe is unreachable, or a round's batch is done.
    pub async fn send(&self) -> Result<Round, DbErr> {
        let Some(stripe) = &self.stripe else { return Ok(Round::Done) };
        let round = self.send_to(stripe.as_ref()).await?;
        let outbox = |failed: bool| {
            let query = usage_report::Entity::find().filter(usage_report::Column::SentAt.is_null());
            match failed {
                true => query.filter(usage_report::Column::FailedAt.is_not_null()),
                false => query.filter(usage_report::Column::FailedAt.is_null()),
            }
            .count(&self.db)
        };
        self.metrics.outbox(outbox(false).await?, outbox(true).await?);
        Ok(round)
    }

    async fn send_to(&self, stripe: &dyn StripeApi) -> Result<Round, DbErr> {
        let pending = usage_report::Entity::find()
            .filter(usage_report::Column::SentAt.is_null())
            .filter(usage_report::Column::FailedAt.is_null())
            .order_by_asc(usage_report::Column::Id)
            .limit(SEND_BATCH)
            .all(&self.db)
            .await?;
        for report in pending {
            let event = MeterEvent {
                event_name: &self.plans.meter_event_name,
                customer: &report.stripe_customer_id,
                value: report.minutes,
                identifier: &report.identifier,
                timestamp: report.occurred_at.timestamp(),
            };
            let result = stripe.meter_event(event).await;
            let mut row = report.clone().into_active_model();
            row.attempts = Set(report.attempts.saturating_add(1));
            match result {
                Ok(()) => {
                    row.sent_at = Set(Some(Utc::now()));
                    row.last_error = Set(None);
                    self.metrics.meter_event("delivered");
                }
                Err(StripeFailure::Unavailable(error)) => {
                    row.last_error = Set(Some(error.chars().take(500).collect()));
                    row.update(&self.db).await?;
                    self.metrics.meter_event("unavailable");
                    return Ok(Round::StripeUnreachable);
                }
                Err(refused @ StripeFailure::Refused { .. }) => {
                    self.metrics.meter_event("refused");
                    tracing::error!(identifier = %report.identifier, %refused, "Stripe refused a meter event");
                    row.failed_at = Set(Some(Utc::now()));
                    row.last_error = Set(Some(refused.to_string().chars().take(500).collect()));
                }
            }
            row.update(&self.db).await?;
        }
        Ok(Round::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("a time").with_timezone(&Utc)
    }

    #[test]
    fn stays_round_up_to_whole_minutes_and_count_at_least_one() {
        assert_eq!(minutes(at("2026-12-01T10:00:00Z"), at("2026-12-01T10:00:05Z")), 1);
        assert_eq!(minutes(at("2026-12-01T10:00:00Z"), at("2026-12-01T10:01:00Z")), 1);
        assert_eq!(minutes(at("2026-12-01T10:00:00Z"), at("2026-12-01T10:01:01Z")), 2);
        assert_eq!(minutes(at("2026-12-01T10:00:00Z"), at("2026-12-01T09:00:00Z")), 1);
    }

    #[test]
    fn periods_follow_the_live_subscription_else_the_calendar_month() {
        assert_eq!(month_of(at("2026-12-31T23:59:59Z")), (at("2026-12-01T00:00:00Z"), at("2027-01-01T00:00:00Z")));
        let account = billing_account::Model {
            tenant_id: Uuid::nil(),
            stripe_customer_id: Some("cus_1".into()),
            subscription_id: Some("sub_1".into()),
            subscription_status: Some("active".into()),
            price_id: None,
            plan_id: None,
            current_period_start: Some(at("2026-11-15T00:00:00Z")),
            current_period_end: Some(at("2026-12-15T00:00:00Z")),
            cancel_at_period_end: false,
            subscription_event_at: None,
            overdue_since: None,
            payment_event_at: None,
            updated_at: Utc::now(),
        };
        let inside = at("2026-12-01T00:00:00Z");
        assert_eq!(period_of(Some(&account), true, inside), (at("2026-11-15T00:00:00Z"), at("2026-12-15T00:00:00Z")));
        assert_eq!(period_of(Some(&account), true, at("2026-12-20T00:00:00Z")).0, at("2026-12-15T00:00:00Z"));
        assert_eq!(period_of(Some(&account), true, at("2026-11-01T00:00:00Z")).1, at("2026-11-15T00:00:00Z"));
        assert_eq!(period_of(Some(&account), false, inside).0, at("2026-12-01T00:00:00Z"), "billing off");
        let canceled = billing_account::Model { subscription_status: Some("canceled".into()), ..account };
        assert_eq!(period_of(Some(&canceled), true, inside).0, at("2026-12-01T00:00:00Z"));
    }
}
