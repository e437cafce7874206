//! One mixer per meeting with callers in it. The room's voices are tapped from the SFU (every microphone,
//! as a recorder gets them, and no video); each 20 ms the mixer decodes the few loudest (by the RFC 6464
//! level each packet carries, judged as the SFU judges speech) once for the whole meeting, at each rate
//! callers use, and hands every caller the sum without their own voice. So the cost of hearing a meeting
//! grows with its speakers, not with its callers times its speakers.
//!
//! [`MeetingMix`] is the sans-IO core (packets and time in, frames out); [`Mixers`] runs one task per meeting
//! and hands each call a [`Heard`] to take its frames from.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use convene_signal::{ParticipantId, TrackSource};
use opus_rs::OpusDecoder;
use str0m::format::Codec;
use tokio::sync::mpsc;

use crate::{
    phone::voice::{MAX_FRAME, opus_sample},
    plane::TapSink,
    rooms::Rooms,
    sfu::{RecordedPacket, RoomId, speaker::Speakers},
};

/// 20 ms of audio at a call's rate (8 or 16 kHz); the first `rate / 50` samples count.
pub type Frame = [i16; MAX_FRAME];

/// Voices mixed at once: beyond three, more voices are noise, and the SFU stages the loudest few too.
const MIXED_VOICES: usize = 3;
/// Frames waiting at most in a playout: more means the sender's clock runs fast, and the oldest go.
const QUEUE: usize = 4;
/// Frames a playout waits for before it starts (or starts again after running dry): jitter costs 20 ms of
/// delay instead of gaps.
const PREBUFFER: usize = 2;
/// Ticks a playout may stay above [`PREBUFFER`] before a frame is dropped to catch up: a burst of jitter
/// fills the queue, and without this the delay it added would stay for the rest of the call.
const CATCH_UP_TICKS: u16 = 50;
/// A voice not heard for this long is forgotten (its participant left or muted).
const FORGOTTEN_AFTER: Duration = Duration::from_secs(5);
/// Packets the shard may have waiting for a meeting's mixer (a second of ten microphones); more are dropped.
const TAPPED: usize = 512;
/// Frames waiting for a call's tick: a call that stopped taking them loses the newest.
const FRAMES: usize = 8;
/// Calls joining a mixer at once.
const JOINS: usize = 64;

/// What arrives on a tick, in order, with the delay that keeps it smooth: a small queue that starts once it
/// holds [`PREBUFFER`] items and drops one after a second of holding more.
#[derive(Debug)]
pub struct Playout<T> {
    queue: VecDeque<T>,
    /// The playout has started: items are taken one a tick until the queue runs dry.
    playing: bool,
    /// Ticks in a row the queue held more than it needs.
    ahead: u16,
}

impl<T> Default for Playout<T> {
    fn default() -> Self {
        Self { queue: VecDeque::new(), playing: false, ahead: 0 }
    }
}

impl<T> Playout<T> {
    /// One more item; the oldest goes when [`QUEUE`] are waiting.
    pub fn push(&mut self, item: T) {
        if self.queue.len() == QUEUE {
            self.queue.pop_front();
        }
        self.queue.push_back(item);
    }

    /// The item for this tick, if the playout has one.
    pub fn next(&mut self) -> Option<T> {
        if !self.playing && self.queue.len() < PREBUFFER {
            return None;
        }
        self.ahead = if self.queue.len() > PREBUFFER { self.ahead + 1 } else { 0 };
        if self.ahead > CATCH_UP_TICKS {
            self.queue.pop_front();
            self.ahead = 0;
        }
        let item = self.queue.pop_front();
        self.playing = item.is_some();
        item
    }
}

/// One voice in the meeting: its packets waiting, and a decoder per rate it has been mixed at.
struct Talker {
    playout: Playout<Arc<[u8]>>,
    decoders: Vec<(i32, OpusDecoder)>,
    last_seq: Option<u64>,
    heard: Instant,
}

