//! The signalling WebSocket end to end: real tokens from `/v1/meeting-tokens`, a room with a lobby from
//! `/v1/rooms`, clients speaking JSON frames; refusals for bad tokens, a missing hello, junk and oversized
//! frames, and actions without the role.

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async, tungstenite::Message};

use crate::helpers::{TestApp, call, spawn_app, tenant_key};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn token(app: &TestApp, key: &str, room: &str, name: &str, moderator: bool) -> String {
    let body = json!({ "room": room, "user": { "name": name }, "moderator": moderator });
    let (status, minted) = call(app, Method::POST, "/v1/meeting-tokens", key, Some(body)).await;
    assert_eq!(status, 201, "{minted}");
    minted["token"].as_str().unwrap().to_owned()
}

pub(crate) async fn open(app: &TestApp, room: &str) -> Socket {
    let url = format!("{}/_signal/{room}", app.address.replace("http://", "ws://"));
    connect_async(url).await.expect("the upgrade succeeds").0
}

pub(crate) async fn say(socket: &mut Socket, message: Value) {
    socket.send(Message::text(message.to_string())).await.unwrap();
}

/// The next JSON frame, or `None` once the server closed the connection.
pub(crate) async fn hear(socket: &mut Socket) -> Option<Value> {
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next()).await.expect("in time");
        match frame {
            Some(Ok(Message::Text(text))) => return Some(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            _ => return None,
        }
    }
}

pub(crate) async fn hello(app: &TestApp, room: &str, token: &str) -> (Socket, Value) {
    let mut socket = open(app, room).await;
    say(&mut socket, json!({ "type": "hello", "version": 1, "token": token })).await;
    let answer = hear(&mut socket).await.unwrap();
    (socket, answer)
}

#[tokio::test]
async fn participants_wait_in_the_lobby_until_admitted_and_moderators_moderate() {
    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    call(&app, Method::POST, "/v1/rooms", &key, Some(json!({ "name": "town-hall", "lobby": true }))).await;
    let ann_token = token(&app, &key, "town-hall", "Ann", true).await;
    let bob_token = token(&app, &key, "town-hall", "Bob", false).await;

    let (mut ann, welcome) = hello(&app, "town-hall", &ann_token).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(
        (welcome["room"]["lobby"].as_bool(), welcome["participants"][0]["moderator"].as_bool()),
        (Some(true), Some(true))
    );
    let (mut bob, waiting) = hello(&app, "town-hall", &bob_token).await;
    assert_eq!(waiting["type"], "lobby", "{waiting}");
    let knock = hear(&mut ann).await.unwrap();
    assert_eq!((knock["type"].as_str(), knock["waiting"][0]["name"].as_str()), (Some("lobby_changed"), Some("Bob")));
    let bob_id = waiting["you"].clone();

    say(&mut ann, json!({ "type": "admit", "participant": bob_id })).await;
    let admitted = hear(&mut bob).await.unwrap();
    assert_eq!(
        (admitted["type"].as_str(), admitted["participants"].as_array().map(Vec::len)),
        (Some("welcome"), Some(2))
    );
    assert_eq!(hear(&mut ann).await.unwrap()["type"], "participant_joined");
    assert_eq!(hear(&mut ann).await.unwrap()["type"], "lobby_changed");

    say(&mut bob, json!({ "type": "kick", "participant": welcome["you"] })).await;
    assert_eq!(hear(&mut bob).await.unwrap()["code"], "forbidden");
    bob.send(Message::text("{not json")).await.unwrap();
    assert_eq!(hear(&mut bob).await.unwrap()["code"], "malformed");
    bob.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(hear(&mut bob).await.unwrap()["code"], "malformed");
    say(&mut bob, json!({ "type": "chat", "text": "still here" })).await;
    assert_eq!(hear(&mut ann).await.unwrap()["text"], "still here", "bad frames did not end Bob's session");
    assert_eq!(hear(&mut bob).await.unwrap()["text"], "still here");

    say(&mut ann, json!({ "type": "kick", "participant": bob_id })).await;
    let kicked = hear(&mut bob).await.unwrap();
    assert_eq!((kicked["type"].as_str(), kicked["reason"].as_str()), (Some("refused"), Some("kicked")));
    assert!(hear(&mut bob).await.is_none(), "the server closes a kicked connection");
    assert_eq!(hear(&mut ann).await.unwrap()["reason"], "kicked");
    // Ann stays connected: stopping the app closes her connection instead of waiting for it.
    let started = std::time::Instant::now();
    app.stop().await;
    // Waiting for the connection would take the whole 30 s shutdown timeout; a loaded machine takes a few.
    assert!(started.elapsed() < std::time::Duration::from_secs(15), "took {:?}", started.elapsed());
    assert!(hear(&mut ann).await.is_none());
}

