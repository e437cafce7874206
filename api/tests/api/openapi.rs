//! `/v1/openapi.json`: generated from the handlers, compared with the committed snapshot (so every change to
//! the public API shows in review), valid OpenAPI 3.1 by an independent validator, matching the routes
//! actually served, and true: every operation's real answers, successes and refusals, match it.

use std::path::PathBuf;

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, spawn_app, spawn_configured, tenant_key},
    recordings::RECORDING_PLANS,
    signal::{hello, token as room_token},
};

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/openapi.snapshot.json")
}

#[tokio::test]
async fn the_document_matches_the_snapshot_validates_and_describes_served_routes() {
    let app = spawn_app().await;
    let response = app.get("/v1/openapi.json").await;
    assert_eq!(response.status(), 200, "served without a key");
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1."), "{}", document["openapi"]);
    let pretty = serde_json::to_string_pretty(&document).unwrap() + "\n";

    let snapshot = snapshot_path();
    if std::env::var_os("CONVENE_TEST_ACCEPT_SNAPSHOT").is_some() {
        std::fs::write(&snapshot, &pretty).unwrap();
    }
    let committed = std::fs::read_to_string(&snapshot).unwrap_or_default();
    if committed != pretty {
        let fresh = snapshot.with_extension("json.new");
        std::fs::write(&fresh, &pretty).unwrap();
        panic!(
            "the OpenAPI document changed; review {} and accept it with CONVENE_TEST_ACCEPT_SNAPSHOT=1",
            fresh.display()
        );
    }

    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &pretty).unwrap();
    let validated = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(file.path())
        .output()
        .expect("python3 runs (cargo xtask test installs openapi-spec-validator)");
    assert!(
        validated.status.success(),
        "openapi-spec-validator refuses the document:\n{}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );

    // Every documented operation is routed: without a key it answers 401 (or 404 for an unknown tenant's
    // JWKS), never the fallback's 404 for an unknown path.
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 10, "{:?}", paths.keys());
    for (path, operations) in paths {
        let concrete = path.replace("{id}", "00000000-0000-7000-8000-000000000000").replace("{name}", "some-room");
        for method in operations.as_object().unwrap().keys() {
            let request =
                app.client.request(method.to_uppercase().parse().unwrap(), format!("{}{concrete}", app.address));
            let response = request.header("content-type", "application/json").body("{}").send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let expected = if path.contains("jwks") { ("not_found", 404) } else { ("unauthorized", 401) };
            assert_eq!((body["error"].as_str(), status), (Some(expected.0), expected.1), "{method} {path}");
        }
    }
    app.stop().await;
}

/// Real exchanges with the API, each recorded under the documented operation it belongs to.
struct Exchanges<'a> {
    app: &'a TestApp,
    /// Another tenant's key: calls with it are marked, to check that each id-taking operation refuses it.
    stranger: &'a str,
    seen: Vec<Value>,
}

impl Exchanges<'_> {
    /// Calls `concrete` (an instance of the documented `template`) with `key`; answers status and body.
    async fn call(
        &mut self,
        (method, template): (Method, &str),
        concrete: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.app.client.request(method.clone(), format!("{}{concrete}", self.app.address));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = &body {
            request = request.json(body);
        }
        let sent = body.unwrap_or(Value::Null);
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        let method = method.as_str().to_lowercase();
        let stranger = key == Some(self.stranger);
        let exchange = json!({ "method": method, "path": template, "status": status, "body": body, "request": sent,
            "stranger": stranger });
        self.seen.push(exchange);
        (status, body)
    }

    /// Calls and insists on `expected`.
    async fn expect(
        &mut self,
        operation: (Method, &str),
        concrete: &str,
        key: Option<&str>,
        body: Option<Value>,
        expected: u16,
    ) -> Value {
        let name = format!("{} {concrete}", operation.0);
        let (status, answer) = self.call(operation, concrete, key, body).await;
        assert_eq!(status, expected, "{name}: {answer}");
        answer
    }
}

