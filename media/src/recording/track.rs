//! One recorded track's file: packets in, frames put together, appended to a WebM file that starts at the
//! first frame that can be decoded.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::Path,
    time::{Duration, Instant},
};

use convene_signal::TrackSource;
use str0m::format::Codec;

use super::{
    frames::{FrameAssembler, TrackCodec, vp8_keyframe_size},
    manifest::TrackEntry,
    millis,
    webm::{TrackFormat, WebmWriter},
};
use crate::sfu::{RecordedPacket, allocator::Layer};

/// A recorded track and its file.
pub(super) struct TrackFile {
    entry: TrackEntry,
    codec: TrackCodec,
    assembler: FrameAssembler,
    /// Made at the first frame that can start the file (video: a keyframe, which gives the size).
    writer: Option<WebmWriter>,
    file: BufWriter<File>,
    layer: Layer,
    asked_keyframe: Option<Instant>,
    buffer: Vec<u8>,
}

impl TrackFile {
    /// The file for `packet`'s track in `dir`; `None` for a codec the recorder does not write.
    pub(super) fn create(dir: &Path, packet: &RecordedPacket) -> io::Result<Option<Self>> {
        let (codec, name, extension) = match packet.codec {
            Codec::Opus => (TrackCodec::Opus, "opus", "webm"),
            Codec::Vp8 => (TrackCodec::Vp8, "vp8", "webm"),
            Codec::H264 => (TrackCodec::H264, "h264", "mkv"),
            _ => return Ok(None),
        };
        let source = match packet.source {
            TrackSource::Microphone => "microphone",
            TrackSource::Camera => "camera",
            TrackSource::Screen => "screen",
        };
        let file_name = format!("{}-{source}.{extension}", packet.participant.0);
        let file = BufWriter::new(File::create_new(dir.join(&file_name))?);
        let entry = TrackEntry {
            file: file_name,
            participant: packet.participant,
            source: packet.source,
            codec: name.to_owned(),
            first_ms: None,
            last_ms: None,
            bytes: 0,
        };
        Ok(Some(Self {
            entry,
            codec,
            assembler: FrameAssembler::new(codec),
            writer: None,
            file,
            layer: packet.layer,
            asked_keyframe: None,
            buffer: Vec::new(),
        }))
    }

    /// What the manifest says of it.
    pub(super) fn entry(&self) -> &TrackEntry {
        &self.entry
    }

    /// Adds a packet that arrived `at` into the recording; answers the bytes written to the file.
    pub(super) fn write(&mut self, packet: &RecordedPacket, at: Duration) -> io::Result<u64> {
        if packet.layer != self.layer {
            self.layer = packet.layer;
            self.assembler.new_stream();
        }
        // The 16 bits on the wire: the assembler extends them itself, across streams too.
        let seq = (packet.seq & 0xffff) as u16;
        self.assembler.push(seq, packet.timestamp, packet.marker, &packet.payload, at);
        let mut written = 0;
        while let Some(frame) = self.assembler.pop() {
            self.buffer.clear();
            if self.writer.is_none() {
                let Some(format) = self.format(&frame.data) else { continue };
                let (writer, header) = WebmWriter::new(&format);
                self.buffer.extend_from_slice(&header);
                self.writer = Some(writer);
            }
            let at_ms = millis(frame.at);
            if let Some(writer) = &mut self.writer {
                writer.frame(at_ms, frame.keyframe, &frame.data, &mut self.buffer);
            }
            self.file.write_all(&self.buffer)?;
            written += self.buffer.len() as u64;
            self.entry.first_ms.get_or_insert(at_ms);
            self.entry.last_ms = Some(at_ms);
        }
        self.entry.bytes += written;
        Ok(written)
    }

    /// The file's format, from the first frame that can start it.
    fn format(&self, frame: &[u8]) -> Option<TrackFormat> {
        match self.codec {
            TrackCodec::Opus => Some(TrackFormat::Opus { channels: 2 }),
            TrackCodec::Vp8 => vp8_keyframe_size(frame).map(|(width, height)| TrackFormat::Vp8 { width, height }),
            TrackCodec::H264 => TrackFormat::h264(frame),
        }
    }

    /// Whether to ask the publisher for a keyframe now (frames were lost; at most once per `every`).
    pub(super) fn needs_keyframe(&mut self, now: Instant, every: Duration) -> bool {
        let due = self.asked_keyframe.is_none_or(|asked| now.saturating_duration_since(asked) >= every);
        if self.assembler.needs_keyframe() && due {
            self.asked_keyframe = Some(now);
            return true;
        }
        false
    }

    /// Hands what is buffered to the OS (a crash of the process loses nothing written so far).
    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    /// Makes the file durable on disk.
    pub(super) fn sync(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }
}
