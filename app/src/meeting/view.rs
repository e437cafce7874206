//! The meeting page's components: the pre-join screen, the screens around the meeting (password, lobby,
//! reconnecting, over), and the meeting itself: tiles or stage, toolbar, chat and participants panes.

use std::time::Duration;

use convene_domain::RoomName;
use convene_signal::{ClientMessage, MediaKind, MediaQuality, ParticipantId, ParticipantInfo, Refusal, TrackSource};
use leptos::{ev::SubmitEvent, html, prelude::*};
use wasm_bindgen::JsCast;
use web_sys::MediaStream;

use super::{
    Client, Encryption,
    local_media::{self, DeviceChoice, Devices, LevelMeter},
    state::{Ending, Phase, ReceiveQuality},
};
use crate::model::Invitee;

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
    // Leaving the tab says goodbye, so the others see the person go at once rather than after a timeout.
    // (Effects run in the browser only, never in the server's render.)
    Effect::new(move |_| {
        let goodbye = window_event_listener_untyped("pagehide", move |_| client.leave());
        on_cleanup(move || goodbye.remove());
    });
    let phase = Memo::new(move |_| client.state.with(|state| state.phase.clone()));
    view! {
        <section class="meeting" data-phase=move || phase_name(&phase.get())>
            {move || match phase.get() {
                Phase::PreJoin => view! { <PreJoin room=room.clone() invitee=invitee.clone() /> }.into_any(),
                Phase::Joining => view! { <Waiting headline="Joining the meeting…" /> }.into_any(),
                Phase::Reconnecting => view! { <Waiting headline="Reconnecting…" /> }.into_any(),
                Phase::Password { wrong } => view! { <PasswordPrompt wrong /> }.into_any(),
                Phase::Lobby => view! { <Lobby /> }.into_any(),
                Phase::InMeeting => view! { <MeetingRoom /> }.into_any(),
                Phase::Over(ending) => view! { <Over ending /> }.into_any(),
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

/// Camera preview, microphone meter, device pickers, name and how to join.
#[component]
fn PreJoin(room: RoomName, invitee: Invitee) -> impl IntoView {
    let client = client();
    let preview: StoredValue<Option<MediaStream>, LocalStorage> = StoredValue::new_local(None);
    let meter: StoredValue<Option<LevelMeter>, LocalStorage> = StoredValue::new_local(None);
    let previewing = RwSignal::new(0_u64);
    let level = RwSignal::new(0.0_f64);
    let devices = RwSignal::new(Devices::default());
    let problem = RwSignal::new(None::<String>);
    let video: NodeRef<html::Video> = NodeRef::new();

    let start_preview = move |choice: DeviceChoice| {
        leptos::task::spawn_local(async move {
            let old = preview.try_update_value(Option::take).flatten();
            if let Some(old) = old {
                local_media::stop(&old);
            }
            match local_media::capture(MediaQuality::default(), &choice).await {
                Ok(stream) => {
                    // The person may have joined (and this screen gone) while the camera started.
                    if preview.try_update_value(|preview| *preview = Some(stream.clone())).is_none() {
                        return local_media::stop(&stream);
                    }
                    meter.try_update_value(|meter| *meter = LevelMeter::new(&stream).ok());
                    problem.try_set(None);
                    if let Ok(found) = local_media::devices().await {
                        devices.try_set(found);
                    }
                }
                Err(error) => {
                    problem.try_set(Some(format!("Your camera or microphone cannot be used: {error}.")));
                }
            }
            previewing.try_update(|version| *version += 1);
        });
    };
    Effect::new(move |_| start_preview(DeviceChoice::default()));
    attach(video, move || {
        previewing.track();
        preview.with_value(Clone::clone)
    });
    every(METER_EVERY, move || {
        let now = meter.try_update_value(|meter| meter.as_mut().map(LevelMeter::level)).flatten();
        level.set(now.unwrap_or(0.0));
    });
    // The preview's camera goes off when the meeting takes over.
    on_cleanup(move || {
        if let Some(stream) = preview.try_update_value(Option::take).flatten() {
            local_media::stop(&stream);
        }
    });

    let pick = move |camera: Option<String>, microphone: Option<String>| {
        client.choices.update(|choices| {
            if let Some(camera) = camera {
                choices.devices.camera = Some(camera);
            }
            if let Some(microphone) = microphone {
                choices.devices.microphone = Some(microphone);
            }
        });
        start_preview(client.choices.with_untracked(|choices| choices.devices.clone()));
    };
    let role = if invitee.moderator { "as a moderator" } else { "as a participant" };
    let naming =
        if invitee.fixed_name { "named as in your invitation" } else { "under the name below, which you may change" };
    let join = move |_| {
        let chosen = client.choices.with_untracked(|choices| choices.name.clone());
        if let Some(Err(problem_with_name)) = chosen.as_deref().map(convene_signal::display_name) {
            problem.set(Some(format!("Your name: {problem_with_name}.")));
            return;
        }
        client.join();
    };
    view! {
        <leptos_meta::Title text=format!("{room} · Convene") />
        <div class="prejoin" data-invitation="valid">
            <div class="preview">
                <video node_ref=video autoplay muted playsinline class="mirror"></video>
                <div class="meter" aria-label="Microphone level">
                    <span style=move || format!("width: {:.0}%", level.get() * 100.0)></span>
                </div>
            </div>
            <div class="prejoin-form">
                <p class="eyebrow">"Meeting " <code>{room.to_string()}</code></p>
                <h1>{format!("Welcome, {}", invitee.name)}</h1>
                <p class="muted">{format!("Your invitation is valid; you join {role}, {naming}.")}</p>
                {move || problem.get().map(|problem| view! { <p class="banner error">{problem}</p> })}
                {(!invitee.fixed_name).then(|| view! {
                    <label>
                        "Your name"
                        <input type="text" name="display_name" value=invitee.name.clone() autocomplete="name"
                            maxlength=convene_signal::MAX_DISPLAY_NAME_CHARS.to_string()
                            on:input=move |event| client.choices.update(|c| c.name = Some(event_target_value(&event))) />
                    </label>
                })}
                <DevicePicker media=MediaKind::Video name="camera" devices
                    on_pick=Callback::new(move |camera| pick(Some(camera), None)) />
                <DevicePicker media=MediaKind::Audio name="microphone" devices
                    on_pick=Callback::new(move |microphone| pick(None, Some(microphone))) />
                <label class="check">
                    <input type="checkbox" name="microphone_off"
                        on:change=move |event| client.choices.update(|c| c.microphone_off = event_target_checked(&event)) />
                    "Join with my microphone off"
                </label>
                <label class="check">
                    <input type="checkbox" name="camera_off"
                        on:change=move |event| client.choices.update(|c| c.camera_off = event_target_checked(&event)) />
                    "Join with my camera off"
                </label>
                <button class="button" name="join" on:click=join>"Join the meeting"</button>
            </div>
        </div>
    }
    .into_any()
}

/// A camera or microphone picker, the device in use selected; before joining and in the settings.
#[component]
fn DevicePicker(
    media: MediaKind,
    name: &'static str,
    devices: RwSignal<Devices>,
    on_pick: Callback<String>,
) -> impl IntoView {
    let client = client();
    let kind = if media == MediaKind::Audio { "Microphone" } else { "Camera" };
    let chosen = move || {
        client.choices.with(|choices| match media {
            MediaKind::Audio => choices.devices.microphone.clone(),
            MediaKind::Video => choices.devices.camera.clone(),
        })
    };
    let listed = move || {
        devices.with(
            |devices| if media == MediaKind::Audio { devices.microphones.clone() } else { devices.cameras.clone() },
        )
    };
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

/// A moment of waiting.
#[component]
fn Waiting(headline: &'static str) -> impl IntoView {
    view! {
        <div class="notice">
            <h1>{headline}</h1>
            <p class="muted">"This takes a few seconds."</p>
        </div>
    }
}

/// The room asks for a password.
#[component]
fn PasswordPrompt(wrong: bool) -> impl IntoView {
    let client = client();
    let password = RwSignal::new(String::new());
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        client.choices.update(|choices| choices.password = Some(password.get_untracked()));
        client.join();
    };
    view! {
        <form class="notice" on:submit=submit>
            <h1>"This meeting has a password"</h1>
            {wrong.then(|| view! { <p class="banner error">"That password is not right. Try again."</p> })}
            <label>
                "Password"
                <input type="password" name="password" required autofocus
                    on:input=move |event| password.set(event_target_value(&event)) />
            </label>
            <button class="button" type="submit">"Join"</button>
        </form>
    }
}

/// Waiting to be let in.
#[component]
fn Lobby() -> impl IntoView {
    let client = client();
    view! {
        <div class="notice">
            <h1>"Waiting to be let in"</h1>
            <p>"The meeting has a lobby. A moderator has been told you are here and will let you in."</p>
            <button class="button secondary" on:click=move |_| client.leave()>"Leave"</button>
        </div>
    }
}

/// Out of the meeting, and why.
#[component]
fn Over(ending: Ending) -> impl IntoView {
    let client = client();
    let headline = match ending.reason {
        None => "You left the meeting",
        Some(Refusal::Kicked) => "A moderator removed you from the meeting",
        Some(Refusal::Ended) => "The meeting is over",
        Some(Refusal::Rejected) => "A moderator did not let you in",
        Some(Refusal::InvalidToken) => "This invitation cannot be used",
        Some(Refusal::Locked) => "This meeting is locked",
        Some(Refusal::Full) | Some(Refusal::PlanLimit) => "This meeting is full",
        Some(_) => "You are not in the meeting",
    };
    let rejoin = matches!(ending.reason, None | Some(Refusal::Unavailable | Refusal::Locked | Refusal::Full));
    view! {
        <div class="notice" data-ending=ending.reason.map_or("left", Refusal::code)>
            <h1>{headline}</h1>
            <p>{ending.message}</p>
            {rejoin.then(|| view! { <button class="button" on:click=move |_| client.join()>"Join again"</button> })}
        </div>
    }
}

/// Which side pane is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pane {
    Closed,
    Chat,
    People,
    Settings,
}

/// The meeting: stage or tiles, notices, toolbar and panes.
#[component]
fn MeetingRoom() -> impl IntoView {
    let client = client();
    let pane = RwSignal::new(Pane::Closed);
    let stage_view = RwSignal::new(false);
    every(super::STATS_EVERY, move || client.poll());
    let people = Memo::new(move |_| client.state.with(|state| state.participants.clone()));
    let me = Memo::new(move |_| client.state.with(|state| state.me));
    // The stage: whom the person pinned, else a shared screen, else the dominant speaker, else the first other.
    let stage = Memo::new(move |_| {
        let others: Vec<ParticipantId> =
            people.get().iter().map(|person| person.id).filter(|id| Some(*id) != me.get()).collect();
        client
            .pinned
            .get()
            .or_else(|| {
                client.streams.track();
                others.iter().copied().find(|id| client.remote_stream(*id, TrackSource::Screen).is_some())
            })
            .or_else(|| client.state.with(|state| state.dominant).filter(|id| Some(*id) != me.get()))
            .or_else(|| others.first().copied())
    });
    let tiles = move || {
        let mut tiles: Vec<(ParticipantId, TrackSource)> = Vec::new();
        client.streams.track();
        for person in people.get() {
            tiles.push((person.id, TrackSource::Camera));
            let sharing = if Some(person.id) == me.get() {
                client.sharing.get()
            } else {
                client.remote_stream(person.id, TrackSource::Screen).is_some()
            };
            if sharing && Some(person.id) != me.get() {
                tiles.push((person.id, TrackSource::Screen));
            }
        }
        tiles
    };
    view! {
        <div class="room" class:with-pane=move || pane.get() != Pane::Closed>
            <div class="room-main">
                <div class="room-status">
                    <span class="room-name">{move || client.state.with(|state| state.room.as_ref().map(|room| room.name.clone()))}</span>
                    {move || match client.encryption.get() {
                        Encryption::Off => ().into_any(),
                        Encryption::On => view! {
                            <span class="badge ok" data-e2ee="on" title="Keys are agreed between participants; the media node cannot decode the media">
                                "🔒 End-to-end encrypted"
                            </span>
                        }.into_any(),
                        Encryption::Unsupported(why) => view! {
                            <span class="badge warning" data-e2ee="unsupported" title=why>
                                "This browser cannot take part in end-to-end encryption"
                            </span>
                        }.into_any(),
                    }}
                    {move || client.state.with(|state| state.room.as_ref().is_some_and(|room| room.locked)).then(|| view! {
                        <span class="badge">"Locked"</span>
                    })}
                    <span class="connection" data-connection=move || client.connection.get()
                        data-signalling=move || if client.signalling_lost.get() { "lost" } else { "up" }
                        data-ice-restarts=move || client.ice_restarts.get()>
                        {move || if client.signalling_lost.get() {
                            "Reconnecting…"
                        } else {
                            connection_words(&client.connection.get(), client.ice_restarts.get() > 0)
                        }}
                    </span>
                </div>
                <Notices />
                <div class="tiles" class:stage=move || stage_view.get()
                    data-count=move || tiles().len()>
                    <For
                        each=tiles
                        key=|tile| (tile.0, tile.1 as u8)
                        children=move |(participant, source)| {
                            let on_stage = Signal::derive(move || stage_view.get() && (
                                (source == TrackSource::Screen && stage.get() == Some(participant))
                                    || (source == TrackSource::Camera && stage.get() == Some(participant)
                                        && client.remote_stream(participant, TrackSource::Screen).is_none())
                            ));
                            view! { <Tile participant source on_stage /> }
                        }
                    />
                </div>
                <RemoteAudio />
                <Toolbar pane stage_view />
            </div>
            {move || match pane.get() {
                Pane::Closed => ().into_any(),
                Pane::Chat => view! { <ChatPane /> }.into_any(),
                Pane::People => view! { <PeoplePane /> }.into_any(),
                Pane::Settings => view! { <SettingsPane /> }.into_any(),
            }}
        </div>
    }
    .into_any()
}

/// The media connection for people; after an ICE restart, connecting again is reconnecting.
fn connection_words(state: &str, restarted: bool) -> &'static str {
    match state {
        "connected" => "Connected",
        "disconnected" | "failed" => "Reconnecting media…",
        "closed" => "Media closed",
        _ if restarted => "Reconnecting media…",
        _ => "Connecting media…",
    }
}

/// One person's camera (or screen): video, name, indicators.
#[component]
fn Tile(participant: ParticipantId, source: TrackSource, on_stage: Signal<bool>) -> impl IntoView {
    let client = client();
    let video: NodeRef<html::Video> = NodeRef::new();
    let mine = client.state.with_untracked(|state| state.me == Some(participant));
    attach(video, move || {
        client.streams.track();
        if mine { client.local_stream() } else { client.remote_stream(participant, source) }
    });
    let info = Memo::new(move |_| client.state.with(|state| state.participant(participant).cloned()));
    let reception = Memo::new(move |_| client.reception.with(|reception| reception.get(&participant).copied()));
    let speaking = move || client.state.with(|state| state.dominant == Some(participant));
    let name = move || {
        let name = info.get().map(|info| info.name).unwrap_or_default();
        match (mine, source) {
            (true, _) => format!("{name} (you)"),
            (false, TrackSource::Screen) => format!("{name}'s screen"),
            _ => name,
        }
    };
    let flag = move |read: fn(&ParticipantInfo) -> bool| info.get().as_ref().is_some_and(read);
    let pinned = move || client.pinned.get() == Some(participant);
    let reactions = move || {
        client.state.with(|state| {
            state
                .reactions
                .iter()
                .filter(|reaction| reaction.from == participant)
                .map(|r| r.emoji.clone())
                .collect::<Vec<_>>()
        })
    };
    view! {
        <figure class="tile"
            class:speaking=speaking
            class:on-stage=move || on_stage.get()
            class:video-off=move || source == TrackSource::Camera && flag(|info| info.video_muted)
            data-participant=participant.0
            data-source=source_name(source)
            data-local=mine.to_string()
            data-video-frames=move || reception.get().map(|r| if source == TrackSource::Screen { r.stats.screen_frames } else { r.stats.video_frames })
            data-audio-bytes=move || reception.get().map(|r| r.stats.audio_bytes)
            data-video-height=move || reception.get().map(|r| r.stats.height)
            data-quality=move || reception.get().map(|r| r.quality.as_str())
        >
            <video node_ref=video autoplay muted playsinline
                class:mirror=mine && source == TrackSource::Camera
                data-tile-video=participant.0></video>
            <div class="avatar" aria-hidden="true">{move || initials(&name())}</div>
            <figcaption>
                <span class="tile-name">{name}</span>
                {move || flag(|info| info.audio_muted).then(|| view! { <span class="indicator" data-indicator="muted" title="Microphone off">"Muted"</span> })}
                {move || flag(|info| info.hand_raised).then(|| view! { <span class="indicator" data-indicator="hand" title="Hand raised">"Hand raised"</span> })}
                {move || (!mine).then(|| view! {
                    <span class="quality" data-quality=move || reception.get().map_or("unknown", |r| r.quality.as_str())
                        title="Connection quality"></span>
                })}
                {(!mine && source == TrackSource::Camera).then(|| view! {
                    <button class="tile-pin" on:click=move |_| client.pin(if pinned() { None } else { Some(participant) })>
                        {move || if pinned() { "Unpin" } else { "Pin" }}
                    </button>
                })}
            </figcaption>
            <div class="reactions">{move || reactions().into_iter().map(|emoji| view! { <span>{emoji}</span> }).collect_view()}</div>
        </figure>
    }
    .into_any()
}

fn source_name(source: TrackSource) -> &'static str {
    match source {
        TrackSource::Microphone => "microphone",
        TrackSource::Camera => "camera",
        TrackSource::Screen => "screen",
    }
}

