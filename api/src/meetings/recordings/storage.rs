//! Where composed recordings are kept: the media node's disk (the default), or an S3-compatible bucket
//! (`CONVENE_RECORDINGS_URL`). With a bucket, the composer uploads a recording's files and only then removes
//! the node's copy; download links lead to short presigned URLs, so the files never pass through us.

use std::{path::Path, sync::Arc, time::Duration};

use convene_domain::TenantId;
use http::Method;
use object_store::{
    Attribute, Attributes, BackoffConfig, ObjectStoreExt, RetryConfig,
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
            let location = object_path(folder, file)?;
            let mut source = tokio::fs::File::open(dir.join(file)).await.map_err(|error| format!("{file}: {error}"))?;
            let attributes = Attributes::from_iter([
                (Attribute::ContentType, content_type),
                (Attribute::CacheControl, "private, max-age=3600"),
            ]);
            // Large files go up in parts, several at once; small ones in one request.
            let mut upload = BufWriter::new(self.store.clone(), location).with_attributes(attributes);
            let failed = |error: std::io::Error| format!("uploading {file} failed ({error})");
            if let Err(error) = tokio::io::copy(&mut source, &mut upload).await {
                // Parts already sent would otherwise be kept (and billed) by the bucket.
                let _ = upload.abort().await;
                return Err(failed(error));
            }
            // A failed finish aborts its parts itself (and the writer may not be aborted after it).
            upload.shutdown().await.map_err(failed)?;
        }
        Ok(())
    }

    /// A presigned URL that fetches `file` of the recording in `folder` for `lifetime`.
    pub async fn link(&self, folder: &str, file: &str, lifetime: Duration) -> Result<Url, String> {
        let location = object_path(folder, file)?;
        self.store.signed_url(Method::GET, &location, lifetime).await.map_err(|error| error.to_string())
    }

    /// Removes the recording's files from `folder` (files already gone are not an error).
    pub async fn remove(&self, folder: &str) -> Result<(), String> {
        for (file, _) in FILES {
            match self.store.delete(&object_path(folder, file)?).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(format!("removing {file} failed ({error})")),
            }
        }
        Ok(())
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
