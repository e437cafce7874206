//! moto's S3-compatible server (from PyPI, installed by `cargo xtask test`) on loopback, for tests of
//! recordings kept in a bucket.

use std::{
    io,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How long moto may take to start listening.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// moto's server on a loopback port, stopped when dropped.
pub struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    /// Starts it on `port` and waits until it listens (`cargo xtask test` installs moto).
    pub fn start(port: u16) -> io::Result<Self> {
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = Self { child, port };
        let deadline = Instant::now() + START_PATIENCE;
        while !listening(port) {
            if Instant::now() > deadline {
                let message = format!("moto's server did not listen on {port} within {START_PATIENCE:?}");
                return Err(io::Error::new(io::ErrorKind::TimedOut, message));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }

    /// Its endpoint, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The settings that keep recordings in the bucket `meetings` (prefix `convene`) of the moto server at
/// `endpoint`, with the test's credentials.
pub fn recording_settings(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CONVENE_RECORDINGS_URL", "s3://meetings/convene/".to_owned()),
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
        ("AWS_ACCESS_KEY_ID", "convene-test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "convene-test-secret".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ]
}

/// Whether something listens on loopback TCP `port`, read from the kernel, so a listener that takes one
/// connection (an RTMP service played by ffmpeg) is not spent on a probe.
pub fn listening(port: u16) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1).is_some_and(|local| local.ends_with(&format!(":{port:04X}"))) && fields.get(3) == Some(&"0A")
    })
}