fn initials(name: &str) -> String {
    name.split_whitespace().filter_map(|word| word.chars().next()).take(2).collect::<String>().to_uppercase()
}

/// One audio element per remote participant.
#[component]
fn RemoteAudio() -> impl IntoView {
    let client = client();
    let others = move || {
        client.state.with(|state| {
            state.participants.iter().map(|person| person.id).filter(|id| Some(*id) != state.me).collect::<Vec<_>>()
        })
    };
    view! {
        <div class="remote-audio" hidden>
            <For each=others key=|id| *id children=move |participant| {
                let audio: NodeRef<html::Audio> = NodeRef::new();
                attach(audio, move || {
                    client.streams.track();
                    client.remote_stream(participant, TrackSource::Microphone)
                });
                view! { <audio node_ref=audio autoplay data-participant=participant.0></audio> }
            } />
        </div>
    }
    .into_any()
}

/// Things that happened to the person.
#[component]
fn Notices() -> impl IntoView {
    let client = client();
    let notices = move || client.state.with(|state| state.notices.clone());
    view! {
        <ul class="notices" aria-live="polite">
            <For each=notices key=|notice| notice.id children=move |notice| {
                let id = notice.id;
                view! {
                    <li class="notice-line">
                        <span>{notice.text}</span>
                        {notice.unmute_request.then(|| view! {
                            <button class="button" on:click=move |_| {
                                client.set_muted(MediaKind::Audio, false);
                                client.state.update(|state| state.dismiss(id));
                            }>"Unmute"</button>
                        })}
                        <button class="dismiss" aria-label="Dismiss" on:click=move |_| client.state.update(|state| state.dismiss(id))>"×"</button>
                    </li>
                }
            } />
        </ul>
    }
    .into_any()
}

