//! Phone callers for tests and benchmarks of the SIP gateway, played by Debian's sipp: the pieces of a
//! sipp scenario (a call's requests, the INVITE with its offer and ACK, keys by SIP INFO or by sipp's RFC 4733
//! recordings, hold, hang-ups) and µ-law WAV files for sipp's `rtp_stream`. sipp fills in the brackets.
//! Where a test must choose every frame a phone says, or hear what it is sent, sipp only signals and
//! [`phone_media`] plays the phone's audio.

use std::time::Duration;

use convene_media::phone::{
    dtmf::KeyReader,
    g711::ulaw_encode,
    rtp::RtpPacket,
    sdp::Codec,
    voice::{MAX_FRAME, NARROW_FRAME, Voice},
};
use tokio::{net::UdpSocket, time::Instant};

/// What a phone played by a test hears: 20 ms of audio (at the codec's rate), or a key pressed on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard<'a> {
    Audio(&'a [i16]),
    Key(char),
}

/// The payload type [`offer`] gives telephone-event.
const OFFERED_EVENTS: u8 = 101;

/// The audio side of a phone that a test or benchmark plays itself, on `socket` (the port the call's SDP
/// named), in `codec`, until `until`. Once the gateway's first packet names the call's port, `say(frame)`
/// gives each 20 ms (at 8 kHz; `None` sends nothing that tick), one every 20 ms; every packet that arrives is
/// decoded and handed to `hear` with its arrival time: audio, or keys (RFC 4733 events as [`offer`] names them).
pub async fn phone_media(
    socket: UdpSocket,
    codec: Codec,
    until: Instant,
    mut say: impl FnMut(usize) -> Option<[i16; NARROW_FRAME]>,
    mut hear: impl FnMut(Instant, Heard<'_>),
) {
    let mut keys = KeyReader::default();
    let (mut sender, mut receiver) = (Voice::new(codec), Voice::new(codec));
    let (mut buffer, mut payload, mut packet, mut heard) = ([0u8; 1500], Vec::new(), Vec::new(), Vec::new());
    let mut wide = [0; MAX_FRAME];
    let (mut gateway, mut said) = (None, 0usize);
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    // Ticks missed before the gateway's port is known are not made up in a burst.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            received = tokio::time::timeout_at(until, socket.recv_from(&mut buffer)) => {
                let Ok(Ok((length, from))) = received else { break };
                let now = Instant::now();
                gateway.get_or_insert(from);
                let Some(rtp) = RtpPacket::parse(&buffer[..length]) else { continue };
                if rtp.payload_type == codec.offered_payload_type() {
                    heard.clear();
                    receiver.decode(rtp.payload, &mut heard);
                    hear(now, Heard::Audio(&heard));
                } else if rtp.payload_type == OFFERED_EVENTS
                    && let Some(key) = keys.on_packet(rtp.timestamp, rtp.payload)
                {
                    hear(now, Heard::Key(key));
                }
            }
            _ = ticker.tick(), if gateway.is_some() => {
                let Some(frame) = say(said) else { continue };
                let samples = sender.from_narrow(&frame, &mut wide).to_vec();
                sender.encode(&samples, &mut payload);
                let rtp = RtpPacket {
                    payload_type: codec.offered_payload_type(),
                    marker: said == 0,
                    sequence: said as u16,
                    timestamp: said as u32 * codec.clock_step(),
                    ssrc: 0x5EED,
                    payload: &payload,
                };
                rtp.write(&mut packet);
                if let Some(to) = gateway {
                    let _ = socket.send_to(&packet, to).await;
                }
                said += 1;
            }
        }
    }
}

/// Debian's sipp keeps its RFC 4733 key recordings here (one key each, payload type 101).
pub const KEY_RECORDINGS: &str = "/usr/share/sip-tester";

/// A whole scenario from its steps. sipp refuses variables that are checked but never read again, so those
/// the steps only check are declared read.
pub fn scenario(steps: &str) -> String {
    let checked: Vec<&str> = steps.split("assign_to=\"").skip(1).filter_map(|rest| rest.split('"').next()).collect();
    let reference =
        if checked.is_empty() { String::new() } else { format!("<Reference variables=\"{}\"/>\n", checked.join(",")) };
    format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"convene\">\n{steps}\n{reference}</scenario>\n"
    )
}

