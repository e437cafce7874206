//! The signalling WebSocket from the browser: `convene-signal`'s messages as JSON text frames, to and from
//! `/_signal/<room>` on the page's own host.

use std::rc::Rc;

use convene_signal::{ClientMessage, ServerMessage};
use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use web_sys::{MessageEvent, WebSocket};

use super::browser::BrowserError;

/// What the socket reports.
#[derive(Debug)]
pub enum SocketEvent {
    /// Connected: time to say `hello`.
    Opened,
    /// A message from the node.
    Message(ServerMessage),
    /// A frame that is not a server message (a newer node, or a bug): reported, not fatal.
    Unreadable(String),
    /// The connection ended (after a refusal, or lost).
    Closed,
}

/// An open (or opening) signalling connection; closing it on drop keeps a left meeting from lingering.
pub struct Signalling {
    socket: WebSocket,
    // The handlers live as long as the socket.
    _handlers: [Closure<dyn FnMut(JsValue)>; 3],
}

impl Signalling {
    /// Opens `/_signal/<room>` on the current host (wss when the page is https).
    pub fn open(room: &str, on_event: Rc<dyn Fn(SocketEvent)>) -> Result<Self, BrowserError> {
        let location = web_sys::window().ok_or_else(|| BrowserError("no window".to_owned()))?.location();
        let scheme = if location.protocol()? == "https:" { "wss" } else { "ws" };
        let url = format!("{scheme}://{}/_signal/{room}", location.host()?);
        let socket = WebSocket::new(&url)?;
        let opened = {
            let on_event = on_event.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |_| on_event(SocketEvent::Opened))
        };
        let message = {
            let on_event = on_event.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
                let text = event.unchecked_into::<MessageEvent>().data().as_string().unwrap_or_default();
                on_event(match serde_json::from_str::<ServerMessage>(&text) {
                    Ok(message) => SocketEvent::Message(message),
                    Err(error) => SocketEvent::Unreadable(error.to_string()),
                });
            })
        };
        let closed = Closure::<dyn FnMut(JsValue)>::new(move |_| on_event(SocketEvent::Closed));
        socket.set_onopen(Some(opened.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(message.as_ref().unchecked_ref()));
        socket.set_onclose(Some(closed.as_ref().unchecked_ref()));
        Ok(Self { socket, _handlers: [opened, message, closed] })
    }

    /// Sends a message; false when the socket is not open.
    pub fn send(&self, message: &ClientMessage) -> bool {
        // Serialising these types cannot fail: every field is a string, number, bool or list of them.
        let text = serde_json::to_string(message).unwrap_or_default();
        self.socket.ready_state() == WebSocket::OPEN && self.socket.send_with_str(&text).is_ok()
    }
}

impl Drop for Signalling {
    fn drop(&mut self) {
        self.socket.set_onopen(None);
        self.socket.set_onmessage(None);
        self.socket.set_onclose(None);
        let _ = self.socket.close();
    }
}
