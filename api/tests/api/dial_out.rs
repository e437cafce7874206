//! Calling phones into meetings through the SIP trunk, with Debian's sipp as the trunk on loopback: the
//! trunk challenges for digest credentials and checks them, the phone rings and answers, the moderator
//! follows the call and removes the phone (the gateway hangs up); a busy line, a call the moderator cancels
//! while it rings (CANCEL, 487), a phone that hangs up, the API's refusals, a trunk over TCP to a phone that
//! answers in Opus, and a number removed before the room last closed.

use std::time::Duration;

use convene_bots::sipp::{Transport, run, trunk, trunk_over};
use convene_media::phone::{dtmf::KeyReader, rtp::RtpPacket, sdp::Codec, voice::Voice};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, call, spawn_configured, tenant_key},
    phone::{NUMBER, eventually_present, hear_until, tenant_with_room},
    recordings::RECORDING_PLANS,
    signal::{hello, say},
};

/// The number the moderator calls, shown as "Phone ••• 4567".
pub(crate) const CALLEE: &str = "+1 (555) 987-4567";
/// The gateway's ports for calls' audio: the offers it sends must name one of them.
pub(crate) const RTP_PORTS: &str = "47000-47099";
/// The trunk's digest credentials.
pub(crate) const TRUNK_USER: &str = "convene";
pub(crate) const TRUNK_PASSWORD: &str = "trunk-secret";

/// `convene up` calling out through a trunk on loopback at `trunk_port` over UDP, with credentials.
async fn app_with_trunk(trunk_port: u16) -> TestApp {
    app_with_trunk_at(&format!("sip:127.0.0.1:{trunk_port}")).await
}

/// `convene up` calling out through the trunk at `uri`, with credentials.
async fn app_with_trunk_at(uri: &str) -> TestApp {
    spawn_configured(&[
        ("CONVENE_PLANS", RECORDING_PLANS.to_owned()),
        ("CONVENE_WEBHOOKS_ALLOW_LOOPBACK", "1".to_owned()),
        ("CONVENE_SIP_RTP_PORTS", RTP_PORTS.to_owned()),
        ("CONVENE_SIP_TRUNK", uri.to_owned()),
        ("CONVENE_SIP_TRUNK_USERNAME", TRUNK_USER.to_owned()),
        ("CONVENE_SIP_TRUNK_PASSWORD", TRUNK_PASSWORD.to_owned()),
    ])
    .await
}

/// A moderator's room token that may call phones (`outbound-call`), or not.
pub(crate) async fn moderator_token(app: &TestApp, key: &str, may_call: bool) -> String {
    let body = json!({ "room": "standup", "user": { "name": "Ann" }, "moderator": true,
        "features": { "outbound-call": may_call } });
    let (status, minted) = call(app, Method::POST, "/v1/meeting-tokens", key, Some(body)).await;
    assert_eq!(status, 201, "{minted}");
    minted["token"].as_str().unwrap().to_owned()
}

/// A response of the trunk to the request last received, with the dialog's tag on `To`.
fn respond(status: &str, extra: &str, body: &str) -> String {
    format!(
        "<send><![CDATA[\nSIP/2.0 {status}\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]trunk[call_number]\n\
         [last_Call-ID:]\n[last_CSeq:]\nContact: <sip:trunk@[local_ip]:[local_port]>\n{extra}\
         Content-Length: [len]\n\n{body}]]></send>\n"
    )
}

