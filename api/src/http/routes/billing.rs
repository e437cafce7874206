//! The billing page's forms (Checkout and the Customer Portal, owners only) and Stripe's webhook
//! endpoint. Handlers parse and map; the rules are in `billing`.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, post, web};
use convene_app::forms::Flash;
use serde::Deserialize;

use crate::{
    billing::{
        BillingError, WebhookRefusal,
        stripe::StripeFailure,
        webhooks::{Outcome, WebhookError},
    },
    http::AppState,
    http::routes::{
        auth::{CookiePolicy, back_with, capitalise, see_other, unexpected},
        team::{SignedIn, forbidden},
    },
};

/// Registers the endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(checkout).service(portal).service(stripe_webhook);
}

#[derive(Deserialize)]
struct PlanForm {
    plan: String,
}

/// Where a refused billing action lands: the billing page, saying what to do.
fn refused(error: BillingError, policy: CookiePolicy) -> HttpResponse {
    let message = match error {
        BillingError::Forbidden => return forbidden(),
        BillingError::Database(error) => return unexpected("/billing", "billing", &error, policy),
        BillingError::Stripe(StripeFailure::Unavailable(error)) => {
            tracing::warn!(%error, "Stripe is unreachable for a billing action");
            "Stripe cannot be reached right now, and nothing was charged. Please try again in a moment.".to_owned()
        }
        BillingError::Stripe(refusal @ StripeFailure::Refused { .. }) => {
            tracing::error!(%refusal, "Stripe refused a billing action; check the plans' Stripe prices");
            "Stripe did not accept the request, and nothing was charged. The server's log says why.".to_owned()
        }
        other => capitalise(&other.to_string()),
    };
    back_with("/billing", &Flash::failure("billing", message), policy)
}

#[post("/billing/checkout")]
async fn checkout(SignedIn(actor): SignedIn, form: web::Form<PlanForm>, state: web::Data<AppState>) -> HttpResponse {
    match state.billing.checkout(actor, form.plan.trim()).await {
        Ok(url) => see_other(url.as_str()).finish(),
        Err(error) => refused(error, state.cookies),
    }
}

#[post("/billing/portal")]
async fn portal(SignedIn(actor): SignedIn, state: web::Data<AppState>) -> HttpResponse {
    match state.billing.portal(actor).await {
        Ok(url) => see_other(url.as_str()).finish(),
        Err(error) => refused(error, state.cookies),
    }
}

fn answer(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({ "error": code, "message": message }))
}

/// Stripe's webhooks. A bad signature or an unreadable event is a 400, which no retry fixes; events we do
/// not use, or for customers we do not know, are a 200 so Stripe stops sending them; only a database failure
/// is a 503, for Stripe to try again later.
#[post("/webhooks/stripe")]
async fn stripe_webhook(request: HttpRequest, body: web::Bytes, state: web::Data<AppState>) -> HttpResponse {
    let signature = request.headers().get("stripe-signature").and_then(|value| value.to_str().ok());
    match state.billing.webhook(&body, signature).await {
        Ok(outcome) => {
            let (handled, detail) = match outcome {
                Outcome::Applied(what) => ("applied", what),
                Outcome::Duplicate => ("duplicate", "handled before".to_owned()),
                Outcome::Ignored(why) => ("ignored", why),
            };
            tracing::info!(handled, detail, "Stripe webhook");
            HttpResponse::Ok().json(serde_json::json!({ "received": true, "handled": handled, "detail": detail }))
        }
        Err(WebhookRefusal::Disabled) => {
            tracing::warn!("a Stripe webhook arrived, but CONVENE_STRIPE_WEBHOOK_SECRET is not set");
            answer(StatusCode::NOT_FOUND, "billing_disabled", &WebhookRefusal::Disabled.to_string())
        }
        Err(WebhookRefusal::Signature(error)) => {
            tracing::warn!(%error, "a Stripe webhook was refused");
            answer(StatusCode::BAD_REQUEST, "invalid_signature", &error.to_string())
        }
        Err(WebhookRefusal::Event(error @ WebhookError::Malformed(_))) => {
            tracing::warn!(%error, "a signed Stripe webhook could not be read");
            answer(StatusCode::BAD_REQUEST, "malformed_event", &error.to_string())
        }
        Err(WebhookRefusal::Event(WebhookError::Database(error))) => {
            tracing::error!(%error, "a Stripe webhook could not be stored; Stripe will retry");
            answer(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again later")
        }
    }
}
