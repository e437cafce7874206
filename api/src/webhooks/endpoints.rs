//! A tenant's webhook endpoints: made (the secret shown once), listed, changed, removed, their secret
//! replaced; their delivery log, a test event, and a delivery sent again. Every read and change is scoped
//! to the tenant: another tenant's endpoint is a missing one.

use chrono::{DateTime, Utc};
use convene_domain::TenantId;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;

use super::{
    delivery::{self, Deliverer, Reach},
    events::{self, EventType},
    signing::WebhookSecret,
};
use crate::{
    entities::{webhook_attempt, webhook_delivery, webhook_endpoint, webhook_message},
    platform::{envelope::Envelope, mail::Mailer},
};

/// Endpoints one tenant may have.
pub const MOST_ENDPOINTS: u64 = 20;
/// How long a replaced secret still signs deliveries beside the new one.
pub const ROTATION_OVERLAP: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// The most tries one delivery log answer lists.
pub const MOST_LOGGED: u64 = 100;

/// What makes an endpoint.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEndpoint {
    /// Where events are posted: `https://` (plain `http://` and private addresses only where the operator
    /// allows them).
    pub url: String,
    /// Words for people (at most 500 characters).
    #[serde(default)]
    pub description: String,
    /// The events it wants, at least one.
    #[schema(value_type = Vec<String>, example = json!(["meeting.started", "participant.joined"]))]
    pub events: Vec<String>,
}

/// What `PATCH /v1/webhooks/{id}` changes: only the fields sent.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointChange {
    /// A new URL.
    #[serde(default)]
    pub url: Option<String>,
    /// New words.
    #[serde(default)]
    pub description: Option<String>,
    /// The events it wants from now on.
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    pub events: Option<Vec<String>>,
    /// Paused (`true`): nothing is queued for it and what waits stays until it is enabled again.
    #[serde(default)]
    pub disabled: Option<bool>,
}

/// An endpoint, as the API shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Endpoint {
    /// Its id.
    pub id: Uuid,
    /// Where events go.
    pub url: String,
    /// Words for people.
    pub description: String,
    /// The events it wants.
    pub events: Vec<EventType>,
    /// Paused.
    pub disabled: bool,
    /// Since when a delivery to it ran out of tries, until one succeeds again.
    pub failing_since: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// A new endpoint with its secret, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedEndpoint {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// `whsec_…`: verifies the `webhook-signature` of every delivery (Standard Webhooks). Shown only now.
    pub secret: String,
}

/// One try at delivering an event, for the endpoint's delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LoggedAttempt {
    /// The delivery (send it again by this id).
    pub delivery_id: Uuid,
    /// The event's `webhook-id`.
    pub message_id: String,
    /// The event's type.
    pub event_type: String,
    /// When the try was made.
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status; absent when it could not be reached.
    pub status: Option<i32>,
    /// How long it took, in milliseconds.
    pub latency_ms: i32,
    /// The start of the answer, or why the receiver could not be reached.
    pub response: String,
    /// Where the delivery is now: `pending` (another try is due), `delivered` or `failed`.
    pub delivery_state: String,
}

/// Why a webhook request was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No such endpoint or delivery in the tenant.
    #[error("not found")]
    NotFound,
    /// A field is unusable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field as the API names it.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The tenant has as many endpoints as it may.
    #[error("an organisation has at most {MOST_ENDPOINTS} webhook endpoints; remove one first")]
    TooMany,
    /// Storage failed.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// Sealing the secret or randomness failed.
    #[error("{0}")]
    Internal(#[from] anyhow::Error),
}

fn invalid(field: &'static str, message: impl Into<String>) -> WebhookError {
    WebhookError::Invalid { field, message: message.into() }
}

fn view(row: webhook_endpoint::Model) -> Endpoint {
    Endpoint {
        id: row.id,
        url: row.url,
        description: row.description,
        events: events::read(&row.events),
        disabled: row.disabled,
        failing_since: row.failing_since,
        created_at: row.created_at,
    }
}

/// The tenant's endpoints and their deliveries.
#[derive(Debug, Clone)]
pub struct WebhookService {
    db: DatabaseConnection,
    envelope: Envelope,
    reach: Reach,
    deliverer: Deliverer,
}

