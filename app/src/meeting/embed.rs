//! The meeting inside another site's page, driven by `assets/external_api.js`: commands come in and events
//! go out over postMessage, and only with the origin the script named in the frame's URL fragment (a
//! fragment never reaches the server). `convene-join=now` in it skips the pre-join screen.

use convene_signal::{ClientMessage, MediaKind, ParticipantId};
use js_sys::Object;
use leptos::prelude::*;
use serde_json::{Value, json};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::MessageEvent;

use super::{
    Client,
    browser::{field, field_string, from_json},
    state::Phase,
};

/// Where the meeting is embedded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedding {
    /// The embedding page's origin: the only one commands come from and events go to.
    parent_origin: String,
    /// Join at once, without the pre-join screen.
    join_now: bool,
}

impl Embedding {
    /// Reads the fragment of the page's URL; `None` when the page is not embedded by the script.
    pub fn from_location() -> Option<Self> {
        let window = web_sys::window()?;
        let hash = window.location().hash().ok()?;
        let embedding = Self::parse(&hash)?;
        // A fragment on a top-level page is not an embedding, whatever it says.
        let framed = window.parent().ok().flatten().is_some_and(|parent| !Object::is(&parent, &window));
        framed.then_some(embedding)
    }

    fn parse(hash: &str) -> Option<Self> {
        let mut parent_origin = None;
        let mut join_now = false;
        for pair in hash.trim_start_matches('#').split('&') {
            match pair.split_once('=') {
                Some(("convene-parent", origin)) => parent_origin = percent_decoded(origin),
                Some(("convene-join", "now")) => join_now = true,
                _ => {}
            }
        }
        let parent_origin = parent_origin.filter(|origin| origin.starts_with("http"))?;
        Some(Self { parent_origin, join_now })
    }
}

/// `encodeURIComponent` undone; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decoded(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let [first, tail @ ..] = rest {
        if *first == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(*first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// What the embedding page has been told, to tell it only of changes.
#[derive(Debug, Default)]
struct Told {
    joined: bool,
    others: Vec<ParticipantId>,
    audio_muted: Option<bool>,
}

/// Listens for the embedding page's commands and sends it the meeting's events.
pub fn install(client: Client, embedding: Embedding) {
    let Some(parent) = web_sys::window().and_then(|window| window.parent().ok().flatten()) else { return };
    let origin = embedding.parent_origin.clone();
    let emit = {
        let parent = parent.clone();
        move |name: &str, data: Value| {
            let message: JsValue = from_json(&json!({ "type": "convene-event", "name": name, "data": data }));
            let _ = parent.post_message(&message, &origin);
        }
    };
    let commands = window_event_listener_untyped("message", move |event| {
        let event = event.unchecked_into::<MessageEvent>();
        let from_parent = event.source().is_some_and(|source| Object::is(&source, &parent));
        if event.origin() != embedding.parent_origin || !from_parent {
            return;
        }
        let data = event.data();
        if field_string(&data, "type").as_deref() != Some("convene-command") {
            return;
        }
        let argument = field(&data, "argument").as_bool();
        let muted = |media| client.state.with_untracked(|state| state.myself().is_some_and(|me| is_muted(me, media)));
        match field_string(&data, "name").as_deref() {
            Some("toggleAudio") => client.set_muted(MediaKind::Audio, !muted(MediaKind::Audio)),
            Some("toggleVideo") => client.set_muted(MediaKind::Video, !muted(MediaKind::Video)),
            Some("setAudioMuted") => client.set_muted(MediaKind::Audio, argument.unwrap_or(true)),
            Some("setVideoMuted") => client.set_muted(MediaKind::Video, argument.unwrap_or(true)),
            Some("hangup") => client.leave(),
            // As Jitsi's: before joining it names the person in `hello`, afterwards it renames them (the
            // node refuses both in rooms that keep the invitations' names).
            Some("displayName") => {
                let name = field_string(&data, "argument");
                let Some(name) = name.as_deref().and_then(|name| convene_signal::display_name(name).ok()) else {
                    return;
                };
                if client.state.with_untracked(|state| state.me.is_some()) {
                    client.rename(name.to_owned());
                } else {
                    client.choices.update(|choices| choices.name = Some(name.to_owned()));
                }
            }
            // As Jitsi's: presses keys (`{ tones: "1234#" }`, or the keys as the argument) on a phone the
            // meeting called, the one `call` names or the latest answered; the node checks the keys and
            // that the person moderates.
            Some("sendTones") => {
                let argument = field(&data, "argument");
                let tones = field_string(&argument, "tones").or_else(|| argument.as_string());
                let named = field_string(&argument, "call");
                let call = client.state.with_untracked(|state| state.keyed_call(named.as_deref()));
                if let (Some(tones), Some(call)) = (tones, call) {
                    client.send(&ClientMessage::SendTones { call, tones: tones.trim().to_owned() });
                }
            }
            _ => {}
        }
    });
    on_cleanup(move || commands.remove());

    let told = StoredValue::new_local(Told::default());
    Effect::new(move |_| {
        client.state.with(|state| {
            told.update_value(|told| {
                let joined = state.phase == Phase::InMeeting;
                if joined && !told.joined {
                    let id = state.me.map(|me| me.0);
                    let room = state.room.as_ref().map(|room| room.name.clone());
                    emit("videoConferenceJoined", json!({ "id": id, "roomName": room }));
                    told.joined = true;
                }
                // Reconnecting is still in the meeting; only the end of it is leaving.
                if told.joined && matches!(state.phase, Phase::Over(_)) {
                    emit("videoConferenceLeft", json!({}));
                    told.joined = false;
                }
                let others: Vec<ParticipantId> =
                    state.participants.iter().map(|person| person.id).filter(|id| Some(*id) != state.me).collect();
                if joined {
                    for person in state.participants.iter().filter(|person| !told.others.contains(&person.id)) {
                        if Some(person.id) != state.me {
                            emit("participantJoined", json!({ "id": person.id.0, "displayName": person.name }));
                        }
                    }
                    for gone in told.others.iter().filter(|id| !others.contains(id)) {
                        emit("participantLeft", json!({ "id": gone.0 }));
                    }
                }
                told.others = if joined { others } else { Vec::new() };
                let audio_muted = state.myself().map(|me| me.audio_muted);
                if joined && audio_muted.is_some() && audio_muted != told.audio_muted {
                    emit("audioMuteStatusChanged", json!({ "muted": audio_muted }));
                }
                told.audio_muted = audio_muted;
            });
        });
    });
    if embedding.join_now && client.state.with_untracked(|state| state.phase == Phase::PreJoin) {
        client.join();
    }
}

fn is_muted(me: &convene_signal::ParticipantInfo, media: MediaKind) -> bool {
    match media {
        MediaKind::Audio => me.audio_muted,
        MediaKind::Video => me.video_muted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fragment_names_the_parent_and_whether_to_join_at_once() {
        let parsed = Embedding::parse("#convene-parent=https%3A%2F%2Fapp.example%3A8443&convene-join=now");
        assert_eq!(parsed, Some(Embedding { parent_origin: "https://app.example:8443".into(), join_now: true }));
        assert_eq!(Embedding::parse("#convene-parent=http%3A%2F%2Fa").map(|e| e.join_now), Some(false));
        assert_eq!(Embedding::parse("#convene-parent=https%3"), None);
        assert_eq!(Embedding::parse("#something-else"), None);
        assert_eq!(Embedding::parse("#convene-parent=javascript:alert(1)"), None);
    }
}
