//! Phone callers through the SIP gateway, with Debian's sipp as the trunk on loopback: OPTIONS over UDP and
//! TCP, 404 for numbers that are not ours, junk datagrams survived, the PIN typed as RFC 4733 events and as
//! SIP INFO, three wrong PINs hung up, hold by re-INVITE, `*6`, a moderator removing the caller, an
//! allow-list that drops SIP from addresses that are not the trunk's, Jigasi's room header from a
//! trusted SBC, and a wideband (G.722) caller whose trunk sends keys only as tones.

use std::{net::SocketAddr, time::Duration};

use reqwest::Method;
use serde_json::{Value, json};

use convene_bots::sipp::{
    Caller, Heard, free_port, hung_up, offer, phone_media, rtp_keys, run, stream, ulaw_wav, wideband_offer,
};
use convene_media::phone::{
    sdp::Codec,
    tones,
    voice::{NARROW_FRAME, narrow_tone},
};

use crate::{
    dial_in::{operator, tenant_id},
    helpers::{TestApp, call, spawn_configured, tenant_key},
    recordings::RECORDING_PLANS,
    signal::{hear, hello, say, token},
};

/// The number callers dial, assigned to the tenant.
pub(crate) const NUMBER: &str = "+15551230000";
/// The caller's own number, shown as "Phone ••• 4321".
const CALLER: &str = "+15557654321";

/// One sipp call from `CALLER` to `number` at `gateway`, playing `steps` (after `scenario`'s INVITE and
/// ACK when `answered`); true when sipp saw every step go as written.
pub(crate) async fn sipp(gateway: SocketAddr, transport: &str, number: &str, steps: &str) -> bool {
    run(steps, transport, free_port(), &[gateway.to_string(), "-s".to_owned(), number.to_owned()]).await
}

/// The test's caller.
pub(crate) fn caller() -> Caller {
    Caller::new(CALLER)
}

/// The INVITE with an offer of sipp's own media port, its answer and the ACK.
pub(crate) fn dial() -> String {
    caller().dial(&offer("[media_port]", "sendrecv"), true)
}

/// An INVITE from the test's caller with `headers`, answered 404, and the ACK that ends it.
pub(crate) fn not_found(headers: &str) -> String {
    let invite = caller().dial_with(headers, &offer("[media_port]", "sendrecv"), false);
    let invite = invite.split("<recv response=\"100\"").next().unwrap_or_default();
    let ack = "<send><![CDATA[\nACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0\n[last_Via:]\nFrom: \"Caller\" \
               <sip:+15557654321@[local_ip]:[local_port]>;tag=[call_number]\n[last_To:]\nCall-ID: [call_id]\n\
               CSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n]]></send>\n";
    format!("{invite}<recv response=\"100\" optional=\"true\"/>\n<recv response=\"404\"/>\n{ack}")
}

/// Keys by SIP INFO from `caller`, CSeq from `first` on.
pub(crate) fn typed(caller: &Caller, keys: &str, first: u32) -> String {
    let keys: Vec<String> = keys.chars().map(String::from).collect();
    caller.info_keys(keys.iter().map(String::as_str), first)
}

fn sip_addr(app: &TestApp) -> SocketAddr {
    app.sip_addr()
}

/// A tenant on a plan with dial-in, the gateway's number assigned to it, and a room whose PIN is `pin`
/// (set in the records: sipp's key recordings carry one timestamp per key, so a PIN that repeats a key
/// back to back would read as one press).
pub(crate) async fn tenant_with_room(app: &TestApp, room: &str, pin: &str) -> String {
    let key = tenant_key(app, "owner@acme.example").await;
    let tenant = tenant_id(app, &key).await;
    let assigned = json!({ "tenant_id": tenant, "number": NUMBER, "country": "US", "toll_free": false });
    assert_eq!(operator(app, Method::POST, "/dial-in-numbers", Some(assigned)).await.0, 201);
    call(app, Method::POST, "/v1/rooms", &key, Some(json!({ "name": room }))).await;
    let (status, _) = call(app, Method::GET, &format!("/v1/rooms/{room}/dial-in"), &key, None).await;
    assert_eq!(status, 200);
    use sea_orm::ConnectionTrait;
    app.db().await.execute_unprepared(&format!("UPDATE rooms SET pin = '{pin}' WHERE name = '{room}'")).await.unwrap();
    key
}

