//! The side panes: chat (with everyone or one person), people (with the moderators' actions, the lobby and
//! calling phones in), settings (devices, media quality, one's name) and, for moderators, the live stream.

use super::{room::Pane, *};

/// A pane's title and the button that closes it (on a phone the pane covers the video).
#[component]
fn PaneHeading(title: &'static str, pane: RwSignal<Pane>) -> impl IntoView {
    view! {
        <header class="pane-heading">
            <h2>{title}</h2>
            <button class="pane-close" name="close-pane" aria-label=format!("Close {}", title.to_lowercase())
                on:click=move |_| pane.set(Pane::Closed)>
                {super::icons::icon(|| super::icons::CLOSE)}
            </button>
        </header>
    }
}

/// Chat with everyone, or privately with one person.
#[component]
pub(super) fn ChatPane(pane: RwSignal<Pane>) -> impl IntoView {
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
            <PaneHeading title="Chat" pane />
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
pub(super) fn PeoplePane(pane: RwSignal<Pane>) -> impl IntoView {
    let client = client();
    let moderator = move || client.state.with(|state| state.is_moderator());
    let locked = move || client.state.with(|state| state.room.as_ref().is_some_and(|room| room.locked));
    // A memo, so the call form (and the number being typed in it) is rebuilt only when the rule changes, not
    // whenever anything in the meeting does.
    let shows_calls = Memo::new(move |_| client.state.with(|state| state.shows_dial_outs()));
    view! {
        <aside class="pane" aria-label="People">
            <PaneHeading title="People" pane />
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
                                    <button name="admit" on:click=move |_| client.send(&ClientMessage::Admit { participant: id })>"Admit"</button>
                                    <button name="reject" on:click=move |_| client.send(&ClientMessage::Reject { participant: id })>"Reject"</button>
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
            {move || shows_calls.get().then(|| view! { <DialOut /> }.into_any())}
        </aside>
    }
    .into_any()
}

/// Moderators call a phone into the meeting and follow their calls: ringing, in the meeting, busy, failed. The
/// form shows while the room allows calls; the calls already placed stay listed when it stops.
#[component]
fn DialOut() -> impl IntoView {
    let client = client();
    let may_call = Memo::new(move |_| client.state.with(|state| state.may_dial_out()));
    let calls = Memo::new(move |_| client.state.with(|state| state.dial_outs.clone()));
    let number = RwSignal::new(String::new());
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        let typed = number.get_untracked();
        if typed.trim().is_empty() {
            return;
        }
        client.send(&ClientMessage::DialOut { number: typed.trim().to_owned() });
        number.set(String::new());
    };
    let title = move || if may_call.get() { "Call a phone" } else { "Phone calls" };
    view! {
        <section class="dial-out" aria-label=title>
            <h3>{title}</h3>
            {move || may_call.get().then(|| view! {
                <form class="dial-out-form" on:submit=submit>
                    <label class="visually-hidden" for="dial-out-number">"Phone number, with the country code"</label>
                    <input id="dial-out-number" name="dial-out-number" type="tel" autocomplete="tel" placeholder="+1 555 123 4567"
                        maxlength="32" prop:value=move || number.get() on:input=move |event| number.set(event_target_value(&event)) />
                    <button id="dial-out-call" class="button" type="submit">"Call"</button>
                </form>
            })}
            <ul class="people dial-out-calls">
                // Keyed by call and state, so a call's row (and the keys typed into it) stays as other calls
                // come and change.
                <For each=move || calls.get() key=|call| format!("{} {}", call.call, call.code()) children=move |call| {
                    let id = call.call.clone();
                    view! {
                        <li class="dial-out-call" data-state=call.code()>
                            <span>{call.number.clone()}</span>
                            " · "
                            <span class="call-state">{call.words()}</span>
                            <span class="call-by">{format!(" · called by {}", call.by)}</span>
                            {call.cancellable().then(|| {
                                let id = id.clone();
                                view! {
                                    <span class="actions">
                                        <button name="cancel-call"
                                            on:click=move |_| client.send(&ClientMessage::CancelDialOut { call: id.clone() })>"Cancel"</button>
                                    </span>
                                }
                            })}
                            {call.takes_keys().then(|| view! { <Keypad call=id.clone() /> })}
                        </li>
                    }
                } />
            </ul>
        </section>
    }
    .into_any()
}