#[tokio::test]
async fn participants_choose_their_names_unless_the_room_keeps_the_invitations() {
    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let named = |token: &str, name: &str| json!({ "type": "hello", "version": 1, "token": token, "name": name });
    let ann_token = token(&app, &key, "open-names", "Ann Token", false).await;
    let mut ann = open(&app, "open-names").await;
    say(&mut ann, named(&ann_token, "  Annie  ")).await;
    let welcome = hear(&mut ann).await.unwrap();
    assert_eq!(welcome["participants"][0]["name"], "Annie", "{welcome}");
    assert_eq!(welcome["room"]["fixed_display_names"], false);
    say(&mut ann, json!({ "type": "set_name", "name": "Ann B." })).await;
    assert_eq!(hear(&mut ann).await.unwrap()["participant"]["name"], "Ann B.");
    say(&mut ann, json!({ "type": "set_name", "name": "\u{7}" })).await;
    assert_eq!(hear(&mut ann).await.unwrap()["code"], "invalid");

    call(&app, Method::POST, "/v1/rooms", &key, Some(json!({ "name": "board", "fixed_display_names": true }))).await;
    let bob_token = token(&app, &key, "board", "Bob Token", false).await;
    let mut bob = open(&app, "board").await;
    say(&mut bob, named(&bob_token, "The Chair")).await;
    let welcome = hear(&mut bob).await.unwrap();
    assert_eq!(
        (welcome["participants"][0]["name"].as_str(), welcome["room"]["fixed_display_names"].as_bool()),
        (Some("Bob Token"), Some(true))
    );
    assert_eq!(hear(&mut bob).await.unwrap()["code"], "forbidden", "told why the name was not taken");
    say(&mut bob, json!({ "type": "set_name", "name": "The Chair" })).await;
    assert_eq!(hear(&mut bob).await.unwrap()["code"], "forbidden");
    app.stop().await;
}

#[tokio::test]
async fn a_dropped_connection_resumes_its_session_with_the_secret_from_its_welcome() {
    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let ann_token = token(&app, &key, "standup", "Ann", true).await;
    let (mut bob, _) = hello(&app, "standup", &token(&app, &key, "standup", "Bob", false).await).await;
    let (ann, welcome) = hello(&app, "standup", &ann_token).await;
    let (ann_id, secret) = (welcome["you"].clone(), welcome["resume"].as_str().unwrap().to_owned());
    assert_eq!(secret.len(), 32, "{welcome}");
    assert_eq!(hear(&mut bob).await.unwrap()["type"], "participant_joined");

    // Ann's connection drops; a new one with the secret is the same Ann, and Bob saw no one leave.
    drop(ann);
    let mut ann = open(&app, "standup").await;
    say(&mut ann, json!({ "type": "hello", "version": 1, "token": ann_token, "resume": secret })).await;
    let resumed = hear(&mut ann).await.unwrap();
    assert_eq!((resumed["type"].as_str(), &resumed["you"]), (Some("welcome"), &ann_id), "{resumed}");
    assert_eq!(resumed["participants"].as_array().map(Vec::len), Some(2));
    say(&mut ann, json!({ "type": "chat", "text": "back" })).await;
    let heard = hear(&mut bob).await.unwrap();
    assert_eq!((heard["type"].as_str(), &heard["from"]), (Some("chat"), &ann_id), "no leave and join between: {heard}");

    // A secret nobody holds is an ordinary join.
    let (_, fresh) = {
        let mut socket = open(&app, "standup").await;
        say(&mut socket, json!({ "type": "hello", "version": 1, "token": ann_token, "resume": "not-a-secret" })).await;
        let answer = hear(&mut socket).await.unwrap();
        (socket, answer)
    };
    assert_ne!(fresh["you"], ann_id, "{fresh}");
    app.stop().await;
}

