//! Meetings: the rooms an organisation owns, the meetings it schedules in them, the room tokens that let
//! people in, the admission step every joiner passes, the sessions and recordings the media node reports, and
//! phone dial-in's numbers and PINs.

pub mod admission;
pub mod dial_in;
pub mod recordings;
pub mod removals;
pub mod room_commands;
pub mod room_sessions;
pub mod room_tokens;
pub mod rooms;
pub mod schedule;
pub mod scheduled;