impl Talker {
    /// The first 20 ms of `packet` at `rate` (senders here packetise 20 ms; a longer packet is cut).
    fn decode(&mut self, rate: i32, packet: &[u8], scratch: &mut [f32]) -> Option<Frame> {
        let index = match self.decoders.iter().position(|(at, _)| *at == rate) {
            Some(index) => index,
            None => {
                self.decoders.push((rate, OpusDecoder::new(rate, 1).ok()?));
                self.decoders.len() - 1
            }
        };
        let frame = usize::try_from(rate / 50).ok()?.min(MAX_FRAME);
        // Opus packets last at most 120 ms: six frames.
        let longest = (frame * 6).min(scratch.len());
        let count = self.decoders[index].1.decode(packet, longest, &mut scratch[..longest]).ok()?;
        let mut decoded = [0; MAX_FRAME];
        for (out, sample) in decoded.iter_mut().zip(&scratch[..count.min(frame)]) {
            *out = opus_sample(*sample);
        }
        Some(decoded)
    }
}

/// A meeting's mix: its voices in, a frame per caller out every 20 ms.
pub struct MeetingMix {
    speakers: Speakers<ParticipantId>,
    talkers: HashMap<ParticipantId, Talker>,
    /// The callers and their rates.
    listeners: HashMap<ParticipantId, i32>,
    /// Decodes done so far (the cost the mixer exists to bound).
    pub decodes: u64,
    scratch: Vec<f32>,
}

impl Default for MeetingMix {
    fn default() -> Self {
        Self {
            speakers: Speakers::default(),
            talkers: HashMap::new(),
            listeners: HashMap::new(),
            decodes: 0,
            scratch: vec![0.0; MAX_FRAME * 6],
        }
    }
}

impl MeetingMix {
    /// A caller (participant `who`, whose call runs at `rate`) hears the meeting from the next tick.
    pub fn listen(&mut self, who: ParticipantId, rate: u32) {
        self.listeners.insert(who, i32::try_from(rate).unwrap_or(i32::MAX));
    }

    /// A caller stopped listening.
    pub fn leave(&mut self, who: ParticipantId) {
        self.listeners.remove(&who);
    }

    /// A packet the room's tap handed over (only microphones in Opus are voices).
    pub fn heard(&mut self, packet: &RecordedPacket) {
        if packet.codec != Codec::Opus || packet.source != TrackSource::Microphone {
            return;
        }
        let talker = self.talkers.entry(packet.participant).or_insert_with(|| Talker {
            playout: Playout::default(),
            decoders: Vec::new(),
            last_seq: None,
            heard: packet.at,
        });
        // A duplicate or a packet overtaken on the way is as good as lost.
        if talker.last_seq.is_some_and(|last| packet.seq <= last) {
            return;
        }
        talker.last_seq = Some(packet.seq);
        talker.heard = packet.at;
        talker.playout.push(Arc::clone(&packet.payload));
        if let Some(level) = packet.audio_level {
            self.speakers.level(packet.participant, level.unsigned_abs(), packet.at);
        }
    }

    /// The next 20 ms: for every caller, the loudest few voices without their own (`None`: nobody else is
    /// speaking).
    pub fn tick(&mut self, now: Instant) -> Vec<(ParticipantId, Option<Frame>)> {
        let forgotten: Vec<ParticipantId> = self
            .talkers
            .iter()
            .filter(|(_, talker)| now.saturating_duration_since(talker.heard) > FORGOTTEN_AFTER)
            .map(|(who, _)| *who)
            .collect();
        for who in forgotten {
            self.talkers.remove(&who);
            self.speakers.remove(who);
        }
        // Every playout moves on; of the voices speaking now, the loudest are mixed. A voice without levels
        // cannot be judged: it counts as speaking, after those that can.
        let mut speaking: Vec<(ParticipantId, Arc<[u8]>, f32)> = Vec::new();
        for (who, talker) in &mut self.talkers {
            let Some(packet) = talker.playout.next() else { continue };
            match self.speakers.loudness(*who) {
                Some(loudness) if self.speakers.is_audible(*who, now) => speaking.push((*who, packet, loudness)),
                Some(_) => {}
                None => speaking.push((*who, packet, 0.0)),
            }
        }
        speaking.sort_by(|a, b| b.2.total_cmp(&a.2));
        speaking.truncate(MIXED_VOICES);

        let mut rates: Vec<i32> = self.listeners.values().copied().collect();
        rates.sort_unstable();
        rates.dedup();
        let mut sums: Vec<(i32, [i32; MAX_FRAME])> = rates.iter().map(|rate| (*rate, [0; MAX_FRAME])).collect();
        // The voices of callers who are mixed, to take out of what they hear.
        let mut own: Vec<(ParticipantId, Frame)> = Vec::new();
        for (who, packet, _) in &speaking {
            let Some(talker) = self.talkers.get_mut(who) else { continue };
            for (rate, sum) in &mut sums {
                let Some(decoded) = talker.decode(*rate, packet, &mut self.scratch) else { continue };
                self.decodes += 1;
                for (total, sample) in sum.iter_mut().zip(decoded) {
                    *total += i32::from(sample);
                }
                if self.listeners.get(who) == Some(rate) {
                    own.push((*who, decoded));
                }
            }
        }
        self.listeners
            .iter()
            .map(|(who, rate)| {
                let others = speaking.iter().any(|(talker, ..)| talker != who);
                let sum = sums.iter().find(|(at, _)| at == rate).map(|(_, sum)| sum);
                let frame = sum.filter(|_| others).map(|sum| {
                    let mine = own.iter().find(|(talker, _)| talker == who).map(|(_, frame)| frame);
                    let mut frame = [0; MAX_FRAME];
                    for (index, out) in frame.iter_mut().enumerate() {
                        let total = sum[index] - mine.map_or(0, |mine| i32::from(mine[index]));
                        // The clamp keeps the sum in range; loud voices together clip rather than wrap.
                        *out = total.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
                    }
                    frame
                });
                (*who, frame)
            })
            .collect()
    }
}