#[tokio::test]
async fn bad_tokens_missing_hellos_and_oversized_frames_are_refused() {
    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let other_room = token(&app, &key, "other-room", "Eve", true).await;

    for (token, expected) in [("not-a-jwt", "damaged"), (other_room.as_str(), "another meeting")] {
        let (mut socket, refused) = hello(&app, "standup", token).await;
        assert_eq!((refused["type"].as_str(), refused["reason"].as_str()), (Some("refused"), Some("invalid_token")));
        assert!(refused["message"].as_str().unwrap().contains(expected), "{refused}");
        assert!(hear(&mut socket).await.is_none());
    }

    let mut socket = open(&app, "standup").await;
    say(&mut socket, json!({ "type": "chat", "text": "hi" })).await;
    let refused = hear(&mut socket).await.unwrap();
    assert!(refused["message"].as_str().unwrap().contains("hello"), "{refused}");

    let mut socket = open(&app, "standup").await;
    // The node may close the connection before the whole frame is written, so the send itself can fail.
    let sent = socket.send(Message::text("x".repeat(convene_signal::MAX_MESSAGE_BYTES + 1))).await;
    assert!(sent.is_err() || hear(&mut socket).await.is_none(), "an oversized frame ends the connection");

    let response = app.get("/_signal/Not%20A%20Room").await;
    assert_eq!(response.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn pings_do_not_keep_a_socket_without_hello_open() {
    let app = spawn_app().await;
    let mut socket = open(&app, "standup").await;
    let opened = std::time::Instant::now();
    // The handshake deadline is 10 s; a client pinging every second must still be closed by then.
    let closed = loop {
        assert!(opened.elapsed() < std::time::Duration::from_secs(25), "the socket outlived the hello deadline");
        if socket.send(Message::Ping(vec![1].into())).await.is_err() {
            break opened.elapsed();
        }
        match tokio::time::timeout(std::time::Duration::from_secs(1), socket.next()).await {
            Ok(Some(Ok(Message::Pong(_)))) | Err(_) => {}
            Ok(_) => break opened.elapsed(),
        }
    };
    assert!(closed < std::time::Duration::from_secs(20), "closed only after {closed:?}");
    app.stop().await;
}

/// Polls `path` until `ready` holds for its JSON body (the node reports asynchronously).
async fn eventually(app: &TestApp, key: &str, path: &str, ready: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        let (status, body) = call(app, Method::GET, path, key, None).await;
        if status == 200 && ready(&body) {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{path} never became ready");
}

#[tokio::test]
async fn joins_and_leaves_become_presence_and_meetings_in_the_api() {
    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let body = json!({ "room": "standup", "user": { "id": "ann-1", "name": "Ann" }, "moderator": true });
    let (_, minted) = call(&app, Method::POST, "/v1/meeting-tokens", &key, Some(body)).await;
    let (mut ann, welcome) = hello(&app, "standup", minted["token"].as_str().unwrap()).await;
    assert_eq!(welcome["type"], "welcome");

    let present = eventually(&app, &key, "/v1/rooms/standup/presence", |body| {
        body["participants"].as_array().is_some_and(|list| list.len() == 1)
    })
    .await;
    assert_eq!(
        (present["participants"][0]["id"].as_str(), present["participants"][0]["moderator"].as_bool()),
        (Some("ann-1"), Some(true))
    );

    say(&mut ann, json!({ "type": "leave" })).await;
    assert!(hear(&mut ann).await.is_none());
    let meetings = eventually(&app, &key, "/v1/meetings", |body| body["meetings"][0]["ended_at"].is_string()).await;
    let session = &meetings["meetings"][0];
    assert_eq!((session["room"].as_str(), session["participants"][0]["name"].as_str()), (Some("standup"), Some("Ann")));
    assert!(session["participants"][0]["left_at"].is_string());
    app.stop().await;
}

#[tokio::test]
async fn a_flooding_client_is_limited_and_everything_is_counted_in_metrics() {
    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let (mut ann, _) = hello(&app, "standup", &token(&app, &key, "standup", "Ann", true).await).await;
    hello(&app, "standup", "forged").await;

    for n in 0..200 {
        say(&mut ann, json!({ "type": "chat", "text": format!("spam {n}") })).await;
    }
    let (mut echoes, mut limited) = (0, 0);
    while let Ok(Some(frame)) = tokio::time::timeout(std::time::Duration::from_millis(500), hear(&mut ann)).await {
        match frame["type"].as_str() {
            Some("chat") => echoes += 1,
            Some("error") if frame["code"] == "rate_limited" => limited += 1,
            _ => {}
        }
    }
    assert_eq!(limited, 1, "told once, not once per dropped message");
    assert!((50..200).contains(&echoes), "{echoes} of 200 got through");

    let metrics = app.metrics().await;
    for expected in [
        "convene_signal_rooms 1",
        "convene_signal_connections 1",
        "convene_signal_frames_total{outcome=\"rate_limited\"}",
        "convene_signal_refusals_total{reason=\"invalid_token\"} 1",
    ] {
        assert!(metrics.contains(expected), "{expected} in\n{metrics}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_draining_node_keeps_its_rooms_refuses_new_ones_and_is_not_ready() {
    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let (mut ann, _) = hello(&app, "standup", &token(&app, &key, "standup", "Ann", true).await).await;
    app.started.as_ref().unwrap().drain();

    let (mut bob, welcome) = hello(&app, "standup", &token(&app, &key, "standup", "Bob", false).await).await;
    assert_eq!(welcome["type"], "welcome", "a running room still takes people");
    let (_, refused) = hello(&app, "new-room", &token(&app, &key, "new-room", "Cy", true).await).await;
    assert_eq!((refused["type"].as_str(), refused["reason"].as_str()), (Some("refused"), Some("unavailable")));
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<Value>().await.unwrap()["checks"]["rooms"], "draining");
    ann.close(None).await.unwrap();
    bob.close(None).await.unwrap();
    app.stop().await;
}

/// Waits until the node's outbox has brought `table`'s row for the room into the database.
async fn recorded(app: &TestApp, sql: &str) {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.db().await;
    for _ in 0..200 {
        let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap();
        if !rows.is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("never recorded: {sql}");
}

#[tokio::test]
async fn removed_people_ended_meetings_and_deleted_rooms_stay_closed_across_a_restart() {
    let mut app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let ann_token = token(&app, &key, "standup", "Ann", true).await;
    let bob_token = {
        let body = json!({ "room": "standup", "user": { "id": "bob-1", "name": "Bob" } });
        let (_, minted) = call(&app, Method::POST, "/v1/meeting-tokens", &key, Some(body)).await;
        minted["token"].as_str().unwrap().to_owned()
    };
    let (mut ann, welcome) = hello(&app, "standup", &ann_token).await;
    assert_eq!(welcome["type"], "welcome");
    let (mut bob, bob_welcome) = hello(&app, "standup", &bob_token).await;
    hear(&mut ann).await;
    say(&mut ann, json!({ "type": "kick", "participant": bob_welcome["you"] })).await;
    assert_eq!(hear(&mut bob).await.unwrap()["reason"], "kicked");
    let (_, again) = hello(&app, "standup", &bob_token).await;
    assert_eq!((again["type"].as_str(), again["reason"].as_str()), (Some("refused"), Some("kicked")), "{again}");

    // Ann ends the meeting for everyone; her own token no longer starts it.
    hear(&mut ann).await;
    say(&mut ann, json!({ "type": "end_for_all" })).await;
    while hear(&mut ann).await.is_some() {}
    let (_, again) = hello(&app, "standup", &ann_token).await;
    assert_eq!(again["reason"], "ended", "{again}");

    // Across a restart the database remembers both.
    recorded(&app, "SELECT 1 FROM room_removals WHERE user_id = 'bob-1'").await;
    recorded(&app, "SELECT 1 FROM room_closures WHERE room = 'standup'").await;
    app.restart().await;
    let (_, again) = hello(&app, "standup", &ann_token).await;
    assert_eq!(again["reason"], "ended", "{again}");
    // The same person with a new token is still removed; a token issued after the end opens a new meeting.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let body = json!({ "room": "standup", "user": { "id": "bob-1", "name": "Bob" } });
    let (_, minted) = call(&app, Method::POST, "/v1/meeting-tokens", &key, Some(body)).await;
    let (_, again) = hello(&app, "standup", minted["token"].as_str().unwrap()).await;
    assert_eq!(again["reason"], "kicked", "{again}");
    let fresh = token(&app, &key, "standup", "Ann", true).await;
    let (_fresh, welcome) = hello(&app, "standup", &fresh).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");

    // A deleted room does not fall back to defaults for links made before the deletion.
    call(&app, Method::POST, "/v1/rooms", &key, Some(json!({ "name": "board", "password": "s3cret" }))).await;
    let old_link = token(&app, &key, "board", "Cy", false).await;
    let (status, _) = call(&app, Method::DELETE, "/v1/rooms/board", &key, None).await;
    assert_eq!(status, 204);
    let (_, refused) = hello(&app, "board", &old_link).await;
    assert_eq!(refused["reason"], "ended", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("deleted"), "{refused}");
    app.stop().await;
}

#[tokio::test]
async fn settings_changed_during_a_meeting_apply_to_the_next_person() {
    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    call(&app, Method::POST, "/v1/rooms", &key, Some(json!({ "name": "weekly" }))).await;
    let ann_token = token(&app, &key, "weekly", "Ann", true).await;
    let (mut ann, welcome) = hello(&app, "weekly", &ann_token).await;
    assert_eq!(welcome["type"], "welcome");
    let (status, _) = call(&app, Method::PATCH, "/v1/rooms/weekly", &key, Some(json!({ "password": "s3cret" }))).await;
    assert_eq!(status, 200);
    let bob_token = token(&app, &key, "weekly", "Bob", false).await;
    let (_, refused) = hello(&app, "weekly", &bob_token).await;
    assert_eq!(refused["reason"], "password_required", "{refused}");
    let (status, _) = call(&app, Method::PATCH, "/v1/rooms/weekly", &key, Some(json!({ "lobby": true }))).await;
    assert_eq!(status, 200);
    let mut bob = open(&app, "weekly").await;
    say(&mut bob, json!({ "type": "hello", "version": 1, "token": bob_token, "password": "s3cret" })).await;
    assert_eq!(hear(&mut bob).await.unwrap()["type"], "lobby", "the lobby now applies");
    let changed = hear(&mut ann).await.unwrap();
    assert_eq!((changed["type"].as_str(), changed["room"]["lobby"].as_bool()), (Some("room_changed"), Some(true)));
    app.stop().await;
}

#[tokio::test]
async fn room_passwords_cannot_be_guessed_through_fresh_sockets() {
    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    call(&app, Method::POST, "/v1/rooms", &key, Some(json!({ "name": "vault", "password": "s3cret" }))).await;
    let mallory = token(&app, &key, "vault", "Mallory", false).await;
    let attempt = |password: &'static str, token: String| {
        let app = &app;
        async move {
            let mut socket = open(app, "vault").await;
            say(&mut socket, json!({ "type": "hello", "version": 1, "token": token, "password": password })).await;
            hear(&mut socket).await.unwrap()
        }
    };
    for guess in 0..10 {
        let answer = attempt("guess", mallory.clone()).await;
        assert_eq!(answer["reason"], "wrong_password", "guess {guess}: {answer}");
    }
    let answer = attempt("s3cret", mallory.clone()).await;
    assert_eq!(answer["reason"], "wrong_password", "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("too many"), "even the right one waits: {answer}");
    // Without a password nothing is guessed: the room still asks for one.
    let asked = {
        let mut socket = open(&app, "vault").await;
        say(&mut socket, json!({ "type": "hello", "version": 1, "token": mallory })).await;
        hear(&mut socket).await.unwrap()
    };
    assert_eq!(asked["reason"], "password_required", "{asked}");
    app.stop().await;
}
