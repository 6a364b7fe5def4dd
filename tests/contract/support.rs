//! Shared helpers: a store on a fresh file, reopening it.

use std::path::PathBuf;

use tempfile::TempDir;
use wacore::store::traits::DeviceStore;
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig};

/// A store on a fresh file in its own temporary directory.
pub struct Fixture {
    pub dir: TempDir,
    pub path: PathBuf,
    pub store: RedbStore,
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with_config(RedbStoreConfig::default()).await
    }

    pub async fn with_config(config: RedbStoreConfig) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("store.redb");
        let store = RedbStore::with_config(&path, config)
            .await
            .expect("open store");
        Self { dir, path, store }
    }

    /// Closes every handle and opens the file again (same device id).
    pub async fn reopen(self) -> Self {
        let Fixture { dir, path, store } = self;
        let device = store.device_id();
        store.close().await.expect("close");
        let store = RedbStore::new_for_device(&path, device)
            .await
            .expect("reopen");
        Fixture { dir, path, store }
    }

    /// The same store with a device record, for methods that need one
    /// (LID mappings).
    pub async fn with_device() -> Self {
        let f = Self::new().await;
        f.store.create().await.expect("create device");
        f
    }
}

pub fn mac(n: u8) -> [u8; 32] {
    [n; 32]
}