#[tokio::test]
async fn the_gateway_answers_options_refuses_numbers_that_are_not_ours_and_shrugs_off_junk() {
    let app = spawn_configured(&[("CONVENE_PLANS", RECORDING_PLANS.to_owned())]).await;
    tenant_with_room(&app, "standup", "123456789").await;
    let gateway = sip_addr(&app);
    let to = "To: <sip:[service]@[remote_ip]:[remote_port]>";
    let options = caller().request("OPTIONS sip:[service]@[remote_ip]:[remote_port]", "1 OPTIONS", to, "", "");
    let answered = format!(
        "{options}<recv response=\"200\"><action><ereg regexp=\"INVITE\" search_in=\"hdr\" header=\"Allow:\" check_it=\"true\" assign_to=\"allow\"/></action></recv>\n"
    );
    assert!(sipp(gateway, "u1", "ping", &answered).await, "OPTIONS over UDP");
    assert!(sipp(gateway, "t1", "ping", &answered).await, "OPTIONS over TCP");

    for number in ["+15559999999", "alice", "15551230001"] {
        assert!(sipp(gateway, "u1", number, &not_found("")).await, "{number} is not ours: 404");
    }

    // Junk, truncated SIP and stray RTP at the SIP port change nothing.
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for junk in [
        &b"\x80\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00"[..],
        b"INVITE sip:x SIP/2.0\r\n\r\n",
        b"SIP/2.0 200 OK\r\nVia: nowhere\r\n\r\n",
        b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n",
        &[0xFF; 1400][..],
        b"",
    ] {
        socket.send_to(junk, gateway).await.unwrap();
    }
    assert!(sipp(gateway, "u1", "ping", &answered).await, "still answering");
    app.stop().await;
}

/// Whether the gateway at `gateway` answers a bare OPTIONS over UDP within a second.
async fn answers_options(gateway: SocketAddr) -> bool {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let here = socket.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:{gateway} SIP/2.0\r\nVia: SIP/2.0/UDP {here};branch=z9hG4bKallow\r\nTo: <sip:{gateway}>\r\n\
         From: <sip:ping@{here}>;tag=1\r\nCall-ID: allow@{here}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    );
    socket.send_to(options.as_bytes(), gateway).await.unwrap();
    let mut answer = vec![0; 2048];
    let received = tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut answer)).await;
    received.is_ok_and(|received| received.is_ok_and(|(length, _)| answer[..length].starts_with(b"SIP/2.0 200")))
}

#[tokio::test]
async fn a_gateway_with_an_allow_list_takes_sip_only_from_its_trunks() {
    let elsewhere = spawn_configured(&[("CONVENE_SIP_ALLOW", "192.0.2.0/24, 2001:db8::/32".to_owned())]).await;
    assert!(!answers_options(sip_addr(&elsewhere)).await, "SIP from an address not listed is dropped unread");
    elsewhere.stop().await;
    let listed = spawn_configured(&[("CONVENE_SIP_ALLOW", "192.0.2.0/24, 127.0.0.1".to_owned())]).await;
    assert!(answers_options(sip_addr(&listed)).await, "the trunk's address is answered");
    listed.stop().await;
}

