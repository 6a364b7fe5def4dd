//! Compaction of a store file: when it is worth it (at an open that
//! verified every page, in `maintenance()`), and how (every page verified
//! first). Never at close: a close does only what durability needs.

use std::path::Path;
use std::sync::Arc;

use redb::{Builder, Database};

use crate::config::RedbStoreConfig;
use crate::engine::files::file_len;
use crate::engine::format::{Keying, open_with};
use crate::engine::{Engine, contain_panic};
use crate::error::{CheckpointError, OpenError, StorageError, StorageResult as Result};

/// How tightly an offline compaction packs a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Packing {
    /// Moves pages to the front of the file and gives the end back, keeping
    /// the B-tree pages as they are: later inserts find room in them. What
    /// the store itself does (`maintenance()`).
    #[default]
    Balanced,
    /// Also packs the B-tree pages full (redb 5's `CompactionMode::Maximum`):
    /// the smallest file (a 68 MiB file with two thirds of its rows deleted:
    /// 11.2 MiB against 17.6 MiB), but the next inserts split full pages
    /// until they settle. For a file that will mostly be read or archived.
    Maximum,
}

/// Whether the file is worth compacting: larger than 1 MiB and at least
/// `auto_compact` of it free.
pub(crate) fn should_compact(db: &Database, path: &Path, config: &RedbStoreConfig) -> Result<bool> {
    let Some(threshold) = config.auto_compact else {
        return Ok(false);
    };
    let file_len = std::fs::metadata(path)
        .map_err(|e| StorageError::io(path, e))?
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
pub(super) fn maybe_compact(
    db: &mut Database,
    path: &Path,
    config: &RedbStoreConfig,
    verified: bool,
) -> Result<()> {
    if verified && should_compact(db, path, config)? {
        compact(db, path, redb::CompactionMode::Balanced)?;
    }
    Ok(())
}

/// Compacts a closed store through a handle with a small page cache:
/// compaction touches every page, and a store-sized cache (redb's default
/// in `wa-redb compact`) would grow to hold them all.
pub(crate) fn compact_lean(
    path: &Path,
    config: &RedbStoreConfig,
    packing: Packing,
) -> Result<(), OpenError> {
    let cache = 1 << 20;
    let mut db = open_with(
        Builder::new().set_cache_size(cache),
        cache,
        path,
        false,
        Arc::default(),
        config.io_faults.clone(),
        Keying::of(config),
    )?
    .db;
    let mode = match packing {
        Packing::Balanced => redb::CompactionMode::Balanced,
        Packing::Maximum => redb::CompactionMode::Maximum,
    };
    contain_panic(path, || compact(&mut db, path, mode))?;
    Ok(db.close().map_err(|e| StorageError::storage(path, e))?)
}

/// Bytes of the file not holding live data (unallocated or fragmented).
pub(crate) fn free_bytes(db: &Database, path: &Path, file_len: u64) -> Result<u64> {
    let txn = db
        .begin_write()
        .map_err(|e| StorageError::storage(path, e))?;
    let stats = txn.stats().map_err(|e| StorageError::storage(path, e))?;
    txn.abort().map_err(|e| StorageError::storage(path, e))?;
    let used = stats.allocated_pages() * stats.page_size() as u64;
    Ok(file_len.saturating_sub(used) + stats.fragmented_bytes())
}

/// Compacts until redb reports no further progress. Every page checksum is
/// verified first: compaction follows page references without checking
/// them, so a damaged reference (bit rot in a cleanly closed file, which the
/// open trusts) would send it to read, and allocate, up to 4 GiB for one
/// page, or to copy garbage into the rewritten file. `false` if a read in
/// progress stopped it, which only a live store can have.
fn compact(db: &mut Database, path: &Path, mode: redb::CompactionMode) -> Result<bool> {
    crate::telemetry::file_span!("wa_redb.compaction", path);
    db.check_integrity()
        .map_err(|e| StorageError::storage(path, e))?;
    loop {
        match db.compact(mode) {
            Ok(true) => {}
            Ok(false) => return Ok(true),
            // Only a live store has readers; compaction waits for a later
            // call rather than fail.
            Err(redb::CompactionError::TransactionInProgress) => {
                log::info!(
                    "{}: compaction skipped: a read is in progress",
                    path.display()
                );
                return Ok(false);
            }
            Err(e) => return Err(StorageError::storage(path, e)),
        }
    }
}

impl Engine {
    /// Compacts the open file if a quarter (`auto_compact`) or
    /// more of it is free: for `RedbStore::maintenance`. Writes of the file
    /// wait meanwhile (the lane is held), and so do reads that start (the
    /// database is taken out of its slot under its lock); a read already
    /// running, or a backup holding the database, makes it skip, as redb
    /// compacts only a file nothing else uses. Returns the file's size before
    /// and after, or `None` if it did not compact. Blocking.
    pub fn compact_if_worth(&self) -> Result<Option<(u64, u64)>, CheckpointError> {
        let config = self.config();
        if config.auto_compact.is_none() || self.look.is_some() {
            return Ok(None);
        }
        let path = self.path.clone();
        self.lane.exclusive(|writer, _| {
            if writer.halted.is_some() {
                return Ok(None);
            }
            // Everything in the file, the journal rewound, and the pages
            // that commits since the last checkpoint freed released (until
            // a durable commit they count as used): then the free space
            // measured is all there is, and the compacted file is the
            // whole store.
            writer.checkpoint()?;
            let Some(db) = writer.db.clone() else {
                return Ok(None);
            };
            // Pages freed before the last close are released by the first
            // durable commit after it, which a checkpoint with nothing to
            // do does not make.
            contain_panic(&path, || {
                crate::engine::schema::begin_durable(&db, &path)?
                    .commit()
                    .map_err(|e| StorageError::storage(&path, e))
            })?;
            if !contain_panic(&path, || should_compact(&db, &path, &config))? {
                return Ok(None);
            }
            drop(db);
            let before = file_len(&path)?;
            let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
            // The writer's reference goes; the slot's is the one to unwrap
            // (the lane is held, so no heal has taken it).
            let Some(shared) = slot.take() else {
                return Ok(None);
            };
            writer.db = None;
            let mut db = match Arc::try_unwrap(shared) {
                Ok(db) => db,
                Err(shared) => {
                    writer.db = Some(shared.clone());
                    *slot = Some(shared);
                    return Ok(None);
                }
            };
            let outcome = contain_panic(&path, || {
                compact(&mut db, &path, redb::CompactionMode::Balanced)
            });
            let db = Arc::new(db);
            writer.db = Some(db.clone());
            *slot = Some(db);
            drop(slot);
            match outcome {
                Ok(true) => Ok(Some((before, file_len(&path)?))),
                Ok(false) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
    }
}
