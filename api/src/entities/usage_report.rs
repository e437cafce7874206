//! The outbox of Billing Meter events: written in the transaction that counts the minutes, sent to Stripe
//! with its `identifier` until Stripe takes it, so an outage loses nothing and a retry counts once.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_reports")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The meter event's identifier, which Stripe deduplicates on.
    pub identifier: String,
    pub stripe_customer_id: String,
    pub minutes: i64,
    /// The meter event's timestamp.
    pub occurred_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
    /// Set when Stripe refused the event for good (the error says why); such rows are not retried.
    pub failed_at: Option<DateTimeUtc>,
    pub attempts: i32,
    pub last_error: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
