//! Hostile ids, keys and values: device ids at the extremes, empty
//! strings, NUL bytes and odd Unicode, strings that are prefixes of each
//! other in composite keys, keys past the 64 KiB cap, and values of tens of
//! megabytes, at and beyond `max_value_size`; configuration values at
//! their extremes.
//!
//! Everything must either work exactly (stored, read back, isolated) or
//! fail with a clear error that stores nothing and leaves the store
//! working.
//!
//! The tests, by concern: `config_extremes.rs`, `device_ids.rs`,
//! `odd_keys.rs`, `sizes.rs`; here only the store on a fresh file they
//! all start from.

mod config_extremes;
#[path = "../util/dataset.rs"]
mod dataset;
mod device_ids;
mod odd_keys;
mod sizes;

use whatsapp_rust_redb_storage::RedbStore;

async fn fresh() -> (tempfile::TempDir, std::path::PathBuf, RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = RedbStore::new(&path).await.unwrap();
    (dir, path, store)
}
