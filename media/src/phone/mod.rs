//! The phone leg, sans-IO: G.711 samples (`g711`, the codec every trunk speaks) and each call's codec
//! state with G.722 (`voice`), the keys a caller presses (`dtmf`: RFC 4733 telephone-events and SIP INFO
//! bodies; `tones`: keys heard in the audio), RTP packets (`rtp`) put back in order (`reorder`), the offer
//! and answer (`sdp`), the spoken prompts (`prompts`) and the conversation that collects the PIN (`ivr`).
//! The SIP gateway drives them.

pub mod dtmf;
pub mod g711;
pub mod ivr;
pub mod prompts;
pub mod reorder;
pub mod rtp;
pub mod sdp;
pub mod tones;
pub mod voice;
