//! Many media nodes, one control plane: `convene api` in the test on Postgres, and `convene media`
//! processes beside it on loopback. Meetings spread over the nodes, every participant of one meeting is on
//! its node, a killed node's meetings move and its sessions end at its last heartbeat, a draining node
//! keeps its meetings and gets no new ones.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use convene_api::{
    entities::{media_node, room_placement, room_session, session_participant},
    roles::Serve,
};
use convene_bots::{Bot, BotError, BotOptions, BotStack};
use convene_signal::Refusal;
use reqwest::Method;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::{
    helpers::{TestApp, call, spawn_app, spawn_role, tenant_key},
    media::{bot, until},
};

const PATIENCE: Duration = Duration::from_secs(20);

fn node_secret() -> String {
    "a-test-node-secret-of-forty-characters!!".to_owned()
}

/// A `convene media` process reporting to `app`, killed when dropped.
struct NodeProcess {
    child: Child,
    /// Its id (its outbox's).
    id: String,
    /// Its internal listener, for the operator's drain.
    metrics: String,
    /// Its phone gateway's SIP address, when it runs one.
    sip: Option<std::net::SocketAddr>,
    _data: tempfile::TempDir,
}

impl NodeProcess {
    /// A node with `settings` (`CONVENE_*` pairs) over the defaults here.
    async fn start(app: &TestApp, settings: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(env!("CARGO_BIN_EXE_convene"));
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("CONVENE_")) {
            command.env_remove(name);
        }
        let mut child = command
            .arg("media")
            .env("CONVENE_CONTROL_URL", &app.address)
            .env("CONVENE_NODE_SECRET", node_secret())
            .env("CONVENE_DATA_DIR", data.path())
            .env("CONVENE_HTTP_ADDR", "127.0.0.1:0")
            .env("CONVENE_METRICS_ADDR", "127.0.0.1:0")
            .env("CONVENE_MEDIA_UDP_ADDR", "127.0.0.1:0")
            .env("CONVENE_MEDIA_SHARDS", "1")
            .env("CONVENE_LOG", "warn")
            .envs(settings.iter().copied())
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("convene media starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (mut metrics, mut sip) = (None, None);
        let deadline = Instant::now() + PATIENCE;
        while metrics.is_none() {
            assert!(Instant::now() < deadline, "convene media printed no banner");
            let line = tokio::time::timeout(PATIENCE, lines.next_line()).await.expect("banner in time").expect("read");
            let line = line.expect("convene media exited before it was ready");
            if let Some(rest) = line.trim().strip_prefix("metrics:") {
                metrics = rest.split_whitespace().next().map(|url| url.trim_end_matches("/metrics").to_owned());
            }
            if let Some(address) = line.trim().strip_prefix("phone dial-in (SIP) on udp and tcp ") {
                sip = address.trim().parse().ok();
            }
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let id = std::fs::read_to_string(data.path().join("media-outbox/node-id")).expect("the node's id");
        Self { child, id: id.trim().to_owned(), metrics: metrics.expect("metrics address"), sip, _data: data }
    }
}

/// Waits until `check` holds, polling, or fails saying `what`.
async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    crate::helpers::eventually(what, PATIENCE, check).await
}

async fn node_row(app: &TestApp, id: &str) -> Option<media_node::Model> {
    media_node::Entity::find_by_id(id.to_owned()).one(&app.db().await).await.expect("query")
}

async fn placement(app: &TestApp, room: &str) -> Option<String> {
    let rows = room_placement::Entity::find()
        .filter(room_placement::Column::Room.eq(room))
        .all(&app.db().await)
        .await
        .expect("query");
    rows.into_iter().next().map(|row| row.node_id)
}

/// A control plane with a node in each of `regions`.
async fn control_plane_with_nodes(regions: &[&str]) -> (TestApp, String, Vec<NodeProcess>) {
    let app = spawn_role(Serve::Api, &[("CONVENE_NODE_SECRET", node_secret())]).await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let mut nodes = Vec::new();
    for region in regions {
        nodes.push(NodeProcess::start(&app, &[("CONVENE_NODE_REGION", region)]).await);
    }
    for node in &nodes {
        eventually("every node has said it is alive", async || node_row(&app, &node.id).await).await;
    }
    (app, key, nodes)
}

async fn light_bot(app: &TestApp, key: &str, room: &str, name: &str) -> BotOptions {
    let mut options = bot(app, key, room, name, true).await;
    options.stack = BotStack::Light;
    options
}

/// Each of `bots` receives media from every other.
async fn all_see_each_other(bots: &[&Bot], what: &str) {
    let ids: Vec<_> = bots.iter().map(|bot| bot.id()).collect();
    until(bots, what, |me, stats| {
        ids.iter().filter(|id| **id != me.id()).all(|other| stats.of(*other).any(|track| track.packets > 0))
    })
    .await;
}

