//! Recording through the API and the signalling socket: the plan, the room's end-to-end encryption and
//! the moderator's token decide; everyone in the meeting hears when recording starts and stops, and who
//! did it; another tenant sees none of it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, call, spawn_app, spawn_configured, tenant_key},
    signal::{Socket, hear, hello, say, token},
};

/// A plans file whose default plan includes recording (the e2e tests use it too).
pub(crate) const RECORDING_PLANS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/recording-plans.toml");

/// The next frame of `kind`, skipping others.
pub(crate) async fn hear_kind(socket: &mut Socket, kind: &str) -> Value {
    for _ in 0..20 {
        let frame = hear(socket).await.expect("the connection stays open");
        if frame["type"] == kind {
            return frame;
        }
    }
    panic!("no {kind} frame");
}

#[tokio::test]
async fn a_plan_without_recording_refuses_it_with_words_saying_so() {
    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let ann = token(&app, &key, "standup", "Ann", true).await;
    let (_ann, welcome) = hello(&app, "standup", &ann).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let (status, refused) = call(&app, Method::POST, "/v1/rooms/standup/recording", &key, None).await;
    assert_eq!((status, refused["error"].as_str()), (403, Some("forbidden")), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("does not include recording"), "{refused}");
    app.stop().await;
}

#[tokio::test]
async fn recording_is_announced_to_everyone_refused_for_encrypted_rooms_and_kept_from_other_tenants() {
    let app = spawn_configured(&[("CONVENE_PLANS", RECORDING_PLANS.to_owned())]).await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let stranger = tenant_key(&app, "owner@globex.example").await;
    let mint = |name: &str, moderator: bool, recording: bool| {
        json!({ "room": "standup", "user": { "name": name }, "moderator": moderator,
            "features": { "recording": recording } })
    };
    let (_, ann) = call(&app, Method::POST, "/v1/meeting-tokens", &key, Some(mint("Ann", true, true))).await;
    let (_, cy) = call(&app, Method::POST, "/v1/meeting-tokens", &key, Some(mint("Cy", true, false))).await;
    let bob = token(&app, &key, "standup", "Bob", false).await;
    let (mut ann, _) = hello(&app, "standup", ann["token"].as_str().unwrap()).await;
    let (mut bob, _) = hello(&app, "standup", &bob).await;
    let (mut cy, _) = hello(&app, "standup", cy["token"].as_str().unwrap()).await;

    // A participant, and a moderator whose token does not carry the feature, are refused.
    say(&mut bob, json!({ "type": "start_recording" })).await;
    assert_eq!(hear_kind(&mut bob, "error").await["code"], "forbidden");
    say(&mut cy, json!({ "type": "start_recording" })).await;
    let refused = hear_kind(&mut cy, "error").await;
    assert_eq!(refused["message"], "your meeting link does not allow recording", "{refused}");

    say(&mut ann, json!({ "type": "start_recording" })).await;
    let started = hear_kind(&mut bob, "recording_changed").await;
    assert_eq!((started["recording"].as_bool(), started["by"].as_str()), (Some(true), Some("Ann")), "{started}");
    assert_eq!(hear_kind(&mut bob, "room_changed").await["room"]["recording"], true);
    // Another tenant cannot see it nor stop it; the organisation's app can.
    let (status, _) = call(&app, Method::DELETE, "/v1/rooms/standup/recording", &stranger, None).await;
    assert_eq!(status, 404);
    let (status, page) = call(&app, Method::GET, "/v1/recordings", &stranger, None).await;
    assert_eq!((status, page["recordings"].as_array().map(Vec::len)), (200, Some(0)), "{page}");
    let (status, stopped) = call(&app, Method::DELETE, "/v1/rooms/standup/recording", &key, None).await;
    assert_eq!(status, 200, "{stopped}");
    let notice = hear_kind(&mut bob, "recording_changed").await;
    assert_eq!((notice["recording"].as_bool(), notice["by"].as_str()), (Some(false), Some("the organisation's app")));
    let id = stopped["id"].as_str().unwrap();
    let (status, _) = call(&app, Method::GET, &format!("/v1/recordings/{id}"), &stranger, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, Method::DELETE, &format!("/v1/recordings/{id}"), &stranger, None).await;
    assert_eq!(status, 404);

    // The room turns to end-to-end encryption: the next arrival brings the setting, and recording is refused.
    call(&app, Method::POST, "/v1/rooms", &key, Some(json!({ "name": "standup" }))).await;
    let (status, _) =
        call(&app, Method::PATCH, "/v1/rooms/standup", &key, Some(json!({ "end_to_end_encryption": true }))).await;
    assert_eq!(status, 200);
    let dee = token(&app, &key, "standup", "Dee", false).await;
    let (_dee, _) = hello(&app, "standup", &dee).await;
    let (status, refused) = call(&app, Method::POST, "/v1/rooms/standup/recording", &key, None).await;
    assert_eq!(status, 409, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("end-to-end encrypted"), "{refused}");
    say(&mut ann, json!({ "type": "start_recording" })).await;
    assert_eq!(hear_kind(&mut ann, "error").await["code"], "forbidden");
    app.stop().await;
}

