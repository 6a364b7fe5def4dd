//! Where a replica lives: an S3-compatible bucket and prefix, or a local
//! directory, through one object-store API (`object_store`), with requests
//! bounded in time so that a network that is down gives an error, never a
//! hang.

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig};
use wacore::store::error::StoreError;

use crate::error::{Error, FileOpError};
use crate::ops::export::{Progress, ProgressFn};

/// How long one request may take, and for how long a failed one is
/// retried: a store operation against an unreachable target fails within
/// about this bound plus [`REQUEST_TIMEOUT`].
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const RETRY_FOR: Duration = Duration::from_secs(30);
const RETRIES: usize = 3;

/// A replica target: `s3://BUCKET[/PREFIX]` or `file:///DIR` (a plain
/// path is a directory too).
///
/// For S3 the endpoint, region and credentials come from the usual
/// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_REGION`, `AWS_ENDPOINT_URL` for MinIO, Garage, R2 or another
/// S3-compatible server, `AWS_ALLOW_HTTP=true` for a plain-http one), or
/// from [`ReplicaTarget::with_options`]. A directory target creates the
/// directory if needed and fsyncs what it writes.
///
/// Requests are bounded: 30 s each, retried for at most 30 s, so an
/// unreachable target gives [`crate::Error::Replica`] (in a `StoreError`'s
/// source), never a hang. The first S3 target installs rustls's `ring`
/// provider as the process's default if none is installed (whatsapp-rust
/// does the same): an application that wants another installs it first.
///
/// A snapshot ([`crate::RedbStore::push_snapshot`]) lacks the writes made
/// after it: see [`crate::ReplicaRestoreOptions`] for what resuming from one
/// means for Signal state. A target holds the snapshots of one store (an
/// object `store` names it by file id; another store's push is refused);
/// a restored store keeps that identity and pushes on. Of two hosts
/// writing one store's replica, the one that took it over last
/// ([`crate::RedbStore::replicate_to`]) goes on and the other is refused
/// (see the README's "Replication" for the failover procedure).
#[derive(Clone)]
pub struct ReplicaTarget {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) prefix: ObjectPath,
    /// The URL as given, for messages (it holds no credentials).
    pub(crate) shown: String,
    /// The options it was made with, to make another client for it
    /// ([`ReplicaTarget::fresh`]).
    options: Arc<Vec<(String, String)>>,
    /// Told how far snapshot transfers are ([`ReplicaTarget::with_progress`]).
    pub(crate) progress: Option<ProgressFn>,
}

impl std::fmt::Debug for ReplicaTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ReplicaTarget").field(&self.shown).finish()
    }
}

