//! What the person hears besides the others: the chime (someone knocking, or the settings' test sound) and
//! the speaker the meeting plays through, where the browser lets a page choose one (`setSinkId`).

use std::time::Duration;

use leptos::prelude::set_timeout;
use wasm_bindgen::{JsCast, JsValue};

/// A short rising two-note chime, through `speaker` when one is chosen (else the default output).
pub fn chime(speaker: Option<&str>) {
    let Ok(context) = web_sys::AudioContext::new() else { return };
    if let Some(speaker) = speaker {
        play_to(&context, speaker);
    }
    // A little later than now, so a speaker switch has taken effect before the first note.
    let start = context.current_time() + 0.05;
    for (index, frequency) in [660.0_f32, 880.0].into_iter().enumerate() {
        let (Ok(tone), Ok(volume)) = (context.create_oscillator(), context.create_gain()) else { return };
        let at = start + 0.16 * index as f64;
        tone.frequency().set_value(frequency);
        let envelope = volume.gain();
        let _ = envelope.set_value_at_time(0.0001, at);
        let _ = envelope.exponential_ramp_to_value_at_time(0.25, at + 0.02);
        let _ = envelope.exponential_ramp_to_value_at_time(0.0001, at + 0.35);
        let played = tone
            .connect_with_audio_node(&volume)
            .and_then(|_| volume.connect_with_audio_node(&context.destination()))
            .and_then(|_| tone.start_with_when(at))
            .and_then(|()| tone.stop_with_when(at + 0.4));
        if played.is_err() {
            return;
        }
    }
    // The context holds audio resources: close it once the chime is over.
    set_timeout(move || drop(context.close()), Duration::from_secs(1));
}

/// Whether this browser lets the page choose the speaker.
pub fn can_choose_speaker() -> bool {
    let Ok(class) = js_sys::Reflect::get(&js_sys::global(), &"HTMLMediaElement".into()) else { return false };
    js_sys::Reflect::get(&class, &"prototype".into())
        .and_then(|prototype| js_sys::Reflect::has(&prototype, &"setSinkId".into()))
        .unwrap_or(false)
}

/// Sends what `target` (a media element or an audio context) plays to the output device `speaker`. A
/// browser without `setSinkId` keeps the default output.
pub fn play_to(target: &JsValue, speaker: &str) {
    let Ok(set_sink) = js_sys::Reflect::get(target, &"setSinkId".into()) else { return };
    if let Some(set_sink) = set_sink.dyn_ref::<js_sys::Function>() {
        // The promise only fails for a device that went away; the default output goes on playing.
        let _ = set_sink.call1(target, &speaker.into());
    }
}
