//! Live streaming from the media node: a room's tapped media (the recorder's tap) is made into one live
//! Matroska stream ([`mux`]) and piped to ffmpeg, which mixes the voices, scales the stage to 720p, encodes
//! H.264 and AAC and pushes FLV to an RTMP(S) service such as YouTube. Nothing is written to disk; a stream
//! ends when its room stops it, or by itself when ffmpeg or the service gives up (the words say why).

pub mod mux;

use std::{
    net::IpAddr,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    process::{Child, ChildStdin, Command},
    sync::mpsc,
};
use tokio_util::sync::CancellationToken;
use url::Url;

use self::mux::{AUDIO_SLOTS, LiveMux};
use crate::{
    plane::{MediaCommand, MediaPlane, TapSink},
    sfu::{PeerKey, RecordedPacket, RoomId},
};

/// Packets a stream may have waiting: about a second of a large meeting's tapped tracks.
const PACKET_QUEUE: usize = 8192;
/// The muxer's clock: audio is written in 20 ms frames.
const TICK: Duration = Duration::from_millis(20);
/// ffmpeg that takes nothing from its pipe for this long is stuck (the service stopped reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// ffmpeg is given this long to finish the stream once its input ends.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of ffmpeg's last words are kept to say why a stream failed.
pub const KEPT_ERROR_BYTES: usize = 1000;
/// The longest stream address taken, key included.
const MAX_URL: usize = 2048;

/// Where a stream goes: an RTMP or RTMPS address with its stream key. On the wire (a control plane telling
/// a media node) it is the address with the key, read back through [`StreamTarget::parse`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamTarget(Url);

impl TryFrom<String> for StreamTarget {
    type Error = String;
    fn try_from(full: String) -> Result<Self, String> {
        let (address, key) = full.rsplit_once('/').ok_or("a stream address ends with its key")?;
        Self::parse(address, key)
    }
}

impl From<StreamTarget> for String {
    fn from(target: StreamTarget) -> Self {
        target.0.into()
    }
}

impl StreamTarget {
    /// The service's address (`rtmp://a.rtmp.youtube.com/live2`) and the stream key, which goes after it
    /// as the last path segment, as YouTube, Twitch and Facebook expect. The error says what is wrong.
    pub fn parse(address: &str, key: &str) -> Result<Self, String> {
        let address = address.trim();
        let key = key.trim();
        if key.is_empty() || key.chars().any(|c| c.is_control() || c.is_whitespace() || c == '/') {
            return Err("the stream key is missing or has spaces or slashes in it".to_owned());
        }
        let url = Url::parse(address).map_err(|_| format!("`{address}` is not an address like rtmp://host/app"))?;
        if !matches!(url.scheme(), "rtmp" | "rtmps") || url.host_str().is_none_or(str::is_empty) {
            return Err("the stream address must start with rtmp:// or rtmps:// and name a host".to_owned());
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err("the stream address takes no query, fragment or user name".to_owned());
        }
        let full = format!("{}/{key}", url.as_str().trim_end_matches('/'));
        if full.len() > MAX_URL {
            return Err(format!("the stream address and key are longer than {MAX_URL} characters"));
        }
        Url::parse(&full).map(Self).map_err(|_| "the stream key cannot be part of an address".to_owned())
    }

    /// The address with the key, as ffmpeg opens it.
    pub fn url(&self) -> &Url {
        &self.0
    }

    /// Whether the service's host is on the public internet: every address its name resolves to (or the
    /// address it is) must be; `private_allowed` (an operator's setting, for development and tests) lets
    /// loopback and private networks through. The error says why not, for people.
    async fn check_reach(&self, private_allowed: bool) -> Result<(), String> {
        let host = self.0.host_str().unwrap_or_default().trim_matches(['[', ']']);
        let port = self.0.port().unwrap_or(if self.0.scheme() == "rtmps" { 443 } else { 1935 });
        let addresses: Vec<IpAddr> = match tokio::net::lookup_host((host, port)).await {
            Ok(found) => found.map(|address| address.ip()).collect(),
            Err(_) => return Err(format!("the stream address's host `{host}` cannot be found")),
        };
        if addresses.is_empty() {
            return Err(format!("the stream address's host `{host}` cannot be found"));
        }
        if !private_allowed && addresses.iter().any(|address| !convene_domain::net::is_public(*address)) {
            return Err("the stream address is on a private network, which this server does not stream to".to_owned());
        }
        Ok(())
    }

