//! A fake Stripe inside the test process: an actix server on port 0 that answers the endpoints Convene
//! calls with Stripe's current wire format (form-encoded requests with a bearer secret key, JSON objects
//! with `object` fields, errors as `{"error":{"type","code","message"}}`), records every request, and can
//! be told to be down or to lose its answers. Meter events are deduplicated by `identifier`, as Stripe does.
//! Webhooks are signed as Stripe signs them.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

pub const SECRET_KEY: &str = "sk_test_convene";
pub const WEBHOOK_SECRET: &str = "whsec_convene_test";

/// How the fake behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers like Stripe.
    Up,
    /// Every call fails with a 503 (an outage).
    Down,
    /// Takes the next call, then answers 500 as if the answer was lost on the way; then `Up`.
    LoseNextAnswer,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub form: BTreeMap<String, String>,
    pub idempotency_key: Option<String>,
    /// Whether the fake took it (answered 200, or took it and lost the answer).
    pub taken: bool,
}

#[derive(Default)]
struct State {
    mode: Option<Mode>,
    requests: Vec<Recorded>,
    /// Meter events Stripe would bill: one per identifier.
    meter_events: BTreeMap<String, (String, i64)>,
    sessions: u64,
}

#[derive(Clone)]
pub struct FakeStripe {
    pub base: String,
    state: Arc<Mutex<State>>,
}

fn error(status: u16, kind: &str, code: &str, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).unwrap();
    HttpResponse::build(status).json(json!({ "error": { "type": kind, "code": code, "message": message } }))
}

impl FakeStripe {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = web::Data::new(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = HttpServer::new(move || App::new().app_data(shared.clone()).default_service(web::to(answer)))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
        tokio::spawn(server);
        Self { base, state }
    }

    /// The settings that point Convene at this fake, with billing on.
    pub fn settings(&self, plans: &std::path::Path) -> Vec<(&'static str, String)> {
        vec![
            ("CONVENE_STRIPE_SECRET_KEY", SECRET_KEY.to_owned()),
            ("CONVENE_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
            ("CONVENE_STRIPE_API_BASE", self.base.clone()),
            ("CONVENE_PLANS", plans.display().to_string()),
        ]
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = Some(mode);
    }

    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.iter().filter(|request| request.path == path).cloned().collect()
    }

    /// The meter events Stripe would bill, by identifier: (customer, value).
    pub fn meter_events(&self) -> BTreeMap<String, (String, i64)> {
        self.state.lock().unwrap().meter_events.clone()
    }
}

async fn answer(request: HttpRequest, body: web::Bytes, state: web::Data<Arc<Mutex<State>>>) -> HttpResponse {
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let path = request.path().to_owned();
    let idempotency_key =
        request.headers().get("idempotency-key").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let authorised = request.headers().get("authorization").and_then(|value| value.to_str().ok())
        == Some(&format!("Bearer {SECRET_KEY}"));
    let mut state = state.lock().unwrap();
    let mode = state.mode.unwrap_or(Mode::Up);
    let mut recorded = Recorded { path: path.clone(), form: form.clone(), idempotency_key, taken: false };
    if mode == Mode::Down {
        state.requests.push(recorded);
        return error(503, "api_error", "service_unavailable", "Stripe is down (fake)");
    }
    if !authorised {
        state.requests.push(recorded);
        return error(401, "invalid_request_error", "api_key_invalid", "Invalid API Key provided");
    }
    let now = chrono::Utc::now().timestamp();
    let response = match (request.method().as_str(), path.as_str()) {
        ("POST", "/v1/checkout/sessions") => {
            if form.get("line_items[0][price]").is_none_or(|price| !price.starts_with("price_")) {
                error(400, "invalid_request_error", "resource_missing", "No such price")
            } else {
                state.sessions += 1;
                let id = format!("cs_test_{}", state.sessions);
                HttpResponse::Ok().json(checkout_session(&id, &form, now))
            }
        }
        ("POST", "/v1/billing_portal/sessions") => match form.get("customer") {
            Some(customer) => {
                state.sessions += 1;
                HttpResponse::Ok().json(json!({
                    "id": format!("bps_{}", state.sessions), "object": "billing_portal.session",
                    "configuration": "bpc_1", "created": now, "customer": customer, "flow": null,
                    "livemode": false, "locale": null, "on_behalf_of": null,
                    "return_url": form.get("return_url"),
                    "url": format!("https://billing.stripe.com/p/session/test_{}", state.sessions),
                }))
            }
            None => error(400, "invalid_request_error", "parameter_missing", "Missing required param: customer."),
        },
        ("POST", "/v1/billing/meter_events") => {
            let (Some(customer), Some(value), Some(identifier)) = (
                form.get("payload[stripe_customer_id]"),
                form.get("payload[value]").and_then(|value| value.parse::<i64>().ok()),
                form.get("identifier"),
            ) else {
                state.requests.push(recorded);
                return error(400, "invalid_request_error", "parameter_missing", "Missing payload or identifier.");
            };
            // Stripe accepts a repeated identifier and bills it once.
            state.meter_events.entry(identifier.clone()).or_insert((customer.clone(), value));
            HttpResponse::Ok().json(json!({
                "object": "billing.meter_event", "created": now, "event_name": form.get("event_name"),
                "identifier": identifier, "livemode": false,
                "payload": { "stripe_customer_id": customer, "value": value.to_string() },
                "timestamp": form.get("timestamp").and_then(|t| t.parse::<i64>().ok()).unwrap_or(now),
            }))
        }
        _ => error(404, "invalid_request_error", "resource_missing", &format!("Unrecognized request URL ({path})")),
    };
    recorded.taken = response.status().is_success();
    state.requests.push(recorded);
    if mode == Mode::LoseNextAnswer && response.status().is_success() {
        state.mode = Some(Mode::Up);
        return error(500, "api_error", "", "An unknown error occurred (the answer was lost)");
    }
    response
}

