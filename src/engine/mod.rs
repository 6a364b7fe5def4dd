//! The storage engine: one per store file per process, shared by every
//! handle and every account of that file.
//!
//! - `storage`: redb's file backend with I/O counters and test fault hooks.
//! - `journal`, `recovery`: the write-ahead journal and its replay.
//! - `schema`: file identity, schema version, migrations.
//! - `writer`: batching, durability, checkpoints; `lane`: who runs the
//!   writer now (the caller inline, or a pool worker); `pool`: the
//!   process-wide worker threads; `cache`: the process-wide cache budget.
//! - `tx`: typed table access for the writer ([`tx::Tx`]) and readers
//!   ([`tx::Snapshot`]).
//! - `registry`: one engine per file per process.

pub(crate) mod cache;
pub(crate) mod closing;
pub(crate) mod files;
pub(crate) mod format;
pub(crate) mod journal;
pub(crate) mod lane;
pub(crate) mod look;
pub(crate) mod overlay;
pub(crate) mod pool;
pub(crate) mod protect;
pub(crate) mod recovery;
pub(crate) mod registry;
pub(crate) mod schema;
pub(crate) mod storage;
pub(crate) mod tx;
pub(crate) mod writer;

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use redb::{Builder, Database, ReadableDatabase};
use tokio::sync::oneshot;

use crate::catalog::SCHEMA_VERSION;
use crate::config::{IntegrityCheck, PageProtection, RedbStoreConfig, Synchronous};
use crate::error::{Error, KeyProblem, Result};
use crate::fault::IoFaults;
use closing::{Closing, Shutdown};
pub(crate) use format::{Keying, Opened, open_with};
use format::{open_file, sniff};
use journal::{JournalSpec, journal_path};
use lane::{Lane, Submitted};
use protect::crypt::Cipher;
use recovery::{JournalFile, RecoveryReport};
use schema::FileMeta;
use storage::IoStats;
use tx::{Snapshot, Tx};
use writer::{FnJob, Weight, Writer, WriterStatus};

/// Runs `f`, turning a panic into [`Error::Corrupted`]. redb trusts the
/// file it reads and may panic on damage it finds later than at open; no
/// such panic may cross into the caller.
pub(crate) fn contain_panic<R>(path: &Path, f: impl FnOnce() -> Result<R>) -> Result<R> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::Corrupted {
            path: path.to_path_buf(),
            detail: "redb failed reading the file structure (run `wa-redb check`)".into(),
        })
    })
}

pub(crate) struct Engine {
    pub path: PathBuf,
    /// Taken when the engine is closed (the close needs them).
    db: Option<Arc<Database>>,
    cache: Option<cache::Share>,
    /// This file's cache size (its share of the process-wide budget).
    pub cache_bytes: usize,
    lane: Arc<Lane>,
    /// The configuration in effect, merged from every opener's.
    config: Mutex<RedbStoreConfig>,
    pub io: Arc<IoStats>,
    pub status: Arc<WriterStatus>,
    pub file_id: [u8; 16],
    /// The cipher of an encrypted file: its journal and copies of it are
    /// encrypted with it.
    pub cipher: Option<Arc<Cipher>>,
    pub recovery: RecoveryReport,
    /// Set if the store was opened only to look at it ([`look`]): writes
    /// are refused and closing leaves every file as it is.
    pub look: Option<look::Look>,
}

/// The builder the engine opens its redb file with.
fn engine_builder(path: &Path, cache_bytes: usize, verify: bool) -> Builder {
    let shown = path.display().to_string();
    let mut builder = Builder::new();
    builder
        .set_cache_size(cache_bytes)
        .set_check_integrity_on_open(verify)
        .set_repair_callback(move |s| {
            log::warn!(
                "{shown}: repairing after an unclean shutdown ({:.0}%)",
                s.progress() * 100.0
            )
        });
    builder
}

