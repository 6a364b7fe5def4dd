//! The catalog as the engine is given it ([`CATALOG`]): the engine knows no
//! table by name, and asks this to create the tables, migrate them, check
//! and replay journal effects with their types known, and count accounts.

use std::path::Path;

use redb::{ReadTransaction, Value, WriteTransaction};

use super::{DEVICES, META_LID_SEQ, StoreKey, Table, TableId, TableVisitor};
use crate::engine::{self, Catalog, Effect, Migration, TableTag};
use crate::error::{StorageError, StorageResult as Result};

/// The store's catalog, for the engine.
pub(crate) static CATALOG: &dyn Catalog = &StoreTables;

struct StoreTables;

impl Catalog for StoreTables {
    fn schema_version(&self) -> u32 {
        super::SCHEMA_VERSION
    }

    fn journal_replayable_from(&self) -> u32 {
        super::JOURNAL_REPLAYABLE_FROM
    }

    fn migrations(&self) -> &'static [Migration] {
        super::migrations::MIGRATIONS
    }

    fn create_tables(&self, txn: &WriteTransaction, path: &Path) -> Result<()> {
        super::visit_all(&mut CreateTables(txn, path))
    }

    fn initial_meta(&self) -> &'static [(&'static str, &'static [u8])] {
        &[(META_LID_SEQ, &[0; 8])]
    }

    fn table_name(&self, tag: TableTag) -> Option<&'static str> {
        TableId::from_tag(tag).map(TableId::name)
    }

    fn well_formed(&self, tag: TableTag, key: &[u8], value: Option<&[u8]>) -> bool {
        TableId::from_tag(tag).is_some_and(|t| t.well_formed(key, value))
    }

    fn apply(&self, txn: &WriteTransaction, effect: &Effect<'_>, path: &Path) -> Result<()> {
        let Some(id) = TableId::from_tag(effect.tag()) else {
            return Err(unknown(effect.tag()));
        };
        id.visit(&mut Apply { txn, effect, path })
    }

    fn accounts(&self, txn: &ReadTransaction, path: &Path) -> Result<u64> {
        use redb::ReadableTableMetadata;
        let err = |e: redb::Error| StorageError::storage(path, e);
        let table = txn.open_table(DEVICES.def).map_err(|e| err(e.into()))?;
        table.len().map_err(|e| err(e.into()))
    }
}

fn unknown(tag: TableTag) -> StorageError {
    StorageError::decode("journal record", format!("unknown table id {}", tag.0))
}

/// Creates every table (redb creates a table the first time a write
/// transaction opens it).
struct CreateTables<'a>(&'a WriteTransaction, &'a Path);

impl TableVisitor for CreateTables<'_> {
    type Error = StorageError;

    fn visit<K: StoreKey, V: Value + 'static>(
        &mut self,
        _: TableId,
        table: Table<K, V>,
    ) -> Result<()> {
        self.0
            .open_table(table.def)
            .map(drop)
            .map_err(|e| StorageError::storage(self.1, e))
    }
}

/// Replays one effect into its table.
struct Apply<'a, 'e> {
    txn: &'a WriteTransaction,
    effect: &'a Effect<'e>,
    path: &'a Path,
}

impl TableVisitor for Apply<'_, '_> {
    type Error = StorageError;

    fn visit<K: StoreKey, V: Value + 'static>(
        &mut self,
        _: TableId,
        table: Table<K, V>,
    ) -> Result<()> {
        engine::apply_effect(self.txn, table, self.effect, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engines_meta_table_is_the_catalogs() {
        assert_eq!(super::super::META.tag, engine::META.tag);
        assert_eq!(
            redb::TableHandle::name(&super::super::META.def),
            redb::TableHandle::name(&engine::META.def)
        );
        assert_eq!(
            CATALOG.table_name(engine::META.tag),
            Some(TableId::META.name())
        );
    }

    #[test]
    fn an_unknown_tag_is_no_table() {
        assert_eq!(CATALOG.table_name(TableTag(200)), None);
        assert!(!CATALOG.well_formed(TableTag(200), b"", None));
    }
}
