//! The seam between the site and the control plane. Server functions are thin: they find the request and
//! this backend in their context and ask it. `convene-api` implements the trait with its services and
//! provides it when it mounts the routes; nothing in this crate touches the database.

use std::sync::Arc;

use leptos::prelude::*;

use crate::model::{
    ApiKeyListing, AuditEntry, BillingPage, InvitationDetails, Invitee, JoinDetails, LinkRefusal, MeetingDetails,
    MeetingListing, PageError, RecordingListing, Team, Viewer, WebhookDetails, WebhookListing,
};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "convene_session";

/// What server functions may ask of the control plane. Methods take the session cookie's value, not the
/// request, so implementations stay independent of the HTTP framework.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The signed-in person behind a session cookie, if any.
    async fn viewer(&self, session: Option<String>) -> Result<Option<Viewer>, String>;
    /// The team page of the viewer's active tenant.
    async fn team(&self, session: Option<String>) -> Result<Team, PageError>;
    /// The API keys of the viewer's active tenant (owners and admins).
    async fn api_keys(&self, session: Option<String>) -> Result<Vec<ApiKeyListing>, PageError>;
    /// The webhook endpoints of the viewer's active tenant (owners and admins).
    async fn webhooks(&self, session: Option<String>) -> Result<WebhookListing, PageError>;
    /// One webhook endpoint of the viewer's active tenant with its delivery log (owners and admins).
    async fn webhook(&self, session: Option<String>, id: String) -> Result<WebhookDetails, PageError>;
    /// The audit log of the viewer's active tenant (owners).
    async fn audit_log(&self, session: Option<String>) -> Result<Vec<AuditEntry>, PageError>;
    /// What an invitation link offers; the error says why the link does not work.
    async fn invitation(&self, token: String) -> Result<InvitationDetails, String>;
    /// The meetings of the viewer's active tenant (moderators and above).
    async fn meetings(&self, session: Option<String>) -> Result<MeetingListing, PageError>;
    /// One meeting of the viewer's active tenant (moderators and above).
    async fn meeting(&self, session: Option<String>, id: String) -> Result<MeetingDetails, PageError>;
    /// What a participant link shows before joining; `invite` is a personal link's secret.
    async fn join_details(
        &self,
        session: Option<String>,
        code: String,
        invite: Option<String>,
    ) -> Result<JoinDetails, PageError>;
    /// The recordings of the viewer's active tenant (moderators and above).
    async fn recordings(&self, session: Option<String>) -> Result<RecordingListing, PageError>;
    /// The billing page of the viewer's active tenant (owners).
    async fn billing(&self, session: Option<String>) -> Result<BillingPage, PageError>;
    /// The time zone names meetings may be scheduled in.
    fn time_zones(&self) -> Vec<String>;
    /// Verifies a meeting link's room token for `room`.
    async fn room_link(&self, room: String, token: String) -> Result<Invitee, LinkRefusal>;
}

/// The backend as provided in context.
pub type SharedBackend = Arc<dyn Backend>;

/// The backend, and the session cookie of the request being served.
pub async fn backend_and_session() -> Result<(SharedBackend, Option<String>), ServerFnError> {
    let backend = use_context::<SharedBackend>().ok_or_else(|| ServerFnError::new("no backend in context"))?;
    let request: actix_web::HttpRequest = leptos_actix::extract().await?;
    let session = request.cookie(SESSION_COOKIE).map(|cookie| cookie.value().to_owned());
    Ok((backend, session))
}
