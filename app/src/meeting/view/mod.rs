//! The meeting page's components: the pre-join screen, the screens around the meeting (password, lobby,
//! reconnecting, over), and the meeting itself: tiles or stage, toolbar, chat, people and settings panes.

use std::time::Duration;

use convene_domain::RoomName;
use convene_signal::{
    ClientMessage, MediaKind, MediaQuality, ParticipantId, ParticipantInfo, Refusal, RoomInfo, TrackSource,
};
use leptos::{ev::SubmitEvent, html, prelude::*};
use wasm_bindgen::{JsCast, closure::Closure};
use web_sys::MediaStream;

use super::{
    Client, Encryption,
    local_media::{self, DeviceChoice, DeviceKind, Devices, LevelMeter},
    sound,
    state::{Ending, Phase, ReceiveQuality},
};
use crate::model::Invitee;

mod icons;
mod panes;
mod prejoin;
mod room;
mod screens;
mod tiling;

pub(super) use self::room::{Invitation, MeetingRoom, tile_heights};
use self::{
    prejoin::PreJoin,
    screens::{Lobby, Over, PasswordPrompt, Waiting},
};

/// The pre-join meter reads the microphone this often.
const METER_EVERY: Duration = Duration::from_millis(100);
/// Reactions people can send.
const REACTIONS: [&str; 5] = ["👍", "👏", "😂", "🎉", "❤️"];

/// The meeting for a verified invitation: pre-join, then the meeting.
#[component]
pub fn MeetingClient(room: RoomName, token: String, invitee: Invitee) -> impl IntoView {
    let client = Client::new(room.to_string(), token);
    provide_context(client);
    // Inside another site's page (`external_api.js`): commands in, events out, and perhaps no pre-join.
    Effect::new(move |_| {
        if let Some(embedding) = super::embed::Embedding::from_location() {
            super::embed::install(client, embedding);
        }
    });
    // The call's chunk loads while the person gets ready (a failure here is retried on joining).
    Effect::new(move |_| {
        leptos::task::spawn_local(async {
            let _ = super::chunk::fetch_call().await;
        });
    });
    // Leaving the tab says goodbye, so the others see the person go at once rather than after a timeout.
    // (Effects run in the browser only, never in the server's render.)
    Effect::new(move |_| {
        let goodbye = window_event_listener_untyped("pagehide", move |_| client.leave());
        on_cleanup(move || goodbye.remove());
    });
    let phase = Memo::new(move |_| client.state.with(|state| state.phase.clone()));
    let (title, home) = (invitee.title.clone(), invitee.home.clone());
    let invitation = invitee
        .invite_link
        .clone()
        .map(|link| Invitation { link, phone: invitee.phone.as_ref().map(crate::model::PhoneJoin::as_text) });
    view! {
        <section class="meeting" data-phase=move || phase_name(&phase.get())>
            {move || match phase.get() {
                Phase::PreJoin => view! { <PreJoin room=room.clone() invitee=invitee.clone() /> }.into_any(),
                Phase::Joining => view! { <Waiting headline="Joining the meeting…" /> }.into_any(),
                Phase::Reconnecting => view! { <Waiting headline="Reconnecting…" /> }.into_any(),
                Phase::Password { wrong } => view! { <PasswordPrompt wrong /> }.into_any(),
                Phase::Lobby => view! { <Lobby /> }.into_any(),
                Phase::InMeeting => {
                    let (title, invitation) = (title.clone(), invitation.clone());
                    // Loaded with the session, so this resolves at once.
                    let room = Suspend::new(async move {
                        super::chunk::meeting_room(title, invitation).await.unwrap_or_else(|error| {
                            let text = format!("{} Reload the page to join again.", crate::capitalised(&error.to_string()));
                            view! { <p class="notice banner error">{text}</p> }.into_any()
                        })
                    });
                    view! { <Suspense>{room}</Suspense> }.into_any()
                }
                Phase::Over(ending) => view! { <Over ending home=home.clone() /> }.into_any(),
            }}
        </section>
    }
}

fn phase_name(phase: &Phase) -> &'static str {
    match phase {
        Phase::PreJoin => "prejoin",
        Phase::Joining => "joining",
        Phase::Password { .. } => "password",
        Phase::Lobby => "lobby",
        Phase::InMeeting => "meeting",
        Phase::Reconnecting => "reconnecting",
        Phase::Over(_) => "over",
    }
}

/// Runs `tick` every `period` while the component lives (in the browser only).
fn every(period: Duration, tick: impl Fn() + Clone + 'static) {
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(tick.clone(), period) {
            on_cleanup(move || handle.clear());
        }
    });
}

fn client() -> Client {
    // Every component here sits under `MeetingClient`, which provides it.
    expect_context::<Client>()
}

/// Shows a stream in a video or audio element whenever the stream or the element changes.
fn attach<E>(element: NodeRef<E>, stream: impl Fn() -> Option<MediaStream> + 'static)
where
    E: html::ElementType,
    E::Output: JsCast + Clone + 'static,
{
    Effect::new(move |_| {
        if let Some(element) = element.get() {
            let media = element.unchecked_into::<web_sys::HtmlMediaElement>();
            let stream = stream();
            let current = media.src_object();
            if current.as_ref().map(MediaStream::id) != stream.as_ref().map(MediaStream::id) {
                media.set_src_object(stream.as_ref());
            }
        }
    });
}

/// A camera, microphone or speaker picker, the device in use selected; before joining and in the settings.
#[component]
fn DevicePicker(
    kind: DeviceKind,
    name: &'static str,
    devices: RwSignal<Devices>,
    on_pick: Callback<String>,
) -> impl IntoView {
    let client = client();
    let chosen = move || client.choices.with(|choices| choices.devices.of(kind).cloned());
    let listed = move || devices.with(|devices| devices.of(kind).to_vec());
    let kind = kind.label();
    view! {
        <label>
            {kind}
            <select name=name on:change=move |event| on_pick.run(event_target_value(&event))>
                {move || listed().into_iter().map(|device| {
                    let selected = chosen().as_deref() == Some(device.id.as_str());
                    let label = if device.label.is_empty() { kind.to_owned() } else { device.label };
                    view! { <option value=device.id selected=selected>{label}</option> }
                }).collect_view()}
            </select>
        </label>
    }
}
