//! [`RedbStore`]: the public handle, and the plumbing every trait method
//! goes through (`read`, `read_blocking`, `write`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use wacore::store::error::StoreError;

use crate::config::RedbStoreConfig;
use crate::engine::{Engine, Snapshot, Tx, Weight, contain_panic};
use crate::error::{
    Error, FileOpError, OpenError, ReadError, StorageError, StorageResult, WriteError,
};

/// A whatsapp-rust storage backend on a single redb file.
///
/// Each handle is bound to one device id (one account); handles of the same
/// file share one engine, so any number of accounts can live in one file at
/// the cost of one. Cloning a handle is cheap. The file is closed when the
/// last handle of it is dropped, before the drop returns (redb's close:
/// a few fsyncs, no compaction), so that another process can open it and a
/// copy of it is the whole store at once; [`RedbStore::close`] does the
/// same and reports a failure.
#[derive(Clone)]
pub struct RedbStore {
    pub(crate) engine: Arc<Engine>,
    pub(crate) device_id: i32,
    /// This handle's `max_value_size`.
    pub(crate) max_value: usize,
}

/// What [`RedbStore::close`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseOutcome {
    /// It was the file's last handle: the file is checkpointed, closed, its
    /// journal removed.
    Closed,
    /// Other handles of the file (clones, other accounts) are still alive:
    /// the file stays open for them and closes when the last one goes.
    StillOpen,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.engine.path)
            .field("device_id", &self.device_id)
            .finish()
    }
}

/// Batch reads of more keys than this run on a blocking thread.
const INLINE_BATCH_READ: usize = 256;

/// Turns what users pass (a path, optionally `redb://`-prefixed) into a
/// path.
fn parse_location(location: &Path) -> Result<PathBuf, OpenError> {
    let invalid = |reason: &str| OpenError::InvalidPath {
        path: location.display().to_string(),
        reason: reason.to_string(),
    };
    let Some(text) = location.to_str() else {
        return Ok(location.to_path_buf());
    };
    let text = text.strip_prefix("redb://").unwrap_or(text);
    if text.is_empty() {
        return Err(invalid("the path is empty"));
    }
    if text.starts_with(":memory:") {
        return Err(invalid(
            "in-memory stores are not supported; use a file in a temporary directory",
        ));
    }
    Ok(PathBuf::from(text))
}

impl RedbStore {
    /// Opens (or creates) the store at `path` for device id 1, with the
    /// default configuration. `path` may carry a `redb://` prefix.
    pub async fn new(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::with_config_for_device(path, 1, RedbStoreConfig::default()).await
    }

    /// Opens the store at `path` for `device_id`.
    pub async fn new_for_device(
        path: impl AsRef<Path>,
        device_id: i32,
    ) -> Result<Self, StoreError> {
        Self::with_config_for_device(path, device_id, RedbStoreConfig::default()).await
    }

    /// Opens the store at `path` for device id 1 with `config`.
    pub async fn with_config(
        path: impl AsRef<Path>,
        config: RedbStoreConfig,
    ) -> Result<Self, StoreError> {
        Self::with_config_for_device(path, 1, config).await
    }

    /// Opens the store at `path` for `device_id` with `config`.
    ///
    /// Opening may replay the journal of a store that was not closed
    /// cleanly; it runs on a blocking thread.
    pub async fn with_config_for_device(
        path: impl AsRef<Path>,
        device_id: i32,
        config: RedbStoreConfig,
    ) -> Result<Self, StoreError> {
        let path = parse_location(path.as_ref())?;
        let max_value = config.max_value_size;
        let engine =
            blocking(move || crate::engine::open_shared(crate::tables::CATALOG, &path, &config))
                .await?;
        Ok(Self {
            engine,
            device_id,
            max_value,
        })
    }

    /// Opens synchronously. For programs without an async runtime (tools,
    /// tests); async code should use the async constructors.
    pub fn open_blocking(
        path: impl AsRef<Path>,
        device_id: i32,
        config: RedbStoreConfig,
    ) -> Result<Self, StoreError> {
        let path = parse_location(path.as_ref())?;
        let engine = crate::engine::open_shared(crate::tables::CATALOG, &path, &config)?;
        Ok(Self {
            engine,
            device_id,
            max_value: config.max_value_size,
        })
    }

