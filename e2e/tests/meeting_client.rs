//! The meeting client in real browsers: headless Chromium with fake camera and microphone, joining through
//! the real `convene up` (signalling, SFU, str0m) over loopback. Screenshots of each view are kept in
//! `<target>/e2e-artifacts/` as `client-*.png`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly by design.

use std::time::Duration;

use convene_e2e::{Convene, browser::Browser, relay::UdpRelay};
use fantoccini::Locator;
use serde_json::{Value, json};

/// Joining, media starting and stats moving share a loaded 2-core machine with three browsers.
const MEDIA_WAIT: Duration = Duration::from_secs(90);
const UI_WAIT: Duration = Duration::from_secs(30);

/// Opens a meeting link and waits for the hydrated pre-join screen.
async fn open_prejoin(url: &str) -> Browser {
    let browser = Browser::start().await.expect("a browser session");
    browser.open(url).await.unwrap();
    browser
        .wait_for(
            "the pre-join screen",
            "return document.querySelector(\"html[data-hydrated] button[name='join']\") !== null;",
            UI_WAIT,
        )
        .await
        .unwrap();
    browser
}

/// Clicks "Join" and waits for the phase the page should reach.
async fn join(browser: &Browser, phase: &str) {
    browser.press("button[name='join']").await.unwrap();
    wait_phase(browser, phase).await;
}

async fn wait_phase(browser: &Browser, phase: &str) {
    let script = format!("return document.querySelector(\".meeting[data-phase='{phase}']\") !== null;");
    browser.wait_for(&format!("the {phase} phase"), &script, UI_WAIT).await.unwrap();
}

