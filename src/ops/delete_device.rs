//! Deleting one account from a store file.

use std::ops::Bound;

use redb::Value;
use wacore::store::error::StoreError;

use crate::engine::Tx;
use crate::error::{FileOpError, WriteError};

type Result<T, E = FileOpError> = std::result::Result<T, E>;
use crate::handle::RedbStore;
use crate::tables::{self, StoreKey, Table, TableId, TableVisitor};

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
    type Error = WriteError;

    fn visit<K: StoreKey, V: Value + 'static>(
        &mut self,
        _: TableId,
        table: Table<K, V>,
    ) -> Result<(), WriteError> {
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

impl RedbStore {
    /// Deletes one account: every row of `device_id` in every table.
    /// Returns the number of rows deleted. The space is reused by later
    /// writes; [`RedbStore::maintenance`] compacts the file when a large
    /// part of it is free ([`RedbStoreConfig::auto_compact`](crate::RedbStoreConfig::auto_compact)), and
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
}
