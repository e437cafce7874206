//! The keys a caller presses, however the trunk sends them: RFC 4733 telephone-events in the RTP stream
//! (the usual way), or SIP INFO bodies (`application/dtmf-relay`, `application/dtmf`) from trunks that
//! send keys out of band.

/// A key from its RFC 4733 event code: 0–9, then `*`, `#` and A–D.
pub fn key(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// The RFC 4733 event code of a key (`0`–`9`, `*`, `#`, `A`–`D`).
pub fn event_of(key: char) -> Option<u8> {
    (0..16).find(|&event| self::key(event) == Some(key))
}

/// How long the gateway holds each key it presses on a phone, and the pause before the next, in 20 ms ticks.
pub const KEY_TICKS: u8 = 5;
pub const GAP_TICKS: u8 = 3;
/// Keys waiting to be pressed at most; more are dropped.
const MAX_WAITING_KEYS: usize = 64;

/// What the gateway's side of the line carries in one 20 ms tick while it presses keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    /// No key: the call's audio.
    Idle,
    /// `key`, in its `tick`th 20 ms (from 0 to [`KEY_TICKS`] - 1).
    Key { key: char, tick: u8 },
    /// Between two keys: the call's audio.
    Gap,
}

/// Keys a moderator asked to press on a phone, played out a tick at a time, sans-IO.
#[derive(Debug, Default)]
pub struct KeyPresser {
    waiting: std::collections::VecDeque<char>,
    /// The key being pressed and the ticks it has had, its gap included.
    current: Option<(char, u8)>,
}

impl KeyPresser {
    /// Presses `keys` after those waiting.
    pub fn press(&mut self, keys: &str) {
        let room = MAX_WAITING_KEYS.saturating_sub(self.waiting.len());
        self.waiting.extend(keys.chars().take(room));
    }

    /// What this tick carries.
    pub fn tick(&mut self) -> Press {
        if self.current.is_none_or(|(_, ticks)| ticks >= KEY_TICKS + GAP_TICKS) {
            self.current = self.waiting.pop_front().map(|key| (key, 0));
        }
        let Some((key, ticks)) = &mut self.current else { return Press::Idle };
        let press = if *ticks < KEY_TICKS { Press::Key { key: *key, tick: *ticks } } else { Press::Gap };
        *ticks += 1;
        press
    }
}

/// One telephone-event payload (RFC 4733 §2.3): the event, whether it has ended, and how long it has
/// lasted in RTP clock units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// The event code (a key for 0–15).
    pub event: u8,
    /// The last packets of an event carry the end bit (sent three times).
    pub end: bool,
    /// The tone's power, in -dBm0.
    pub volume: u8,
    /// How long the event has lasted so far.
    pub duration: u16,
}

impl TelephoneEvent {
    /// The payload's four bytes.
    pub fn to_bytes(self) -> [u8; 4] {
        let [high, low] = self.duration.to_be_bytes();
        [self.event, if self.end { 0x80 } else { 0 } | (self.volume & 0x3F), high, low]
    }

    /// Reads a payload; `None` when it is shorter than the 4 bytes every event has.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let [event, flags, high, low, ..] = *payload else { return None };
        Some(Self { event, end: flags & 0x80 != 0, volume: flags & 0x3F, duration: u16::from_be_bytes([high, low]) })
    }
}

/// Turns a stream of telephone-event packets into key presses, each once: all packets of one press share
/// its RTP timestamp (the start, repeated while the key is held, then the end three times), so a press is
/// a timestamp not seen just before. Reported on its first packet that arrives, so a lost start costs
/// nothing.
#[derive(Debug, Default)]
pub struct KeyReader {
    last_press: Option<u32>,
}

impl KeyReader {
    /// The key a packet (its RTP timestamp and payload) starts, if it starts one.
    pub fn on_packet(&mut self, rtp_timestamp: u32, payload: &[u8]) -> Option<char> {
        let event = TelephoneEvent::parse(payload)?;
        let key = key(event.event)?;
        if self.last_press == Some(rtp_timestamp) {
            return None;
        }
        self.last_press = Some(rtp_timestamp);
        Some(key)
    }
}