#[tokio::test]
async fn meetings_spread_over_the_nodes_and_a_killed_node_s_meeting_carries_on_on_the_other() {
    let (app, key, mut nodes) = control_plane_with_nodes(&["default", "default"]).await;
    let ann_options = light_bot(&app, &key, "room-a", "Ann").await;
    let bob_options = light_bot(&app, &key, "room-a", "Bob").await;
    let ann = Bot::join(ann_options.clone()).await.expect("Ann joins");
    let bob = Bot::join(bob_options.clone()).await.expect("Bob joins");
    let cy = Bot::join(light_bot(&app, &key, "room-b", "Cy").await).await.expect("Cy joins");
    let dee = Bot::join(light_bot(&app, &key, "room-b", "Dee").await).await.expect("Dee joins");
    all_see_each_other(&[&ann, &bob], "Ann and Bob see each other").await;
    all_see_each_other(&[&cy, &dee], "Cy and Dee see each other").await;

    // One meeting per node, and each meeting's people all on its node (its session there holds both).
    let a_node = placement(&app, "room-a").await.expect("room-a is placed");
    let b_node = placement(&app, "room-b").await.expect("room-b is placed");
    assert_ne!(a_node, b_node, "two meetings on two idle nodes go to different nodes");
    let session = eventually("room-a's session is recorded", async || {
        let sessions = room_session::Entity::find()
            .filter(room_session::Column::RoomName.eq("room-a"))
            .filter(room_session::Column::EndedAt.is_null())
            .all(&app.db().await)
            .await
            .expect("query");
        let session = sessions.into_iter().next()?;
        let stays = session_participant::Entity::find()
            .filter(session_participant::Column::SessionId.eq(session.id))
            .all(&app.db().await)
            .await
            .expect("query");
        (stays.len() == 2).then_some(session)
    })
    .await;
    assert_eq!(session.node_id.as_deref(), Some(a_node.as_str()), "room-a's people are on its node");

    // The node hosting room-a dies as a crash would.
    let victim = nodes.iter().position(|node| node.id == a_node).expect("room-a's node is ours");
    let mut victim = nodes.remove(victim);
    victim.child.start_kill().expect("SIGKILL");
    let lost = Instant::now();
    victim.child.wait().await.expect("the node is dead");

    // Ann and Bob notice and join again, as the meeting page does; they land on the other node.
    eventually("Ann and Bob lose their node", async || (ann.is_gone() && bob.is_gone()).then_some(())).await;
    let ann = Bot::join(ann_options).await.expect("Ann joins again");
    let bob = Bot::join(bob_options).await.expect("Bob joins again");
    let back_in = lost.elapsed();
    all_see_each_other(&[&ann, &bob], "Ann and Bob see each other again").await;
    let media_back = lost.elapsed();
    assert_eq!(placement(&app, "room-a").await.as_deref(), Some(b_node.as_str()), "room-a moved to the live node");
    assert!(back_in < Duration::from_secs(5), "back in a meeting {back_in:?} after the node died");

    // The control plane declares the node gone and ends its sessions at its last heartbeat.
    let gone = eventually("the dead node is declared gone", async || {
        node_row(&app, &victim.id).await.filter(|node| node.gone_ms.is_some())
    })
    .await;
    let detected = lost.elapsed();
    println!("node lost: rejoined in {back_in:?}, media again in {media_back:?}, declared gone in {detected:?}");
    let last_seen = chrono::DateTime::from_timestamp_millis(gone.last_seen_ms).expect("a time");
    let dead_session =
        room_session::Entity::find_by_id(session.id).one(&app.db().await).await.expect("query").expect("kept");
    assert_eq!(dead_session.ended_at, Some(last_seen.max(dead_session.started_at)), "ended at the last heartbeat");
    // No minute counted twice: per person, the stay on the dead node ends before the new one starts.
    let stays = session_participant::Entity::find().all(&app.db().await).await.expect("query");
    for name in ["Ann", "Bob"] {
        let mut theirs: Vec<_> = stays.iter().filter(|stay| stay.name == name).collect();
        theirs.sort_by_key(|stay| stay.joined_at);
        assert_eq!(theirs.len(), 2, "{name} stayed twice: {theirs:?}");
        let first_left = theirs[0].left_at.expect("the first stay ended");
        assert!(first_left <= theirs[1].joined_at, "{name}'s stays overlap: {theirs:?}");
        assert!(theirs[1].left_at.is_none(), "{name} is still in");
    }
    // Cy and Dee, on the other node, never noticed.
    all_see_each_other(&[&cy, &dee], "Cy and Dee still see each other").await;
    for bot in [ann, bob, cy, dee] {
        bot.leave().await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_draining_node_keeps_its_meeting_while_new_meetings_go_elsewhere() {
    let (app, key, nodes) = control_plane_with_nodes(&["default", "default"]).await;
    let ann = Bot::join(light_bot(&app, &key, "room-a", "Ann").await).await.expect("Ann joins");
    let a_node = placement(&app, "room-a").await.expect("room-a is placed");
    let draining = nodes.iter().find(|node| node.id == a_node).expect("room-a's node is ours");
    let drained: serde_json::Value = app
        .client
        .post(format!("{}/operator/drain", draining.metrics))
        .send()
        .await
        .expect("the node answers")
        .json()
        .await
        .expect("JSON");
    assert_eq!(drained["draining"], true, "{drained}");
    eventually("the control plane hears of the drain", async || {
        node_row(&app, &a_node).await.filter(|node| node.draining)
    })
    .await;
    // Operators see it on the control plane's internal listener.
    let listed: serde_json::Value = app
        .client
        .get(format!("{}/operator/media-nodes", app.metrics_address))
        .send()
        .await
        .expect("the control plane answers")
        .json()
        .await
        .expect("JSON");
    let state = |id: &str| {
        listed["nodes"].as_array().unwrap().iter().find(|node| node["id"] == id).map(|node| node["state"].clone())
    };
    assert_eq!(state(&a_node), Some(serde_json::json!("draining")), "{listed}");
    let other = nodes.iter().find(|node| node.id != a_node).expect("two nodes");
    assert_eq!(state(&other.id), Some(serde_json::json!("alive")), "{listed}");
    // A new meeting goes to the other node; room-a's next person still joins room-a where it is.
    let bob = Bot::join(light_bot(&app, &key, "room-b", "Bob").await).await.expect("Bob joins");
    let b_node = placement(&app, "room-b").await.expect("room-b is placed");
    assert_ne!(b_node, a_node, "no new meeting on a draining node");
    let cy = Bot::join(light_bot(&app, &key, "room-a", "Cy").await).await.expect("Cy joins room-a");
    assert_eq!(placement(&app, "room-a").await, Some(a_node), "a meeting never moves off a draining node");
    all_see_each_other(&[&ann, &cy], "Ann and Cy meet on the draining node").await;
    for bot in [ann, bob, cy] {
        bot.leave().await;
    }
    app.stop().await;
}

#[tokio::test]
async fn node_endpoints_take_only_the_node_secret_and_checked_heartbeats() {
    let app = spawn_role(Serve::Api, &[("CONVENE_NODE_SECRET", node_secret())]).await;
    let beat = serde_json::json!({
        "node": "node-1", "url": "http://127.0.0.1:1/", "region": "default", "cores": 2, "started_ms": 1,
        "draining": false, "participants": 0, "rooms": 0, "mbit_out": 0, "cpu_millicores": 0,
    });
    let post = |secret: &str, body: serde_json::Value| {
        app.client.post(format!("{}/_node/v1/heartbeat", app.address)).bearer_auth(secret).json(&body).send()
    };
    assert_eq!(post("wrong", beat.clone()).await.expect("sent").status(), 401);
    let mut bad = beat.clone();
    bad["url"] = serde_json::json!("https://example.com/path");
    assert_eq!(post(&node_secret(), bad).await.expect("sent").status(), 400);
    let mut extra = beat.clone();
    extra["sneaky"] = serde_json::json!(1);
    assert_eq!(post(&node_secret(), extra).await.expect("sent").status(), 400);
    for (field, value) in [("region", serde_json::json!("EU West")), ("cores", serde_json::json!(0))] {
        let mut bad = beat.clone();
        bad[field] = value;
        assert_eq!(post(&node_secret(), bad).await.expect("sent").status(), 400, "{field}");
    }
    assert_eq!(post(&node_secret(), beat).await.expect("sent").status(), 204);
    let event = serde_json::json!({"node": "../../etc", "seq": 1, "event": {"type": "started", "at": {"secs_since_epoch": 1, "nanos_since_epoch": 0}, "last_alive": null}});
    let response = app
        .client
        .post(format!("{}/_node/v1/events", app.address))
        .bearer_auth(node_secret())
        .json(&event)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 400);
    app.stop().await;
    // A process that hosts its own rooms takes no nodes at all.
    let single = spawn_app().await;
    let response = single
        .client
        .post(format!("{}/_node/v1/heartbeat", single.address))
        .bearer_auth(node_secret())
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 404);
    single.stop().await;
}