/// Each remote camera tile's name, decoded video frames and received audio bytes.
const RECEPTION: &str = "
    const tiles = [...document.querySelectorAll(\"figure.tile[data-local='false'][data-source='camera']\")];
    return tiles.map(tile => ({
        name: tile.querySelector('.tile-name').textContent,
        frames: Number(tile.dataset.videoFrames || 0),
        audio: Number(tile.dataset.audioBytes || 0),
    }));";

/// Waits until `browser` decodes video and receives audio from each of `from` (by name), then until both
/// figures grew for every one of them.
async fn wait_receiving(browser: &Browser, who: &str, from: &[&str]) {
    let names = serde_json::to_string(from).unwrap();
    let all_flowing = format!(
        "const names = {names};
         const seen = (() => {{ {RECEPTION} }})().filter(t => names.includes(t.name));
         return seen.length === names.length && seen.every(t => t.frames > 0 && t.audio > 0) ? seen : null;"
    );
    let first = match browser.wait_for(&format!("{who} receiving from {names}"), &all_flowing, MEDIA_WAIT).await {
        Ok(first) => first,
        Err(error) => panic!("{error}; the page: {}", page_summary(browser, who).await),
    };
    let grown = format!(
        "const before = {first};
         const seen = (() => {{ {RECEPTION} }})();
         return before.every(b => seen.some(t => t.name === b.name && t.frames > b.frames && t.audio > b.audio)) ? seen : null;"
    );
    if let Err(error) = browser.wait_for(&format!("{who}'s reception growing"), &grown, MEDIA_WAIT).await {
        panic!("{error}; the page: {}", page_summary(browser, who).await);
    }
}

/// What a page shows, for a failure's message (and a screenshot beside the other artefacts).
async fn page_summary(browser: &Browser, who: &str) -> String {
    let _ = browser.screenshot(&format!("client-failed-{who}")).await;
    let script = "const m = document.querySelector('.meeting'); return m ? m.innerText + ' | ' +
        [...document.querySelectorAll('figure.tile')].map(t => JSON.stringify(t.dataset)).join(' ') +
        ' | connection ' + (document.querySelector('.connection') || {}).dataset?.connection : 'no meeting';";
    browser.client.execute(script, vec![]).await.map(|value| value.to_string()).unwrap_or_default()
}

/// A toolbar button's label (shown on hover, so read from the page rather than as visible text).
async fn label_of(browser: &Browser, button: &str) -> String {
    let script = format!("return document.querySelector(\"button[name='{button}'] .label\").textContent;");
    browser.client.execute(&script, vec![]).await.unwrap().as_str().unwrap_or_default().to_owned()
}

/// Waits until the toolbar button `button` reads `label` (each page hears the room's news in its own time:
/// another participant may see a change before the one who made it).
async fn wait_label(browser: &Browser, button: &str, label: &str) {
    let script = format!(
        "return document.querySelector(\"button[name='{button}'] .label\")?.textContent === {};",
        serde_json::to_string(label).unwrap()
    );
    if browser.wait_for(&format!("the {button} button reading {label}"), &script, UI_WAIT).await.is_err() {
        panic!("the {button} button reads {:?}, not {label:?}", label_of(browser, button).await);
    }
}

/// What the call screen promises at any size: every toolbar button shown is inside the viewport, the page
/// scrolls neither way, and tiles stay inside the window without overlapping. `null` until it holds.
const CALL_FITS: &str = "
    const inside = e => { const b = e.getBoundingClientRect();
        return b.width > 0 && b.left >= 0 && b.top >= 0 && b.right <= innerWidth && b.bottom <= innerHeight; };
    const shown = [...document.querySelectorAll('.toolbar .tool')].filter(b => b.getClientRects().length > 0);
    const tiles = [...document.querySelectorAll('figure.tile')];
    const boxes = tiles.map(t => t.getBoundingClientRect());
    const overlap = boxes.some((a, i) => boxes.slice(i + 1).some(b =>
        a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1));
    const facts = { tools: shown.map(b => b.name), outside: shown.filter(b => !inside(b)).map(b => b.name),
        scrolls: document.scrollingElement.scrollWidth > innerWidth || document.scrollingElement.scrollHeight > innerHeight,
        overlap, tiles: tiles.length, tilesInside: tiles.every(inside) };
    window.lastCallFacts = facts;
    return facts.outside.length === 0 && !facts.scrolls && !facts.overlap && facts.tilesInside ? facts : null;";

/// Checks [`CALL_FITS`] at 1280×800 and at 390×844 (where the rest of the toolbar opens from "More"), saving
/// screenshots `<name>-desktop`, `<name>-phone` and `<name>-phone-more`; leaves the window at 1280×800.
async fn call_fits(browser: &Browser, name: &str) {
    let desktop_tools = [
        "microphone",
        "camera",
        "screen",
        "hand",
        "react",
        "people",
        "record",
        "live",
        "settings",
        "view",
        "chat",
        "leave",
    ];
    let phone_tools = ["microphone", "camera", "chat", "more", "leave"];
    for (width, height, tools, size) in
        [(1280, 800, &desktop_tools[..], "desktop"), (390, 844, &phone_tools[..], "phone")]
    {
        browser.set_viewport(width, height).await.unwrap();
        let facts = match browser.wait_for(&format!("the call fitting {width}x{height}"), CALL_FITS, UI_WAIT).await {
            Ok(facts) => facts,
            Err(error) => {
                let last = browser.client.execute("return window.lastCallFacts;", vec![]).await.unwrap();
                panic!("{error}: {last}");
            }
        };
        assert_eq!(facts["tools"], json!(tools), "the toolbar at {width}x{height}");
        browser.screenshot(&format!("{name}-{size}")).await.unwrap();
    }
    browser.press("button[name='more']").await.unwrap();
    let sheet = browser.wait_for("the toolbar's sheet", CALL_FITS, UI_WAIT).await.unwrap();
    assert_eq!(sheet["tools"].as_array().map(Vec::len), Some(13), "{sheet}");
    browser.screenshot(&format!("{name}-phone-more")).await.unwrap();
    browser.press("button[name='more']").await.unwrap();
    browser.set_viewport(1280, 800).await.unwrap();
}

/// Saves `<name>-desktop` and `<name>-phone` (1280×800 and 390×844 viewports), for people to look at;
/// leaves the window at 1280×800.
async fn screenshots_at_both_sizes(browser: &Browser, name: &str) {
    for (width, height, size) in [(1280, 800, "desktop"), (390, 844, "phone")] {
        browser.set_viewport(width, height).await.unwrap();
        // The layout follows the resize on the next frame.
        tokio::time::sleep(Duration::from_millis(400)).await;
        browser.screenshot(&format!("{name}-{size}")).await.unwrap();
    }
    browser.set_viewport(1280, 800).await.unwrap();
}

async fn text_of(browser: &Browser, css: &str) -> String {
    browser.client.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn three_people_meet_and_each_decodes_the_others_video_and_audio() {
    let convene = Convene::up_with_tenant().await.expect("convene up starts");
    let ann = open_prejoin(&convene.join_url("standup", "Ann Moderator", true).await.unwrap()).await;
    let prejoin = ann
        .wait_for(
            "the camera preview and device lists",
            "const v = document.querySelector('.preview video');
             return v && v.videoWidth > 0 && document.querySelectorAll(\"select[name='camera'] option\").length > 0;",
            UI_WAIT,
        )
        .await;
    prejoin.unwrap();
    // The call's code is a chunk of its own, which the page fetches while the person gets ready.
    let chunk = "return performance.getEntriesByType('resource').some(e => e.name.endsWith('/pkg/split_call.wasm'));";
    ann.wait_for("the call's chunk fetched on the pre-join screen", chunk, UI_WAIT).await.unwrap();
    ann.screenshot("client-01-prejoin").await.unwrap();
    // On a phone the whole pre-join fits: "Join" shows without scrolling.
    ann.set_viewport(390, 844).await.unwrap();
    ann.screenshot("client-01-prejoin-phone").await.unwrap();
    let join_shown = "const b = document.querySelector(\"button[name='join']\").getBoundingClientRect();
        return b.bottom <= innerHeight && b.right <= innerWidth && b.left >= 0
            && document.scrollingElement.scrollWidth <= innerWidth;";
    ann.wait_for("Join inside a phone's screen", join_shown, UI_WAIT).await.unwrap();
    ann.set_viewport(1280, 800).await.unwrap();
    join(&ann, "meeting").await;

    let bob = open_prejoin(&convene.join_url("standup", "Bob Participant", false).await.unwrap()).await;
    join(&bob, "meeting").await;
    // Cy goes by another name than the invitation's (the room lets people choose).
    let cy = open_prejoin(&convene.join_url("standup", "Cy Participant", false).await.unwrap()).await;
    cy.fill("display_name", "Cyrus the Great").await.unwrap();
    join(&cy, "meeting").await;

    let (ann_name, bob_name, cy_name) = ("Ann Moderator", "Bob Participant", "Cyrus the Great");
    wait_receiving(&ann, "Ann", &[bob_name, cy_name]).await;
    wait_receiving(&bob, "Bob", &[ann_name, cy_name]).await;
    wait_receiving(&cy, "Cy", &[ann_name, bob_name]).await;
    // Cy mutes: the others see the indicator.
    cy.press("button[name='microphone']").await.unwrap();
    let muted = "return document.querySelector(\"figure.tile[data-local='false'] [data-indicator='muted']\") !== null;";
    ann.wait_for("Cy's muted indicator", muted, UI_WAIT).await.unwrap();
    let names = text_of(&ann, ".video-area").await;
    assert!(names.contains(bob_name) && names.contains(cy_name) && names.contains("(you)"), "{names}");
    // Bob renames himself mid-meeting: the others' tiles follow.
    bob.press("button[name='settings']").await.unwrap();
    bob.client.execute(COUNT_CHIMES, vec![]).await.unwrap();
    bob.press("button[name='test-sound']").await.unwrap();
    bob.wait_for("the test sound", "return window.chimes >= 1;", UI_WAIT).await.unwrap();
    screenshots_at_both_sizes(&bob, "client-07-settings").await;
    bob.fill("rename", "Robert").await.unwrap();
    bob.press("form.rename button[type='submit']").await.unwrap();
    let renamed = "return [...document.querySelectorAll('.tile-name')].some(n => n.textContent === 'Robert');";
    cy.wait_for("Bob's new name at Cy", renamed, UI_WAIT).await.unwrap();
    bob.press("button[name='settings']").await.unwrap();
    // Tiles ask for the size they show: the node heard a height for every remote tile.
    let quality = ann
        .wait_for(
            "connection quality on every remote tile",
            "const q = [...document.querySelectorAll(\"figure.tile[data-local='false'] .quality\")].map(e => e.dataset.quality);
             return q.length === 2 && q.every(v => v !== 'unknown') ? q : null;",
            UI_WAIT,
        )
        .await
        .unwrap();
    assert_eq!(quality.as_array().map(Vec::len), Some(2), "{quality}");
    cy.screenshot("client-03-tiles-cy").await.unwrap();
    call_fits(&ann, "client-02-tiles").await;

    ann.press("button[name='view']").await.unwrap();
    ann.wait_for(
        "the stage view",
        "return document.querySelector('.video-area.stage .tile.on-stage') !== null;",
        UI_WAIT,
    )
    .await
    .unwrap();
    call_fits(&ann, "client-04-stage").await;
    // A pin keeps one remote person on the stage whoever speaks; a stage about 680 pixels tall gets the 720p
    // layer the cameras send. Settings → Quality: low caps it at 180 lines.
    ann.press("figure.tile[data-local='false'][data-source='camera'] .tile-pin").await.unwrap();
    let stage_height = "const t = document.querySelector('.video-area.stage .tile.on-stage[data-local=\"false\"]');
                        return t ? Number(t.dataset.videoHeight || 0) : null;";
    let sharp = format!("const h = (() => {{ {stage_height} }})(); return h >= 720 ? h : null;");
    let started = std::time::Instant::now();
    if let Err(error) = ann.wait_for("the stage decoding 720 lines", &sharp, MEDIA_WAIT).await {
        panic!("{error}; the page: {}", page_summary(&ann, "Ann").await);
    }
    println!("the stage reached 720 lines {:?} after the pin", started.elapsed());
    ann.press("button[name='settings']").await.unwrap();
    ann.select("receive-quality", "low").await.unwrap();
    let capped = format!("const h = (() => {{ {stage_height} }})(); return h > 0 && h <= 180 ? h : null;");
    ann.wait_for("the stage at 180 lines or fewer", &capped, MEDIA_WAIT).await.unwrap();
    ann.press("button[name='settings']").await.unwrap();
    ann.press(".tile.on-stage .tile-pin").await.unwrap();

    // Leaving: the others see the person go.
    bob.press("button[name='leave']").await.unwrap();
    wait_phase(&bob, "over").await;
    let gone = "return document.querySelectorAll(\"figure.tile[data-source='camera']\").length === 2;";
    cy.wait_for("Bob's tile to go", gone, UI_WAIT).await.unwrap();
    screenshots_at_both_sizes(&bob, "client-05-left").await;

    for browser in [ann, bob, cy] {
        browser.close().await.unwrap();
    }
    convene.stop().await.unwrap();
}

/// Counts the tones the page makes from now on (`window.chimes`): the lobby's chime plays two. (wasm-bindgen
/// keeps the `AudioContext` constructor from load time, but calls methods through the prototype.)
const COUNT_CHIMES: &str = "
    const real = BaseAudioContext.prototype.createOscillator;
    window.chimes = 0;
    BaseAudioContext.prototype.createOscillator = function () { window.chimes += 1; return real.call(this); };";

#[tokio::test]
async fn a_moderator_admits_from_the_lobby_mutes_one_kicks_one_and_sees_a_shared_screen() {
    let convene = Convene::up_with_tenant().await.expect("convene up starts");
    convene.create_room(json!({ "name": "board", "lobby": true })).await.unwrap();
    let ann = open_prejoin(&convene.join_url("board", "Ann Moderator", true).await.unwrap()).await;
    join(&ann, "meeting").await;
    ann.client.execute(COUNT_CHIMES, vec![]).await.unwrap();

    let bob = open_prejoin(&convene.join_url("board", "Bob Participant", false).await.unwrap()).await;
    join(&bob, "lobby").await;
    screenshots_at_both_sizes(&bob, "client-10-lobby-waiting").await;
    let cy = open_prejoin(&convene.join_url("board", "Cy Participant", false).await.unwrap()).await;
    join(&cy, "lobby").await;

    // The moderator is told at once, with a chime, and admits the first in one click; the rest wait in the
    // people pane.
    let knock = "const n = document.querySelector('.lobby-notice');
                 return n && n.textContent.includes('Bob Participant') && n.textContent.includes('1 more') ? n.textContent : null;";
    ann.wait_for("the lobby notice", knock, UI_WAIT).await.unwrap();
    let chimes = ann.client.execute("return window.chimes;", vec![]).await.unwrap();
    assert!(chimes.as_u64().is_some_and(|chimes| chimes >= 1), "a sound for the knock: {chimes}");
    ann.screenshot("client-11-lobby-notice").await.unwrap();
    ann.press(".lobby-notice button[name='admit']").await.unwrap();
    wait_phase(&bob, "meeting").await;
    ann.press("button[name='people']").await.unwrap();
    let waiting = "return document.querySelectorAll('.people.lobby li').length === 1;";
    ann.wait_for("one person left in the lobby", waiting, UI_WAIT).await.unwrap();
    ann.screenshot("client-11-lobby-moderator").await.unwrap();
    ann.press(".people.lobby li:first-child button[name='admit']").await.unwrap();
    wait_phase(&cy, "meeting").await;
    wait_receiving(&bob, "Bob", &["Ann Moderator", "Cy Participant"]).await;

    // Mute one: Bob is told, and everyone sees his indicator.
    let bob_row = "li[data-person]:nth-child(2)";
    assert!(text_of(&ann, bob_row).await.contains("Bob"), "people are listed in the order they came");
    ann.press(&format!("{bob_row} button[name='mute']")).await.unwrap();
    let told = "return [...document.querySelectorAll('.notice-line')].some(n => n.textContent.includes('turned off your microphone'));";
    bob.wait_for("Bob being told he was muted", told, UI_WAIT).await.unwrap();
    assert_eq!(label_of(&bob, "microphone").await, "Unmute");
    let muted = "return document.querySelector(\"figure.tile[data-local='false'] [data-indicator='muted']\") !== null;";
    cy.wait_for("Bob's muted indicator at Cy", muted, UI_WAIT).await.unwrap();
    bob.screenshot("client-12-muted-by-moderator").await.unwrap();

    // Screen share: Bob shares, the others get a screen tile that decodes.
    bob.press("button[name='screen']").await.unwrap();
    let screen = "const t = document.querySelector(\"figure.tile[data-source='screen']\");
                  return t && Number(t.dataset.videoFrames || 0) > 0;";
    ann.wait_for("Bob's screen at Ann", screen, MEDIA_WAIT).await.unwrap();
    cy.wait_for("Bob's screen at Cy", screen, MEDIA_WAIT).await.unwrap();
    let staged =
        "return document.querySelector(\".video-area.stage figure.tile.on-stage[data-source='screen']\") !== null;";
    ann.wait_for("the new screen share on Ann's stage", staged, UI_WAIT).await.unwrap();
    ann.screenshot("client-13-screen-share").await.unwrap();

    // Kick one: Cy is told why, the others see Cy go.
    let cy_row = "li[data-person]:nth-child(3)";
    assert!(text_of(&ann, cy_row).await.contains("Cy"));
    ann.press(&format!("{cy_row} button[name='kick']")).await.unwrap();
    let kicked = "return document.querySelector(\"[data-ending='kicked']\") !== null;";
    cy.wait_for("Cy being removed", kicked, UI_WAIT).await.unwrap();
    cy.screenshot("client-14-kicked").await.unwrap();
    let gone = "return document.querySelectorAll(\"figure.tile[data-source='camera']\").length === 2;";
    bob.wait_for("Cy's tile to go at Bob", gone, UI_WAIT).await.unwrap();
    let people: Value =
        ann.client.execute("return document.querySelectorAll('li[data-person]').length;", vec![]).await.unwrap();
    assert_eq!(people, json!(2));

    for browser in [ann, bob, cy] {
        browser.close().await.unwrap();
    }
    convene.stop().await.unwrap();
}

#[tokio::test]
async fn a_password_room_asks_for_it_until_it_is_right() {
    let convene = Convene::up_with_tenant().await.expect("convene up starts");
    convene
        .create_room(json!({ "name": "secret", "password": "opensesame", "fixed_display_names": true }))
        .await
        .unwrap();
    let bob = open_prejoin(&convene.join_url("secret", "Bob Participant", false).await.unwrap()).await;
    let name_field: Value = bob
        .client
        .execute("return document.querySelector(\"input[name='display_name']\") !== null;", vec![])
        .await
        .unwrap();
    assert_eq!(name_field, json!(false), "the room keeps the invitation's name: nothing to edit");
    // Joining muted holds across the password prompt.
    bob.press("input[name='microphone_off']").await.unwrap();
    join(&bob, "password").await;
    bob.fill("password", "wrong").await.unwrap();
    bob.press("form button[type='submit']").await.unwrap();
    bob.wait_for("the wrong-password prompt", "return document.querySelector('.banner.error') !== null;", UI_WAIT)
        .await
        .unwrap();
    bob.screenshot("client-20-password").await.unwrap();
    bob.fill("password", "opensesame").await.unwrap();
    bob.press("form button[type='submit']").await.unwrap();
    wait_phase(&bob, "meeting").await;
    let muted = "return document.querySelector(\"button[name='microphone'] .label\").textContent === 'Unmute';";
    bob.wait_for("the microphone off as chosen", muted, UI_WAIT).await.unwrap();
    bob.screenshot("client-21-password-accepted").await.unwrap();
    bob.close().await.unwrap();
    convene.stop().await.unwrap();
}

/// The participant ids of the tiles on a page, for telling a resumed session from a new one.
const PEOPLE: &str =
    "return [...document.querySelectorAll('figure.tile')].map(t => t.dataset.participant).sort().join();";

/// Ann (a moderator) and Bob join `room` and each decodes the other; `prepare` runs on each page first.
async fn ann_and_bob_meet(convene: &Convene, room: &str, prepare: Option<&str>) -> (Browser, Browser) {
    let ann = open_prejoin(&convene.join_url(room, "Ann Moderator", true).await.unwrap()).await;
    if let Some(script) = prepare {
        ann.client.execute(script, vec![]).await.unwrap();
    }
    join(&ann, "meeting").await;
    let bob = open_prejoin(&convene.join_url(room, "Bob Participant", false).await.unwrap()).await;
    if let Some(script) = prepare {
        bob.client.execute(script, vec![]).await.unwrap();
    }
    join(&bob, "meeting").await;
    wait_receiving(&ann, "Ann", &["Bob Participant"]).await;
    wait_receiving(&bob, "Bob", &["Ann Moderator"]).await;
    (ann, bob)
}

#[tokio::test]
async fn a_media_outage_restarts_ice_and_the_meeting_goes_on_in_the_same_session() {
    // The browsers reach the node through a relay the test can cut, as a network outage would.
    let node_port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let relay = UdpRelay::start(([127, 0, 0, 1], node_port).into()).await.unwrap();
    let convene = Convene::up_with_tenant_and(&[
        ("CONVENE_MEDIA_UDP_ADDR", format!("127.0.0.1:{node_port}")),
        ("CONVENE_MEDIA_SHARDS", "1".to_owned()),
        ("CONVENE_MEDIA_PUBLIC_PORT", relay.address.port().to_string()),
    ])
    .await
    .expect("convene up starts");
    let (ann, bob) = ann_and_bob_meet(&convene, "outage", None).await;
    let before = ann.client.execute(PEOPLE, vec![]).await.unwrap();

    relay.set_cut(true);
    let restarted = "return Number(document.querySelector('.connection').dataset.iceRestarts) >= 1;";
    for browser in [&ann, &bob] {
        browser.wait_for("an ICE restart after the outage", restarted, UI_WAIT).await.unwrap();
    }
    let shown = text_of(&ann, ".connection").await;
    assert_eq!(shown, "Reconnecting media…", "the page says the media is being reconnected");
    ann.screenshot("client-50-media-outage").await.unwrap();
    relay.set_cut(false);

    let connected = "return document.querySelector('.connection').dataset.connection === 'connected';";
    for browser in [&ann, &bob] {
        browser.wait_for("the media connected again", connected, UI_WAIT).await.unwrap();
    }
    wait_receiving(&ann, "Ann", &["Bob Participant"]).await;
    wait_receiving(&bob, "Bob", &["Ann Moderator"]).await;
    // The same session throughout: nobody joined again (a rejoin gets a new participant id).
    assert_eq!(ann.client.execute(PEOPLE, vec![]).await.unwrap(), before);
    assert_eq!(text_of(&ann, ".connection").await, "Connected");

    for browser in [ann, bob] {
        browser.close().await.unwrap();
    }
    convene.stop().await.unwrap();
}

/// Keeps the page's WebSockets where the test can reach them (`window.testSockets`), so it can drop one as a
/// flaky network would. wasm-bindgen looks `WebSocket` up when the client connects, after this runs.
const KEEP_SOCKETS: &str = "
    const Real = window.WebSocket;
    window.testSockets = [];
    window.WebSocket = function (url, protocols) {
        const socket = protocols === undefined ? new Real(url) : new Real(url, protocols);
        window.testSockets.push(socket);
        return socket;
    };
    window.WebSocket.prototype = Real.prototype;
    Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });";

#[tokio::test]
async fn a_dropped_signalling_connection_resumes_the_session_and_the_others_never_see_a_leave() {
    let convene = Convene::up_with_tenant().await.expect("convene up starts");
    let (ann, bob) = ann_and_bob_meet(&convene, "flaky", Some(KEEP_SOCKETS)).await;
    let before = bob.client.execute(PEOPLE, vec![]).await.unwrap();

    ann.client.execute("window.testSockets.at(-1).close();", vec![]).await.unwrap();
    let lost = "return document.querySelector(\"[data-signalling='lost']\") !== null;";
    ann.wait_for("Ann's page saying it reconnects", lost, UI_WAIT).await.unwrap();
    ann.screenshot("client-60-signalling-lost").await.unwrap();
    let resumed = "return window.testSockets.length === 2 && window.testSockets[1].readyState === 1 &&
                   document.querySelector(\"[data-signalling='up']\") !== null;";
    ann.wait_for("a new socket resuming the session", resumed, UI_WAIT).await.unwrap();

    // The media never stopped, and Bob saw no one leave or join.
    wait_receiving(&bob, "Bob", &["Ann Moderator"]).await;
    wait_receiving(&ann, "Ann", &["Bob Participant"]).await;
    assert_eq!(bob.client.execute(PEOPLE, vec![]).await.unwrap(), before);
    assert_eq!(ann.client.execute(PEOPLE, vec![]).await.unwrap(), before, "Ann kept her participant id");
    ann.press("button[name='chat']").await.unwrap();
    ann.fill("message", "still here").await.unwrap();
    ann.press(".chat-form button[type='submit']").await.unwrap();
    // Bob's chat is closed: the button counts what he has not read, until he opens it.
    let unread = "const c = document.querySelector(\"button[name='chat'] .count\"); return c && c.textContent === '1';";
    bob.wait_for("an unread chat badge at Bob", unread, UI_WAIT).await.unwrap();
    bob.screenshot("client-61-unread-chat").await.unwrap();
    bob.press("button[name='chat']").await.unwrap();
    let read = "return document.querySelector(\"button[name='chat'] .count\") === null;";
    bob.wait_for("the badge gone once the chat is open", read, UI_WAIT).await.unwrap();
    let heard = "return [...document.querySelectorAll('.chat li')].some(l => l.textContent.includes('still here'));";
    bob.wait_for("Ann's chat after the resume", heard, UI_WAIT).await.unwrap();
    screenshots_at_both_sizes(&bob, "client-62-chat").await;

    for browser in [ann, bob] {
        browser.close().await.unwrap();
    }
    convene.stop().await.unwrap();
}

#[tokio::test]
async fn a_meeting_whose_media_node_dies_goes_on_on_another_node_after_the_page_reconnects() {
    let mut convene = Convene::cluster_with_tenant(2).await.expect("a control plane and two media nodes start");
    let (ann, bob) = ann_and_bob_meet(&convene, "failover", Some(KEEP_SOCKETS)).await;

    convene.kill_node_with_rooms().await.expect("the meeting's node dies");
    let lost = std::time::Instant::now();
    // Each page notices, connects again through the meet host, lands on the live node and starts over there.
    let moved = "return window.testSockets.length >= 2 && window.testSockets.at(-1).readyState === 1 &&
                 document.querySelector(\"[data-signalling='up']\") !== null &&
                 document.querySelector(\".meeting[data-phase='meeting']\") !== null;";
    for browser in [&ann, &bob] {
        browser.wait_for("the meeting again over a new socket", moved, MEDIA_WAIT).await.unwrap();
    }
    let rejoined = lost.elapsed();
    wait_receiving(&ann, "Ann", &["Bob Participant"]).await;
    wait_receiving(&bob, "Bob", &["Ann Moderator"]).await;
    println!(
        "media node lost: both pages in the meeting again {rejoined:?} later, decoding each other {:?}",
        lost.elapsed()
    );
    let nodes = convene.media_nodes().await.unwrap();
    let hosting: Vec<_> = nodes.iter().filter(|node| node["placed_rooms"] == 1).collect();
    assert_eq!(hosting.len(), 1, "the meeting is on one node: {nodes:?}");
    assert_eq!(hosting[0]["state"], "alive", "{nodes:?}");
    ann.screenshot("client-65-after-failover").await.unwrap();

    for browser in [ann, bob] {
        browser.close().await.unwrap();
    }
    convene.stop().await.unwrap();
}

/// Serves the docs' iframe sample from a loopback origin of its own (another site, as a customer's would be).
fn serve_sample() -> u16 {
    use std::io::{Read, Write};
    let page = include_str!("../../docs/embed-sample.html");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                page.len()
            );
            let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(page.as_bytes()));
        }
    });
    port
}

