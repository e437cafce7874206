//! Composing a recording: the per-track files the media node wrote become one MP4 (H.264 and AAC, fast
//! start) laid out from the manifest, and an audio-only M4A, by Debian's `ffmpeg` run as a managed
//! subprocess at the lowest CPU priority, with a time limit and its last words kept as the failure's reason.
//!
//! Layout: every video (camera or screen) is a tile on a 1280×720 canvas, from the moment its first frame
//! was recorded to its last (black before and after, so late joiners appear at their join time). With a
//! shared screen, the screen takes the left three quarters and cameras stack at the right; otherwise the
//! tiles make the grid whose column count leaves them largest. Every microphone is mixed, each delayed to
//! where it started.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use convene_media::recording::{
    manifest::{Happening, Manifest, TrackEntry},
    read_manifest,
};
use convene_media::streaming::{KEPT_ERROR_BYTES, read_tail};
use convene_signal::TrackSource;
use tokio::process::Command;

/// The composed recording's file, in the recording's directory.
pub const VIDEO_FILE: &str = "recording.mp4";
/// The audio-only file beside it.
pub const AUDIO_FILE: &str = "audio.m4a";
/// The canvas.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
/// Frames a second in the composed video: meetings move little, and it halves the encoding work.
const FPS: u32 = 15;
/// Tiles at most; videos beyond them are left out of the picture (their sound stays).
const MAX_TILES: usize = 16;
/// What composing made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    /// The recording's length.
    pub duration_ms: u64,
    /// The composed file's size.
    pub bytes: u64,
    /// The people recorded, in the order they appeared.
    pub participants: Vec<String>,
}

/// A tile's place on the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width (even, as H.264's 4:2:0 wants).
    pub width: u32,
    /// Height (even).
    pub height: u32,
}

/// Where each of `videos` goes (`true` for a shared screen), in order.
pub fn layout(videos: &[bool]) -> Vec<Place> {
    let even = |value: u32| value & !1;
    let count = u32::try_from(videos.len().min(MAX_TILES)).unwrap_or(0);
    if count == 0 {
        return Vec::new();
    }
    let screens = videos.iter().take(MAX_TILES).filter(|screen| **screen).count();
    if screens > 0 {
        // The first screen large; everything else in a column at the right.
        let column = u32::try_from(videos.len().min(MAX_TILES) - 1).unwrap_or(0).max(1);
        let side = WIDTH / 4;
        let main = Place { x: 0, y: 0, width: even(WIDTH - side), height: HEIGHT };
        let first_screen = videos.iter().position(|screen| *screen).unwrap_or(0);
        let mut next = 0;
        return (0..videos.len().min(MAX_TILES))
            .map(|index| {
                if index == first_screen {
                    return main;
                }
                let height = even(HEIGHT / column);
                let place = Place { x: WIDTH - side, y: next * height, width: even(side), height };
                next += 1;
                place
            })
            .collect();
    }
    // The column count that makes 16:9 tiles largest.
    let (columns, rows) = (1..=count)
        .map(|columns| (columns, count.div_ceil(columns)))
        .max_by_key(|(columns, rows)| {
            let (cell_width, cell_height) = (WIDTH / columns, HEIGHT / rows);
            cell_width.min(cell_height * 16 / 9)
        })
        .unwrap_or((1, 1));
    let (width, height) = (even(WIDTH / columns), even(HEIGHT / rows));
    (0..count)
        .map(|index| {
            let (column, row) = (index % columns, index / columns);
            // A short last row is centred.
            let in_row = if row == rows - 1 { count - row * columns } else { columns };
            let offset = (WIDTH - in_row * width) / 2;
            Place { x: offset + column * width, y: row * height, width, height }
        })
        .collect()
}

/// The recording's length: from its start to its stop, else (the node stopped first) to its last frame.
fn duration_ms(manifest: &Manifest) -> u64 {
    let stopped = manifest.stopped_at_unix_ms.map(|stopped| stopped.saturating_sub(manifest.started_at_unix_ms));
    let last_frame = manifest.tracks.iter().filter_map(|track| track.last_ms).max();
    match (stopped, last_frame) {
        (Some(stopped), _) if stopped > 0 => stopped,
        (_, Some(last)) => last,
        _ => 0,
    }
}

