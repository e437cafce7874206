//! Where composed recordings are kept: the media node's disk (the default), or an S3-compatible bucket
//! (`CONVENE_RECORDINGS_URL`). With a bucket, the composer uploads a recording's files and only then removes
//! the node's copy; download links lead to short presigned URLs, so the files never pass through us.
//! Media nodes of a control plane record into the same bucket: each recording's tracks go up under its
//! folder's `tracks/` when it stops, and the composer fetches them from there.

use std::{path::Path, sync::Arc, time::Duration};

use convene_domain::TenantId;
use futures_util::{StreamExt, TryStreamExt};
use http::Method;
use object_store::{
    Attribute, Attributes, BackoffConfig, ObjectStore, ObjectStoreExt, RetryConfig,
    aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey},
    buffered::BufWriter,
    path::Path as ObjectPath,
    signer::Signer,
};
use secrecy::ExposeSecret;
use tokio::io::AsyncWriteExt;
use url::Url;
use uuid::Uuid;

use super::compose::{AUDIO_FILE, VIDEO_FILE};
use crate::platform::settings::BucketSettings;

/// The files a ready recording has, with the type players are told.
const FILES: [(&str, &str); 2] = [(VIDEO_FILE, "video/mp4"), (AUDIO_FILE, "audio/mp4")];
/// The folder, inside a recording's, of the tracks a media node recorded.
const TRACKS: &str = "tracks";
/// The most files a recording's tracks may be: one per person's camera, screen and voice, and the manifest.
const MOST_TRACK_FILES: usize = 2_000;

/// An S3-compatible bucket holding composed recordings under a prefix.
#[derive(Debug, Clone)]
pub struct Bucket {
    store: Arc<AmazonS3>,
    prefix: String,
}

