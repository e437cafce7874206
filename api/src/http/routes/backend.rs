//! The site's [`Backend`]: what server functions ask of the control plane, answered by the services with
//! the session's actor.

use convene_app::{
    backend::Backend,
    model::{
        ApiKeyListing, AuditEntry, BillingPage, InvitationDetails, Invitee, JoinDetails, LinkRefusal, MeetingDetails,
        MeetingListing, PageError, RecordingListing, Team, Viewer, WebhookAttempt, WebhookDetails, WebhookEndpoint,
        WebhookEventKind, WebhookListing,
    },
};
use convene_domain::{Role, RoomName};
use convene_signal::Refusal;
use convene_tokens::TokenError;

use crate::{
    billing::BillingError,
    http::AppState,
    meetings::admission::{Admitted, Refused},
    meetings::recordings::RecordingError,
    meetings::scheduled::{ClientContext, JoinError, MeetingError},
    people::Actor,
    people::accounts::users_by_id,
    people::api_keys,
    people::team::TeamError,
    platform::audit,
    webhooks::{
        endpoints::{self, Endpoint, WebhookError},
        events::EventType,
    },
};

/// Audit entries shown on the audit page.
const AUDIT_PAGE_SIZE: u64 = 200;
/// Tries an endpoint's page lists.
const LOGGED_ON_PAGE: u64 = 50;

/// The services behind the site's server functions: the handlers' own state.
#[derive(Debug, Clone)]
pub struct SiteBackend(pub AppState);

impl SiteBackend {
    async fn actor(&self, session: Option<String>) -> Result<Actor, PageError> {
        let Some(token) = session else { return Err(PageError::SignedOut) };
        let session = self.0.accounts.session(&token).await.map_err(unavailable)?.ok_or(PageError::SignedOut)?;
        self.0.accounts.actor(&session).await.map_err(unavailable)?.ok_or(PageError::Forbidden)
    }

    /// The actor, when they are an owner or admin of their tenant.
    async fn admin(&self, session: Option<String>) -> Result<Actor, PageError> {
        let actor = self.actor(session).await?;
        if !actor.is_admin() {
            return Err(PageError::Forbidden);
        }
        Ok(actor)
    }
}

fn webhook_problem(error: WebhookError) -> PageError {
    match error {
        WebhookError::NotFound => PageError::NotFound,
        other => unavailable(other),
    }
}

fn webhook_endpoint(endpoint: Endpoint) -> WebhookEndpoint {
    WebhookEndpoint {
        id: endpoint.id.to_string(),
        url: endpoint.url,
        description: endpoint.description,
        events: endpoint.events.into_iter().map(|event| event.as_str().to_owned()).collect(),
        disabled: endpoint.disabled,
        failing_since: endpoint.failing_since.map(|at| at.to_rfc3339()),
    }
}

fn webhook_kinds() -> Vec<WebhookEventKind> {
    EventType::ALL
        .into_iter()
        .map(|event| WebhookEventKind { name: event.as_str().to_owned(), when: event.when().to_owned() })
        .collect()
}

fn meeting_problem(error: MeetingError) -> PageError {
    match error {
        MeetingError::Forbidden => PageError::Forbidden,
        MeetingError::NotFound => PageError::NotFound,
        other => unavailable(other),
    }
}

fn unavailable(error: impl std::fmt::Display) -> PageError {
    tracing::error!(%error, "a page's data could not be loaded");
    PageError::Unavailable
}

#[async_trait::async_trait]
impl Backend for SiteBackend {
    async fn viewer(&self, session: Option<String>) -> Result<Option<Viewer>, String> {
        let Some(token) = session else { return Ok(None) };
        let failure = |error: sea_orm::DbErr| {
            tracing::error!(%error, "cannot load the signed-in person");
            "cannot load your account right now".to_owned()
        };
        let Some(session) = self.0.accounts.session(&token).await.map_err(failure)? else { return Ok(None) };
        self.0.accounts.viewer(&session).await.map_err(failure)
    }