/// The ffmpeg command line (without the program) that composes `manifest`'s tracks in `dir` into
/// `video_out` and `audio_out`.
pub fn arguments(dir: &Path, manifest: &Manifest, (video_out, audio_out): (&Path, &Path)) -> Vec<String> {
    let seconds = |ms: u64| format!("{}.{:03}", ms / 1000, ms % 1000);
    let duration = seconds(duration_ms(manifest));
    let recorded: Vec<&TrackEntry> = manifest.tracks.iter().filter(|track| track.first_ms.is_some()).collect();
    let videos: Vec<&TrackEntry> =
        recorded.iter().copied().filter(|track| track.source != TrackSource::Microphone).take(MAX_TILES).collect();
    let audios: Vec<&TrackEntry> =
        recorded.iter().copied().filter(|track| track.source == TrackSource::Microphone).collect();
    let mut args: Vec<String> = ["-y", "-v", "error", "-nostdin"].map(str::to_owned).into();
    for track in videos.iter().chain(&audios) {
        args.push("-i".to_owned());
        args.push(dir.join(&track.file).display().to_string());
    }
    let mut graph = vec![format!("color=c=black:s={WIDTH}x{HEIGHT}:r={FPS}:d={duration}[base0]")];
    let places = layout(&videos.iter().map(|track| track.source == TrackSource::Screen).collect::<Vec<_>>());
    for (index, (track, place)) in videos.iter().zip(&places).enumerate() {
        let start = seconds(track.first_ms.unwrap_or_default());
        let Place { x, y, width, height } = *place;
        graph.push(format!(
            "[{index}:v]setpts=PTS-STARTPTS+{start}/TB,scale={width}:{height}:force_original_aspect_ratio=decrease,\
             pad={width}:{height}:(ow-iw)/2:(oh-ih)/2[tile{index}]"
        ));
        let next = if index + 1 == videos.len() { "video".to_owned() } else { format!("base{}", index + 1) };
        graph.push(format!("[base{index}][tile{index}]overlay=x={x}:y={y}:eof_action=pass[{next}]"));
    }
    if videos.is_empty() {
        graph.push("[base0]null[video]".to_owned());
    }
    for (index, track) in audios.iter().enumerate() {
        let input = videos.len() + index;
        let delay = track.first_ms.unwrap_or_default();
        graph.push(format!("[{input}:a]aresample=48000,asetpts=PTS-STARTPTS,adelay={delay}:all=1[voice{index}]"));
    }
    let voices: String = (0..audios.len()).map(|index| format!("[voice{index}]")).collect();
    let mix = if audios.is_empty() {
        format!("anullsrc=r=48000:cl=stereo,atrim=0:{duration}")
    } else {
        format!("{voices}amix=inputs={}:duration=longest:normalize=0,apad,atrim=0:{duration}", audios.len())
    };
    graph.push(format!("{mix},asplit=2[audio][audio_only]"));
    args.push("-filter_complex".to_owned());
    args.push(graph.join(";"));
    let encode_audio = ["-c:a", "aac", "-b:a", "128k"];
    args.extend(
        ["-map", "[video]", "-map", "[audio]", "-c:v", "libx264", "-preset", "veryfast", "-crf", "26"]
            .map(str::to_owned),
    );
    args.extend(["-pix_fmt", "yuv420p", "-r", &FPS.to_string()].map(str::to_owned));
    args.extend(encode_audio.map(str::to_owned));
    args.extend(["-movflags", "+faststart", "-f", "mp4"].map(str::to_owned));
    args.push(video_out.display().to_string());
    args.extend(["-map", "[audio_only]"].map(str::to_owned));
    args.extend(encode_audio.map(str::to_owned));
    args.extend(["-movflags", "+faststart", "-f", "ipod"].map(str::to_owned));
    args.push(audio_out.display().to_string());
    args
}

/// Who was recorded, by the names they joined with, each once.
fn participants(manifest: &Manifest) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for event in &manifest.events {
        if let Happening::Joined { name } = &event.what
            && !names.contains(name)
        {
            names.push(name.clone());
        }
    }
    names
}