#[tokio::test]
async fn the_iframe_sample_joins_and_obeys_its_page() {
    let convene = Convene::up_with_tenant().await.expect("convene up starts");
    let link = convene.join_url("embedded", "Emma Embedded", false).await.unwrap();
    let jwt = link.split_once("jwt=").map(|(_, jwt)| jwt.to_owned()).unwrap();
    let meet = format!("http://meet.localhost:{}", convene.port());
    let sample = format!(
        "http://127.0.0.1:{}/embed-sample.html?meet={meet}&room=embedded&jwt={jwt}&prejoin=off",
        serve_sample()
    );
    let browser = Browser::start().await.expect("a browser session");
    browser.open(&sample).await.unwrap();
    let event = |name: &str| format!("return document.querySelector(\"#events li[data-event='{name}']\") !== null;");
    browser.wait_for("videoConferenceJoined", &event("videoConferenceJoined"), MEDIA_WAIT).await.unwrap();
    browser.press("#mute").await.unwrap();
    browser.wait_for("audioMuteStatusChanged", &event("audioMuteStatusChanged"), UI_WAIT).await.unwrap();
    let muted = "return [...document.querySelectorAll(\"#events li[data-event='audioMuteStatusChanged']\")]
                 .some(line => line.textContent.includes('\"muted\":true'));";
    browser.wait_for("the microphone muted by the page", muted, UI_WAIT).await.unwrap();
    browser.screenshot("client-30-embedded").await.unwrap();
    browser.press("#hangup").await.unwrap();
    browser.wait_for("videoConferenceLeft", &event("videoConferenceLeft"), UI_WAIT).await.unwrap();
    browser.close().await.unwrap();
    convene.stop().await.unwrap();
}