/// An offer for audio in PCMU or PCMA with telephone-event 101, flowing `direction`, the caller's audio
/// expected at `port` (`[media_port]` for sipp's own, or a port of the test's).
pub fn offer(port: &str, direction: &str) -> String {
    format!(
        "v=0\no=caller 1 1 IN IP[local_ip_type] [local_ip]\ns=-\nc=IN IP[media_ip_type] [media_ip]\nt=0 0\n\
         m=audio {port} RTP/AVP 0 8 {OFFERED_EVENTS}\na=rtpmap:0 PCMU/8000\na=rtpmap:8 PCMA/8000\n\
         a=rtpmap:{OFFERED_EVENTS} telephone-event/8000\na=fmtp:{OFFERED_EVENTS} 0-15\na={direction}\n"
    )
}

/// An offer for `codec` alone (a wideband one: G.722 or Opus), with no telephone-event (keys then come as
/// tones in the audio), the caller's audio expected at `port`.
pub fn wideband_offer(port: &str, codec: Codec) -> String {
    let payload_type = codec.offered_payload_type();
    format!(
        "v=0\no=caller 1 1 IN IP[local_ip_type] [local_ip]\ns=-\nc=IN IP[media_ip_type] [media_ip]\nt=0 0\n\
         m=audio {port} RTP/AVP {payload_type}\na=rtpmap:{payload_type} {}\na=sendrecv\n",
        codec.rtpmap()
    )
}

/// A call from `caller` (a number, or a sipp keyword such as `+1555[call_number]`).
#[derive(Debug, Clone)]
pub struct Caller {
    caller: String,
}

impl Caller {
    /// Calls from `caller`.
    pub fn new(caller: &str) -> Self {
        Self { caller: caller.to_owned() }
    }

    /// A request of the call with `to` as its To header. Requests are sent again until answered; an ACK,
    /// which nothing answers, once.
    pub fn request(&self, line: &str, cseq: &str, to: &str, extra: &str, body: &str) -> String {
        let retransmit = if line.starts_with("ACK") { "" } else { " retrans=\"500\"" };
        format!(
            "<send{retransmit}><![CDATA[\n{line} SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
             From: \"Caller\" <sip:{}@[local_ip]:[local_port]>;tag=[call_number]\n{to}\nCall-ID: [call_id]\n\
             CSeq: {cseq}\nContact: <sip:caller@[local_ip]:[local_port];transport=[transport]>\nMax-Forwards: 70\n{extra}\
             Content-Length: [len]\n\n{body}]]></send>\n",
            self.caller
        )
    }

    /// The INVITE with `offer` to the service number, its answer (whose `a=sendrecv` is checked when
    /// `check_answer`) and the ACK.
    pub fn dial(&self, offer: &str, check_answer: bool) -> String {
        self.dial_with("", offer, check_answer)
    }

    /// [`Caller::dial`] with `headers` (lines ending in `\n`) added to the INVITE.
    pub fn dial_with(&self, headers: &str, offer: &str, check_answer: bool) -> String {
        let to = "To: <sip:[service]@[remote_ip]:[remote_port]>";
        let line = "INVITE sip:[service]@[remote_ip]:[remote_port]";
        let extra = format!("Content-Type: application/sdp\n{headers}");
        let invite = self.request(line, "1 INVITE", to, &extra, offer);
        let check = if check_answer {
            "<action><ereg regexp=\"a=sendrecv\" search_in=\"body\" check_it=\"true\" assign_to=\"answered\"/></action>"
        } else {
            ""
        };
        let ack = self.request("ACK [next_url]", "1 ACK", "[last_To:]", "", "");
        format!(
            "{invite}<recv response=\"100\" optional=\"true\"/>\n<recv response=\"180\" optional=\"true\"/>\n\
             <recv response=\"200\" rrs=\"true\">{check}</recv>\n{ack}"
        )
    }

    /// A request within the call (`method`, CSeq `cseq`), without waiting for its answer.
    pub fn in_dialog_request(&self, method: &str, cseq: u32, extra: &str, body: &str) -> String {
        self.request(&format!("{method} [next_url]"), &format!("{cseq} {method}"), "[last_To:]", extra, body)
    }

    /// A request within the call, answered 200.
    pub fn in_dialog(&self, method: &str, cseq: u32, extra: &str, body: &str) -> String {
        format!("{}<recv response=\"200\"/>\n", self.in_dialog_request(method, cseq, extra, body))
    }

