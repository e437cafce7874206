//! A tenant's webhook receiver: where events go, which ones, and the secret their signatures use.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// Where deliveries are posted.
    pub url: String,
    pub description: String,
    /// The event types it wants, space-separated.
    pub events: String,
    /// The signing secret (`whsec_…`), sealed by `platform::envelope`.
    pub sealed_secret: String,
    /// The secret before the last rotation, sealed; deliveries carry its signature too until `previous_until`.
    pub previous_sealed_secret: Option<String>,
    pub previous_until: Option<DateTimeUtc>,
    /// Paused by its owner: no deliveries are made or queued.
    pub disabled: bool,
    /// When a delivery to it last ran out of tries (cleared by the next success).
    pub failing_since: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
