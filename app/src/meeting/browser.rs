//! The few browser chores the meeting client repeats: awaiting a promise with a deadline, building
//! JavaScript dictionaries from JSON, and reading fields of the objects WebRTC hands back.

use std::time::Duration;

use js_sys::{Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// A browser call that failed, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserError(pub String);

impl std::fmt::Display for BrowserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<JsValue> for BrowserError {
    fn from(value: JsValue) -> Self {
        // DOMExceptions carry a name ("NotAllowedError") and a message; plain values print as strings.
        let name = field_string(&value, "name");
        let message = field_string(&value, "message").or_else(|| value.as_string());
        Self(match (name, message) {
            (Some(name), Some(message)) => format!("{name}: {message}"),
            (None, Some(message)) => message,
            (Some(name), None) => name,
            (None, None) => "the browser refused without saying why".to_owned(),
        })
    }
}

/// Awaits a promise.
pub async fn settle(promise: Promise) -> Result<JsValue, BrowserError> {
    JsFuture::from(promise).await.map_err(BrowserError::from)
}

/// Resolves after `duration`.
pub async fn sleep(duration: Duration) {
    let millis = i32::try_from(duration.as_millis()).unwrap_or(i32::MAX);
    let promise = Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            // A refused timer resolves at once rather than never.
            if window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, millis).is_err() {
                let _ = resolve.call0(&JsValue::NULL);
            }
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// A JavaScript value from JSON (constraints, encodings): shorter and clearer than a setter per field.
pub fn from_json<T: JsCast>(value: &serde_json::Value) -> T {
    // serde_json always writes valid JSON, so parsing it back cannot fail.
    js_sys::JSON::parse(&value.to_string()).unwrap_or(JsValue::NULL).unchecked_into()
}

/// A field of a JavaScript object.
pub fn field(object: &JsValue, name: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// A string field, when it is one.
pub fn field_string(object: &JsValue, name: &str) -> Option<String> {
    field(object, name).as_string()
}

/// A numeric field, when it is one.
pub fn field_number(object: &JsValue, name: &str) -> Option<f64> {
    field(object, name).as_f64()
}
