//! A real softphone for the SIP gateway's tests: Debian's baresip (BSD-licensed), on loopback, with a
//! configuration the test writes. Its microphone is a sine tone (`ausine`), its speaker goes nowhere
//! (`aubridge`), and what it sends and hears is written to WAV files (`sndfile`), read back once it quits.
//! Commands and keys are typed on its console; keys pressed during a call leave as RFC 4733 events, as a
//! desk phone's do.

use std::{path::Path, process::Stdio, time::Duration};

use tokio::{
    io::AsyncWriteExt,
    process::{Child, ChildStdin, Command},
    time::Instant,
};

use crate::sipp::free_port;

/// Where Debian's package (`baresip-core`) puts it.
pub const BARESIP_BINARY: &str = "/usr/bin/baresip";

/// How long a key is held, and the gap after it: the console releases a key 250 ms after it is typed
/// and drops a key typed while another is down.
const KEY_PRESS: Duration = Duration::from_millis(400);

/// How a softphone takes calls to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answering {
    /// It rings until the test accepts (a call it places itself is unaffected).
    Manual,
    /// It answers at once.
    Automatic,
}

/// A running baresip, ended by [`Softphone::quit`] (or killed when dropped).
#[derive(Debug)]
pub struct Softphone {
    child: Child,
    console: ChildStdin,
    dir: tempfile::TempDir,
    port: u16,
}

/// What a softphone said and heard over its call, at `rate` samples a second, and its console's output.
#[derive(Debug)]
pub struct CallAudio {
    pub rate: u32,
    pub said: Vec<i16>,
    pub heard: Vec<i16>,
    pub console: String,
}