/// Composes the recording in `dir`; the error says why, for people.
pub async fn compose(dir: &Path) -> Result<Composed, String> {
    let manifest = read_manifest(dir).map_err(|error| format!("its manifest cannot be read ({error})"))?;
    let duration = duration_ms(&manifest);
    if duration == 0 || manifest.tracks.iter().all(|track| track.first_ms.is_none()) {
        return Err("nothing was recorded".to_owned());
    }
    let composed = |bytes| Composed { duration_ms: duration, bytes, participants: participants(&manifest) };
    // Composed before, and only storing it failed: the files are whole (they are renamed into place last).
    if let (Ok(video), true) = (tokio::fs::metadata(dir.join(VIDEO_FILE)).await, dir.join(AUDIO_FILE).exists()) {
        return Ok(composed(video.len()));
    }
    let partial = |name: &str| -> PathBuf { dir.join(format!("{name}.part")) };
    let (video, audio) = (partial(VIDEO_FILE), partial(AUDIO_FILE));
    let mut command = Command::new("nice");
    command
        .args(["-n", "19", "ffmpeg"])
        .args(arguments(dir, &manifest, (&video, &audio)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|error| format!("ffmpeg could not start ({error}); is it installed?"))?;
    let mut stderr = child.stderr.take();
    // Composing runs at a few times real speed on one core; far slower means it is stuck.
    let limit = Duration::from_millis(duration.saturating_mul(3)) + Duration::from_secs(60);
    let mut said = Vec::new();
    let finished = tokio::time::timeout(limit, async {
        if let Some(stderr) = stderr.take() {
            said = read_tail(stderr, KEPT_ERROR_BYTES).await;
        }
        child.wait().await
    })
    .await;
    let status = match finished {
        Ok(Ok(status)) => status,
        Ok(Err(error)) => return Err(format!("ffmpeg failed to run ({error})")),
        Err(_) => return Err(format!("composing took longer than {} seconds", limit.as_secs())),
    };
    if !status.success() {
        let said = String::from_utf8_lossy(&said);
        return Err(format!("ffmpeg failed ({status}): {}", said.trim()));
    }
    tokio::fs::rename(&video, dir.join(VIDEO_FILE)).await.map_err(|error| error.to_string())?;
    tokio::fs::rename(&audio, dir.join(AUDIO_FILE)).await.map_err(|error| error.to_string())?;
    let bytes = tokio::fs::metadata(dir.join(VIDEO_FILE)).await.map_err(|error| error.to_string())?.len();
    Ok(composed(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inside_without_overlap(places: &[Place]) -> bool {
        let inside = places.iter().all(|place| place.x + place.width <= WIDTH && place.y + place.height <= HEIGHT);
        let overlap = places.iter().enumerate().any(|(index, a)| {
            places[index + 1..]
                .iter()
                .any(|b| a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height)
        });
        inside && !overlap
    }

    #[test]
    fn tiles_fill_the_canvas_in_a_grid_or_around_a_shared_screen_and_never_overlap() {
        assert!(layout(&[]).is_empty());
        assert_eq!(layout(&[false]), [Place { x: 0, y: 0, width: 1280, height: 720 }]);
        // Two side by side, three in two rows with the short one centred.
        assert_eq!(
            layout(&[false, false]).iter().map(|place| (place.x, place.width)).collect::<Vec<_>>(),
            [(0, 640), (640, 640)]
        );
        let three = layout(&[false; 3]);
        assert_eq!(three[2], Place { x: 320, y: 360, width: 640, height: 360 });
        // A screen shared by the second of three takes the left; the cameras stack at the right.
        let shared = layout(&[false, true, false]);
        assert_eq!(shared[1], Place { x: 0, y: 0, width: 960, height: 720 });
        assert_eq!((shared[0].x, shared[2].x, shared[0].y, shared[2].y), (960, 960, 0, 360));
        for count in 1..=20 {
            for screen in [None, Some(0), Some(count - 1)] {
                let videos: Vec<bool> = (0..count).map(|index| Some(index) == screen).collect();
                let places = layout(&videos);
                assert_eq!(places.len(), count.min(MAX_TILES));
                assert!(inside_without_overlap(&places), "{count} tiles, screen {screen:?}: {places:?}");
                assert!(places.iter().all(|place| place.width % 2 == 0 && place.height % 2 == 0));
            }
        }
    }
}
