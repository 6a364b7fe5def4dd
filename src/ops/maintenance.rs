//! Operating a store: backups, restore, compaction, deleting an account.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Builder, Database, Value, WriteTransaction};
use wacore::store::error::StoreError;

use crate::config::RedbStoreConfig;
use crate::engine::{
    Keying, Packing, Snapshot, Tx, create_bare_temp, files, journal_path, open_with,
};
use crate::error::{Error, Result};
use crate::fault::IoFaults;
use crate::handle::RedbStore;
use crate::tables::every_row;
use crate::tables::{
    self, META, META_CREATED_BY, META_LID_SEQ, StoreKey, Table, TableId, TableVisitor,
};

/// Copies every row of every table but the meta table from a snapshot into
/// a write transaction.
struct CopyTables<'a, 'b> {
    from: &'a Snapshot<'b>,
    to: &'a WriteTransaction,
    target: &'a Path,
}

impl TableVisitor for CopyTables<'_, '_> {
    fn visit<K: StoreKey, V: Value + 'static>(
        &mut self,
        id: TableId,
        table: Table<K, V>,
    ) -> Result<()> {
        if id == TableId::META {
            return Ok(());
        }
        let mut dst = self
            .to
            .open_table(table.def)
            .map_err(|e| Error::storage(self.target, e))?;
        self.from.visit(table, every_row::<K>(), |k, v| {
            dst.insert(k, v)
                .map_err(|e| Error::storage(self.target, e))?;
            Ok(true)
        })
    }
}

fn exists_already(target: &Path) -> Error {
    Error::InvalidPath {
        path: target.display().to_string(),
        reason: "a file already exists there".into(),
    }
}

/// Refuses a target that exists, before any work toward writing it (the
/// publish at the end refuses one that appeared meanwhile).
pub(crate) fn refuse_existing(target: &Path) -> Result<()> {
    match target.exists() {
        true => Err(exists_already(target)),
        false => Ok(()),
    }
}

/// Moves a finished file into place without ever replacing an existing one.
pub(crate) fn publish(tmp: &Path, target: &Path) -> Result<()> {
    match files::link_into_place(tmp, target) {
        Ok(()) => files::sync_parent_dir(target),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists_already(target)),
        Err(e) => Err(Error::io(target, e)),
    }
}