/// The trunk answers the gateway's INVITE: a digest challenge first, then (credentials and caller id
/// checked) ringing and the answer `sdp`.
pub(crate) fn challenged_and_answered(sdp: &str) -> String {
    // 401 rather than a proxy's 407: sipp verifies only the Authorization header.
    let challenge = "WWW-Authenticate: Digest realm=\"trunk.test\", nonce=\"4e0fcb1c9d\", algorithm=MD5\n";
    // The organisation's own number is the caller id.
    let shown = NUMBER.replace('+', "\\+");
    let checks = format!(
        "<action><verifyauth assign_to=\"authorized\" username=\"{TRUNK_USER}\" password=\"{TRUNK_PASSWORD}\"/>\
         <ereg regexp=\"sip:{shown}@\" search_in=\"hdr\" header=\"From:\" check_it=\"true\" assign_to=\"shown\"/>\
         <ereg regexp=\"sip:\\+15559874567@\" search_in=\"msg\" check_it=\"true\" assign_to=\"dialled\"/></action>"
    );
    format!(
        "<recv request=\"INVITE\"/>\n{}<recv request=\"ACK\"/>\n<recv request=\"INVITE\" rrs=\"true\">{checks}</recv>\n\
         <nop hide=\"true\" test=\"authorized\" next=\"authorized\"/>\n{}<recv request=\"ACK\"/>\n\
         <recv request=\"NEVER\" timeout=\"100\"/>\n<label id=\"authorized\"/>\n{}<pause milliseconds=\"1000\"/>\n\
         {}<recv request=\"ACK\"/>\n",
        respond("401 Unauthorized", challenge, ""),
        respond("403 Forbidden", "", ""),
        respond("180 Ringing", "", ""),
        respond("200 OK", "Content-Type: application/sdp\n", sdp),
    )
}

/// sipp as the trunk again on `port` (the app's), for one more call going as `steps` say.
fn trunk_again(steps: String, port: u16) -> tokio::task::JoinHandle<bool> {
    tokio::spawn(async move { run(&steps, "u1", port, &[]).await })
}

/// The gateway's BYE, answered.
fn hung_up() -> String {
    convene_bots::sipp::hung_up()
}

/// The phone's answer in PCMU or PCMA with telephone-event 101 (as `sipp::offer` names them), its audio at
/// `media_port`.
pub(crate) fn narrowband_answer(media_port: &str) -> String {
    convene_bots::sipp::offer(media_port, "sendrecv")
}

/// What reaches the phone's `socket`: the keys (RFC 4733 events of payload type `events`), once `count`
/// have or 10 s went by, and the duration (in clock ticks) each end packet gave.
async fn keys_heard(socket: &tokio::net::UdpSocket, events: u8, count: usize) -> (String, Vec<u16>) {
    let (mut reader, mut keys, mut buffer) = (KeyReader::default(), String::new(), [0u8; 1500]);
    let mut durations = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while keys.len() < count
        && let Ok(Ok(length)) = tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await
    {
        if let Some(packet) = RtpPacket::parse(&buffer[..length]).filter(|packet| packet.payload_type == events) {
            keys.extend(reader.on_packet(packet.timestamp, packet.payload));
            // The end bit, then the 16-bit duration (RFC 4733 §2.3).
            if let [_, flags, high, low] = packet.payload
                && flags & 0x80 != 0
            {
                durations.push(u16::from_be_bytes([*high, *low]));
            }
        }
    }
    (keys, durations)
}

/// The next `dial_out_changed` the moderator hears.
pub(crate) async fn next_change(ann: &mut crate::signal::Socket) -> Value {
    hear_until(ann, |message| message["type"] == "dial_out_changed").await
}

