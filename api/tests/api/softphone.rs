//! The gateway with a real softphone, Debian's baresip, on loopback: it dials in, types the PIN as RFC 4733
//! events and talks with a sipp caller both ways (each hears the other's tone and never their own), and a
//! moderator calls it out through a trunk that is the softphone itself, which answers, hears the meeting
//! and is hung up when removed.

use std::time::Duration;

use convene_bots::{
    baresip::{Answering, Softphone},
    sipp::{Caller, offer, stream, ulaw_wav},
};
use convene_media::phone::tones;
use serde_json::{Value, json};

use crate::{
    dial_out::{CALLEE, RTP_PORTS, moderator_token, next_change},
    helpers::spawn_configured,
    phone::{NUMBER, eventually_present, hear_until, listen, sipp, tenant_with_room, tone_share, typed},
    recordings::RECORDING_PLANS,
    signal::{hello, say},
};

/// The softphone's number when it calls in, shown as "Phone ••• 5555".
const SOFTPHONE: &str = "+15550005555";

#[tokio::test]
async fn a_softphone_dials_in_types_the_pin_as_events_and_talks_with_a_sipp_caller_both_ways() {
    let app = spawn_configured(&[("CONVENE_PLANS", RECORDING_PLANS.to_owned())]).await;
    let key = tenant_with_room(&app, "standup", "123456789").await;
    let gateway = app.sip_addr();

    // A sipp caller says 400 Hz (keys by SIP INFO); its audio comes to a socket of the test's.
    let dir = tempfile::tempdir().unwrap();
    let low = dir.path().join("400.wav");
    std::fs::write(&low, ulaw_wav(Some(400.0), 30)).unwrap();
    let ear = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = ear.local_addr().unwrap().port().to_string();
    let caller = Caller::new("+15550001111");
    let script = format!(
        "{}{}{}<pause milliseconds=\"25000\"/>\n{}",
        caller.dial(&offer(&port, "sendrecv"), true),
        typed(&caller, "123456789#", 2),
        stream(&low),
        caller.in_dialog("BYE", 20, "", ""),
    );
    let sipp = tokio::spawn(async move { sipp(gateway, "u1", NUMBER, &script).await });
    assert!(eventually_present(&app, &key, |list| list.len() == 1).await, "the sipp caller is in");

    // The softphone says 1 kHz, dials the number and types the PIN on its keypad.
    let mut phone = Softphone::start(SOFTPHONE, 1_000, Answering::Manual).unwrap();
    phone.dial(&format!("sip:{NUMBER}@{gateway}")).await.unwrap();
    assert!(phone.shows("Call established", Duration::from_secs(10)).await, "the gateway answered");
    phone.press("123456789#").await.unwrap();
    assert!(
        eventually_present(&app, &key, |list| list.iter().any(|p| p["name"] == "Phone ••• 5555")).await,
        "the PIN typed as RFC 4733 events let the softphone in"
    );

    // Past the joining prompt, while both speak.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sipp_heard = listen(ear, Duration::from_secs(4)).await;
    phone.hang_up().await.unwrap();
    assert!(phone.shows("terminated", Duration::from_secs(5)).await, "the softphone hung up");
    assert!(eventually_present(&app, &key, |list| list.len() == 1).await, "and left the meeting");
    let softphone = phone.quit().await.unwrap();

    // What the softphone heard over its last 3 s in the meeting (the dump ends when it hung up).
    let rate = softphone.rate as f32;
    let recent = &softphone.heard[softphone.heard.len().saturating_sub(3 * softphone.rate as usize)..];
    let (phone_hears_other, phone_hears_self) = (tone_share(recent, 400.0, rate), tone_share(recent, 1_000.0, rate));
    let (sipp_hears_other, sipp_hears_self) =
        (tone_share(&sipp_heard, 1_000.0, tones::RATE), tone_share(&sipp_heard, 400.0, tones::RATE));
    eprintln!(
        "softphone: other {phone_hears_other:.2} self {phone_hears_self:.2}; \
         sipp: other {sipp_hears_other:.2} self {sipp_hears_self:.2}"
    );
    assert!(softphone.said.len() >= 8 * softphone.rate as usize, "the softphone spoke all along");
    assert!(recent.len() == 3 * softphone.rate as usize, "and heard the call: {}", softphone.heard.len());
    assert!(phone_hears_other > 0.5 && sipp_hears_other > 0.5, "each hears the other's tone");
    assert!(phone_hears_self < 0.05 && sipp_hears_self < 0.05, "and not their own\n{}", softphone.console);
    assert!(sipp.await.unwrap(), "the sipp call went as written");
    app.stop().await;
}

#[tokio::test]
async fn a_moderator_calls_a_softphone_that_answers_by_itself_and_removes_it() {
    // The trunk is the softphone itself, answering calls to the callee's number at once.
    let phone = Softphone::start("+15559874567", 1_000, Answering::Automatic).unwrap();
    let app = spawn_configured(&[
        ("CONVENE_PLANS", RECORDING_PLANS.to_owned()),
        ("CONVENE_SIP_RTP_PORTS", RTP_PORTS.to_owned()),
        ("CONVENE_SIP_TRUNK", phone.uri()),
    ])
    .await;
    let key = tenant_with_room(&app, "standup", "123456789").await;
    let (mut ann, _) = hello(&app, "standup", &moderator_token(&app, &key, true).await).await;
    say(&mut ann, json!({ "type": "dial_out", "number": CALLEE })).await;

    // Calling, perhaps ringing (an answer at once may skip it), answered.
    let mut states = Vec::new();
    while states.last().is_none_or(|state| state != "answered" && state != "failed") {
        let change = next_change(&mut ann).await;
        states.push(change["state"].as_str().unwrap_or_default().to_owned());
    }
    assert!(
        matches!(states.as_slice(), [calling, .., answered] if calling == "calling" && answered == "answered"),
        "{states:?}"
    );
    let joined = hear_until(&mut ann, |message| {
        message["type"] == "participant_joined" && message["participant"]["name"] == "Phone ••• 4567"
    })
    .await;
    assert!(phone.shows("Call established", Duration::from_secs(5)).await, "the softphone took the call");
    // The softphone hears the meeting (its prompt and the mix) for a while before it is removed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    say(&mut ann, json!({ "type": "kick", "participant": joined["participant"]["id"] })).await;
    assert_eq!(next_change(&mut ann).await["state"], "ended");
    assert!(phone.shows("terminated", Duration::from_secs(5)).await, "the gateway hung up on the softphone");
    let presence = |list: &[Value]| list.iter().all(|p| p["name"] != "Phone ••• 4567");
    assert!(eventually_present(&app, &key, presence).await, "the phone left the meeting");
    let softphone = phone.quit().await.unwrap();
    assert!(
        softphone.heard.len() >= 2 * softphone.rate as usize,
        "the softphone got the call's audio: {} samples\n{}",
        softphone.heard.len(),
        softphone.console
    );
    app.stop().await;
}
