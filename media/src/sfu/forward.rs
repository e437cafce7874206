//! The forwarding path: a decrypted packet is classified (track, layer, codec, keyframe), counted into its
//! room, ranked for speech, and written into each receiver's session that selected its layer, rewritten to
//! one continuous stream; a receiver waiting to switch layers asks the publisher for a keyframe instead.

use std::time::Instant;

use convene_signal::TrackSource;
use str0m::{
    format::Codec,
    media::{KeyframeRequestKind, MediaKind, Mid, Rid},
    rtp::{ExtensionValues, RtpPacket, RtpWrite, Vp8Descriptor},
};

use super::{
    AUDIO_CLOCK, PeerKey, Sfu, SfuOutput, VIDEO_CLOCK,
    allocator::Layer,
    peer::{self, Peer},
    record::Tapped,
    rewrite::Incoming,
};

/// A packet on its way from a publisher to the room.
pub(super) struct Forward {
    pub(super) from: PeerKey,
    pub(super) mid: Mid,
    pub(super) kind: MediaKind,
    pub(super) source: TrackSource,
    pub(super) layer: Layer,
    pub(super) codec: Option<str0m::format::CodecSpec>,
    pub(super) keyframe: bool,
    /// VP8's payload descriptor, read once here rather than once per receiver.
    pub(super) vp8: Option<Vp8Descriptor>,
    /// Kept in str0m's box, so that its 408 bytes are not copied again on the way through `Sfu::forwards`.
    pub(super) packet: Box<RtpPacket>,
}

impl Sfu {
    /// Forwards the packets drained so far to every receiver in their room that wants them, then drains the
    /// receivers' sessions (which encrypt them) and sends keyframe requests upstream.
    pub(super) fn forward(&mut self, now: Instant) {
        // Draining a receiver can yield its own incoming packets; a few rounds settle everything.
        for _ in 0..4 {
            if self.forwards.is_empty() && self.keyframes.is_empty() {
                break;
            }
            let mut forwards = std::mem::take(&mut self.forwards);
            for forward in forwards.drain(..) {
                self.fan_out(&forward, now);
            }
            self.forwards = forwards;
            self.send_keyframe_requests(now);
            let mut touched = std::mem::take(&mut self.touched);
            touched.sort_unstable();
            touched.dedup();
            for receiver in touched.drain(..) {
                self.drain(receiver, now);
            }
            self.touched = touched;
        }
    }

    fn fan_out(&mut self, forward: &Forward, now: Instant) {
        let Some(room) = self.rooms.get_mut(&forward.from.room) else { return };
        room.traffic.packets_in += 1;
        room.traffic.bytes_in += forward.packet.payload.len() as u64;
        let level = forward.packet.header.ext_vals.audio_level;
        if forward.kind == MediaKind::Audio
            && let Some(level) = level
        {
            room.speakers.level(forward.from.participant, level.unsigned_abs(), now);
        }
        // Without the audio-level extension there is no telling silence: everything is forwarded.
        let audible = level.is_none() || room.speakers.is_audible(forward.from.participant, now);
        for member in &room.members {
            if *member == forward.from.participant {
                continue;
            }
            let receiver_key = PeerKey { room: forward.from.room, participant: *member };
            let Some(receiver) = self.peers.get_mut(&receiver_key) else { continue };
            match send(receiver, forward, audible, now) {
                Sent::Packet(bytes) => {
                    room.traffic.packets_out += 1;
                    room.traffic.bytes_out += bytes as u64;
                    self.touched.push(receiver_key);
                }
                Sent::WaitingForKeyframe => self.keyframes.push((forward.from, forward.source, forward.layer)),
                Sent::Nothing => {}
            }
        }
        if let Some(tap) = room.recording.as_mut() {
            match tap.tap(forward, now) {
                Tapped::Record(packet) => self.output.push_back(SfuOutput::Record { room: forward.from.room, packet }),
                Tapped::WantsKeyframe(layer) => self.keyframes.push((forward.from, forward.source, layer)),
                Tapped::Skip => {}
            }
        }
    }

