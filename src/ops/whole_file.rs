//! What the whole-file operations share: writing a copy of what a snapshot
//! sees (backups, rekeyed and salvaged copies, imports) and moving it into
//! place without ever replacing a file, and running on a store nobody else
//! has open.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Builder, Database, Value, WriteTransaction};

use crate::config::RedbStoreConfig;
use crate::engine::{Keying, Snapshot, create_bare_temp, files, open_with};
use crate::error::{FileOpError, OpenError, StorageError, StorageResult};

type Result<T, E = FileOpError> = std::result::Result<T, E>;
use crate::fault::IoFaults;
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
    type Error = StorageError;

    fn visit<K: StoreKey, V: Value + 'static>(
        &mut self,
        id: TableId,
        table: Table<K, V>,
    ) -> StorageResult<()> {
        if id == TableId::META {
            return Ok(());
        }
        let mut dst = self
            .to
            .open_table(table.def)
            .map_err(|e| StorageError::storage(self.target, e))?;
        self.from.visit(table, every_row::<K>(), |k, v| {
            dst.insert(k, v)
                .map_err(|e| StorageError::storage(self.target, e))?;
            Ok(true)
        })
    }
}

pub(crate) fn exists_already(target: &Path) -> FileOpError {
    FileOpError::InvalidPath {
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
        Ok(()) => Ok(files::sync_parent_dir(target)?),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists_already(target)),
        Err(e) => Err(StorageError::io(target, e).into()),
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
    let tmp = copy_to_temp(
        snapshot,
        target,
        files::TempKind::Partial,
        keying,
        faults,
        Identity::Own,
    )?;
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
    let err = |e: redb::TableError| StorageError::storage(path, e);
    let mut meta = txn.open_table(META.def).map_err(err)?;
    for key in [META_LID_SEQ, META_CREATED_BY] {
        if let Some(v) = snapshot.get(META, key, <[u8]>::to_vec)? {
            meta.insert(key, v.as_slice())
                .map_err(|e| StorageError::storage(path, e))?;
        }
    }
    Ok(())
}

/// Whose identity a copy has.
#[derive(Clone, Copy)]
pub(crate) enum Identity {
    /// Its own: a new file id, no journal position (backups, rekeys).
    Own,
    /// The source's file id, and `lsn` as its checkpoint: a replica's
    /// snapshot, which stays the same store wherever it is restored (the
    /// replica knows it by its file id), and whose later writes continue
    /// the source's sequence numbers. `lsn` must have been read before the
    /// snapshot's read transaction began, so that the copy holds every
    /// write up to it.
    #[cfg(feature = "replica")]
    Kept { lsn: u64 },
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
    identity: Identity,
) -> Result<PathBuf> {
    let (tmp, db) = create_bare_temp(crate::tables::CATALOG, target, kind, faults, keying)
        .map_err(|e| e.with_path(target))?;
    let result = (|| -> Result<()> {
        let err = |e: redb::Error| StorageError::storage(&tmp, e);
        let txn = crate::engine::begin_durable(&db, &tmp)?;
        tables::visit_all(&mut CopyTables {
            from: snapshot,
            to: &txn,
            target: &tmp,
        })?;
        copy_counters(snapshot, &txn, &tmp)?;
        #[cfg(feature = "replica")]
        if let Identity::Kept { lsn } = identity {
            keep_identity(snapshot, &txn, &tmp, lsn)?;
        }
        #[cfg(not(feature = "replica"))]
        let Identity::Own = identity;
        txn.commit().map_err(|e| err(e.into()))?;
        Ok(db.close().map_err(|e| err(e.into()))?)
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Gives a copy the source's file id and `lsn` as its checkpoint.
#[cfg(feature = "replica")]
fn keep_identity(
    snapshot: &Snapshot<'_>,
    txn: &WriteTransaction,
    path: &Path,
    lsn: u64,
) -> Result<()> {
    use crate::engine::{META_CHECKPOINT_LSN, META_FILE_ID};
    let id = snapshot
        .get(META, META_FILE_ID, <[u8]>::to_vec)?
        .ok_or_else(|| StorageError::corrupted(path, "the source has no file id"))?;
    crate::engine::put_meta(
        txn,
        path,
        &[
            (META_FILE_ID, &id),
            (META_CHECKPOINT_LSN, &lsn.to_le_bytes()),
        ],
    )?;
    Ok(())
}

/// Refuses to work on a file this process has open.
pub(crate) fn not_open_here(path: &Path) -> Result<()> {
    if crate::engine::is_open_here(path) {
        return Err(FileOpError::OpenHere {
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
        return Err(FileOpError::InvalidPath {
            path: path.display().to_string(),
            reason: "no such file".into(),
        });
    }
    let config = config.clone().with_auto_compact(None);
    let engine = crate::engine::open_shared(crate::tables::CATALOG, path, &config)?;
    let result = f(&engine);
    match std::sync::Arc::try_unwrap(engine) {
        Ok(engine) => engine.close().map_err(FileOpError::from).and(result),
        // Another thread opened it meanwhile.
        Err(_) => Err(FileOpError::OpenHere {
            path: path.to_path_buf(),
        }),
    }
}

/// Opens a closed store file with redb alone (no journal, no writer), for
/// whole-file operations that need exclusive access.
pub(crate) fn open_bare(path: &Path, keying: Keying<'_>) -> Result<Database, OpenError> {
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