/// Keys for a phone the meeting called (an automated menu, a conference bridge's PIN), sent as typed.
#[component]
fn Keypad(call: String) -> impl IntoView {
    let client = client();
    let keys = RwSignal::new(String::new());
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        let typed = keys.get_untracked();
        if !typed.trim().is_empty() {
            client.send(&ClientMessage::SendTones { call: call.clone(), tones: typed.trim().to_owned() });
            keys.set(String::new());
        }
    };
    view! {
        <form class="keypad" on:submit=submit>
            <input name="tones" type="text" inputmode="tel" autocomplete="off" placeholder="Keys: 1234#" maxlength="32"
                aria-label="Keys to press on the phone" prop:value=move || keys.get()
                on:input=move |event| keys.set(event_target_value(&event)) />
            <button name="send-tones" class="button" type="submit">"Press"</button>
        </form>
    }
    .into_any()
}

/// Devices and the meeting's media quality.
#[component]
pub(super) fn SettingsPane(pane: RwSignal<Pane>) -> impl IntoView {
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
            <PaneHeading title="Settings" pane />
            {move || (!names_fixed.get()).then(|| view! { <RenameForm /> })}
            <DevicePicker kind=DeviceKind::Camera name="switch-camera" devices
                on_pick=Callback::new(move |camera| client.switch_device(MediaKind::Video, camera)) />
            <DevicePicker kind=DeviceKind::Microphone name="switch-microphone" devices
                on_pick=Callback::new(move |microphone| client.switch_device(MediaKind::Audio, microphone)) />
            {move || (sound::can_choose_speaker() && devices.with(|devices| !devices.speakers.is_empty())).then(|| view! {
                <DevicePicker kind=DeviceKind::Speaker name="speaker" devices
                    on_pick=Callback::new(move |speaker| client.choices.update(|choices| choices.devices.speaker = Some(speaker))) />
            })}
            <button class="button secondary" name="test-sound" on:click=move |_| {
                let speaker = client.choices.with_untracked(|choices| choices.devices.speaker.clone());
                sound::chime(speaker.as_deref());
            }>"Play a test sound"</button>
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
pub(super) fn RenameForm() -> impl IntoView {
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

/// Where a live stream goes unless the moderator says otherwise: YouTube's primary ingest.
const YOUTUBE_INGEST: &str = "rtmp://a.rtmp.youtube.com/live2";

/// Moderators: stream the meeting live to an RTMP service (the address and stream key its studio shows), or
/// stop the stream going on.
#[component]
pub(super) fn LivePane(pane: RwSignal<Pane>) -> impl IntoView {
    let client = client();
    // A memo, so the form (and what is typed in it) is rebuilt only when the stream starts or stops, not
    // whenever anything in the meeting changes.
    let live =
        Memo::new(move |_| client.state.with(|state| state.room.as_ref().is_some_and(|room| room.live_streaming)));
    let address = RwSignal::new(YOUTUBE_INGEST.to_owned());
    let key = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<&'static str>);
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        let (url, stream_key) = (address.get_untracked().trim().to_owned(), key.get_untracked().trim().to_owned());
        if !(url.starts_with("rtmp://") || url.starts_with("rtmps://")) {
            problem.set(Some("The stream address starts with rtmp:// or rtmps://."));
        } else if stream_key.is_empty() {
            problem.set(Some("Paste the stream key your streaming service gave you."));
        } else {
            problem.set(None);
            client.send(&ClientMessage::StartLiveStream { url, key: stream_key });
            // The key is a secret: it is not kept in the page once sent.
            key.set(String::new());
        }
    };
    view! {
        <aside class="pane" aria-label="Live stream">
            <PaneHeading title="Live stream" pane />
            {move || if live.get() {
                view! {
                    <p data-live="on">"The meeting is live: what is said and shown goes out to the stream."</p>
                    <button class="button secondary danger" name="stop-live"
                        on:click=move |_| client.send(&ClientMessage::StopLiveStream)>"Stop streaming"</button>
                }.into_any()
            } else {
                view! {
                    <form class="rename" on:submit=submit>
                        <p class="muted">
                            "Stream the meeting to YouTube or any RTMP service: every voice, and the person speaking or a shared screen, in 720p. Everyone in the meeting sees that it is live."
                        </p>
                        <label>
                            "Stream address"
                            <input type="url" name="live-url" prop:value=address spellcheck="false"
                                on:input=move |event| address.set(event_target_value(&event)) />
                        </label>
                        <label>
                            "Stream key"
                            <input type="password" name="live-key" prop:value=key autocomplete="off"
                                on:input=move |event| key.set(event_target_value(&event)) />
                        </label>
                        {move || problem.get().map(|problem| view! { <p class="field-error">{problem}</p> })}
                        <button class="button" type="submit" name="start-live">"Start streaming"</button>
                    </form>
                }.into_any()
            }}
        </aside>
    }
    .into_any()
}