#[tokio::test]
async fn a_deleted_signing_key_opens_no_meeting_on_any_node_from_the_moment_it_is_deleted() {
    let (app, key, _nodes) = control_plane_with_nodes(&["default"]).await;
    let before = light_bot(&app, &key, "room-a", "Ann").await;
    let ann = Bot::join(before.clone()).await.expect("Ann joins with the first key's token");
    let kid = jsonwebtoken::decode_header(&before.token).expect("a JWT").kid.expect("a kid");
    let name = kid.rsplit('/').next().expect("the key's name").to_owned();
    let (status, _) = call(&app, Method::POST, "/v1/signing-keys/rotate", &key, None).await;
    assert_eq!(status, 201);
    let (status, _) = call(&app, Method::DELETE, &format!("/v1/signing-keys/{name}"), &key, None).await;
    assert_eq!(status, 204);
    // The node holds no key: the control plane admits every joiner, so the next join already fails.
    let Err(refused) = Bot::join(before).await else { panic!("the deleted key's token opened the meeting") };
    assert!(matches!(refused, BotError::Refused { reason: Refusal::InvalidToken, .. }), "{refused:?}");
    let bob = Bot::join(light_bot(&app, &key, "room-a", "Bob").await).await.expect("a new key's token opens it");
    all_see_each_other(&[&ann, &bob], "Ann, already in, and Bob meet").await;
    for bot in [ann, bob] {
        bot.leave().await;
    }
    app.stop().await;
}