/// The version byte that ends every frame the encryption worker sealed (`assets/e2ee-worker.js`).
const SEALED_FRAME_VERSION: u8 = 0xe2;

#[tokio::test]
async fn an_encrypted_meeting_decodes_between_browsers_while_the_node_forwards_only_sealed_frames() {
    let convene = Convene::up_with_tenant().await.expect("convene up starts");
    convene.create_room(json!({ "name": "private", "end_to_end_encryption": true })).await.unwrap();
    let ann = open_prejoin(&convene.join_url("private", "Ann Moderator", true).await.unwrap()).await;
    join(&ann, "meeting").await;
    let bob = open_prejoin(&convene.join_url("private", "Bob Participant", false).await.unwrap()).await;
    join(&bob, "meeting").await;
    for browser in [&ann, &bob] {
        let on = "return document.querySelector(\"[data-e2ee='on']\") !== null;";
        browser.wait_for("the encryption indicator", on, UI_WAIT).await.unwrap();
    }
    wait_receiving(&ann, "Ann", &["Bob Participant"]).await;
    wait_receiving(&bob, "Bob", &["Ann Moderator"]).await;
    ann.screenshot("client-40-e2ee").await.unwrap();

    // A participant without the keys (a webrtc-rs bot) sees what the node forwards: sealed frames only.
    let (observer, tails) = observe(&convene, "private", 2).await;
    for tail in &tails {
        assert_eq!(tail.last(), Some(&SEALED_FRAME_VERSION), "every forwarded frame is sealed: {tail:02x?}");
    }
    let ivs: std::collections::BTreeSet<&[u8]> =
        tails.iter().map(|tail| &tail[tail.len() - 14..tail.len() - 2]).collect();
    assert_eq!(ivs.len(), tails.len(), "every frame has an IV of its own");
    // The browsers ratcheted their keys for the newcomer and still decode each other.
    wait_receiving(&ann, "Ann", &["Bob Participant"]).await;
    observer.leave().await;
    // The observer left: keys rotate, and the two go on decoding.
    wait_receiving(&bob, "Bob", &["Ann Moderator"]).await;
    wait_receiving(&ann, "Ann", &["Bob Participant"]).await;

    // The control: in a room without end-to-end encryption the same observer gets plain VP8, which the
    // checks above would refuse (a plain frame ends in the marker byte about once in 256).
    let cy = open_prejoin(&convene.join_url("open", "Cy Participant", false).await.unwrap()).await;
    join(&cy, "meeting").await;
    let (plain_observer, plain) = observe(&convene, "open", 1).await;
    let marked = plain.iter().filter(|tail| tail.last() == Some(&SEALED_FRAME_VERSION)).count();
    assert!(marked * 2 < plain.len(), "{marked} of {} plain frames end like sealed ones", plain.len());
    plain_observer.leave().await;

    for browser in [ann, bob, cy] {
        browser.close().await.unwrap();
    }
    convene.stop().await.unwrap();
}

