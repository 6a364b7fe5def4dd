//! The storage engine: one per store file per process, shared by every
//! handle and every account of that file. It knows no WhatsApp table: the
//! layers above give it a catalog of tables.
//!
//! - `commit/`: the lane (who runs the writer now), the writer (batches,
//!   durability, checkpoints), the worker pool.
//! - `wal/`: the write-ahead journal and its replay at open.
//! - `file/`: opening a file, its format, schema and identity, redb's file
//!   backend, the cache budget, compaction, file-system helpers.
//! - `lifecycle/`: one engine per file per process, closing, healing.
//! - `protect/`: format v2's tagged (and encrypted) pages.
//! - `look/`: opening a store only to look at it.
//! - `tx`: typed table access for the writer (`Tx`) and readers
//!   (`Snapshot`).
//!
//! The rest of the crate uses only `Engine`'s methods and the facade
//! re-exported below; the groups are private.

mod catalog;
mod commit;
mod file;
mod lifecycle;
mod look;
mod protect;
mod tx;
mod wal;

// The groups' modules under their short names, for the engine's own use
// (a child module sees its parent's private imports).
use commit::{lane, pool, ship, writer};
use file::{cache, compact, format, schema, storage};
use lifecycle::{closing, heal, registry};
use wal::{journal, recovery};

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::Poll;

use redb::{Database, ReadableDatabase};
use tokio::sync::oneshot;

use crate::config::{RedbStoreConfig, Synchronous};
use crate::error::{
    CheckpointError, KeyProblem, OpenError, ReadError, StorageError, StorageResult as Result,
    WriteError,
};
use crate::telemetry::FileMetrics;
use closing::Shutdown;
use lane::{Attempt, Committer, Lane, Waiting};
use protect::crypt::Cipher;
use ship::ShipWatch;
use storage::IoStats;
use writer::{FnJob, WriterStatus};

// The facade: everything the layers above use of the engine, besides
// `Engine`'s own methods. Anything not listed here is the engine's own.
// The catalog's META entry must be this one (checked by its tests).
#[cfg(test)]
pub(crate) use catalog::META;
/// For `dump`, and for a replica's snapshot, which keeps the file's
/// identity and records where its journal position is.
#[cfg(any(feature = "cli", feature = "replica"))]
pub(crate) use catalog::META_CHECKPOINT_LSN;
#[cfg(feature = "replica")]
pub(crate) use catalog::META_FILE_ID;
pub(crate) use catalog::{Bounds, Catalog, META_CREATED_BY, Migration, Table, TableTag, every_row};
/// For `dump`, which shows the meta entries by name.
#[cfg(feature = "cli")]
pub(crate) use catalog::{META_CHECKPOINTED_AT, META_SCHEMA_VERSION};
pub(crate) use commit::pool::run as run_blocking;
#[cfg(feature = "replica")]
pub(crate) use commit::ship::{RecordSink, ShipBounds, SinkError, UploadDone};
pub(crate) use commit::writer::Weight;
pub use file::compact::Packing;
pub(crate) use file::compact::compact_lean;
/// File-system helpers: temporaries, renames that never overwrite,
/// positional I/O, free space.
pub(crate) use file::files;
pub(crate) use file::format::{Keying, open_with, sniff};
pub(crate) use file::open::create_bare_temp;
#[cfg(feature = "replica")]
pub(crate) use file::schema::put_meta;
pub(crate) use file::schema::{begin_durable, read_meta};
pub(crate) use lifecycle::registry::{canonical, is_open_here, open_shared, while_open_elsewhere};
pub use look::LookReport;
pub(crate) use protect::crypt::{is_sealed_file, open_sealed_file};
pub(crate) use protect::{open_read_only, rewrap};
pub(crate) use tx::{NameRange, Snapshot, Tx, apply_effect};
#[cfg(feature = "replica")]
pub(crate) use wal::journal::{END_MARKER, split_object};
pub(crate) use wal::journal::{Effect, journal_path};
pub use wal::recovery::RecoveryReport;

/// Runs `f`, turning a panic into [`StorageError::Corrupted`]. redb trusts the
/// file it reads and may panic on damage it finds later than at open; no
/// such panic may cross into the caller.
pub(crate) fn contain_panic<R, E: From<StorageError>>(
    path: &Path,
    f: impl FnOnce() -> Result<R, E>,
) -> Result<R, E> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(StorageError::corrupted(
            path,
            "redb failed reading the file structure (run `wa-redb check`)",
        )
        .into())
    })
}