    /// `text` (what ffmpeg said, which names the address it opened) with the stream key left out: everyone
    /// in the meeting and the organisation's webhooks read why a stream stopped, and the key is a secret.
    fn without_key(&self, text: &str) -> String {
        let mut shown = text.replace(self.0.as_str(), &format!("{}/•••", self.service()));
        if let Some(key) =
            self.0.path_segments().and_then(|mut segments| segments.next_back()).filter(|key| key.len() > 2)
        {
            shown = shown.replace(key, "•••");
        }
        shown
    }

    /// The address without the key, to show people.
    pub fn service(&self) -> String {
        let mut url = self.0.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop();
        }
        url.as_str().trim_end_matches('/').to_owned()
    }
}

/// Why a stream could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Its id could not be made.
    #[error("the stream could not start: {0}")]
    Id(#[from] std::io::Error),
    /// The room's shard is overloaded.
    #[error("the media node is busy; try again")]
    Busy,
}

/// A live stream going on, held by its room. Dropping it stops the stream.
#[derive(Debug)]
pub struct LiveStream {
    id: String,
    stop: CancellationToken,
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl LiveStream {
    /// Starts streaming room `room_id` to `target` (on a private network only if `private_allowed`): the
    /// shard starts handing over its media and a task feeds ffmpeg until the stream is dropped or fails, then
    /// calls `finished` with the stream's id and the reason it failed, if it did.
    pub fn start(
        plane: &MediaPlane,
        room_id: RoomId,
        (target, private_allowed): (&StreamTarget, bool),
        finished: Box<dyn FnOnce((String, Option<String>)) + Send>,
    ) -> Result<Self, StartError> {
        let id = format!("live-{}", crate::recording::new_id()?);
        let (sink, packets) = mpsc::channel(PACKET_QUEUE);
        plane
            .send(MediaCommand::Record {
                room: room_id,
                recording: id.clone(),
                sink: Some(TapSink { queue: sink, video: true }),
            })
            .map_err(|_| StartError::Busy)?;
        let stop = CancellationToken::new();
        let task = Task { id: id.clone(), room_id, plane: plane.clone() };
        let (stopped, stream, target) = (stop.clone(), id.clone(), target.clone());
        tokio::spawn(async move {
            let failure = task.run(&target, private_allowed, packets, stopped).await;
            finished((stream, failure));
        });
        Ok(Self { id, stop })
    }

    /// The stream's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// ffmpeg reading the live Matroska stream on its standard input and pushing FLV to `url`: the voices mixed
/// as they are, the stage letterboxed into 1280×720 at 30 fps, H.264 at a steady 3 Mbit/s with a keyframe
/// every 2 s (what YouTube asks of a 720p stream), AAC at 128 kbit/s.
pub fn encoder(url: &Url) -> Command {
    let voices: String = (0..AUDIO_SLOTS).map(|slot| format!("[0:a:{slot}]")).collect();
    let graph = format!(
        "[0:v:0]scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2,\
         fps=30,format=yuv420p[v];{voices}amix=inputs={AUDIO_SLOTS}:normalize=0:dropout_transition=0[a]"
    );
    let mut command = Command::new("ffmpeg");
    command
        .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-fflags", "+genpts"])
        // Every track's parameters are in the stream's header: a second of probing is plenty.
        .args(["-analyzeduration", "1000000"])
        .args(["-f", "matroska", "-i", "pipe:0", "-filter_complex", &graph, "-map", "[v]", "-map", "[a]"])
        .args(["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-b:v", "3000k"])
        .args(["-maxrate", "3000k", "-bufsize", "6000k", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0"])
        .args(["-c:a", "aac", "-b:a", "128k", "-ar", "44100", "-f", "flv", url.as_str()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The stream's task: checks where it goes, then starts and feeds ffmpeg.
struct Task {
    id: String,
    room_id: RoomId,
    plane: MediaPlane,
}

impl Task {
    /// Streams to `target` until `stop` or a failure (answered, in words, with ffmpeg's last ones); the shard
    /// stops handing over the room's media either way.
    async fn run(
        self,
        target: &StreamTarget,
        private_allowed: bool,
        packets: mpsc::Receiver<RecordedPacket>,
        stop: CancellationToken,
    ) -> Option<String> {
        let failure = match target.check_reach(private_allowed).await {
            Err(words) => Some(words),
            Ok(()) => match encoder(target.url()).spawn() {
                Err(error) => Some(format!("the streaming encoder could not start ({error})")),
                Ok(mut child) => match (child.stdin.take(), child.stderr.take()) {
                    (Some(stdin), Some(stderr)) => {
                        let said = tokio::spawn(read_tail(stderr, KEPT_ERROR_BYTES));
                        let failure = self.feed(child, stdin, packets, stop).await;
                        let said = said.await.unwrap_or_default();
                        failure.map(|failure| target.without_key(&with_last_words(&failure, &said)))
                    }
                    _ => Some("the streaming encoder's pipes were not opened".to_owned()),
                },
            },
        };
        let _ = self.plane.send(MediaCommand::Record { room: self.room_id, recording: self.id.clone(), sink: None });
        failure
    }

    /// Feeds ffmpeg until `stop` or a failure (answered, in words), then lets it finish.
    async fn feed(
        &self,
        mut child: Child,
        mut stdin: ChildStdin,
        mut packets: mpsc::Receiver<RecordedPacket>,
        stop: CancellationToken,
    ) -> Option<String> {
        let mut mux = LiveMux::new(Instant::now());
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let failure = loop {
            tokio::select! {
                () = stop.cancelled() => break None,
                packet = packets.recv() => match packet {
                    Some(packet) => mux.handle_packet(&packet),
                    // The shard let go of the room (it stopped).
                    None => break None,
                },
                _ = tick.tick() => {
                    mux.handle_timeout(Instant::now());
                    while let Some((participant, source)) = mux.poll_keyframe_request() {
                        let key = PeerKey { room: self.room_id, participant };
                        let _ = self.plane.send(MediaCommand::StageKeyframe { key, source });
                    }
                    let bytes = mux.take_output();
                    match tokio::time::timeout(WRITE_TIMEOUT, stdin.write_all(&bytes)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break Some("the streaming encoder stopped".to_owned()),
                        Err(_) => break Some("the streaming service stopped taking the stream".to_owned()),
                    }
                }
                exited = child.wait() => {
                    break Some(match exited {
                        Ok(status) => format!("the streaming encoder stopped ({status})"),
                        Err(error) => format!("the streaming encoder stopped ({error})"),
                    });
                }
            }
        };
        // The end of its input lets ffmpeg finish the stream; one that does not is stopped.
        drop(stdin);
        if tokio::time::timeout(FINISH_TIMEOUT, child.wait()).await.is_err() {
            let _ = child.kill().await;
        }
        failure
    }
}

/// Reads `reader` to its end, keeping the last `keep` bytes (what a process said last is why it stopped).
pub async fn read_tail(mut reader: impl AsyncRead + Unpin, keep: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buffer = vec![0; 4096];
    while let Ok(read) = reader.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        kept.extend_from_slice(&buffer[..read]);
        if kept.len() > keep {
            kept.drain(..kept.len() - keep);
        }
    }
    kept
}

/// A failure with what ffmpeg said last, when it said anything.
fn with_last_words(failure: &str, said: &[u8]) -> String {
    let said = String::from_utf8_lossy(said);
    let last = said.lines().rev().find(|line| !line.trim().is_empty()).map(str::trim);
    match last {
        Some(last) => format!("{failure}: {last}"),
        None => failure.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_rtmp_addresses_with_a_key_and_show_without_it() {
        let target = StreamTarget::parse(" rtmp://a.rtmp.youtube.com/live2/ ", "abcd-1234").unwrap();
        assert_eq!(target.url().as_str(), "rtmp://a.rtmp.youtube.com/live2/abcd-1234");
        assert_eq!(target.service(), "rtmp://a.rtmp.youtube.com/live2");
        assert!(StreamTarget::parse("rtmps://live-api-s.facebook.com:443/rtmp", "FB-1").is_ok());
        for (address, key) in [
            ("http://example.com/live", "k"),
            ("rtmp:///live", "k"),
            ("rtmp://host/live?x=1", "k"),
            ("rtmp://user@host/live", "k"),
            ("rtmp://host/live", ""),
            ("rtmp://host/live", "a b"),
            ("rtmp://host/live", "a/b"),
            ("not a url", "k"),
        ] {
            assert!(StreamTarget::parse(address, key).is_err(), "{address} {key}");
        }
        assert!(StreamTarget::parse("rtmp://host/live", &"k".repeat(MAX_URL)).is_err());
        // On the wire as the address with its key, read back by the same rules.
        let json = serde_json::to_string(&target).unwrap();
        assert_eq!(json, "\"rtmp://a.rtmp.youtube.com/live2/abcd-1234\"");
        assert_eq!(serde_json::from_str::<StreamTarget>(&json).unwrap(), target);
        for bad in ["\"http://host/live/k\"", "\"rtmp://host/live?x=1/k\"", "\"nokey\"", "\"rtmp://host/\""] {
            assert!(serde_json::from_str::<StreamTarget>(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn streams_reach_only_the_public_internet_unless_the_operator_allows_private_networks() {
        for private in
            ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0"]
                .into_iter()
                .chain(["[::1]", "[fd00::1]", "[fe80::1]", "[::ffff:10.0.0.1]"])
        {
            let target = StreamTarget::parse(&format!("rtmp://{private}:1935/live"), "k").unwrap();
            let refused = target.check_reach(false).await.expect_err(private);
            assert!(refused.contains("private network"), "{private}: {refused}");
            assert_eq!(target.check_reach(true).await, Ok(()), "{private} when the operator allows it");
        }
        let localhost = StreamTarget::parse("rtmp://localhost/live", "k").unwrap();
        assert!(localhost.check_reach(false).await.is_err(), "a name for the node itself");
    }

    #[tokio::test]
    async fn only_the_tail_of_what_a_process_says_is_kept_and_never_the_stream_key() {
        let said = vec![b'x'; 10_000].into_iter().chain(b"\nthe end".iter().copied()).collect::<Vec<_>>();
        let tail = read_tail(&said[..], 100).await;
        assert_eq!(tail.len(), 100);
        assert!(tail.ends_with(b"the end"));
        assert_eq!(with_last_words("it failed", &tail), "it failed: the end");
        assert_eq!(with_last_words("it failed", b"  \n"), "it failed");
        let target = StreamTarget::parse("rtmp://127.0.0.1:1935/live", "stream-key").unwrap();
        let refused = b"[tcp] rtmp://127.0.0.1:1935/live/stream-key: Connection refused";
        let shown = target.without_key(&with_last_words("it failed", refused));
        assert_eq!(shown, "it failed: [tcp] rtmp://127.0.0.1:1935/live/•••: Connection refused");
        let shown = target.without_key(&with_last_words("it failed", b"opening stream-key failed"));
        assert_eq!(shown, "it failed: opening ••• failed", "the key alone is left out too");
    }
}
