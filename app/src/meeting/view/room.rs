//! The meeting itself: stage or tiles, remote audio, notices and the toolbar; and the tile heights the
//! client reports so each tile gets the layer it can show.

use super::{
    panes::{ChatPane, PeoplePane, SettingsPane},
    *,
};

/// Which side pane is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pane {
    Closed,
    Chat,
    People,
    Settings,
}

/// The meeting: stage or tiles, notices, toolbar and panes.
#[component]
pub(super) fn MeetingRoom() -> impl IntoView {
    let client = client();
    let pane = RwSignal::new(Pane::Closed);
    let stage_view = RwSignal::new(false);
    every(crate::meeting::STATS_EVERY, move || client.poll());
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
pub(super) fn connection_words(state: &str, restarted: bool) -> &'static str {
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
pub(super) fn Tile(participant: ParticipantId, source: TrackSource, on_stage: Signal<bool>) -> impl IntoView {
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

pub(super) fn source_name(source: TrackSource) -> &'static str {
    match source {
        TrackSource::Microphone => "microphone",
        TrackSource::Camera => "camera",
        TrackSource::Screen => "screen",
    }
}

pub(super) fn initials(name: &str) -> String {
    name.split_whitespace().filter_map(|word| word.chars().next()).take(2).collect::<String>().to_uppercase()
}

/// One audio element per remote participant.
#[component]
pub(super) fn RemoteAudio() -> impl IntoView {
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
pub(super) fn Notices() -> impl IntoView {
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
pub(super) fn Toolbar(pane: RwSignal<Pane>, stage_view: RwSignal<bool>) -> impl IntoView {
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

/// The height in device pixels each remote participant's largest tile shows them at.
pub(in crate::meeting) fn tile_heights() -> Vec<(ParticipantId, u32)> {
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
