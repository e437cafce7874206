//! One event the database refuses must not stop the node's line: it is retried, then set aside in
//! `dead_letters` with the reason, and the events behind it are recorded.

use std::time::SystemTime;

use convene_api::{
    entities::dead_letter,
    meetings::room_sessions::{DEAD_LETTER_AFTER, SessionRecorder},
};
use convene_media::{
    outbox::{Deliver, Envelope, NodeEvent},
    rooms::RoomEvent,
};
use reqwest::Method;
use sea_orm::EntityTrait;

use crate::helpers::{call, spawn_app, tenant_key};

fn joined(tenant: &str, seq: u64, participant: &str) -> Envelope {
    let event = RoomEvent::Joined {
        room: (tenant.to_owned(), "standup".to_owned()),
        participant: participant.to_owned(),
        name: "Someone".to_owned(),
        moderator: false,
        phone: None,
        at: SystemTime::now(),
    };
    Envelope { node: "node-a".to_owned(), seq, event: NodeEvent::Room(event) }
}

#[tokio::test]
async fn a_poison_event_is_set_aside_and_the_line_goes_on() {
    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let (_, tenant) = call(&app, Method::GET, "/v1/tenant", &key, None).await;
    let tenant = tenant["id"].as_str().unwrap().to_owned();
    let db = app.db().await;
    let mut registry = prometheus_client::registry::Registry::default();
    let recorder = SessionRecorder::new(db.clone(), &mut registry);

    // Postgres refuses a NUL byte in text, on every try.
    let poison = joined(&tenant, 1, "ann\u{0}");
    for attempt in 1..DEAD_LETTER_AFTER {
        assert!(recorder.deliver(&poison).await.is_err(), "attempt {attempt} is retried");
    }
    recorder.deliver(&poison).await.expect("set aside at last");
    recorder.deliver(&joined(&tenant, 2, "bob")).await.expect("the next event is recorded");

    let (_, present) = call(&app, Method::GET, "/v1/rooms/standup/presence", &key, None).await;
    let ids: Vec<&str> = present["participants"].as_array().unwrap().iter().filter_map(|p| p["id"].as_str()).collect();
    assert_eq!(ids, ["bob"], "{present}");
    let letters = dead_letter::Entity::find().all(&db).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!((letters[0].key.as_str(), letters[0].attempts), ("node-a/1", 5));
    assert!(!letters[0].reason.is_empty() && letters[0].payload.contains("joined"), "{:?}", letters[0]);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("convene_dead_letters_total 1"), "{text}");
    app.stop().await;
}