impl Softphone {
    /// Starts baresip as `number` on loopback, speaking a sine tone of `tone` Hz in PCMU.
    pub fn start(number: &str, tone: u32, answering: Answering) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let dumps = dir.path().display();
        // ausine gives only 48 kHz stereo; baresip resamples it to the codec's 8 kHz mono. Its RTP goes above
        // the system's ephemeral range: its default range (1024-49152) takes in the ports sipp's trunks and
        // media use (10000-32000), and a test's sipp once found its media port held.
        let config = format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{port}\nrtp_ports 61000-61999\naudio_source ausine,{tone}\n\
             audio_player aubridge,speaker\naudio_alert aubridge,speaker\nausrc_srate 48000\nausrc_channels 2\n\
             auplay_srate 48000\nauplay_channels 1\nmodule_path /usr/lib/baresip/modules\nmodule stdio.so\n\
             module g711.so\nmodule ausine.so\nmodule aubridge.so\nmodule sndfile.so\nmodule_app account.so\n\
             module_app menu.so\nsnd_path {dumps}\n"
        );
        let answer_mode = match answering {
            Answering::Manual => "manual",
            Answering::Automatic => "auto",
        };
        std::fs::write(dir.path().join("config"), config)?;
        std::fs::write(
            dir.path().join("accounts"),
            format!("<sip:{number}@127.0.0.1>;regint=0;answermode={answer_mode};audio_codecs=PCMU\n"),
        )?;
        std::fs::write(dir.path().join("contacts"), "")?;
        let log = std::fs::File::create(dir.path().join("console.log"))?;
        let mut child = Command::new(BARESIP_BINARY)
            .args(["-4", "-n", "127.0.0.1", "-f"])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let console = child.stdin.take().ok_or_else(|| std::io::Error::other("baresip's console is not piped"))?;
        Ok(Self { child, console, dir, port })
    }

    /// Where it takes SIP: a trunk's URI for calls to it.
    pub fn uri(&self) -> String {
        format!("sip:127.0.0.1:{}", self.port)
    }

    /// Calls `uri`.
    pub async fn dial(&mut self, uri: &str) -> std::io::Result<()> {
        self.type_text(&format!("/dial {uri}\n")).await
    }

    /// Presses `keys` one after another during the call.
    pub async fn press(&mut self, keys: &str) -> std::io::Result<()> {
        for key in keys.chars() {
            self.type_text(&key.to_string()).await?;
            tokio::time::sleep(KEY_PRESS).await;
        }
        Ok(())
    }

    /// Hangs up the call.
    pub async fn hang_up(&mut self) -> std::io::Result<()> {
        self.type_text("b").await
    }

    /// Whether its console has shown `text` within `timeout`.
    pub async fn shows(&self, text: &str, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        loop {
            if self.console().contains(text) {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Quits (killed after 5 s if it does not) and gives what its last call carried.
    pub async fn quit(mut self) -> std::io::Result<CallAudio> {
        // A console already closed means baresip has gone: nothing to ask.
        let _ = self.type_text("q").await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.is_err() {
            self.child.kill().await?;
        }
        let (rate, said) = dump(self.dir.path(), "-enc.wav")?;
        let (_, heard) = dump(self.dir.path(), "-dec.wav")?;
        Ok(CallAudio { rate, said, heard, console: self.console() })
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }

    async fn type_text(&mut self, text: &str) -> std::io::Result<()> {
        self.console.write_all(text.as_bytes()).await?;
        self.console.flush().await
    }
}

/// The last call's recording whose name ends in `suffix` (`sndfile` writes one per direction and call).
fn dump(dir: &Path, suffix: &str) -> std::io::Result<(u32, Vec<i16>)> {
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    names.sort();
    let path = names.pop().ok_or_else(|| std::io::Error::other(format!("baresip recorded no call ({suffix})")))?;
    pcm_wav(&std::fs::read(&path)?)
        .ok_or_else(|| std::io::Error::other(format!("{} is not 16-bit mono PCM", path.display())))
}

/// The rate and samples of a 16-bit mono PCM WAV file.
fn pcm_wav(bytes: &[u8]) -> Option<(u32, Vec<i16>)> {
    let mut rest = bytes.strip_prefix(b"RIFF")?.get(4..)?.strip_prefix(b"WAVE")?;
    let mut rate = None;
    while let (Some(id), Some(size)) = (rest.get(..4), rest.get(4..8)) {
        let size = u32::from_le_bytes(size.try_into().ok()?) as usize;
        // A file whose writer was killed keeps the length it started with (0): take what is there.
        let chunk = rest.get(8..8 + size).filter(|_| size > 0).unwrap_or(&rest[8..]);
        match id {
            b"fmt " => {
                let field = |at: usize| chunk.get(at..at + 2).map(|bytes| u16::from_le_bytes([bytes[0], bytes[1]]));
                // PCM, one channel, 16 bits.
                if (field(0)?, field(2)?, field(14)?) != (1, 1, 16) {
                    return None;
                }
                rate = Some(u32::from_le_bytes(chunk.get(4..8)?.try_into().ok()?));
            }
            b"data" => {
                return Some((
                    rate?,
                    chunk.chunks_exact(2).map(|pair| i16::from_le_bytes([pair[0], pair[1]])).collect(),
                ));
            }
            _ => {}
        }
        // Chunks are padded to an even length.
        rest = rest.get(8 + size + size % 2..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::pcm_wav;

    fn wav(format: u16, channels: u16, bits: u16, data: &[u8], data_size: u32) -> Vec<u8> {
        let mut file = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0".to_vec();
        file.extend(format.to_le_bytes());
        file.extend(channels.to_le_bytes());
        file.extend(8_000u32.to_le_bytes());
        file.extend(16_000u32.to_le_bytes());
        file.extend(2u16.to_le_bytes());
        file.extend(bits.to_le_bytes());
        file.extend(b"data");
        file.extend(data_size.to_le_bytes());
        file.extend(data);
        file
    }

    #[test]
    fn reads_mono_16_bit_pcm_and_refuses_the_rest() {
        let samples = [1u8, 0, 0xff, 0xff, 0, 0x80];
        assert_eq!(pcm_wav(&wav(1, 1, 16, &samples, 6)), Some((8_000, vec![1, -1, i16::MIN])));
        // A dump whose header still says empty, or claims more than is there, gives what is there.
        assert_eq!(pcm_wav(&wav(1, 1, 16, &samples, 0)), Some((8_000, vec![1, -1, i16::MIN])));
        assert_eq!(pcm_wav(&wav(1, 1, 16, &samples, 0xffff_ffff)), Some((8_000, vec![1, -1, i16::MIN])));
        assert_eq!(pcm_wav(&wav(1, 2, 16, &samples, 6)), None, "stereo");
        assert_eq!(pcm_wav(&wav(3, 1, 16, &samples, 6)), None, "float");
        assert_eq!(pcm_wav(b"RIFF\0\0\0\0WAVE"), None, "no data");
        assert_eq!(pcm_wav(b"junk"), None);
    }
}
