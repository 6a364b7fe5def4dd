//! What the replication tests share: a paired store, sessions written
//! from several tasks at once, and the checks of a restored copy.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use wacore::store::traits::{DeviceStore, SignalStore};
use whatsapp_rust_redb_storage::{
    RedbStore, RedbStoreConfig, ReplicaRestoreOptions, ReplicaTarget,
};

/// Every wait of these tests fails the test after this long.
pub const BOUND: Duration = Duration::from_secs(120);

pub fn session(i: usize) -> Vec<u8> {
    format!("session-{i:06}-plaintext-marker").into_bytes()
}

pub fn url_of(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// Writes `n` sessions from 8 tasks at once, each answered `Ok` (so, by
/// the contract, in the replica).
pub async fn write_sessions(s: &RedbStore, from: usize, n: usize) {
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            tokio::spawn(async move {
                for i in (from..from + n).filter(|i| i % 8 == t) {
                    s.put_session(&format!("55{i:08}@c.us.0"), &session(i))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        tokio::time::timeout(BOUND, t).await.unwrap().unwrap();
    }
}

pub async fn assert_sessions(path: &Path, config: RedbStoreConfig, n: usize) {
    let s = RedbStore::with_config(path, config).await.unwrap();
    let device = s.load().await.unwrap().expect("the pairing");
    assert_eq!(device.push_name, "replicated");
    for i in 0..n {
        let got = s.get_session(&format!("55{i:08}@c.us.0")).await.unwrap();
        assert_eq!(got.as_deref(), Some(&session(i)[..]), "session {i}");
    }
    s.close().await.unwrap();
}

/// Restores `target` at `path` (no flag: the replica was written by
/// `replicate_to`) and checks that it holds sessions `0..n`.
pub async fn restore_and_check(
    target: &ReplicaTarget,
    path: &Path,
    config: RedbStoreConfig,
    n: usize,
) {
    RedbStore::restore_from_replica(target, path, &config, &ReplicaRestoreOptions::default())
        .await
        .unwrap();
    assert_sessions(path, config, n).await;
}

pub async fn paired(path: &Path, config: RedbStoreConfig) -> RedbStore {
    let s = RedbStore::with_config(path, config).await.unwrap();
    let mut device = wacore::store::Device::new();
    device.push_name = "replicated".into();
    s.save(&device).await.unwrap();
    s
}
