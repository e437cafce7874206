//! The meeting itself: stage or tiles, remote audio, notices and the toolbar; and the tile heights the
//! client reports so each tile gets the layer it can show.

use super::{
    panes::{ChatPane, LivePane, PeoplePane, SettingsPane},
    *,
};

/// Which side pane is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pane {
    Closed,
    Chat,
    People,
    Settings,
    Live,
}

/// A tile: whose, and which of their videos.
type TileKey = (ParticipantId, TrackSource);

/// The meeting, filling the window: a slim status line, the video area (tiles or stage, placed to fit it), a
/// fixed toolbar, and a side pane (overlaying the video on phones).
#[component]
pub(in crate::meeting) fn MeetingRoom(title: String, invitation: Option<Invitation>) -> impl IntoView {
    let client = client();
    let pane = RwSignal::new(Pane::Closed);
    let stage_view = RwSignal::new(false);
    let area = RwSignal::new((0.0_f64, 0.0_f64));
    let video_area: NodeRef<html::Div> = NodeRef::new();
    watch_size(video_area, area);
    every(crate::meeting::STATS_EVERY, move || client.poll());
    let people = Memo::new(move |_| client.state.with(|state| state.participants.clone()));
    let me = Memo::new(move |_| client.state.with(|state| state.me));
    let tiles = Memo::new(move |_| {
        let mut tiles: Vec<TileKey> = Vec::new();
        client.streams.track();
        for person in people.get() {
            tiles.push((person.id, TrackSource::Camera));
            if Some(person.id) != me.get() && client.remote_stream(person.id, TrackSource::Screen).is_some() {
                tiles.push((person.id, TrackSource::Screen));
            }
        }
        tiles
    });
    // A screen someone starts sharing (or shares as one arrives) comes to the stage, as in other meeting
    // products; the tile view is a click away.
    Effect::new(move |shared_before: Option<usize>| {
        let shared = tiles.with(|tiles| tiles.iter().filter(|tile| tile.1 == TrackSource::Screen).count());
        if shared > shared_before.unwrap_or(0) {
            stage_view.set(true);
        }
        shared
    });
    // The stage: whom the person pinned, else a shared screen (remote screens are in `tiles`), else the
    // dominant speaker, else the first other; shown by their shared screen if any, else their camera.
    let on_stage = Memo::new(move |_| {
        let tiles = tiles.get();
        let other = |id: &ParticipantId| Some(*id) != me.get();
        let person = client
            .pinned
            .get()
            .or_else(|| tiles.iter().find(|tile| tile.1 == TrackSource::Screen).map(|tile| tile.0))
            .or_else(|| client.state.with(|state| state.dominant).filter(other))
            .or_else(|| tiles.iter().map(|tile| tile.0).find(other))?;
        tiles
            .iter()
            .find(|tile| **tile == (person, TrackSource::Screen))
            .or_else(|| tiles.iter().find(|tile| **tile == (person, TrackSource::Camera)))
            .copied()
    });
    let places = Memo::new(move |_| {
        let (width, height) = area.get();
        let mut order = tiles.get();
        if !stage_view.get() {
            let rects = tiling::grid(order.len(), width, height);
            return order.into_iter().zip(rects).collect::<Vec<_>>();
        }
        if let Some(stage) = on_stage.get()
            && let Some(at) = order.iter().position(|tile| *tile == stage)
        {
            order[..=at].rotate_right(1);
        }
        let rects = tiling::stage(order.len().saturating_sub(1), width, height);
        order.into_iter().zip(rects).collect::<Vec<_>>()
    });
    view! {
        <div class="room" class:with-pane=move || pane.get() != Pane::Closed>
            <div class="room-main">
                <RoomStatus title />
                <div class="video-area" node_ref=video_area class:stage=move || stage_view.get()>
                    <For
                        // Keyed by whose view it is too: after a node's failover the new session may give
                        // the same ids to other people (the same tiles, so `tiles` does not change), and a
                        // tile made for someone else must not stay.
                        each=move || {
                            me.track();
                            tiles.get()
                        }
                        key=move |tile| (tile.0, tile.1 as u8, me.get_untracked())
                        children=move |(participant, source)| {
                            let key = (participant, source);
                            let place = Signal::derive(move || {
                                places.with(|places| places.iter().find(|(tile, _)| *tile == key).map(|(_, rect)| *rect))
                                    .unwrap_or_default()
                            });
                            let on_stage = Signal::derive(move || stage_view.get() && on_stage.get() == Some(key));
                            view! { <Tile participant source on_stage place /> }
                        }
                    />
                    <div class="notice-stack">
                        <LobbyNotice pane />
                        <Notices />
                    </div>
                </div>
                <RemoteAudio />
                <Toolbar pane stage_view invitation />
            </div>
            {move || match pane.get() {
                Pane::Closed => ().into_any(),
                Pane::Chat => view! { <ChatPane pane /> }.into_any(),
                Pane::People => view! { <PeoplePane pane /> }.into_any(),
                Pane::Settings => view! { <SettingsPane pane /> }.into_any(),
                Pane::Live => view! { <LivePane pane /> }.into_any(),
            }}
        </div>
    }
    .into_any()
}

