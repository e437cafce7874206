//! The recording tap: a room being recorded hands a copy of every audio packet, and of one layer of every
//! video, to the node's recorder ([`SfuOutput::Record`](super::SfuOutput::Record)). The layer is the one a
//! grid composition needs (half height), else the nearest the publisher sends; a recorded video starts, and
//! changes layer, on a keyframe, asked for with PLI like a receiver's switch. A room whose only listener is
//! the phone gateway's mixer taps its voices alone ([`Tap::Voices`]): no video is copied and no layer chosen.

use std::{sync::Arc, time::Instant};

use convene_signal::{ParticipantId, TrackSource};
use str0m::{format::Codec, media::MediaKind};

use super::{allocator::Layer, forward::Forward};

/// The layer recorded when the publisher sends it: enough for a tile of a 720p grid.
const RECORDED_LAYER: Layer = Layer::Medium;

/// One packet of a recorded track, decrypted, as the publisher sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedPacket {
    /// Whose track.
    pub participant: ParticipantId,
    /// Which of their tracks.
    pub source: TrackSource,
    /// Its codec.
    pub codec: Codec,
    /// The simulcast layer it belongs to (a change starts a new RTP stream).
    pub layer: Layer,
    /// The extended RTP sequence number.
    pub seq: u64,
    /// The RTP timestamp.
    pub timestamp: u32,
    /// The RTP marker bit (the last packet of a video frame).
    pub marker: bool,
    /// The payload (shared with the receivers' copies, not copied).
    pub payload: Arc<[u8]>,
    /// Audio only: the sender's level (RFC 6464, -dBov: 0 loudest, 127 silence), when it says.
    pub audio_level: Option<i8>,
    /// When it arrived.
    pub at: Instant,
}

/// What the tap does with one forwarded packet.
pub(super) enum Tapped {
    /// Hand it to the recorder.
    Record(RecordedPacket),
    /// Not yet: the recorded layer needs a keyframe first.
    WantsKeyframe(Layer),
    /// Not recorded (another layer, or a codec the recorder cannot write).
    Skip,
}

/// A recorded video track: the layer recorded and whether it has started (at a keyframe).
#[derive(Debug)]
struct RecordedVideo {
    owner: ParticipantId,
    source: TrackSource,
    layer: Layer,
    started: bool,
}

/// What a room hands over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tap {
    /// Nothing.
    Off,
    /// Every microphone (the phone gateway's mixer).
    Voices,
    /// Every microphone and one layer of every video (a recorder or a live stream).
    Everything,
}

/// What a room being recorded taps.
#[derive(Debug)]
pub(super) struct RecordingTap {
    videos: Vec<RecordedVideo>,
    /// Videos are tapped too.
    with_video: bool,
}

impl RecordingTap {
    pub(super) fn new(with_video: bool) -> Self {
        Self { videos: Vec::new(), with_video }
    }

    /// Whether videos are tapped; a change to voices alone forgets the videos' layers.
    pub(super) fn set_video(&mut self, with_video: bool) {
        self.with_video = with_video;
        if !with_video {
            self.videos.clear();
        }
    }

    /// Decides for one forwarded packet.
    pub(super) fn tap(&mut self, forward: &Forward, now: Instant) -> Tapped {
        let Some(codec) = forward.codec.map(|codec| codec.codec) else { return Tapped::Skip };
        if !matches!(codec, Codec::Opus | Codec::Vp8 | Codec::H264) {
            return Tapped::Skip;
        }
        if forward.kind == MediaKind::Video {
            let owner = forward.from.participant;
            let Some(video) =
                self.videos.iter_mut().find(|video| video.owner == owner && video.source == forward.source)
            else {
                return Tapped::Skip;
            };
            if video.layer != forward.layer {
                return Tapped::Skip;
            }
            if !video.started {
                if !forward.keyframe {
                    return Tapped::WantsKeyframe(video.layer);
                }
                video.started = true;
            }
        }
        let packet = &forward.packet;
        Tapped::Record(RecordedPacket {
            participant: forward.from.participant,
            source: forward.source,
            codec,
            layer: forward.layer,
            seq: *packet.seq_no,
            timestamp: packet.header.timestamp,
            marker: packet.header.marker,
            payload: packet.payload.clone(),
            audio_level: packet.header.ext_vals.audio_level,
            at: now,
        })
    }

