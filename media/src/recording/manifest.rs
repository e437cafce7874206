//! What a recording's `manifest.json` says: which file holds whose track from when to when, and who was in
//! the meeting, named and muted how, and who spoke, over time. The composer lays the meeting out from it; a recording cut
//! short by a crash is finished from it.

use convene_signal::{ParticipantId, TrackSource};
use serde::{Deserialize, Serialize};

/// The manifest's format version.
pub const MANIFEST_VERSION: u32 = 1;
/// Timeline events kept at most (a meeting of a hundred people muting every minute for a day fits); later
/// ones are counted, not kept.
const MAX_EVENTS: usize = 100_000;

/// A recording's manifest. Times are milliseconds since the recording started, except the two Unix times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// The recording's id.
    pub recording: String,
    /// The room's name.
    pub room: String,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_at_unix_ms: u64,
    /// When it stopped (absent while it goes on, or when the node stopped first).
    #[serde(default)]
    pub stopped_at_unix_ms: Option<u64>,
    /// Why it stopped when nobody stopped it.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// One file per recorded track.
    pub tracks: Vec<TrackEntry>,
    /// Who was there and what they did, in order.
    pub events: Vec<TimelineEvent>,
    /// Events not kept beyond [`MAX_EVENTS`].
    #[serde(default)]
    pub events_dropped: u64,
}

/// One recorded track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackEntry {
    /// The file, in the recording's directory.
    pub file: String,
    /// Whose.
    pub participant: ParticipantId,
    /// Microphone, camera or screen.
    pub source: TrackSource,
    /// `opus`, `vp8` or `h264`.
    pub codec: String,
    /// When its first frame was written (absent until then).
    #[serde(default)]
    pub first_ms: Option<u64>,
    /// When its latest frame was written.
    #[serde(default)]
    pub last_ms: Option<u64>,
    /// Bytes written.
    pub bytes: u64,
}

/// Something that happened to someone in the meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    /// When.
    pub at_ms: u64,
    /// Who.
    pub participant: ParticipantId,
    /// What.
    #[serde(flatten)]
    pub what: Happening,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Happening {
    /// They were in the meeting (at the start) or came in.
    Joined {
        /// Their display name.
        name: String,
    },
    /// They left.
    Left,
    /// They took another name.
    Renamed {
        /// The new name.
        name: String,
    },
    /// Their microphone was muted or unmuted.
    Microphone {
        /// Muted now.
        muted: bool,
    },
    /// Their camera was turned off or on.
    Camera {
        /// Off now.
        muted: bool,
    },
    /// They became the dominant speaker (the loudest, held a moment: the stage a layout would follow).
    Speaking,
}

/// Someone in the meeting as the room sees them now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// Their id.
    pub id: ParticipantId,
    /// Display name.
    pub name: String,
    /// Microphone muted.
    pub audio_muted: bool,
    /// Camera off.
    pub video_muted: bool,
}

impl Manifest {
    /// A new recording's manifest.
    pub fn new(recording: &str, room: &str, started_at_unix_ms: u64) -> Self {
        Self {
            version: MANIFEST_VERSION,
            recording: recording.to_owned(),
            room: room.to_owned(),
            started_at_unix_ms,
            stopped_at_unix_ms: None,
            stop_reason: None,
            tracks: Vec::new(),
            events: Vec::new(),
            events_dropped: 0,
        }
    }

    /// Notes what changed between `before` and `now` (who is in the room) at `at_ms`.
    pub fn observe(&mut self, at_ms: u64, before: &[Presence], now: &[Presence]) {
        for person in now {
            let earlier = before.iter().find(|earlier| earlier.id == person.id);
            let Some(earlier) = earlier else {
                self.push(at_ms, person.id, Happening::Joined { name: person.name.clone() });
                if person.audio_muted {
                    self.push(at_ms, person.id, Happening::Microphone { muted: true });
                }
                if person.video_muted {
                    self.push(at_ms, person.id, Happening::Camera { muted: true });
                }
                continue;
            };
            if earlier.name != person.name {
                self.push(at_ms, person.id, Happening::Renamed { name: person.name.clone() });
            }
            if earlier.audio_muted != person.audio_muted {
                self.push(at_ms, person.id, Happening::Microphone { muted: person.audio_muted });
            }
            if earlier.video_muted != person.video_muted {
                self.push(at_ms, person.id, Happening::Camera { muted: person.video_muted });
            }
        }
        for gone in before.iter().filter(|earlier| !now.iter().any(|person| person.id == earlier.id)) {
            self.push(at_ms, gone.id, Happening::Left);
        }
    }

    /// Notes that `participant` became the dominant speaker at `at_ms`.
    pub fn spoke(&mut self, at_ms: u64, participant: ParticipantId) {
        self.push(at_ms, participant, Happening::Speaking);
    }

    fn push(&mut self, at_ms: u64, participant: ParticipantId, what: Happening) {
        if self.events.len() >= MAX_EVENTS {
            self.events_dropped += 1;
            return;
        }
        self.events.push(TimelineEvent { at_ms, participant, what });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn present(id: u64, name: &str, audio_muted: bool, video_muted: bool) -> Presence {
        Presence { id: ParticipantId(id), name: name.to_owned(), audio_muted, video_muted }
    }

    #[test]
    fn the_timeline_follows_who_comes_goes_renames_and_mutes() {
        let mut manifest = Manifest::new("r1", "standup", 1_700_000_000_000);
        let start = [present(1, "Ann", false, false), present(2, "Bob", true, false)];
        manifest.observe(0, &[], &start);
        let later = [present(1, "Ann B.", false, true), present(3, "Cy", false, false)];
        manifest.observe(4_000, &start, &later);
        let said: Vec<(u64, u64, Happening)> =
            manifest.events.iter().map(|event| (event.at_ms, event.participant.0, event.what.clone())).collect();
        assert_eq!(
            said,
            [
                (0, 1, Happening::Joined { name: "Ann".to_owned() }),
                (0, 2, Happening::Joined { name: "Bob".to_owned() }),
                (0, 2, Happening::Microphone { muted: true }),
                (4_000, 1, Happening::Renamed { name: "Ann B.".to_owned() }),
                (4_000, 1, Happening::Camera { muted: true }),
                (4_000, 3, Happening::Joined { name: "Cy".to_owned() }),
                (4_000, 2, Happening::Left),
            ]
        );
        let json = serde_json::to_value(&manifest.events[2]).unwrap();
        assert_eq!(json, serde_json::json!({"at_ms": 0, "participant": 2, "event": "microphone", "muted": true}));
    }

    #[test]
    fn the_timeline_is_bounded() {
        let mut manifest = Manifest::new("r1", "standup", 0);
        let (on, off) = ([present(1, "Ann", true, false)], [present(1, "Ann", false, false)]);
        for step in 0..(MAX_EVENTS as u64 / 2 + 10) {
            manifest.observe(step * 2, &off, &on);
            manifest.observe(step * 2 + 1, &on, &off);
        }
        assert_eq!(manifest.events.len(), MAX_EVENTS);
        assert_eq!(manifest.events_dropped, 20);
    }
}