/// Runs a tool and answers its standard output, failing the test with its errors.
fn run(program: &str, args: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("{program} runs (cargo xtask test installs ffmpeg): {error}"));
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

/// The power of `frequency` in `samples` (8 kHz mono), by the Goertzel algorithm, per sample.
fn tone_power(samples: &[f64], frequency: f64) -> f64 {
    let coefficient = 2.0 * (2.0 * std::f64::consts::PI * frequency / 8000.0).cos();
    let (mut previous, mut before) = (0.0, 0.0);
    for sample in samples {
        let current = sample + coefficient * previous - before;
        before = previous;
        previous = current;
    }
    (previous * previous + before * before - coefficient * previous * before) / samples.len() as f64
}

/// What the node leaves in `dir` after 8 s of Ann, there from the start with a 440 Hz tone, and Bob, who
/// joins 4 s in with a 1 kHz one: VP8 and Opus tracks, as browsers send them and the node writes them, and
/// the manifest.
fn record_ann_and_bob(dir: &std::path::Path) {
    let path = |name: &str| dir.join(name).display().to_string();
    let make = |source: &str, seconds: &str, codec: &str, file: &str| {
        run("ffmpeg", &["-v", "error", "-y", "-f", "lavfi", "-i", source, "-t", seconds, "-c", codec, &path(file)]);
    };
    make("testsrc=size=640x360:rate=15", "8", "libvpx", "1-camera.webm");
    make("sine=frequency=440", "8", "libopus", "1-microphone.webm");
    make("color=c=white:size=640x360:rate=15", "4", "libvpx", "2-camera.webm");
    make("sine=frequency=1000", "4", "libopus", "2-microphone.webm");
    let track = |file: &str, participant: u64, source: &str, first: u64| {
        json!({ "file": file, "participant": participant, "source": source,
            "codec": if source == "camera" { "vp8" } else { "opus" }, "first_ms": first, "last_ms": 8000, "bytes": 1 })
    };
    let manifest = json!({
        "version": 1, "recording": "r", "room": "standup", "started_at_unix_ms": 1_700_000_000_000u64,
        "stopped_at_unix_ms": 1_700_000_008_000u64, "stop_reason": null,
        "tracks": [track("1-camera.webm", 1, "camera", 0), track("1-microphone.webm", 1, "microphone", 0),
            track("2-camera.webm", 2, "camera", 4000), track("2-microphone.webm", 2, "microphone", 4000)],
        "events": [{ "at_ms": 0, "participant": 1, "event": "joined", "name": "Ann" },
            { "at_ms": 4000, "participant": 2, "event": "joined", "name": "Bob" }],
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
}

#[tokio::test]
async fn a_recording_is_composed_into_one_mp4_with_late_joiners_from_their_join_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    record_ann_and_bob(dir.path());

    let composed = convene_api::meetings::recordings::compose::compose(dir.path()).await.expect("composed");
    assert_eq!(
        (composed.duration_ms, composed.participants.as_slice()),
        (8000, &["Ann".to_owned(), "Bob".to_owned()][..])
    );
    let video = path("recording.mp4");
    let probe = |file: &str, entries: &str| {
        String::from_utf8(run("ffprobe", &["-v", "error", "-show_entries", entries, "-of", "csv=p=0", file])).unwrap()
    };
    assert_eq!(probe(&video, "stream=codec_name").split_whitespace().collect::<Vec<_>>(), ["h264", "aac"]);
    let duration: f64 = probe(&video, "format=duration").trim().parse().unwrap();
    assert!((duration - 8.0).abs() <= 1.0, "{duration} s");
    assert_eq!(probe(&path("audio.m4a"), "stream=codec_name").trim(), "aac");
    run("ffmpeg", &["-v", "error", "-xerror", "-i", &video, "-f", "null", "-"]);

    // The mix: Ann's tone throughout, Bob's only once he is there.
    let pcm = run("ffmpeg", &["-v", "error", "-i", &video, "-vn", "-ac", "1", "-ar", "8000", "-f", "s16le", "-"]);
    let samples: Vec<f64> =
        pcm.chunks_exact(2).map(|pair| f64::from(i16::from_le_bytes([pair[0], pair[1]])) / 32768.0).collect();
    let window = |from: f64, to: f64| &samples[(from * 8000.0) as usize..(to * 8000.0) as usize];
    let (before, after) = (window(1.0, 3.0), window(5.0, 7.0));
    assert!(tone_power(before, 440.0) > 100.0 * tone_power(before, 1000.0), "only Ann before Bob joins");
    assert!(tone_power(after, 1000.0) > 0.01 && tone_power(after, 440.0) > 0.01, "both after");
    assert!(tone_power(after, 1000.0) > 100.0 * tone_power(before, 1000.0), "Bob's tone starts when he joins");

    // The picture: Bob's (white) tile is black until he joins.
    let right_half_brightness = |at: &str| {
        let frame = run(
            "ffmpeg",
            &[
                "-v",
                "error",
                "-ss",
                at,
                "-i",
                &video,
                "-frames:v",
                "1",
                "-vf",
                "scale=64:36,format=gray",
                "-f",
                "rawvideo",
                "-",
            ],
        );
        // The middle rows of the right tile (the tile letterboxes a 16:9 camera).
        let right: Vec<u32> = frame
            .chunks(64)
            .skip(12)
            .take(12)
            .flat_map(|row| row[40..].iter().map(|value| u32::from(*value)))
            .collect();
        right.iter().sum::<u32>() / right.len() as u32
    };
    assert!(right_half_brightness("2") < 20, "black before Bob joins");
    assert!(right_half_brightness("6") > 200, "Bob's white camera after");
}

/// A ready recording of 20 s with Ann and Bob, as the composer leaves one, in `tenant`.
pub(crate) async fn insert_ready_recording(app: &TestApp, id: uuid::Uuid, tenant: uuid::Uuid) {
    insert_recording_made(app, id, tenant, chrono::Utc::now()).await;
}

/// A ready recording of a meeting that ended at `now`, as the composer leaves it.
async fn insert_recording_made(app: &TestApp, id: uuid::Uuid, tenant: uuid::Uuid, now: chrono::DateTime<chrono::Utc>) {
    insert_recording(app, (id, tenant), "ready", now).await;
}

/// A recording in `state` of a meeting that ended at `now`.
async fn insert_recording(
    app: &TestApp,
    (id, tenant): (uuid::Uuid, uuid::Uuid),
    state: &str,
    now: chrono::DateTime<chrono::Utc>,
) {
    use convene_api::entities::recording;
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    recording::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant),
        room: Set("standup".to_owned()),
        node: Set("node".to_owned()),
        started_by: Set("Ann".to_owned()),
        started_by_user: Set(None),
        notify_email: Set(None),
        started_at: Set(now),
        stopped_at: Set(Some(now)),
        state: Set(state.to_owned()),
        failure: Set(None),
        interrupted: Set(false),
        track_bytes: Set(1),
        duration_ms: Set(Some(20_000)),
        file_bytes: Set(Some(100_000)),
        participants: Set(Some("[\"Ann\",\"Bob\"]".to_owned())),
        attempts: Set(1),
        claimed_at: Set(None),
        object_key: Set(None),
        store_attempts: Set(0),
        retry_at: Set(None),
    }
    .insert(&app.db().await)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_ready_recording_downloads_through_its_signed_link_until_it_expires_or_is_deleted() {
    use convene_api::{meetings::recordings::download_message, platform::envelope::Envelope};

    let app = spawn_app().await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let stranger = tenant_key(&app, "owner@globex.example").await;
    let (_, tenant) = call(&app, Method::GET, "/v1/tenant", &key, None).await;
    let id = uuid::Uuid::now_v7();
    let dir = app.data_dir.path().join("recordings").join(id.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let video: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    std::fs::write(dir.join("recording.mp4"), &video).unwrap();
    std::fs::write(dir.join("audio.m4a"), b"sound").unwrap();
    let now = chrono::Utc::now();
    let tenant = tenant["id"].as_str().unwrap().parse().unwrap();
    insert_ready_recording(&app, id, tenant).await;

    let (status, one) = call(&app, Method::GET, &format!("/v1/recordings/{id}"), &key, None).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!((one["duration_seconds"].as_i64(), one["participants"].clone()), (Some(20), json!(["Ann", "Bob"])));
    let link = one["download"]["video_url"].as_str().unwrap().to_owned();
    let local = link.replace(app.settings().public_url.as_str().trim_end_matches('/'), &app.address);
    // Anyone with the link gets the file, with ranges for seeking; no key, no cookie.
    let plain = reqwest::Client::new();
    let fetched = plain.get(&local).send().await.unwrap();
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), video.as_slice());
    let ranged = plain.get(&local).header("range", "bytes=10-19").send().await.unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), &video[10..20]);
    // Another tenant does not see it; a changed link or another file is refused.
    let (status, _) = call(&app, Method::GET, &format!("/v1/recordings/{id}"), &stranger, None).await;
    assert_eq!(status, 404);
    let tampered = local.replace("recording.mp4", "audio.m4a");
    assert_eq!(plain.get(&tampered).send().await.unwrap().status(), 403);
    let other_file = local.replace("recording.mp4", "manifest.json");
    assert_eq!(plain.get(&other_file).send().await.unwrap().status(), 404);
    // A link whose time is up does not open, even with a good signature.
    let envelope = Envelope::for_settings(app.settings()).unwrap();
    let past = (now - chrono::TimeDelta::minutes(1)).timestamp();
    let signature = envelope.sign(&download_message(id, "recording.mp4", past));
    let expired = format!("{}/recordings/{id}/recording.mp4?expires={past}&signature={signature}", app.address);
    let refused = plain.get(&expired).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("expired"));
    // Deleted: the row, the files, and every link.
    let (status, _) = call(&app, Method::DELETE, &format!("/v1/recordings/{id}"), &stranger, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, Method::DELETE, &format!("/v1/recordings/{id}"), &key, None).await;
    assert_eq!(status, 204);
    assert!(!dir.exists(), "the files are gone");
    assert_eq!(plain.get(&local).send().await.unwrap().status(), 404);
    app.stop().await;
}