pub(crate) struct Engine {
    pub path: PathBuf,
    /// The tables this file holds, as the layer above defines them.
    pub catalog: &'static dyn Catalog,
    /// Taken when the engine is closed (the close needs it), and while a
    /// halted engine reopens its file ([`heal`]): then `None`, and reads
    /// fail with [`ReadError::Halted`].
    db: RwLock<Option<Arc<Database>>>,
    /// When a halted engine may next try to reopen its file by itself.
    heal: heal::Backoff,
    cache: Option<cache::Share>,
    /// This file's cache size (its share of the process-wide budget).
    pub cache_bytes: usize,
    lane: Arc<Lane>,
    /// The configuration in effect, merged from every opener's. Locked
    /// only to read or replace it, never across I/O.
    config: Mutex<RedbStoreConfig>,
    /// Held by [`Engine::adopt`]: one reconfiguration at a time.
    adopting: Mutex<()>,
    pub io: Arc<IoStats>,
    pub status: Arc<WriterStatus>,
    /// This file's metrics handles (nothing without the `metrics` feature).
    pub metrics: Arc<FileMetrics>,
    pub file_id: [u8; 16],
    /// The cipher of an encrypted file: its journal and copies of it are
    /// encrypted with it.
    pub cipher: Option<Arc<Cipher>>,
    pub recovery: RecoveryReport,
    /// Set if the store was opened only to look at it ([`look`]): writes
    /// are refused and closing leaves every file as it is.
    pub look: Option<look::Look>,
    /// The shipper of a replicated store (`Engine::replicate`).
    #[cfg_attr(not(feature = "replica"), allow(dead_code))]
    replica: Mutex<Option<ShipWatch>>,
}

impl Engine {
    fn db_slot(&self) -> std::sync::RwLockReadGuard<'_, Option<Arc<Database>>> {
        self.db.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Why there is no database right now: a halted engine reopening (or
    /// that failed to), or a closed one.
    fn no_db(&self) -> ReadError {
        match self.halted() {
            Some(cause) => ReadError::Halted {
                path: self.path.clone(),
                cause: Box::new(cause),
            },
            None => ReadError::Closed {
                path: self.path.clone(),
            },
        }
    }

    /// The database, for whole-file reads outside a snapshot.
    pub fn database(&self) -> Result<Arc<Database>, ReadError> {
        self.db_slot().clone().ok_or_else(|| self.no_db())
    }

    /// Refreshes this file's sampled metrics (I/O, file size, free space,
    /// accounts, cache hits and misses), at most once a second: called as
    /// operations finish. Nothing without the `metrics` feature.
    pub fn sample_metrics(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        if !self.metrics.sample_due() {
            return;
        }
        let db = self.db_slot().clone();
        let cache = db.as_ref().map(|db| db.cache_stats());
        let accounts = self
            .snapshot()
            .ok()
            .and_then(|s| self.catalog.accounts(s.txn(), &self.path).ok());
        self.metrics.publish(crate::telemetry::Sample {
            read_bytes: self.io.read_bytes.load(Relaxed),
            written_bytes: self.io.write_bytes.load(Relaxed),
            file_bytes: std::fs::metadata(&self.path).map(|m| m.len()).ok(),
            disk_free_bytes: files::disk_free(&self.path),
            accounts,
            cache_hits: cache.as_ref().map_or(0, |c| c.read_hits()),
            cache_misses: cache.as_ref().map_or(0, |c| c.read_misses()),
        });
    }

    /// A read snapshot of everything acknowledged so far.
    pub fn snapshot(&self) -> Result<Snapshot<'_>, ReadError> {
        let slot = self.db_slot();
        let db = slot.as_ref().ok_or_else(|| self.no_db())?;
        let txn = db
            .begin_read()
            .map_err(|e| StorageError::storage(&self.path, e))?;
        drop(slot);
        Ok(Snapshot::new(txn, &self.path))
    }

