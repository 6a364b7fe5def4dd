//! Forward migrations of the catalog's tables (the engine runs them at
//! open, in one durable transaction, see `engine/file/schema.rs`).

use redb::{Value, WriteTransaction};

use crate::engine::Migration;

/// The migrations of this build. Version 1 is the baseline. A change of a
/// table's key or value type or of a value's encoding adds a step here and
/// bumps [`SCHEMA_VERSION`](super::SCHEMA_VERSION).
pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    to: 2,
    run: base_keys_with_saved_at,
}];

/// 1 → 2: every `base_keys` value (the bare key) becomes a `BaseKeyRow`
/// saved now: version 1 never recorded when a key was saved, and the
/// migration time keeps old keys for a full retention period rather than
/// dropping them at the first sweep.
fn base_keys_with_saved_at(txn: &WriteTransaction) -> std::result::Result<(), redb::Error> {
    use redb::ReadableTable;
    let saved_at = crate::clock::now_secs();
    let mut table = txn.open_table(super::BASE_KEYS.def)?;
    // Rewritten in slices of keys, so that a large table is never copied
    // into memory whole.
    let mut from: Option<Vec<u8>> = None;
    loop {
        let mut slice: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(1024);
        {
            type K = (i32, &'static str, &'static str);
            let lower = match &from {
                Some(k) => std::ops::Bound::Excluded(<K as Value>::from_bytes(k)),
                None => std::ops::Bound::Unbounded,
            };
            let range = (lower, std::ops::Bound::<(i32, &str, &str)>::Unbounded);
            for entry in table.range(range)?.take(1024) {
                let (k, v) = entry?;
                slice.push((
                    <K as Value>::as_bytes(&k.value()),
                    super::codec::encode_row(&super::codec::BaseKeyRow {
                        saved_at,
                        key: v.value().to_vec(),
                    }),
                ));
            }
        }
        let Some((last, _)) = slice.last() else {
            return Ok(());
        };
        from = Some(last.clone());
        for (k, v) in &slice {
            type K = (i32, &'static str, &'static str);
            table.insert(<K as Value>::from_bytes(k), v.as_slice())?;
        }
    }
}