/// A keyless webrtc-rs bot joins `room` and collects the last bytes of the video frames the node forwards it
/// from `cameras` people.
async fn observe(convene: &Convene, room: &str, cameras: usize) -> (convene_bots::Bot, Vec<Vec<u8>>) {
    let link = convene.join_url(room, "Observer", false).await.unwrap();
    let token = link.split_once("jwt=").map(|(_, jwt)| jwt.to_owned()).unwrap();
    let mut options = convene_bots::BotOptions::new(
        format!("ws://{}/_signal/{room}", convene.address),
        format!("meet.localhost:{}", convene.port()),
        token,
    );
    options.video = None;
    let observer = convene_bots::Bot::join(options).await.expect("the observer joins");
    let deadline = std::time::Instant::now() + MEDIA_WAIT;
    loop {
        let stats = observer.stats();
        let seen: Vec<_> = stats.tracks.iter().filter(|track| track.frame_tails.len() >= 8).collect();
        if seen.len() >= cameras {
            let tails = seen.into_iter().flat_map(|track| track.frame_tails.clone()).collect();
            return (observer, tails);
        }
        assert!(std::time::Instant::now() < deadline, "the observer received no video: {stats:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A track file's codec and its last packet's time in seconds, by ffprobe; and what ffmpeg says decoding it
/// all (nothing when it decodes without an error).
async fn probe_track(path: &std::path::Path) -> (String, f64, String) {
    let probe = |args: &[&str]| {
        let mut command = tokio::process::Command::new("ffprobe");
        command.args(["-v", "error"]).args(args).arg(path);
        command
    };
    let codec = probe(&["-show_entries", "stream=codec_name", "-of", "csv=p=0"]).output().await.expect("ffprobe runs");
    let times = probe(&["-show_entries", "packet=pts_time", "-of", "csv=p=0"]).output().await.unwrap();
    let last =
        String::from_utf8_lossy(&times.stdout).lines().filter_map(|line| line.trim().parse().ok()).fold(0.0, f64::max);
    // Timed in the file's own milliseconds: in the frame-rate time base ffmpeg guesses otherwise, two frames a
    // few milliseconds apart (the writer keeps every frame after the last) meet, and the null muxer complains
    // about its own rounding, not the file.
    let decoded = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-enc_time_base", "-1", "-f", "null", "-"])
        .output()
        .await
        .expect("ffmpeg runs");
    let said = format!(
        "{}{}",
        if decoded.status.success() { "" } else { "failed: " },
        String::from_utf8_lossy(&decoded.stderr)
    );
    (String::from_utf8_lossy(&codec.stdout).trim().to_owned(), last, said)
}

/// Whether something listens on loopback TCP `port` (read from the kernel, so an RTMP listener's one
/// connection is not spent on a probe).
fn listening(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1).is_some_and(|local| local.ends_with(&format!(":{port:04X}"))) && fields.get(3) == Some(&"0A")
    })
}

