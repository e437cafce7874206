//! Recording on a media node: the node writes a recording's tracks to its own disk as `convene up` does, and
//! when the recording stops it uploads them into the recordings' bucket before its control plane hears that
//! it stopped, so the composer (on any control-plane replica) finds them there. The node's copy goes once
//! the bucket has them.

use std::{path::PathBuf, sync::Arc, time::Duration};

use convene_domain::TenantId;
use convene_media::rooms::{Reporter, RoomEvent};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::meetings::recordings::storage::Bucket;

/// Upload tries per recording, waiting twice as long after each failure from [`FIRST_WAIT`]: about an hour
/// in all, for a bucket that is down for a while.
const UPLOAD_TRIES: u32 = 10;
const FIRST_WAIT: Duration = Duration::from_secs(4);

/// Passes the node's room events on to `inner` (its outbox), holding back each `RecordingStopped` until the
/// recording's tracks are in the bucket.
pub struct ShipTracks {
    /// Where the events go on to.
    pub inner: Arc<dyn Reporter>,
    /// Where the tracks go.
    pub bucket: Bucket,
    /// The node's recordings folder (each recording's tracks in a folder named by its id).
    pub dir: PathBuf,
    /// Stops the uploads with the node.
    pub shutdown: CancellationToken,
}

impl Reporter for ShipTracks {
    fn report(&self, event: RoomEvent) {
        let RoomEvent::RecordingStopped { room, recording, .. } = &event else {
            return self.inner.report(event);
        };
        // Ids the node made itself; anything else has no folder to ship.
        let (Ok(tenant), Ok(id)) = (TenantId::parse(&room.0), Uuid::parse_str(recording)) else {
            return self.inner.report(event);
        };
        let (inner, bucket, shutdown) = (self.inner.clone(), self.bucket.clone(), self.shutdown.clone());
        let dir = self.dir.join(id.to_string());
        tokio::spawn(async move {
            let folder = bucket.folder_for(tenant, id);
            let shipped = tokio::select! {
                () = shutdown.cancelled() => return,
                shipped = ship(&bucket, &dir, &folder) => shipped,
            };
            let event = match (shipped, event) {
                (Ok(()), event) => {
                    if let Err(error) = tokio::fs::remove_dir_all(&dir).await {
                        tracing::warn!(%error, dir = %dir.display(), "a shipped recording's tracks stay on this node");
                    }
                    event
                }
                // The composer finds nothing and says the recording failed; the reason says why.
                (Err(error), RoomEvent::RecordingStopped { room, recording, bytes, at, .. }) => {
                    let reason = Some(format!("its files could not be uploaded from the media node ({error})"));
                    RoomEvent::RecordingStopped { room, recording, reason, bytes, at }
                }
                (Err(_), event) => event,
            };
            inner.report(event);
        });
    }
}

/// Uploads the tracks in `dir` into `folder`, trying again with growing waits.
async fn ship(bucket: &Bucket, dir: &std::path::Path, folder: &str) -> Result<(), String> {
    let mut wait = FIRST_WAIT;
    let mut tries = 0;
    loop {
        tries += 1;
        match bucket.upload_tracks(dir, folder).await {
            Ok(()) => return Ok(()),
            Err(error) if tries >= UPLOAD_TRIES => return Err(error),
            Err(error) => {
                tracing::warn!(%error, tries, "a recording's tracks did not reach the bucket; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
}