    /// Sends the queued keyframe requests, at most one per layer per interval.
    pub(super) fn send_keyframe_requests(&mut self, now: Instant) {
        let mut requests = std::mem::take(&mut self.keyframes);
        requests.sort_unstable_by_key(|(key, source, layer)| (*key, *source as u8, *layer));
        requests.dedup();
        for (key, source, layer) in requests.drain(..) {
            let Some(peer) = self.peers.get_mut(&key) else { continue };
            let Some(ingress) =
                peer.ingress.iter_mut().find(|ingress| ingress.source == source && ingress.kind == MediaKind::Video)
            else {
                continue;
            };
            if !ingress.layers[layer.index()].keyframe_due(now) {
                continue;
            }
            let mid = ingress.mid;
            let mut api = peer.rtc.direct_api();
            // Simulcast streams are found by RID; a single-layer stream has none.
            let rid = Rid::from(layer_rid(layer));
            let found = if api.stream_rx_by_mid(mid, Some(rid)).is_some() { Some(rid) } else { None };
            if let Some(stream) = api.stream_rx_by_mid(mid, found) {
                stream.request_keyframe(KeyframeRequestKind::Pli);
                if let Some(room) = self.rooms.get_mut(&key.room) {
                    room.traffic.keyframe_requests += 1;
                }
                self.touched.push(key);
            }
        }
        self.keyframes = requests;
    }
}

/// What happened to a packet at one receiver.
enum Sent {
    Packet(usize),
    WaitingForKeyframe,
    Nothing,
}

/// Writes a forwarded packet into one receiver's session, if it wants it.
fn send(receiver: &mut Peer, forward: &Forward, audible: bool, now: Instant) -> Sent {
    let Some(egress) = receiver
        .egress
        .iter_mut()
        .find(|egress| egress.from == forward.from.participant && egress.source == forward.source)
    else {
        return Sent::Nothing;
    };
    let Some(mid) = egress.open_mid() else { return Sent::Nothing };
    let descriptor = forward.vp8;
    let incoming = Incoming {
        seq: *forward.packet.seq_no,
        time: forward.packet.header.timestamp,
        picture_id: descriptor.and_then(|descriptor| descriptor.picture_id()),
        tl0_pic_idx: descriptor.and_then(|descriptor| descriptor.tl0_pic_idx()),
    };
    let clock = if forward.kind == MediaKind::Audio { AUDIO_CLOCK } else { VIDEO_CLOCK };
    let elapsed = egress.last_sent.map_or(0, |last| {
        let micros = u64::try_from(now.saturating_duration_since(last).as_micros()).unwrap_or(u64::MAX);
        u32::try_from(micros.saturating_mul(clock) / 1_000_000).unwrap_or(u32::MAX)
    });
    if forward.kind == MediaKind::Audio {
        match (audible, egress.rewriter.is_forwarding()) {
            (false, true) => {
                egress.rewriter.stop();
                return Sent::Nothing;
            }
            (false, false) => return Sent::Nothing,
            (true, false) => egress.rewriter.switch(incoming, elapsed),
            (true, true) => {}
        }
    } else if egress.current != Some(forward.layer) {
        if egress.target != Some(forward.layer) {
            return Sent::Nothing;
        }
        if !forward.keyframe {
            return Sent::WaitingForKeyframe;
        }
        egress.current = Some(forward.layer);
        egress.rewriter.switch(incoming, elapsed);
    }
    let Some(rewritten) = egress.rewriter.rewrite(incoming) else { return Sent::Nothing };
    let Some(codec) = forward.codec else { return Sent::Nothing };
    let pt = match egress.payload_types.iter().find(|(incoming, _)| *incoming == forward.packet.header.payload_type) {
        Some((_, outgoing)) => *outgoing,
        None => {
            let Some(outgoing) = peer::payload_type_for(&receiver.rtc, codec) else { return Sent::Nothing };
            egress.payload_types.push((forward.packet.header.payload_type, outgoing));
            outgoing
        }
    };
    let ext_vals = ExtensionValues {
        audio_level: forward.packet.header.ext_vals.audio_level,
        voice_activity: forward.packet.header.ext_vals.voice_activity,
        video_orientation: forward.packet.header.ext_vals.video_orientation,
        ..ExtensionValues::default()
    };
    let mut write = RtpWrite::new(
        pt,
        rewritten.seq.into(),
        rewritten.time,
        forward.packet.timestamp,
        forward.packet.payload.clone(),
    )
    .marker(forward.packet.header.marker)
    .ext_vals(ext_vals)
    .nackable(forward.kind == MediaKind::Video);
    if let (Some(descriptor), Some(picture_id)) = (descriptor, rewritten.picture_id) {
        let mut patch = descriptor.patch().picture_id(picture_id);
        if let Some(tl0) = rewritten.tl0_pic_idx {
            patch = patch.tl0_pic_idx(tl0);
        }
        match patch.build() {
            Ok(patch) => write = write.vp8_patch(patch),
            // A 7-bit picture id: keep it 7 bits.
            Err(_) => {
                if let Ok(patch) = descriptor.patch().picture_id(picture_id & 0x7f).build() {
                    write = write.vp8_patch(patch);
                }
            }
        }
    }
    let mut api = receiver.rtc.direct_api();
    let Some(stream) = api.stream_tx_by_mid(mid, None) else { return Sent::Nothing };
    stream.write_rtp(write);
    egress.last_sent = Some(now);
    egress.packets += 1;
    Sent::Packet(forward.packet.payload.len())
}