    /// Runs `f` in a write transaction (batched with concurrent writes; on
    /// this thread when it can, see [`lane`]) and returns once its effects
    /// are durable at the configured level. Once polled, the write is
    /// committed whether or not the future is then dropped.
    pub async fn write<R, F>(&self, weight: Weight, max_value: usize, f: F) -> Result<R, WriteError>
    where
        F: FnOnce(&mut Tx<'_>) -> Result<R, WriteError> + Send + 'static,
        R: Send + 'static,
    {
        if self.look.is_some() {
            return Err(WriteError::OpenedToLook {
                path: self.path.clone(),
            });
        }
        let (reply, mut done) = oneshot::channel();
        let job = Box::new(FnJob {
            f: Some(f),
            out: None,
            reply,
            weight,
            max_value,
        });
        // From here the job runs whatever becomes of this future (see
        // `lane`): dropped while waiting, it asks a pool worker to commit it.
        let committer = self.lane.submit(job);
        let mut abandon = Abandon {
            lane: &self.lane,
            armed: true,
        };
        let mut yielded = false;
        let reply = match committer {
            Committer::Caller { first } => loop {
                // A yield first: tasks of this runtime about to write queue
                // their jobs meanwhile and ride along in the same
                // transaction (a lone writer is polled again at once), and
                // after each batch this caller committed without its own
                // job in it, so that others run before the next. A loop of
                // writes so never starves the runtime either.
                tokio::task::yield_now().await;
                // Once, a caller that joined a batch being gathered leaves
                // it to the caller gathering it.
                let patient = !std::mem::replace(&mut yielded, true) && !first;
                let mut waiting = Waiting::default();
                let next = std::future::poll_fn(|cx| {
                    if let Poll::Ready(reply) = Pin::new(&mut done).poll(cx) {
                        return Poll::Ready(Some(reply));
                    }
                    // The lane is held only inside this call, never across
                    // a `Pending`.
                    match self.lane.try_commit(&mut waiting, cx.waker(), patient) {
                        Attempt::Committed => match Pin::new(&mut done).poll(cx) {
                            Poll::Ready(reply) => Poll::Ready(Some(reply)),
                            // Its own job is further back: one batch per
                            // poll, then the yield above.
                            Poll::Pending => Poll::Ready(None),
                        },
                        Attempt::Defer => Poll::Ready(None),
                        Attempt::Busy | Attempt::Elsewhere => Poll::Pending,
                    }
                })
                .await;
                if let Some(reply) = next {
                    break reply;
                }
            },
            Committer::Pool => (&mut done).await,
        };
        abandon.armed = false;
        reply.map_err(|_| WriteError::Closed {
            path: self.path.clone(),
        })?
    }

    /// Makes every acknowledged write part of the redb file (a durable
    /// commit) and rewinds the journal.
    pub async fn checkpoint(&self) -> Result<(), CheckpointError> {
        let closed = || CheckpointError::Closed {
            path: self.path.clone(),
        };
        self.lane.checkpoint().await.map_err(|_| closed())?
    }

    /// The configuration in effect.
    pub fn config(&self) -> RedbStoreConfig {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Adapts the open file to another opener's configuration, by the
    /// rules of [`RedbStoreConfig::merged_with`]: a stronger durability, a
    /// shorter checkpoint interval or journal size take effect for every
    /// handle at once (durability after a checkpoint). Fails, changing
    /// nothing, if that checkpoint fails. Blocking.
    pub fn adopt(&self, other: &RedbStoreConfig) -> Result<(), OpenError> {
        other.validate()?;
        self.check_key(other.encryption.as_ref())?;
        // One adopter at a time; `config()` never waits for it, as the
        // exclusive section below may checkpoint (fsyncs).
        let _one = self.adopting.lock().unwrap_or_else(|p| p.into_inner());
        let config = self.config();
        let merged = config.merged_with(other);
        if other.cache_size_kib != config.cache_size_kib
            || other.integrity_check != config.integrity_check
        {
            log::info!(
                "{}: already open; its cache size and integrity check stay as opened",
                self.path.display()
            );
        }
        let changed = merged.synchronous != config.synchronous
            || merged.checkpoint_interval != config.checkpoint_interval
            || merged.checkpoint_journal_bytes != config.checkpoint_journal_bytes
            || merged.auto_compact != config.auto_compact;
        if !changed {
            return Ok(());
        }
        self.lane.exclusive(|writer, inline| {
            writer.reconfigure(&merged)?;
            inline.store(
                merged.synchronous != Synchronous::Full,
                std::sync::atomic::Ordering::Relaxed,
            );
            Ok::<_, CheckpointError>(())
        })?;
        if merged.synchronous != config.synchronous {
            log::info!(
                "{}: durability raised from {} to {} for every handle",
                self.path.display(),
                config.synchronous,
                merged.synchronous
            );
        }
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = merged;
        Ok(())
    }

    /// Whether `key` is what this file opens with: a second opener of an
    /// encrypted file must give its key too, and a key for a plain file is
    /// an error, as at the first open.
    fn check_key(&self, key: Option<&crate::config::EncryptionKey>) -> Result<(), OpenError> {
        let problem = match (&self.cipher, key) {
            (None, None) => return Ok(()),
            (None, Some(_)) => KeyProblem::NotEncrypted,
            (Some(_), None) => KeyProblem::Required,
            (Some(c), Some(k)) => match c.mismatch(k) {
                None => return Ok(()),
                Some(problem) => problem,
            },
        };
        Err(OpenError::key(&self.path, problem))
    }

    /// Why writes are refused, if they are.
    pub fn halted(&self) -> Option<StorageError> {
        self.status
            .halted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What closing needs, taken out of the engine (once). Nothing for a
    /// store opened to look at: its database lives in memory over the
    /// untouched file, and dropping it is all there is to closing it.
    fn shutdown(&mut self) -> Option<Shutdown> {
        if self.look.is_some() {
            return None;
        }
        Some(Shutdown {
            path: self.path.clone(),
            db: self.db.get_mut().unwrap_or_else(|p| p.into_inner()).take(),
            lane: self.lane.clone(),
            status: self.status.clone(),
            cache: self.cache.take()?,
        })
    }

    /// Closes the file now, on this thread, and reports how it went.
    pub fn close(mut self) -> Result<(), CheckpointError> {
        match self.shutdown() {
            Some(shutdown) => registry::close(shutdown).unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

/// A write future's job, queued: if the future is dropped before the reply
/// came, the lane is told, so that the job is committed soon even if no
/// other caller comes along.
struct Abandon<'a> {
    lane: &'a Lane,
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.lane.abandon();
        }
    }
}

impl Drop for Engine {
    /// The last handle is gone: the file is closed on this thread and
    /// released before the drop returns (see [`closing`]); a failure is
    /// logged, `RedbStore::close` reports it.
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown() {
            registry::close(shutdown);
        }
    }
}
