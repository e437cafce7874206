//! `/healthz`, `/readyz` and `/metrics`, on each role and store.

use std::sync::Arc;

use convene_api::{
    http::routes::health::Dependencies,
    http::server::{self, HttpApp},
    platform::metrics::Metrics,
    roles::Serve,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::helpers::{Store, spawn, spawn_app, spawn_with};

#[tokio::test]
async fn healthz_and_readyz_answer_on_postgres() {
    let app = spawn_app().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<Value>().await.unwrap(), json!({ "status": "ok" }));

    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({ "status": "ready", "checks": { "database": "ok", "media": "ok", "rooms": "ok" } })
    );
    app.stop().await;
}

#[tokio::test]
async fn the_embedded_default_sqlite_store_serves_and_is_ready() {
    let app = spawn(Serve::All, Store::Sqlite).await;
    assert!(app.data_dir.path().join("convene.db").is_file(), "SQLite lives in the data dir");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200, "{:?}", ready.text().await);
    app.stop().await;
}

#[tokio::test]
async fn each_role_checks_only_what_it_depends_on() {
    let secret = ("CONVENE_NODE_SECRET", "a-node-secret-of-at-least-32-characters".to_owned());
    let api = spawn_with(Serve::Api, Store::Sqlite, std::slice::from_ref(&secret)).await;
    let checks = api.get("/readyz").await.json::<Value>().await.unwrap()["checks"].clone();
    assert_eq!(checks, json!({ "database": "ok" }));
    assert_eq!(api.get("/").await.status(), 200, "the api role serves the site");

    let media = spawn_with(Serve::Media, Store::Sqlite, &[secret, ("CONVENE_CONTROL_URL", api.address.clone())]).await;
    let checks = media.get("/readyz").await.json::<Value>().await.unwrap()["checks"].clone();
    assert_eq!(checks, json!({ "media": "ok", "rooms": "ok" }), "a draining node would not be ready");
    assert_eq!(media.get("/").await.status(), 404, "a media node serves no site");
    assert!(!media.data_dir.path().join("convene.db").exists(), "a media node never opens the database");
    // It reports to its control plane, which lists it.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let listed = api.client.get(format!("{}/operator/media-nodes", api.metrics_address)).send().await.unwrap();
        let listed: Value = listed.json().await.unwrap();
        if listed["nodes"][0]["state"] == "alive" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the node never reported: {listed}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    media.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn readyz_reports_an_unreachable_dependency_with_503() {
    // A UDP socket that never answers stands in for a dead media node.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let app = HttpApp {
        dependencies: Dependencies { media: Some(silent.local_addr().unwrap()), ..Dependencies::default() },
        metrics: Arc::new(Metrics::new()),
        site: None,
        node: None,
    };
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(server::serve(listener, app, shutdown.clone(), std::time::Duration::from_secs(5)));

    let ready = reqwest::get(format!("{address}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({ "status": "unavailable", "checks": { "media": "unreachable" } })
    );
    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern_in_prometheus_text() {
    let app = spawn(Serve::All, Store::Sqlite).await;
    app.get("/healthz").await;
    app.get_on_host("meet.localhost", "/some-room").await;
    app.get_on_host("meet.localhost", "/another-room").await;

    // Metrics describe every tenant's activity: not on the public listener, on the internal one.
    assert_eq!(app.get("/metrics").await.status(), 404);
    let meet = app.get_on_host("meet.localhost", "/metrics").await.text().await.unwrap();
    assert!(!meet.contains("convene_http_requests_total"), "the meet host reads /metrics as a room name");
    let response = app.client.get(format!("{}/metrics", app.metrics_address)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    for expected in [
        r#"convene_http_requests_total{method="GET",route="/healthz",status="200"} 1"#,
        // Three rooms (one named "metrics"), one series: labels use the route pattern, never the raw path.
        r#"convene_http_requests_total{method="GET",route="/{room}",status="200"} 3"#,
        r#"convene_build_info{version="#,
        "convene_http_request_duration_seconds_bucket",
        "convene_media_stun_replies_total",
        "process_cpu_seconds ",
        "process_resident_memory_bytes ",
        "# EOF",
    ] {
        assert!(text.contains(expected), "missing {expected} in:\n{text}");
    }
    assert!(!text.contains("another-room"));
    app.stop().await;
}

#[tokio::test]
async fn a_node_whose_media_shard_panicked_is_neither_alive_nor_ready() {
    let health = convene_media::MediaHealth::default();
    // A shard thread that panics, watched as the node watches its shards.
    let watch = health.watch(1);
    let shard = std::thread::spawn(move || {
        let _watch = watch;
        panic!("a shard's bug");
    });
    assert!(shard.join().is_err());
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let app = HttpApp {
        dependencies: Dependencies { media_health: Some(health), ..Dependencies::default() },
        metrics: Arc::new(Metrics::new()),
        site: None,
        node: None,
    };
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(server::serve(listener, app, shutdown.clone(), std::time::Duration::from_secs(5)));
    for probe in ["healthz", "readyz"] {
        let answer = reqwest::get(format!("{address}/{probe}")).await.unwrap();
        assert_eq!(answer.status(), 503, "{probe}");
        let body = answer.json::<Value>().await.unwrap();
        assert_eq!(body["checks"]["media_shards"], "stopped: shard 1", "{probe}: {body}");
    }
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
