//! The phone leg's audio, sans-IO: G.711 samples (`g711`, the codec every trunk speaks) and the keys a
//! caller presses (`dtmf`: RFC 4733 telephone-events and SIP INFO bodies). The SIP gateway builds its PIN
//! prompt and its mix on these.

pub mod dtmf;
pub mod g711;
