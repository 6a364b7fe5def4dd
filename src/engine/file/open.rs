//! Opening a store file for the engine: creating it atomically, refusing
//! a file that is not a store (or not this key's) before anything writes to
//! it, then recovery from the journal, migrations and compaction, and the
//! engine assembled around the open database.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use redb::{Builder, Database};

use crate::config::{IntegrityCheck, PageProtection, RedbStoreConfig, Synchronous};
use crate::engine::catalog::Catalog;
use crate::engine::compact::maybe_compact;
use crate::engine::format::{Keying, Opened, engine_builder, open_file, open_with, sniff};
use crate::engine::journal::{self, JournalSpec, journal_path};
use crate::engine::lane::Lane;
use crate::engine::protect::{self, crypt::Cipher};
use crate::engine::recovery::{self, JournalFile, RecoveryReport};
use crate::engine::schema::{self, FileMeta};
use crate::engine::storage::IoStats;
use crate::engine::writer::{Writer, WriterStatus};
use crate::engine::{Engine, cache, contain_panic, files, look};
use crate::error::{OpenError, StorageError};

type Result<T, E = OpenError> = std::result::Result<T, E>;
use crate::fault::IoFaults;
use crate::telemetry::FileMetrics;

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
    catalog: &'static dyn Catalog,
    path: &Path,
    config: &RedbStoreConfig,
    cache_bytes: usize,
    io: &Arc<IoStats>,
) -> Result<Option<Opened>> {
    files::remove_stale_temps(path);
    let (tmp, file) = files::create_temp(path, files::TempKind::Creating)?;
    let builder = engine_builder(path, cache_bytes, config.page_protection, false);
    let laid_out = open_file(
        &builder,
        cache_bytes,
        file,
        &tmp,
        io.clone(),
        config.io_faults.clone(),
        Keying::of(config),
    )
    .and_then(|opened| {
        schema::initialize(catalog, &opened.db, &tmp)?;
        Ok(opened)
    });
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
                Err(StorageError::io(path, e).into())
            }
        }
    }
}