#[tokio::test]
async fn a_trusted_sbc_names_the_meeting_in_jigasis_header_and_its_callers_skip_the_pin() {
    let plans = ("CONVENE_PLANS", RECORDING_PLANS.to_owned());
    let app = spawn_configured(&[plans.clone(), ("CONVENE_SIP_ALLOW", "127.0.0.1".to_owned())]).await;
    let key = tenant_with_room(&app, "standup", "123456789").await;
    let tenant = tenant_id(&app, &key).await;
    let password = json!({ "password": "4242" });
    assert_eq!(call(&app, Method::PATCH, "/v1/rooms/standup", &key, Some(password)).await.0, 200);
    let gateway = sip_addr(&app);
    let routed = |room: &str| {
        format!("Jitsi-Conference-Room: {room}@conference.{tenant}.meet.localhost\nJitsi-Conference-Room-Pass: 4242\n")
    };

    // The meeting and its password from the SBC: in without a word typed, until the caller hangs up.
    let offer = offer("[media_port]", "sendrecv");
    let script = format!(
        "{}<pause milliseconds=\"3000\"/>\n{}",
        caller().dial_with(&routed("standup"), &offer, true),
        caller().in_dialog("BYE", 2, "", "")
    );
    let call_in = tokio::spawn(async move { sipp(gateway, "u1", NUMBER, &script).await });
    let present = eventually_present(&app, &key, |list| list.iter().any(|p| p["name"] == "Phone ••• 4321")).await;
    assert!(present, "the routed caller is in the meeting");
    assert!(call_in.await.unwrap(), "and hung up");

    // A room the organisation does not have is not found, and one process passes no caller between nodes.
    let unknown = not_found(&routed("nowhere"));
    assert!(sipp(gateway, "u1", NUMBER, &unknown).await, "404 for a room that is not the number's organisation's");
    let relayed = not_found("X-Convene-Relay: eyJ0IjoiZm9yZ2VkIn0.c2lnbmF0dXJl\n");
    assert!(sipp(gateway, "u1", NUMBER, &relayed).await, "404 for a relay ticket in one process");
    app.stop().await;

    // Where SIP may come from anywhere, the header is anyone's to forge: it is ignored and the PIN asked for.
    let open = spawn_configured(&[plans]).await;
    let key = tenant_with_room(&open, "standup", "123456789").await;
    let tenant = tenant_id(&open, &key).await;
    let forged = format!("Jitsi-Conference-Room: standup@conference.{tenant}.meet.localhost\n");
    let gateway = sip_addr(&open);
    let script = format!(
        "{}<pause milliseconds=\"3000\"/>\n{}",
        caller().dial_with(&forged, &offer, true),
        caller().in_dialog("BYE", 2, "", "")
    );
    let call_in = tokio::spawn(async move { sipp(gateway, "u1", NUMBER, &script).await });
    let (_, presence) = {
        tokio::time::sleep(Duration::from_secs(2)).await;
        call(&open, Method::GET, "/v1/rooms/standup/presence", &key, None).await
    };
    assert_eq!(presence["participants"], json!([]), "a forged header lets nobody in");
    assert!(call_in.await.unwrap());
    open.stop().await;
}

