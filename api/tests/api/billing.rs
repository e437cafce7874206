//! Billing end to end: a fake Stripe in the process (`fake_stripe`), webhooks signed as Stripe signs them,
//! the real signalling WebSocket for limits, and the real database for state and the usage outbox.

use chrono::{Duration, Utc};
use convene_api::entities::{billing_account, billing_invoice, tenant, usage_period, usage_report};
use convene_domain::{RoomName, TenantId};
use reqwest::Method;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, sea_query::Expr};
use serde_json::{Value, json};

use crate::{
    fake_stripe::{self, FakeStripe, Mode},
    helpers::{TestApp, call, post_and_follow, sign_up, spawn_configured},
    signal::{Socket, hear, hello, say, token},
};

const PLANS: &str = r#"
default = "free"
grace_period_days = 7
meter_event_name = "participant_minutes"

[[plan]]
id = "free"
name = "Free"
participants_per_meeting = 2
concurrent_meetings = 1
included_minutes = 1000
recording = false
dial_in = false

[[plan]]
id = "pro"
name = "Pro"
price = "price_pro"
overage_price = "price_pro_minutes"
price_label = "$15 a month"
overage_label = "$0.004 a participant-minute"
participants_per_meeting = 3
concurrent_meetings = 2
included_minutes = 10
recording = true
dial_in = false
"#;

/// The plans file, written into a folder that lives as long as the test.
fn plans_file() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plans.toml");
    std::fs::write(&path, PLANS).unwrap();
    (dir, path)
}

/// An organisation signed up on the site: its owner's cookie, its id and an API key to mint room tokens.
struct Organisation {
    cookie: String,
    id: TenantId,
    key: String,
}

async fn organisation(app: &TestApp, name: &str, email: &str) -> Organisation {
    let cookie = sign_up(app, name, email).await;
    let db = app.db().await;
    let row = tenant::Entity::find().filter(tenant::Column::Name.eq(name)).one(&db).await.unwrap().unwrap();
    let id = TenantId::from(row.id);
    let key = convene_api::people::api_keys::create(&db, id, "backend").await.unwrap().api_key;
    Organisation { cookie, id, key }
}