/// A heartbeat for a node that exists only in the registry, for placement alone.
async fn beat(app: &TestApp, (node, region): (&str, &str), (cores, rooms, participants): (u32, u32, u32)) {
    let beat = serde_json::json!({
        "node": node, "url": "http://127.0.0.1:1/", "region": region, "cores": cores, "started_ms": 1,
        "draining": false, "participants": participants, "rooms": rooms, "mbit_out": 0, "cpu_millicores": 0,
    });
    let url = format!("{}/_node/v1/heartbeat", app.address);
    let response = app.client.post(url).bearer_auth(node_secret()).json(&beat).send().await.expect("sent");
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn a_new_meeting_goes_to_the_node_with_the_most_room_per_core_in_the_region_asked_for() {
    use convene_api::nodes::registry;
    use convene_domain::{Region, RoomName, TenantId};
    let app = spawn_role(Serve::Api, &[("CONVENE_NODE_SECRET", node_secret())]).await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let (_, tenant) = call(&app, Method::GET, "/v1/tenant", &key, None).await;
    let tenant = TenantId::parse(tenant["id"].as_str().expect("an id")).expect("a tenant id");
    let db = app.db().await;
    let place_preferring = async |room: &str, hint: Option<&str>, prefer: Option<&str>| {
        let room = RoomName::parse(room).expect("a room name");
        let hint = hint.map(|region| Region::parse(region).expect("a region"));
        let placed = registry::place(&db, (tenant, &room), (hint.as_ref(), None, prefer), chrono::Utc::now()).await;
        placed.expect("placed").expect("a node").node
    };
    let place = async |room: &str, hint: Option<&str>| place_preferring(room, hint, None).await;
    // Three rooms on eight cores is less per core than one room on one core.
    beat(&app, ("small", "eu-west-1"), (1, 1, 4)).await;
    beat(&app, ("big", "eu-west-1"), (8, 3, 12)).await;
    beat(&app, ("far", "us-east-1"), (8, 0, 0)).await;
    assert_eq!(place("room-a", Some("eu-west-1")).await, "big");
    // A room once placed stays on its node.
    assert_eq!(place("room-a", Some("us-east-1")).await, "big");
    assert_eq!(place("room-b", Some("us-east-1")).await, "far");
    // Without a hint, the organisation's region; an idle node elsewhere does not win.
    let (status, changed) =
        call(&app, Method::PATCH, "/v1/tenant", &key, Some(serde_json::json!({"media_region": "eu-west-1"}))).await;
    assert_eq!((status, changed["media_region"].clone()), (200, serde_json::json!("eu-west-1")), "{changed}");
    assert_eq!(place("room-c", None).await, "big", "placements not yet in a heartbeat count as load");
    // A region without nodes: the meeting runs elsewhere rather than nowhere.
    assert_eq!(place("room-d", Some("ap-south-1")).await, "far");
    // The node whose phone gateway took a meeting's first caller gets it, whatever its region and load; a
    // meeting already running stays where it is.
    assert_eq!(place_preferring("room-e", None, Some("small")).await, "small");
    assert_eq!(place_preferring("room-a", None, Some("small")).await, "big");
    let (status, cleared) =
        call(&app, Method::PATCH, "/v1/tenant", &key, Some(serde_json::json!({"media_region": null}))).await;
    assert_eq!((status, cleared["media_region"].clone()), (200, serde_json::Value::Null));
    // Sending nothing changes nothing; bad names and unknown fields are refused.
    let (status, same) = call(&app, Method::PATCH, "/v1/tenant", &key, Some(serde_json::json!({}))).await;
    assert_eq!((status, same["media_region"].clone()), (200, serde_json::Value::Null));
    for body in [
        serde_json::json!({"media_region": "EU"}),
        serde_json::json!({"media_region": 7}),
        serde_json::json!({"name": "x"}),
    ] {
        let (status, refused) = call(&app, Method::PATCH, "/v1/tenant", &key, Some(body.clone())).await;
        assert_eq!(
            (status, refused["error"].clone()),
            (400, serde_json::json!("invalid_request")),
            "{body}: {refused}"
        );
    }
    let mint = serde_json::json!({"room": "room-e", "user": {"name": "Ann"}, "region": "Europe"});
    let (status, refused) = call(&app, Method::POST, "/v1/meeting-tokens", &key, Some(mint)).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["message"].as_str().unwrap_or_default().starts_with("region:"), "{refused}");
    app.stop().await;
}