/// Reads what an incoming packet is: which track and layer, which codec, whether it starts a keyframe.
pub(super) fn classify(from: PeerKey, peer: &mut Peer, packet: Box<RtpPacket>) -> Option<Forward> {
    let (mid, rid) = {
        let mut api = peer.rtc.direct_api();
        let stream = api.stream_rx(&packet.header.ssrc)?;
        (stream.mid(), stream.rid())
    };
    let ingress = peer.ingress.iter().find(|ingress| ingress.mid == mid)?;
    let layer = Layer::from_rid(rid.as_deref())?;
    let codec = peer.codec_of(packet.header.payload_type);
    let vp8 = match codec.map(|codec| codec.codec) {
        Some(Codec::Vp8) => Vp8Descriptor::parse(&packet.payload).ok(),
        _ => None,
    };
    let keyframe = codec.is_some_and(|codec| starts_keyframe(codec.codec, &packet.payload));
    Some(Forward { from, mid, kind: ingress.kind, source: ingress.source, layer, codec, keyframe, vp8, packet })
}

fn layer_rid(layer: Layer) -> &'static str {
    match layer {
        Layer::Low => "q",
        Layer::Medium => "h",
        Layer::High => "f",
    }
}

/// Whether an RTP payload of `codec` starts a keyframe: where a receiver can start decoding, so a
/// simulcast switch waits for one. Only the payload's first bytes are read (VP8's payload descriptor stays
/// in the clear in end-to-end encrypted rooms); they come from a sender, so every length is checked.
pub fn starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => Vp8Descriptor::parse(payload).is_ok_and(|descriptor| descriptor.starts_keyframe(payload)),
        Codec::H264 => h264_starts_keyframe(payload),
        _ => false,
    }
}

/// Whether an H.264 RTP payload (RFC 6184) starts an IDR picture or carries its parameter sets.
fn h264_starts_keyframe(payload: &[u8]) -> bool {
    const IDR: u8 = 5;
    const SPS: u8 = 7;
    const STAP_A: u8 = 24;
    const FU_A: u8 = 28;
    let Some(header) = payload.first() else { return false };
    match header & 0x1f {
        IDR | SPS => true,
        STAP_A => {
            let mut rest = &payload[1..];
            while let [high, low, body @ ..] = rest {
                let size = usize::from(u16::from_be_bytes([*high, *low]));
                let Some(nal) = body.get(..size) else { return false };
                if nal.first().is_some_and(|nal| matches!(nal & 0x1f, IDR | SPS)) {
                    return true;
                }
                rest = &body[size..];
            }
            false
        }
        FU_A => payload.get(1).is_some_and(|fu| fu & 0x80 != 0 && fu & 0x1f == IDR),
        _ => false,
    }
}