/// Microphone, camera, screen, hand, reactions, chat, people, view, leave.
#[component]
fn Toolbar(pane: RwSignal<Pane>, stage_view: RwSignal<bool>) -> impl IntoView {
    let client = client();
    let mine = move |read: fn(&ParticipantInfo) -> bool| client.state.with(|state| state.myself().is_some_and(read));
    let toggle_pane = move |which: Pane| pane.update(|open| *open = if *open == which { Pane::Closed } else { which });
    let waiting = move || client.state.with(|state| state.lobby.len());
    view! {
        <nav class="toolbar" aria-label="Meeting controls">
            <button name="microphone" class:off=move || mine(|me| me.audio_muted)
                on:click=move |_| client.set_muted(MediaKind::Audio, !mine(|me| me.audio_muted))>
                {move || if mine(|me| me.audio_muted) { "Unmute" } else { "Mute" }}
            </button>
            <button name="camera" class:off=move || mine(|me| me.video_muted)
                on:click=move |_| client.set_muted(MediaKind::Video, !mine(|me| me.video_muted))>
                {move || if mine(|me| me.video_muted) { "Start camera" } else { "Stop camera" }}
            </button>
            <button name="screen" class:on=move || client.sharing.get() on:click=move |_| client.toggle_screen()>
                {move || if client.sharing.get() { "Stop sharing" } else { "Share screen" }}
            </button>
            <button name="hand" class:on=move || mine(|me| me.hand_raised)
                on:click=move |_| client.send(&ClientMessage::RaiseHand { raised: !mine(|me| me.hand_raised) })>
                {move || if mine(|me| me.hand_raised) { "Lower hand" } else { "Raise hand" }}
            </button>
            <span class="reaction-picker">
                {REACTIONS.map(|emoji| view! {
                    <button name="reaction" value=emoji on:click=move |_| client.send(&ClientMessage::Reaction { emoji: emoji.to_owned() })>{emoji}</button>
                })}
            </span>
            <button name="chat" class:on=move || pane.get() == Pane::Chat on:click=move |_| toggle_pane(Pane::Chat)>"Chat"</button>
            <button name="people" class:on=move || pane.get() == Pane::People on:click=move |_| toggle_pane(Pane::People)>
                "People"
                {move || (waiting() > 0).then(|| view! { <span class="count">{waiting()}</span> })}
            </button>
            <button name="settings" class:on=move || pane.get() == Pane::Settings on:click=move |_| toggle_pane(Pane::Settings)>"Settings"</button>
            <button name="view" on:click=move |_| stage_view.update(|stage| *stage = !*stage)>
                {move || if stage_view.get() { "Tile view" } else { "Stage view" }}
            </button>
            <button name="leave" class="danger" on:click=move |_| client.leave()>"Leave"</button>
        </nav>
    }
    .into_any()
}