/// Creates a new, empty store at `path`, atomically, and returns it open
/// for the engine: it is laid out in a temporary file of its own (unique to
/// this call, so that concurrent creators never write the same file) that
/// is then linked into place while still open. A crash never leaves a
/// half-initialized store behind, and a store created concurrently by
/// someone else is never overwritten: the loser of that race gets `None`
/// and opens the winner's store like any existing one. The handle stays
/// open across the link, so its locks cover the store from the moment it
/// has a name: no other opener can slip in between.
fn create_store_file(
    path: &Path,
    config: &RedbStoreConfig,
    cache_bytes: usize,
    io: &Arc<IoStats>,
) -> Result<Option<Opened>> {
    files::remove_stale_temps(path);
    let (tmp, file) = files::create_temp(path, files::TempKind::Creating)?;
    let builder = engine_builder(path, cache_bytes, false);
    let laid_out = open_file(
        &builder,
        file,
        &tmp,
        io.clone(),
        config.io_faults.clone(),
        Keying::of(config),
    )
    .and_then(|opened| schema::initialize(&opened.db, &tmp).map(|()| opened));
    let db = match laid_out {
        Ok(db) => db,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            // The temporary name means nothing to the caller.
            return Err(e.with_path(path));
        }
    };
    match files::link_into_place(&tmp, path) {
        Ok(()) => {
            files::sync_parent_dir(path)?;
            Ok(Some(db))
        }
        Err(e) => {
            drop(db);
            let _ = std::fs::remove_file(&tmp);
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                // Someone else won; ours was never seen by anyone.
                Ok(None)
            } else {
                Err(Error::io(path, e))
            }
        }
    }
}

