//! File identity, schema version and migrations.
//!
//! A store file records its schema version in the meta table. Opening a
//! file written by a newer schema fails; opening an older one runs the
//! forward migrations, all in one durable write transaction, so a crash
//! mid-migration leaves the file at its old version.

use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableError, WriteTransaction};

use crate::engine::catalog::{
    Catalog, META, META_CHECKPOINT_LSN, META_CHECKPOINTED_AT, META_CREATED_BY, META_FILE_ID,
    META_SCHEMA_VERSION, Migration,
};
use crate::error::{OpenError, StorageError, StorageResult as Result};

/// What the meta table says about a file.
#[derive(Debug, Clone)]
pub(crate) struct FileMeta {
    pub schema_version: u32,
    pub file_id: [u8; 16],
    pub checkpoint_lsn: u64,
    /// When the last checkpoint was committed (unix seconds), if recorded.
    pub checkpointed_at: Option<i64>,
}

impl FileMeta {
    /// Refuses a file written by a schema version newer than `supported`.
    pub fn refuse_newer(&self, path: &Path, supported: u32) -> Result<(), OpenError> {
        if self.schema_version > supported {
            return Err(OpenError::SchemaTooNew {
                path: path.to_path_buf(),
                found: self.schema_version,
                supported,
            });
        }
        Ok(())
    }
}

/// Begins a write transaction that commits durably (`Durability::Immediate`).
pub(crate) fn begin_durable(db: &Database, path: &Path) -> Result<WriteTransaction> {
    let mut txn = db
        .begin_write()
        .map_err(|e| StorageError::storage(path, e))?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| StorageError::storage(path, e))?;
    Ok(txn)
}

/// Sets meta `entries` in `txn`.
pub(crate) fn put_meta(
    txn: &WriteTransaction,
    path: &Path,
    entries: &[(&str, &[u8])],
) -> Result<()> {
    let mut meta = txn
        .open_table(META.def)
        .map_err(|e| StorageError::storage(path, e))?;
    for (key, value) in entries {
        meta.insert(*key, *value)
            .map_err(|e| StorageError::storage(path, e))?;
    }
    Ok(())
}

/// A fresh random identity for a file.
pub(crate) fn random_file_id() -> [u8; 16] {
    use std::hash::{BuildHasher, RandomState};
    let now = std::time::SystemTime::now();
    let a = RandomState::new().hash_one((std::process::id(), now));
    let b = RandomState::new().hash_one((a, std::time::Instant::now()));
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&a.to_le_bytes());
    id[8..].copy_from_slice(&b.to_le_bytes());
    id
}

/// Lays out a new, empty store in `db`: every table, the meta entries.
pub(crate) fn initialize(catalog: &dyn Catalog, db: &Database, path: &Path) -> Result<()> {
    let txn = begin_durable(db, path)?;
    catalog.create_tables(&txn, path)?;
    put_meta(&txn, path, catalog.initial_meta())?;
    put_meta(
        &txn,
        path,
        &[
            (META_SCHEMA_VERSION, &catalog.schema_version().to_le_bytes()),
            (META_FILE_ID, &random_file_id()),
            (META_CHECKPOINT_LSN, &0u64.to_le_bytes()),
            (
                META_CREATED_BY,
                concat!("whatsapp-rust-redb-storage ", env!("CARGO_PKG_VERSION")).as_bytes(),
            ),
        ],
    )?;
    txn.commit().map_err(|e| StorageError::storage(path, e))
}

/// Reads the meta entries, checking that the file is a store this build can
/// open.
pub(crate) fn read_meta(db: &impl ReadableDatabase, path: &Path) -> Result<FileMeta, OpenError> {
    let err = |e: redb::Error| StorageError::storage(path, e);
    let not_a_store = |reason: &str| OpenError::not_a_store(path, reason);
    let txn = db.begin_read().map_err(|e| err(e.into()))?;
    let meta = match txn.open_table(META.def) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => {
            return Err(not_a_store(
                "it is a redb database without this crate's meta table (written by another program?)",
            ));
        }
        Err(TableError::TableTypeMismatch { .. }) => {
            return Err(not_a_store("its meta table has an unexpected type"));
        }
        Err(e) => return Err(err(e.into()).into()),
    };
    let get = |key: &str| -> Result<Vec<u8>, OpenError> {
        meta.get(key)
            .map_err(|e| err(e.into()))?
            .map(|v| v.value().to_vec())
            .ok_or_else(|| not_a_store(&format!("meta entry {key:?} is missing")))
    };
    let corrupted = |what: &str, len: usize| {
        StorageError::corrupted(path, format!("meta entry {what:?}: expected {len} bytes"))
    };
    let schema_version = get(META_SCHEMA_VERSION)?
        .try_into()
        .map(u32::from_le_bytes)
        .map_err(|_| corrupted(META_SCHEMA_VERSION, 4))?;
    let file_id: [u8; 16] = get(META_FILE_ID)?
        .try_into()
        .map_err(|_| corrupted(META_FILE_ID, 16))?;
    let checkpoint_lsn = get(META_CHECKPOINT_LSN)?
        .try_into()
        .map(u64::from_le_bytes)
        .map_err(|_| corrupted(META_CHECKPOINT_LSN, 8))?;
    // Recorded since this key was added; absent (or unreadable) means
    // unknown, which only a look at a store in use reports.
    let checkpointed_at = match meta.get(META_CHECKPOINTED_AT) {
        Ok(Some(v)) => v.value().try_into().ok().map(i64::from_le_bytes),
        _ => None,
    };
    Ok(FileMeta {
        schema_version,
        file_id,
        checkpoint_lsn,
        checkpointed_at,
    })
}