/// Chat with everyone, or privately with one person.
#[component]
fn ChatPane() -> impl IntoView {
    let client = client();
    let text = RwSignal::new(String::new());
    let recipient = RwSignal::new(None::<ParticipantId>);
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        let message = text.get_untracked();
        if message.trim().is_empty() {
            return;
        }
        client.send(&ClientMessage::Chat { text: message, to: recipient.get_untracked() });
        text.set(String::new());
    };
    let others = move || {
        client.state.with(|state| {
            state.participants.iter().filter(|person| Some(person.id) != state.me).cloned().collect::<Vec<_>>()
        })
    };
    view! {
        <aside class="pane" aria-label="Chat">
            <h2>"Chat"</h2>
            <ol class="chat">
                {move || client.state.with(|state| state.chat.iter().map(|line| {
                    let heading = match &line.private_with {
                        Some(other) => format!("{} (privately with {other})", line.from_name),
                        None => line.from_name.clone(),
                    };
                    view! {
                        <li class:private=line.private_with.is_some()>
                            <strong>{heading}</strong>
                            <p>{line.text.clone()}</p>
                        </li>
                    }
                }).collect_view())}
            </ol>
            <form class="chat-form" on:submit=submit>
                <select name="to" on:change=move |event| recipient.set(event_target_value(&event).parse().ok().map(ParticipantId))>
                    <option value="">"Everyone"</option>
                    {move || others().into_iter().map(|person| view! {
                        <option value=person.id.0.to_string()>{person.name}</option>
                    }).collect_view()}
                </select>
                <input name="message" placeholder="Write a message" maxlength="2000" autocomplete="off"
                    prop:value=move || text.get() on:input=move |event| text.set(event_target_value(&event)) />
                <button class="button" type="submit">"Send"</button>
            </form>
        </aside>
    }
    .into_any()
}