impl Bucket {
    /// The bucket `settings` name, reached with their `AWS_*` options; the error says what is wrong.
    pub fn new(settings: &BucketSettings) -> Result<Self, String> {
        let mut builder = AmazonS3Builder::new();
        for (name, value) in &settings.options {
            // Variables this client has no use for (profiles, the CLI's pager, ...) are not errors.
            if let Ok(key) = name.parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(key, value.expose_secret());
            }
        }
        // A request is retried for up to a minute; longer outages are the composer's to wait out.
        let retry =
            RetryConfig { backoff: BackoffConfig::default(), max_retries: 5, retry_timeout: Duration::from_secs(60) };
        let store = builder
            .with_bucket_name(&settings.bucket)
            .with_http_connector(super::transport::RingTls)
            .with_retry(retry)
            .build()
            .map_err(|error| format!("CONVENE_RECORDINGS_URL: the bucket cannot be used ({error})"))?;
        Ok(Self { store: Arc::new(store), prefix: settings.prefix.clone() })
    }

    /// Where a recording's files go: `<prefix>/<tenant>/<recording>`, so a tenant's recordings share a folder.
    pub fn folder_for(&self, tenant: TenantId, id: Uuid) -> String {
        let folder = format!("{tenant}/{id}");
        if self.prefix.is_empty() { folder } else { format!("{}/{folder}", self.prefix) }
    }

    /// Uploads the composed files in `dir` into `folder`; done only when both are confirmed stored.
    pub async fn upload(&self, dir: &Path, folder: &str) -> Result<(), String> {
        for (file, content_type) in FILES {
            let attributes = Attributes::from_iter([
                (Attribute::ContentType, content_type),
                (Attribute::CacheControl, "private, max-age=3600"),
            ]);
            self.put(&dir.join(file), object_path(folder, file)?, attributes).await?;
        }
        Ok(())
    }

    /// Uploads every file a media node wrote for a recording in `dir` (its tracks and manifest) into
    /// `folder`'s tracks, for the composer; done only when all are confirmed stored.
    pub async fn upload_tracks(&self, dir: &Path, folder: &str) -> Result<(), String> {
        let failed = |error: std::io::Error| format!("the recording's files cannot be read ({error})");
        let mut entries = tokio::fs::read_dir(dir).await.map_err(failed)?;
        let tracks = format!("{folder}/{TRACKS}");
        while let Some(entry) = entries.next_entry().await.map_err(failed)? {
            if !entry.file_type().await.map_err(failed)?.is_file() {
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            self.put(&entry.path(), object_path(&tracks, &name)?, Attributes::new()).await?;
        }
        Ok(())
    }

    /// Fetches the tracks a media node uploaded for the recording in `folder` into `dir`; answers how many
    /// files there were (none: the node's upload never finished).
    pub async fn download_tracks(&self, folder: &str, dir: &Path) -> Result<usize, String> {
        let prefix =
            ObjectPath::parse(format!("{folder}/{TRACKS}")).map_err(|error| format!("a bad folder ({error})"))?;
        let listed: Vec<_> = self
            .store
            .list(Some(&prefix))
            .take(MOST_TRACK_FILES + 1)
            .try_collect()
            .await
            .map_err(|error| format!("the recording's tracks cannot be listed ({error})"))?;
        if listed.len() > MOST_TRACK_FILES {
            return Err(format!("the recording has more than {MOST_TRACK_FILES} files"));
        }
        let failed = |error: std::io::Error| format!("the recording's tracks cannot be written here ({error})");
        tokio::fs::create_dir_all(dir).await.map_err(failed)?;
        for object in &listed {
            // Names come from our own uploads, but a path is never built from a bucket's listing unchecked.
            let name = object.location.filename().filter(|name| !name.starts_with('.') && !name.contains(['/', '\\']));
            let Some(name) = name else { continue };
            let fetched =
                self.store.get(&object.location).await.map_err(|error| format!("fetching {name} failed ({error})"))?;
            let mut chunks = fetched.into_stream();
            let mut file = tokio::fs::File::create(dir.join(name)).await.map_err(failed)?;
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|error| format!("fetching {name} failed ({error})"))?;
                file.write_all(&chunk).await.map_err(failed)?;
            }
            file.flush().await.map_err(failed)?;
        }
        Ok(listed.len())
    }

    /// Stores the file at `source` as `location`, in parts when it is large.
    async fn put(&self, source: &Path, location: ObjectPath, attributes: Attributes) -> Result<(), String> {
        let name = location.filename().unwrap_or_default().to_owned();
        let mut file = tokio::fs::File::open(source).await.map_err(|error| format!("{name}: {error}"))?;
        // Large files go up in parts, several at once; small ones in one request.
        let mut upload = BufWriter::new(self.store.clone(), location).with_attributes(attributes);
        let failed = |error: std::io::Error| format!("uploading {name} failed ({error})");
        if let Err(error) = tokio::io::copy(&mut file, &mut upload).await {
            // Parts already sent would otherwise be kept (and billed) by the bucket.
            let _ = upload.abort().await;
            return Err(failed(error));
        }
        // A failed finish aborts its parts itself (and the writer may not be aborted after it).
        upload.shutdown().await.map_err(failed)
    }

    /// A presigned URL that fetches `file` of the recording in `folder` for `lifetime`.
    pub async fn link(&self, folder: &str, file: &str, lifetime: Duration) -> Result<Url, String> {
        let location = object_path(folder, file)?;
        self.store.signed_url(Method::GET, &location, lifetime).await.map_err(|error| error.to_string())
    }

    /// Removes the recording's files from `folder`: the composed ones and any tracks left (files already
    /// gone are not an error).
    pub async fn remove(&self, folder: &str) -> Result<(), String> {
        for (file, _) in FILES {
            self.delete(&object_path(folder, file)?).await?;
        }
        self.remove_tracks(folder).await
    }

    /// Removes the tracks a media node uploaded for the recording in `folder`, once composed.
    pub async fn remove_tracks(&self, folder: &str) -> Result<(), String> {
        let prefix =
            ObjectPath::parse(format!("{folder}/{TRACKS}")).map_err(|error| format!("a bad folder ({error})"))?;
        let listed: Vec<_> = self
            .store
            .list(Some(&prefix))
            .take(MOST_TRACK_FILES)
            .try_collect()
            .await
            .map_err(|error| format!("the recording's tracks cannot be listed ({error})"))?;
        for object in listed {
            self.delete(&object.location).await?;
        }
        Ok(())
    }

    async fn delete(&self, location: &ObjectPath) -> Result<(), String> {
        match self.store.delete(location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(format!("removing {location} failed ({error})")),
        }
    }
}

fn object_path(folder: &str, file: &str) -> Result<ObjectPath, String> {
    ObjectPath::parse(format!("{folder}/{file}")).map_err(|error| format!("a bad object key ({error})"))
}

/// Where recordings' files are: the folder the media node writes them to, and the bucket they are uploaded
/// to once composed, when there is one.
#[derive(Debug, Clone)]
pub struct Storage {
    /// The node's folder (`<data dir>/recordings`).
    pub dir: std::path::PathBuf,
    /// The bucket, from `CONVENE_RECORDINGS_URL`.
    pub bucket: Option<Bucket>,
}
