//! Before joining: camera preview, microphone meter, device pickers, the display name and how to join.

use super::*;

/// Camera preview, microphone meter, device pickers, name and how to join.
#[component]
#[allow(clippy::needless_pass_by_value, reason = "a component's props arrive by value")]
pub(super) fn PreJoin(room: RoomName, invitee: Invitee) -> impl IntoView {
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
        <leptos_meta::Title text=format!("{} · Convene", invitee.title) />
        <div class="prejoin" data-invitation="valid">
            <div class="preview">
                <video node_ref=video autoplay muted playsinline class="mirror"></video>
                <div class="meter" aria-label="Microphone level">
                    <span style=move || format!("width: {:.0}%", level.get() * 100.0)></span>
                </div>
            </div>
            <div class="prejoin-form">
                <p class="eyebrow" data-room=room.to_string()>{invitee.title.clone()}</p>
                <h1>{format!("Welcome, {}", invitee.name)}</h1>
                <p class="muted">{format!("Your invitation is valid; you join {role}, {naming}.")}</p>
                {match (invitee.recording, invitee.live_streaming) {
                    (false, false) => None,
                    (true, false) => Some("This meeting is being recorded."),
                    (false, true) => Some("This meeting is streamed live."),
                    (true, true) => Some("This meeting is being recorded and streamed live."),
                }.map(|words| view! {
                    <p class="banner recording" data-recording=invitee.recording.then_some("on")
                        data-live=invitee.live_streaming.then_some("on")>{words}</p>
                })}
                {move || problem.get().map(|problem| view! { <p class="banner error">{problem}</p> })}
                {(!invitee.fixed_name).then(|| view! {
                    <label>
                        "Your name"
                        <input type="text" name="display_name" value=invitee.name.clone() autocomplete="name"
                            maxlength=convene_signal::MAX_DISPLAY_NAME_CHARS.to_string()
                            on:input=move |event| client.choices.update(|c| c.name = Some(event_target_value(&event))) />
                    </label>
                })}
                <div class="devices">
                    <DevicePicker kind=DeviceKind::Camera name="camera" devices
                        on_pick=Callback::new(move |camera| pick(Some(camera), None)) />
                    <DevicePicker kind=DeviceKind::Microphone name="microphone" devices
                        on_pick=Callback::new(move |microphone| pick(None, Some(microphone))) />
                </div>
                <div class="join-options">
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
                </div>
                <button class="button" name="join" on:click=join>"Join the meeting"</button>
            </div>
        </div>
    }
    .into_any()
}