/// The key a SIP INFO body carries: `Signal=5` lines (`application/dtmf-relay`) or a bare key
/// (`application/dtmf`).
pub fn info_key(body: &str) -> Option<char> {
    let value = body
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once('=')?;
            name.trim().eq_ignore_ascii_case("signal").then_some(value)
        })
        .unwrap_or(body)
        .trim();
    let mut chars = value.chars();
    let (first, rest) = (chars.next()?, chars.next());
    match (first, rest) {
        ('0'..='9' | '*' | '#', None) => Some(first),
        ('a'..='d' | 'A'..='D', None) => Some(first.to_ascii_uppercase()),
        // Some trunks send the event code instead of the key.
        _ => value.parse::<u8>().ok().and_then(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload for `event`, ended or not, at `duration`.
    fn payload(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let [high, low] = duration.to_be_bytes();
        [event, if end { 0x80 | 10 } else { 10 }, high, low]
    }

    #[test]
    fn a_held_key_with_its_three_end_packets_is_one_press_and_the_next_press_is_another() {
        let mut reader = KeyReader::default();
        let mut pressed = String::new();
        // "1", "2", "2" (the same key twice), "#", each with its repeats and three ends.
        for (timestamp, event) in [(160, 1), (1760, 2), (3360, 2), (4960, 11)] {
            for (end, duration) in [(false, 160), (false, 320), (false, 480), (true, 640), (true, 640), (true, 640)] {
                pressed.extend(reader.on_packet(timestamp, &payload(event, end, duration)));
            }
        }
        assert_eq!(pressed, "122#");
        let mut late = KeyReader::default();
        assert_eq!(late.on_packet(9000, &payload(7, true, 800)), Some('7'), "only the end arrived");
    }

    #[test]
    fn short_payloads_and_events_that_are_not_keys_press_nothing() {
        let mut reader = KeyReader::default();
        assert_eq!(reader.on_packet(1, &[5, 0x80, 0]), None);
        assert_eq!(reader.on_packet(2, &payload(16, false, 160)), None, "16 is a tone, not a key");
        assert_eq!(
            TelephoneEvent::parse(&payload(11, true, 800)),
            Some(TelephoneEvent { event: 11, end: true, volume: 10, duration: 800 })
        );
        assert_eq!((key(10), key(15), key(200)), (Some('*'), Some('D'), None));
    }

    #[test]
    fn pressed_keys_take_five_ticks_each_with_three_between_and_read_back_as_events() {
        let mut presser = KeyPresser::default();
        assert_eq!(presser.tick(), Press::Idle);
        presser.press("1#");
        let ticks: Vec<Press> = std::iter::from_fn(|| Some(presser.tick())).take(17).collect();
        let key = |key, tick| Press::Key { key, tick };
        assert_eq!(&ticks[..5], [key('1', 0), key('1', 1), key('1', 2), key('1', 3), key('1', 4)]);
        assert_eq!(&ticks[5..8], [Press::Gap; 3]);
        assert_eq!(ticks[8], key('#', 0));
        assert_eq!(&ticks[13..], [Press::Gap, Press::Gap, Press::Gap, Press::Idle]);
        for pressed in "0123456789*#ABCD".chars() {
            let event = TelephoneEvent { event: event_of(pressed).unwrap(), end: true, volume: 10, duration: 800 };
            assert_eq!(TelephoneEvent::parse(&event.to_bytes()), Some(event));
            assert_eq!(KeyReader::default().on_packet(1, &event.to_bytes()), Some(pressed));
        }
        assert_eq!(event_of('x'), None);
        presser.press(&"1".repeat(100));
        assert_eq!(presser.waiting.len(), MAX_WAITING_KEYS, "a flood of keys is bounded");
    }

    #[test]
    fn info_bodies_give_their_key_in_either_form() {
        assert_eq!(info_key("Signal=5\r\nDuration=160\r\n"), Some('5'));
        assert_eq!(info_key("signal= #\nduration=100"), Some('#'));
        assert_eq!(info_key("*"), Some('*'));
        assert_eq!(info_key("Signal=11"), Some('#'));
        assert_eq!(info_key("d"), Some('D'));
        for nothing in ["", "Signal=", "Signal=55", "Duration=160", "hello", "Signal=E"] {
            assert_eq!(info_key(nothing), None, "{nothing:?}");
        }
    }
}