/// Writes a store file at `target` holding exactly what `snapshot` sees.
/// The copy is keyed as `keying` says (an encrypted store's copies are
/// encrypted, under the same key); its writes pass `faults` (tests).
pub(crate) fn write_copy(
    snapshot: &Snapshot<'_>,
    target: &Path,
    keying: Keying<'_>,
    faults: Option<Arc<dyn IoFaults>>,
) -> Result<()> {
    refuse_existing(target)?;
    let tmp = copy_to_temp(snapshot, target, files::TempKind::Partial, keying, faults)?;
    publish(&tmp, target).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Copies the counters of the meta table that must keep moving forward in
/// a copy; the copy's identity (file id, journal position) is its own.
pub(crate) fn copy_counters(
    snapshot: &Snapshot<'_>,
    txn: &WriteTransaction,
    path: &Path,
) -> Result<()> {
    let err = |e: redb::TableError| Error::storage(path, e);
    let mut meta = txn.open_table(META.def).map_err(err)?;
    for key in [META_LID_SEQ, META_CREATED_BY] {
        if let Some(v) = snapshot.get(META, key, <[u8]>::to_vec)? {
            meta.insert(key, v.as_slice())
                .map_err(|e| Error::storage(path, e))?;
        }
    }
    Ok(())
}

/// Writes what `snapshot` sees into a new temporary file of `kind` beside
/// `target`, complete and synced, and returns its name: the caller moves
/// it into place or removes it.
pub(crate) fn copy_to_temp(
    snapshot: &Snapshot<'_>,
    target: &Path,
    kind: files::TempKind,
    keying: Keying<'_>,
    faults: Option<Arc<dyn IoFaults>>,
) -> Result<PathBuf> {
    let (tmp, db) = create_bare_temp(crate::tables::CATALOG, target, kind, faults, keying)
        .map_err(|e| e.with_path(target))?;
    let result = (|| {
        let err = |e: redb::Error| Error::storage(&tmp, e);
        let txn = crate::engine::begin_durable(&db, &tmp)?;
        tables::visit_all(&mut CopyTables {
            from: snapshot,
            to: &txn,
            target: &tmp,
        })?;
        copy_counters(snapshot, &txn, &tmp)?;
        txn.commit().map_err(|e| err(e.into()))?;
        db.close().map_err(|e| err(e.into()))
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

impl RedbStore {
    /// Writes a consistent copy of the whole store (every account) to
    /// `target`, which must not exist, while the store stays open and in
    /// use. The copy holds every write acknowledged before the call, is
    /// compact, and opens as a store of its own.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), wacore::store::error::StoreError> {
    /// use wacore::store::traits::SignalStore;
    /// use whatsapp_rust_redb_storage::RedbStore;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let (path, copy) = (dir.path().join("live.redb"), dir.path().join("copy.redb"));
    /// let store = RedbStore::new(&path).await?;
    /// store.put_session("a@c.us.0", b"record").await?;
    /// store.backup_to(&copy).await?; // while `store` stays in use
    /// let backup = RedbStore::new(&copy).await?;
    /// assert!(backup.get_session("a@c.us.0").await?.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn backup_to(&self, target: impl AsRef<Path>) -> Result<(), StoreError> {
        let target = target.as_ref().to_path_buf();
        let cipher = self.engine.cipher.clone();
        // The copy's writes pass the store's fault hooks: tests hold a
        // backup inside its copy with them.
        let faults = self.engine.config().io_faults;
        self.read_blocking(move |s| {
            crate::telemetry::file_span!("wa_redb.backup", target);
            write_copy(s, &target, Keying::like(cipher.as_ref()), faults)
        })
        .await
    }
}

/// Rows a slice of [`RedbStore::delete_device`] deletes at most: one
/// transaction's worth, so that the next slice, after a durable checkpoint,
/// reuses the pages this one freed.
const DELETE_SLICE_ROWS: u64 = 4096;

/// Deletes up to `budget` rows of one device, table after table in catalog
/// order (the device record, in `devices`, first): one range delete per
/// table, each journaled as one compact record.
struct DeleteSlice<'a, 'b> {
    tx: &'a mut Tx<'b>,
    device_id: i32,
    budget: u64,
    rows: u64,
}

impl TableVisitor for DeleteSlice<'_, '_> {
    fn visit<K: StoreKey, V: Value + 'static>(
        &mut self,
        _: TableId,
        table: Table<K, V>,
    ) -> Result<()> {
        let left = self.budget - self.rows;
        let Some(device) = K::device_range(self.device_id).filter(|_| left > 0) else {
            return Ok(());
        };
        let encode =
            |b: &Bound<K::SelfType<'_>>| b.as_ref().map(|k| K::as_bytes(k).as_ref().to_vec());
        let lower = encode(&device.0);
        let mut upper = encode(&device.1);
        // Past `left` rows, the slice stops before the next key.
        let mut seen = 0u64;
        self.tx.visit(table, device, |k, _| {
            if seen == left {
                upper = Bound::Excluded(K::as_bytes(&k).as_ref().to_vec());
                return Ok(false);
            }
            seen += 1;
            Ok(true)
        })?;
        let lower = lower.as_ref().map(|k| K::from_bytes(k));
        let upper = upper.as_ref().map(|k| K::from_bytes(k));
        self.rows += self.tx.delete_range(table, (lower, upper))?;
        Ok(())
    }
}

/// Refuses to work on a file this process has open.
fn not_open_here(path: &Path) -> Result<()> {
    if crate::engine::is_open_here(path) {
        return Err(Error::OpenHere {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Opens and cleanly closes a store: replays the journal of a crashed
/// process and removes it. Fails if another process has the file open.
pub(crate) fn recover_and_close(path: &Path, config: &RedbStoreConfig) -> Result<()> {
    with_store_alone(path, config, |_| Ok(()))
}

/// Runs `f` on the store `path` opened alone (no other handle in this
/// process, none in another), then closes it cleanly: for whole-file
/// operations on a store nobody is using.
pub(crate) fn with_store_alone<T>(
    path: &Path,
    config: &RedbStoreConfig,
    f: impl FnOnce(&crate::engine::Engine) -> Result<T>,
) -> Result<T> {
    not_open_here(path)?;
    // Opening would create a new store: these operations need an existing one.
    if !path.exists() {
        return Err(Error::InvalidPath {
            path: path.display().to_string(),
            reason: "no such file".into(),
        });
    }
    let config = config.clone().with_auto_compact(None);
    let engine = crate::engine::open_shared(crate::tables::CATALOG, path, &config)?;
    let result = f(&engine);
    match std::sync::Arc::try_unwrap(engine) {
        Ok(engine) => engine.close().and(result),
        // Another thread opened it meanwhile.
        Err(_) => Err(Error::OpenHere {
            path: path.to_path_buf(),
        }),
    }
}

/// Opens a closed store file with redb alone (no journal, no writer), for
/// whole-file operations that need exclusive access.
pub(crate) fn open_bare(path: &Path, keying: Keying<'_>) -> Result<Database> {
    // redb's default cache; the tag entries within a default file's share.
    let tags = crate::config::RedbStoreConfig::default().cache_bytes();
    Ok(open_with(
        &Builder::new(),
        tags,
        path,
        false,
        Arc::default(),
        None,
        keying,
    )?
    .db)
}

/// Sizes of the file before and after a compaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CompactReport {
    /// The file's size before, as `stat` shows it.
    pub bytes_before: u64,
    /// The file's size after.
    pub bytes_after: u64,
}

/// What [`RedbStore::restore_file`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    /// The store file, now a copy of the backup.
    pub restored: PathBuf,
    /// Where the file it replaced is kept, if there was one.
    pub replaced: Option<PathBuf>,
}

/// Gives the store file `target` a second name beside it,
/// `<target>.replaced-<unix seconds>[-<n>]`, owner-only, and moves its
/// journal (if any) to go with it. `target` itself is left in place.
fn keep_replaced(target: &Path) -> Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut n = 0u32;
    let kept = loop {
        let suffix = match n {
            0 => format!(".replaced-{secs}"),
            n => format!(".replaced-{secs}-{n}"),
        };
        let kept = files::with_suffix(target, suffix);
        match second_name(target, &kept) {
            Ok(()) => break kept,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(Error::io(&kept, e)),
        }
    };
    let journal = journal_path(target);
    if journal.exists() {
        std::fs::rename(&journal, journal_path(&kept)).map_err(|e| Error::io(&journal, e))?;
    }
    Ok(kept)
}

/// Makes `kept` (which must not exist) hold the content of `file`: a hard
/// link, or an owner-only copy where links are not supported.
fn second_name(file: &Path, kept: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(file, kept) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(e),
        Err(_) => {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut to = options.open(kept)?;
            let copied =
                std::io::copy(&mut std::fs::File::open(file)?, &mut to).and_then(|_| to.sync_all());
            if let Err(e) = copied {
                let _ = std::fs::remove_file(kept);
                return Err(e);
            }
        }
    }
    // A store holds private keys, whatever mode the old file had.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o600);
        if let Err(e) = std::fs::set_permissions(kept, private) {
            let _ = std::fs::remove_file(kept);
            return Err(e);
        }
    }
    Ok(())
}

impl CompactReport {
    /// Bytes given back to the file system (0 if none).
    pub fn bytes_freed(&self) -> u64 {
        self.bytes_before.saturating_sub(self.bytes_after)
    }
}

impl RedbStore {
    /// Deletes one account: every row of `device_id` in every table.
    /// Returns the number of rows deleted. The space is reused by later
    /// writes; [`RedbStore::maintenance`] compacts the file when a large
    /// part of it is free ([`RedbStoreConfig::auto_compact`]), and
    /// [`RedbStore::compact_if_worth`] or [`RedbStore::compact_file`] give
    /// it back on demand.
    ///
    /// The rows go in slices of a few thousand, each its own transaction,
    /// with a durable checkpoint after each, so that each slice reuses the
    /// pages the one before freed. In one transaction a large account
    /// doubled the file: a transaction cannot reuse the pages it frees,
    /// redb grows a file below 4 GiB by doubling it, and the pages the
    /// transaction put in the grown part kept the file from shrinking back.
    /// (On a file without any free page, such as one just compacted, even
    /// the first slice grows the file so; compaction gives that back.)
    ///
    /// The device record goes in the first slice: from then on the account
    /// no longer exists for any reader (`load`, `exists`), and its remaining
    /// rows are leftovers. A crash part-way leaves such leftovers (listed by
    /// [`RedbStore::accounts`] without a device record); calling this again
    /// finishes the deletion. The account must not be written to meanwhile:
    /// rows written while the deletion runs may survive it.
    pub async fn delete_device(&self, device_id: i32) -> Result<u64, StoreError> {
        let mut rows = 0;
        loop {
            let deleted = self
                .write_scan(move |tx| {
                    let mut slice = DeleteSlice {
                        tx,
                        device_id,
                        budget: DELETE_SLICE_ROWS,
                        rows: 0,
                    };
                    tables::visit_all(&mut slice)?;
                    Ok(slice.rows)
                })
                .await?;
            rows += deleted;
            if deleted < DELETE_SLICE_ROWS {
                return Ok(rows);
            }
            // Durable: the pages this slice freed become reusable by the
            // next, and the journal starts over.
            self.checkpoint().await?;
        }
    }

    /// Compacts a store file that no process has open, returning its size
    /// before and after. (A store also compacts itself at open when a large
    /// part of the file is free, see [`RedbStoreConfig::auto_compact`].)
    ///
    /// The sizes are the file's length as the file system reports it, taken
    /// before anything touches the file and after the compaction: the
    /// recovery and the close that come first may change it (a close
    /// records redb's allocator state, a page or so on a compact file).
    pub fn compact_file(path: impl AsRef<Path>) -> Result<CompactReport, StoreError> {
        Self::compact_file_with(path, &RedbStoreConfig::default())
    }

    /// [`RedbStore::compact_file`] with the key of an encrypted store
    /// ([`RedbStoreConfig::encryption`]).
    pub fn compact_file_with(
        path: impl AsRef<Path>,
        config: &RedbStoreConfig,
    ) -> Result<CompactReport, StoreError> {
        Self::compact_file_packing(path, config, Packing::Balanced)
    }

    /// [`RedbStore::compact_file_with`], packing the file as `packing`
    /// says: [`Packing::Maximum`] (`wa-redb compact --maximum`) leaves it
    /// smallest, for a file that will mostly be read or archived.
    pub fn compact_file_packing(
        path: impl AsRef<Path>,
        config: &RedbStoreConfig,
        packing: Packing,
    ) -> Result<CompactReport, StoreError> {
        let path = crate::engine::canonical(path.as_ref())?;
        let bytes_before = std::fs::metadata(&path).map_or(0, |m| m.len());
        recover_and_close(&path, config)?;
        crate::engine::compact_lean(&path, config, packing)?;
        Ok(CompactReport {
            bytes_before,
            bytes_after: files::file_len(&path)?,
        })
    }

    /// Replaces the store file `target` with a copy of `backup` (written by
    /// [`RedbStore::backup_to`] or `wa-redb backup`), or creates it. Refuses
    /// if `target` is open in any process, or if `backup` is not a store.
    ///
    /// A file replaced is kept beside it, owner-only, as
    /// `<target>.replaced-<unix seconds>` (with `-<n>` added if that name is
    /// taken), together with its journal if a crash left one: it is a store
    /// of its own, and opening it replays that journal. The report names it;
    /// removing it is up to the caller.
    pub fn restore_file(
        backup: impl AsRef<Path>,
        target: impl AsRef<Path>,
    ) -> Result<RestoreReport, StoreError> {
        Self::restore_file_with(backup, target, &RedbStoreConfig::default())
    }

    /// [`RedbStore::restore_file`] with the key of encrypted stores
    /// ([`RedbStoreConfig::encryption`]): the backup must open with it, and
    /// so must the file it replaces.
    pub fn restore_file_with(
        backup: impl AsRef<Path>,
        target: impl AsRef<Path>,
        config: &RedbStoreConfig,
    ) -> Result<RestoreReport, StoreError> {
        let backup = crate::engine::canonical(backup.as_ref())?;
        let target = crate::engine::canonical(target.as_ref())?;
        crate::telemetry::file_span!("wa_redb.restore", target);
        if backup == target {
            return Err(Error::SameFile { path: target }.into());
        }
        // The backup must be a store this build can open: a file that is
        // none at all says so (not a redb error about magic numbers).
        crate::engine::sniff(&backup)?;
        {
            let (db, _) = crate::engine::open_read_only(&backup, config.encryption.as_ref())
                .map_err(|e| Error::storage(&backup, e))?;
            crate::engine::read_meta(&db, &backup)?
                .refuse_newer(&backup, tables::SCHEMA_VERSION)?;
        }
        // Nobody may have the target open: we are about to replace it.
        not_open_here(&target)?;
        let replacing = target.exists();
        // Held until the new file has the name: a process that opens the
        // target meanwhile is refused (and, waiting, opens the new file),
        // rather than write into the file being replaced.
        let mut held = match replacing {
            true => Some(crate::engine::while_open_elsewhere(
                config.busy_timeout,
                || open_bare(&target, Keying::of(config)),
            )?),
            false => None,
        };
        files::remove_stale_temps(&target);
        let (tmp, mut to) = files::create_temp(&target, files::TempKind::Restoring)?;
        let mut kept = None;
        let result = (|| {
            // Marks the copy as live for `remove_stale_temps` elsewhere.
            to.try_lock().map_err(|e| Error::io(&tmp, e.into()))?;
            // Not `fs::copy`: it would copy the backup's permissions, and the
            // store holds private keys (owner only).
            let mut from = std::fs::File::open(&backup).map_err(|e| Error::io(&backup, e))?;
            std::io::copy(&mut from, &mut to).map_err(|e| Error::io(&tmp, e))?;
            to.sync_all().map_err(|e| Error::io(&tmp, e))?;
            if replacing {
                kept = Some(keep_replaced(&target)?);
                let renamed = match std::fs::rename(&tmp, &target) {
                    Err(e) if files::refused_while_held(&e) => {
                        held = None;
                        std::fs::rename(&tmp, &target)
                    }
                    renamed => renamed,
                };
                renamed.map_err(|e| Error::io(&target, e))?;
            } else {
                // A journal without its store belongs to nothing.
                files::remove_if_present(&journal_path(&target))?;
                // Never over a store another process created meanwhile.
                files::link_into_place(&tmp, &target).map_err(|e| Error::io(&target, e))?;
            }
            files::sync_parent_dir(&target)
        })();
        drop(held);
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
            if let Some(kept) = &kept {
                // The target is still the old file: its second name goes,
                // its journal comes back.
                let _ = std::fs::rename(journal_path(kept), journal_path(&target));
                let _ = std::fs::remove_file(kept);
            }
        }
        result?;
        Ok(RestoreReport {
            restored: target,
            replaced: kept,
        })
    }
}
