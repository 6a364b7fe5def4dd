//! What the engine needs to know of the tables it stores, without knowing
//! which they are: a table is a typed redb definition plus a one-byte tag
//! that names it in journal records, and a [`Catalog`] (which the layer
//! above implements) creates them, migrates them and replays journal
//! effects into them with their types known.
//!
//! The engine owns one table of its own, [`META`]: the file's identity,
//! schema version and checkpoint position. A catalog lists it too (tag 0),
//! and may keep entries of its own there.

use std::ops::Bound;
use std::path::Path;

use redb::{Key, ReadTransaction, TableDefinition, Value, WriteTransaction};

use crate::engine::journal::Effect;
use crate::error::StorageResult as Result;

/// A table's tag in journal records. Part of the on-disk journal format:
/// a catalog never reuses or renumbers one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TableTag(pub u8);

/// A table: its redb definition plus its journal tag.
pub(crate) struct Table<K: Key + 'static, V: Value + 'static> {
    pub tag: TableTag,
    pub name: &'static str,
    pub def: TableDefinition<'static, K, V>,
}

impl<K: Key + 'static, V: Value + 'static> Table<K, V> {
    pub const fn new(tag: u8, name: &'static str) -> Self {
        Table {
            tag: TableTag(tag),
            name,
            def: TableDefinition::new(name),
        }
    }
}

impl<K: Key + 'static, V: Value + 'static> Clone for Table<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K: Key + 'static, V: Value + 'static> Copy for Table<K, V> {}

/// Bounds of a key range, as redb takes them.
pub(crate) type Bounds<'k, K> = (
    Bound<<K as Value>::SelfType<'k>>,
    Bound<<K as Value>::SelfType<'k>>,
);

/// Bounds covering a whole table.
pub(crate) fn every_row<'k, K: Key>() -> Bounds<'k, K> {
    (Bound::Unbounded, Bound::Unbounded)
}

/// The engine's table: fixed names (below) to bytes.
pub(crate) const META: Table<&'static str, &'static [u8]> = Table::new(0, "meta");

/// `META` key: schema version, u32 little-endian.
pub(crate) const META_SCHEMA_VERSION: &str = "schema_version";
/// `META` key: random 16-byte identity of this file, pairs it with its journal.
pub(crate) const META_FILE_ID: &str = "file_id";
/// `META` key: journal sequence number the last checkpoint covers, u64 LE.
pub(crate) const META_CHECKPOINT_LSN: &str = "checkpoint_lsn";
/// `META` key: when the last checkpoint (or clean close) was committed,
/// unix seconds, i64 LE. Absent in files no checkpoint of version 0.7.x+
/// touched yet. Tells a look at a store in use how old its view is.
pub(crate) const META_CHECKPOINTED_AT: &str = "checkpointed_at";
/// `META` key: the crate version that created the file, UTF-8.
pub(crate) const META_CREATED_BY: &str = "created_by";

/// One forward migration: turns a file of version `to - 1` into version `to`.
pub(crate) struct Migration {
    pub to: u32,
    pub run: fn(&WriteTransaction) -> std::result::Result<(), redb::Error>,
}

/// The tables of a store and their history, as the layer above defines
/// them. The engine holds one for the life of a file (`&'static`: a
/// catalog is a constant of the build).
pub(crate) trait Catalog: Sync {
    /// The schema version this build writes.
    fn schema_version(&self) -> u32;

    /// The oldest schema version whose journal records this build can
    /// replay (into a file of that version, before migrating it).
    fn journal_replayable_from(&self) -> u32;

    /// The forward migrations, in order.
    fn migrations(&self) -> &'static [Migration];

    /// Creates every table in `txn` that does not exist yet.
    fn create_tables(&self, txn: &WriteTransaction, path: &Path) -> Result<()>;

    /// The catalog's own entries of a new file's [`META`] table.
    fn initial_meta(&self) -> &'static [(&'static str, &'static [u8])];

    /// The redb name of the table tagged `tag`; `None` for a tag this
    /// catalog does not know.
    fn table_name(&self, tag: TableTag) -> Option<&'static str>;

    /// Whether `key` (and `value`, if given) are well-formed encodings of
    /// the types of the table tagged `tag`: checked before redb decodes
    /// bytes that come from outside its pages (a journal record).
    fn well_formed(&self, tag: TableTag, key: &[u8], value: Option<&[u8]>) -> bool;

    /// Applies one journal effect in `txn`, to its table with its types.
    fn apply(&self, txn: &WriteTransaction, effect: &Effect<'_>, path: &Path) -> Result<()>;

    /// How many accounts the file holds (a gauge of the metrics), as of
    /// the read transaction `txn`.
    fn accounts(&self, txn: &ReadTransaction, path: &Path) -> Result<u64>;
}

/// A catalog for the engine's own tests: the meta table and one table of
/// opaque values by `(account, name)`, so that the engine is tested
/// without the store's tables.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::Path;

    use redb::{ReadTransaction, ReadableTableMetadata, WriteTransaction};

    use super::{Catalog, META, Migration, Table, TableTag};
    use crate::engine::journal::Effect;
    use crate::error::{StorageError, StorageResult as Result};

    /// The one table besides the meta table.
    pub(crate) const VALUES: Table<(i32, &'static str), &'static [u8]> = Table::new(1, "values");

    /// The schema version the test catalog writes.
    pub(crate) const VERSION: u32 = 1;

    /// The catalog.
    pub(crate) static TEST_CATALOG: &dyn Catalog = &TestTables;

    struct TestTables;

    impl Catalog for TestTables {
        fn schema_version(&self) -> u32 {
            VERSION
        }

        fn journal_replayable_from(&self) -> u32 {
            VERSION
        }

        fn migrations(&self) -> &'static [Migration] {
            &[]
        }

        fn create_tables(&self, txn: &WriteTransaction, path: &Path) -> Result<()> {
            txn.open_table(META.def)
                .map_err(|e| StorageError::storage(path, e))?;
            txn.open_table(VALUES.def)
                .map_err(|e| StorageError::storage(path, e))?;
            Ok(())
        }

        fn initial_meta(&self) -> &'static [(&'static str, &'static [u8])] {
            &[]
        }

        fn table_name(&self, tag: TableTag) -> Option<&'static str> {
            [META.name, VALUES.name].get(tag.0 as usize).copied()
        }

        fn well_formed(&self, tag: TableTag, key: &[u8], _: Option<&[u8]>) -> bool {
            // The meta table's keys are strings; a value key is (i32, str):
            // its i32 first, so at least four bytes.
            match tag.0 {
                0 => std::str::from_utf8(key).is_ok(),
                1 => key.len() >= 4,
                _ => false,
            }
        }

        fn apply(&self, txn: &WriteTransaction, effect: &Effect<'_>, path: &Path) -> Result<()> {
            match effect.tag().0 {
                0 => crate::engine::apply_effect(txn, META, effect, path),
                _ => crate::engine::apply_effect(txn, VALUES, effect, path),
            }
        }

        fn accounts(&self, txn: &ReadTransaction, path: &Path) -> Result<u64> {
            let table = txn
                .open_table(VALUES.def)
                .map_err(|e| StorageError::storage(path, e))?;
            table.len().map_err(|e| StorageError::storage(path, e))
        }
    }
}
