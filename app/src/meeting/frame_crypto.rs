//! Hooks the frame worker (`assets/e2ee-worker.js`) into the media: every sender's frames go through it to
//! be encrypted and every receiver's to be decrypted, with `RTCRtpScriptTransform` where the browser has it
//! and Chromium's older encoded streams where only those exist. The keys come from `keys`.

use convene_signal::ParticipantId;
use js_sys::{Array, Function, Reflect, Uint8Array};
use serde_json::json;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::Worker;

use super::{
    browser::{BrowserError, field, from_json},
    keys::Install,
};

/// Where the worker script is served (same origin, as workers must be).
const WORKER_URL: &str = "/e2ee-worker.js";

/// How frames reach the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `RTCRtpScriptTransform`: the browser runs the transform in the worker.
    ScriptTransform,
    /// `createEncodedStreams()`: the page hands the frame streams to the worker.
    EncodedStreams,
}

/// The frame worker of an end-to-end encrypted meeting.
pub struct FrameCrypto {
    worker: Worker,
    mode: Mode,
    me: ParticipantId,
}

impl FrameCrypto {
    /// Starts the worker; fails with words for the person when the browser cannot transform frames.
    pub fn start(me: ParticipantId) -> Result<Self, BrowserError> {
        let window = web_sys::window().ok_or_else(|| BrowserError("no window".to_owned()))?;
        let mode = if !field(&window, "RTCRtpScriptTransform").is_undefined() {
            Mode::ScriptTransform
        } else if !field(&field(&field(&window, "RTCRtpSender"), "prototype"), "createEncodedStreams").is_undefined() {
            Mode::EncodedStreams
        } else {
            return Err(BrowserError(
                "this browser cannot encrypt media end to end; use a current Chrome, Edge, Firefox or Safari".into(),
            ));
        };
        Ok(Self { worker: Worker::new(WORKER_URL)?, mode, me })
    }

    /// The peer connection settings the mode needs.
    pub fn configuration(&self) -> serde_json::Value {
        json!({ "encodedInsertableStreams": self.mode == Mode::EncodedStreams })
    }

    /// Hands a key to the worker.
    pub fn install(&self, install: &Install) {
        let participant =
            if install.participant == self.me { "me".to_owned() } else { install.participant.0.to_string() };
        let message: JsValue = from_json(&json!({ "type": "key", "participant": participant, "index": install.index }));
        let _ = Reflect::set(&message, &"key".into(), &Uint8Array::from(&install.key[..]));
        let _ = self.worker.post_message(&message);
    }

    /// Encrypts what a sender sends.
    pub fn encrypt(&self, sender: &web_sys::RtcRtpSender) -> Result<(), BrowserError> {
        self.attach(sender, &json!({ "operation": "encrypt" }))
    }

    /// Decrypts what a receiver gets from `participant`.
    pub fn decrypt(&self, receiver: &web_sys::RtcRtpReceiver, participant: ParticipantId) -> Result<(), BrowserError> {
        self.attach(receiver, &json!({ "operation": "decrypt", "participant": participant.0 }))
    }

    fn attach(&self, target: &JsValue, options: &serde_json::Value) -> Result<(), BrowserError> {
        let window = web_sys::window().ok_or_else(|| BrowserError("no window".to_owned()))?;
        match self.mode {
            Mode::ScriptTransform => {
                let constructor = field(&window, "RTCRtpScriptTransform").unchecked_into::<Function>();
                let arguments = Array::of2(&self.worker, &from_json::<JsValue>(options));
                let transform = Reflect::construct(&constructor, &arguments)?;
                Reflect::set(target, &"transform".into(), &transform)?;
            }
            Mode::EncodedStreams => {
                let create = field(target, "createEncodedStreams").unchecked_into::<Function>();
                let streams = create.call0(target)?;
                let (readable, writable) = (field(&streams, "readable"), field(&streams, "writable"));
                let message: JsValue = from_json(&json!({ "type": "streams" }));
                for (name, value) in [("readable", &readable), ("writable", &writable)] {
                    Reflect::set(&message, &name.into(), value)?;
                }
                for (name, value) in options.as_object().into_iter().flatten() {
                    Reflect::set(&message, &name.as_str().into(), &from_json::<JsValue>(value))?;
                }
                self.worker.post_message_with_transfer(&message, &Array::of2(&readable, &writable))?;
            }
        }
        Ok(())
    }
}

impl Drop for FrameCrypto {
    fn drop(&mut self) {
        self.worker.terminate();
    }
}
