//! Who speaks, from the audio-level header extension (RFC 6464: 0 is the loudest, 127 silence, in -dBov):
//! the dominant speaker, the order in which people last spoke (the allocator's priority order), and whether
//! someone's audio is worth forwarding at all.

use std::{
    collections::HashMap,
    hash::Hash,
    time::{Duration, Instant},
};

/// Levels quieter than this (in -dBov) are silence: background noise, not speech.
const SPEECH_LEVEL: u8 = 70;
/// Audio keeps being forwarded this long after the last speech, so words' tails and breaths are heard.
const HANGOVER: Duration = Duration::from_millis(800);
/// Weight of one packet (20 ms) in the smoothed loudness: about a 200 ms memory.
const SMOOTHING: f32 = 0.1;
/// Without packets for this long, a participant counts as silent (DTX, or gone).
const STALE: Duration = Duration::from_millis(300);
/// A new dominant speaker must be this much louder than the current one...
const MARGIN: f32 = 1.25;
/// ...and the stage does not move more often than this, so it does not flap between two talkers.
const HOLD: Duration = Duration::from_millis(1200);

#[derive(Debug, Clone, Copy)]
struct Activity {
    loudness: f32,
    last_packet: Instant,
    last_speech: Option<Instant>,
}

/// The room's speakers.
#[derive(Debug)]
pub struct Speakers<K> {
    activity: HashMap<K, Activity>,
    dominant: Option<(K, Instant)>,
    /// Most recent dominant speaker first.
    history: Vec<K>,
}

impl<K> Default for Speakers<K> {
    fn default() -> Self {
        Self { activity: HashMap::new(), dominant: None, history: Vec::new() }
    }
}

impl<K: Copy + Eq + Hash> Speakers<K> {
    /// One audio packet's level from `who`.
    pub fn level(&mut self, who: K, level: u8, now: Instant) {
        let loudness = f32::from(127u8.saturating_sub(level.min(127)));
        let activity =
            self.activity.entry(who).or_insert(Activity { loudness: 0.0, last_packet: now, last_speech: None });
        activity.loudness += SMOOTHING * (loudness - activity.loudness);
        activity.last_packet = now;
        if level < SPEECH_LEVEL {
            activity.last_speech = Some(now);
        }
    }

    /// Whether `who`'s audio should be forwarded now: they speak, or did a moment ago.
    pub fn is_audible(&self, who: K, now: Instant) -> bool {
        self.activity
            .get(&who)
            .and_then(|activity| activity.last_speech)
            .is_some_and(|speech| now.saturating_duration_since(speech) <= HANGOVER)
    }

    /// `who`'s smoothed loudness (127 minus the level), if they were heard.
    pub fn loudness(&self, who: K) -> Option<f32> {
        self.activity.get(&who).map(|activity| activity.loudness)
    }

    /// Someone left.
    pub fn remove(&mut self, who: K) {
        self.activity.remove(&who);
        self.history.retain(|other| *other != who);
        if self.dominant.is_some_and(|(dominant, _)| dominant == who) {
            self.dominant = None;
        }
    }

    /// The dominant speaker.
    pub fn dominant(&self) -> Option<K> {
        self.dominant.map(|(who, _)| who)
    }

    /// People who have been the dominant speaker, most recent first.
    pub fn recent(&self) -> &[K] {
        &self.history
    }

    /// Re-evaluates the dominant speaker; returns the new one when it changed.
    pub fn update(&mut self, now: Instant) -> Option<K> {
        let current = |who: &K, activity: &Activity| {
            let fresh = now.saturating_duration_since(activity.last_packet) <= STALE;
            let speaking = activity.last_speech.is_some_and(|speech| now.saturating_duration_since(speech) <= HANGOVER);
            (fresh && speaking).then_some((*who, activity.loudness))
        };
        let loudest = self
            .activity
            .iter()
            .filter_map(|(who, activity)| current(who, activity))
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        if let Some((dominant, since)) = self.dominant {
            if dominant == loudest.0 || now.saturating_duration_since(since) < HOLD {
                return None;
            }
            let dominant_loudness =
                self.activity.get(&dominant).and_then(|activity| current(&dominant, activity)).map_or(0.0, |(_, l)| l);
            if loudest.1 < dominant_loudness * MARGIN {
                return None;
            }
        }
        self.dominant = Some((loudest.0, now));
        self.history.retain(|other| *other != loudest.0);
        self.history.insert(0, loudest.0);
        Some(loudest.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn talk(speakers: &mut Speakers<u32>, levels: &[(u32, u8)], from: Instant, packets: u32) -> Instant {
        let mut now = from;
        for _ in 0..packets {
            now += Duration::from_millis(20);
            for (who, level) in levels {
                speakers.level(*who, *level, now);
            }
        }
        now
    }

    #[test]
    fn the_loudest_speaker_takes_the_stage_and_keeps_it_against_noise() {
        let mut speakers = Speakers::default();
        let start = Instant::now();
        let now = talk(&mut speakers, &[(1, 30), (2, 127), (3, 100)], start, 50);
        assert_eq!(speakers.update(now), Some(1));
        assert!(speakers.is_audible(1, now));
        assert!(!speakers.is_audible(2, now), "silence is not forwarded");
        assert!(!speakers.is_audible(3, now), "background noise is not forwarded");
        // Someone else speaks up, as loud, for two seconds: the stage moves.
        let now = talk(&mut speakers, &[(1, 127), (2, 30)], now, 100);
        assert_eq!(speakers.update(now), Some(2));
        assert_eq!(speakers.recent(), &[2, 1]);
        assert!(speakers.is_audible(1, now - Duration::from_millis(1500)));
        assert!(!speakers.is_audible(1, now));
    }

    #[test]
    fn the_stage_does_not_flap_between_two_talkers() {
        let mut speakers = Speakers::default();
        let now = talk(&mut speakers, &[(1, 30), (2, 40)], Instant::now(), 50);
        assert_eq!(speakers.update(now), Some(1));
        // Two is briefly louder: within the hold time nothing moves.
        let now = talk(&mut speakers, &[(1, 40), (2, 30)], now, 10);
        assert_eq!(speakers.update(now), None);
        // Slightly louder for longer is still not enough of a margin.
        let now = talk(&mut speakers, &[(1, 32), (2, 30)], now, 100);
        assert_eq!(speakers.update(now), None);
        assert_eq!(speakers.dominant(), Some(1));
    }

    #[test]
    fn people_who_leave_or_go_quiet_give_up_the_stage() {
        let mut speakers = Speakers::default();
        let now = talk(&mut speakers, &[(1, 30)], Instant::now(), 20);
        assert_eq!(speakers.update(now), Some(1));
        speakers.remove(1);
        assert_eq!(speakers.dominant(), None);
        assert_eq!(speakers.update(now + Duration::from_secs(5)), None, "no one speaks");
    }
}