/// An app with billing on against a fake Stripe, and an organisation "Acme" (the plans file lives as long as
/// the directory returned).
async fn billed(extra: &[(&'static str, String)]) -> (FakeStripe, TestApp, Organisation, tempfile::TempDir) {
    let stripe = FakeStripe::start().await;
    let (dir, plans) = plans_file();
    let mut settings = stripe.settings(&plans);
    settings.extend_from_slice(extra);
    let app = spawn_configured(&settings).await;
    let acme = organisation(&app, "Acme", "owner@acme.example").await;
    (stripe, app, acme, dir)
}

async fn billing_page(app: &TestApp, cookie: &str) -> String {
    let response = app.get_with_cookie("/billing", cookie).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

async fn account(app: &TestApp, tenant: TenantId) -> billing_account::Model {
    billing_account::Entity::find_by_id(tenant.as_uuid()).one(&app.db().await).await.unwrap().unwrap()
}

/// Delivers an event and answers how it was handled (`applied`, `duplicate`, `ignored`).
async fn deliver(app: &TestApp, event: &Value) -> String {
    let (status, body) = fake_stripe::deliver(&app.client, &app.address, event).await;
    assert_eq!(status, 200, "{body}");
    body["handled"].as_str().unwrap().to_owned()
}

fn subscription_event(id: &str, kind: &str, at: i64, (customer, tenant): (&str, TenantId), status: &str) -> Value {
    let period = (at, at + 30 * 86_400);
    let object = fake_stripe::subscription(
        "sub_1",
        customer,
        &tenant.to_string(),
        status,
        &["price_pro", "price_pro_minutes"],
        period,
    );
    fake_stripe::event(id, kind, at, object)
}

/// A moderator joins `room` over the signalling WebSocket; answers the socket and the first frame.
async fn join(app: &TestApp, key: &str, room: &str, name: &str) -> (Socket, Value) {
    let token = token(app, key, room, name, true).await;
    hello(app, room, &token).await
}

async fn chat_works(from: &mut Socket, to: &mut Socket, text: &str) {
    say(from, json!({ "type": "chat", "text": text })).await;
    loop {
        let heard = hear(to).await.expect("still connected");
        if heard["type"] == "chat" {
            assert_eq!(heard["text"], text);
            return;
        }
    }
}

#[tokio::test]
async fn the_subscription_lifecycle_follows_verified_webhooks_from_checkout_to_cancellation() {
    let (stripe, app, acme, _plans) = billed(&[]).await;

    let page = billing_page(&app, &acme.cookie).await;
    assert!(
        page.contains("Free plan") && page.contains("No subscription.") && page.contains("Upgrade to Pro"),
        "{page}"
    );

    // Checkout: subscription mode, the tenant as client_reference_id and in the subscription's metadata.
    let response = app.post_form("/billing/checkout", &[("plan", "pro")], Some(&acme.cookie)).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "https://checkout.stripe.com/c/pay/cs_test_1");
    let created = &stripe.requests("/v1/checkout/sessions")[0].form;
    let tenant = acme.id.to_string();
    for (field, value) in [
        ("mode", "subscription"),
        ("client_reference_id", tenant.as_str()),
        ("subscription_data[metadata][tenant_id]", tenant.as_str()),
        ("line_items[0][price]", "price_pro"),
        ("line_items[0][quantity]", "1"),
        ("line_items[1][price]", "price_pro_minutes"),
        ("customer_email", "owner@acme.example"),
        ("success_url", "http://localhost:3000/billing?checkout=success"),
    ] {
        assert_eq!(created.get(field).map(String::as_str), Some(value), "{field} in {created:?}");
    }
    assert!(!created.contains_key("line_items[1][quantity]"), "metered prices take no quantity");

    // Coming back from Checkout changes nothing: only Stripe's webhooks do.
    let back = app.get_with_cookie("/billing?checkout=success", &acme.cookie).await.text().await.unwrap();
    assert!(back.contains("Stripe is confirming the payment") && back.contains("Free plan"), "{back}");

    let start = Utc::now().timestamp() - 10 * 86_400;
    let session = json!({
        "id": "cs_test_1", "object": "checkout.session", "mode": "subscription", "status": "complete",
        "payment_status": "paid", "client_reference_id": tenant, "customer": "cus_acme", "subscription": "sub_1",
        "metadata": { "tenant_id": tenant },
    });
    let customer = ("cus_acme", acme.id);
    assert_eq!(
        deliver(&app, &fake_stripe::event("evt_1", "checkout.session.completed", start, session)).await,
        "applied"
    );
    let created = subscription_event("evt_2", "customer.subscription.created", start, customer, "incomplete");
    assert_eq!(deliver(&app, &created).await, "applied");
    assert!(billing_page(&app, &acme.cookie).await.contains("Free plan"), "incomplete is not paid for yet");
    let active = subscription_event("evt_3", "customer.subscription.updated", start + 5, customer, "active");
    assert_eq!(deliver(&app, &active).await, "applied");
    let page = billing_page(&app, &acme.cookie).await;
    assert!(page.contains("Pro plan") && page.contains("Subscription active."), "{page}");
    assert!(page.contains("Manage subscription"), "{page}");

    // The portal opens for the tenant's customer.
    let response = app.post_form("/billing/portal", &[], Some(&acme.cookie)).await;
    assert_eq!(response.headers()["location"], "https://billing.stripe.com/p/session/test_2");
    assert_eq!(stripe.requests("/v1/billing_portal/sessions")[0].form["customer"], "cus_acme");

    // A payment fails: meetings go on through the grace period.
    let failed_at = Utc::now().timestamp() - 86_400;
    let failed = fake_stripe::invoice("in_1", "cus_acme", &tenant, "open", 1500, failed_at);
    assert_eq!(
        deliver(&app, &fake_stripe::event("evt_4", "invoice.payment_failed", failed_at, failed)).await,
        "applied"
    );
    let past_due = subscription_event("evt_5", "customer.subscription.updated", failed_at, customer, "past_due");
    assert_eq!(deliver(&app, &past_due).await, "applied");
    let page = billing_page(&app, &acme.cookie).await;
    assert!(page.contains("Meetings keep working until"), "{page}");
    let (mut ann, welcome) = join(&app, &acme.key, "standup", "Ann").await;
    assert_eq!(welcome["type"], "welcome", "within the grace period: {welcome}");

    // A week later (the test moves the failure back in time) the grace period is over.
    let eight_days_ago = Utc::now() - Duration::days(8);
    billing_account::Entity::update_many()
        .col_expr(billing_account::Column::OverdueSince, Expr::value(eight_days_ago))
        .filter(billing_account::Column::TenantId.eq(acme.id.as_uuid()))
        .exec(&app.db().await)
        .await
        .unwrap();
    let (_, refused) = join(&app, &acme.key, "all-hands", "Cy").await;
    assert_eq!((refused["type"].as_str(), refused["reason"].as_str()), (Some("refused"), Some("payment_overdue")));
    assert!(refused["message"].as_str().unwrap().contains("meetings going on continue"), "{refused}");
    let (mut bob, welcome) = join(&app, &acme.key, "standup", "Bob").await;
    assert_eq!(welcome["type"], "welcome", "the meeting going on takes newcomers: {welcome}");
    chat_works(&mut ann, &mut bob, "still on").await;
    assert!(billing_page(&app, &acme.cookie).await.contains("The grace period ended on"));

    // Paid: new meetings start again, and the invoice is listed.
    let now = Utc::now().timestamp();
    let paid = fake_stripe::invoice("in_1", "cus_acme", &tenant, "paid", 1500, failed_at);
    assert_eq!(deliver(&app, &fake_stripe::event("evt_6", "invoice.paid", now, paid)).await, "applied");
    let recovered = subscription_event("evt_7", "customer.subscription.updated", now, customer, "active");
    assert_eq!(deliver(&app, &recovered).await, "applied");
    let (_all_hands, welcome) = join(&app, &acme.key, "all-hands", "Cy").await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let page = billing_page(&app, &acme.cookie).await;
    assert!(page.contains("CONV-in_1") && page.contains("USD 15.00") && page.contains(">paid<"), "{page}");
    assert!(!page.contains("A payment has been failing"), "{page}");

    // Cancelled: back on the free plan and its limits.
    drop((ann, bob, _all_hands));
    let deleted = subscription_event("evt_8", "customer.subscription.deleted", now + 1, customer, "canceled");
    assert_eq!(deliver(&app, &deleted).await, "applied");
    let page = billing_page(&app, &acme.cookie).await;
    assert!(page.contains("Free plan") && page.contains("Subscription cancelled."), "{page}");
    assert_eq!(account(&app, acme.id).await.stripe_customer_id.as_deref(), Some("cus_acme"), "the customer stays");
    app.stop().await;
}

#[tokio::test]
async fn webhooks_count_once_and_the_newest_state_wins_in_any_order() {
    let (_stripe, app, acme, _plans) = billed(&[]).await;
    // The organisation's own webhook hears of each change applied (to an address never reached).
    let endpoint = json!({ "url": "https://192.0.2.1/hooks", "events": ["subscription.updated"] });
    let (status, _) =
        crate::helpers::call(&app, reqwest::Method::POST, "/v1/webhooks", &acme.key, Some(endpoint)).await;
    assert_eq!(status, 201);
    let customer = ("cus_acme", acme.id);
    let tenant = acme.id.to_string();
    let t = Utc::now().timestamp() - 3_600;

    // The subscription's events arrive before Checkout's: its metadata names the tenant. Its activation,
    // in the same second as its creation, arrives before it.
    let active = subscription_event("evt_a", "customer.subscription.updated", t, customer, "active");
    assert_eq!(deliver(&app, &active).await, "applied");
    let created = subscription_event("evt_b", "customer.subscription.created", t, customer, "incomplete");
    assert_eq!(deliver(&app, &created).await, "ignored");
    assert_eq!(deliver(&app, &active).await, "duplicate");
    assert_eq!(account(&app, acme.id).await.subscription_status.as_deref(), Some("active"));

    // A late, older past_due loses to the newer active.
    let older = subscription_event("evt_c", "customer.subscription.updated", t - 60, customer, "past_due");
    assert_eq!(deliver(&app, &older).await, "ignored");
    let state = account(&app, acme.id).await;
    assert_eq!((state.subscription_status.as_deref(), state.overdue_since), (Some("active"), None));

    // A payment that succeeded outranks the failure Stripe delivers after it.
    let invoice = |status| fake_stripe::invoice("in_7", "cus_acme", &tenant, status, 2500, t);
    assert_eq!(deliver(&app, &fake_stripe::event("evt_d", "invoice.paid", t + 20, invoice("paid"))).await, "applied");
    let late_failure = fake_stripe::event("evt_e", "invoice.payment_failed", t + 10, invoice("open"));
    assert_eq!(deliver(&app, &late_failure).await, "ignored");
    assert_eq!(account(&app, acme.id).await.overdue_since, None);
    let page = billing_page(&app, &acme.cookie).await;
    assert!(page.contains("USD 25.00") && page.contains(">paid<"), "{page}");
    let invoices = billing_invoice::Entity::find().all(&app.db().await).await.unwrap();
    assert_eq!(invoices.len(), 1, "one invoice, however many events");

    // Once cancelled, a late update does not bring the subscription back.
    let deleted = subscription_event("evt_f", "customer.subscription.deleted", t + 30, customer, "canceled");
    assert_eq!(deliver(&app, &deleted).await, "applied");
    let late = subscription_event("evt_g", "customer.subscription.updated", t + 25, customer, "active");
    assert_eq!(deliver(&app, &late).await, "ignored");
    assert_eq!(account(&app, acme.id).await.subscription_status.as_deref(), Some("canceled"));

    // Two deliveries of one event at once: one effect, both answered 200.
    let failure = fake_stripe::event("evt_h", "invoice.payment_failed", t + 40, invoice("open"));
    let (first, second) = tokio::join!(deliver(&app, &failure), deliver(&app, &failure));
    let mut outcomes = [first, second];
    outcomes.sort();
    assert_eq!(outcomes, ["applied".to_owned(), "duplicate".to_owned()]);
    // One `subscription.updated` per subscription change applied: none for duplicates, ignored ones or invoices.
    let told: Vec<String> = convene_api::entities::webhook_message::Entity::find()
        .order_by_asc(convene_api::entities::webhook_message::Column::Id)
        .all(&app.db().await)
        .await
        .unwrap()
        .into_iter()
        .map(|message| {
            let body: Value = serde_json::from_str(&message.payload).unwrap();
            format!("{} {} {}", body["type"], body["data"]["status"], body["data"]["plan"])
        })
        .collect();
    assert_eq!(told, [r#""subscription.updated" "active" "pro""#, r#""subscription.updated" "canceled" "pro""#]);
    let metrics = app.metrics().await;
    for expected in [
        "convene_billing_webhooks_total{outcome=\"duplicate\"} 2",
        "convene_billing_webhooks_total{outcome=\"ignored\"} 4",
    ] {
        assert!(metrics.contains(expected), "{expected} in\n{metrics}");
    }
    app.stop().await;
}

#[tokio::test]
async fn bad_webhooks_are_refused_or_ignored_and_change_nothing() {
    let (_stripe, app, acme, _plans) = billed(&[]).await;
    let now = Utc::now().timestamp();
    let event = subscription_event("evt_x", "customer.subscription.created", now, ("cus_acme", acme.id), "active");
    let payload = event.to_string();
    let post =
        |payload: String, header: Option<String>| fake_stripe::post_webhook(&app.client, &app.address, payload, header);

    let cases = [
        (None, "the Stripe-Signature header is missing"),
        (Some("t=abc,v1=00".to_owned()), "malformed"),
        (Some(fake_stripe::signature(&payload, "whsec_someone_else", now)), "no signature matches"),
        (Some(fake_stripe::signature(&payload, fake_stripe::WEBHOOK_SECRET, now - 600)), "tolerance"),
        (
            Some(fake_stripe::signature(&format!("{payload} "), fake_stripe::WEBHOOK_SECRET, now)),
            "no signature matches",
        ),
    ];
    for (header, expected) in cases {
        let (status, body) = post(payload.clone(), header.clone()).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_signature")), "{header:?}: {body}");
        assert!(body["message"].as_str().unwrap().contains(expected), "{header:?}: {body}");
    }
    let garbage = "{\"id\": \"evt_y\", \"type\": ".to_owned();
    let (status, body) =
        post(garbage.clone(), Some(fake_stripe::signature(&garbage, fake_stripe::WEBHOOK_SECRET, now))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("malformed_event")), "{body}");
    let shapeless = fake_stripe::event("evt_z", "customer.subscription.updated", now, json!({ "id": "sub_1" }));
    let (status, body) = fake_stripe::deliver(&app.client, &app.address, &shapeless).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("malformed_event")), "{body}");
    assert!(billing_account::Entity::find().all(&app.db().await).await.unwrap().is_empty(), "nothing changed");

    // Events we do not use, or for no tenant of ours, are answered 200 so Stripe stops sending them.
    let unused = fake_stripe::event("evt_1", "charge.refunded", now, json!({ "id": "ch_1", "object": "charge" }));
    assert_eq!(deliver(&app, &unused).await, "ignored");
    let stranger = fake_stripe::event(
        "evt_2",
        "customer.subscription.created",
        now,
        fake_stripe::subscription("sub_9", "cus_stranger", "not-a-tenant", "active", &["price_pro"], (now, now + 1)),
    );
    assert_eq!(deliver(&app, &stranger).await, "ignored");
    let nobody = TenantId::from(uuid::Uuid::new_v4()).to_string();
    let session = json!({ "id": "cs_1", "mode": "subscription", "client_reference_id": nobody, "customer": "cus_9" });
    assert_eq!(
        deliver(&app, &fake_stripe::event("evt_3", "checkout.session.completed", now, session)).await,
        "ignored"
    );
    let invoice = fake_stripe::invoice("in_9", "cus_stranger", "nobody", "paid", 100, now);
    assert_eq!(deliver(&app, &fake_stripe::event("evt_4", "invoice.paid", now, invoice)).await, "ignored");
    assert!(billing_account::Entity::find().all(&app.db().await).await.unwrap().is_empty(), "nothing changed");
    let metrics = app.metrics().await;
    for expected in [
        "convene_billing_webhooks_total{outcome=\"invalid_signature\"} 5",
        "convene_billing_webhooks_total{outcome=\"malformed\"} 2",
    ] {
        assert!(metrics.contains(expected), "{expected} in\n{metrics}");
    }
    app.stop().await;

    // Without a webhook secret there is nothing to verify with: the endpoint says billing is off.
    let off = spawn_configured(&[]).await;
    let (status, body) = fake_stripe::deliver(&off.client, &off.address, &event).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("billing_disabled")), "{body}");
    off.stop().await;
}

