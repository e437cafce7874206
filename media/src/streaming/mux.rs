//! A live stream's one Matroska stream, made in real time from a room's tapped packets. Sans-IO: packets and
//! the time go in, bytes and keyframe requests come out; the task in [`super`] feeds the bytes to ffmpeg.
//!
//! ffmpeg cannot take inputs that come and go, so the stream's tracks are fixed: track 1 is the stage's
//! video, tracks 2 and on are [`AUDIO_SLOTS`] Opus tracks that people's microphones take as they are heard.
//! Every slot sounds without a gap (the voice it holds, else Opus silence), so ffmpeg's mixer never waits on
//! a quiet input. The stage shows a shared screen, else the dominant speaker's camera, else the camera
//! shown last, else a black frame twice a second. A video comes on stage at its keyframe, asked for; until
//! then the stage shows what it showed, and a camera stays on stage a few seconds before another speaker's
//! takes its place (a shared screen takes it at once).

use std::{
    collections::{HashMap, VecDeque},
    time::{Duration, Instant},
};

use convene_signal::{ParticipantId, TrackSource};
use str0m::format::Codec;

use crate::{
    recording::{
        frames::{FrameAssembler, TrackCodec},
        webm::{TrackFormat, WebmWriter},
    },
    sfu::{RecordedPacket, allocator::Layer, speaker::Speakers},
};

/// Voices heard at once; a meeting of ten has a slot each.
pub const AUDIO_SLOTS: u8 = 10;
const VIDEO_TRACK: u8 = 1;
/// Opus's smallest frame: 20 ms of silence (CELT, full band, one frame).
const OPUS_SILENCE: [u8; 3] = [0xF8, 0xFF, 0xFE];
/// Samples a second, Opus's clock.
const OPUS_RATE: u64 = 48_000;
/// Audio is written this long after it is due, so packets a little late still make it.
const AUDIO_DELAY_MS: u64 = 60;
/// A slot holds at most this many packets; beyond, the oldest go (the stream's delay stays bounded).
const SLOT_QUEUE: usize = 15;
/// A slot whose voice has not been heard for this long may be taken by another.
const SLOT_IDLE: Duration = Duration::from_secs(2);
/// A video not seen for this long cannot be on stage.
const VIDEO_STALE: Duration = Duration::from_secs(1);
/// With nothing on stage, a black frame this often, so the encoder always has pictures.
const BLACK_EVERY_MS: u64 = 500;
/// A video waiting to come on stage asks for its keyframe again this often.
const KEYFRAME_EVERY: Duration = Duration::from_secs(1);
/// A camera stays on stage at least this long before another speaker's takes its place, so the picture does
/// not flap between two people talking in turn.
const STAGE_HOLD: Duration = Duration::from_secs(4);
/// A black VP8 keyframe of 320×180 (`ffmpeg -f lavfi -i color=black:s=320x180 -frames:v 1 -c:v libvpx -f ivf`,
/// the frame without IVF's headers).
static BLACK_FRAME: &[u8] = include_bytes!("black-320x180.vp8");

/// A microphone's place in the stream.
#[derive(Debug)]
struct Slot {
    owner: ParticipantId,
    queue: VecDeque<Vec<u8>>,
    heard: Instant,
}

/// A tapped camera or screen.
#[derive(Debug)]
struct Video {
    assembler: FrameAssembler,
    layer: Layer,
    seen: Instant,
}

/// The live stream's muxer.
#[derive(Debug)]
pub struct LiveMux {
    started: Instant,
    writer: WebmWriter,
    out: Vec<u8>,
    slots: Vec<Option<Slot>>,
    /// Each audio track's time, in Opus samples since the start: written up to here.
    audio_clock: Vec<u64>,
    videos: HashMap<(ParticipantId, TrackSource), Video>,
    speakers: Speakers<ParticipantId>,
    /// The video on stage (written since its keyframe), and since when.
    stage: Option<((ParticipantId, TrackSource), Instant)>,
    /// The video to come on stage at its next keyframe.
    next: Option<(ParticipantId, TrackSource)>,
    asked: Option<Instant>,
    last_video_ms: Option<u64>,
    keyframes: Vec<(ParticipantId, TrackSource)>,
}

impl LiveMux {
    /// A stream starting at `now`; its header is the first output.
    pub fn new(now: Instant) -> Self {
        let mut formats = vec![TrackFormat::Vp8 { width: 1280, height: 720 }];
        formats.extend((0..AUDIO_SLOTS).map(|_| TrackFormat::Opus { channels: 2 }));
        let (writer, header) = WebmWriter::with_tracks(&formats);
        Self {
            started: now,
            writer,
            out: header,
            slots: (0..AUDIO_SLOTS).map(|_| None).collect(),
            audio_clock: vec![0; usize::from(AUDIO_SLOTS)],
            videos: HashMap::new(),
            speakers: Speakers::default(),
            stage: None,
            next: None,
            asked: None,
            last_video_ms: None,
            keyframes: Vec::new(),
        }
    }