    /// Chooses the layer of each published video from the rates its layers arrive at (a layer that stopped
    /// arriving has none); answers the videos whose layer changed, which need a keyframe.
    pub(super) fn choose_layers(
        &mut self,
        published: impl Iterator<Item = (ParticipantId, TrackSource, [Option<u64>; 3])>,
    ) -> Vec<(ParticipantId, TrackSource, Layer)> {
        let mut kept = Vec::new();
        let mut changed = Vec::new();
        if !self.with_video {
            return changed;
        }
        for (owner, source, rates) in published {
            let arriving = |layer: &Layer| rates[layer.index()].is_some();
            let best = if arriving(&RECORDED_LAYER) {
                Some(RECORDED_LAYER)
            } else {
                // The nearest below, else the nearest above.
                Layer::ALL
                    .iter()
                    .rev()
                    .find(|layer| **layer < RECORDED_LAYER && arriving(layer))
                    .or_else(|| Layer::ALL.iter().find(|layer| **layer > RECORDED_LAYER && arriving(layer)))
                    .copied()
            };
            let current = self.videos.iter().position(|video| video.owner == owner && video.source == source);
            let video = match (current, best) {
                (Some(index), Some(layer)) if self.videos[index].layer == layer => self.videos.swap_remove(index),
                // Nothing arrives: keep the layer until another does.
                (Some(index), None) => self.videos.swap_remove(index),
                (_, Some(layer)) => {
                    changed.push((owner, source, layer));
                    RecordedVideo { owner, source, layer, started: false }
                }
                (None, None) => continue,
            };
            kept.push(video);
        }
        self.videos = kept;
        changed
    }

    /// The layer of a tapped video whose keyframe is to be asked for; with `restart` (the recorder lost part
    /// of it) the tap skips its packets until that keyframe.
    pub(super) fn keyframe(&mut self, owner: ParticipantId, source: TrackSource, restart: bool) -> Option<Layer> {
        let video = self.videos.iter_mut().find(|video| video.owner == owner && video.source == source)?;
        video.started &= !restart;
        Some(video.layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANN: ParticipantId = ParticipantId(1);

    fn chosen(tap: &RecordingTap) -> Vec<(ParticipantId, TrackSource, Layer)> {
        tap.videos.iter().map(|video| (video.owner, video.source, video.layer)).collect()
    }

    #[test]
    fn the_half_layer_is_recorded_else_the_nearest_arriving() {
        let mut tap = RecordingTap::new(true);
        let simulcast = [Some(150_000), Some(500_000), Some(1_500_000)];
        let changed = tap.choose_layers([(ANN, TrackSource::Camera, simulcast)].into_iter());
        assert_eq!(changed, [(ANN, TrackSource::Camera, Layer::Medium)]);
        // A screen is a single layer (High): that one.
        let screen = [None, None, Some(800_000)];
        let both = [(ANN, TrackSource::Camera, simulcast), (ANN, TrackSource::Screen, screen)];
        assert_eq!(tap.choose_layers(both.into_iter()), [(ANN, TrackSource::Screen, Layer::High)]);
        // The half layer stops (a congested publisher): the quarter one below it.
        let low_only = [Some(150_000), None, Some(1_500_000)];
        assert_eq!(
            tap.choose_layers([(ANN, TrackSource::Camera, low_only)].into_iter()),
            [(ANN, TrackSource::Camera, Layer::Low)]
        );
        // Nothing arrives for a moment: the choice stays; a video no longer published is forgotten.
        assert!(tap.choose_layers([(ANN, TrackSource::Camera, [None; 3])].into_iter()).is_empty());
        assert_eq!(chosen(&tap), [(ANN, TrackSource::Camera, Layer::Low)]);
        assert!(tap.choose_layers(std::iter::empty()).is_empty());
        assert!(chosen(&tap).is_empty());
    }

    #[test]
    fn a_restart_waits_for_a_keyframe_of_the_same_layer() {
        let mut tap = RecordingTap::new(true);
        tap.choose_layers([(ANN, TrackSource::Camera, [Some(1), Some(1), Some(1)])].into_iter());
        if let Some(video) = tap.videos.first_mut() {
            video.started = true;
        }
        assert_eq!(tap.keyframe(ANN, TrackSource::Camera, false), Some(Layer::Medium));
        assert!(tap.videos.iter().all(|video| video.started), "a stage's keyframe leaves the tap going");
        assert_eq!(tap.keyframe(ANN, TrackSource::Camera, true), Some(Layer::Medium));
        assert!(tap.videos.iter().all(|video| !video.started));
        assert_eq!(tap.keyframe(ANN, TrackSource::Screen, true), None);
    }
}
