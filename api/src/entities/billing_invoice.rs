//! An invoice of a tenant's subscription, from `invoice.*` webhooks.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "billing_invoices")]
pub struct Model {
    /// Stripe's invoice id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: Uuid,
    pub number: Option<String>,
    pub status: String,
    /// In the currency's smallest unit.
    pub amount_due: i64,
    pub amount_paid: i64,
    pub currency: String,
    pub hosted_invoice_url: Option<String>,
    pub period_start: DateTimeUtc,
    pub period_end: DateTimeUtc,
    pub created_at: DateTimeUtc,
    /// When Stripe created the event this row was last written from.
    pub event_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