/// Lays out a new store (every table and the meta entries) in a fresh
/// temporary file of [`files::create_temp`] and returns it open, without
/// journal or writer: for creation and for bulk loading. The caller moves
/// it into place, or removes it.
pub(crate) fn create_bare_temp(
    catalog: &'static dyn Catalog,
    target: &Path,
    kind: files::TempKind,
    faults: Option<Arc<dyn IoFaults>>,
    keying: Keying<'_>,
) -> Result<(std::path::PathBuf, Database)> {
    files::remove_stale_temps(target);
    let (tmp, file) = files::create_temp(target, kind)?;
    match create_bare_in(catalog, file, &tmp, faults, keying) {
        Ok(db) => Ok((tmp, db)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn create_bare_in(
    catalog: &'static dyn Catalog,
    file: std::fs::File,
    path: &Path,
    faults: Option<Arc<dyn IoFaults>>,
    keying: Keying<'_>,
) -> Result<Database> {
    // redb's default cache; the tag entries within a default file's share
    // (those written stay in memory until flushed whatever the bound).
    let tags = RedbStoreConfig::default().cache_bytes();
    let db = open_file(
        &Builder::new(),
        tags,
        file,
        path,
        Arc::default(),
        faults,
        keying,
    )?
    .db;
    schema::initialize(catalog, &db, path)?;
    Ok(db)
}

/// Reads the meta table through a read-only open, so that a redb file that
/// is not a store (or is too new) is refused before the writable open, which
/// would modify it. Other failures are left to the writable open, which can
/// repair what a read-only open cannot. Returns the cipher of an encrypted
/// file, for the writable open to take.
fn refuse_foreign_file(
    catalog: &'static dyn Catalog,
    path: &Path,
    key: Option<&crate::config::EncryptionKey>,
) -> Result<Option<Arc<Cipher>>> {
    let (db, cipher) = match protect::open_read_only(path, key) {
        Ok(opened) => opened,
        Err(e) => {
            return match StorageError::storage(path, e) {
                // A key that does not fit: refused before anything is written.
                e @ StorageError::Key { .. } => Err(e.into()),
                _ => Ok(None),
            };
        }
    };
    match schema::read_meta(&db, path) {
        Err(e @ OpenError::NotAStore { .. }) => Err(e),
        Ok(meta) => meta
            .refuse_newer(path, catalog.schema_version())
            .map(|()| cipher),
        Err(_) => Ok(cipher),
    }
}

impl Engine {
    /// Opens (creating, recovering, migrating as needed) the store at the
    /// canonical `path`. Blocking.
    pub fn open(
        catalog: &'static dyn Catalog,
        path: &Path,
        config: &RedbStoreConfig,
    ) -> Result<Engine> {
        crate::telemetry::file_span!("wa_redb.open", path);
        config.validate()?;
        if let Some(kib) = config.cache_budget_kib {
            cache::set_budget((kib as usize).saturating_mul(1024));
        }
        contain_panic(path, || Self::open_inner(catalog, path, config))
    }

    fn open_inner(
        catalog: &'static dyn Catalog,
        path: &Path,
        config: &RedbStoreConfig,
    ) -> Result<Engine> {
        let jpath = journal_path(path);
        let io = Arc::new(IoStats::default());
        let share = cache::Share::take(config.cache_bytes(), path);
        let created = match path.exists() {
            false => create_store_file(catalog, path, config, share.bytes(), &io)?,
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
                        refuse_foreign_file(catalog, path, key)?
                    }
                    true => None,
                };
                let verify = match config.integrity_check {
                    IntegrityCheck::Never => false,
                    IntegrityCheck::AfterUncleanShutdown => unclean,
                    IntegrityCheck::Always => true,
                };
                let builder = engine_builder(path, share.bytes(), protection, verify);
                let faults = config.io_faults.clone();
                let opened = open_with(
                    &builder,
                    share.bytes(),
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
        let recovery = recovery::recover_and_migrate(
            catalog,
            &db,
            path,
            &jpath,
            &mut meta,
            JournalFile::Tidy,
            cipher.as_deref(),
        )?;
        maybe_compact(&mut db, path, config, verify)?;
        // The file's format, not the one asked for (which only a new file
        // takes).
        let config = RedbStoreConfig {
            page_protection: protection,
            ..config.clone()
        };
        Ok(Self::assemble(
            catalog, path, db, cipher, &meta, recovery, &config, io, share, None,
        ))
    }

    /// The engine around a database that is open, recovered and migrated.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::engine) fn assemble(
        catalog: &'static dyn Catalog,
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
            schema_version: catalog.schema_version(),
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
        let metrics = FileMetrics::new(path, share.bytes());
        status.lsn.store(meta.checkpoint_lsn, Ordering::Relaxed);
        status
            .checkpoint_lsn
            .store(meta.checkpoint_lsn, Ordering::Relaxed);
        let writer = Writer {
            db: Some(db.clone()),
            path: path.to_path_buf(),
            journal: None,
            journal_spec,
            append: config.synchronous.uses_journal(),
            lsn: meta.checkpoint_lsn,
            checkpoint_lsn: meta.checkpoint_lsn,
            config: config.clone(),
            status: status.clone(),
            dirty_since: None,
            unsynced_since: None,
            last_write_at: None,
            halted: None,
            log: journal::EffectLog::new(),
            deleted_since_checkpoint: 0,
            metrics: metrics.clone(),
            failures: Vec::new(),
            ship: None,
        };
        // An fsync per batch never runs on the caller's thread.
        let inline = config.synchronous != Synchronous::Full;
        Engine {
            path: path.to_path_buf(),
            catalog,
            db: std::sync::RwLock::new(Some(db)),
            heal: crate::engine::heal::Backoff::default(),
            cache_bytes: share.bytes(),
            cache: Some(share),
            lane: Lane::new(writer, inline),
            config: Mutex::new(config.clone()),
            adopting: Mutex::new(()),
            io,
            status,
            metrics,
            file_id: meta.file_id,
            cipher,
            recovery,
            look,
            replica: Mutex::new(None),
        }
    }
}
