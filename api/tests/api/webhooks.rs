//! Webhooks end to end: endpoints made through `/v1/webhooks`, events from real meetings (people joining
//! and leaving over the signalling socket), a real HTTP receiver in the test, and every delivery's signature
//! checked by the Standard Webhooks reference library from PyPI (`standardwebhooks`), not by our code.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, call, spawn_configured, tenant_key},
    signal::{hello, say, token},
};

const PATIENCE: Duration = Duration::from_secs(30);

/// What the receiver got: each request's headers and body, in order.
#[derive(Clone, Default)]
pub(crate) struct Inbox {
    received: Arc<Mutex<Vec<Value>>>,
    /// The statuses to answer, in turn; 200 once they run out.
    answers: Arc<Mutex<VecDeque<u16>>>,
}

async fn receive(request: HttpRequest, body: String, inbox: web::Data<Inbox>) -> HttpResponse {
    let headers: serde_json::Map<String, Value> = request
        .headers()
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), Value::from(value.to_str().unwrap_or_default())))
        .collect();
    inbox.received.lock().unwrap().push(json!({ "headers": headers, "body": body }));
    let status = inbox.answers.lock().unwrap().pop_front().unwrap_or(200);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).body("thanks")
}

/// A receiver on `port` of loopback, until dropped.
pub(crate) struct Receiver(actix_web::dev::ServerHandle);