#[tokio::test]
async fn the_first_joiner_s_token_or_else_the_organisation_chooses_the_meeting_s_region() {
    let (app, key, nodes) = control_plane_with_nodes(&["eu-west-1", "us-east-1"]).await;
    let node_in = |region: usize| nodes[region].id.clone();
    let (status, _) =
        call(&app, Method::PATCH, "/v1/tenant", &key, Some(serde_json::json!({"media_region": "us-east-1"}))).await;
    assert_eq!(status, 200);
    let ann = Bot::join(light_bot(&app, &key, "room-a", "Ann").await).await.expect("Ann joins");
    assert_eq!(placement(&app, "room-a").await, Some(node_in(1)), "the organisation's region");
    let body = serde_json::json!({"room": "room-b", "user": {"name": "Bob"}, "moderator": true, "region": "eu-west-1"});
    let (status, minted) = call(&app, Method::POST, "/v1/meeting-tokens", &key, Some(body)).await;
    assert_eq!(status, 201, "{minted}");
    let mut bob_options = light_bot(&app, &key, "room-b", "Bob").await;
    bob_options.token = minted["token"].as_str().expect("a token").to_owned();
    let bob = Bot::join(bob_options).await.expect("Bob joins");
    assert_eq!(placement(&app, "room-b").await, Some(node_in(0)), "the token's region");
    // Later joiners of room-b, without a hint, meet Bob on his meeting's node.
    let cy = Bot::join(light_bot(&app, &key, "room-b", "Cy").await).await.expect("Cy joins");
    all_see_each_other(&[&bob, &cy], "Bob and Cy meet in eu-west-1").await;
    for bot in [ann, bob, cy] {
        bot.leave().await;
    }
    app.stop().await;
}

#[tokio::test]
async fn the_api_records_streams_and_calls_out_through_the_node_its_meeting_runs_on() {
    let plans = ("CONVENE_PLANS", crate::recordings::RECORDING_PLANS.to_owned());
    let app = spawn_role(Serve::Api, &[("CONVENE_NODE_SECRET", node_secret()), plans]).await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let other = tenant_key(&app, "owner@globex.example").await;
    let node = NodeProcess::start(&app, &[("CONVENE_STREAMING_ALLOW_PRIVATE", "1")]).await;
    eventually("the node has said it is alive", async || node_row(&app, &node.id).await).await;
    let (status, _) = call(&app, Method::POST, "/v1/rooms", &key, Some(serde_json::json!({"name": "room-a"}))).await;
    assert_eq!(status, 201);
    let live = |port: u16| serde_json::json!({ "url": format!("rtmp://127.0.0.1:{port}/live"), "key": "stream-key" });
    let (status, refused) = call(&app, Method::POST, "/v1/rooms/room-a/live-stream", &key, Some(live(1))).await;
    assert_eq!(status, 409, "nobody is in the meeting yet: {refused}");

    // Ann is in the meeting (signalling only: the stream shows an empty stage and carries silence).
    let ann_token = crate::signal::token(&app, &key, "room-a", "Ann", true).await;
    let (mut ann, welcome) = crate::signal::hello(&app, "room-a", &ann_token).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    // The streaming service: ffmpeg listening for RTMP on loopback, which the node is allowed to reach.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let received = app.data_dir.path().join("received.flv");
    let mut service = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-listen", "1", "-f", "flv", "-i"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/stream-key"))
        .args(["-c", "copy"])
        .arg(&received)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg runs (cargo xtask test installs it)");
    eventually("the streaming service listens", async || convene_bots::s3::listening(port).then_some(())).await;
    let (status, started) = call(&app, Method::POST, "/v1/rooms/room-a/live-stream", &key, Some(live(port))).await;
    assert_eq!(status, 201, "{started}");
    let notice = crate::recordings::hear_kind(&mut ann, "live_stream_changed").await;
    assert_eq!((notice["live"].as_bool(), notice["by"].as_str()), (Some(true), Some("the organisation's app")));
    // Another organisation's key finds no meeting there.
    let (status, _) = call(&app, Method::POST, "/v1/rooms/room-a/live-stream", &other, Some(live(port))).await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, Method::DELETE, "/v1/rooms/room-a/live-stream", &other, None).await;
    assert_eq!(status, 404);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, stopped) = call(&app, Method::DELETE, "/v1/rooms/room-a/live-stream", &key, None).await;
    assert_eq!((status, &stopped["live"]), (200, &serde_json::json!(false)), "{stopped}");
    assert_eq!(crate::recordings::hear_kind(&mut ann, "live_stream_changed").await["live"], false);
    let ended = tokio::time::timeout(PATIENCE, service.wait()).await.expect("the stream ends");
    assert!(ended.expect("ffmpeg").success(), "the service took the stream whole");
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .arg(&received)
        .output()
        .expect("ffprobe runs");
    let streams = String::from_utf8_lossy(&probe.stdout);
    assert!(streams.contains("h264") && streams.contains("aac"), "the service got the meeting: {streams}");

    // The node's own rules answer in its words: it has no phone line, and without a bucket it does not record
    // (the composer could not reach its tracks).
    let call_out = serde_json::json!({"number": "+15551234567"});
    let (status, refused) = call(&app, Method::POST, "/v1/rooms/room-a/dial-out", &key, Some(call_out)).await;
    assert_eq!(status, 409, "{refused}");
    let (status, refused) = call(&app, Method::POST, "/v1/rooms/room-a/recording", &key, None).await;
    assert_eq!((status, refused["message"].as_str()), (409, Some("this server does not record meetings")), "{refused}");

    // The node's endpoint takes only the secret, and only sound commands.
    let url = format!("{}/_node/v1/command", node_address(&app, &node).await);
    let command = serde_json::json!({
        "tenant": uuid::Uuid::nil(), "room": "room-a", "by": "x", "command": {"command": "record", "start": true},
    });
    let send = |secret: &str, body: serde_json::Value| app.client.post(&url).bearer_auth(secret).json(&body).send();
    assert_eq!(send("wrong", command.clone()).await.expect("sent").status(), 401);
    let mut bad = command.clone();
    bad["by"] = serde_json::json!("a\u{0}b");
    assert_eq!(send(&node_secret(), bad).await.expect("sent").status(), 400);
    let mut bad = command.clone();
    bad["command"] = serde_json::json!({"command": "format_disk"});
    assert_eq!(send(&node_secret(), bad).await.expect("sent").status(), 400);
    let answer: serde_json::Value = send(&node_secret(), command).await.expect("sent").json().await.expect("JSON");
    assert_eq!(answer, serde_json::json!({"outcome": "not_running"}), "the nil tenant has no meeting");
    drop(ann);
    app.stop().await;
}