    async fn team(&self, session: Option<String>) -> Result<Team, PageError> {
        let actor = self.actor(session).await?;
        self.0.team.team(actor).await.map_err(|error| match error {
            TeamError::Forbidden => PageError::Forbidden,
            other => unavailable(other),
        })
    }

    async fn meetings(&self, session: Option<String>) -> Result<MeetingListing, PageError> {
        let actor = self.actor(session).await?;
        self.0.meetings.list(actor).await.map_err(meeting_problem)
    }

    async fn meeting(&self, session: Option<String>, id: String) -> Result<MeetingDetails, PageError> {
        let actor = self.actor(session).await?;
        let id = uuid::Uuid::parse_str(&id).map_err(|_| PageError::NotFound)?;
        self.0.meetings.details(actor, id).await.map_err(meeting_problem)
    }

    async fn join_details(
        &self,
        session: Option<String>,
        code: String,
        invite: Option<String>,
    ) -> Result<JoinDetails, PageError> {
        let person = match session {
            Some(token) => self.0.accounts.session(&token).await.map_err(unavailable)?.map(|session| session.user_id),
            None => None,
        };
        self.0.meetings.join_details(&code, person, invite.as_deref()).await.map_err(|error| match error {
            JoinError::NotFound => PageError::NotFound,
            other => unavailable(other),
        })
    }

    async fn recordings(&self, session: Option<String>) -> Result<RecordingListing, PageError> {
        let actor = self.actor(session).await?;
        self.0.recordings.page(actor).await.map_err(|error| match error {
            RecordingError::Forbidden => PageError::Forbidden,
            other => unavailable(other),
        })
    }

    async fn billing(&self, session: Option<String>) -> Result<BillingPage, PageError> {
        let actor = self.actor(session).await?;
        self.0.billing.page(actor).await.map_err(|error| match error {
            BillingError::Forbidden => PageError::Forbidden,
            other => unavailable(other),
        })
    }

    fn time_zones(&self) -> Vec<String> {
        chrono_tz::TZ_VARIANTS.iter().map(|zone| zone.name().to_owned()).collect()
    }

    async fn api_keys(&self, session: Option<String>) -> Result<Vec<ApiKeyListing>, PageError> {
        let actor = self.admin(session).await?;
        let keys = api_keys::list(&self.0.db, actor.tenant).await.map_err(unavailable)?;
        Ok(keys
            .into_iter()
            .map(|key| ApiKeyListing {
                id: key.id.to_string(),
                name: key.name,
                prefix: key.prefix,
                created_at: key.created_at.to_rfc3339(),
                last_used_at: key.last_used_at.map(|at| at.to_rfc3339()),
                revoked_at: key.revoked_at.map(|at| at.to_rfc3339()),
            })
            .collect())
    }

    async fn webhooks(&self, session: Option<String>) -> Result<WebhookListing, PageError> {
        let actor = self.admin(session).await?;
        let endpoints = self.0.webhooks.list(actor.tenant).await.map_err(webhook_problem)?;
        Ok(WebhookListing {
            endpoints: endpoints.into_iter().map(webhook_endpoint).collect(),
            kinds: webhook_kinds(),
            most: endpoints::MOST_ENDPOINTS,
        })
    }

    async fn webhook(&self, session: Option<String>, id: String) -> Result<WebhookDetails, PageError> {
        let actor = self.admin(session).await?;
        let id = uuid::Uuid::parse_str(&id).map_err(|_| PageError::NotFound)?;
        let endpoint = self.0.webhooks.get(actor.tenant, id).await.map_err(webhook_problem)?;
        let attempts = self.0.webhooks.log(actor.tenant, id, LOGGED_ON_PAGE).await.map_err(webhook_problem)?;
        let attempts = attempts
            .into_iter()
            .map(|attempt| WebhookAttempt {
                delivery_id: attempt.delivery_id.to_string(),
                message_id: attempt.message_id,
                event: attempt.event_type,
                at: attempt.at.to_rfc3339(),
                status: attempt.status,
                latency_ms: attempt.latency_ms,
                response: attempt.response,
                state: attempt.delivery_state,
            })
            .collect();
        Ok(WebhookDetails { endpoint: webhook_endpoint(endpoint), kinds: webhook_kinds(), attempts })
    }

