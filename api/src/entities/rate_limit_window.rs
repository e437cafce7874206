//! One key's fixed window of a control-plane rate limit (`platform::rate_limit::SharedLimiter`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rate_limit_windows")]
pub struct Model {
    /// The first 128 bits of the key's SHA-256, in hex: keys are never stored as given.
    #[sea_orm(primary_key, auto_increment = false)]
    pub key: String,
    /// When the window started, in milliseconds since the Unix epoch.
    pub started_ms: i64,
    /// Events counted in the window.
    pub count: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