    /// Keys as SIP INFO (`application/dtmf-relay`), CSeq from `first` on; a key may be a sipp keyword
    /// (`[field0]`).
    pub fn info_keys<'a>(&self, keys: impl IntoIterator<Item = &'a str>, first: u32) -> String {
        let content = "Content-Type: application/dtmf-relay\n";
        keys.into_iter()
            .zip(first..)
            .map(|(key, cseq)| self.in_dialog("INFO", cseq, content, &format!("Signal={key}\nDuration=160\n")))
            .collect()
    }

    /// A re-INVITE putting the gateway on hold (`sendonly`), answered `recvonly` (checked), and its ACK.
    pub fn hold(&self, cseq: u32) -> String {
        let reinvite = self.in_dialog_request(
            "INVITE",
            cseq,
            "Content-Type: application/sdp\n",
            &offer("[media_port]", "sendonly"),
        );
        let ack = self.in_dialog_request("ACK", cseq, "", "");
        format!(
            "{reinvite}<recv response=\"100\" optional=\"true\"/>\n<recv response=\"200\"><action><ereg regexp=\"a=recvonly\" \
             search_in=\"body\" check_it=\"true\" assign_to=\"held\"/></action></recv>\n{ack}"
        )
    }
}

/// Keys as RFC 4733 events, from sipp's recordings (which carry one timestamp per key: the same key twice
/// in a row reads as one press).
pub fn rtp_keys(keys: &str) -> String {
    keys.chars()
        .map(|key| {
            let name = match key {
                '#' => "pound".to_owned(),
                '*' => "star".to_owned(),
                digit => digit.to_string(),
            };
            format!(
                "<nop><action><exec play_pcap_audio=\"{KEY_RECORDINGS}/dtmf_2833_{name}.pcap\"/></action></nop>\n\
                 <pause milliseconds=\"400\"/>\n"
            )
        })
        .collect()
}

/// Plays `wav` (sipp's `rtp_stream`, looped, as PCMU) while the scenario goes on.
pub fn stream(wav: &std::path::Path) -> String {
    format!("<nop><action><exec rtp_stream=\"{},-1,0\"/></action></nop>\n", wav.display())
}

/// Waits for the gateway's BYE (after what it says) and answers it.
pub fn hung_up() -> String {
    "<recv request=\"BYE\" timeout=\"40000\"/>\n<send><![CDATA[\nSIP/2.0 200 OK\n[last_Via:]\n[last_From:]\n[last_To:]\n\
     [last_Call-ID:]\n[last_CSeq:]\nContent-Length: 0\n\n]]></send>\n"
        .to_owned()
}

/// A free port on loopback for sipp (taken back at once; sipp binds it a moment later).
pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").and_then(|socket| socket.local_addr()).map(|addr| addr.port()).unwrap_or(0)
}

/// sipp as a trunk over UDP on loopback waiting for one call that goes as `steps` say: the port, once
/// sipp holds it, and sipp's outcome. Ports come from below the system's ephemeral range, where browsers
/// and nodes opening sockets for themselves never land; one another test's sipp holds is passed over.
pub async fn trunk(steps: &str) -> (u16, tokio::task::JoinHandle<bool>) {
    trunk_over(Transport::Udp, steps).await
}

/// How a trunk takes SIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// sipp's `-t` mode (one socket for all calls) and Linux's tables of the protocol's sockets.
    fn sipp_mode(self) -> &'static str {
        match self {
            Self::Udp => "u1",
            Self::Tcp => "t1",
        }
    }

    fn tables(self) -> [&'static str; 2] {
        match self {
            Self::Udp => ["/proc/net/udp", "/proc/net/udp6"],
            Self::Tcp => ["/proc/net/tcp", "/proc/net/tcp6"],
        }
    }
}

