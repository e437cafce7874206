//! `/v1/rooms`: create (named or generated), list by pages, read, change, delete; bad input; another
//! tenant's rooms are 404.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{call, spawn_app, tenant_key};

#[tokio::test]
async fn rooms_are_created_listed_changed_and_deleted() {
    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let (status, room) = call(&app, Method::POST, "/v1/rooms", &key, Some(json!({
        "name": "weekly-sync", "title": "Weekly sync", "lobby": true, "max_participants": 10, "max_resolution": "1080p"
    })))
    .await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(room["name"], "weekly-sync");
    assert_eq!(room["lobby"], true);
    assert_eq!(room["guests_allowed"], false, "defaults fill the rest");
    assert_eq!(room["fixed_display_names"], false, "participants may change their names unless the room says");

    let (status, generated) = call(&app, Method::POST, "/v1/rooms", &key, Some(json!({}))).await;
    assert_eq!(status, 201);
    let generated_name = generated["name"].as_str().unwrap().to_owned();
    assert!(generated_name.starts_with("room-"), "{generated_name}");
    assert_eq!(generated["max_resolution"], "720p");

    let (status, conflict) = call(&app, Method::POST, "/v1/rooms", &key, Some(json!({ "name": "weekly-sync" }))).await;
    assert_eq!((status, conflict["error"].as_str()), (409, Some("conflict")));

    for name in ["a-room", "b-room", "c-room"] {
        call(&app, Method::POST, "/v1/rooms", &key, Some(json!({ "name": name }))).await;
    }
    let (_, first) = call(&app, Method::GET, "/v1/rooms?limit=2", &key, None).await;
    let names = |page: &Value| {
        page["rooms"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(names(&first), ["a-room", "b-room"]);
    let (_, second) =
        call(&app, Method::GET, &format!("/v1/rooms?limit=2&after={}", first["next"].as_str().unwrap()), &key, None)
            .await;
    assert_eq!(names(&second)[0], "c-room");
    let mut all = names(&first);
    let mut page = second;
    loop {
        all.extend(names(&page));
        let Some(next) = page["next"].as_str().map(str::to_owned) else { break };
        page = call(&app, Method::GET, &format!("/v1/rooms?limit=2&after={next}"), &key, None).await.1;
    }
    assert_eq!(all.len(), 5, "{all:?}");

    let (status, changed) = call(
        &app,
        Method::PATCH,
        "/v1/rooms/weekly-sync",
        &key,
        Some(json!({
            "title": null, "password": "open sesame", "guests_allowed": true, "fixed_display_names": true
        })),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert!(changed["title"].is_null(), "null clears");
    assert_eq!(changed["password"], "open sesame");
    assert_eq!(changed["lobby"], true, "absent fields keep their value");
    let (_, read) = call(&app, Method::GET, "/v1/rooms/weekly-sync", &key, None).await;
    assert_eq!((read["guests_allowed"].as_bool(), read["fixed_display_names"].as_bool()), (Some(true), Some(true)));

    assert_eq!(call(&app, Method::DELETE, "/v1/rooms/weekly-sync", &key, None).await.0, 204);
    assert_eq!(call(&app, Method::GET, "/v1/rooms/weekly-sync", &key, None).await.0, 404);
    app.stop().await;
}

#[tokio::test]
async fn bad_room_requests_are_refused_and_other_tenants_rooms_are_404() {
    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let cases = [
        (json!({ "name": "Room With Spaces" }), "name"),
        (json!({ "name": "a/b" }), "name"),
        (json!({ "name": "ｗｅｅｋｌｙ" }), "name"),
        (json!({ "max_participants": 1 }), "max_participants"),
        (json!({ "max_resolution": "4k" }), "max_resolution"),
        (json!({ "password": "" }), "password"),
        (json!({ "colour": "blue" }), "colour"),
    ];
    for (body, mentioned) in cases {
        let (status, error) = call(&app, Method::POST, "/v1/rooms", &key, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}");
        assert!(error["message"].as_str().unwrap().contains(mentioned), "{body}: {error}");
    }
    let (status, _) = call(&app, Method::GET, "/v1/rooms?limit=abc", &key, None).await;
    assert_eq!(status, 400);

    call(&app, Method::POST, "/v1/rooms", &key, Some(json!({ "name": "acme-board" }))).await;
    let other = tenant_key(&app, "owner@globex.example").await;
    for (method, body) in [(Method::GET, None), (Method::PATCH, Some(json!({ "lobby": true }))), (Method::DELETE, None)]
    {
        let (status, error) = call(&app, method.clone(), "/v1/rooms/acme-board", &other, body).await;
        assert_eq!((status, error["error"].as_str()), (404, Some("not_found")), "{method}");
    }
    let (_, listed) = call(&app, Method::GET, "/v1/rooms", &other, None).await;
    assert_eq!(listed["rooms"], json!([]), "lists show only one's own rooms");
    let (status, _) = call(&app, Method::POST, "/v1/rooms", &other, Some(json!({ "name": "acme-board" }))).await;
    assert_eq!(status, 201, "room names are unique per tenant, not globally");
    app.stop().await;
}

#[tokio::test]
async fn meetings_and_presence_follow_the_reported_joins_and_leaves_and_stay_within_the_tenant() {
    use chrono::{TimeDelta, Utc};
    use convene_api::meetings::room_sessions::{node_stopped, participant_joined, participant_left};
    use convene_domain::{RoomName, TenantId};

    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let other = tenant_key(&app, "owner@other.example").await;
    let (_, tenant) = call(&app, Method::GET, "/v1/tenant", &key, None).await;
    let tenant = TenantId::parse(tenant["id"].as_str().unwrap()).unwrap();
    let db = app.db().await;
    let (standup, adhoc) = (RoomName::parse("standup").unwrap(), RoomName::parse("made-on-the-fly").unwrap());
    call(&app, Method::POST, "/v1/rooms", &key, Some(json!({ "name": "standup" }))).await;

    let (status, empty) = call(&app, Method::GET, "/v1/rooms/standup/presence", &key, None).await;
    assert_eq!((status, empty["participants"].as_array().unwrap().len()), (200, 0));
    let start = Utc::now() - TimeDelta::minutes(30);
    participant_joined(&db, "node-a", tenant, &standup, ("u1", "Ann", true, None), start).await.unwrap();
    participant_joined(&db, "node-a", tenant, &standup, ("u2", "Bob", false, None), start + TimeDelta::minutes(5))
        .await
        .unwrap();
    participant_left(&db, "node-a", tenant, &standup, "u2", start + TimeDelta::minutes(15)).await.unwrap();
    participant_left(&db, "node-a", tenant, &standup, "u2", start + TimeDelta::minutes(16)).await.unwrap();

    let (status, present) = call(&app, Method::GET, "/v1/rooms/standup/presence", &key, None).await;
    assert_eq!(status, 200);
    let names: Vec<_> = present["participants"].as_array().unwrap().iter().map(|p| p["name"].clone()).collect();
    assert_eq!(names, [json!("Ann")], "Bob left; leaving twice changed nothing");

    participant_left(&db, "node-a", tenant, &standup, "u1", start + TimeDelta::minutes(20)).await.unwrap();
    participant_joined(&db, "node-a", tenant, &adhoc, ("u3", "Cy", false, None), start + TimeDelta::minutes(25))
        .await
        .unwrap();
    let (status, page) = call(&app, Method::GET, "/v1/meetings?limit=1", &key, None).await;
    assert_eq!(status, 200);
    let ongoing = &page["meetings"][0];
    assert_eq!((ongoing["room"].as_str(), ongoing["ended_at"].is_null()), (Some("made-on-the-fly"), true));
    let (_, page) =
        call(&app, Method::GET, &format!("/v1/meetings?limit=1&after={}", page["next"].as_str().unwrap()), &key, None)
            .await;
    let past = &page["meetings"][0];
    assert_eq!(past["room"], "standup");
    assert_eq!(past["duration_seconds"], 20 * 60);
    assert_eq!(past["participants"][1]["duration_seconds"], 10 * 60);
    assert_eq!(past["participants"][0]["moderator"], true);
    assert!(page["next"].is_null(), "two sessions in all");
    let (status, present) = call(&app, Method::GET, "/v1/rooms/made-on-the-fly/presence", &key, None).await;
    assert_eq!((status, present["participants"][0]["name"].as_str()), (200, Some("Cy")));

    // The node hosting Cy's meeting restarts: what it hosted ended when it was last alive, five minutes in.
    let last_alive = start + TimeDelta::minutes(30);
    node_stopped(&db, "node-b", Some(last_alive), Utc::now()).await.unwrap();
    let (_, page) = call(&app, Method::GET, "/v1/meetings?limit=1", &key, None).await;
    assert!(page["meetings"][0]["ended_at"].is_null(), "another node's restart ends nothing here");
    node_stopped(&db, "node-a", Some(last_alive), Utc::now()).await.unwrap();
    let (_, page) = call(&app, Method::GET, "/v1/meetings?limit=1", &key, None).await;
    let closed = &page["meetings"][0];
    assert_eq!((closed["room"].as_str(), closed["duration_seconds"].as_i64()), (Some("made-on-the-fly"), Some(5 * 60)));
    assert_eq!(closed["participants"][0]["duration_seconds"], 5 * 60);
    let (_, present) = call(&app, Method::GET, "/v1/rooms/made-on-the-fly/presence", &key, None).await;
    assert_eq!(present["participants"].as_array().unwrap().len(), 0);

    let (status, bad) = call(&app, Method::GET, "/v1/meetings?after=nonsense", &key, None).await;
    assert_eq!((status, bad["error"].as_str()), (400, Some("invalid_request")));
    for path in ["/v1/rooms/standup/presence", "/v1/rooms/made-on-the-fly/presence", "/v1/rooms/no-such-room/presence"]
    {
        let (status, body) = call(&app, Method::GET, path, &other, None).await;
        assert_eq!((status, body["error"].as_str()), (404, Some("not_found")), "{path}");
    }
    let (_, theirs) = call(&app, Method::GET, "/v1/meetings", &other, None).await;
    assert_eq!(theirs["meetings"].as_array().unwrap().len(), 0, "another tenant sees none of it");
    app.stop().await;
}

#[tokio::test]
async fn the_meetings_page_lists_what_took_place_with_who_and_how_long() {
    use chrono::{TimeDelta, Utc};
    use convene_api::meetings::room_sessions::{participant_joined, participant_left};
    use convene_domain::{RoomName, TenantId};

    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let session = crate::helpers::sign_in(&app, "owner@acme.example").await;
    let (_, tenant) = call(&app, Method::GET, "/v1/tenant", &key, None).await;
    let tenant = TenantId::parse(tenant["id"].as_str().unwrap()).unwrap();
    let other = tenant_key(&app, "owner@other.example").await;
    let (_, other_tenant) = call(&app, Method::GET, "/v1/tenant", &other, None).await;
    let other_tenant = TenantId::parse(other_tenant["id"].as_str().unwrap()).unwrap();
    let db = app.db().await;
    let room = RoomName::parse("standup").unwrap();
    let start = Utc::now() - TimeDelta::minutes(90);
    participant_joined(&db, "node-a", tenant, &room, ("u1", "Ann", true, None), start).await.unwrap();
    participant_joined(&db, "node-a", tenant, &room, ("u2", "Bob", false, None), start + TimeDelta::minutes(5))
        .await
        .unwrap();
    participant_left(&db, "node-a", tenant, &room, "u2", start + TimeDelta::minutes(15)).await.unwrap();
    participant_joined(&db, "node-a", tenant, &room, ("u2", "Bob", false, None), start + TimeDelta::minutes(20))
        .await
        .unwrap();
    participant_left(&db, "node-a", tenant, &room, "u2", start + TimeDelta::minutes(25)).await.unwrap();
    participant_left(&db, "node-a", tenant, &room, "u1", start + TimeDelta::minutes(65)).await.unwrap();
    participant_joined(&db, "node-a", other_tenant, &room, ("x", "Mallory", false, None), start).await.unwrap();

    let page = app.get_with_cookie("/meetings", &session).await.text().await.unwrap();
    assert!(page.contains("Held") && page.contains("standup"), "{page}");
    assert!(
        page.contains("1 h 5 min") && page.contains("Ann (1 h 5 min), Bob (15 min)"),
        "Bob's two stays add up: {page}"
    );
    assert!(!page.contains("Mallory"), "another organisation's meetings stay theirs");
    app.stop().await;
}