/// Who is here and who waits; moderators act on them.
#[component]
fn PeoplePane() -> impl IntoView {
    let client = client();
    let moderator = move || client.state.with(|state| state.is_moderator());
    let locked = move || client.state.with(|state| state.room.as_ref().is_some_and(|room| room.locked));
    view! {
        <aside class="pane" aria-label="People">
            <h2>"People"</h2>
            {move || {
                let waiting = client.state.with(|state| state.lobby.clone());
                (moderator() && !waiting.is_empty()).then(|| view! {
                    <h3>"Waiting to be let in"</h3>
                    <ul class="people lobby">
                        {waiting.into_iter().map(|entry| {
                            let id = entry.id;
                            view! {
                                <li data-waiting=id.0>
                                    <span>{entry.name}</span>
                                    <button name="admit" on:click=move |_| client.send(&ClientMessage::Admit { participant: id })>"Let in"</button>
                                    <button name="reject" on:click=move |_| client.send(&ClientMessage::Reject { participant: id })>"Turn away"</button>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                })
            }}
            <ul class="people">
                {move || client.state.with(|state| state.participants.clone()).into_iter().map(|person| {
                    let id = person.id;
                    let mine = client.state.with_untracked(|state| state.me == Some(id));
                    view! {
                        <li data-person=id.0>
                            <span>{person.name.clone()} {person.moderator.then_some(" · moderator")} {mine.then_some(" (you)")}</span>
                            {person.audio_muted.then_some(" · muted")}
                            {person.hand_raised.then_some(" · hand raised")}
                            {(moderator() && !mine).then(|| view! {
                                <span class="actions">
                                    <button name="mute" on:click=move |_| client.send(&ClientMessage::Mute { participant: id, media: MediaKind::Audio })>"Mute"</button>
                                    <button name="ask-unmute" on:click=move |_| client.send(&ClientMessage::AskToUnmute { participant: id })>"Ask to unmute"</button>
                                    {(!person.moderator).then(|| view! {
                                        <button name="grant" on:click=move |_| client.send(&ClientMessage::GrantModerator { participant: id })>"Make moderator"</button>
                                    })}
                                    <button name="kick" class="danger" on:click=move |_| client.send(&ClientMessage::Kick { participant: id })>"Remove"</button>
                                </span>
                            })}
                        </li>
                    }
                }).collect_view()}
            </ul>
            {move || moderator().then(|| view! {
                <div class="moderation">
                    <button name="mute-all" on:click=move |_| client.send(&ClientMessage::MuteAll)>"Mute everyone"</button>
                    <button name="lock" on:click=move |_| client.send(&ClientMessage::Lock { locked: !locked() })>
                        {move || if locked() { "Unlock the meeting" } else { "Lock the meeting" }}
                    </button>
                    <button name="end" class="danger" on:click=move |_| client.send(&ClientMessage::EndForAll)>"End for everyone"</button>
                </div>
            })}
        </aside>
    }
    .into_any()
}

/// Devices and the meeting's media quality.
#[component]
fn SettingsPane() -> impl IntoView {
    let client = client();
    let devices = RwSignal::new(Devices::default());
    Effect::new(move |_| {
        leptos::task::spawn_local(async move {
            if let Ok(found) = local_media::devices().await {
                devices.try_set(found);
            }
        });
    });
    let quality = move || client.state.with(|state| state.room.as_ref().map(|room| room.quality)).unwrap_or_default();
    // A memo, so the name form (and what is typed in it) is rebuilt only when the rule changes, not whenever
    // anything in the meeting does.
    let names_fixed =
        Memo::new(move |_| client.state.with(|state| state.room.as_ref().is_none_or(|room| room.fixed_display_names)));
    view! {
        <aside class="pane" aria-label="Settings">
            <h2>"Settings"</h2>
            {move || (!names_fixed.get()).then(|| view! { <RenameForm /> })}
            <DevicePicker media=MediaKind::Video name="switch-camera" devices
                on_pick=Callback::new(move |camera| client.switch_device(MediaKind::Video, camera)) />
            <DevicePicker media=MediaKind::Audio name="switch-microphone" devices
                on_pick=Callback::new(move |microphone| client.switch_device(MediaKind::Audio, microphone)) />
            <h3>"Quality"</h3>
            <label>
                "Video from others"
                <select name="receive-quality" on:change=move |event| {
                    if let Some(chosen) = ReceiveQuality::named(&event_target_value(&event)) {
                        client.receive_quality.set(chosen);
                    }
                }>
                    {ReceiveQuality::ALL.into_iter().map(|choice| view! {
                        <option value=choice.name() selected=move || client.receive_quality.get() == choice>
                            {choice.label()}
                        </option>
                    }).collect_view()}
                </select>
            </label>
            <p class="muted" data-quality-height=move || quality().max_height>
                {move || format!("Video up to {}p, in three layers the others receive as their screens need.", quality().max_height)}
            </p>
            <p class="muted">
                {move || if quality().high_fidelity_audio {
                    "Music audio: stereo at up to 128 kbit/s, without echo cancellation, noise suppression or gain control."
                } else {
                    "Voice audio, with echo cancellation and noise suppression."
                }}
            </p>
        </aside>
    }
    .into_any()
}

/// Changing one's name during the meeting.
#[component]
fn RenameForm() -> impl IntoView {
    let client = client();
    let current = client.state.with_untracked(|state| state.myself().map(|me| me.name.clone())).unwrap_or_default();
    let name = RwSignal::new(current);
    let problem = RwSignal::new(None::<String>);
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        match convene_signal::display_name(&name.get_untracked()) {
            Ok(valid) => {
                problem.set(None);
                client.rename(valid.to_owned());
            }
            Err(error) => problem.set(Some(format!("Your name: {error}."))),
        }
    };
    view! {
        <form class="rename" on:submit=submit>
            <label>
                "Your name"
                <input type="text" name="rename" prop:value=name autocomplete="name"
                    maxlength=convene_signal::MAX_DISPLAY_NAME_CHARS.to_string()
                    on:input=move |event| name.set(event_target_value(&event)) />
            </label>
            {move || problem.get().map(|problem| view! { <p class="field-error">{problem}</p> })}
            <button class="button secondary" type="submit">"Change my name"</button>
        </form>
    }
}

/// The height in device pixels each remote participant's largest tile shows them at.
pub(super) fn tile_heights() -> Vec<(ParticipantId, u32)> {
    let mut heights: Vec<(ParticipantId, u32)> = Vec::new();
    let Some(window) = web_sys::window() else { return heights };
    let Some(document) = window.document() else { return heights };
    let Ok(videos) = document.query_selector_all("figure[data-local='false'] video[data-tile-video]") else {
        return heights;
    };
    let ratio = window.device_pixel_ratio().max(1.0);
    for index in 0..videos.length() {
        let Some(element) = videos.item(index).and_then(|node| node.dyn_into::<web_sys::Element>().ok()) else {
            continue;
        };
        let Some(id) = element.get_attribute("data-tile-video").and_then(|id| id.parse().ok()) else { continue };
        let height = (f64::from(element.client_height()) * ratio).round() as u32;
        match heights.iter_mut().find(|(participant, _)| participant.0 == id) {
            Some((_, known)) => *known = (*known).max(height),
            None => heights.push((ParticipantId(id), height)),
        }
    }
    heights.sort_unstable();
    heights
}