impl Receiver {
    fn start(port: u16, inbox: &Inbox) -> Self {
        let data = web::Data::new(inbox.clone());
        let server = HttpServer::new(move || App::new().app_data(data.clone()).default_service(web::to(receive)))
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", port))
            .expect("the receiver's port is free again")
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self(handle)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let handle = self.0.clone();
        tokio::spawn(async move { handle.stop(false).await });
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn until<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    crate::helpers::eventually(what, PATIENCE, check).await
}

/// Checks every received delivery with the reference library; fails on any it does not accept.
fn verified_by_the_reference_library(secret: &str, received: &[Value]) {
    let script = "
import json, sys
from standardwebhooks.webhooks import Webhook
hook = Webhook(sys.argv[1])
for delivery in json.load(sys.stdin):
    hook.verify(delivery['body'], delivery['headers'])
";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script, secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (cargo xtask test installs standardwebhooks)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(Value::from(received.to_vec()).to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the reference library refused a delivery: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn app() -> (TestApp, String) {
    let app = spawn_configured(&[("CONVENE_WEBHOOKS_ALLOW_LOOPBACK", "1".to_owned())]).await;
    let key = tenant_key(&app, "owner@acme.example").await;
    (app, key)
}

async fn endpoint(app: &TestApp, key: &str, url: &str, events: &[&str]) -> (String, String) {
    let (status, created) =
        call(app, Method::POST, "/v1/webhooks", key, Some(json!({ "url": url, "events": events }))).await;
    assert_eq!(status, 201, "{created}");
    (created["endpoint"]["id"].as_str().unwrap().to_owned(), created["secret"].as_str().unwrap().to_owned())
}

/// A receiver on loopback, and an endpoint of the tenant behind `key` that sends it `events` (the app must
/// allow loopback webhooks); the receiver stops when dropped.
pub(crate) async fn listening_endpoint(app: &TestApp, key: &str, events: &[&str]) -> (Inbox, Receiver) {
    let port = free_port();
    let inbox = Inbox::default();
    let receiver = Receiver::start(port, &inbox);
    endpoint(app, key, &format!("http://127.0.0.1:{port}/hooks"), events).await;
    (inbox, receiver)
}

/// The bodies of the first `count` deliveries, once they arrived.
pub(crate) async fn delivered(inbox: &Inbox, count: usize) -> Vec<Value> {
    until("the deliveries", async || (inbox.received.lock().unwrap().len() >= count).then_some(())).await;
    let received = inbox.received.lock().unwrap().clone();
    received.iter().map(|delivery| serde_json::from_str(delivery["body"].as_str().unwrap()).unwrap()).collect()
}

fn types(received: &[Value]) -> Vec<String> {
    received
        .iter()
        .map(|delivery| {
            let body: Value = serde_json::from_str(delivery["body"].as_str().unwrap()).unwrap();
            format!("{} {}", body["type"].as_str().unwrap(), body["data"]["participant"]["name"].as_str().unwrap_or(""))
        })
        .collect()
}

#[tokio::test]
async fn events_arrive_once_in_order_and_signed_after_the_receiver_was_down() {
    let (app, key) = app().await;
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hooks");
    let events = ["meeting.started", "meeting.ended", "participant.joined", "participant.left"];
    let (id, secret) = endpoint(&app, &key, &url, &events).await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let (status, shown) = call(&app, Method::GET, &format!("/v1/webhooks/{id}"), &key, None).await;
    assert_eq!((status, shown.get("secret")), (200, None), "the secret is shown only once: {shown}");

    // The receiver is down while a meeting happens: Ann opens it, Bob comes and goes, Ann leaves.
    let ann = token(&app, &key, "standup", "Ann", true).await;
    let (mut ann, _) = hello(&app, "standup", &ann).await;
    let bob = token(&app, &key, "standup", "Bob", false).await;
    let (mut bob, _) = hello(&app, "standup", &bob).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    say(&mut bob, json!({ "type": "leave" })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    say(&mut ann, json!({ "type": "leave" })).await;
    let log = format!("/v1/webhooks/{id}/deliveries");
    let refused = until("a try that found the receiver down", async || {
        let (_, log) = call(&app, Method::GET, &log, &key, None).await;
        log["attempts"].as_array().and_then(|attempts| attempts.first().cloned())
    })
    .await;
    assert_eq!(
        (refused["status"].clone(), refused["delivery_state"].as_str()),
        (Value::Null, Some("pending")),
        "{refused}"
    );

    // It comes back: the retry gets through, and every event follows, once each, in order.
    let inbox = Inbox::default();
    let _receiver = Receiver::start(port, &inbox);
    until("six events delivered", async || (inbox.received.lock().unwrap().len() >= 6).then_some(())).await;
    // A moment more, for anything delivered twice to show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let received = inbox.received.lock().unwrap().clone();
    assert_eq!(
        types(&received),
        [
            "meeting.started ",
            "participant.joined Ann",
            "participant.joined Bob",
            "participant.left Bob",
            "participant.left Ann",
            "meeting.ended "
        ]
    );
    let mut ids: Vec<&str> =
        received.iter().map(|delivery| delivery["headers"]["webhook-id"].as_str().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 6, "each event once: {ids:?}");
    verified_by_the_reference_library(&secret, &received);
    let body: Value = serde_json::from_str(received[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (body["data"]["room"].as_str(), body["data"]["participant"]["moderator"].as_bool()),
        (Some("standup"), Some(true))
    );

    // With the receiver up, an event reaches it within moments (the figure the note records).
    let mut latencies = Vec::new();
    for round in 0..5 {
        let before = inbox.received.lock().unwrap().len();
        let cy = token(&app, &key, "standup", &format!("Cy {round}"), false).await;
        let started = Instant::now();
        let (mut cy, _) = hello(&app, "standup", &cy).await;
        until("the join delivered", async || (inbox.received.lock().unwrap().len() >= before + 2).then_some(())).await;
        latencies.push(started.elapsed());
        say(&mut cy, json!({ "type": "leave" })).await;
        until("the leave delivered", async || (inbox.received.lock().unwrap().len() >= before + 4).then_some(())).await;
    }
    latencies.sort();
    println!("webhook latency, join to delivery with the receiver up: {latencies:?}");
    verified_by_the_reference_library(&secret, &inbox.received.lock().unwrap());
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_answering_500_is_tried_again_and_the_log_shows_both_tries_and_a_test_event_and_resend_work() {
    let (app, key) = app().await;
    let port = free_port();
    let inbox = Inbox::default();
    inbox.answers.lock().unwrap().push_back(500);
    let _receiver = Receiver::start(port, &inbox);
    let (id, secret) = endpoint(&app, &key, &format!("http://127.0.0.1:{port}/"), &["participant.joined"]).await;
    let (status, queued) = call(&app, Method::POST, &format!("/v1/webhooks/{id}/test"), &key, None).await;
    assert_eq!(status, 202, "{queued}");
    let log = format!("/v1/webhooks/{id}/deliveries");
    let attempts = until("two tries", async || {
        let (_, log) = call(&app, Method::GET, &log, &key, None).await;
        let attempts = log["attempts"].as_array().cloned().unwrap_or_default();
        (attempts.len() == 2 && attempts[0]["delivery_state"] == "delivered").then_some(attempts)
    })
    .await;
    assert_eq!((attempts[0]["status"].as_i64(), attempts[1]["status"].as_i64()), (Some(200), Some(500)));
    assert_eq!(
        (attempts[0]["response"].as_str(), attempts[0]["event_type"].as_str()),
        (Some("thanks"), Some("webhook.test"))
    );
    assert_eq!(attempts[0]["message_id"], queued["message_id"]);
    let received = inbox.received.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0]["headers"]["webhook-id"], received[1]["headers"]["webhook-id"], "the same event again");
    verified_by_the_reference_library(&secret, &received);

    // Sent again on request: the same event, after whatever waits.
    let delivery = attempts[0]["delivery_id"].clone();
    let (status, _) =
        call(&app, Method::POST, &format!("/v1/webhooks/{id}/resend"), &key, Some(json!({ "delivery_id": delivery })))
            .await;
    assert_eq!(status, 202);
    until("the event sent again", async || (inbox.received.lock().unwrap().len() == 3).then_some(())).await;

    // A new secret signs what follows.
    let (status, rotated) = call(&app, Method::POST, &format!("/v1/webhooks/{id}/secret"), &key, None).await;
    assert_eq!(status, 200);
    let fresh = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(fresh, secret);
    call(&app, Method::POST, &format!("/v1/webhooks/{id}/test"), &key, None).await;
    until("a test under the new secret", async || (inbox.received.lock().unwrap().len() == 4).then_some(())).await;
    let last = inbox.received.lock().unwrap()[3].clone();
    // For a day the old secret signs too, so a receiver still holding it changes over without a gap.
    verified_by_the_reference_library(&fresh, std::slice::from_ref(&last));
    verified_by_the_reference_library(&secret, std::slice::from_ref(&last));
    let signatures = last["headers"]["webhook-signature"].as_str().unwrap();
    assert_eq!(signatures.split(' ').count(), 2, "{signatures}");

    // Paused after a failed try: the retry waits, untried, until the endpoint is enabled again.
    inbox.answers.lock().unwrap().push_back(503);
    call(&app, Method::POST, &format!("/v1/webhooks/{id}/test"), &key, None).await;
    until("the refused try", async || (inbox.received.lock().unwrap().len() == 5).then_some(())).await;
    let one = format!("/v1/webhooks/{id}");
    let (status, _) = call(&app, Method::PATCH, &one, &key, Some(json!({ "disabled": true }))).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(inbox.received.lock().unwrap().len(), 5, "nothing is sent to a paused endpoint");
    call(&app, Method::PATCH, &one, &key, Some(json!({ "disabled": false }))).await;
    until("the retry once enabled", async || (inbox.received.lock().unwrap().len() == 6).then_some(())).await;
    app.stop().await;
}

#[tokio::test]
async fn other_tenants_see_no_endpoint_and_bad_input_and_inside_addresses_are_refused() {
    // No loopback allowance here: the service as it runs in production.
    let app = spawn_configured(&[]).await;
    let acme = tenant_key(&app, "owner@acme.example").await;
    let globex = tenant_key(&app, "owner@globex.example").await;
    let bad = [
        json!({ "url": "ftp://example.com/", "events": ["meeting.started"] }),
        json!({ "url": "http://example.com/", "events": ["meeting.started"] }),
        json!({ "url": "https://user:pw@example.com/", "events": ["meeting.started"] }),
        json!({ "url": "not a url", "events": ["meeting.started"] }),
        json!({ "url": "https://example.com/", "events": [] }),
        json!({ "url": "https://example.com/", "events": ["meeting.exploded"] }),
        json!({ "url": "https://example.com/", "events": ["meeting.started"], "description": "a\u{0}b" }),
        json!({ "url": "https://example.com/", "events": ["meeting.started"], "colour": "blue" }),
    ];
    for body in bad {
        let (status, refused) = call(&app, Method::POST, "/v1/webhooks", &acme, Some(body.clone())).await;
        assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_request")), "{body}: {refused}");
    }
    // Inside addresses pass the form (a name is resolved when sending) but nothing is sent to them.
    let (id, _) = endpoint(&app, &acme, "https://127.0.0.1:9/hooks", &["meeting.started"]).await;
    let (status, _) = call(&app, Method::POST, &format!("/v1/webhooks/{id}/test"), &acme, None).await;
    assert_eq!(status, 202);
    let log = format!("/v1/webhooks/{id}/deliveries");
    let refused = until("the refused try logged", async || {
        let (_, log) = call(&app, Method::GET, &log, &acme, None).await;
        log["attempts"].as_array().and_then(|attempts| attempts.first().cloned())
    })
    .await;
    assert!(refused["response"].as_str().unwrap().contains("private network"), "{refused}");

    // Another organisation's key finds nothing, whatever it tries.
    let one = format!("/v1/webhooks/{id}");
    for (method, path, body) in [
        (Method::GET, one.clone(), None),
        (Method::PATCH, one.clone(), Some(json!({ "disabled": true }))),
        (Method::DELETE, one.clone(), None),
        (Method::POST, format!("{one}/secret"), None),
        (Method::POST, format!("{one}/test"), None),
        (Method::GET, format!("{one}/deliveries"), None),
        (Method::POST, format!("{one}/resend"), Some(json!({ "delivery_id": uuid::Uuid::now_v7() }))),
    ] {
        let (status, _) = call(&app, method.clone(), &path, &globex, body).await;
        assert_eq!(status, 404, "{method} {path}");
    }
    let (_, listed) = call(&app, Method::GET, "/v1/webhooks", &globex, None).await;
    assert_eq!(listed["endpoints"], json!([]));
    let (status, _) = call(&app, Method::GET, "/v1/webhooks/not-an-id", &acme, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, Method::GET, &format!("{one}/deliveries?limit=1000"), &acme, None).await;
    assert_eq!(status, 400);
    // Paused: the test is refused in words; enabled again, it goes.
    let (status, paused) = call(&app, Method::PATCH, &one, &acme, Some(json!({ "disabled": true }))).await;
    assert_eq!((status, paused["disabled"].as_bool()), (200, Some(true)));
    let (status, _) = call(&app, Method::POST, &format!("{one}/test"), &acme, None).await;
    assert_eq!(status, 400);
    let (status, _) = call(&app, Method::DELETE, &one, &acme, None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&app, Method::GET, &one, &acme, None).await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn a_delivery_out_of_tries_marks_the_endpoint_failing_tells_the_owners_and_the_next_event_goes_on() {
    use convene_api::entities::{webhook_delivery, webhook_endpoint};
    use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
    let (app, key) = app().await;
    let port = free_port();
    let (id, _) = endpoint(&app, &key, &format!("http://127.0.0.1:{port}/"), &["participant.joined"]).await;
    let endpoint_id = uuid::Uuid::parse_str(&id).unwrap();
    let (status, _) = call(&app, Method::POST, &format!("/v1/webhooks/{id}/test"), &key, None).await;
    assert_eq!(status, 202);
    let log = format!("/v1/webhooks/{id}/deliveries");
    let first = until("the first refused try", async || {
        let (_, log) = call(&app, Method::GET, &log, &key, None).await;
        log["attempts"].as_array().and_then(|attempts| attempts.first().cloned())
    })
    .await;
    // The schedule's day has passed: the delivery is on its last retry.
    let delivery = uuid::Uuid::parse_str(first["delivery_id"].as_str().unwrap()).unwrap();
    let db = app.db().await;
    let row = webhook_delivery::Entity::find_by_id(delivery).one(&db).await.unwrap().unwrap();
    let mut last: webhook_delivery::ActiveModel = row.into();
    last.attempts = Set(7);
    last.next_attempt_at = Set(chrono::Utc::now());
    last.update(&db).await.unwrap();
    let failed = until("the delivery given up", async || {
        let row = webhook_delivery::Entity::find_by_id(delivery).one(&db).await.unwrap().unwrap();
        (row.state == "failed").then_some(row)
    })
    .await;
    assert_eq!(failed.attempts, 8);
    let marked = webhook_endpoint::Entity::find_by_id(endpoint_id).one(&db).await.unwrap().unwrap();
    assert!(marked.failing_since.is_some(), "{marked:?}");
    let (_, shown) = call(&app, Method::GET, &format!("/v1/webhooks/{id}"), &key, None).await;
    assert!(shown["failing_since"].is_string(), "{shown}");
    let mail = app.mail_to("owner@acme.example", "A webhook is failing").await;
    assert!(mail.text.contains(&format!("http://127.0.0.1:{port}/")), "{}", mail.text);
    assert!(
        mail.text.contains(&format!("/v1/webhooks/{id}/deliveries"))
            && mail.text.contains(&format!("localhost:3000/webhooks/{id}")),
        "{}",
        mail.text
    );

    // The receiver comes up: the next event goes, and the endpoint is well again.
    let inbox = Inbox::default();
    let _receiver = Receiver::start(port, &inbox);
    call(&app, Method::POST, &format!("/v1/webhooks/{id}/test"), &key, None).await;
    until("the endpoint well again", async || {
        let (_, shown) = call(&app, Method::GET, &format!("/v1/webhooks/{id}"), &key, None).await;
        shown["failing_since"].is_null().then_some(())
    })
    .await;
    assert_eq!(inbox.received.lock().unwrap().len(), 1, "the given-up event is not sent again by itself");
    app.stop().await;
}