    async fn audit_log(&self, session: Option<String>) -> Result<Vec<AuditEntry>, PageError> {
        let actor = self.actor(session).await?;
        if actor.role != Role::Owner {
            return Err(PageError::Forbidden);
        }
        let db = &self.0.db;
        let events = audit::recent(db, actor.tenant, AUDIT_PAGE_SIZE).await.map_err(unavailable)?;
        let people =
            users_by_id(db, events.iter().filter_map(|event| event.actor_user_id)).await.map_err(unavailable)?;
        let entries: Vec<AuditEntry> = events
            .into_iter()
            .map(|event| AuditEntry {
                at: event.created_at.to_rfc3339(),
                actor: event.actor_user_id.and_then(|id| people.get(&id)).map(|person| person.email.clone()),
                event: event.event,
                detail: event.detail,
                ip: event.ip,
            })
            .collect();
        Ok(entries)
    }

    async fn invitation(&self, token: String) -> Result<InvitationDetails, String> {
        self.0.team.invitation(&token).await.map_err(|error| match error {
            TeamError::Link(link) => link.to_string(),
            other => {
                tracing::error!(error = %other, "cannot load an invitation");
                "this invitation cannot be shown right now".to_owned()
            }
        })
    }

    async fn room_link(&self, room: String, token: String) -> Result<Invitee, LinkRefusal> {
        let refuse = |code: &str, error: &dyn std::fmt::Display| LinkRefusal {
            code: code.to_owned(),
            message: error.to_string(),
        };
        let room = RoomName::parse(&room).map_err(|error| refuse("invalid_token", &error))?;
        match self.0.admission.admit(&room, &token, chrono::Utc::now()).await {
            Ok(Admitted { tenant, identity, policy, .. }) => {
                let around = self.0.meetings.client_context(tenant, room.as_str(), identity.user_id.as_deref()).await;
                let around = around.unwrap_or_else(|error| {
                    tracing::warn!(%error, "a meeting's title and links could not be loaded; the room's name stands in");
                    ClientContext::default()
                });
                let on_air = self.0.rooms.as_ref().map(|rooms| rooms.on_air(&(tenant.to_string(), room.to_string())));
                let on_air = on_air.unwrap_or_default();
                Ok(Invitee {
                    name: identity.name,
                    moderator: identity.moderator,
                    fixed_name: policy.settings.fixed_display_names,
                    title: around.title.unwrap_or_else(|| room.to_string()),
                    invite_link: around.invite_link,
                    home: around.home,
                    recording: on_air.recording,
                    live_streaming: on_air.live_streaming,
                    phone: around.phone,
                })
            }
            Err(refused) => {
                let code = match &refused {
                    Refused::Token(TokenError::Malformed) => "unreadable_token",
                    Refused::Token(TokenError::Expired) => "expired",
                    Refused::Token(TokenError::NotYetValid) => "not_yet_valid",
                    Refused::Token(TokenError::OtherRoom(_)) => "other_room",
                    Refused::Token(TokenError::KeyId | TokenError::UnknownKey | TokenError::Signature) => {
                        "unknown_issuer"
                    }
                    Refused::Room(Refusal::Kicked | Refusal::Rejected, _) => "removed",
                    Refused::Room(Refusal::Ended, _) => "ended",
                    Refused::Unavailable => "unavailable",
                    _ => "invalid_token",
                };
                Err(refuse(code, &refused))
            }
        }
    }
}