impl WebhookService {
    /// Endpoints in `db`, their secrets sealed by `envelope`, their URLs within `reach`; owners of failing
    /// ones told through `mailer`, with a link to the site at `public_url`.
    pub fn new((db, envelope, mailer): (DatabaseConnection, Envelope, Mailer), reach: Reach, public_url: &Url) -> Self {
        let deliverer = Deliverer::new(db.clone(), envelope.clone(), mailer, reach, public_url);
        Self { db, envelope, reach, deliverer }
    }

    /// What sends the queued deliveries (`Deliverer::run`, once per control-plane process).
    pub fn deliverer(&self) -> Deliverer {
        self.deliverer.clone()
    }

    fn url(&self, text: &str) -> Result<String, WebhookError> {
        let url = Url::parse(text.trim()).map_err(|_| invalid("url", format!("`{text}` is not a URL")))?;
        self.reach.check_url(&url).map_err(|message| invalid("url", message))?;
        Ok(url.to_string())
    }

    fn events(names: &[String]) -> Result<String, WebhookError> {
        let mut wanted = Vec::new();
        for name in names {
            let event = EventType::parse(name).ok_or_else(|| {
                let known = EventType::ALL.map(EventType::as_str).join(", ");
                invalid("events", format!("`{name}` is not an event; use {known}"))
            })?;
            if !wanted.contains(&event) {
                wanted.push(event);
            }
        }
        if wanted.is_empty() {
            return Err(invalid("events", "name at least one event"));
        }
        Ok(events::stored(&wanted))
    }

    fn description(text: &str) -> Result<String, WebhookError> {
        if text.chars().count() > 500 || text.chars().any(char::is_control) {
            return Err(invalid("description", "at most 500 characters, none of them control characters"));
        }
        Ok(text.trim().to_owned())
    }

    fn seal(&self, id: Uuid, secret: &WebhookSecret) -> Result<String, WebhookError> {
        Ok(self.envelope.seal(id, secret.to_text().expose_secret())?)
    }

    async fn find(&self, tenant: TenantId, id: Uuid) -> Result<webhook_endpoint::Model, WebhookError> {
        webhook_endpoint::Entity::find_by_id(id)
            .filter(webhook_endpoint::Column::TenantId.eq(tenant.as_uuid()))
            .one(&self.db)
            .await?
            .ok_or(WebhookError::NotFound)
    }

