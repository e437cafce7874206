//! Form endpoints for the webhooks pages (owners and admins): add an endpoint, change or pause it, give it
//! a new secret, send it a test event, send a delivery again, remove it. The pages live at `/webhooks`;
//! forms post under `/webhook-endpoints`, apart from `/webhooks/stripe`, which takes Stripe's signed posts.
//! Ids in paths are looked up in the actor's tenant only; anything else answers 404.

use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, error::InternalError, post, web};
use convene_app::forms::Flash;
use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

use super::team::{SignedIn, forbidden, not_found, record};
use crate::{
    http::{AppState, routes::auth::back_with, routes::auth::unexpected},
    people::Actor,
    platform::audit::AuditEvent,
    webhooks::endpoints::{EndpointChange, NewEndpoint, WebhookError},
};

/// Registers the endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create).service(update).service(rotate).service(test).service(resend).service(delete);
}

/// A form's fields as posted: checkboxes repeat `events`, so the body is read as pairs.
struct Posted(Vec<(String, String)>);

impl Posted {
    fn text(&self, name: &str) -> String {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()).unwrap_or_default()
    }

    fn events(&self) -> Vec<String> {
        self.0.iter().filter(|(key, _)| key == "events").map(|(_, value)| value.clone()).collect()
    }

    fn checked(&self, name: &str) -> bool {
        self.0.iter().any(|(key, _)| key == name)
    }

    /// What a refused form shows again.
    fn kept(&self, flash: Flash) -> Flash {
        flash
            .keep("url", &self.text("url"))
            .keep("description", &self.text("description"))
            .keep("events", &self.events().join(" "))
    }
}

fn page(id: Uuid) -> String {
    format!("/webhooks/{id}")
}

/// An owner or admin acting on the endpoint whose id is the path's `{id}`: anyone else is answered 403,
/// an id that is not one 404 (an id of another tenant is answered 404 by the service).
struct EndpointAdmin(Actor, Uuid);

impl FromRequest for EndpointAdmin {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let signed_in = SignedIn::from_request(request, payload);
        let id = request.match_info().get("id").and_then(|id| Uuid::parse_str(id).ok());
        Box::pin(async move {
            let SignedIn(actor) = signed_in.await?;
            if !actor.is_admin() {
                return Err(InternalError::from_response("forbidden", forbidden()).into());
            }
            let id = id.ok_or_else(|| InternalError::from_response("not found", not_found()))?;
            Ok(Self(actor, id))
        })
    }
}

/// The answer to a refusal the person can fix, on `location`'s form `form`; anything else is not found or
/// our failure.
fn refused(error: WebhookError, (location, form): (&str, &str), posted: &Posted, state: &AppState) -> HttpResponse {
    match error {
        WebhookError::NotFound => not_found(),
        WebhookError::Invalid { field, message } => {
            let flash = posted.kept(Flash::failure(form, "Please check the form.").field(field, message));
            back_with(location, &flash, state.cookies)
        }
        error @ WebhookError::TooMany => {
            back_with(location, &posted.kept(Flash::failure(form, error.to_string())), state.cookies)
        }
        error => unexpected(location, form, &error, state.cookies),
    }
}

/// Where a secret goes once: the short-lived HttpOnly flash, to the endpoint's page.
fn with_secret(id: Uuid, message: &str, secret: &str, state: &AppState) -> HttpResponse {
    back_with(&page(id), &Flash::success("webhook", message).keep("new_secret", secret), state.cookies)
}

#[post("/webhook-endpoints")]
async fn create(
    SignedIn(actor): SignedIn,
    request: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if !actor.is_admin() {
        return forbidden();
    }
    let posted = Posted(form.into_inner());
    let new = NewEndpoint { url: posted.text("url"), description: posted.text("description"), events: posted.events() };
    match state.webhooks.create(actor.tenant, new).await {
        Ok(created) => {
            let id = created.endpoint.id;
            if let Err(error) =
                record(&state.db, actor, AuditEvent::WebhookCreated, &created.endpoint.url, &request).await
            {
                return unexpected("/webhooks", "webhooks", &error, state.cookies);
            }
            let message = "Endpoint added. Copy its signing secret now: it will not be shown again.";
            with_secret(id, message, &created.secret, &state)
        }
        Err(error) => refused(error, ("/webhooks", "webhooks"), &posted, &state),
    }
}