#[tokio::test]
async fn a_moderator_calls_a_phone_through_an_authenticating_trunk_follows_it_and_removes_it() {
    // The phone's audio comes to the test, which reads the keys a moderator presses on it.
    let phone = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone_port = phone.local_addr().unwrap().port().to_string();
    let answer = narrowband_answer(&phone_port);
    let (trunk_port, trunk) = trunk(&format!("{}{}", challenged_and_answered(&answer), hung_up())).await;
    let app = app_with_trunk(trunk_port).await;
    let key = tenant_with_room(&app, "standup", "123456789").await;
    let events = ["dial_out.joined", "dial_out.left", "dial_in.joined"];
    let (inbox, _receiver) = crate::webhooks::listening_endpoint(&app, &key, &events).await;

    // A moderator whose link does not allow calling phones is refused; one whose link does calls.
    let (mut cy, welcome) = hello(&app, "standup", &moderator_token(&app, &key, false).await).await;
    assert_eq!(welcome["room"]["dial_out"], true, "{welcome}");
    say(&mut cy, json!({ "type": "dial_out", "number": CALLEE })).await;
    let refused = hear_until(&mut cy, |message| message["type"] == "error").await;
    assert_eq!(refused["code"], "forbidden", "{refused}");
    let (mut ann, _) = hello(&app, "standup", &moderator_token(&app, &key, true).await).await;
    say(&mut ann, json!({ "type": "dial_out", "number": CALLEE })).await;

    let calling = next_change(&mut ann).await;
    assert_eq!((calling["state"].as_str(), calling["number"].as_str()), (Some("calling"), Some("+15559874567")));
    assert_eq!(calling["by"], "Ann");
    let call_id = calling["call"].clone();
    let ringing = next_change(&mut ann).await;
    assert_eq!(ringing["state"], "ringing", "{ringing}");
    let answered = next_change(&mut ann).await;
    assert_eq!((answered["state"].as_str(), &answered["call"]), (Some("answered"), &call_id), "{answered}");
    let joined = hear_until(&mut ann, |message| {
        message["type"] == "participant_joined" && message["participant"]["name"] == "Phone ••• 4567"
    })
    .await;
    assert!(eventually_present(&app, &key, |list| list.iter().any(|p| p["name"] == "Phone ••• 4567")).await);

    // Keys pressed on the phone (an automated menu's) arrive as RFC 4733 events; junk is refused.
    say(&mut ann, json!({ "type": "send_tones", "call": call_id, "tones": "12x" })).await;
    let refused = hear_until(&mut ann, |message| message["type"] == "error").await;
    assert_eq!(refused["message"], "keys are 0-9, *, #, A-D, one to 32 of them", "{refused}");
    say(&mut ann, json!({ "type": "send_tones", "call": call_id, "tones": "19#" })).await;
    assert_eq!(keys_heard(&phone, 101, 3).await.0, "19#");

    // Removed, the phone is hung up and cannot be called again.
    say(&mut ann, json!({ "type": "kick", "participant": joined["participant"]["id"] })).await;
    let ended = next_change(&mut ann).await;
    assert_eq!((ended["state"].as_str(), &ended["call"]), (Some("ended"), &call_id), "{ended}");
    assert!(trunk.await.unwrap(), "the trunk saw the challenge answered, the caller id, ringing, answer and BYE");
    say(&mut ann, json!({ "type": "dial_out", "number": CALLEE })).await;
    let refused = hear_until(&mut ann, |message| message["type"] == "error").await;
    assert_eq!(refused["message"], "this number was removed from the meeting", "{refused}");
    let told = crate::webhooks::delivered(&inbox, 2).await;
    let said: Vec<(&str, &str)> = told
        .iter()
        .map(|body| (body["type"].as_str().unwrap(), body["data"]["participant"]["id"].as_str().unwrap()))
        .collect();
    assert_eq!(said, [("dial_out.joined", "phone:+15559874567"), ("dial_out.left", "phone:+15559874567")]);

    // Everyone leaves and the room closes; started again, it has forgotten, but the records have not.
    for moderator in [&mut ann, &mut cy] {
        say(moderator, json!({ "type": "leave" })).await;
    }
    assert!(eventually_present(&app, &key, <[Value]>::is_empty).await, "the room closed");
    let (mut ann, _) = hello(&app, "standup", &moderator_token(&app, &key, true).await).await;
    say(&mut ann, json!({ "type": "dial_out", "number": CALLEE })).await;
    assert_eq!(next_change(&mut ann).await["state"], "calling");
    let refused = next_change(&mut ann).await;
    assert_eq!(
        (refused["state"].as_str(), refused["reason"].as_str()),
        (Some("failed"), Some("this number was removed from the meeting")),
        "{refused}"
    );
    app.stop().await;
}