    /// Makes an endpoint; its secret is in the answer and nowhere else in clear.
    pub async fn create(&self, tenant: TenantId, new: NewEndpoint) -> Result<CreatedEndpoint, WebhookError> {
        let (url, events) = (self.url(&new.url)?, Self::events(&new.events)?);
        let description = Self::description(&new.description)?;
        let count = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::TenantId.eq(tenant.as_uuid()))
            .count(&self.db)
            .await?;
        if count >= MOST_ENDPOINTS {
            return Err(WebhookError::TooMany);
        }
        let id = Uuid::now_v7();
        let secret = WebhookSecret::generate()?;
        let row = webhook_endpoint::ActiveModel {
            id: Set(id),
            tenant_id: Set(tenant.as_uuid()),
            url: Set(url),
            description: Set(description),
            events: Set(events),
            sealed_secret: Set(self.seal(id, &secret)?),
            previous_sealed_secret: Set(None),
            previous_until: Set(None),
            disabled: Set(false),
            failing_since: Set(None),
            created_at: Set(Utc::now()),
        }
        .insert(&self.db)
        .await?;
        Ok(CreatedEndpoint { endpoint: view(row), secret: secret.to_text().expose_secret().to_owned() })
    }

    /// The tenant's endpoints, oldest first.
    pub async fn list(&self, tenant: TenantId) -> Result<Vec<Endpoint>, WebhookError> {
        let rows = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::TenantId.eq(tenant.as_uuid()))
            .order_by_asc(webhook_endpoint::Column::Id)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(view).collect())
    }

    /// One endpoint.
    pub async fn get(&self, tenant: TenantId, id: Uuid) -> Result<Endpoint, WebhookError> {
        self.find(tenant, id).await.map(view)
    }

    /// Changes the fields `change` sends.
    pub async fn update(&self, tenant: TenantId, id: Uuid, change: EndpointChange) -> Result<Endpoint, WebhookError> {
        let row = self.find(tenant, id).await?;
        let mut row: webhook_endpoint::ActiveModel = row.into();
        if let Some(url) = &change.url {
            row.url = Set(self.url(url)?);
        }
        if let Some(description) = &change.description {
            row.description = Set(Self::description(description)?);
        }
        if let Some(events) = &change.events {
            row.events = Set(Self::events(events)?);
        }
        if let Some(disabled) = change.disabled {
            row.disabled = Set(disabled);
        }
        Ok(view(row.update(&self.db).await?))
    }

    /// Removes an endpoint with its queued deliveries and log.
    pub async fn delete(&self, tenant: TenantId, id: Uuid) -> Result<(), WebhookError> {
        let row = self.find(tenant, id).await?;
        webhook_endpoint::Entity::delete_by_id(row.id).exec(&self.db).await?;
        Ok(())
    }

    /// Gives the endpoint a new secret, which signs every delivery from now on; for [`ROTATION_OVERLAP`]
    /// deliveries carry the old one's signature too, so a receiver can change over without losing one.
    /// Answers the new secret, this once.
    pub async fn rotate_secret(&self, tenant: TenantId, id: Uuid) -> Result<String, WebhookError> {
        let row = self.find(tenant, id).await?;
        let secret = WebhookSecret::generate()?;
        let sealed = self.seal(row.id, &secret)?;
        let previous = row.sealed_secret.clone();
        let mut row: webhook_endpoint::ActiveModel = row.into();
        row.sealed_secret = Set(sealed);
        row.previous_sealed_secret = Set(Some(previous));
        row.previous_until = Set(Some(Utc::now() + ROTATION_OVERLAP));
        row.update(&self.db).await?;
        Ok(secret.to_text().expose_secret().to_owned())
    }

    /// The endpoint's latest tries, newest first.
    pub async fn log(&self, tenant: TenantId, id: Uuid, limit: u64) -> Result<Vec<LoggedAttempt>, WebhookError> {
        let endpoint = self.find(tenant, id).await?;
        let attempts = webhook_attempt::Entity::find()
            .filter(webhook_attempt::Column::EndpointId.eq(endpoint.id))
            .order_by_desc(webhook_attempt::Column::Id)
            .limit(limit.clamp(1, MOST_LOGGED))
            .all(&self.db)
            .await?;
        let delivery_ids: Vec<Uuid> = attempts.iter().map(|attempt| attempt.delivery_id).collect();
        let deliveries = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::Id.is_in(delivery_ids))
            .all(&self.db)
            .await?;
        let message_ids: Vec<Uuid> = deliveries.iter().map(|delivery| delivery.message_id).collect();
        let messages = webhook_message::Entity::find()
            .filter(webhook_message::Column::Id.is_in(message_ids))
            .all(&self.db)
            .await?;
        Ok(attempts
            .into_iter()
            .filter_map(|attempt| {
                let delivery = deliveries.iter().find(|delivery| delivery.id == attempt.delivery_id)?;
                let message = messages.iter().find(|message| message.id == delivery.message_id)?;
                Some(LoggedAttempt {
                    delivery_id: delivery.id,
                    message_id: delivery::message_id(message.id),
                    event_type: message.event_type.clone(),
                    at: attempt.at,
                    status: attempt.status,
                    latency_ms: attempt.latency_ms,
                    response: attempt.response,
                    delivery_state: delivery.state.clone(),
                })
            })
            .collect())
    }

    /// Queues a `webhook.test` event for the endpoint alone; answers its `webhook-id`.
    pub async fn send_test(&self, tenant: TenantId, id: Uuid) -> Result<String, WebhookError> {
        let endpoint = self.find(tenant, id).await?;
        if endpoint.disabled {
            return Err(invalid("disabled", "the endpoint is paused; enable it first"));
        }
        let data = serde_json::json!({ "endpoint_id": endpoint.id });
        let sent = events::emit(&self.db, tenant, (EventType::Test, data), Some(endpoint.id), Utc::now()).await?;
        sent.map(delivery::message_id).ok_or(WebhookError::NotFound)
    }

    /// Queues a delivery again (after the endpoint's others waiting): the same event, the same `webhook-id`,
    /// so a receiver that did get it can tell.
    pub async fn resend(&self, tenant: TenantId, id: Uuid, delivery: Uuid) -> Result<(), WebhookError> {
        let endpoint = self.find(tenant, id).await?;
        let old = webhook_delivery::Entity::find_by_id(delivery)
            .filter(webhook_delivery::Column::EndpointId.eq(endpoint.id))
            .one(&self.db)
            .await?
            .ok_or(WebhookError::NotFound)?;
        webhook_delivery::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(old.tenant_id),
            endpoint_id: Set(old.endpoint_id),
            message_id: Set(old.message_id),
            state: Set(delivery::PENDING.to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(Utc::now()),
            claimed_until: Set(None),
            finished_at: Set(None),
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }
}