    /// Opens the existing store at `path` only to look at it, for device
    /// id 1 ([`RedbStore::for_device`] gives the others): every read works,
    /// every write fails, and nothing is ever written to the file, its
    /// journal or its directory — read permission is enough. A store the
    /// last process did not close shows its journal applied (in memory); a
    /// store another process has open shows its last checkpoint plus the
    /// journal records complete at the time ([`RedbStore::look_report`]
    /// says which). Blocking; what `wa-redb info`, `dump`, `check` and
    /// `export` use.
    pub fn open_to_look(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_to_look_with(path, &RedbStoreConfig::default())
    }

    /// [`RedbStore::open_to_look`] with the key of an encrypted store
    /// ([`RedbStoreConfig::encryption`]; the other settings do not apply to
    /// a look).
    pub fn open_to_look_with(
        path: impl AsRef<Path>,
        config: &RedbStoreConfig,
    ) -> Result<Self, StoreError> {
        let path = crate::engine::canonical(&parse_location(path.as_ref())?)?;
        let engine = Engine::open_to_look(
            crate::tables::CATALOG,
            &path,
            false,
            config.encryption.as_ref(),
        )?;
        Ok(Self {
            engine: Arc::new(engine),
            device_id: 1,
            max_value: RedbStoreConfig::default().max_value_size,
        })
    }

    /// How a store opened with [`RedbStore::open_to_look`] was seen;
    /// `None` for a store opened to use.
    pub fn look_report(&self) -> Option<&crate::engine::LookReport> {
        self.engine.look.as_ref().map(|look| &look.report)
    }

    /// The device id (account) this handle reads and writes.
    pub fn device_id(&self) -> i32 {
        self.device_id
    }

    /// A handle for another account in the same file, sharing this one's
    /// engine.
    pub fn for_device(&self, device_id: i32) -> RedbStore {
        RedbStore {
            engine: self.engine.clone(),
            device_id,
            max_value: self.max_value,
        }
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.engine.path
    }

    /// The configuration in effect for this handle: the file's, merged from
    /// every handle that opened it (see [`RedbStoreConfig::merged_with`]),
    /// with this handle's own `max_value_size`.
    pub fn config(&self) -> RedbStoreConfig {
        RedbStoreConfig {
            max_value_size: self.max_value,
            ..self.engine.config()
        }
    }

    /// What recovery did when this process opened the file: journal records
    /// replayed after an unclean shutdown, and why the journal ended early
    /// if it did (a torn or damaged tail).
    pub fn recovery_report(&self) -> &crate::engine::RecoveryReport {
        &self.engine.recovery
    }

