//! A tenant's Stripe customer and subscription, as the verified webhooks last described them. No row: the
//! tenant never went to Checkout and is on the default plan.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "billing_accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    pub stripe_customer_id: Option<String>,
    pub subscription_id: Option<String>,
    /// Stripe's status word (`active`, `past_due`, `canceled`, …).
    pub subscription_status: Option<String>,
    pub price_id: Option<String>,
    /// The configured plan the subscription's price belongs to.
    pub plan_id: Option<String>,
    pub current_period_start: Option<DateTimeUtc>,
    pub current_period_end: Option<DateTimeUtc>,
    pub cancel_at_period_end: bool,
    /// When Stripe created the subscription event last applied (older ones arriving late are ignored).
    pub subscription_event_at: Option<DateTimeUtc>,
    /// Since when a payment has been failing; the grace period runs from here.
    pub overdue_since: Option<DateTimeUtc>,
    /// When Stripe created the invoice payment event last applied.
    pub payment_event_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