/// A call's way into its meeting's mixer, held while the caller is in the room.
pub struct Heard {
    frames: mpsc::Receiver<Option<Frame>>,
    playout: Playout<Option<Frame>>,
    /// Keeps the meeting's mixer running.
    _mixer: Arc<MixerHandle>,
}

impl Heard {
    /// What the caller hears this tick, if anyone else speaks.
    pub fn next(&mut self) -> Option<Frame> {
        while let Ok(frame) = self.frames.try_recv() {
            self.playout.push(frame);
        }
        self.playout.next().flatten()
    }
}

/// A running mixer: while a call holds it, the mixer's task runs.
struct MixerHandle {
    joins: mpsc::Sender<Join>,
}

/// A call joining a mixer.
struct Join {
    who: ParticipantId,
    rate: u32,
    frames: mpsc::Sender<Option<Frame>>,
}

/// The meetings' mixers in this process, by the room's number on the media plane (a room started again is
/// another meeting).
#[derive(Default)]
pub struct Mixers(Mutex<HashMap<RoomId, Weak<MixerHandle>>>);

impl Mixers {
    /// Participant `who`, a call at `rate`, hears room `room_id` from now on, through the meeting's mixer
    /// (started for the first caller). `None` when the room's shard cannot tap it now.
    pub fn listen(&self, rooms: &Rooms, room_id: RoomId, who: ParticipantId, rate: u32) -> Option<Heard> {
        let mut running = self.0.lock().ok()?;
        running.retain(|_, mixer| mixer.strong_count() > 0);
        let mixer = match running.get(&room_id).and_then(Weak::upgrade) {
            Some(mixer) => mixer,
            None => {
                let (queue, packets) = mpsc::channel(TAPPED);
                let tap = format!("phone-mix-{room_id}");
                if !rooms.tap(room_id, tap.clone(), Some(TapSink { queue, video: false })) {
                    return None;
                }
                let (joins, joined) = mpsc::channel(JOINS);
                let mixer = Arc::new(MixerHandle { joins });
                tokio::spawn(mix_meeting(packets, joined, (rooms.clone(), room_id, tap)));
                running.insert(room_id, Arc::downgrade(&mixer));
                mixer
            }
        };
        let (sender, frames) = mpsc::channel(FRAMES);
        mixer.joins.try_send(Join { who, rate, frames: sender }).ok()?;
        Some(Heard { frames, playout: Playout::default(), _mixer: mixer })
    }
}