/// A Checkout Session as Stripe answers its creation (API version 2026).
fn checkout_session(id: &str, form: &BTreeMap<String, String>, now: i64) -> Value {
    json!({
        "id": id, "object": "checkout.session", "adaptive_pricing": null, "after_expiration": null,
        "allow_promotion_codes": null, "amount_subtotal": 1500, "amount_total": 1500,
        "automatic_tax": { "enabled": false, "liability": null, "provider": null, "status": null },
        "billing_address_collection": null, "cancel_url": form.get("cancel_url"),
        "client_reference_id": form.get("client_reference_id"), "client_secret": null,
        "collected_information": null, "consent": null, "consent_collection": null, "created": now,
        "currency": "usd", "currency_conversion": null, "custom_fields": [],
        "custom_text": { "after_submit": null, "shipping_address": null, "submit": null,
                         "terms_of_service_acceptance": null },
        "customer": form.get("customer"), "customer_creation": null, "customer_details": null,
        "customer_email": form.get("customer_email"), "discounts": [], "expires_at": now + 86_400,
        "invoice": null, "invoice_creation": null, "livemode": false, "locale": null,
        "metadata": { "tenant_id": form.get("metadata[tenant_id]") }, "mode": "subscription",
        "payment_intent": null, "payment_link": null, "payment_method_collection": "always",
        "payment_method_configuration_details": null, "payment_method_options": {},
        "payment_method_types": ["card"], "payment_status": "unpaid", "phone_number_collection": null,
        "recovered_from": null, "saved_payment_method_options": null, "setup_intent": null,
        "shipping_address_collection": null, "shipping_cost": null, "shipping_options": [],
        "status": "open", "submit_type": null, "subscription": null, "success_url": form.get("success_url"),
        "total_details": { "amount_discount": 0, "amount_shipping": 0, "amount_tax": 0 },
        "ui_mode": "hosted", "url": format!("https://checkout.stripe.com/c/pay/{id}"),
    })
}

/// `Stripe-Signature` for `payload` signed at `timestamp` with `secret`, exactly as Stripe computes it.
pub fn signature(payload: &str, secret: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{payload}").as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|byte| format!("{byte:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// A webhook event envelope as Stripe sends it.
pub fn event(id: &str, kind: &str, created: i64, object: Value) -> Value {
    let mut event = json!({
        "id": id, "object": "event", "api_version": "2026-06-24.dahlia", "created": created,
        "data": { "object": null }, "livemode": false, "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null }, "type": kind,
    });
    event["data"]["object"] = object;
    event
}

/// A subscription object (current API: the period is on each item).
pub fn subscription(
    id: &str,
    customer: &str,
    tenant: &str,
    status: &str,
    prices: &[&str],
    period: (i64, i64),
) -> Value {
    let items: Vec<Value> = prices
        .iter()
        .enumerate()
        .map(|(index, price)| {
            json!({
                "id": format!("si_{id}_{index}"), "object": "subscription_item", "created": period.0,
                "current_period_start": period.0, "current_period_end": period.1, "metadata": {},
                "price": { "id": price, "object": "price", "active": true, "currency": "usd",
                           "recurring": { "interval": "month", "interval_count": 1,
                                          "usage_type": if index == 0 { "licensed" } else { "metered" } } },
                "quantity": if index == 0 { json!(1) } else { Value::Null }, "subscription": id,
            })
        })
        .collect();
    json!({
        "id": id, "object": "subscription", "billing_cycle_anchor": period.0, "cancel_at": null,
        "cancel_at_period_end": false, "canceled_at": null, "collection_method": "charge_automatically",
        "created": period.0, "currency": "usd", "customer": customer, "ended_at": null,
        "items": { "object": "list", "data": items, "has_more": false, "url": format!("/v1/subscription_items?subscription={id}") },
        "latest_invoice": null, "livemode": false, "metadata": { "tenant_id": tenant }, "start_date": period.0,
        "status": status,
    })
}

/// An invoice object of a subscription.
pub fn invoice(id: &str, customer: &str, tenant: &str, status: &str, amount: i64, created: i64) -> Value {
    json!({
        "id": id, "object": "invoice", "amount_due": amount,
        "amount_paid": if status == "paid" { amount } else { 0 }, "amount_remaining": if status == "paid" { 0 } else { amount },
        "attempt_count": 1, "billing_reason": "subscription_cycle", "collection_method": "charge_automatically",
        "created": created, "currency": "usd", "customer": customer,
        "hosted_invoice_url": format!("https://invoice.stripe.com/i/{id}"), "livemode": false,
        "number": format!("CONV-{id}"),
        "parent": { "type": "subscription_details", "quote_details": null,
                    "subscription_details": { "metadata": { "tenant_id": tenant }, "subscription": "sub_1" } },
        "period_end": created, "period_start": created - 2_592_000, "status": status,
    })
}

/// Posts an event to the app's webhook, signed now; answers the status and the JSON body.
pub async fn deliver(client: &reqwest::Client, address: &str, event: &Value) -> (u16, Value) {
    let payload = event.to_string();
    let header = signature(&payload, WEBHOOK_SECRET, chrono::Utc::now().timestamp());
    post_webhook(client, address, payload, Some(header)).await
}

/// Posts a raw body with an optional signature header.
pub async fn post_webhook(
    client: &reqwest::Client,
    address: &str,
    payload: String,
    header: Option<String>,
) -> (u16, Value) {
    let mut request =
        client.post(format!("{address}/webhooks/stripe")).header("content-type", "application/json").body(payload);
    if let Some(header) = header {
        request = request.header("stripe-signature", header);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}