/// Waits until `ready` holds, for up to ten seconds.
async fn until(what: &str, ready: impl AsyncFn() -> bool) {
    for _ in 0..100 {
        if ready().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} never happened");
}

#[tokio::test]
async fn overage_reaches_stripe_once_through_an_outage_and_a_restart() {
    let (stripe, mut app, acme, _plans) = billed(&[("CONVENE_USAGE_REPORT_SECS", "1".to_owned())]).await;
    let now = Utc::now();
    let customer = ("cus_acme", acme.id);
    let subscribed =
        subscription_event("evt_1", "customer.subscription.created", now.timestamp() - 3_600, customer, "active");
    assert_eq!(deliver(&app, &subscribed).await, "applied");

    // Stripe is down while three people meet for ten minutes: 30 participant-minutes, 20 beyond Pro's 10.
    stripe.set_mode(Mode::Down);
    let db = app.db().await;
    let room = RoomName::parse("standup").unwrap();
    let (joined, left) = (now - Duration::minutes(12), now - Duration::minutes(2));
    for person in ["ann", "bob", "cy"] {
        convene_api::meetings::room_sessions::participant_joined(
            &db,
            "node-a",
            acme.id,
            &room,
            (person, person, false, None),
            joined,
        )
        .await
        .unwrap();
    }
    for person in ["ann", "bob", "cy"] {
        convene_api::meetings::room_sessions::participant_left(&db, "node-a", acme.id, &room, person, left)
            .await
            .unwrap();
    }
    let pending =
        async || usage_report::Entity::find().filter(usage_report::Column::Attempts.gt(0)).all(&db).await.unwrap();
    until("a failed attempt", async || !pending().await.is_empty()).await;
    let queued = pending().await;
    assert_eq!((queued.len(), queued[0].minutes, queued[0].sent_at), (1, 20, None), "{queued:?}");
    let identifier = queued[0].identifier.clone();
    assert!(stripe.meter_events().is_empty());

    // A restart, and then Stripe takes the event but its answer is lost: the retry carries the same
    // identifier, so Stripe counts it once.
    app.restart().await;
    stripe.set_mode(Mode::LoseNextAnswer);
    until("delivery", async || {
        usage_report::Entity::find_by_id(queued[0].id).one(&db).await.unwrap().unwrap().sent_at.is_some()
    })
    .await;
    let attempts = stripe.requests("/v1/billing/meter_events");
    assert!(attempts.len() >= 3, "down, lost, delivered: {attempts:?}");
    assert!(attempts.iter().all(|attempt| attempt.form["identifier"] == identifier), "{attempts:?}");
    assert!(attempts.iter().all(|attempt| attempt.idempotency_key.as_deref() == Some(identifier.as_str())));
    assert_eq!(attempts[0].form["event_name"], "participant_minutes");
    assert_eq!(stripe.meter_events(), [(identifier.clone(), ("cus_acme".to_owned(), 20))].into());

    // Five more minutes: one more event of five, and the period's total is right.
    convene_api::meetings::room_sessions::participant_joined(
        &db,
        "node-a",
        acme.id,
        &room,
        ("dan", "Dan", false, None),
        left,
    )
    .await
    .unwrap();
    convene_api::meetings::room_sessions::participant_left(
        &db,
        "node-a",
        acme.id,
        &room,
        "dan",
        left + Duration::minutes(5),
    )
    .await
    .unwrap();
    until("the second event", async || stripe.meter_events().len() == 2).await;
    let billed: i64 = stripe.meter_events().values().map(|(_, value)| value).sum();
    assert_eq!(billed, 25);
    let periods = usage_period::Entity::find().all(&db).await.unwrap();
    assert_eq!((periods.len(), periods[0].minutes, periods[0].overage_reported), (1, 35, 25));
    // Since the restart: two events delivered, and the outbox is empty once the round has looked.
    let expected = [
        "convene_billing_meter_events_total{outcome=\"delivered\"} 2",
        "convene_billing_usage_reports{state=\"pending\"} 0",
        "convene_billing_usage_reports{state=\"failed\"} 0",
    ];
    until("the metrics", async || {
        let metrics = app.metrics().await;
        expected.iter().all(|line| metrics.contains(line))
    })
    .await;
    let page = billing_page(&app, &acme.cookie).await;
    assert!(page.contains("35 of 10 participant-minutes") && page.contains("25 beyond the included"), "{page}");
    app.stop().await;
}