/// Lays out a new store (every table and the meta entries) in a fresh
/// temporary file of [`files::create_temp`] and returns it open, without
/// journal or writer: for creation and for bulk loading. The caller moves
/// it into place, or removes it.
pub(crate) fn create_bare_temp(
    target: &Path,
    kind: files::TempKind,
    faults: Option<Arc<dyn IoFaults>>,
    keying: Keying<'_>,
) -> Result<(std::path::PathBuf, Database)> {
    files::remove_stale_temps(target);
    let (tmp, file) = files::create_temp(target, kind)?;
    match create_bare_in(file, &tmp, faults, keying) {
        Ok(db) => Ok((tmp, db)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn create_bare_in(
    file: std::fs::File,
    path: &Path,
    faults: Option<Arc<dyn IoFaults>>,
    keying: Keying<'_>,
) -> Result<Database> {
    let db = open_file(&Builder::new(), file, path, Arc::default(), faults, keying)?.db;
    schema::initialize(&db, path)?;
    Ok(db)
}

/// Reads the meta table through a read-only open, so that a redb file that
/// is not a store (or is too new) is refused before the writable open, which
/// would modify it. Other failures are left to the writable open, which can
/// repair what a read-only open cannot. Returns the cipher of an encrypted
/// file, for the writable open to take.
fn refuse_foreign_file(
    path: &Path,
    key: Option<&crate::config::EncryptionKey>,
) -> Result<Option<Arc<Cipher>>> {
    let (db, cipher) = match protect::open_read_only(path, key) {
        Ok(opened) => opened,
        Err(e) => {
            return match Error::storage(path, e) {
                // A key that does not fit: refused before anything is written.
                e @ Error::Key { .. } => Err(e),
                _ => Ok(None),
            };
        }
    };
    match schema::read_meta(&db, path) {
        Err(e @ Error::NotAStore { .. }) => Err(e),
        Ok(meta) => meta.refuse_newer(path, SCHEMA_VERSION).map(|()| cipher),
        Err(_) => Ok(cipher),
    }
}

/// Whether the file is worth compacting: larger than 1 MiB and at least
/// `auto_compact` of it free.
pub(crate) fn should_compact(db: &Database, path: &Path, config: &RedbStoreConfig) -> Result<bool> {
    let Some(threshold) = config.auto_compact else {
        return Ok(false);
    };
    let file_len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if file_len < (1 << 20) {
        return Ok(false);
    }
    let free = free_bytes(db, path, file_len)?;
    if (free as f64) < threshold * file_len as f64 {
        return Ok(false);
    }
    log::info!(
        "{}: compacting ({free} of {file_len} bytes free)",
        path.display()
    );
    Ok(true)
}

/// Compacts at open when a large part of the file is free, if every page
/// was verified at this open (after an unclean shutdown, or with
/// `IntegrityCheck::Always`). Measuring the free space walks every tree
/// without checking the references it follows, which a file opened on trust
/// should not have to pay for at each start or risk on damage; and a clean
/// close already compacted it.
fn maybe_compact(
    db: &mut Database,
    path: &Path,
    config: &RedbStoreConfig,
    verified: bool,
) -> Result<()> {
    if verified && should_compact(db, path, config)? {
        compact(db, path)?;
    }
    Ok(())
}

/// Compacts a closed store through a handle with a small page cache:
/// compaction touches every page, and a store-sized cache (at close, or
/// redb's default in `wa-redb compact`) would grow to hold them all.
pub(crate) fn compact_lean(path: &Path, config: &RedbStoreConfig) -> Result<()> {
    let mut db = open_with(
        Builder::new().set_cache_size(1 << 20),
        path,
        false,
        Arc::default(),
        config.io_faults.clone(),
        Keying::of(config),
    )?
    .db;
    contain_panic(path, || compact(&mut db, path))?;
    db.close().map_err(|e| Error::storage(path, e))
}

/// Bytes of the file not holding live data (unallocated or fragmented).
pub(crate) fn free_bytes(db: &Database, path: &Path, file_len: u64) -> Result<u64> {
    let txn = db.begin_write().map_err(|e| Error::storage(path, e))?;
    let stats = txn.stats().map_err(|e| Error::storage(path, e))?;
    txn.abort().map_err(|e| Error::storage(path, e))?;
    let used = stats.allocated_pages() * stats.page_size() as u64;
    Ok(file_len.saturating_sub(used) + stats.fragmented_bytes())
}

/// Compacts until redb reports no further progress. Every page checksum is
/// verified first: compaction follows page references without checking
/// them, so a damaged reference (bit rot in a cleanly closed file, which the
/// open trusts) would send it to read, and allocate, up to 4 GiB for one
/// page, or to copy garbage into the rewritten file.
fn compact(db: &mut Database, path: &Path) -> Result<()> {
    db.check_integrity().map_err(|e| Error::storage(path, e))?;
    while db.compact().map_err(|e| Error::storage(path, e))? {}
    Ok(())
}

impl Engine {
    /// Opens (creating, recovering, migrating as needed) the store at the
    /// canonical `path`. Blocking.
    pub fn open(path: &Path, config: &RedbStoreConfig) -> Result<Engine> {
        config.validate()?;
        if let Some(kib) = config.cache_budget_kib {
            cache::set_budget((kib as usize).saturating_mul(1024));
        }
        contain_panic(path, || Self::open_inner(path, config))
    }

    fn open_inner(path: &Path, config: &RedbStoreConfig) -> Result<Engine> {
        let jpath = journal_path(path);
        let io = Arc::new(IoStats::default());
        let share = cache::Share::take(config.cache_bytes());
        let created = match path.exists() {
            false => create_store_file(path, config, share.bytes(), &io)?,
            true => None,
        };
        let (opened, verify, protection) = match created {
            // Just laid out by us: nothing to sniff, verify or recover.
            Some(opened) => (opened, false, config.page_protection),
            None => {
                let protection = sniff(path)?;
                // The journal exists from the first write until a clean
                // close: finding one means the last process wrote and did
                // not close.
                let unclean = jpath.exists();
                let unlocked = match unclean {
                    // A plain file is checked without the key: one that is
                    // not a store at all says so, not "not encrypted".
                    false => {
                        let key = config.encryption.as_ref();
                        let key = key.filter(|_| protection == PageProtection::Verified);
                        refuse_foreign_file(path, key)?
                    }
                    true => None,
                };
                let verify = match config.integrity_check {
                    IntegrityCheck::Never => false,
                    IntegrityCheck::AfterUncleanShutdown => unclean,
                    IntegrityCheck::Always => true,
                };
                let builder = engine_builder(path, share.bytes(), verify);
                let faults = config.io_faults.clone();
                let opened = open_with(
                    &builder,
                    path,
                    false,
                    io.clone(),
                    faults,
                    unlocked.as_ref().map_or(Keying::of(config), Keying::Cipher),
                )?;
                (opened, verify, protection)
            }
        };
        let Opened { mut db, cipher } = opened;
        let mut meta: FileMeta = schema::read_meta(&db, path)?;
        // Before recovery, which would write to a file we cannot read.
        meta.refuse_newer(path, SCHEMA_VERSION)?;
        let recovery = recovery::recover(
            &db,
            path,
            &jpath,
            &mut meta,
            JournalFile::Tidy,
            cipher.as_deref(),
        )?;
        schema::migrate(&db, path, &mut meta, schema::MIGRATIONS, SCHEMA_VERSION)?;
        maybe_compact(&mut db, path, config, verify)?;
        // The file's format, not the one asked for (which only a new file
        // takes).
        let config = RedbStoreConfig {
            page_protection: protection,
            ..config.clone()
        };
        Ok(Self::assemble(
            path, db, cipher, &meta, recovery, &config, io, share, None,
        ))
    }

    /// The engine around a database that is open, recovered and migrated.
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        path: &Path,
        db: Database,
        cipher: Option<Arc<Cipher>>,
        meta: &FileMeta,
        recovery: RecoveryReport,
        config: &RedbStoreConfig,
        io: Arc<IoStats>,
        share: cache::Share,
        look: Option<look::Look>,
    ) -> Engine {
        let jpath = journal_path(path);
        let journal_spec = JournalSpec {
            path: jpath,
            schema_version: SCHEMA_VERSION,
            file_id: meta.file_id,
            sync_each: config.synchronous == Synchronous::Full,
            // Room for a journal at its checkpoint size plus one growth step.
            retain: config
                .checkpoint_journal_bytes
                .saturating_add(journal::MAX_GROWTH),
            stats: io.clone(),
            faults: config.io_faults.clone(),
            cipher: cipher.clone(),
        };
        let db = Arc::new(db);
        let status = Arc::new(WriterStatus::default());
        status.lsn.store(meta.checkpoint_lsn, Ordering::Relaxed);
        status
            .checkpoint_lsn
            .store(meta.checkpoint_lsn, Ordering::Relaxed);
        let writer = Writer {
            db: db.clone(),
            path: path.to_path_buf(),
            journal: None,
            journal_spec,
            append: config.synchronous.uses_journal(),
            lsn: meta.checkpoint_lsn,
            checkpoint_lsn: meta.checkpoint_lsn,
            config: config.clone(),
            status: status.clone(),
            dirty_since: None,
            halted: None,
            log: journal::EffectLog::new(),
            rows_deleted: 0,
        };
        // An fsync per batch never runs on the caller's thread.
        let inline = config.synchronous != Synchronous::Full;
        Engine {
            path: path.to_path_buf(),
            db: Some(db),
            cache_bytes: share.bytes(),
            cache: Some(share),
            lane: Lane::new(writer, inline),
            config: Mutex::new(config.clone()),
            io,
            status,
            file_id: meta.file_id,
            cipher,
            recovery,
            look,
        }
    }

    pub fn db(&self) -> &Database {
        self.db
            .as_ref()
            .expect("the database lives as long as the engine")
    }

    /// A read snapshot of everything acknowledged so far.
    pub fn snapshot(&self) -> Result<Snapshot<'_>> {
        let txn = self
            .db()
            .begin_read()
            .map_err(|e| Error::storage(&self.path, e))?;
        Ok(Snapshot::new(txn, &self.path))
    }

    fn closed(&self) -> Error {
        Error::Closed {
            path: self.path.clone(),
        }
    }

    /// Runs `f` in a write transaction (batched with concurrent writes; on
    /// this thread when it can, see [`lane`]) and returns once its effects
    /// are durable at the configured level.
    pub async fn write<R, F>(&self, weight: Weight, max_value: usize, f: F) -> Result<R>
    where
        F: Fn(&mut Tx<'_>) -> Result<R> + Send + 'static,
        R: Send + 'static,
    {
        if self.look.is_some() {
            return Err(Error::OpenedToLook {
                path: self.path.clone(),
            });
        }
        let (reply, mut done) = oneshot::channel();
        let job = Box::new(FnJob {
            f,
            out: None,
            reply,
            weight,
            max_value,
        });
        match self.lane.submit(job) {
            Submitted::Lead(leader) => {
                // One yield first: tasks of this runtime about to write
                // queue their jobs meanwhile and ride along in the same
                // transaction (a lone writer is polled again at once). A
                // loop of writes so never starves the runtime either.
                tokio::task::yield_now().await;
                leader.commit();
            }
            Submitted::Queued(Some(mut candidate)) => {
                // Wait for the reply; if the lane is handed to this caller
                // first, commit the next batch (likely with its own job).
                let mut turn = std::pin::pin!(candidate.turn());
                let first = std::future::poll_fn(|cx| {
                    if let Poll::Ready(leader) = turn.as_mut().poll(cx) {
                        return Poll::Ready(Err(leader));
                    }
                    Pin::new(&mut done).poll(cx).map(Ok)
                })
                .await;
                match first {
                    Ok(reply) => return reply.map_err(|_| self.closed())?,
                    Err(leader) => leader.commit(),
                }
            }
            Submitted::Queued(None) => {}
        }
        match done.try_recv() {
            Ok(result) => result,
            Err(oneshot::error::TryRecvError::Empty) => done.await.map_err(|_| self.closed())?,
            Err(oneshot::error::TryRecvError::Closed) => Err(self.closed()),
        }
    }

    /// Makes every acknowledged write part of the redb file (a durable
    /// commit) and rewinds the journal.
    pub async fn checkpoint(&self) -> Result<()> {
        self.lane.checkpoint().await.map_err(|_| self.closed())?
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
    pub fn adopt(&self, other: &RedbStoreConfig) -> Result<()> {
        other.validate()?;
        self.check_key(other.encryption.as_ref())?;
        let mut config = self.config.lock().unwrap_or_else(|p| p.into_inner());
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
            Ok::<_, Error>(())
        })?;
        if merged.synchronous != config.synchronous {
            log::info!(
                "{}: durability raised from {} to {} for every handle",
                self.path.display(),
                config.synchronous,
                merged.synchronous
            );
        }
        *config = merged;
        Ok(())
    }

    /// Whether `key` is what this file opens with: a second opener of an
    /// encrypted file must give its key too, and a key for a plain file is
    /// an error, as at the first open.
    fn check_key(&self, key: Option<&crate::config::EncryptionKey>) -> Result<()> {
        let problem = match (&self.cipher, key) {
            (None, None) => return Ok(()),
            (None, Some(_)) => KeyProblem::NotEncrypted,
            (Some(_), None) => KeyProblem::Required,
            (Some(c), Some(k)) => match c.mismatch(k) {
                None => return Ok(()),
                Some(problem) => problem,
            },
        };
        Err(Error::Key {
            path: self.path.clone(),
            problem,
        })
    }

    /// Why writes are refused, if they are.
    pub fn halted(&self) -> Option<String> {
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
            db: self.db.take()?,
            lane: self.lane.clone(),
            config: self.config(),
            io: self.io.clone(),
            status: self.status.clone(),
            cache: self.cache.take()?,
        })
    }

    /// Closes the file now, on this thread, and reports how it went.
    pub fn close(mut self) -> Result<()> {
        match self.shutdown() {
            Some(shutdown) => Closing::register(shutdown).finish().unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for Engine {
    /// The last handle is gone: the close runs on a pool worker, not on
    /// the dropping thread (see [`closing`]).
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown() {
            closing::in_background(Closing::register(shutdown));
        }
    }
}