impl std::fmt::Display for ReplicaTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl ReplicaTarget {
    /// The target `url` names, configured from the environment.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        Self::with_options(url, std::iter::empty::<(&str, &str)>())
    }

    /// The target `url` names, with S3 settings given as `(key, value)`
    /// pairs over those of the environment: the keys of `object_store`'s
    /// `AmazonS3ConfigKey` (`aws_endpoint`, `aws_region`,
    /// `aws_access_key_id`, `aws_secret_access_key`, `aws_allow_http`...).
    /// Ignored for a directory.
    pub fn with_options<K: AsRef<str>, V: Into<String>>(
        url: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, StoreError> {
        Ok(Self::parse(url, options).map_err(Error::from)?)
    }

    /// This target, telling `progress` how far each snapshot transfer
    /// through it is (a push's upload, a restore's download): the stage
    /// names the transfer and its object, `done` and `total` count bytes.
    /// Called often, from the task doing the transfer.
    pub fn with_progress(mut self, progress: ProgressFn) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The same target through a client of its own: HTTP connections
    /// belong to the runtime that opened them, and uploads run on a
    /// runtime of their own, never the caller's.
    pub(crate) fn fresh(&self) -> Result<Self, FileOpError> {
        let mut fresh = Self::parse(&self.shown, self.options.iter().cloned())?;
        fresh.progress = self.progress.clone();
        Ok(fresh)
    }

    /// What makes two S3 targets' clients interchangeable: the bucket,
    /// the options given and the `AWS_*` environment (which the client is
    /// built from, credentials included). `None` for a directory, whose
    /// store holds no connections.
    pub(crate) fn client_key(&self) -> Option<String> {
        let bucket = self.shown.strip_prefix("s3://")?.split('/').next()?;
        let mut options: Vec<_> = self.options.iter().collect();
        options.sort();
        let mut env: Vec<_> = std::env::vars_os()
            .filter(|(k, _)| k.to_string_lossy().starts_with("AWS_"))
            .collect();
        env.sort();
        Some(format!("{bucket}\n{options:?}\n{env:?}"))
    }

    /// Tells the progress callback, if there is one, that `done` of
    /// `total` bytes of `stage` are through.
    pub(crate) fn report(&self, stage: &str, done: u64, total: u64) {
        if let Some(progress) = &self.progress {
            progress(&Progress { stage, done, total });
        }
    }

    fn parse<K: AsRef<str>, V: Into<String>>(
        url: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, FileOpError> {
        let options: Vec<(String, String)> = options
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_string(), v.into()))
            .collect();
        let kept = Arc::new(options.clone());
        let bad = |reason: String| FileOpError::Replica {
            target: url.to_string(),
            reason,
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket: write s3://BUCKET/PREFIX".into()));
            }
            let retry = RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: RETRIES,
                retry_timeout: RETRY_FOR,
            };
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry)
                // `with_config`, not `with_client_options`: that would drop
                // what `from_env` read (endpoint, allow-http).
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                    format!("{}s", REQUEST_TIMEOUT.as_secs()),
                );
            for (key, value) in options {
                let key: AmazonS3ConfigKey = key
                    .parse()
                    .map_err(|e| bad(format!("unknown S3 option: {e}")))?;
                builder = builder.with_config(key, value);
            }
            // Before the HTTP client is built: without a provider it panics.
            install_tls_provider();
            let store = builder.build().map_err(|e| bad(e.to_string()))?;
            return Ok(ReplicaTarget {
                store: Arc::new(store),
                prefix: ObjectPath::from(prefix),
                shown: url.to_string(),
                options: kept,
                progress: None,
            });
        }
        let dir = url.strip_prefix("file://").unwrap_or(url);
        if dir.is_empty() || url.contains("://") && !url.starts_with("file://") {
            return Err(bad(
                "not a replica URL: write s3://BUCKET/PREFIX or file:///DIRECTORY".into(),
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| bad(format!("cannot create {dir}: {e}")))?;
        // Absolute, as object_store wants it (a relative path is taken
        // from the current directory).
        let dir = std::fs::canonicalize(dir).map_err(|e| bad(format!("{dir}: {e}")))?;
        let store = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| bad(e.to_string()))?
            .with_fsync(true);
        Ok(ReplicaTarget {
            store: Arc::new(store),
            prefix: ObjectPath::default(),
            shown: url.to_string(),
            options: kept,
            progress: None,
        })
    }

    /// The object `name` under this target's prefix.
    pub(crate) fn object(&self, name: &str) -> ObjectPath {
        match self.prefix.as_ref() {
            "" => ObjectPath::from(name),
            prefix => ObjectPath::from(format!("{prefix}/{name}")),
        }
    }

    /// A request to this target that failed, in the crate's terms.
    pub(crate) fn failed(&self, what: &str, e: impl std::fmt::Display) -> FileOpError {
        self.refused(format!(
            "{what}: {e} (check the URL, the AWS_* settings and that the server is reachable)"
        ))
    }

    /// An operation on this target refused before any request, and why.
    pub(crate) fn refused(&self, reason: impl Into<String>) -> FileOpError {
        FileOpError::Replica {
            target: self.shown.clone(),
            reason: reason.into(),
        }
    }
}

/// rustls needs a process-wide crypto provider before the first TLS
/// connection; installing one fails harmlessly if the application did.
fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
