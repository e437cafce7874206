//! Meetings: the rooms an organisation owns, the meetings it schedules in them, the room tokens that let
//! people in, the admission step every joiner passes, and the sessions and recordings the media node reports.

pub mod admission;
pub mod recordings;
pub mod removals;
pub mod room_sessions;
pub mod room_tokens;
pub mod rooms;
pub mod schedule;
pub mod scheduled;
