//! The phone leg, sans-IO: G.711 samples (`g711`, the codec every trunk speaks), the keys a caller presses
//! (`dtmf`: RFC 4733 telephone-events and SIP INFO bodies), RTP packets (`rtp`), the offer and answer
//! (`sdp`), the spoken prompts (`prompts`) and the conversation that collects the PIN (`ivr`). The SIP
//! gateway drives them.

pub mod dtmf;
pub mod g711;
pub mod ivr;
pub mod prompts;
pub mod rtp;
pub mod sdp;