/// Where the control plane reaches `node`.
async fn node_address(app: &TestApp, node: &NodeProcess) -> String {
    node_row(app, &node.id).await.expect("the node is known").url.trim_end_matches('/').to_owned()
}

#[tokio::test]
async fn a_media_node_s_phone_gateway_lets_callers_in_by_pin_and_calls_phones_for_the_api() {
    use crate::{dial_out, phone};
    let plans = ("CONVENE_PLANS", crate::recordings::RECORDING_PLANS.to_owned());
    let app = spawn_role(Serve::Api, &[("CONVENE_NODE_SECRET", node_secret()), plans]).await;
    let key = phone::tenant_with_room(&app, "standup", "123456789").await;
    // The node calls out through a trunk on loopback (sipp), which challenges for credentials.
    let phone_socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let answer = dial_out::narrowband_answer(&phone_socket.local_addr().unwrap().port().to_string());
    let steps = format!("{}{}", dial_out::challenged_and_answered(&answer), convene_bots::sipp::hung_up());
    let (trunk_port, trunk) = convene_bots::sipp::trunk(&steps).await;
    let trunk_uri = format!("sip:127.0.0.1:{trunk_port}");
    let node = NodeProcess::start(
        &app,
        &[
            ("CONVENE_SIP_ADDR", "127.0.0.1:0"),
            ("CONVENE_SIP_RTP_PORTS", dial_out::RTP_PORTS),
            ("CONVENE_SIP_TRUNK", trunk_uri.as_str()),
            ("CONVENE_SIP_TRUNK_USERNAME", dial_out::TRUNK_USER),
            ("CONVENE_SIP_TRUNK_PASSWORD", dial_out::TRUNK_PASSWORD),
        ],
    )
    .await;
    let gateway = node.sip.expect("the node runs a phone gateway");
    eventually("the node has said it is alive", async || node_row(&app, &node.id).await).await;

    // A caller types the PIN at the node: the meeting is placed there and they are in it, as the records say.
    let steps = format!(
        "{}<pause milliseconds=\"1000\"/>\n{}<pause milliseconds=\"8000\"/>\n{}",
        phone::dial(),
        convene_bots::sipp::rtp_keys("123456789#"),
        phone::caller().in_dialog("BYE", 2, "", ""),
    );
    let caller = tokio::spawn(async move { phone::sipp(gateway, "u1", phone::NUMBER, &steps).await });
    assert!(
        phone::eventually_present(&app, &key, |list| list.iter().any(|person| person["name"] == "Phone ••• 4321"))
            .await,
        "the caller is in the meeting"
    );
    assert_eq!(placement(&app, "standup").await.as_deref(), Some(node.id.as_str()), "on the node that took the call");
    assert!(caller.await.unwrap(), "the call went as the caller's script says");

    // The API calls a phone into the meeting, which runs on the node: its trunk rings the phone.
    let ann_token = crate::signal::token(&app, &key, "standup", "Ann", true).await;
    let (mut ann, welcome) = crate::signal::hello(&app, "standup", &ann_token).await;
    assert_eq!(welcome["room"]["dial_out"], true, "the node has a phone line: {welcome}");
    let callee = serde_json::json!({ "number": dial_out::CALLEE });
    let (status, placed) = call(&app, Method::POST, "/v1/rooms/standup/dial-out", &key, Some(callee)).await;
    assert_eq!(status, 202, "{placed}");
    let joined = phone::hear_until(&mut ann, |message| {
        message["type"] == "participant_joined" && message["participant"]["name"] == "Phone ••• 4567"
    })
    .await;
    crate::signal::say(&mut ann, serde_json::json!({ "type": "kick", "participant": joined["participant"]["id"] }))
        .await;
    assert!(trunk.await.unwrap(), "the trunk saw the credentials, the caller id, the answer and the BYE");

    // The control plane's phone endpoint takes only the secret and sound questions. A caller whose meeting
    // runs on another node is passed there: the asking gateway is given that node's gateway and a ticket,
    // which only that node redeems, once.
    let url = format!("{}/_node/v1/phone", app.address);
    let ask = |secret: &str, body: serde_json::Value| app.client.post(&url).bearer_auth(secret).json(&body).send();
    let admit = serde_json::json!({
        "ask": "admit", "node": "node-elsewhere", "number": phone::NUMBER, "caller": null, "pin": "123456789",
    });
    assert_eq!(ask("wrong", admit.clone()).await.unwrap().status(), 401);
    let mut bad = admit.clone();
    bad["node"] = serde_json::json!("not a node id!");
    assert_eq!(ask(&node_secret(), bad).await.unwrap().status(), 400);
    let mut bad = admit.clone();
    bad["ask"] = serde_json::json!("format_disk");
    assert_eq!(ask(&node_secret(), bad).await.unwrap().status(), 400);
    let answer: serde_json::Value = ask(&node_secret(), admit).await.unwrap().json().await.unwrap();
    assert_eq!(answer["answer"], "relay", "the meeting is on the node: {answer}");
    assert_eq!(answer["gateway"], gateway.to_string(), "{answer}");
    let ticket = answer["ticket"].as_str().expect("a ticket").to_owned();
    let redeem = |node: &str, ticket: &str| {
        let asked = ask(&node_secret(), serde_json::json!({ "ask": "admit_relayed", "node": node, "ticket": ticket }));
        async move { asked.await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    assert_eq!(redeem("node-elsewhere", &ticket).await["refusal"], "unknown_pin", "another node's ticket");
    let forged = format!("{ticket}x");
    assert_eq!(redeem(&node.id, &forged).await["refusal"], "unknown_pin", "a changed ticket");
    let admitted = redeem(&node.id, &ticket).await;
    assert_eq!((admitted["answer"].as_str(), admitted["room"].as_str()), (Some("admitted"), Some("standup")));
    assert_eq!(redeem(&node.id, &ticket).await["refusal"], "unknown_pin", "a ticket lets in once");
    let mut wrong_pin = serde_json::json!({
        "ask": "admit", "node": node.id, "number": phone::NUMBER, "caller": null, "pin": "987654321",
    });
    let answer: serde_json::Value = ask(&node_secret(), wrong_pin.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(answer["refusal"], "unknown_pin", "{answer}");
    wrong_pin["number"] = serde_json::json!("+15550000000");
    let answer: serde_json::Value = ask(&node_secret(), wrong_pin).await.unwrap().json().await.unwrap();
    assert_eq!(answer["refusal"], "unknown_pin", "not one of the organisation's numbers: {answer}");
    // Wrong PINs count across the nodes: ten from one caller, and the right one is refused too for a while.
    let guess = |pin: &str| {
        let body = serde_json::json!({
            "ask": "admit", "node": node.id, "number": phone::NUMBER, "caller": "+15550001111", "pin": pin,
        });
        let asked = ask(&node_secret(), body);
        async move { asked.await.unwrap().json::<serde_json::Value>().await.unwrap()["refusal"].clone() }
    };
    for _ in 0..10 {
        assert_eq!(guess("111111111").await, "unknown_pin");
    }
    assert_eq!(guess("123456789").await, "unavailable", "the caller is out of guesses on every node");
    drop(ann);
}

/// A control plane on a plan with dial-in (the phone tests' tenant, room `standup` with PIN 123456789, and
/// its key) and two nodes running phone gateways, each known by its heartbeats.
async fn two_phone_nodes() -> (TestApp, String, [NodeProcess; 2]) {
    let plans = ("CONVENE_PLANS", crate::recordings::RECORDING_PLANS.to_owned());
    let app = spawn_role(Serve::Api, &[("CONVENE_NODE_SECRET", node_secret()), plans]).await;
    let key = crate::phone::tenant_with_room(&app, "standup", "123456789").await;
    let gateway = [("CONVENE_SIP_ADDR", "127.0.0.1:0")];
    let nodes = [NodeProcess::start(&app, &gateway).await, NodeProcess::start(&app, &gateway).await];
    for node in &nodes {
        let sip = node.sip.expect("the node runs a phone gateway");
        let row = eventually("the node's heartbeat names its gateway", async || {
            node_row(&app, &node.id).await.filter(|row| row.sip_addr.is_some())
        })
        .await;
        assert_eq!(row.sip_addr, Some(sip.to_string()), "other gateways reach it there");
    }
    (app, key, nodes)
}

#[tokio::test]
async fn a_caller_who_reaches_another_node_is_passed_to_the_meeting_s_node() {
    use crate::phone;
    let (app, key, nodes) = two_phone_nodes().await;

    // A moderator starts the meeting on one node; the caller's trunk reaches the other.
    let ann_token = crate::signal::token(&app, &key, "standup", "Ann", true).await;
    let (mut ann, welcome) = crate::signal::hello(&app, "standup", &ann_token).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let meeting_node = placement(&app, "standup").await.expect("the meeting is placed");
    let other = nodes.iter().find(|node| node.id != meeting_node).expect("two nodes");
    let other_gateway = other.sip.expect("a gateway");
    // The PIN at the other node, then `*6` (keys ride in the audio, so this proves it passes through), a hold,
    // and the BYE the moderator's removal sends back through the other node.
    let steps = format!(
        "{}<pause milliseconds=\"1000\"/>\n{}<pause milliseconds=\"3000\"/>\n{}{}{}",
        phone::dial(),
        convene_bots::sipp::rtp_keys("123456789#"),
        convene_bots::sipp::rtp_keys("*6"),
        phone::caller().hold(2),
        convene_bots::sipp::hung_up(),
    );
    let caller = tokio::spawn(async move { phone::sipp(other_gateway, "u1", phone::NUMBER, &steps).await });
    let joined = phone::hear_until(&mut ann, |message| message["type"] == "participant_joined").await;
    assert_eq!(joined["participant"]["name"], "Phone ••• 4321", "{joined}");
    assert_eq!(placement(&app, "standup").await, Some(meeting_node.clone()), "the meeting stayed where it was");
    let muted = phone::hear_until(&mut ann, |message| message["type"] == "participant_updated").await;
    assert_eq!(muted["participant"]["audio_muted"], true, "*6 reached the meeting's node: {muted}");
    crate::signal::say(&mut ann, serde_json::json!({ "type": "kick", "participant": joined["participant"]["id"] }))
        .await;
    let left = phone::hear_until(&mut ann, |message| message["type"] == "participant_left").await;
    assert_eq!(left["reason"], "kicked");
    assert!(caller.await.unwrap(), "the caller was let in, held, and hung up by the meeting's node through the other");

    // A ticket the control plane did not seal lets nobody in at the meeting's node.
    let meeting_gateway =
        nodes.iter().find(|node| node.id == meeting_node).and_then(|node| node.sip).expect("a gateway");
    let forged = phone::not_found("X-Convene-Relay: eyJ0IjoiZm9yZ2VkIn0.c2lnbmF0dXJl\n");
    assert!(phone::sipp(meeting_gateway, "u1", phone::NUMBER, &forged).await, "404 for a forged ticket");

    // The removal holds whichever node the caller tries.
    let again = format!(
        "{}<pause milliseconds=\"500\"/>\n{}{}",
        phone::dial(),
        convene_bots::sipp::rtp_keys("123456789#"),
        convene_bots::sipp::hung_up()
    );
    assert!(phone::sipp(other_gateway, "u1", phone::NUMBER, &again).await, "told so and hung up");
    drop(ann);
    app.stop().await;
}

#[tokio::test]
async fn callers_at_two_nodes_hear_each_other_through_the_meeting_s_node() {
    use crate::phone::{self, listen, tone_caller, tone_share};
    let (app, key, nodes) = two_phone_nodes().await;
    let dir = tempfile::tempdir().unwrap();
    let (low, high) = (dir.path().join("400.wav"), dir.path().join("1000.wav"));
    std::fs::write(&low, convene_bots::sipp::ulaw_wav(Some(400.0), 20)).unwrap();
    std::fs::write(&high, convene_bots::sipp::ulaw_wav(Some(1_000.0), 20)).unwrap();
    let ears = [
        tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    ];
    // Each caller types the PIN by INFO, says its tone, and hangs up itself. The first caller's node takes the
    // meeting; the second caller's trunk reaches the other node.
    let sip = |node: &NodeProcess| node.sip.expect("a gateway");
    let first = tone_caller(sip(&nodes[0]), (&ears[0], &low), "+15550001111", 12);
    assert!(phone::eventually_present(&app, &key, |list| list.len() == 1).await, "the first caller is in");
    assert_eq!(placement(&app, "standup").await.as_deref(), Some(nodes[0].id.as_str()));
    let second = tone_caller(sip(&nodes[1]), (&ears[1], &high), "+15550002222", 12);
    assert!(phone::eventually_present(&app, &key, |list| list.len() == 2).await, "both callers are in the meeting");

    // Past the joining prompts, while both tones play: each hears the other, through the relay both ways.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let [first_ear, second_ear] = ears;
    let (first_heard, second_heard) =
        tokio::join!(listen(first_ear, Duration::from_secs(4)), listen(second_ear, Duration::from_secs(4)));
    let rate = convene_media::phone::tones::RATE;
    let (first_hears_other, second_hears_other) =
        (tone_share(&first_heard, 1_000.0, rate), tone_share(&second_heard, 400.0, rate));
    let (first_hears_self, second_hears_self) =
        (tone_share(&first_heard, 400.0, rate), tone_share(&second_heard, 1_000.0, rate));
    eprintln!(
        "first: other {first_hears_other:.2} self {first_hears_self:.2}; second (relayed): other {second_hears_other:.2} self {second_hears_self:.2}"
    );
    assert!(second_heard.len() >= 8_000 * 3, "the relayed caller got audio all along: {}", second_heard.len());
    assert!(first_hears_other > 0.5 && second_hears_other > 0.5, "each hears the other's tone");
    assert!(first_hears_self < 0.05 && second_hears_self < 0.05, "and not their own");

    // The relayed caller's own BYE reaches the meeting's node: they leave, and no call is left behind.
    assert!(first.await.unwrap() && second.await.unwrap(), "both calls went as written");
    assert!(phone::eventually_present(&app, &key, <[serde_json::Value]>::is_empty).await, "both callers left");
    app.stop().await;
}