#[tokio::test]
async fn calls_go_out_over_a_tcp_trunk_with_its_challenge_answered_and_talk_opus_with_a_phone_that_takes_it() {
    // The phone takes only Opus, with its keys' events at Opus's 48 kHz clock.
    let phone = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone_port = phone.local_addr().unwrap().port();
    let opus_answer = format!(
        "v=0\no=callee 1 1 IN IP[local_ip_type] [local_ip]\ns=-\nc=IN IP[media_ip_type] [media_ip]\nt=0 0\n\
         m=audio {phone_port} RTP/AVP 111 110\na=rtpmap:111 opus/48000/2\na=rtpmap:110 telephone-event/48000\n\
         a=fmtp:110 0-15\na=sendrecv\n"
    );
    let via_tcp = "<recv request=\"INVITE\"><action><ereg regexp=\"SIP/2.0/TCP\" search_in=\"hdr\" header=\"Via:\" \
                   check_it=\"true\" assign_to=\"tcp\"/></action></recv>\n";
    let steps = format!("{}{}", challenged_and_answered(&opus_answer), hung_up()).replacen(
        "<recv request=\"INVITE\"/>\n",
        via_tcp,
        1,
    );
    let (trunk_port, trunk) = trunk_over(Transport::Tcp, &steps).await;
    let app = app_with_trunk_at(&format!("sip:127.0.0.1:{trunk_port};transport=tcp")).await;
    let key = tenant_with_room(&app, "standup", "123456789").await;
    let (mut ann, _) = hello(&app, "standup", &moderator_token(&app, &key, true).await).await;
    say(&mut ann, json!({ "type": "dial_out", "number": CALLEE })).await;
    let mut call_id = Value::Null;
    for state in ["calling", "ringing", "answered"] {
        let change = next_change(&mut ann).await;
        assert_eq!(change["state"], state, "{change}");
        call_id = change["call"].clone();
    }
    let joined = hear_until(&mut ann, |message| {
        message["type"] == "participant_joined" && message["participant"]["name"] == "Phone ••• 4567"
    })
    .await;
    // The phone hears the call in Opus, 20 ms a packet on the 48 kHz clock.
    let mut opus = Voice::new(Codec::Opus);
    let (mut buffer, mut samples, mut timestamps) = ([0u8; 1500], Vec::new(), Vec::new());
    while timestamps.len() < 10 {
        let length = tokio::time::timeout(Duration::from_secs(10), phone.recv(&mut buffer)).await.unwrap().unwrap();
        let packet = RtpPacket::parse(&buffer[..length]).unwrap();
        assert_eq!(packet.payload_type, 111, "audio in Opus, as the phone answered");
        samples.clear();
        opus.decode(packet.payload, &mut samples);
        assert_eq!(samples.len(), 320, "20 ms at 16 kHz in each packet");
        timestamps.push(packet.timestamp);
    }
    assert!(timestamps.windows(2).all(|pair| pair[1].wrapping_sub(pair[0]) == 960), "{timestamps:?}");
    // Keys pressed on it are events at the same clock: held 100 ms, 4,800 ticks.
    say(&mut ann, json!({ "type": "send_tones", "call": call_id, "tones": "5#" })).await;
    let (keys, durations) = keys_heard(&phone, 110, 2).await;
    assert_eq!(keys, "5#");
    assert!(durations.contains(&4_800), "{durations:?}");
    say(&mut ann, json!({ "type": "kick", "participant": joined["participant"]["id"] })).await;
    assert_eq!(next_change(&mut ann).await["state"], "ended");
    assert!(trunk.await.unwrap(), "the trunk saw the call over TCP: the challenge answered, ringing, answer, BYE");
    app.stop().await;
}