#[tokio::test]
async fn a_moderator_streams_the_meeting_live_from_the_toolbar_and_the_service_receives_their_picture() {
    let plans = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/tests/recording-plans.toml");
    let convene = Convene::up_with_tenant_and(&[
        ("CONVENE_PLANS", plans.to_owned()),
        // The streaming service is a listener on loopback.
        ("CONVENE_STREAMING_ALLOW_PRIVATE", "1".to_owned()),
    ])
    .await
    .unwrap();
    let may_stream = json!({ "room": "streamed", "user": { "id": "ann", "name": "Ann" }, "moderator": true,
        "features": { "livestreaming": true } });
    let ann = open_prejoin(&convene.token_url(may_stream).await.unwrap()).await;
    join(&ann, "meeting").await;
    let bob = open_prejoin(&convene.join_url("streamed", "Bob", false).await.unwrap()).await;
    join(&bob, "meeting").await;
    wait_receiving(&ann, "Ann", &["Bob"]).await;
    let no_button = "return document.querySelector(\"button[name='live']\") === null;";
    bob.wait_for("no live button for a participant", no_button, UI_WAIT).await.unwrap();

    // The streaming service: ffmpeg listening for RTMP on a loopback port, saving what arrives.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let received = convene.data_dir().join("received.flv");
    let mut service = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-listen", "1", "-f", "flv", "-i"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/ann-key"))
        .args(["-c", "copy"])
        .arg(&received)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("ffmpeg runs");
    for _ in 0..100 {
        if listening(port) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    ann.press("button[name='live']").await.unwrap();
    ann.wait_for("the live pane", "return document.querySelector(\"[name='live-key']\") !== null;", UI_WAIT)
        .await
        .unwrap();
    screenshots_at_both_sizes(&ann, "client-22-live-pane").await;
    ann.fill("live-url", &format!("rtmp://127.0.0.1:{port}/live")).await.unwrap();
    ann.fill("live-key", "ann-key").await.unwrap();
    ann.press("button[name='start-live']").await.unwrap();
    // The badge, or the notice of a stream that failed at once (it goes in seconds, so it is caught here).
    let badge_or_failure = "if (document.querySelector(\".room-status [data-live='on']\")) return 'live'; \
        const failed = document.querySelector('.meeting').innerText.match(/The live stream stopped because[^\\n]*/); \
        return failed && failed[0];";
    let seen = match bob.wait_for("Bob seeing the live badge", badge_or_failure, UI_WAIT).await {
        Ok(seen) => seen,
        Err(error) => {
            let (ann_sees, bob_sees) = (ann.main_text().await.unwrap(), bob.main_text().await.unwrap());
            panic!("{error}\nAnn sees: {ann_sees}\nBob sees: {bob_sees}");
        }
    };
    assert_eq!(seen, json!("live"), "the stream went live and stayed");
    let told =
        "return document.querySelector('.meeting').innerText.includes('Ann started streaming the meeting live.');";
    bob.wait_for("Bob told who went live", told, UI_WAIT).await.unwrap();
    wait_label(&ann, "live", "Live now").await;
    // The pre-join page, as the server renders it for someone about to join.
    let cy = reqwest::Url::parse(&convene.join_url("streamed", "Cy", false).await.unwrap()).unwrap();
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], cy.port().unwrap()));
    let http = reqwest::Client::builder().resolve(cy.host_str().unwrap(), loopback).build().unwrap();
    let prejoin = http.get(cy).send().await.unwrap().text().await.unwrap();
    assert!(prejoin.contains("This meeting is streamed live."), "whoever is about to join is told: {prejoin}");
    screenshots_at_both_sizes(&ann, "client-23-live").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    ann.press("button[name='stop-live']").await.unwrap();
    let gone = "return document.querySelector(\".room-status [data-live='on']\") === null;";
    bob.wait_for("the live badge going at Bob", gone, UI_WAIT).await.unwrap();
    let saved = tokio::time::timeout(Duration::from_secs(30), service.wait()).await.expect("the service's stream ends");
    assert!(saved.unwrap().success(), "the service took the stream whole");

    // 720p H.264 and AAC, as long as the stream was up, and a picture (the fake cameras' green), not black.
    let probe = |args: &[&str]| {
        let mut command = std::process::Command::new("ffprobe");
        command.args(["-v", "error"]).args(args).arg(&received);
        String::from_utf8(command.output().expect("ffprobe runs").stdout).unwrap()
    };
    let streams = probe(&["-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0"]);
    assert!(streams.contains("h264,1280,720") && streams.contains("aac"), "{streams}");
    let times = probe(&["-select_streams", "v", "-show_entries", "packet=pts_time", "-of", "csv=p=0"]);
    let last = times.lines().filter_map(|line| line.trim().parse::<f64>().ok()).fold(0.0, f64::max);
    assert!(last > 5.0, "the stream lasted {last} s");
    // One frame, 4 s in: Chromium's fake cameras are green, far from black in colour (blue-difference
    // chroma near 0 where black's is 128), as the frame is shrunk to a few pixels.
    let chroma = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-ss", "4", "-i"])
        .arg(&received)
        .args(["-frames:v", "1", "-vf", "extractplanes=u,scale=8:4:flags=area", "-f", "rawvideo", "-"])
        .output()
        .expect("ffmpeg runs");
    let mean = chroma.stdout.iter().map(|value| u32::from(*value)).sum::<u32>() / 32;
    assert!(chroma.stdout.len() == 32 && mean < 64, "a camera's picture, not black: {:?}", chroma.stdout);

    ann.close().await.unwrap();
    bob.close().await.unwrap();
    convene.stop().await.unwrap();
}