/// [`trunk`] over `transport`.
pub async fn trunk_over(transport: Transport, steps: &str) -> (u16, tokio::task::JoinHandle<bool>) {
    let mut last = None;
    for attempt in 0..20 {
        let port = TRUNK_PORTS.start + (random_u16().wrapping_add(attempt)) % (TRUNK_PORTS.end - TRUNK_PORTS.start);
        if bound(transport, port) {
            continue;
        }
        let steps = steps.to_owned();
        let task = tokio::spawn(async move { run(&steps, transport.sipp_mode(), port, &[]).await });
        for _ in 0..100 {
            if task.is_finished() {
                break;
            }
            if bound(transport, port) {
                // Bound by this sipp, not one that raced for the port: still running a moment later.
                tokio::time::sleep(Duration::from_millis(500)).await;
                if !task.is_finished() {
                    return (port, task);
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        last = Some((port, task));
    }
    // Never held a port: the caller's checks of sipp's outcome say why.
    last.unwrap_or_else(|| (0, tokio::spawn(async { false })))
}

/// Where [`trunk`] looks for a port: below Linux's default ephemeral range (32768 and up).
const TRUNK_PORTS: std::ops::Range<u16> = 20_000..32_000;

/// Where sipp's media sockets go: below the ephemeral range too, apart from the trunks.
const MEDIA_PORTS: std::ops::Range<u16> = 10_000..20_000;

/// The first of four free UDP ports for sipp's media (`-mp`: audio RTP and RTCP there, video two above).
/// One free port from the ephemeral range was not enough: the ports above it were now and then taken.
fn media_port() -> u16 {
    let runs = (MEDIA_PORTS.end - MEDIA_PORTS.start) / 4;
    let mut base = MEDIA_PORTS.start;
    for attempt in 0..20 {
        base = MEDIA_PORTS.start + (random_u16().wrapping_add(attempt) % runs) * 4;
        if !(base..base + 4).any(|port| bound(Transport::Udp, port)) {
            break;
        }
    }
    base
}

fn random_u16() -> u16 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    // Mixed with the process id, so tests starting in the same instant pick apart.
    (nanos ^ std::process::id().rotate_left(16)) as u16
}

/// Whether some socket holds `port` for `transport` (Linux's tables of IPv4 and IPv6 sockets).
fn bound(transport: Transport, port: u16) -> bool {
    let suffix = format!(":{port:04X}");
    transport.tables().iter().any(|table| {
        std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|line| line.split_whitespace().nth(1).is_some_and(|local| local.ends_with(&suffix)))
    })
}

/// sipp on `port` playing `steps` for one call, with `target` (the address to call and the service, or
/// nothing to wait for a call as a trunk does); true when sipp saw every step go as written within 90 s.
/// What went wrong is printed, with sipp's messages.
pub async fn run(steps: &str, transport: &str, port: u16, target: &[String]) -> bool {
    match played(steps, transport, port, target).await {
        Ok(true) => true,
        Ok(false) => false,
        Err(error) => {
            eprintln!("sipp could not run (cargo xtask test installs Debian's sip-tester): {error}");
            false
        }
    }
}

async fn played(steps: &str, transport: &str, port: u16, target: &[String]) -> std::io::Result<bool> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("scenario.xml");
    std::fs::write(&file, scenario(steps))?;
    let (port, media) = (port.to_string(), media_port().to_string());
    let logs = (dir.path().join("errors.log"), dir.path().join("messages.log"));
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("sipp")
            .arg("-sf")
            .arg(&file)
            .args(target)
            .args(["-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", &port, "-mp", &media])
            .args(["-t", transport, "-nostdin", "-timeout", "60s", "-timeout_error", "-trace_err", "-error_file"])
            .arg(&logs.0)
            .args(["-trace_msg", "-message_file"])
            .arg(&logs.1)
            .current_dir(dir.path())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| std::io::Error::other("sipp did not finish in 90 s"))??;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stdout);
        let tail: Vec<&str> = said.lines().rev().take(30).collect();
        let errors = std::fs::read_to_string(&logs.0).unwrap_or_default();
        let messages = std::fs::read_to_string(&logs.1).unwrap_or_default();
        let stderr = String::from_utf8_lossy(&output.stderr);
        eprintln!("sipp failed:\n{}\n{stderr}\n{errors}\n{messages}", tail.join("\n"));
    }
    Ok(output.status.success())
}

/// A µ-law WAV file (8 kHz, mono), as sipp's `rtp_stream` plays it, of `seconds` of a tone at `frequency`
/// (silence for `None`).
pub fn ulaw_wav(frequency: Option<f64>, seconds: usize) -> Vec<u8> {
    let samples: Vec<u8> = (0..8_000 * seconds)
        .map(|i| {
            let sample = frequency
                .map_or(0.0, |frequency| 6_000.0 * (std::f64::consts::TAU * frequency * i as f64 / 8_000.0).sin());
            ulaw_encode(sample as i16)
        })
        .collect();
    let length = u32::try_from(samples.len()).unwrap_or(u32::MAX);
    let mut file = Vec::with_capacity(samples.len() + 44);
    file.extend_from_slice(b"RIFF");
    file.extend_from_slice(&(36 + length).to_le_bytes());
    // A 16-byte format chunk: µ-law (7), mono, 8 kHz, 8,000 bytes a second, 1-byte blocks, 8 bits a sample.
    file.extend_from_slice(b"WAVEfmt \x10\x00\x00\x00\x07\x00\x01\x00\x40\x1f\x00\x00\x40\x1f\x00\x00\x01\x00\x08\x00");
    file.extend_from_slice(b"data");
    file.extend_from_slice(&length.to_le_bytes());
    file.extend_from_slice(&samples);
    file
}
