//! Operating a store: consistent backups.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Builder, Database, Durability, ReadableTable, Value, WriteTransaction};
use wacore::store::error::StoreError;

use crate::catalog::{self, META, META_CREATED_BY, META_LID_SEQ, StoreKey, Table, TableVisitor};
use crate::engine::storage::FileStorage;
use crate::engine::tx::Snapshot;
use crate::engine::{files, schema};
use crate::error::{Error, Result};
use crate::store::RedbStore;

/// Writes `data` to a new owner-only file at `path`.
pub(crate) fn write_private_file(path: &Path, data: &[u8]) -> Result<()> {
    let file = files::create_private(path, true)?;
    files::write_all_at(&file, data, 0).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

/// Copies every row of every table but the meta table from a snapshot into
/// a write transaction.
struct CopyTables<'a, 'b> {
    from: &'a Snapshot<'b>,
    to: &'a WriteTransaction,
    target: &'a Path,
}

impl TableVisitor for CopyTables<'_, '_> {
    fn visit<K: StoreKey, V: Value + 'static>(&mut self, table: Table<K, V>) -> Result<()> {
        if table.id == META.id {
            return Ok(());
        }
        let src = self
            .from
            .txn()
            .open_table(table.def)
            .map_err(|e| Error::storage(self.from.path(), e))?;
        let mut dst = self
            .to
            .open_table(table.def)
            .map_err(|e| Error::storage(self.target, e))?;
        for item in src
            .iter()
            .map_err(|e| Error::storage(self.from.path(), e))?
        {
            let (k, v) = item.map_err(|e| Error::storage(self.from.path(), e))?;
            dst.insert(k.value(), v.value())
                .map_err(|e| Error::storage(self.target, e))?;
        }
        Ok(())
    }
}

/// Opens a brand-new store file (no journal, no engine) for bulk loading.
pub(crate) fn create_bare(path: &Path) -> Result<Database> {
    let file = files::create_private(path, true)?;
    let backend =
        FileStorage::new(file, Arc::default(), None).map_err(|e| Error::storage(path, e))?;
    let db = Builder::new()
        .create_with_backend(backend)
        .map_err(|e| Error::storage(path, e))?;
    schema::initialize(&db, path)?;
    Ok(db)
}

/// Moves a finished file into place without ever replacing an existing one.
pub(crate) fn publish(tmp: &Path, target: &Path) -> Result<()> {
    let result = std::fs::hard_link(tmp, target).or_else(|e| {
        if e.kind() != std::io::ErrorKind::AlreadyExists && !target.exists() {
            std::fs::rename(tmp, target)
        } else {
            Err(e)
        }
    });
    let _ = std::fs::remove_file(tmp);
    match result {
        Ok(()) => files::sync_parent_dir(target),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::InvalidPath {
            path: target.display().to_string(),
            reason: "a file already exists there".into(),
        }),
        Err(e) => Err(Error::io(target, e)),
    }
}

/// Writes a store file at `target` holding exactly what `snapshot` sees.
pub(crate) fn write_copy(snapshot: &Snapshot<'_>, target: &Path) -> Result<()> {
    if target.exists() {
        return Err(Error::InvalidPath {
            path: target.display().to_string(),
            reason: "a file already exists there".into(),
        });
    }
    let mut tmp = target.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let db = create_bare(&tmp)?;
        let err = |e: redb::Error| Error::storage(&tmp, e);
        let mut txn = db.begin_write().map_err(|e| err(e.into()))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| err(e.into()))?;
        catalog::visit_all(&mut CopyTables {
            from: snapshot,
            to: &txn,
            target: &tmp,
        })?;
        {
            // Keep counters moving forward in the copy; its identity (file
            // id, journal position) is its own.
            let mut meta = txn.open_table(META.def).map_err(|e| err(e.into()))?;
            for key in [META_LID_SEQ, META_CREATED_BY] {
                if let Some(v) = snapshot.get(META, key, <[u8]>::to_vec)? {
                    meta.insert(key, v.as_slice()).map_err(|e| err(e.into()))?;
                }
            }
        }
        txn.commit().map_err(|e| err(e.into()))?;
        db.close().map_err(|e| err(e.into()))
    })();
    match result {
        Ok(()) => publish(&tmp, target),
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
    pub async fn backup_to(&self, target: impl AsRef<Path>) -> Result<(), StoreError> {
        let target = target.as_ref().to_path_buf();
        self.read_blocking(move |s| write_copy(s, &target)).await
    }
}