/// A resize observer and the callback it calls, kept alive together.
type Watching = (web_sys::ResizeObserver, Closure<dyn FnMut()>);

/// Keeps `size` at the element's inner size in CSS pixels as it changes (window, pane, status line).
fn watch_size(element: NodeRef<html::Div>, size: RwSignal<(f64, f64)>) {
    let observer: StoredValue<Option<Watching>, LocalStorage> = StoredValue::new_local(None);
    Effect::new(move |_| {
        let Some(target) = element.get() else { return };
        let measured = target.clone();
        let measure = move || {
            size.try_set((f64::from(measured.client_width()), f64::from(measured.client_height())));
        };
        measure();
        let callback = Closure::<dyn FnMut()>::new(measure);
        if let Ok(watching) = web_sys::ResizeObserver::new(callback.as_ref().unchecked_ref()) {
            watching.observe(&target);
            if let Some((previous, _)) = observer.try_update_value(|kept| kept.replace((watching, callback))).flatten()
            {
                previous.disconnect();
            }
        }
    });
    on_cleanup(move || {
        if let Some((watching, _)) = observer.try_update_value(Option::take).flatten() {
            watching.disconnect();
        }
    });
}

/// The meeting's title, encryption, lock and connection, in one line above the video.
#[component]
fn RoomStatus(title: String) -> impl IntoView {
    let client = client();
    let shown = title.clone();
    view! {
        <div class="room-status">
            <span class="room-name" title=title>{shown}</span>
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
            {move || client.state.with(|state| state.room.as_ref().is_some_and(|room| room.recording)).then(|| view! {
                <span class="badge recording" data-recording="on" title="This meeting is being recorded">"Recording"</span>
            })}
            {move || client.state.with(|state| state.room.as_ref().is_some_and(|room| room.live_streaming)).then(|| view! {
                <span class="badge recording" data-live="on" title="This meeting is streamed live">"Live"</span>
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
pub(super) fn Tile(
    participant: ParticipantId,
    source: TrackSource,
    on_stage: Signal<bool>,
    place: Signal<tiling::Rect>,
) -> impl IntoView {
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
        <figure class="tile" style=move || place.get().style()
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
                // A shared screen carries no voice or hand of its own: those show on the person's camera tile.
                {move || (source == TrackSource::Camera && flag(|info| info.audio_muted)).then(|| view! {
                    <span class="indicator" data-indicator="muted" title="Microphone off" role="img" aria-label="Microphone off">
                        {icons::icon(|| icons::MIC_OFF)}
                    </span>
                })}
                {move || (source == TrackSource::Camera && flag(|info| info.hand_raised)).then(|| view! {
                    <span class="indicator" data-indicator="hand" title="Hand raised" role="img" aria-label="Hand raised">
                        {icons::icon(|| icons::HAND)}
                    </span>
                })}
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
                // The speaker chosen in the settings.
                Effect::new(move |_| {
                    let speaker = client.choices.with(|choices| choices.devices.speaker.clone());
                    if let (Some(element), Some(speaker)) = (audio.get(), speaker) {
                        sound::play_to(&element, &speaker);
                    }
                });
                view! { <audio node_ref=audio autoplay data-participant=participant.0></audio> }
            } />
        </div>
    }
    .into_any()
}

/// For moderators: who knocks, with "Admit" and "Reject" at hand, and a chime whenever someone new does.
#[component]
fn LobbyNotice(pane: RwSignal<Pane>) -> impl IntoView {
    let client = client();
    let waiting = Memo::new(move |_| {
        client.state.with(|state| if state.is_moderator() { state.lobby.clone() } else { Vec::new() })
    });
    Effect::new(move |before: Option<usize>| {
        let now = waiting.with(Vec::len);
        if now > before.unwrap_or(0) {
            let speaker = client.choices.with_untracked(|choices| choices.devices.speaker.clone());
            sound::chime(speaker.as_deref());
        }
        now
    });
    let notice = move || {
        let (first, others) = waiting.with(|waiting| (waiting.first().cloned(), waiting.len().saturating_sub(1)));
        first.map(|first| {
            let id = first.id;
            let more = (others > 0).then(|| format!(" and {others} more"));
            view! {
                <div class="lobby-notice" role="alert" data-waiting=id.0>
                    <span class="lobby-who"><strong>{first.name}</strong>{more}" would like to join"</span>
                    <button name="admit" on:click=move |_| client.send(&ClientMessage::Admit { participant: id })>"Admit"</button>
                    <button name="reject" class="secondary" on:click=move |_| client.send(&ClientMessage::Reject { participant: id })>
                        "Reject"
                    </button>
                    {(others > 0).then(|| view! {
                        <button name="see-lobby" class="link" on:click=move |_| pane.set(Pane::People)>"See all"</button>
                    })}
                </div>
            }
        })
    };
    view! { {notice} }.into_any()
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

/// Icon buttons: microphone, camera, screen, hand, reactions, chat, people, settings, view and leave. On a
/// phone the bar keeps the essentials and the rest opens from "More" as a sheet; the same buttons either way.
#[component]
pub(super) fn Toolbar(
    pane: RwSignal<Pane>,
    stage_view: RwSignal<bool>,
    invitation: Option<Invitation>,
) -> impl IntoView {
    let client = client();
    let mine = move |read: fn(&ParticipantInfo) -> bool| client.state.with(|state| state.myself().is_some_and(read));
    let toggle_pane = move |which: Pane| pane.update(|open| *open = if *open == which { Pane::Closed } else { which });
    let waiting = move || client.state.with(|state| state.lobby.len());
    let more = RwSignal::new(false);
    let reacting = RwSignal::new(false);
    // Chat lines that arrived while the chat was closed (counted in all, as the kept lines stop at a limit).
    let received = move || client.state.with(|state| state.chat_received);
    let seen = RwSignal::new(client.state.with_untracked(|state| state.chat_received));
    Effect::new(move |_| {
        if pane.get() == Pane::Chat {
            seen.set(received());
        }
    });
    let unread = move || usize::try_from(received().saturating_sub(seen.get())).unwrap_or(usize::MAX);
    let room = move |read: fn(&RoomInfo) -> bool| client.state.with(|state| state.room.as_ref().is_some_and(read));
    let recording = move || room(|room| room.recording);
    let live = move || room(|room| room.live_streaming);
    // The server cannot record what only the participants can decode.
    let may_record = move || mine(|me| me.moderator) && !room(|room| room.end_to_end_encryption);
    let state = |off: bool, on: bool| {
        if off {
            "off"
        } else if on {
            "on"
        } else {
            ""
        }
    };
    view! {
        // A long press on a touch screen shows the button's label (`:active`) rather than a context menu.
        <nav class="toolbar" aria-label="Meeting controls" on:contextmenu=|event| event.prevent_default()>
            <ToolButton name="microphone"
                icon=Signal::derive(move || if mine(|me| me.audio_muted) { icons::MIC_OFF } else { icons::MIC })
                label=Signal::derive(move || if mine(|me| me.audio_muted) { "Unmute" } else { "Mute" })
                state=Signal::derive(move || state(mine(|me| me.audio_muted), false))
                press=Callback::new(move |()| client.set_muted(MediaKind::Audio, !mine(|me| me.audio_muted))) />
            <ToolButton name="camera"
                icon=Signal::derive(move || if mine(|me| me.video_muted) { icons::CAMERA_OFF } else { icons::CAMERA })
                label=Signal::derive(move || if mine(|me| me.video_muted) { "Start camera" } else { "Stop camera" })
                state=Signal::derive(move || state(mine(|me| me.video_muted), false))
                press=Callback::new(move |()| client.set_muted(MediaKind::Video, !mine(|me| me.video_muted))) />
            <div class="tools-more" class:open=move || more.get() on:click=move |_| more.set(false)>
                <ToolButton name="screen" icon=Signal::stored(icons::SCREEN)
                    label=Signal::derive(move || if client.sharing.get() { "Stop sharing" } else { "Share screen" })
                    state=Signal::derive(move || state(false, client.sharing.get()))
                    press=Callback::new(move |()| client.toggle_screen()) />
                <ToolButton name="hand" icon=Signal::stored(icons::HAND)
                    label=Signal::derive(move || if mine(|me| me.hand_raised) { "Lower hand" } else { "Raise hand" })
                    state=Signal::derive(move || state(false, mine(|me| me.hand_raised)))
                    press=Callback::new(move |()| client.send(&ClientMessage::RaiseHand { raised: !mine(|me| me.hand_raised) })) />
                <ToolButton name="react" icon=Signal::stored(icons::REACT) label=Signal::stored("React")
                    state=Signal::derive(move || state(false, reacting.get()))
                    press=Callback::new(move |()| reacting.update(|open| *open = !*open)) />
                <ToolButton name="people" icon=Signal::stored(icons::PEOPLE) label=Signal::stored("People")
                    state=Signal::derive(move || state(false, pane.get() == Pane::People))
                    badge=Signal::derive(move || Some(waiting()).filter(|count| *count > 0))
                    press=Callback::new(move |()| toggle_pane(Pane::People)) />
                {move || may_record().then(|| view! {
                    <ToolButton name="record" icon=Signal::stored(icons::RECORD)
                        label=Signal::derive(move || if recording() { "Stop recording" } else { "Record" })
                        state=Signal::derive(move || if recording() { "recording" } else { "" })
                        press=Callback::new(move |()| client.send(
                            &if recording() { ClientMessage::StopRecording } else { ClientMessage::StartRecording })) />
                })}
                {move || may_record().then(|| view! {
                    <ToolButton name="live" icon=Signal::stored(icons::LIVE)
                        label=Signal::derive(move || if live() { "Live now" } else { "Go live" })
                        state=Signal::derive(move || if live() { "recording" } else { state(false, pane.get() == Pane::Live) })
                        press=Callback::new(move |()| toggle_pane(Pane::Live)) />
                })}
                {invitation.map(|invitation| view! {
                    <ToolButton name="invite" icon=Signal::stored(icons::LINK) label=Signal::stored("Invite people")
                        state=Signal::stored("") press=Callback::new(move |()| copy_invite(client, invitation.clone())) />
                })}
                <ToolButton name="settings" icon=Signal::stored(icons::SETTINGS) label=Signal::stored("Settings")
                    state=Signal::derive(move || state(false, pane.get() == Pane::Settings))
                    press=Callback::new(move |()| toggle_pane(Pane::Settings)) />
                <ToolButton name="view"
                    icon=Signal::derive(move || if stage_view.get() { icons::GRID } else { icons::STAGE })
                    label=Signal::derive(move || if stage_view.get() { "Tile view" } else { "Stage view" })
                    state=Signal::stored("")
                    press=Callback::new(move |()| stage_view.update(|stage| *stage = !*stage)) />
            </div>
            <ToolButton name="chat" icon=Signal::stored(icons::CHAT) label=Signal::stored("Chat")
                state=Signal::derive(move || state(false, pane.get() == Pane::Chat))
                badge=Signal::derive(move || Some(unread()).filter(|count| *count > 0))
                press=Callback::new(move |()| toggle_pane(Pane::Chat)) />
            <ToolButton name="more" icon=Signal::stored(icons::MORE) label=Signal::stored("More")
                state=Signal::derive(move || state(false, more.get()))
                badge=Signal::derive(move || Some(waiting()).filter(|count| *count > 0))
                press=Callback::new(move |()| more.update(|open| *open = !*open)) />
            <ToolButton name="leave" icon=Signal::stored(icons::LEAVE) label=Signal::stored("Leave")
                state=Signal::stored("") press=Callback::new(move |()| client.leave()) />
            {move || reacting.get().then(|| view! {
                <div class="reaction-picker" role="group" aria-label="Reactions">
                    {REACTIONS.map(|emoji| view! {
                        <button name="reaction" value=emoji on:click=move |_| {
                            client.send(&ClientMessage::Reaction { emoji: emoji.to_owned() });
                            reacting.set(false);
                        }>{emoji}</button>
                    })}
                </div>
            })}
        </nav>
    }
    .into_any()
}

/// What "Invite people" shares: the participant link, and how to join by phone when there is a way.
#[derive(Debug, Clone)]
pub(in crate::meeting) struct Invitation {
    /// The scheduled meeting's participant link.
    pub link: String,
    /// The numbers and PIN, in a line.
    pub phone: Option<String>,
}

/// Copies the meeting's participant link (and the dial-in line) and says so; where the clipboard refuses,
/// the notice holds them.
fn copy_invite(client: Client, Invitation { link, phone }: Invitation) {
    let Some(window) = web_sys::window() else { return };
    let text = match &phone {
        Some(phone) => format!("{link}\n{phone}"),
        None => link.clone(),
    };
    let copying = window.navigator().clipboard().write_text(&text);
    leptos::task::spawn_local(async move {
        let what = if phone.is_some() { "link and dial-in numbers are" } else { "link is" };
        let said = match wasm_bindgen_futures::JsFuture::from(copying).await {
            Ok(_) => format!(
                "The meeting's {what} copied ({link}). Members and invitees sign in with it; guests give their name if the meeting admits them."
            ),
            Err(_) => format!("Share the meeting's link: {text}"),
        };
        client.state.update(|state| state.notify(said));
    });
}

/// A toolbar button: an icon, its label (a tooltip on wide screens, written out in the phone's sheet), a
/// state (`off` in red for a muted device, `on` for an open pane or a raised hand) and an optional count.
#[component]
fn ToolButton(
    name: &'static str,
    icon: Signal<&'static str>,
    label: Signal<&'static str>,
    state: Signal<&'static str>,
    press: Callback<()>,
    #[prop(optional)] badge: Option<Signal<Option<usize>>>,
) -> impl IntoView {
    view! {
        <button name=name class="tool" data-state=move || state.get()
            on:click=move |_| press.run(())>
            {icons::icon(move || icon.get())}
            <span class="label">{move || label.get()}</span>
            {move || badge.and_then(|badge| badge.get()).map(|count| view! { <span class="count">{count}</span> })}
        </button>
    }
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