#[post("/webhook-endpoints/{id}")]
async fn update(
    EndpointAdmin(actor, id): EndpointAdmin,
    form: web::Form<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let posted = Posted(form.into_inner());
    let change = EndpointChange {
        url: Some(posted.text("url")),
        description: Some(posted.text("description")),
        events: Some(posted.events()),
        disabled: Some(posted.checked("paused")),
    };
    match state.webhooks.update(actor.tenant, id, change).await {
        Ok(_) => back_with(&page(id), &Flash::success("webhook", "Endpoint saved."), state.cookies),
        Err(error) => refused(error, (&page(id), "webhook"), &posted, &state),
    }
}

#[post("/webhook-endpoints/{id}/secret")]
async fn rotate(
    EndpointAdmin(actor, id): EndpointAdmin,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> HttpResponse {
    match state.webhooks.rotate_secret(actor.tenant, id).await {
        Ok(secret) => {
            if let Err(error) =
                record(&state.db, actor, AuditEvent::WebhookSecretRotated, &id.to_string(), &request).await
            {
                return unexpected(&page(id), "webhook", &error, state.cookies);
            }
            let message = "New signing secret made. Copy it now: it will not be shown again. For 24 hours \
                           deliveries are signed with the old one as well, so your receiver can change over.";
            with_secret(id, message, &secret, &state)
        }
        Err(error) => refused(error, (&page(id), "webhook"), &Posted(Vec::new()), &state),
    }
}

#[post("/webhook-endpoints/{id}/test")]
async fn test(EndpointAdmin(actor, id): EndpointAdmin, state: web::Data<AppState>) -> HttpResponse {
    match state.webhooks.send_test(actor.tenant, id).await {
        Ok(message) => {
            let flash = Flash::success("webhook", format!("Test event {message} queued; its delivery shows below."));
            back_with(&page(id), &flash, state.cookies)
        }
        Err(WebhookError::Invalid { message, .. }) => back_with(
            &page(id),
            &Flash::failure("webhook", crate::http::routes::auth::capitalise(&message)),
            state.cookies,
        ),
        Err(error) => refused(error, (&page(id), "webhook"), &Posted(Vec::new()), &state),
    }
}

#[post("/webhook-endpoints/{id}/resend")]
async fn resend(
    EndpointAdmin(actor, id): EndpointAdmin,
    form: web::Form<Vec<(String, String)>>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let posted = Posted(form.into_inner());
    let Ok(delivery) = Uuid::parse_str(&posted.text("delivery")) else { return not_found() };
    match state.webhooks.resend(actor.tenant, id, delivery).await {
        Ok(()) => back_with(&page(id), &Flash::success("webhook", "The event is queued again."), state.cookies),
        Err(error) => refused(error, (&page(id), "webhook"), &posted, &state),
    }
}

#[post("/webhook-endpoints/{id}/delete")]
async fn delete(
    EndpointAdmin(actor, id): EndpointAdmin,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> HttpResponse {
    let endpoint = match state.webhooks.get(actor.tenant, id).await {
        Ok(endpoint) => endpoint,
        Err(error) => return refused(error, ("/webhooks", "webhooks"), &Posted(Vec::new()), &state),
    };
    if let Err(error) = state.webhooks.delete(actor.tenant, id).await {
        return refused(error, ("/webhooks", "webhooks"), &Posted(Vec::new()), &state);
    }
    if let Err(error) = record(&state.db, actor, AuditEvent::WebhookDeleted, &endpoint.url, &request).await {
        return unexpected("/webhooks", "webhooks", &error, state.cookies);
    }
    let flash = Flash::success("webhooks", format!("Endpoint {} removed.", endpoint.url));
    back_with("/webhooks", &flash, state.cookies)
}
