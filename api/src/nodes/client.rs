//! A media node's line to its control plane: heartbeats with its load, and delivery of its outbox's room
//! events. Both are plain HTTP posts with the node secret; the outbox retries what does not go through.

use std::{
    future::Future,
    pin::Pin,
    time::{Duration, Instant},
};

use convene_media::{
    MediaMetrics,
    outbox::{Deliver, Envelope, Undelivered},
    rooms::Rooms,
};
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::nodes::{
    registry::HEARTBEAT_EVERY,
    wire::{EVENTS_PATH, HEARTBEAT_PATH, Heartbeat},
};

/// A request the control plane has not answered in this long has failed (a heartbeat is due again by then).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Posts to the control plane as this node.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    http: reqwest::Client,
    base: Url,
    secret: SecretString,
}

impl ControlPlane {
    /// A client of the control plane at `base` (an `http://` origin), holding the node secret.
    pub fn new(base: Url, secret: SecretString) -> Result<Self, reqwest::Error> {
        // Redirects are not followed: the secret goes only where it was configured to.
        let http =
            reqwest::Client::builder().timeout(REQUEST_TIMEOUT).redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Self { http, base, secret })
    }

    async fn post<T: serde::Serialize>(&self, path: &str, body: &T) -> Result<(), String> {
        let url = self.base.join(path).map_err(|error| error.to_string())?;
        let response = self
            .http
            .post(url)
            .bearer_auth(self.secret.expose_secret())
            .json(body)
            .send()
            .await
            .map_err(|error| format!("the control plane is unreachable: {error}"))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(format!("the control plane answered {status}: {}", body.chars().take(300).collect::<String>()))
    }

    /// Sends a heartbeat every [`HEARTBEAT_EVERY`] until `shutdown`, with the load the rooms and the media
    /// counters show. A control plane that cannot be reached is logged once when it goes and once when it is
    /// back.
    pub async fn run_heartbeats(
        self,
        mut beat: Heartbeat,
        (rooms, media): (Rooms, MediaMetrics),
        shutdown: CancellationToken,
    ) {
        let mut ticks = tokio::time::interval(HEARTBEAT_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        let mut last = (Instant::now(), media.bytes_out(), cpu_seconds());
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let count = |value: i64| u32::try_from(value.max(0)).unwrap_or(u32::MAX);
            beat.draining = rooms.is_draining();
            beat.participants = count(rooms.metrics().connections_open());
            beat.rooms = count(rooms.metrics().rooms_running());
            let now = (Instant::now(), media.bytes_out(), cpu_seconds());
            let seconds = now.0.duration_since(last.0).as_secs_f64().max(0.001);
            let per_second = |value: f64| (value / seconds).clamp(0.0, f64::from(u32::MAX)) as u32;
            beat.mbit_out = per_second(now.1.saturating_sub(last.1) as f64 * 8.0 / 1e6);
            beat.cpu_millicores = per_second((now.2 - last.2) * 1000.0);
            last = now;
            match self.post(HEARTBEAT_PATH, &beat).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("heartbeats reach the control plane again");
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "a heartbeat did not reach the control plane");
                }
                Err(_) => {}
            }
        }
    }
}

/// This process's CPU time so far (0 where `/proc` cannot be read: the figure is for operators only).
fn cpu_seconds() -> f64 {
    convene_media::process::usage(None).map_or(0.0, |usage| usage.cpu_seconds)
}

impl Deliver for ControlPlane {
    fn deliver<'a>(
        &'a self,
        envelope: &'a Envelope,
    ) -> Pin<Box<dyn Future<Output = Result<(), Undelivered>> + Send + 'a>> {
        Box::pin(async move { self.post(EVENTS_PATH, envelope).await.map_err(Undelivered) })
    }
}
