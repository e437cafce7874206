//! The camera and microphone: capturing them with the room's quality, listing the devices to pick from
//! (speakers too), and the microphone's level for the pre-join meter.

use convene_signal::MediaQuality;
use serde_json::json;
use wasm_bindgen::JsCast;
use web_sys::{
    AnalyserNode, AudioContext, MediaDeviceInfo, MediaDeviceKind, MediaDevices, MediaStream, MediaStreamConstraints,
    MediaStreamTrack,
};

use super::browser::{BrowserError, from_json, settle};

/// The smallest camera height asked for: below it a face is no longer a face.
const MIN_HEIGHT: u32 = 240;

/// Which devices to capture (`None`: the browser's default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceChoice {
    /// A camera's device id.
    pub camera: Option<String>,
    /// A microphone's device id.
    pub microphone: Option<String>,
    /// A speaker's device id (what the meeting plays through).
    pub speaker: Option<String>,
}

/// A kind of device the person picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A video input.
    Camera,
    /// An audio input.
    Microphone,
    /// An audio output.
    Speaker,
}

impl DeviceKind {
    /// What people call it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Camera => "Camera",
            Self::Microphone => "Microphone",
            Self::Speaker => "Speaker",
        }
    }
}

impl DeviceChoice {
    /// The device chosen of a kind.
    pub fn of(&self, kind: DeviceKind) -> Option<&String> {
        match kind {
            DeviceKind::Camera => self.camera.as_ref(),
            DeviceKind::Microphone => self.microphone.as_ref(),
            DeviceKind::Speaker => self.speaker.as_ref(),
        }
    }
}

/// A device the person can pick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The browser's id for it.
    pub id: String,
    /// Its name (empty until the person allowed capture).
    pub label: String,
}

/// Cameras, microphones and speakers present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Devices {
    /// Video inputs.
    pub cameras: Vec<Device>,
    /// Audio inputs.
    pub microphones: Vec<Device>,
    /// Audio outputs.
    pub speakers: Vec<Device>,
}

impl Devices {
    /// The devices of a kind.
    pub fn of(&self, kind: DeviceKind) -> &[Device] {
        match kind {
            DeviceKind::Camera => &self.cameras,
            DeviceKind::Microphone => &self.microphones,
            DeviceKind::Speaker => &self.speakers,
        }
    }
}

fn media_devices() -> Result<MediaDevices, BrowserError> {
    let window = web_sys::window().ok_or_else(|| BrowserError("no window".to_owned()))?;
    window.navigator().media_devices().map_err(|_| {
        BrowserError("this browser gives no access to cameras and microphones (is the page served over https?)".into())
    })
}

/// The constraints for the room's quality: the camera up to its top height, and for high-fidelity audio the
/// voice processing off and two channels.
fn constraints(quality: MediaQuality, choice: &DeviceChoice) -> MediaStreamConstraints {
    let mut video = json!({
        "height": { "ideal": quality.max_height, "max": quality.max_height, "min": MIN_HEIGHT },
        "frameRate": { "ideal": 30, "max": 30 },
    });
    if let Some(camera) = &choice.camera {
        video["deviceId"] = json!({ "exact": camera });
    }
    let mut audio = if quality.high_fidelity_audio {
        json!({
            "echoCancellation": false,
            "noiseSuppression": false,
            "autoGainControl": false,
            "highpassFilter": false,
            "channelCount": 2,
        })
    } else {
        json!({ "echoCancellation": true, "noiseSuppression": true, "autoGainControl": true })
    };
    if let Some(microphone) = &choice.microphone {
        audio["deviceId"] = json!({ "exact": microphone });
    }
    from_json(&json!({ "video": video, "audio": audio }))
}

/// Asks for the camera and microphone.
pub async fn capture(quality: MediaQuality, choice: &DeviceChoice) -> Result<MediaStream, BrowserError> {
    let promise = media_devices()?.get_user_media_with_constraints(&constraints(quality, choice))?;
    Ok(settle(promise).await?.unchecked_into())
}

/// Asks for the camera or the microphone alone (switching one device in a meeting).
pub async fn capture_one(
    quality: MediaQuality,
    choice: &DeviceChoice,
    media: convene_signal::MediaKind,
) -> Result<MediaStream, BrowserError> {
    let both = constraints(quality, choice);
    let other = if media == convene_signal::MediaKind::Audio { "video" } else { "audio" };
    js_sys::Reflect::set(&both, &other.into(), &false.into())?;
    let promise = media_devices()?.get_user_media_with_constraints(&both)?;
    Ok(settle(promise).await?.unchecked_into())
}

/// Asks for a screen, window or tab to share.
pub async fn capture_screen() -> Result<MediaStream, BrowserError> {
    Ok(settle(media_devices()?.get_display_media()?).await?.unchecked_into())
}

/// The cameras, microphones and speakers present.
pub async fn devices() -> Result<Devices, BrowserError> {
    let list = settle(media_devices()?.enumerate_devices()?).await?;
    let mut found = Devices::default();
    for info in js_sys::Array::from(&list).iter() {
        let info = info.unchecked_into::<MediaDeviceInfo>();
        let device = Device { id: info.device_id(), label: info.label() };
        match info.kind() {
            MediaDeviceKind::Videoinput => found.cameras.push(device),
            MediaDeviceKind::Audioinput => found.microphones.push(device),
            MediaDeviceKind::Audiooutput => found.speakers.push(device),
            _ => {}
        }
    }
    Ok(found)
}

/// A stream's first track of a kind (`audio` or `video`).
pub fn first_track(stream: &MediaStream, kind: &str) -> Option<MediaStreamTrack> {
    let tracks = if kind == "audio" { stream.get_audio_tracks() } else { stream.get_video_tracks() };
    tracks.iter().next().map(JsCast::unchecked_into)
}

/// Stops every track of a stream (the camera light goes off).
pub fn stop(stream: &MediaStream) {
    for track in stream.get_tracks().iter() {
        track.unchecked_into::<MediaStreamTrack>().stop();
    }
}

/// The microphone's loudness, read on demand.
pub struct LevelMeter {
    context: AudioContext,
    analyser: AnalyserNode,
    samples: Vec<f32>,
}

impl LevelMeter {
    /// Listens to a stream's audio.
    pub fn new(stream: &MediaStream) -> Result<Self, BrowserError> {
        let context = AudioContext::new()?;
        let source = context.create_media_stream_source(stream)?;
        let analyser = context.create_analyser()?;
        analyser.set_fft_size(512);
        source.connect_with_audio_node(&analyser)?;
        let samples = vec![0.0; analyser.fft_size() as usize];
        Ok(Self { context, analyser, samples })
    }

    /// The level now, 0 (silence) to 1 (loud speech and above).
    pub fn level(&mut self) -> f64 {
        self.analyser.get_float_time_domain_data(&mut self.samples);
        let energy: f32 = self.samples.iter().map(|sample| sample * sample).sum();
        let rms = f64::from((energy / self.samples.len().max(1) as f32).sqrt());
        // Speech sits around 0.05-0.3 RMS; scale so a normal voice fills most of the meter.
        (rms * 4.0).min(1.0)
    }
}

impl Drop for LevelMeter {
    fn drop(&mut self) {
        let _ = self.context.close();
    }
}
