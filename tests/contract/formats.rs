//! Files written by earlier builds open unchanged: one fixture per store
//! format (plain, verified, encrypted) written by the redb 4.6 build, and
//! one left by a process that did not close (a verified file and its
//! journal), all checked in under `tests/fixtures/redb46/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use wacore::store::traits::SignalStore;
use whatsapp_rust_redb_storage::{PageProtection, RedbStore, RedbStoreConfig};

use crate::persistence::{populate, verify};

const DIR: &str = "tests/fixtures/redb46";
const KEY: [u8; 32] = [0x46; 32];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR).join(name)
}

/// The configuration each fixture was written with, and opens with.
fn config(name: &str) -> RedbStoreConfig {
    match name {
        "plain.redb" => RedbStoreConfig::default().with_page_protection(PageProtection::Off),
        "encrypted.redb" => RedbStoreConfig::default().with_encryption_key(KEY),
        _ => RedbStoreConfig::default(),
    }
}

const CLEAN: [&str; 3] = ["plain.redb", "verified.redb", "encrypted.redb"];
const CRASHED: &str = "crashed-verified.redb";

/// Regenerates the fixtures: `WA_REDB_WRITE_FORMATS=1 cargo test --test
/// contract write_format_fixtures -- --ignored`. Only with the build whose
/// files they stand for (they were written by the redb 4.6 build).
#[tokio::test]
#[ignore]
async fn write_format_fixtures() {
    if std::env::var_os("WA_REDB_WRITE_FORMATS").is_none() {
        return;
    }
    std::fs::create_dir_all(fixture("")).unwrap();
    for name in CLEAN {
        let path = fixture(name);
        let _ = std::fs::remove_file(&path);
        let store = RedbStore::with_config(&path, config(name)).await.unwrap();
        populate(&store).await;
        populate(&store.for_device(2)).await;
        store.close().await.unwrap();
    }
    // What a crash leaves: the file at its last checkpoint and the journal
    // holding everything after it, copied while the store is open.
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.redb");
    let no_timed_checkpoint = config(CRASHED).with_checkpoint_interval(Duration::MAX);
    let store = RedbStore::with_config(&live, no_timed_checkpoint)
        .await
        .unwrap();
    populate(&store).await;
    store.checkpoint().await.unwrap();
    populate(&store.for_device(2)).await;
    let journal = |p: &Path| {
        let mut name = p.as_os_str().to_owned();
        name.push(".journal");
        PathBuf::from(name)
    };
    std::fs::copy(&live, fixture(CRASHED)).unwrap();
    std::fs::copy(journal(&live), journal(&fixture(CRASHED))).unwrap();
    drop(store);
}

/// Each format opens with every row of both accounts (`verify` takes the
/// sent message it checks), takes a write and opens again with it.
#[tokio::test]
async fn files_of_every_format_written_by_the_redb_4_6_build_open() {
    for name in CLEAN.into_iter().chain([CRASHED]) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::copy(fixture(name), &path).unwrap();
        let journal = fixture(&format!("{name}.journal"));
        if journal.exists() {
            std::fs::copy(&journal, dir.path().join(format!("{name}.journal"))).unwrap();
        }
        let store = RedbStore::with_config(&path, config(name)).await.unwrap();
        if name == CRASHED {
            assert!(store.recovery_report().records_replayed > 0, "{name}");
        }
        verify(&store).await;
        verify(&store.for_device(2)).await;
        store.put_session("after@c.us.0", b"after").await.unwrap();
        drop(store);
        let store = RedbStore::with_config(&path, config(name)).await.unwrap();
        let after = store.get_session("after@c.us.0").await.unwrap();
        assert_eq!(after.as_deref(), Some(&b"after"[..]), "{name}");
        store.close().await.unwrap();
    }
}
