//! Cross-site request forgery defence for everything a browser can post to with our cookies (forms and
//! Leptos server functions): an unsafe request must come from one of our own origins. Browsers send
//! `Origin` on every cross-origin POST, and `Sec-Fetch-Site` on every request; a request with neither and a
//! session cookie is not a browser we can trust either. `/v1` (bearer keys), `/webhooks/stripe` (signatures)
//! and `/_node` (media nodes, with the node secret) carry no cookies and are exempt.

use actix_web::{
    Error, HttpResponse,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{Method, header},
    middleware::Next,
    web,
};

use convene_app::backend::SESSION_COOKIE;

/// The origins (`scheme://host:port`) our pages are served from.
#[derive(Debug, Clone)]
pub struct OwnOrigins(pub Vec<String>);

const EXEMPT_PREFIXES: [&str; 3] = ["/v1/", "/webhooks/stripe", "/_node/"];

/// Middleware: refuses unsafe cross-origin requests with 403.
pub async fn same_origin_only(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let exempt = EXEMPT_PREFIXES.iter().any(|prefix| request.path().starts_with(prefix));
    if safe || exempt || allowed(&request) {
        return next.call(request).await.map(ServiceResponse::map_into_boxed_body);
    }
    tracing::warn!(path = request.path(), "refused a cross-origin request");
    let response = HttpResponse::Forbidden()
        .content_type("text/plain; charset=utf-8")
        .body("This request did not come from a Convene page, so it was refused (cross-site request protection).");
    Ok(request.into_response(response))
}

fn allowed(request: &ServiceRequest) -> bool {
    let header_text = |name| request.headers().get(name).and_then(|value| value.to_str().ok());
    if let Some(origin) = header_text(header::ORIGIN) {
        let state = request.app_data::<web::Data<crate::http::AppState>>();
        return state.is_some_and(|state| state.origins.0.iter().any(|candidate| candidate == origin));
    }
    if let Some(site) = header_text(header::HeaderName::from_static("sec-fetch-site")) {
        return matches!(site, "same-origin" | "none");
    }
    request.cookie(SESSION_COOKIE).is_none()
}