    /// Makes every write acknowledged so far part of the redb file itself
    /// (a durable commit), so that a copy of the file alone has them. The
    /// store does this on its own every `checkpoint_interval` and at close.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        Ok(self.engine.checkpoint().await?)
    }

    /// Closes this handle. If it is the last handle of the file, this
    /// closes the file (every acknowledged write in it, durably) and removes
    /// the journal, as dropping it would, and reports a failure to do so;
    /// otherwise the file stays open for the others. Says which.
    pub async fn close(self) -> Result<CloseOutcome, StoreError> {
        match Arc::try_unwrap(self.engine) {
            Ok(engine) => {
                blocking(move || {
                    // A replicated store's last records first (bounded by
                    // its timeout); the file is closed either way.
                    #[cfg(feature = "replica")]
                    let drained = engine.replica_drain();
                    engine.close().map_err(Error::from)?;
                    #[cfg(feature = "replica")]
                    drained.map_err(Error::from)?;
                    Ok::<_, Error>(())
                })
                .await?;
                Ok(CloseOutcome::Closed)
            }
            Err(_) => Ok(CloseOutcome::StillOpen),
        }
    }

    /// If writes halted after a failure (a full disk or an I/O error at a
    /// checkpoint, a failed journal fsync), reopens the file in place: the
    /// journal is replayed, so every acknowledged write is kept, and every
    /// handle of the file (every account) writes again. `Ok(true)` if it
    /// reopened, `Ok(false)` if writes were not halted; if the file still
    /// cannot be opened, the reason, and the store stays halted.
    ///
    /// The store also does this by itself before a write (at once after the
    /// halt, then at most once per backoff period of 1 s doubling to 1 min)
    /// and at the next open of the path; call this to know now.
    pub async fn reopen_if_halted(&self) -> Result<bool, StoreError> {
        let engine = self.engine.clone();
        blocking(move || engine.heal()).await
    }

    /// Before a write: a halted store tries to reopen its file (see
    /// [`RedbStore::reopen_if_halted`]); how it went is logged, and the
    /// write is refused as before if it is still halted.
    async fn heal_if_due(&self) {
        if self.engine.heal_due() {
            let engine = self.engine.clone();
            let _ = blocking(move || {
                engine.heal_for_write();
                Ok::<_, OpenError>(())
            })
            .await;
        }
    }

    /// Runs the store operation `op` (a trait method's name). With the
    /// `metrics` feature, records its latency and outcome and refreshes the
    /// file's sampled metrics; without it, this is `fut` itself.
    pub(crate) fn timed<T, E, F>(
        &self,
        op: &'static str,
        fut: F,
    ) -> impl Future<Output = Result<T, E>> + Send
    where
        F: Future<Output = Result<T, E>> + Send,
    {
        crate::telemetry::timed(op, fut, || self.engine.sample_metrics())
    }

    /// Reads from a snapshot on the calling thread. For point lookups and
    /// small bounded scans: no thread hop, no lock.
    pub(crate) fn read<R>(
        &self,
        f: impl FnOnce(&Snapshot<'_>) -> StorageResult<R>,
    ) -> Result<R, StoreError> {
        let engine = &self.engine;
        contain_panic(&engine.path, || Ok::<_, ReadError>(f(&engine.snapshot()?)?))
            .map_err(|e| in_store_terms(engine, e))
    }

    /// Reads on a blocking thread, for scans whose size the caller does not
    /// bound.
    pub(crate) async fn read_blocking<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Snapshot<'_>) -> StorageResult<R> + Send + 'static,
        R: Send + 'static,
    {
        self.read_blocking_as(f).await
    }

    /// [`RedbStore::read_blocking`] for a whole-file operation that reads
    /// a snapshot (a backup, an export).
    pub(crate) async fn read_for_op<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Snapshot<'_>) -> Result<R, FileOpError> + Send + 'static,
        R: Send + 'static,
    {
        self.read_blocking_as(f).await
    }

    async fn read_blocking_as<R, E, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Snapshot<'_>) -> Result<R, E> + Send + 'static,
        E: Into<Error>,
        R: Send + 'static,
    {
        let engine = self.engine.clone();
        blocking(move || {
            contain_panic(&engine.path, || -> Result<R, Error> {
                let snapshot = engine.snapshot()?;
                f(&snapshot).map_err(Into::into)
            })
            .map_err(|e| in_store_terms(&engine, e))
        })
        .await
    }

    /// Runs a read of `keys` point lookups: on the calling thread when the
    /// batch is small, on a blocking thread when it is large enough to hold
    /// up the runtime.
    pub(crate) async fn read_batch<R, F>(&self, keys: usize, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Snapshot<'_>) -> StorageResult<R> + Send + 'static,
        R: Send + 'static,
    {
        if keys <= INLINE_BATCH_READ {
            self.read(f)
        } else {
            self.read_blocking(f).await
        }
    }

    /// Runs `f` in a write transaction (batched with concurrent writes)
    /// and returns once its effects are durable at the configured level.
    /// `f` runs once; it reads and checks what it needs before its first
    /// change (see [`crate::engine::tx`]), so that failing it changes nothing.
    /// `weight` approximates the bytes it carries; small writes commit on
    /// the caller's thread.
    pub(crate) async fn write<R, F>(&self, weight: usize, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<R, WriteError> + Send + 'static,
        R: Send + 'static,
    {
        self.heal_if_due().await;
        let result = self
            .engine
            .write(Weight::bytes(weight), self.max_value, f)
            .await;
        result.map_err(|e| in_store_terms(&self.engine, e))
    }

    /// Like [`RedbStore::write`], for a write that walks rows whose number
    /// nobody knows up front (sweeps, range deletes): it always runs on a
    /// pool worker, never on the caller's thread.
    pub(crate) async fn write_scan<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<R, WriteError> + Send + 'static,
        R: Send + 'static,
    {
        self.heal_if_due().await;
        let result = self.engine.write(Weight::SCAN, self.max_value, f).await;
        result.map_err(|e| in_store_terms(&self.engine, e))
    }
}

/// A table of opaque values keyed by `(device, name)`: identities,
/// sessions, sender keys, group metadata...
pub(crate) type BytesByName = crate::tables::Table<(i32, &'static str), &'static [u8]>;

/// A table of opaque values keyed by `(device, name, name)`: base keys by
/// address and message, sent messages by chat and message.
pub(crate) type BytesByPair =
    crate::tables::Table<(i32, &'static str, &'static str), &'static [u8]>;

impl RedbStore {
    /// Upserts one value under `(first, second)` for this account.
    pub(crate) async fn put_paired(
        &self,
        t: BytesByPair,
        (first, second): (&str, &str),
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        let (d, first, second) = (self.device_id, first.to_owned(), second.to_owned());
        self.write(first.len() + second.len() + value.len(), move |tx| {
            tx.put(t, (d, first.as_str(), second.as_str()), value.as_slice())
        })
        .await
    }

    /// Upserts one value under `name` for this account.
    pub(crate) async fn put_named(
        &self,
        t: BytesByName,
        name: &str,
        value: &[u8],
    ) -> Result<(), StoreError> {
        // The job owns its copy (it is committed even if this future is
        // dropped): name and value in one allocation.
        let d = self.device_id;
        let owned = NameAndValue::new(name, value);
        self.write(owned.weight(), move |tx| {
            tx.put(t, (d, owned.name()?), owned.value())
        })
        .await
    }

    /// Upserts many values in one transaction (last one wins for a name
    /// given twice); nothing for an empty batch.
    pub(crate) async fn put_named_batch(
        &self,
        t: BytesByName,
        items: Vec<(std::sync::Arc<str>, bytes::Bytes)>,
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let d = self.device_id;
        let weight = items.iter().map(|(n, v)| n.len() + v.len()).sum();
        self.write(weight, move |tx| {
            tx.table(t)?
                .put_all(items.iter().map(|(name, value)| ((d, &**name), &value[..])))
        })
        .await
    }

    /// Deletes the value under `name`, if any.
    pub(crate) async fn delete_named(&self, t: BytesByName, name: &str) -> Result<(), StoreError> {
        let (d, name) = (self.device_id, name.to_owned());
        self.write(name.len(), move |tx| {
            tx.remove(t, (d, name.as_str())).map(drop)
        })
        .await
    }
}

/// A name and a value in one buffer, for a write job to own.
struct NameAndValue {
    buf: Box<[u8]>,
    /// Where the name ends; always a `char` boundary (it was a `str`).
    split: usize,
}

impl NameAndValue {
    fn new(name: &str, value: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(name.len() + value.len());
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(value);
        NameAndValue {
            buf: buf.into_boxed_slice(),
            split: name.len(),
        }
    }

    /// The name: the bytes of a `str`, unchanged since, so the check
    /// (a few dozen bytes) never fails.
    fn name(&self) -> StorageResult<&str> {
        std::str::from_utf8(&self.buf[..self.split])
            .map_err(|e| StorageError::decode("a key name", e))
    }

    fn value(&self) -> &[u8] {
        &self.buf[self.split..]
    }

    fn weight(&self) -> usize {
        self.buf.len()
    }
}

/// Puts errors in the store's terms: names the file in errors raised
/// without it (record decoding), and after a halt reports redb's latched
/// "previous I/O error" as the failure that halted the store.
fn in_store_terms(engine: &Engine, e: impl Into<Error>) -> StoreError {
    let path = engine.path.clone();
    match e.into() {
        Error::Decode {
            path: None,
            what,
            detail,
        } => Error::Decode {
            path: Some(path),
            what,
            detail,
        },
        Error::Storage { source, .. } if matches!(*source, redb::Error::PreviousIo) => {
            match engine.halted() {
                Some(cause) => Error::Halted {
                    path,
                    cause: Box::new(cause.into()),
                },
                None => Error::Storage { path, source },
            }
        }
        e => e,
    }
    .into()
}

/// Runs blocking work (opens, closes, scans, file copies) on the
/// process-wide long-work pool, not on a runtime thread, not on a thread of
/// its own (the number of threads stays bounded however many stores are
/// open), and not on the pool that commits writes, which it would hold up.
pub(crate) async fn blocking<R, E>(
    f: impl FnOnce() -> Result<R, E> + Send + 'static,
) -> Result<R, StoreError>
where
    R: Send + 'static,
    E: Into<StoreError> + Send + 'static,
{
    match crate::engine::run_blocking(f).await {
        Some(result) => result.map_err(Into::into),
        None => Err(StoreError::Database(
            "a whatsapp-rust-redb-storage worker task panicked".into(),
        )),
    }
}