#[tokio::test]
async fn a_moderator_records_the_meeting_everyone_sees_it_and_each_track_is_a_playable_file() {
    // The API's tests' plan that includes recording.
    let plans = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/tests/recording-plans.toml");
    let convene = Convene::up_with_tenant_and(&[("CONVENE_PLANS", plans.to_owned())]).await.unwrap();
    let may_record = json!({ "room": "recorded", "user": { "id": "ann", "name": "Ann", "email": "ann@acme.example" },
        "moderator": true, "features": { "recording": true } });
    let ann = open_prejoin(&convene.token_url(may_record).await.unwrap()).await;
    join(&ann, "meeting").await;
    let bob = open_prejoin(&convene.join_url("recorded", "Bob", false).await.unwrap()).await;
    join(&bob, "meeting").await;
    wait_receiving(&ann, "Ann", &["Bob"]).await;
    wait_receiving(&bob, "Bob", &["Ann"]).await;
    let no_button = "return document.querySelector(\"button[name='record']\") === null;";
    bob.wait_for("no record button for a participant", no_button, UI_WAIT).await.unwrap();

    ann.press("button[name='record']").await.unwrap();
    let badge = "return document.querySelector(\".room-status [data-recording='on']\") !== null;";
    bob.wait_for("Bob seeing the recording badge", badge, UI_WAIT).await.unwrap();
    let told = "return document.querySelector('.meeting').innerText.includes('Ann started recording the meeting.');";
    bob.wait_for("Bob told who started recording", told, UI_WAIT).await.unwrap();
    wait_label(&ann, "record", "Stop recording").await;
    ann.screenshot("client-20-recording").await.unwrap();
    let (status, page) = convene.call(reqwest::Method::GET, "/v1/recordings", None).await.unwrap();
    assert_eq!(status, 200, "{page}");
    let id = page["recordings"][0]["id"].as_str().unwrap_or_default().to_owned();
    // The outbox delivers within moments; until then the list may be empty.
    let id = if id.is_empty() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (_, page) = convene.call(reqwest::Method::GET, "/v1/recordings", None).await.unwrap();
        page["recordings"][0]["id"].as_str().unwrap().to_owned()
    } else {
        id
    };
    let (_, one) = convene.call(reqwest::Method::GET, &format!("/v1/recordings/{id}"), None).await.unwrap();
    assert_eq!((one["state"].as_str(), one["started_by"].as_str()), (Some("recording"), Some("Ann")), "{one}");

    tokio::time::sleep(Duration::from_secs(8)).await;
    ann.press("button[name='record']").await.unwrap();
    let gone = "return document.querySelector(\".room-status [data-recording='on']\") === null;";
    bob.wait_for("the badge going at Bob", gone, UI_WAIT).await.unwrap();
    let mut state = String::new();
    for _ in 0..30 {
        let (_, one) = convene.call(reqwest::Method::GET, &format!("/v1/recordings/{id}"), None).await.unwrap();
        state = one["state"].as_str().unwrap_or_default().to_owned();
        if state != "recording" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_ne!(state, "recording", "the stop reached the control plane");

    // Every microphone and camera is a file of its own, as sent (VP8, Opus), playable from start to end.
    let dir = convene.data_dir().join("recordings").join(&id);
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let tracks = manifest["tracks"].as_array().unwrap();
    let mut kinds: Vec<String> = tracks.iter().map(|track| track["source"].as_str().unwrap().to_owned()).collect();
    kinds.sort();
    assert_eq!(kinds, ["camera", "camera", "microphone", "microphone"], "{manifest}");
    // Recorded for the 8 s between the clicks (and the moments a loaded machine takes to carry them out).
    let stopped = manifest["stopped_at_unix_ms"].as_u64().unwrap() - manifest["started_at_unix_ms"].as_u64().unwrap();
    let length = stopped as f64 / 1000.0;
    assert!(length >= 8.0, "{manifest}");
    for track in tracks {
        let (codec, last, said) = probe_track(&dir.join(track["file"].as_str().unwrap())).await;
        let expected = if track["source"] == "camera" { "vp8" } else { "opus" };
        assert_eq!(codec, expected, "{track}");
        assert!(last > length - 3.0 && last <= length + 0.1, "{track}: the last frame at {last} s of {length} s");
        assert!(said.is_empty(), "{track}: ffmpeg decodes it without errors, not {said}");
    }
    let joined: Vec<&str> = manifest["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["event"] == "joined")
        .filter_map(|event| event["name"].as_str())
        .collect();
    assert_eq!(joined, ["Ann", "Bob"], "{manifest}");

    // Composed into one MP4 within moments; then the owner plays it on the Recordings page and deletes it.
    let mut ready = Value::Null;
    for _ in 0..120 {
        let (_, one) = convene.call(reqwest::Method::GET, &format!("/v1/recordings/{id}"), None).await.unwrap();
        if one["state"] != "processing" {
            ready = one;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(ready["state"], "ready", "{ready}");
    assert_eq!(ready["participants"], json!(["Ann", "Bob"]), "{ready}");
    let told = convene.mailbox.wait_for("ann@acme.example", "Your recording of recorded is ready").await;
    assert!(told.link("http://localhost").ends_with("/recordings"), "{}", told.link("http://localhost"));
    let (codec, last, said) = probe_track(&dir.join("recording.mp4")).await;
    assert!(codec.starts_with("h264") && said.is_empty() && last > 7.0, "{codec} {last} {said}");
    ann.close().await.unwrap();
    bob.open(&convene.site("/login")).await.unwrap();
    bob.fill("email", "owner@acme.example").await.unwrap();
    bob.fill("password", "correct horse battery").await.unwrap();
    bob.submit("form[action='/auth/login'] button").await.unwrap();
    bob.open(&convene.site("/recordings")).await.unwrap();
    let page = bob.main_text().await.unwrap();
    assert!(page.contains("recorded") && page.contains("Ready") && page.contains("Ann, Bob"), "{page}");
    let plays = "const v = document.querySelector('.recorded-meeting video');
        if (v.readyState === 0 && !v.dataset.asked) { v.dataset.asked = '1'; v.load(); }
        return v.readyState >= 1 ? v.duration : null;";
    let duration = bob.wait_for("the recording's metadata in the page's player", plays, UI_WAIT).await.unwrap();
    assert!((duration.as_f64().unwrap() - 8.0).abs() < 2.0, "{duration}");
    let fits = "const inside = e => { const b = e.getBoundingClientRect(); return b.left >= 0 && b.right <= innerWidth; };
        return document.scrollingElement.scrollWidth <= innerWidth
            && [...document.querySelectorAll('.recorded-meeting a, .recorded-meeting button, .recorded-meeting video')].every(inside);";
    for (width, height, size) in [(1280, 800, "desktop"), (390, 844, "phone")] {
        bob.set_viewport(width, height).await.unwrap();
        bob.wait_for(&format!("the recordings page fitting {width}x{height}"), fits, UI_WAIT).await.unwrap();
        bob.screenshot(&format!("client-21-recordings-{size}")).await.unwrap();
    }
    bob.set_viewport(1280, 800).await.unwrap();
    bob.submit(".recorded-meeting form button").await.unwrap();
    let after = bob.main_text().await.unwrap();
    assert!(
        after.contains("The recording is deleted.") && after.contains("No meeting has been recorded yet."),
        "{after}"
    );
    assert!(!dir.exists(), "its files went with it");

    bob.close().await.unwrap();
    convene.stop().await.unwrap();
}

#[tokio::test]
async fn a_recording_cut_short_by_a_crash_is_finished_from_what_was_written_and_marked_interrupted() {
    let plans = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/tests/recording-plans.toml");
    let mut convene = Convene::up_with_tenant_and(&[("CONVENE_PLANS", plans.to_owned())]).await.unwrap();
    let ann = open_prejoin(&convene.join_url("crashed", "Ann", true).await.unwrap()).await;
    join(&ann, "meeting").await;
    let connected = "return document.querySelector(\".connection[data-connection='connected']\") !== null;";
    ann.wait_for("Ann's media connected", connected, MEDIA_WAIT).await.unwrap();
    let (status, started) = convene.call(reqwest::Method::POST, "/v1/rooms/crashed/recording", None).await.unwrap();
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(6)).await;

    // The node dies with the recording going on; at its next start it finishes what it had written.
    convene.crash_and_restart().await.unwrap();
    let mut one = Value::Null;
    for _ in 0..120 {
        (_, one) = convene.call(reqwest::Method::GET, &format!("/v1/recordings/{id}"), None).await.unwrap();
        if one["state"] == "ready" || one["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!((one["state"].as_str(), one["interrupted"].as_bool()), (Some("ready"), Some(true)), "{one}");
    let seconds = one["duration_seconds"].as_i64().unwrap();
    assert!((4..=8).contains(&seconds), "about the 6 s recorded before the crash: {one}");
    ann.close().await.unwrap();
    convene.stop().await.unwrap();
}

#[tokio::test]
async fn a_meeting_on_a_media_node_is_recorded_into_the_bucket_and_composed_by_the_control_plane() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let s3 = convene_bots::s3::S3Server::start(port).expect("moto runs");
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert!(plain.put(format!("{}/meetings", s3.endpoint())).send().await.unwrap().status().is_success());
    let plans = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/tests/recording-plans.toml");
    let mut settings = convene_bots::s3::recording_settings(&s3.endpoint());
    settings.push(("CONVENE_PLANS", plans.to_owned()));
    let convene = Convene::cluster_with_tenant_and(1, &settings).await.unwrap();
    let ann = open_prejoin(&convene.join_url("on-a-node", "Ann", true).await.unwrap()).await;
    join(&ann, "meeting").await;
    let connected = "return document.querySelector(\".connection[data-connection='connected']\") !== null;";
    ann.wait_for("Ann's media connected", connected, MEDIA_WAIT).await.unwrap();

    // The API's start reaches the meeting on its node; Ann sees the badge.
    let (status, started) = convene.call(reqwest::Method::POST, "/v1/rooms/on-a-node/recording", None).await.unwrap();
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    let badge = "return document.querySelector(\".room-status [data-recording='on']\") !== null;";
    ann.wait_for("Ann seeing the recording badge", badge, UI_WAIT).await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (status, stopped) = convene.call(reqwest::Method::DELETE, "/v1/rooms/on-a-node/recording", None).await.unwrap();
    assert_eq!(status, 200, "{stopped}");

    // The node ships the tracks to the bucket; the control plane composes them and keeps the result there.
    let mut one = Value::Null;
    for _ in 0..180 {
        (_, one) = convene.call(reqwest::Method::GET, &format!("/v1/recordings/{id}"), None).await.unwrap();
        if one["state"] == "ready" || one["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(one["state"], "ready", "{one}");
    let seconds = one["duration_seconds"].as_i64().unwrap();
    assert!((4..=10).contains(&seconds), "about the 6 s between start and stop: {one}");
    let link = one["download"]["video_url"].as_str().unwrap().replace("http://localhost:", "http://127.0.0.1:");
    let redirected = plain.get(&link).send().await.unwrap();
    assert_eq!(redirected.status(), 302, "the link leads to the bucket");
    let presigned = redirected.headers()["location"].to_str().unwrap().to_owned();
    let video = plain.get(&presigned).send().await.unwrap().bytes().await.unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &video).unwrap();
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0"])
        .arg(file.path())
        .output()
        .unwrap();
    let codecs = String::from_utf8_lossy(&probe.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(codecs, "h264 aac", "a playable recording");
    // The node's tracks are gone from the bucket once composed: only the recording's own files stay.
    let listing = plain.get(format!("{}/meetings?list-type=2&prefix=convene/", s3.endpoint())).send().await.unwrap();
    let listing = listing.text().await.unwrap();
    assert!(listing.contains("recording.mp4") && !listing.contains("/tracks/"), "{listing}");
    ann.close().await.unwrap();
    convene.stop().await.unwrap();
}

/// The people pane's "call a phone" fits the window once the pane is scrolled to it: its field and button
/// inside the viewport, no scrolling sideways. `null` until it holds.
const DIAL_OUT_FITS: &str = "
    document.getElementById('dial-out-call')?.scrollIntoView({ block: 'nearest' });
    const inside = e => { const b = e && e.getBoundingClientRect();
        return !!b && b.width > 0 && b.left >= 0 && b.top >= 0 && b.right <= innerWidth && b.bottom <= innerHeight; };
    const fits = inside(document.getElementById('dial-out-number')) && inside(document.getElementById('dial-out-call'))
        && document.scrollingElement.scrollWidth <= innerWidth;
    return fits ? true : null;";

#[tokio::test]
async fn a_moderator_calls_a_phone_from_the_people_pane_follows_it_hears_it_and_removes_it() {
    use convene_bots::sipp;
    let plans = concat!(env!("CARGO_MANIFEST_DIR"), "/../api/tests/recording-plans.toml");
    // The trunk: the phone rings a moment, answers, and stays until the gateway hangs up.
    let answer = |status: &str, extra: &str, body: &str| {
        format!(
            "<send><![CDATA[\nSIP/2.0 {status}\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]phone\n[last_Call-ID:]\n\
             [last_CSeq:]\nContact: <sip:phone@[local_ip]:[local_port]>\n{extra}Content-Length: [len]\n\n{body}]]></send>\n"
        )
    };
    // The phone's audio is the test's: its answer names a socket of ours.
    let phone_socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone_port = phone_socket.local_addr().unwrap().port().to_string();
    let steps = format!(
        "<recv request=\"INVITE\" rrs=\"true\"/>\n{}<pause milliseconds=\"2500\"/>\n{}<recv request=\"ACK\"/>\n{}",
        answer("180 Ringing", "", ""),
        answer("200 OK", "Content-Type: application/sdp\n", &sipp::offer(&phone_port, "sendrecv")),
        sipp::hung_up(),
    );
    let (trunk_port, trunk) = sipp::trunk(&steps).await;
    // Once answered, the phone says a 1 kHz tone and counts the loud frames it hears after the joining prompt.
    let loud_frames = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&loud_frames);
    let (key_heard, mut keys) = tokio::sync::mpsc::unbounded_channel();
    let phone = tokio::spawn(async move {
        let until = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut answered = None;
        let say = |frame| Some(convene_media::phone::voice::narrow_tone(1_000.0, 8_000.0, frame));
        let hear = |at: tokio::time::Instant, sound: sipp::Heard<'_>| {
            let samples = match sound {
                sipp::Heard::Audio(samples) => samples,
                sipp::Heard::Key(key) => {
                    let _ = key_heard.send(key);
                    return;
                }
            };
            let answered = *answered.get_or_insert(at);
            let energy = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / samples.len() as f64;
            // Past the 1.6 s prompt, about -40 dBov and up is someone in the meeting.
            if at - answered > Duration::from_secs(3) && energy.sqrt() > 300.0 {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        };
        sipp::phone_media(phone_socket, convene_media::phone::sdp::Codec::Pcmu, until, say, hear).await;
    });
    let convene = Convene::up_with_tenant_and(&[
        ("CONVENE_PLANS", plans.to_owned()),
        ("CONVENE_SIP_TRUNK", format!("sip:127.0.0.1:{trunk_port}")),
    ])
    .await
    .unwrap();

    let may_call = json!({ "room": "dialled", "user": { "id": "ann", "name": "Ann" }, "moderator": true,
        "features": { "outbound-call": true } });
    let ann = open_prejoin(&convene.token_url(may_call).await.unwrap()).await;
    join(&ann, "meeting").await;
    ann.press("button[name='people']").await.unwrap();
    ann.wait_for("the call-a-phone form", "return document.getElementById('dial-out-number') !== null;", UI_WAIT)
        .await
        .unwrap();
    ann.fill("dial-out-number", "+1 (555) 987-4567").await.unwrap();
    // The meeting changing while the number is typed (here Ann's raised hand) leaves the number alone.
    ann.press("button[name='hand']").await.unwrap();
    let raised =
        "return [...document.querySelectorAll('[data-person]')].some(li => li.innerText.includes('hand raised'));";
    ann.wait_for("Ann's hand raised", raised, UI_WAIT).await.unwrap();
    let typed = ann.client.execute("return document.getElementById('dial-out-number').value;", vec![]).await.unwrap();
    assert_eq!(typed, "+1 (555) 987-4567", "the number being typed survives the meeting's changes");
    ann.press("#dial-out-call").await.unwrap();
    let state =
        |state: &str| format!("return document.querySelector(\".dial-out-call[data-state='{state}']\") !== null;");
    if let Err(error) = ann.wait_for("the phone ringing", &state("ringing"), UI_WAIT).await {
        let pane = ann.client.execute("return document.querySelector('aside.pane')?.innerText;", vec![]).await;
        let notices = ann.client.execute("return document.querySelector('.meeting')?.innerText;", vec![]).await;
        panic!("{error}: {pane:?} {notices:?}");
    }
    assert!(text_of(&ann, ".dial-out-call").await.contains("+15559874567 · Ringing…"));
    assert_eq!(
        ann.client.execute("return document.getElementById('dial-out-number').value;", vec![]).await.unwrap(),
        ""
    );
    ann.wait_for("the phone answering", &state("answered"), UI_WAIT).await.unwrap();
    let listed =
        "return [...document.querySelectorAll('[data-person]')].some(li => li.innerText.includes('Phone ••• 4567'));";
    ann.wait_for("the phone among the people", listed, UI_WAIT).await.unwrap();
    // The phone's tone reaches the browser and makes the phone the speaker.
    let phone_heard = "const tile = [...document.querySelectorAll('figure.tile')]
            .find(tile => tile.innerText.includes('Phone ••• 4567'));
        return tile && Number(tile.dataset.audioBytes) > 8000 && tile.classList.contains('speaking') ? true : null;";
    ann.wait_for("the phone heard in the browser, speaking", phone_heard, UI_WAIT).await.unwrap();
    // And the browser's microphone (Chromium's fake one beeps) reaches the phone.
    for _ in 0..100 {
        if loud_frames.load(std::sync::atomic::Ordering::Relaxed) >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(loud_frames.load(std::sync::atomic::Ordering::Relaxed) >= 5, "the phone hears the browser");
    // Keys pressed for the phone (its automated menu) reach it.
    ann.fill("tones", "5#").await.unwrap();
    ann.press("button[name='send-tones']").await.unwrap();
    let mut pressed = String::new();
    while pressed.len() < 2
        && let Ok(Some(key)) = tokio::time::timeout(UI_WAIT, keys.recv()).await
    {
        pressed.push(key);
    }
    assert_eq!(pressed, "5#", "the keys typed in the People pane reached the phone");
    for (width, height, size) in [(1280, 800, "desktop"), (390, 844, "phone")] {
        ann.set_viewport(width, height).await.unwrap();
        ann.wait_for(&format!("the form fitting {width}x{height}"), DIAL_OUT_FITS, UI_WAIT).await.unwrap();
        ann.screenshot(&format!("client-24-dial-out-{size}")).await.unwrap();
    }
    ann.set_viewport(1280, 800).await.unwrap();

    // Removed, the phone is hung up and the call shows as ended.
    let kick = "[...document.querySelectorAll('[data-person]')].find(li => li.innerText.includes('Phone ••• 4567'))
        .querySelector(\"button[name='kick']\").click();";
    ann.client.execute(kick, vec![]).await.unwrap();
    ann.wait_for("the call ended", &state("ended"), UI_WAIT).await.unwrap();
    assert!(trunk.await.unwrap(), "the phone was called, answered and hung up by the gateway");
    phone.abort();
    convene.stop().await.unwrap();
}