#[tokio::test]
async fn a_caller_types_the_pin_joins_as_a_phone_mutes_with_star_six_holds_and_is_removed_by_a_moderator() {
    let app = spawn_configured(&[
        ("CONVENE_PLANS", RECORDING_PLANS.to_owned()),
        ("CONVENE_WEBHOOKS_ALLOW_LOOPBACK", "1".to_owned()),
    ])
    .await;
    let key = tenant_with_room(&app, "standup", "123456789").await;
    let events = ["dial_in.joined", "dial_in.left", "dial_out.joined"];
    let (inbox, _receiver) = crate::webhooks::listening_endpoint(&app, &key, &events).await;
    let ann_token = token(&app, &key, "standup", "Ann", true).await;
    let (mut ann, welcome) = hello(&app, "standup", &ann_token).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");

    // The PIN by RFC 4733 over the greeting, then *6, then hold, then wait for the moderator.
    let script = format!(
        "{}<pause milliseconds=\"1000\"/>\n{}<pause milliseconds=\"3000\"/>\n{}{}{}",
        dial(),
        rtp_keys("123456789#"),
        rtp_keys("*6"),
        caller().hold(2),
        hung_up(),
    );
    let gateway = sip_addr(&app);
    let caller = tokio::spawn(async move { sipp(gateway, "u1", NUMBER, &script).await });

    let joined = hear_until(&mut ann, |message| message["type"] == "participant_joined").await;
    let phone = joined["participant"].clone();
    assert_eq!(phone["name"], "Phone ••• 4321", "{joined}");
    assert_eq!(phone["moderator"], false);
    let muted = hear_until(&mut ann, |message| message["type"] == "participant_updated").await;
    assert_eq!(muted["participant"]["audio_muted"], true, "*6 muted the caller: {muted}");

    say(&mut ann, json!({ "type": "kick", "participant": phone["id"] })).await;
    let left = hear_until(&mut ann, |message| message["type"] == "participant_left").await;
    assert_eq!(left["reason"], "kicked");
    assert!(caller.await.unwrap(), "the caller heard the removal, then the gateway's BYE");

    // The call is in the meeting's records like anyone's, and the removal keeps that caller out.
    let (_, meetings) = call(&app, Method::GET, "/v1/meetings", &key, None).await;
    let names: Vec<&str> =
        meetings["meetings"][0]["participants"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert!(names.contains(&"Phone ••• 4321"), "{meetings}");
    let again = format!("{}<pause milliseconds=\"500\"/>\n{}{}", dial(), rtp_keys("123456789#"), hung_up());
    assert!(sipp(gateway, "u1", NUMBER, &again).await, "a removed caller is told so and hung up");

    // Webhooks told of the caller coming and going (Ann, in a browser, is not a phone).
    let told = crate::webhooks::delivered(&inbox, 2).await;
    let said: Vec<(&str, &str, &str)> = told
        .iter()
        .map(|body| {
            let participant = &body["data"]["participant"];
            (
                body["type"].as_str().unwrap(),
                participant["name"].as_str().unwrap(),
                participant["phone"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(said, [("dial_in.joined", "Phone ••• 4321", "dial_in"), ("dial_in.left", "Phone ••• 4321", "dial_in")]);
    app.stop().await;
}

#[tokio::test]
async fn wrong_pins_are_hung_up_after_three_tries_and_keys_by_sip_info_count_the_same() {
    let app = spawn_configured(&[("CONVENE_PLANS", RECORDING_PLANS.to_owned())]).await;
    let key = tenant_with_room(&app, "standup", "123456789").await;
    let gateway = sip_addr(&app);

    // Three wrong PINs: "wrong", twice, then goodbye and BYE.
    let wrong = format!(
        "{}{}<pause milliseconds=\"500\"/>\n{}<pause milliseconds=\"500\"/>\n{}{}",
        dial(),
        typed(&caller(), "111#", 2),
        typed(&caller(), "222#", 6),
        typed(&caller(), "333#", 10),
        hung_up()
    );
    assert!(sipp(gateway, "u1", NUMBER, &wrong).await, "three wrong PINs end the call");

    // Over TCP, a wrong PIN then the right one: the caller is in the meeting until they hang up.
    let right = format!(
        "{}{}<pause milliseconds=\"500\"/>\n{}<pause milliseconds=\"2000\"/>\n{}",
        dial(),
        typed(&caller(), "9#", 2),
        typed(&caller(), "123456789#", 4),
        caller().in_dialog("BYE", 20, "", "")
    );
    let caller = tokio::spawn(async move { sipp(gateway, "t1", NUMBER, &right).await });
    let present = eventually_present(&app, &key, |list| list.iter().any(|p| p["name"] == "Phone ••• 4321")).await;
    assert!(present, "the caller is in the meeting");
    assert!(caller.await.unwrap(), "the caller hung up");
    assert!(eventually_present(&app, &key, <[Value]>::is_empty).await, "and left it");
    app.stop().await;
}

/// Frames until one matches (the room says other things meanwhile).
pub(crate) async fn hear_until(socket: &mut crate::signal::Socket, matches: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..50 {
        let message = hear(socket).await.expect("the moderator's connection stays open");
        if matches(&message) {
            return message;
        }
    }
    panic!("the expected message never came");
}

/// Whether the room's presence comes to satisfy `ready` within 30 s.
pub(crate) async fn eventually_present(app: &TestApp, key: &str, ready: impl Fn(&[Value]) -> bool) -> bool {
    for _ in 0..300 {
        let (_, presence) = call(app, Method::GET, "/v1/rooms/standup/presence", key, None).await;
        if presence["participants"].as_array().is_some_and(|list| ready(list)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// What a caller hears: the µ-law RTP that reaches `socket` over `duration`, decoded.
pub(crate) async fn listen(socket: tokio::net::UdpSocket, duration: Duration) -> Vec<i16> {
    let mut heard = Vec::new();
    let until = tokio::time::Instant::now() + duration;
    phone_media(
        socket,
        Codec::Pcmu,
        until,
        |_| None,
        |_, sound| {
            if let Heard::Audio(samples) = sound {
                heard.extend_from_slice(samples);
            }
        },
    )
    .await;
    heard
}

/// The share of `samples`' power (at `rate`) at `frequency`, over 100 ms windows weighted by their energy:
/// near 1 for a pure tone of that frequency, near 0 for another tone or silence.
pub(crate) fn tone_share(samples: &[i16], frequency: f32, rate: f32) -> f32 {
    let energy = |chunk: &[i16]| chunk.iter().map(|&sample| f32::from(sample) * f32::from(sample)).sum::<f32>();
    let (mut at_frequency, mut total) = (0.0, 0.0);
    for chunk in samples.chunks_exact(rate as usize / 10) {
        at_frequency += tones::tone_share(chunk, frequency, rate) * energy(chunk);
        total += energy(chunk);
    }
    if total == 0.0 { 0.0 } else { at_frequency / total }
}

#[tokio::test]
async fn callers_hear_each_other_through_the_room_and_never_their_own_voice() {
    let app = spawn_configured(&[("CONVENE_PLANS", RECORDING_PLANS.to_owned())]).await;
    let key = tenant_with_room(&app, "standup", "123456789").await;
    let gateway = sip_addr(&app);
    let dir = tempfile::tempdir().unwrap();
    let (low, high) = (dir.path().join("400.wav"), dir.path().join("1000.wav"));
    std::fs::write(&low, ulaw_wav(Some(400.0), 20)).unwrap();
    std::fs::write(&high, ulaw_wav(Some(1_000.0), 20)).unwrap();

    // Each caller's audio comes to a socket of the test's, named in its offer; sipp sends each one's tone.
    let ears = [
        tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    ];
    let first = tone_caller(gateway, (&ears[0], &low), "+15550001111", 14);
    let second = tone_caller(gateway, (&ears[1], &high), "+15550002222", 14);
    assert!(eventually_present(&app, &key, |list| list.len() == 2).await, "both callers are in the meeting");
    // Past the joining prompts, while both tones play.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let [first_ear, second_ear] = ears;
    let (first_heard, second_heard) =
        tokio::join!(listen(first_ear, Duration::from_secs(5)), listen(second_ear, Duration::from_secs(5)));
    assert!(first_heard.len() >= 8_000 * 4, "the first caller got audio all along: {} samples", first_heard.len());
    let share = |heard: &[i16], frequency| tone_share(heard, frequency, tones::RATE);
    let (first_hears_other, first_hears_self) = (share(&first_heard, 1_000.0), share(&first_heard, 400.0));
    let (second_hears_other, second_hears_self) = (share(&second_heard, 400.0), share(&second_heard, 1_000.0));
    eprintln!(
        "first: other {first_hears_other:.2} self {first_hears_self:.2}; second: other {second_hears_other:.2} self {second_hears_self:.2}"
    );
    assert!(first_hears_other > 0.5 && second_hears_other > 0.5, "each hears the other's tone");
    assert!(first_hears_self < 0.05 && second_hears_self < 0.05, "and not their own");
    assert!(first.await.unwrap() && second.await.unwrap(), "both calls went as written");
    app.stop().await;
}

/// A call from `from` to `gateway` whose audio comes to `ear`: it types the PIN by INFO, says `tone` (sipp
/// streams it) for `seconds`, and hangs up; true when it went as written.
pub(crate) fn tone_caller(
    gateway: SocketAddr,
    (ear, tone): (&tokio::net::UdpSocket, &std::path::Path),
    from: &str,
    seconds: u32,
) -> tokio::task::JoinHandle<bool> {
    let port = ear.local_addr().unwrap().port().to_string();
    let caller = Caller::new(from);
    let script = format!(
        "{}{}{}<pause milliseconds=\"{}\"/>\n{}",
        caller.dial(&offer(&port, "sendrecv"), true),
        typed(&caller, "123456789#", 2),
        stream(tone),
        seconds * 1000,
        caller.in_dialog("BYE", 20, "", ""),
    );
    tokio::spawn(async move { sipp(gateway, "u1", NUMBER, &script).await })
}

/// A wideband phone the test plays itself (sipp only signals): it types `keys` as tones (100 ms each,
/// 100 ms apart), then says a 1 kHz tone, all in `codec`; what it hears over `duration`, at 16 kHz.
async fn wideband_phone(ear: tokio::net::UdpSocket, codec: Codec, keys: &str, duration: Duration) -> Vec<i16> {
    // What to say, a 20 ms frame at a time: each key for 5 frames, then 5 of silence; then the tone.
    let mut script: Vec<Option<char>> = Vec::new();
    for key in keys.chars() {
        script.extend(std::iter::repeat_n(Some(key), 5));
        script.extend(std::iter::repeat_n(None, 5));
    }
    let say = |index: usize| {
        Some(match script.get(index) {
            Some(Some(key)) => tones::key_tone(*key, index).expect("a key"),
            Some(None) => [0; NARROW_FRAME],
            None => narrow_tone(1_000.0, 8_000.0, index),
        })
    };
    let mut heard = Vec::new();
    let until = tokio::time::Instant::now() + duration;
    phone_media(ear, codec, until, say, |_, sound| {
        if let Heard::Audio(samples) = sound {
            heard.extend_from_slice(samples);
        }
    })
    .await;
    heard
}

#[tokio::test]
async fn a_g722_caller_types_the_pin_as_tones_and_talks_with_a_narrowband_caller() {
    wideband_caller_meets_a_narrowband_one(Codec::G722).await;
}

#[tokio::test]
async fn an_opus_caller_types_the_pin_as_tones_and_talks_with_a_narrowband_caller() {
    wideband_caller_meets_a_narrowband_one(Codec::Opus).await;
}

/// A caller in `codec` (wideband) types the PIN as tones, and hears and is heard by a G.711 caller.
async fn wideband_caller_meets_a_narrowband_one(codec: Codec) {
    let app = spawn_configured(&[("CONVENE_PLANS", RECORDING_PLANS.to_owned())]).await;
    let key = tenant_with_room(&app, "standup", "123456789").await;
    let gateway = sip_addr(&app);
    let dir = tempfile::tempdir().unwrap();
    let low = dir.path().join("400.wav");
    std::fs::write(&low, ulaw_wav(Some(400.0), 20)).unwrap();
    let (wide_ear, narrow_ear) = (
        tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    );

    // The wideband phone's trunk offers the codec alone and no telephone-event; sipp only signals.
    let wide_port = wide_ear.local_addr().unwrap().port().to_string();
    let wide_caller = Caller::new("+15550003333");
    let script = format!(
        "{}<pause milliseconds=\"16000\"/>\n{}",
        wide_caller.dial(&wideband_offer(&wide_port, codec), true),
        wide_caller.in_dialog("BYE", 2, "", ""),
    );
    let wide_call = tokio::spawn(async move { sipp(gateway, "u1", NUMBER, &script).await });
    let wide_phone = tokio::spawn(wideband_phone(wide_ear, codec, "123456789#", Duration::from_secs(12)));
    assert!(
        eventually_present(&app, &key, |list| list.len() == 1).await,
        "the PIN typed as tones let the wideband caller in"
    );

    // A narrowband caller (PCMU, keys by INFO) says 400 Hz.
    let narrow_port = narrow_ear.local_addr().unwrap().port().to_string();
    let narrow_caller = Caller::new("+15550004444");
    let script = format!(
        "{}{}{}<pause milliseconds=\"12000\"/>\n{}",
        narrow_caller.dial(&offer(&narrow_port, "sendrecv"), true),
        typed(&narrow_caller, "123456789#", 2),
        stream(&low),
        narrow_caller.in_dialog("BYE", 20, "", ""),
    );
    let narrow_call = tokio::spawn(async move { sipp(gateway, "u1", NUMBER, &script).await });
    assert!(eventually_present(&app, &key, |list| list.len() == 2).await, "both callers are in the meeting");
    // Past the joining prompts, while both speak.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let narrow_heard = listen(narrow_ear, Duration::from_secs(4)).await;
    let wide_heard = wide_phone.await.unwrap();
    // The wideband phone's last 3 s: the narrowband caller's voice, at 16 kHz.
    let recent = &wide_heard[wide_heard.len().saturating_sub(16_000 * 3)..];
    let (wide_hears_other, wide_hears_self) =
        (tone_share(recent, 400.0, 16_000.0), tone_share(recent, 1_000.0, 16_000.0));
    let (narrow_hears_other, narrow_hears_self) =
        (tone_share(&narrow_heard, 1_000.0, tones::RATE), tone_share(&narrow_heard, 400.0, tones::RATE));
    eprintln!(
        "wideband: other {wide_hears_other:.2} self {wide_hears_self:.2}; \
         narrowband: other {narrow_hears_other:.2} self {narrow_hears_self:.2}"
    );
    assert!(recent.len() >= 16_000 * 2, "the wideband phone heard 16 kHz audio all along: {}", recent.len());
    assert!(wide_hears_other > 0.5 && narrow_hears_other > 0.5, "each hears the other across the codecs");
    assert!(wide_hears_self < 0.05 && narrow_hears_self < 0.05, "and not themselves");
    assert!(wide_call.await.unwrap() && narrow_call.await.unwrap(), "both calls went as written");
    app.stop().await;
}