    /// One tapped packet.
    pub fn handle_packet(&mut self, packet: &RecordedPacket) {
        match packet.codec {
            Codec::Opus => self.audio(packet),
            Codec::Vp8 => self.video(packet),
            // The stage's track is VP8: an H.264 sender is heard, not seen.
            _ => {}
        }
    }

    /// Writes what is due at `now`: the audio tracks up to a moment ago, and a black frame when nothing is
    /// on stage; moves the stage when someone else should be on it.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.choose_stage(now);
        let now_ms = millis(now.saturating_duration_since(self.started));
        let due = now_ms.saturating_sub(AUDIO_DELAY_MS) * OPUS_RATE / 1000;
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let clock = &mut self.audio_clock[index];
            // After a stall (a suspended process), the gap is skipped rather than filled.
            *clock = (*clock).max(due.saturating_sub(OPUS_RATE));
            while *clock + opus_samples(&OPUS_SILENCE) <= due {
                let voice = slot.as_mut().and_then(|slot| slot.queue.pop_front());
                let data = voice.as_deref().unwrap_or(&OPUS_SILENCE);
                let track = VIDEO_TRACK + 1 + u8::try_from(index).unwrap_or(0);
                self.writer.track_frame(track, *clock * 1000 / OPUS_RATE, true, data, &mut self.out);
                *clock += opus_samples(data);
            }
        }
        if self.stage.is_none() && self.last_video_ms.is_none_or(|last| now_ms >= last + BLACK_EVERY_MS) {
            self.write_video(now_ms, true, BLACK_FRAME);
        }
    }

    /// The bytes made since last asked.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// A video whose keyframe the stage waits for.
    pub fn poll_keyframe_request(&mut self) -> Option<(ParticipantId, TrackSource)> {
        self.keyframes.pop()
    }

    fn audio(&mut self, packet: &RecordedPacket) {
        if let Some(level) = packet.audio_level {
            self.speakers.level(packet.participant, level.unsigned_abs(), packet.at);
        }
        let who = packet.participant;
        let index =
            self.slots.iter().position(|slot| slot.as_ref().is_some_and(|slot| slot.owner == who)).or_else(|| {
                // A free slot, else the one quiet longest if it has been quiet a while.
                self.slots.iter().position(Option::is_none).or_else(|| {
                    self.slots
                        .iter()
                        .enumerate()
                        .filter_map(|(index, slot)| slot.as_ref().map(|slot| (index, slot.heard)))
                        .filter(|(_, heard)| packet.at.saturating_duration_since(*heard) >= SLOT_IDLE)
                        .min_by_key(|(_, heard)| *heard)
                        .map(|(index, _)| index)
                })
            });
        // More voices than slots, all of them recent: this one is not heard until a slot frees.
        let Some(index) = index else { return };
        let slot =
            self.slots[index].get_or_insert_with(|| Slot { owner: who, queue: VecDeque::new(), heard: packet.at });
        if slot.owner != who {
            *slot = Slot { owner: who, queue: VecDeque::new(), heard: packet.at };
        }
        slot.heard = packet.at;
        if slot.queue.len() == SLOT_QUEUE {
            slot.queue.pop_front();
        }
        if opus_samples(&packet.payload) > 0 {
            slot.queue.push_back(packet.payload.to_vec());
        }
    }

    fn video(&mut self, packet: &RecordedPacket) {
        let key = (packet.participant, packet.source);
        let at = packet.at.saturating_duration_since(self.started);
        let video = self.videos.entry(key).or_insert_with(|| Video {
            assembler: FrameAssembler::new(TrackCodec::Vp8),
            layer: packet.layer,
            seen: packet.at,
        });
        if video.layer != packet.layer {
            video.layer = packet.layer;
            video.assembler.new_stream();
        }
        video.seen = packet.at;
        // The 16 bits on the wire: the assembler extends them itself.
        let seq = (packet.seq & 0xffff) as u16;
        video.assembler.push(seq, packet.timestamp, packet.marker, &packet.payload, at);
        let mut frames = Vec::new();
        while let Some(frame) = video.assembler.pop() {
            frames.push(frame);
        }
        let lost = video.assembler.needs_keyframe();
        for frame in frames {
            // Any picture is better than black: a keyframe starts an empty stage whoever it is from.
            if (self.next == Some(key) || self.stage.is_none()) && frame.keyframe {
                self.stage = Some((key, packet.at));
                self.next = None;
            }
            if self.stage.is_some_and(|(stage, _)| stage == key) {
                self.write_video(millis(frame.at), frame.keyframe, &frame.data);
            }
        }
        // The stage lost part of a picture: nothing more of it decodes until a keyframe.
        let on_stage = self.stage.is_some_and(|(stage, _)| stage == key);
        if lost
            && on_stage
            && self.asked.is_none_or(|asked| packet.at.saturating_duration_since(asked) >= KEYFRAME_EVERY)
        {
            self.asked = Some(packet.at);
            self.keyframes.push(key);
        }
    }

    fn write_video(&mut self, at_ms: u64, keyframe: bool, data: &[u8]) {
        self.writer.track_frame(VIDEO_TRACK, at_ms, keyframe, data, &mut self.out);
        self.last_video_ms = Some(at_ms.max(self.last_video_ms.unwrap_or(0)));
    }

    /// Who should be on stage now: a shared screen, else the dominant speaker's camera, else the camera on
    /// stage already, else any camera, of the videos seen a moment ago. A change waits for the new video's
    /// keyframe, and for the camera on stage to have had its few seconds.
    fn choose_stage(&mut self, now: Instant) {
        self.speakers.update(now);
        let fresh = |key: &(ParticipantId, TrackSource)| {
            self.videos.get(key).is_some_and(|video| now.saturating_duration_since(video.seen) <= VIDEO_STALE)
        };
        // A video that stopped coming leaves the stage black until another is on.
        if self.stage.is_some_and(|(stage, _)| !fresh(&stage)) {
            self.stage = None;
        }
        let mut cameras: Vec<_> = self.videos.keys().copied().filter(|key| fresh(key)).collect();
        cameras.sort_unstable_by_key(|(who, source)| (who.0, *source == TrackSource::Screen));
        let current = self.stage.map(|(stage, _)| stage);
        let screen = current
            .filter(|key| key.1 == TrackSource::Screen)
            .or_else(|| cameras.iter().copied().find(|(_, source)| *source == TrackSource::Screen));
        let speaker = self.speakers.dominant().map(|who| (who, TrackSource::Camera)).filter(|key| fresh(key));
        let Some(wanted) = screen.or(speaker).or(current).or_else(|| cameras.first().copied()) else {
            self.next = None;
            return;
        };
        let held = self.stage.is_some_and(|((_, source), since)| {
            source == TrackSource::Camera
                && wanted.1 == TrackSource::Camera
                && now.saturating_duration_since(since) < STAGE_HOLD
        });
        if Some(wanted) == current || held {
            self.next = None;
        } else if self.next != Some(wanted) {
            self.next = Some(wanted);
            self.asked = None;
        }
        if let Some(next) = self.next
            && self.asked.is_none_or(|asked| now.saturating_duration_since(asked) >= KEYFRAME_EVERY)
        {
            self.asked = Some(now);
            self.keyframes.push(next);
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// An Opus packet's length in samples at 48 kHz, from its table-of-contents byte (RFC 6716 §3.1); 0 for
/// a packet too short to have one.
fn opus_samples(packet: &[u8]) -> u64 {
    let Some(toc) = packet.first() else { return 0 };
    let config = toc >> 3;
    let frame = match config {
        // SILK: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][usize::from(config % 2)],
        // CELT: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x3 {
        0 => 1,
        1 | 2 => 2,
        _ => packet.get(1).map_or(0, |count| u64::from(count & 0x3F)),
    };
    frame * frames
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn opus_lengths_come_from_the_table_of_contents() {
        assert_eq!(opus_samples(&OPUS_SILENCE), 960);
        // SILK 60 ms, one frame; CELT 10 ms, two frames; three CELT 2.5 ms frames (code 3, count 3).
        assert_eq!(opus_samples(&[(3 << 3), 0]), 2880);
        assert_eq!(opus_samples(&[(18 << 3) | 1, 0]), 960);
        assert_eq!(opus_samples(&[(16 << 3) | 3, 3]), 360);
        assert_eq!(opus_samples(&[]), 0);
        assert_eq!(opus_samples(&[(16 << 3) | 3]), 0, "code 3 without its count");
    }

    fn voice(who: u64, n: u64, start: Instant) -> RecordedPacket {
        RecordedPacket {
            participant: ParticipantId(who),
            source: TrackSource::Microphone,
            codec: Codec::Opus,
            layer: Layer::High,
            seq: n,
            timestamp: u32::try_from(n * 960).unwrap(),
            marker: false,
            payload: Arc::from(vec![0xFC; 80]),
            audio_level: Some(-20),
            at: start + Duration::from_millis(n * 20),
        }
    }

    #[test]
    fn every_slot_sounds_without_gaps_and_voices_take_slots_as_they_are_heard() {
        let start = Instant::now();
        let mut mux = LiveMux::new(start);
        let header = mux.take_output();
        assert!(header.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]), "an EBML header");
        for n in 0..50 {
            mux.handle_packet(&voice(7, n, start));
            mux.handle_timeout(start + Duration::from_millis(n * 20));
        }
        mux.handle_timeout(start + Duration::from_millis(1000 + AUDIO_DELAY_MS));
        assert_eq!(mux.slots[0].as_ref().map(|slot| slot.owner), Some(ParticipantId(7)));
        assert!(mux.slots[1..].iter().all(Option::is_none));
        // A second of every slot's audio, 50 frames each, and black frames twice a second.
        assert!(mux.audio_clock.iter().all(|clock| *clock == OPUS_RATE), "{:?}", mux.audio_clock);
        let out = mux.take_output();
        let blocks = out.windows(2).filter(|pair| pair[0] == 0xA3).count();
        assert!(blocks > usize::from(AUDIO_SLOTS) * 50, "{blocks} blocks");
        assert_eq!(mux.poll_keyframe_request(), None, "no video, nothing to ask");
    }

    /// Frame `n` of `who`'s camera (one packet, 33 ms apart): a 640×360 VP8 keyframe or an interframe.
    fn camera(who: u64, n: u64, keyframe: bool, start: Instant) -> RecordedPacket {
        let mut payload = if keyframe {
            vec![0x10, 0x50, 0x2c, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0x68, 0x01]
        } else {
            vec![0x10, 0x51, 0x2c, 0x00]
        };
        payload.resize(200, 0);
        RecordedPacket {
            participant: ParticipantId(who),
            source: TrackSource::Camera,
            codec: Codec::Vp8,
            layer: Layer::Medium,
            seq: n,
            timestamp: u32::try_from(n * 3000).unwrap(),
            marker: true,
            payload: Arc::from(payload),
            audio_level: None,
            at: start + Duration::from_millis(n * 33),
        }
    }

    #[test]
    fn the_stage_takes_the_first_picture_then_the_speaker_after_a_hold_at_their_keyframe() {
        let start = Instant::now();
        let mut mux = LiveMux::new(start);
        let mut asked = Vec::new();
        let on_stage = |mux: &LiveMux| mux.stage.map(|((who, _), _)| who.0);
        // Ann's camera starts with a keyframe; Bob's was joined mid-picture and sends one only when asked
        // (here, at frame 160: 5.3 s). Bob speaks throughout.
        for n in 0..200 {
            let now = start + Duration::from_millis(n * 33);
            mux.handle_packet(&camera(1, n, n == 0, start));
            mux.handle_packet(&camera(2, n, n == 160, start));
            let mut loud = voice(2, n, start);
            loud.at = now;
            loud.audio_level = Some(-10);
            mux.handle_packet(&loud);
            mux.handle_timeout(now);
            asked.extend(std::iter::from_fn(|| mux.poll_keyframe_request()));
            match n {
                30 | 120 => assert_eq!(on_stage(&mux), Some(1), "at frame {n}: Ann's picture, the first, holds"),
                199 => assert_eq!(on_stage(&mux), Some(2), "Bob's camera, at its keyframe after the hold"),
                _ => {}
            }
        }
        assert!(asked.contains(&(ParticipantId(2), TrackSource::Camera)), "{asked:?}");
        let out = mux.take_output();
        assert!(out.windows(BLACK_FRAME.len()).all(|window| window != BLACK_FRAME), "never black once a picture came");
    }

    #[test]
    fn the_quietest_voice_gives_its_slot_up_when_all_are_taken() {
        let start = Instant::now();
        let mut mux = LiveMux::new(start);
        for who in 0..u64::from(AUDIO_SLOTS) {
            mux.handle_packet(&voice(who, 0, start));
        }
        // Everyone was heard just now: an eleventh voice waits.
        mux.handle_packet(&voice(99, 1, start));
        assert!(mux.slots.iter().flatten().all(|slot| slot.owner.0 != 99));
        // Three seconds on, the others went quiet but person 4: the longest quiet slot goes to 99.
        let later = start + Duration::from_secs(3);
        let mut four = voice(4, 0, later);
        four.at = later;
        mux.handle_packet(&four);
        let mut newcomer = voice(99, 0, later);
        newcomer.at = later + Duration::from_millis(20);
        mux.handle_packet(&newcomer);
        let owners: Vec<u64> = mux.slots.iter().flatten().map(|slot| slot.owner.0).collect();
        assert!(owners.contains(&99) && owners.contains(&4), "{owners:?}");
    }
}