#[tokio::test]
async fn plan_limits_refuse_at_join_with_words_saying_which_and_billing_off_calls_no_stripe() {
    let (_dir, plans) = plans_file();
    // Billing off: the plans file's free plan applies to everyone.
    let app = spawn_configured(&[("CONVENE_PLANS", plans.display().to_string())]).await;
    let acme = organisation(&app, "Acme", "owner@acme.example").await;
    let globex = organisation(&app, "Globex", "owner@globex.example").await;

    let (mut ann, welcome) = join(&app, &acme.key, "standup", "Ann").await;
    assert_eq!(welcome["type"], "welcome");
    let (mut bob, _) = join(&app, &acme.key, "standup", "Bob").await;
    let (_, full) = join(&app, &acme.key, "standup", "Cy").await;
    assert_eq!((full["type"].as_str(), full["reason"].as_str()), (Some("refused"), Some("plan_limit")), "{full}");
    let words = full["message"].as_str().unwrap();
    assert!(words.contains("2 participants") && words.contains("Free plan"), "{words}");
    let (_, busy) = join(&app, &acme.key, "retro", "Dee").await;
    assert_eq!(busy["reason"], "plan_limit", "{busy}");
    assert!(busy["message"].as_str().unwrap().contains("allows 1 meeting at a time"), "{busy}");
    chat_works(&mut ann, &mut bob, "refusals cut no one").await;
    let (_other, welcome) = join(&app, &globex.key, "retro", "Eve").await;
    assert_eq!(welcome["type"], "welcome", "another organisation's meetings are its own: {welcome}");

    // The free plan's minutes are a cap: used up, no new meeting starts until the next period.
    // Leaving, as clients do (a dropped connection would count as present for the resume grace), and
    // reading to the end: a socket closed with frames unread is reset, which can lose the `leave`.
    for socket in [&mut ann, &mut bob] {
        say(socket, json!({ "type": "leave" })).await;
        while hear(socket).await.is_some() {}
    }
    drop((ann, bob));
    let db = app.db().await;
    until("the meeting to end", async || {
        let (_, presence) = call(&app, Method::GET, "/v1/rooms/standup/presence", &acme.key, None).await;
        presence["participants"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    let page = billing_page(&app, &acme.cookie).await;
    assert!(page.contains("This server takes no payments") && !page.contains("Upgrade to"), "{page}");
    let start = usage_period_start(&page);
    usage_period::Entity::insert(usage_period::ActiveModel {
        tenant_id: sea_orm::Set(acme.id.as_uuid()),
        period_start: sea_orm::Set(start),
        minutes: sea_orm::Set(1000),
        overage_reported: sea_orm::Set(0),
    })
    .exec(&db)
    .await
    .unwrap();
    let (_, capped) = join(&app, &acme.key, "standup", "Ann").await;
    assert_eq!(capped["reason"], "plan_limit", "{capped}");
    assert!(capped["message"].as_str().unwrap().contains("used the 1000 participant-minutes"), "{capped}");
    let (_, welcome) = join(&app, &globex.key, "retro", "Fay").await;
    assert_eq!(welcome["type"], "welcome", "another organisation's minutes are its own: {welcome}");

    // Billing off: Checkout is not offered and posting to it says so.
    let page = post_and_follow(&app, "/billing/checkout", &[("plan", "pro")], &acme.cookie).await;
    assert!(page.contains("Billing is not enabled on this server."), "{page}");
    app.stop().await;
}

/// The period start the billing page shows (`Current period: 2026-12-01 to …`), as the table stores it.
fn usage_period_start(page: &str) -> chrono::DateTime<Utc> {
    let day = page.split("Current period: ").nth(1).unwrap().get(..10).unwrap();
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc()
}

#[tokio::test]
async fn only_owners_reach_billing_and_each_organisation_sees_its_own() {
    let (stripe, app, acme, _plans) = billed(&[]).await;
    let globex = organisation(&app, "Globex", "owner@globex.example").await;
    let now = Utc::now().timestamp();
    let invoice = fake_stripe::invoice("in_acme", "cus_acme", &acme.id.to_string(), "paid", 1500, now);
    assert_eq!(deliver(&app, &fake_stripe::event("evt_1", "invoice.paid", now, invoice)).await, "applied");
    assert!(billing_page(&app, &acme.cookie).await.contains("CONV-in_acme"));
    assert!(!billing_page(&app, &globex.cookie).await.contains("CONV-in_acme"), "invoices are per organisation");

    let admin = crate::helpers::invite_and_accept(&app, &acme.cookie, "admin@acme.example", "admin").await;
    assert_eq!(app.get_with_cookie("/billing", &admin).await.status(), 403);
    assert_eq!(app.post_form("/billing/checkout", &[("plan", "pro")], Some(&admin)).await.status(), 403);
    assert_eq!(app.post_form("/billing/portal", &[], Some(&admin)).await.status(), 403);
    let response = app.get("/billing").await;
    assert_eq!(
        (response.status().as_u16(), response.headers()["location"].to_str().unwrap()),
        (302, "/login?next=%2Fbilling")
    );

    // Refusals say what to do, and charge nothing.
    let page = post_and_follow(&app, "/billing/portal", &[], &globex.cookie).await;
    assert!(page.contains("The organisation has no subscription yet."), "{page}");
    let page = post_and_follow(&app, "/billing/checkout", &[("plan", "free")], &globex.cookie).await;
    assert!(page.contains("There is no such plan to buy."), "{page}");
    stripe.set_mode(Mode::Down);
    let page = post_and_follow(&app, "/billing/checkout", &[("plan", "pro")], &globex.cookie).await;
    assert!(page.contains("Stripe cannot be reached right now"), "{page}");
    app.stop().await;
}