#[tokio::test]
async fn busy_lines_cancelled_calls_and_hang_ups_are_told_and_the_api_refuses_what_it_cannot_call() {
    let in_range = "<action><ereg regexp=\"m=audio 470[0-9][0-9] RTP/AVP\" search_in=\"body\" check_it=\"true\" \
                    assign_to=\"port\"/></action>";
    let busy = format!(
        "<recv request=\"INVITE\">{in_range}</recv>\n{}<recv request=\"ACK\"/>\n",
        respond("486 Busy Here", "", "")
    );
    let (trunk_port, busy_trunk) = trunk(&busy).await;
    let app = app_with_trunk(trunk_port).await;
    let key = tenant_with_room(&app, "standup", "123456789").await;
    let dial = |room: &str, number: &str| {
        let (app, key, path) = (&app, &key, format!("/v1/rooms/{room}/dial-out"));
        let body = json!({ "number": number });
        async move { call(app, Method::POST, &path, key, Some(body)).await }
    };
    let (status, body) = dial("standup", CALLEE).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("conflict")), "nobody is in the meeting: {body}");
    let (status, body) = dial("standup", "555-4567").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("number:"), "{body}");
    assert_eq!(dial("nowhere", CALLEE).await.0, 404);
    let other = tenant_key(&app, "owner@other.example").await;
    let (status, _) =
        call(&app, Method::POST, "/v1/rooms/standup/dial-out", &other, Some(json!({ "number": CALLEE }))).await;
    assert_eq!(status, 404, "another organisation's room is not found");

    // Through the API while the moderator is in: the line is busy.
    let (mut ann, _) = hello(&app, "standup", &moderator_token(&app, &key, true).await).await;
    let (status, placed) = dial("standup", CALLEE).await;
    assert_eq!(
        (status, placed["state"].as_str(), placed["number"].as_str()),
        (202, Some("calling"), Some("+15559874567"))
    );
    let calling = next_change(&mut ann).await;
    assert_eq!((&calling["call"], calling["by"].as_str()), (&placed["id"], Some("the organisation's app")));
    assert_eq!(next_change(&mut ann).await["state"], "busy");
    assert!(busy_trunk.await.unwrap(), "the trunk saw audio offered on a port of the range, said busy and got its ACK");

    // Ringing, then cancelled by the moderator: CANCEL, 487, no answer.
    let ringing = format!(
        "<recv request=\"INVITE\"><action><ereg regexp=\"([0-9]+) INVITE\" search_in=\"hdr\" header=\"CSeq:\" \
         assign_to=\"invite,cseq\"/></action></recv>\n{}<recv request=\"CANCEL\"/>\n{}\
         <send><![CDATA[\nSIP/2.0 487 Request Terminated\n[last_Via:]\n[last_From:]\n[last_To:];tag=[pid]trunk[call_number]\n\
         [last_Call-ID:]\nCSeq: [$cseq] INVITE\nContent-Length: 0\n\n]]></send>\n<recv request=\"ACK\"/>\n",
        respond("180 Ringing", "", ""),
        respond("200 OK", "", ""),
    );
    let ringing_trunk = trunk_again(ringing, trunk_port);
    say(&mut ann, json!({ "type": "dial_out", "number": "+44 20 7946 0000" })).await;
    let calling = next_change(&mut ann).await;
    assert_eq!(next_change(&mut ann).await["state"], "ringing");
    say(&mut ann, json!({ "type": "cancel_dial_out", "call": calling["call"] })).await;
    let stopped = next_change(&mut ann).await;
    assert_eq!((stopped["state"].as_str(), &stopped["call"]), (Some("no_answer"), &calling["call"]), "{stopped}");
    assert!(ringing_trunk.await.unwrap(), "the trunk saw the CANCEL and acknowledged 487");

    // Answered, then the person hangs up: their BYE ends the call and they leave the meeting.
    let sdp = narrowband_answer("[media_port]");
    let capture = "<action><ereg regexp=\".*\" search_in=\"hdr\" header=\"From:\" assign_to=\"gateway\"/>\
                   <ereg regexp=\".*\" search_in=\"hdr\" header=\"To:\" assign_to=\"phone\"/></action>";
    let answered_then_bye = format!(
        "<recv request=\"INVITE\" rrs=\"true\">{capture}</recv>\n{}<recv request=\"ACK\"/>\n<pause milliseconds=\"3000\"/>\n\
         <send retrans=\"500\"><![CDATA[\nBYE [next_url] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
         From: [$phone];tag=[pid]trunk[call_number]\nTo: [$gateway]\nCall-ID: [call_id]\nCSeq: 2 BYE\nMax-Forwards: 70\n\
         Content-Length: 0\n\n]]></send>\n<recv response=\"200\"/>\n",
        respond("200 OK", "Content-Type: application/sdp\n", &sdp),
    );
    let hanging_up_trunk = trunk_again(answered_then_bye, trunk_port);
    say(&mut ann, json!({ "type": "dial_out", "number": CALLEE })).await;
    assert_eq!(next_change(&mut ann).await["state"], "calling");
    assert_eq!(next_change(&mut ann).await["state"], "answered");
    assert!(eventually_present(&app, &key, |list| list.iter().any(|p| p["name"] == "Phone ••• 4567")).await);
    let ended = next_change(&mut ann).await;
    assert_eq!(ended["state"], "ended", "{ended}");
    assert!(hanging_up_trunk.await.unwrap(), "the gateway answered the phone's BYE");
    assert!(eventually_present(&app, &key, |list| list.iter().all(|p| p["name"] != "Phone ••• 4567")).await);
    app.stop().await;
}