/// Polls `check` every 200 ms for up to `seconds`, until it answers something.
async fn wait_for<T, F: std::future::Future<Output = Option<T>>>(
    seconds: u64,
    mut check: impl FnMut() -> F,
) -> Option<T> {
    for _ in 0..seconds * 5 {
        if let Some(found) = check().await {
            return Some(found);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    None
}

#[tokio::test]
async fn with_a_bucket_a_composed_recording_is_uploaded_once_the_bucket_answers_and_downloads_from_it() {
    use convene_api::entities::recording;
    use sea_orm::EntityTrait;

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let app = spawn_configured(&convene_bots::s3::recording_settings(&endpoint)).await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let stranger = tenant_key(&app, "owner@globex.example").await;
    let (_, tenant) = call(&app, Method::GET, "/v1/tenant", &key, None).await;
    let tenant = uuid::Uuid::parse_str(tenant["id"].as_str().unwrap()).unwrap();
    let id = uuid::Uuid::now_v7();
    let local = app.data_dir.path().join("recordings").join(id.to_string());
    std::fs::create_dir_all(&local).unwrap();
    record_ann_and_bob(&local);
    insert_recording(&app, (id, tenant), "processing", chrono::Utc::now()).await;
    let row = || async { recording::Entity::find_by_id(id).one(&app.db().await).await.unwrap().unwrap() };

    // The bucket is down: the recording is composed, waits, and keeps its only copy on the node's disk.
    let waiting = wait_for(90, || async { Some(row().await).filter(|row| row.store_attempts >= 1) }).await;
    let waiting = waiting.expect("an upload was tried and failed");
    assert_eq!((waiting.state.as_str(), waiting.object_key.as_deref()), ("processing", None));
    assert!(waiting.retry_at.is_some() && local.join("recording.mp4").exists(), "{waiting:?}");

    // The bucket comes up: the next try stores it, and the node's copy goes.
    let _server = convene_bots::s3::S3Server::start(port).expect("moto runs");
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert!(plain.put(format!("{endpoint}/meetings")).send().await.unwrap().status().is_success(), "bucket made");
    let ready = wait_for(90, || async { Some(row().await).filter(|row| row.state == "ready") }).await;
    let ready = ready.expect("stored once the bucket answers");
    assert_eq!(ready.object_key, Some(format!("convene/{tenant}/{id}")));
    assert!(!local.exists(), "the node's copy is removed once the bucket's is noted");

    // The link leads to the bucket for the link's lifetime; the file there is the composed recording.
    let (status, one) = call(&app, Method::GET, &format!("/v1/recordings/{id}"), &key, None).await;
    assert_eq!(status, 200, "{one}");
    let link = one["download"]["video_url"].as_str().unwrap().to_owned();
    let link = link.replace(app.settings().public_url.as_str().trim_end_matches('/'), &app.address);
    let redirected = plain.get(&link).send().await.unwrap();
    assert_eq!(redirected.status(), 302);
    let presigned = redirected.headers()["location"].to_str().unwrap().to_owned();
    assert!(presigned.starts_with(&format!("{endpoint}/meetings/convene/{tenant}/{id}/recording.mp4?")), "{presigned}");
    assert!(presigned.contains("X-Amz-Expires=") && presigned.contains("X-Amz-Signature="), "{presigned}");
    let video = plain.get(&presigned).send().await.unwrap();
    assert_eq!(video.headers()["content-type"], "video/mp4");
    let video = video.bytes().await.unwrap();
    assert_eq!(video.len() as i64, ready.file_bytes.unwrap());
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &video).unwrap();
    let path = file.path().display().to_string();
    let codecs = run("ffprobe", &["-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", &path]);
    assert_eq!(String::from_utf8(codecs).unwrap().split_whitespace().collect::<Vec<_>>(), ["h264", "aac"]);
    let ranged = plain.get(&presigned).header("range", "bytes=0-7").send().await.unwrap();
    assert_eq!((ranged.status().as_u16(), ranged.bytes().await.unwrap().as_ref()), (206, &video[..8]));

    // Another tenant does not see it; deleting it empties the bucket and closes every link.
    let (status, _) = call(&app, Method::DELETE, &format!("/v1/recordings/{id}"), &stranger, None).await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, Method::DELETE, &format!("/v1/recordings/{id}"), &key, None).await;
    assert_eq!(status, 204);
    assert_eq!(plain.get(&presigned).send().await.unwrap().status(), 404, "gone from the bucket");
    assert_eq!(plain.get(&link).send().await.unwrap().status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn a_room_set_to_record_itself_starts_when_the_first_person_comes_in_and_stays_stopped_once_stopped() {
    let app = spawn_configured(&[("CONVENE_PLANS", RECORDING_PLANS.to_owned())]).await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let encrypted = json!({ "name": "secret-sync", "auto_record": true, "end_to_end_encryption": true });
    let (status, refused) = call(&app, Method::POST, "/v1/rooms", &key, Some(encrypted)).await;
    assert_eq!((status, refused["message"].as_str().map(|words| words.starts_with("auto_record"))), (400, Some(true)));
    let (status, room) =
        call(&app, Method::POST, "/v1/rooms", &key, Some(json!({ "name": "all-hands", "auto_record": true }))).await;
    assert_eq!((status, room["auto_record"].as_bool()), (201, Some(true)), "{room}");

    let ann = token(&app, &key, "all-hands", "Ann", true).await;
    let (mut ann, welcome) = hello(&app, "all-hands", &ann).await;
    assert_eq!(welcome["type"], "welcome");
    let started = hear_kind(&mut ann, "recording_changed").await;
    assert_eq!((started["recording"].as_bool(), started["by"].as_str()), (Some(true), Some("the room's settings")));
    say(&mut ann, json!({ "type": "stop_recording" })).await;
    assert_eq!(hear_kind(&mut ann, "recording_changed").await["recording"], false);
    // Someone else arrives: the room does not start recording again over the moderator's stop.
    let bob = token(&app, &key, "all-hands", "Bob", false).await;
    let (_bob, welcome) = hello(&app, "all-hands", &bob).await;
    assert_eq!(welcome["room"]["recording"], false, "{welcome}");
    // One recording, once the node's outbox has delivered its start.
    let mut listed = Value::Null;
    for _ in 0..50 {
        (_, listed) = call(&app, Method::GET, "/v1/recordings?room=all-hands", &key, None).await;
        if listed["recordings"].as_array().is_some_and(|recordings| !recordings.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(listed["recordings"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed["recordings"][0]["started_by"], "the room's settings");
    app.stop().await;
}

#[tokio::test]
async fn recordings_past_the_plans_retention_are_deleted_with_their_files_and_the_deletion_is_logged() {
    use convene_api::entities::audit_event;
    use sea_orm::EntityTrait;

    // The plans file keeps recordings 30 days.
    let app = spawn_configured(&[("CONVENE_PLANS", RECORDING_PLANS.to_owned())]).await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let (_, tenant) = call(&app, Method::GET, "/v1/tenant", &key, None).await;
    let tenant = uuid::Uuid::parse_str(tenant["id"].as_str().unwrap()).unwrap();
    let now = chrono::Utc::now();
    let (expired, kept) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    insert_recording_made(&app, expired, tenant, now - chrono::TimeDelta::days(31)).await;
    insert_recording_made(&app, kept, tenant, now - chrono::TimeDelta::days(29)).await;
    let files = app.data_dir.path().join("recordings").join(expired.to_string());
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("recording.mp4"), b"old meeting").unwrap();

    // The composer sweeps as it starts, then every quarter of an hour.
    let mut status = 200;
    for _ in 0..100 {
        (status, _) = call(&app, Method::GET, &format!("/v1/recordings/{expired}"), &key, None).await;
        if status == 404 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 404, "a recording 31 days old is deleted under a 30-day retention");
    assert!(!files.exists(), "its files went with it");
    let (status, _) = call(&app, Method::GET, &format!("/v1/recordings/{kept}"), &key, None).await;
    assert_eq!(status, 200, "a recording 29 days old is kept");
    let logged: Vec<_> = audit_event::Entity::find()
        .all(&app.db().await)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.event == "recording_deleted")
        .collect();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(logged[0].tenant_id, tenant);
    assert!(logged[0].actor_user_id.is_none() && logged[0].detail.contains("after the plan's 30 days"), "{logged:?}");
    assert!(logged[0].detail.contains(&expired.to_string()), "{logged:?}");

    // A deletion through the API is logged too.
    let (status, _) = call(&app, Method::DELETE, &format!("/v1/recordings/{kept}"), &key, None).await;
    assert_eq!(status, 204);
    let events = audit_event::Entity::find().all(&app.db().await).await.unwrap();
    let by_api = events.iter().find(|event| event.detail.contains(&kept.to_string())).expect("logged");
    assert!(by_api.event == "recording_deleted" && by_api.detail.contains("through the API"), "{by_api:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_meeting_streams_live_to_an_rtmp_service_everyone_sees_it_and_a_refusing_service_ends_it_in_words() {
    // The streaming service is a listener on loopback, which the operator allows here.
    let app = spawn_configured(&[
        ("CONVENE_PLANS", RECORDING_PLANS.to_owned()),
        ("CONVENE_STREAMING_ALLOW_PRIVATE", "1".to_owned()),
        ("CONVENE_WEBHOOKS_ALLOW_LOOPBACK", "1".to_owned()),
    ])
    .await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let events = ["live_stream.started", "live_stream.ended"];
    let (inbox, _receiver) = crate::webhooks::listening_endpoint(&app, &key, &events).await;
    let ann = token(&app, &key, "standup", "Ann", true).await;
    let (mut ann, welcome) = hello(&app, "standup", &ann).await;
    assert_eq!(welcome["room"]["live_streaming"], false, "{welcome}");

    // The streaming service: ffmpeg listening for RTMP on a loopback port, saving what arrives.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let received = app.data_dir.path().join("received.flv");
    let mut service = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-listen", "1", "-f", "flv", "-i"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/stream-key"))
        .args(["-c", "copy"])
        .arg(&received)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg runs (cargo xtask test installs it)");
    for _ in 0..100 {
        if convene_bots::s3::listening(port) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let target = json!({ "url": format!("rtmp://127.0.0.1:{port}/live"), "key": "stream-key" });
    let (status, started) = call(&app, Method::POST, "/v1/rooms/standup/live-stream", &key, Some(target)).await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["service"], format!("rtmp://127.0.0.1:{port}/live"), "the key is not shown: {started}");
    let notice = hear_kind(&mut ann, "live_stream_changed").await;
    assert_eq!((notice["live"].as_bool(), notice["by"].as_str()), (Some(true), Some("the organisation's app")));
    assert_eq!(hear_kind(&mut ann, "room_changed").await["room"]["live_streaming"], true);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (status, stopped) = call(&app, Method::DELETE, "/v1/rooms/standup/live-stream", &key, None).await;
    assert_eq!((status, &stopped["live"]), (200, &json!(false)), "{stopped}");
    assert_eq!(hear_kind(&mut ann, "live_stream_changed").await["live"], false);
    let saved = tokio::time::timeout(std::time::Duration::from_secs(30), service.wait()).await.expect("it ends");
    assert!(saved.unwrap().success(), "the service took the stream whole");
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0"])
        .arg(&received)
        .output()
        .unwrap();
    let streams = String::from_utf8_lossy(&probe.stdout);
    assert!(streams.contains("h264,1280,720") && streams.contains("aac"), "{streams}");

    // A service that is not there: the stream ends by itself, and everyone hears why.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nowhere = json!({ "url": format!("rtmp://127.0.0.1:{closed}/live"), "key": "stream-key" });
    let (status, _) = call(&app, Method::POST, "/v1/rooms/standup/live-stream", &key, Some(nowhere)).await;
    assert_eq!(status, 201);
    assert_eq!(hear_kind(&mut ann, "live_stream_changed").await["live"], true);
    let ended = hear_kind(&mut ann, "live_stream_changed").await;
    assert_eq!(ended["live"], false, "{ended}");
    assert!(ended["reason"].as_str().is_some_and(|reason| reason.contains("streaming encoder stopped")), "{ended}");
    let (status, _) = call(&app, Method::DELETE, "/v1/rooms/standup/live-stream", &key, None).await;
    assert_eq!(status, 409, "nothing is streamed any more");

    // Webhooks told the organisation's app of both streams: who started and stopped each, and why the
    // second stopped by itself; never the stream key.
    let told = crate::webhooks::delivered(&inbox, 4).await;
    let said: Vec<(&str, &str)> = told
        .iter()
        .map(|body| {
            let by = body["data"]["started_by"].as_str().or(body["data"]["stopped_by"].as_str());
            (body["type"].as_str().unwrap(), by.unwrap())
        })
        .collect();
    assert_eq!(
        said,
        [
            ("live_stream.started", "the organisation's app"),
            ("live_stream.ended", "the organisation's app"),
            ("live_stream.started", "the organisation's app"),
            ("live_stream.ended", "the streaming service"),
        ]
    );
    assert!(told[3]["data"]["reason"].as_str().is_some_and(|reason| reason.contains("streaming encoder stopped")));
    assert_eq!(told[0]["data"]["room"], "standup");
    assert!(told.iter().all(|body| !body.to_string().contains("stream-key")), "{told:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_stream_never_reaches_into_the_servers_own_network_unless_the_operator_allows_it() {
    let app = spawn_configured(&[("CONVENE_PLANS", RECORDING_PLANS.to_owned())]).await;
    let key = tenant_key(&app, "owner@acme.example").await;
    let ann = token(&app, &key, "standup", "Ann", true).await;
    let (mut ann, _) = hello(&app, "standup", &ann).await;
    for inside in ["rtmp://127.0.0.1:1935/live", "rtmp://169.254.169.254/live", "rtmp://[::1]/live"] {
        let target = json!({ "url": inside, "key": "k" });
        let (status, _) = call(&app, Method::POST, "/v1/rooms/standup/live-stream", &key, Some(target)).await;
        assert_eq!(status, 201);
        assert_eq!(hear_kind(&mut ann, "live_stream_changed").await["live"], true);
        let ended = hear_kind(&mut ann, "live_stream_changed").await;
        assert_eq!(ended["live"], false, "{inside}: {ended}");
        assert!(ended["reason"].as_str().is_some_and(|reason| reason.contains("private network")), "{ended}");
    }
    app.stop().await;
}
