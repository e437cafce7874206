//! A mail waiting to be sent, sent, or given up on (`dead`), with its attempts.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "mail_outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub recipient: String,
    /// For operators and logs; the message carries its own.
    pub subject: String,
    /// The whole message as sent (RFC 5322), rendered when queued.
    pub message: Vec<u8>,
    /// `pending`, `sent` or `dead`.
    pub state: String,
    pub attempts: i32,
    /// When a relay may (next) try it; also a claim: a relay moves it ahead before sending.
    pub next_attempt_at: DateTimeUtc,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