/// Brings the file to `target` with `migrations`, in one durable
/// transaction. Fails if the file is newer than `target`, or if no chain of
/// steps leads from its version to `target`.
pub(crate) fn migrate(
    catalog: &dyn Catalog,
    db: &Database,
    path: &Path,
    meta: &mut FileMeta,
    migrations: &[Migration],
    target: u32,
) -> Result<(), OpenError> {
    meta.refuse_newer(path, target)?;
    if meta.schema_version == target {
        return Ok(());
    }
    let err = |e: redb::Error| StorageError::storage(path, e);
    let txn = begin_durable(db, path)?;
    let mut version = meta.schema_version;
    while version < target {
        let step = migrations
            .iter()
            .find(|m| m.to == version + 1)
            .ok_or_else(|| OpenError::NoMigration {
                path: path.to_path_buf(),
                from: version,
                to: version + 1,
            })?;
        log::info!(
            "{}: migrating schema {version} -> {}",
            path.display(),
            step.to
        );
        (step.run)(&txn).map_err(err)?;
        version = step.to;
    }
    catalog.create_tables(&txn, path)?;
    put_meta(&txn, path, &[(META_SCHEMA_VERSION, &version.to_le_bytes())])?;
    txn.commit().map_err(|e| err(e.into()))?;
    meta.schema_version = version;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::catalog::testing::{TEST_CATALOG, VERSION};
    use redb::TableDefinition;

    const EXTRA: TableDefinition<&str, u64> = TableDefinition::new("extra_for_test");

    fn step_two(txn: &WriteTransaction) -> std::result::Result<(), redb::Error> {
        let mut t = txn.open_table(EXTRA)?;
        t.insert("migrated", 2)?;
        Ok(())
    }

    fn new_db(dir: &tempfile::TempDir) -> (Database, std::path::PathBuf) {
        let path = dir.path().join("s.redb");
        let db = Database::create(&path).unwrap();
        initialize(TEST_CATALOG, &db, &path).unwrap();
        (db, path)
    }

    #[test]
    fn a_migration_step_runs_and_records_the_new_version() {
        let dir = tempfile::tempdir().unwrap();
        let (db, path) = new_db(&dir);
        let mut meta = read_meta(&db, &path).unwrap();
        assert_eq!(meta.schema_version, VERSION);
        let steps = [Migration {
            to: VERSION + 1,
            run: step_two,
        }];
        migrate(TEST_CATALOG, &db, &path, &mut meta, &steps, VERSION + 1).unwrap();
        assert_eq!(meta.schema_version, VERSION + 1);
        let reread = read_meta(&db, &path).unwrap();
        assert_eq!(reread.schema_version, VERSION + 1);
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(EXTRA).unwrap();
        assert_eq!(t.get("migrated").unwrap().unwrap().value(), 2);
    }

    #[test]
    fn a_newer_file_is_refused_and_a_gap_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (db, path) = new_db(&dir);
        let mut meta = read_meta(&db, &path).unwrap();
        let err = migrate(
            TEST_CATALOG,
            &db,
            &path,
            &mut meta,
            TEST_CATALOG.migrations(),
            VERSION - 1,
        )
        .unwrap_err();
        assert!(matches!(err, OpenError::SchemaTooNew { found, .. } if found == VERSION));
        let err = migrate(TEST_CATALOG, &db, &path, &mut meta, &[], VERSION + 1).unwrap_err();
        assert!(err.to_string().contains("no migration"), "{err}");
        // The failed migration changed nothing.
        assert_eq!(read_meta(&db, &path).unwrap().schema_version, VERSION);
    }

    #[test]
    fn file_ids_differ() {
        assert_ne!(random_file_id(), random_file_id());
    }
}
