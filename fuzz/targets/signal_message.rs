//! Signalling messages as the node reads each WebSocket text frame (each one read is read the same way
//! again once written out), and the display names in them.
#![no_main]

use convene_signal::ClientMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(message) = ClientMessage::parse(text)
        && let Ok(again) = serde_json::to_string(&message)
    {
        // What the node understood is what it would say it understood.
        assert_eq!(ClientMessage::parse(&again).ok(), Some(message));
    }
    let _ = convene_signal::display_name(text);
});