#[tokio::test]
async fn every_operation_answers_what_the_document_says() {
    // Streams go to a listener of the test's own, on loopback; phones are called through a trunk that is
    // not there (the call is accepted, then fails).
    let app = spawn_configured(&[
        ("CONVENE_PLANS", RECORDING_PLANS.to_owned()),
        ("CONVENE_STREAMING_ALLOW_PRIVATE", "1".to_owned()),
        ("CONVENE_SIP_TRUNK", "sip:127.0.0.1:9".to_owned()),
    ])
    .await;
    let document: Value = app.get("/v1/openapi.json").await.json().await.unwrap();
    let acme = tenant_key(&app, "owner@acme.example").await;
    let globex = tenant_key(&app, "owner@globex.example").await;
    let (acme, globex) = (Some(acme.as_str()), Some(globex.as_str()));
    let mut api = Exchanges { app: &app, stranger: globex.unwrap(), seen: Vec::new() };
    let year = crate::helpers::next_year();

    let tenant = api.expect((Method::GET, "/v1/tenant"), "/v1/tenant", acme, None, 200).await;
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    let change_tenant = (Method::PATCH, "/v1/tenant");
    let region =
        api.expect(change_tenant.clone(), "/v1/tenant", acme, Some(json!({ "media_region": "eu-west-1" })), 200);
    assert_eq!(region.await["media_region"], "eu-west-1");
    api.expect(change_tenant.clone(), "/v1/tenant", acme, Some(json!({ "media_region": "Europe" })), 400).await;
    api.expect(change_tenant, "/v1/tenant", acme, Some(json!({ "media_region": null })), 200).await;

    let token = (Method::POST, "/v1/meeting-tokens");
    let minted =
        json!({ "room": "weekly-sync", "user": { "name": "Ann", "email": "ann@acme.example" }, "moderator": true });
    api.expect(token.clone(), token.1, acme, Some(minted), 201).await;
    api.expect(token.clone(), token.1, acme, Some(json!({ "room": "Not A Room!", "user": { "name": "Ann" } })), 400)
        .await;
    api.expect(token.clone(), token.1, acme, Some(json!({ "user": "nobody" })), 400).await;

    let jwks = (Method::GET, "/v1/tenants/{id}/jwks.json");
    api.expect(jwks.clone(), &format!("/v1/tenants/{tenant_id}/jwks.json"), None, None, 200).await;
    api.expect(jwks.clone(), "/v1/tenants/00000000-0000-7000-8000-000000000000/jwks.json", None, None, 404).await;

    let keys = (Method::GET, "/v1/signing-keys");
    api.expect(keys.clone(), keys.1, acme, None, 200).await;
    let register = (Method::POST, "/v1/signing-keys");
    let ed = convene_tokens::generate(convene_tokens::KeyAlgorithm::EdDsa).unwrap();
    let key = json!({ "name": "backend-1", "algorithm": "EdDSA", "public_key_pem": ed.public_pem });
    api.expect(register.clone(), register.1, acme, Some(key.clone()), 201).await;
    api.expect(register.clone(), register.1, acme, Some(key), 400).await;
    api.expect((Method::POST, "/v1/signing-keys/rotate"), "/v1/signing-keys/rotate", acme, None, 201).await;
    let delete_key = (Method::DELETE, "/v1/signing-keys/{name}");
    api.expect(delete_key.clone(), "/v1/signing-keys/backend-1", globex, None, 404).await;
    api.expect(delete_key.clone(), "/v1/signing-keys/backend-1", acme, None, 204).await;

    let rooms = (Method::POST, "/v1/rooms");
    let room = json!({ "name": "weekly-sync", "title": "Weekly sync", "lobby": true, "max_participants": 12 });
    api.expect(rooms.clone(), rooms.1, acme, Some(room.clone()), 201).await;
    api.expect(rooms.clone(), rooms.1, acme, Some(room), 409).await;
    api.expect(rooms.clone(), rooms.1, acme, Some(json!({ "name": "weekly-sync-2", "colour": "blue" })), 400).await;
    let list_rooms = (Method::GET, "/v1/rooms");
    api.expect(list_rooms.clone(), "/v1/rooms?limit=1", acme, None, 200).await;
    api.expect(list_rooms.clone(), "/v1/rooms?limit=many", acme, None, 400).await;
    let get_room = (Method::GET, "/v1/rooms/{name}");
    api.expect(get_room.clone(), "/v1/rooms/weekly-sync", acme, None, 200).await;
    api.expect(get_room.clone(), "/v1/rooms/weekly-sync", globex, None, 404).await;
    let patch_room = (Method::PATCH, "/v1/rooms/{name}");
    let change = json!({ "title": null, "password": "s3cret", "max_resolution": "1080p" });
    api.expect(patch_room.clone(), "/v1/rooms/weekly-sync", acme, Some(change.clone()), 200).await;
    api.expect(patch_room.clone(), "/v1/rooms/weekly-sync", globex, Some(change), 404).await;
    api.expect(patch_room.clone(), "/v1/rooms/weekly-sync", acme, Some(json!({ "max_participants": 1 })), 400).await;
    let dial_in = (Method::GET, "/v1/rooms/{name}/dial-in");
    api.expect(dial_in.clone(), "/v1/rooms/weekly-sync/dial-in", acme, None, 200).await;
    api.expect(dial_in.clone(), "/v1/rooms/weekly-sync/dial-in", globex, None, 404).await;
    api.expect((Method::GET, "/v1/dial-in-numbers"), "/v1/dial-in-numbers", acme, None, 200).await;
    // Recording: refused while nobody is in the meeting, then started, stopped and listed while Ann is in.
    let start = (Method::POST, "/v1/rooms/{name}/recording");
    let stop = (Method::DELETE, "/v1/rooms/{name}/recording");
    api.expect(start.clone(), "/v1/rooms/weekly-sync/recording", acme, None, 409).await;
    api.expect(start.clone(), "/v1/rooms/weekly-sync/recording", globex, None, 404).await;
    let dial = (Method::POST, "/v1/rooms/{name}/dial-out");
    let phone = json!({ "number": "+1 555 987 4567" });
    api.expect(dial.clone(), "/v1/rooms/weekly-sync/dial-out", acme, Some(phone.clone()), 409).await;
    let ann = room_token(&app, acme.unwrap(), "weekly-sync", "Ann", true).await;
    let (_ann, welcome) = hello(&app, "weekly-sync", &ann).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    // Calling a phone in: the number is checked, another tenant's room is not found.
    api.expect(dial.clone(), "/v1/rooms/weekly-sync/dial-out", acme, Some(json!({ "number": "12" })), 400).await;
    api.expect(dial.clone(), "/v1/rooms/weekly-sync/dial-out", globex, Some(phone.clone()), 404).await;
    let placed = api.expect(dial.clone(), "/v1/rooms/weekly-sync/dial-out", acme, Some(phone), 202).await;
    assert_eq!((placed["number"].as_str(), placed["state"].as_str()), (Some("+15559874567"), Some("calling")));
    let started = api.expect(start.clone(), "/v1/rooms/weekly-sync/recording", acme, None, 201).await;
    let recording = started["id"].as_str().unwrap().to_owned();
    api.expect(start.clone(), "/v1/rooms/weekly-sync/recording", acme, None, 409).await;
    api.expect(stop.clone(), "/v1/rooms/weekly-sync/recording", globex, None, 404).await;
    api.expect(stop.clone(), "/v1/rooms/weekly-sync/recording", acme, None, 200).await;
    api.expect(stop.clone(), "/v1/rooms/weekly-sync/recording", acme, None, 409).await;
    // Live streaming: the address is checked before anything starts; another tenant's room is not found.
    let live = (Method::POST, "/v1/rooms/{name}/live-stream");
    let unlive = (Method::DELETE, "/v1/rooms/{name}/live-stream");
    let web_page = json!({ "url": "https://example.com/live", "key": "secret" });
    api.expect(live.clone(), "/v1/rooms/weekly-sync/live-stream", acme, Some(web_page), 400).await;
    let closed_port = json!({ "url": "rtmp://127.0.0.1:9/live", "key": "secret" });
    api.expect(live.clone(), "/v1/rooms/weekly-sync/live-stream", globex, Some(closed_port), 404).await;
    api.expect(unlive.clone(), "/v1/rooms/weekly-sync/live-stream", acme, None, 409).await;
    api.expect(unlive.clone(), "/v1/rooms/weekly-sync/live-stream", globex, None, 404).await;
    // A service that takes the connection and never answers: the stream stays up until it is stopped.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("rtmp://{}/live", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            held.push(connection);
        }
    });
    let target = json!({ "url": silent_url, "key": "secret" });
    let started = api.expect(live.clone(), "/v1/rooms/weekly-sync/live-stream", acme, Some(target.clone()), 201).await;
    assert_eq!(started["service"], silent_url.as_str(), "the key is never shown: {started}");
    api.expect(live.clone(), "/v1/rooms/weekly-sync/live-stream", acme, Some(target), 409).await;
    api.expect(unlive.clone(), "/v1/rooms/weekly-sync/live-stream", acme, None, 200).await;
    held.abort();
    let list_recordings = (Method::GET, "/v1/recordings");
    api.expect(list_recordings.clone(), "/v1/recordings?room=weekly-sync&limit=5", acme, None, 200).await;
    api.expect(list_recordings.clone(), "/v1/recordings?room=Not%20A%20Room", acme, None, 400).await;
    let one_recording = (Method::GET, "/v1/recordings/{id}");
    let recording_path = format!("/v1/recordings/{recording}");
    api.expect(one_recording.clone(), &recording_path, globex, None, 404).await;
    // The node's events reach the control plane through its outbox: the stop lands within moments.
    let mut state = Value::Null;
    for _ in 0..50 {
        state = api.expect(one_recording.clone(), &recording_path, acme, None, 200).await["state"].clone();
        if state != "recording" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_ne!(state, "recording");
    let delete_recording = (Method::DELETE, "/v1/recordings/{id}");
    api.expect(delete_recording.clone(), &recording_path, globex, None, 404).await;
    api.expect(delete_recording.clone(), &recording_path, acme, None, 204).await;
    api.expect(delete_recording.clone(), &recording_path, acme, None, 404).await;

    let presence = (Method::GET, "/v1/rooms/{name}/presence");
    api.expect(presence.clone(), "/v1/rooms/weekly-sync/presence", acme, None, 200).await;
    api.expect(presence.clone(), "/v1/rooms/weekly-sync/presence", globex, None, 404).await;
    let delete_room = (Method::DELETE, "/v1/rooms/{name}");
    api.expect(delete_room.clone(), "/v1/rooms/weekly-sync", globex, None, 404).await;
    api.expect(delete_room.clone(), "/v1/rooms/weekly-sync", acme, None, 204).await;

    // Webhooks: to a documentation address, which is refused at sending (and logged), never reached.
    let hooks = (Method::POST, "/v1/webhooks");
    let endpoint = json!({ "url": "https://192.0.2.1/hooks", "events": ["meeting.started"] });
    let created = api.expect(hooks.clone(), hooks.1, acme, Some(endpoint), 201).await;
    api.expect(hooks.clone(), hooks.1, acme, Some(json!({ "url": "ftp://x", "events": ["meeting.started"] })), 400)
        .await;
    let hook = format!("/v1/webhooks/{}", created["endpoint"]["id"].as_str().unwrap());
    api.expect((Method::GET, "/v1/webhooks"), "/v1/webhooks", acme, None, 200).await;
    let get_hook = (Method::GET, "/v1/webhooks/{id}");
    api.expect(get_hook.clone(), &hook, acme, None, 200).await;
    api.expect(get_hook, &hook, globex, None, 404).await;
    let patch_hook = (Method::PATCH, "/v1/webhooks/{id}");
    api.expect(patch_hook.clone(), &hook, acme, Some(json!({ "description": "ours" })), 200).await;
    api.expect(patch_hook.clone(), &hook, acme, Some(json!({ "events": [] })), 400).await;
    api.expect(patch_hook, &hook, globex, Some(json!({ "description": "theirs" })), 404).await;
    let secret = (Method::POST, "/v1/webhooks/{id}/secret");
    api.expect(secret.clone(), &format!("{hook}/secret"), acme, None, 200).await;
    api.expect(secret, &format!("{hook}/secret"), globex, None, 404).await;
    let test_hook = (Method::POST, "/v1/webhooks/{id}/test");
    api.expect(test_hook.clone(), &format!("{hook}/test"), acme, None, 202).await;
    api.expect(test_hook, &format!("{hook}/test"), globex, None, 404).await;
    let log = (Method::GET, "/v1/webhooks/{id}/deliveries");
    let mut attempts = Value::Null;
    for _ in 0..100 {
        attempts = api.expect(log.clone(), &format!("{hook}/deliveries?limit=5"), acme, None, 200).await;
        if attempts["attempts"][0]["delivery_id"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    api.expect(log.clone(), &format!("{hook}/deliveries?limit=0"), acme, None, 400).await;
    api.expect(log, &format!("{hook}/deliveries"), globex, None, 404).await;
    let resend = (Method::POST, "/v1/webhooks/{id}/resend");
    let delivery = json!({ "delivery_id": attempts["attempts"][0]["delivery_id"] });
    api.expect(resend.clone(), &format!("{hook}/resend"), acme, Some(delivery.clone()), 202).await;
    api.expect(resend.clone(), &format!("{hook}/resend"), acme, Some(json!({ "delivery_id": 7 })), 400).await;
    api.expect(resend, &format!("{hook}/resend"), globex, Some(delivery), 404).await;
    let delete_hook = (Method::DELETE, "/v1/webhooks/{id}");
    api.expect(delete_hook.clone(), &hook, globex, None, 404).await;
    api.expect(delete_hook, &hook, acme, None, 204).await;

    let schedule = (Method::POST, "/v1/scheduled-meetings");
    let meeting = json!({
        "organizer": "owner@acme.example", "title": "API sync", "room": "api-sync",
        "starts_at": format!("{year}-07-01T09:00"), "ends_at": format!("{year}-07-01T09:30"),
        "time_zone": "Europe/Berlin", "invitees": ["dan@outside.example"], "lobby": true,
    });
    let created = api.expect(schedule.clone(), schedule.1, acme, Some(meeting.clone()), 201).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let mut bad = meeting.clone();
    bad["time_zone"] = json!("Mars/Olympus");
    api.expect(schedule.clone(), schedule.1, acme, Some(bad.clone()), 400).await;
    let list_scheduled = (Method::GET, "/v1/scheduled-meetings");
    api.expect(list_scheduled.clone(), "/v1/scheduled-meetings?limit=5", acme, None, 200).await;
    api.expect(list_scheduled.clone(), "/v1/scheduled-meetings?limit=-1", acme, None, 400).await;
    let one = format!("/v1/scheduled-meetings/{id}");
    let get_scheduled = (Method::GET, "/v1/scheduled-meetings/{id}");
    api.expect(get_scheduled.clone(), &one, acme, None, 200).await;
    api.expect(get_scheduled.clone(), &one, globex, None, 404).await;
    let replace = (Method::PUT, "/v1/scheduled-meetings/{id}");
    let mut moved = meeting.clone();
    moved["title"] = json!("API sync (moved)");
    api.expect(replace.clone(), &one, acme, Some(moved.clone()), 200).await;
    api.expect(replace.clone(), &one, acme, Some(bad), 400).await;
    api.expect(replace.clone(), &one, globex, Some(moved.clone()), 404).await;
    let cancel = (Method::DELETE, "/v1/scheduled-meetings/{id}");
    api.expect(cancel.clone(), &format!("{one}?organizer=owner%40globex.example"), globex, None, 404).await;
    api.expect(cancel.clone(), &format!("{one}?organizer=nobody%40acme.example"), acme, None, 400).await;
    api.expect(cancel.clone(), &format!("{one}?organizer=owner%40acme.example"), acme, None, 204).await;
    api.expect(cancel.clone(), &format!("{one}?organizer=owner%40acme.example"), acme, None, 409).await;
    api.expect(replace.clone(), &one, acme, Some(moved), 409).await;

    let meetings = (Method::GET, "/v1/meetings");
    api.expect(meetings.clone(), "/v1/meetings?limit=10", acme, None, 200).await;
    api.expect(meetings.clone(), "/v1/meetings?after=not-a-cursor", acme, None, 400).await;

    // Every operation without a key, and a spot check of a bad key: refusals are documented too.
    let paths = document["paths"].as_object().unwrap().clone();
    for (path, operations) in &paths {
        let concrete = path.replace("{id}", &tenant_id).replace("{name}", "weekly-sync");
        for method in operations.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            api.call((method, path), &concrete, None, Some(json!({}))).await;
        }
    }
    api.expect((Method::GET, "/v1/tenant"), "/v1/tenant", Some("cvn_not_a_key"), None, 401).await;

    // Every documented operation was seen answering successfully, so a new one must join this test.
    for (path, operations) in &paths {
        for method in operations.as_object().unwrap().keys() {
            let succeeded = api.seen.iter().any(|seen| {
                seen["path"] == path.as_str()
                    && seen["method"] == method.as_str()
                    && seen["status"].as_u64().is_some_and(|status| (200..300).contains(&status))
            });
            assert!(succeeded, "{method} {path} is documented but this test never saw it succeed");
            // Operations on one resource answer another tenant's key as if it did not exist (the JWKS is
            // public by design).
            if path.contains('{') && !path.ends_with("jwks.json") {
                let refused = api.seen.iter().any(|seen| {
                    seen["path"] == path.as_str()
                        && seen["method"] == method.as_str()
                        && seen["stranger"] == true
                        && seen["status"] == 404
                });
                assert!(refused, "{method} {path} was never tried with another tenant's key");
            }
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let (document_file, exchanges_file) = (dir.path().join("openapi.json"), dir.path().join("exchanges.json"));
    std::fs::write(&document_file, serde_json::to_vec(&document).unwrap()).unwrap();
    std::fs::write(&exchanges_file, serde_json::to_vec(&api.seen).unwrap()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/validate_responses.py");
    let checked = std::process::Command::new("python3")
        .arg(script)
        .args([&document_file, &exchanges_file])
        .output()
        .expect("python3 runs (cargo xtask test installs jsonschema with openapi-spec-validator)");
    assert!(
        checked.status.success(),
        "answers that the document does not describe:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    app.stop().await;
}