/// A meeting's mixer: until its last call lets go, packets in and a frame to each call every 20 ms.
async fn mix_meeting(
    mut packets: mpsc::Receiver<RecordedPacket>,
    mut joins: mpsc::Receiver<Join>,
    (rooms, room_id, tap): (Rooms, RoomId, String),
) {
    let mut mix = MeetingMix::default();
    let mut calls: HashMap<ParticipantId, mpsc::Sender<Option<Frame>>> = HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                for (who, frame) in mix.tick(Instant::now()) {
                    let Some(call) = calls.get(&who) else { continue };
                    if let Err(mpsc::error::TrySendError::Closed(_)) = call.try_send(frame) {
                        calls.remove(&who);
                        mix.leave(who);
                    }
                }
            }
            packet = packets.recv() => match packet {
                Some(packet) => mix.heard(&packet),
                // The shard let the tap go: the room is gone.
                None => break,
            },
            join = joins.recv() => match join {
                Some(Join { who, rate, frames }) => {
                    mix.listen(who, rate);
                    calls.insert(who, frames);
                }
                // Every call let go.
                None => break,
            },
        }
    }
    rooms.tap(room_id, tap, None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        phone::voice::{NARROW_FRAME, narrow_tone, opus_encoder},
        sfu::allocator::Layer,
    };

    const CALLER: ParticipantId = ParticipantId(1);
    const WIDE_CALLER: ParticipantId = ParticipantId(2);
    const BROWSER: ParticipantId = ParticipantId(3);

    /// A participant sending 20 ms Opus packets of a tone at a level.
    struct Voice {
        who: ParticipantId,
        encoder: opus_rs::OpusEncoder,
        seq: u64,
        frequency: f32,
    }

    impl Voice {
        fn new(who: ParticipantId, frequency: f32) -> Self {
            Self { who, encoder: opus_encoder(8_000).unwrap(), seq: 0, frequency }
        }

        fn packet(&mut self, level: i8, at: Instant) -> RecordedPacket {
            let amplitude = if level == 127 { 0.0 } else { 0.3 };
            let tone = narrow_tone(self.frequency, amplitude, self.seq as usize);
            let mut encoded = vec![0; 400];
            let length = self.encoder.encode_i16(&tone, NARROW_FRAME, &mut encoded).unwrap();
            encoded.truncate(length);
            self.seq += 1;
            RecordedPacket {
                participant: self.who,
                source: TrackSource::Microphone,
                codec: Codec::Opus,
                layer: Layer::Low,
                seq: self.seq,
                timestamp: (self.seq * 960) as u32,
                marker: false,
                payload: encoded.into(),
                audio_level: Some(-level),
                at,
            }
        }
    }

    #[test]
    fn a_playout_waits_for_two_items_and_again_after_running_dry() {
        let mut playout = Playout::default();
        playout.push(1);
        assert_eq!(playout.next(), None, "one item is not enough to start");
        playout.push(2);
        assert_eq!(playout.next(), Some(1));
        // Started: a single item plays on until the queue is empty.
        assert_eq!(playout.next(), Some(2));
        assert_eq!(playout.next(), None);
        playout.push(3);
        assert_eq!(playout.next(), None, "dry: it waits for two again");

        // A burst left five items queued: after a second of it, one is dropped to catch up.
        playout.queue.extend(10..14);
        assert_eq!(playout.queue.len(), 5);
        let mut played = Vec::new();
        for tick in 0..=CATCH_UP_TICKS {
            played.extend(playout.next());
            playout.queue.push_back(20 + tick);
        }
        assert_eq!(playout.queue.len(), 4, "one fewer than the burst left");
        assert_eq!(&played[..3], [3, 10, 11]);
        assert!(played.windows(2).any(|pair| pair[1] == pair[0] + 2), "one was skipped: {played:?}");
    }

    #[test]
    fn each_caller_hears_the_others_at_their_own_rate_and_never_themselves() {
        let mut mix = MeetingMix::default();
        mix.listen(CALLER, 8_000);
        mix.listen(WIDE_CALLER, 16_000);
        let (mut caller, mut browser) = (Voice::new(CALLER, 400.0), Voice::new(BROWSER, 1_000.0));
        // The voices decoded on their own: the browser at 8 kHz is all the caller may hear; both at 16 kHz,
        // summed, are what the wideband caller hears.
        let decoder =
            || Talker { playout: Playout::default(), decoders: Vec::new(), last_seq: None, heard: Instant::now() };
        let (mut browser_alone, mut browser_wide, mut caller_wide) = (decoder(), decoder(), decoder());
        let mut scratch = vec![0.0; MAX_FRAME * 6];
        let start = Instant::now();
        let mut expected = VecDeque::new();
        let mut checked = 0;
        for tick in 0..100u32 {
            let now = start + Duration::from_millis(20 * u64::from(tick));
            let (said, spoken) = (caller.packet(20, now), browser.packet(30, now));
            let narrow = browser_alone.decode(8_000, &spoken.payload, &mut scratch).unwrap();
            let (one, other) = (
                caller_wide.decode(16_000, &said.payload, &mut scratch).unwrap(),
                browser_wide.decode(16_000, &spoken.payload, &mut scratch).unwrap(),
            );
            let wide: Frame = std::array::from_fn(|index| one[index].saturating_add(other[index]));
            expected.push_back((narrow, wide));
            mix.heard(&said);
            mix.heard(&spoken);
            let frames: HashMap<ParticipantId, Option<Frame>> = mix.tick(now).into_iter().collect();
            let Some(Some(heard)) = frames.get(&CALLER) else { continue };
            // Playouts start after two packets, so the mix runs a frame behind.
            while expected.len() > 2 {
                expected.pop_front();
            }
            assert_eq!(heard, &expected[0].0, "the caller hears the browser exactly, without their own voice");
            let Some(Some(wide)) = frames.get(&WIDE_CALLER) else { panic!("the wideband caller hears both") };
            assert_eq!(wide, &expected[0].1, "the wideband caller hears the caller and the browser");
            checked += 1;
        }
        assert!(checked > 90, "{checked} ticks mixed");
        assert_eq!(mix.decodes, 2 * 2 * u64::try_from(checked).unwrap(), "each voice once per rate per tick");
    }

    #[test]
    fn only_the_three_loudest_speakers_are_decoded_and_silence_is_not_mixed() {
        let mut mix = MeetingMix::default();
        mix.listen(CALLER, 8_000);
        let mut others: Vec<Voice> =
            (10..15).map(|who| Voice::new(ParticipantId(who), 300.0 + 100.0 * who as f32)).collect();
        let start = Instant::now();
        for tick in 0..50u32 {
            let now = start + Duration::from_millis(20 * u64::from(tick));
            for (index, other) in others.iter_mut().enumerate() {
                // Levels 20, 25, 30, 35, 40 -dBov: all speech, the first three loudest.
                mix.heard(&other.packet(20 + 5 * index as i8, now));
            }
            mix.tick(now);
        }
        // 49 ticks mixed (the first waits for the playouts), three voices each.
        assert_eq!(mix.decodes, 49 * 3);

        // Everyone falls silent: after the SFU's hangover, nothing is mixed or decoded.
        let mut now = start + Duration::from_secs(1);
        let mut last = None;
        for _ in 0..100 {
            now += Duration::from_millis(20);
            for other in &mut others {
                mix.heard(&other.packet(127, now));
            }
            last = mix.tick(now).into_iter().next();
        }
        let decodes = mix.decodes;
        now += Duration::from_millis(20);
        for other in &mut others {
            mix.heard(&other.packet(127, now));
        }
        assert_eq!(last, Some((CALLER, None)));
        assert_eq!(mix.tick(now), vec![(CALLER, None)]);
        assert_eq!(mix.decodes, decodes, "silence costs no decoding");
    }

    #[test]
    fn a_caller_alone_with_their_own_voice_hears_nothing_and_gone_voices_are_forgotten() {
        let mut mix = MeetingMix::default();
        mix.listen(CALLER, 8_000);
        let mut caller = Voice::new(CALLER, 400.0);
        let start = Instant::now();
        for tick in 0..10u32 {
            let now = start + Duration::from_millis(20 * u64::from(tick));
            mix.heard(&caller.packet(20, now));
            assert_eq!(mix.tick(now), vec![(CALLER, None)]);
        }
        assert_eq!(mix.talkers.len(), 1);
        mix.tick(start + FORGOTTEN_AFTER + Duration::from_secs(1));
        assert!(mix.talkers.is_empty(), "a voice not heard for a while is forgotten");
        mix.leave(CALLER);
        assert!(mix.tick(start + FORGOTTEN_AFTER * 2).is_empty(), "a caller who left is handed nothing");
    }
}
