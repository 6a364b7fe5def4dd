//! Base-key retention: each base key records when it was saved;
//! `delete_expired_base_keys` and `maintenance` delete by that time, per
//! account, across reopens, and a file of schema version 1 (bare keys)
//! gets the time of its migration.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wacore::store::traits::ProtocolStore;
use whatsapp_rust_redb_storage::{PageProtection, RedbStore, RedbStoreConfig};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A plain file (format v1), which the tests write to with redb alone.
fn plain() -> RedbStoreConfig {
    RedbStoreConfig::default().with_page_protection(PageProtection::Off)
}

/// Writes a base-key row saved at `saved_at` straight into a closed store:
/// format byte 1, then MessagePack `[saved_at, bin key]` (`BaseKeyRow`).
fn write_old_base_key(path: &Path, device: i32, address: &str, id: &str, saved_at: u8) {
    assert!(saved_at < 128, "a positive fixint");
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let def = redb::TableDefinition::<(i32, &str, &str), &[u8]>::new("base_keys");
        let mut t = txn.open_table(def).unwrap();
        let row = [1, 0x92, saved_at, 0xc4, 3, b'o', b'l', b'd'];
        t.insert((device, address, id), &row[..]).unwrap();
    }
    txn.commit().unwrap();
}

#[tokio::test]
async fn base_keys_are_deleted_by_the_time_they_were_saved_per_account_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let s = RedbStore::new(&path).await.unwrap();
    let other = s.for_device(2);
    s.save_base_key("a@c.us.0", "m1", b"k1").await.unwrap();
    other.save_base_key("a@c.us.0", "m1", b"k1").await.unwrap();
    // Nothing was saved an hour ago.
    assert_eq!(s.delete_expired_base_keys(now() - 3600).await.unwrap(), 0);
    s.close().await.unwrap();
    drop(other);

    let s = RedbStore::new(&path).await.unwrap();
    assert!(s.has_same_base_key("a@c.us.0", "m1", b"k1").await.unwrap());
    s.save_base_key("b@c.us.0", "m2", b"k2").await.unwrap();
    // Everything was saved before an hour from now.
    assert_eq!(s.delete_expired_base_keys(now() + 3600).await.unwrap(), 2);
    assert!(!s.has_same_base_key("a@c.us.0", "m1", b"k1").await.unwrap());
    assert!(!s.has_same_base_key("b@c.us.0", "m2", b"k2").await.unwrap());
    // The other account keeps its key.
    let other = s.for_device(2);
    assert!(
        other
            .has_same_base_key("a@c.us.0", "m1", b"k1")
            .await
            .unwrap()
    );
    s.close().await.unwrap();
}

#[tokio::test]
async fn maintenance_deletes_base_keys_older_than_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let s = RedbStore::with_config(&path, plain()).await.unwrap();
    s.save_base_key("new@c.us.0", "m", b"new").await.unwrap();
    s.close().await.unwrap();
    // Saved in 1970: far older than any retention.
    write_old_base_key(&path, 1, "old@c.us.0", "m", 5);

    // Retention off: kept.
    let keep = RedbStoreConfig::default().with_base_key_retention(None);
    let s = RedbStore::with_config(&path, keep).await.unwrap();
    // The file keeps its format whatever the opener asks for.
    assert_eq!(s.config().page_protection, PageProtection::Off);
    assert_eq!(s.maintenance().await.unwrap().base_keys_deleted, 0);
    assert!(
        s.has_same_base_key("old@c.us.0", "m", b"old")
            .await
            .unwrap()
    );
    s.close().await.unwrap();

    // The default (30 days): the old key goes, the new one stays.
    let s = RedbStore::new(&path).await.unwrap();
    assert_eq!(
        s.config().base_key_retention,
        Some(Duration::from_secs(30 * 24 * 3600))
    );
    assert_eq!(s.maintenance().await.unwrap().base_keys_deleted, 1);
    assert!(
        !s.has_same_base_key("old@c.us.0", "m", b"old")
            .await
            .unwrap()
    );
    assert!(
        s.has_same_base_key("new@c.us.0", "m", b"new")
            .await
            .unwrap()
    );
    s.close().await.unwrap();
}

/// A file of schema version 1 held bare keys; the migration stamps them
/// with the time it ran, so they live a full retention period from then.
#[tokio::test]
async fn base_keys_of_a_version_1_file_are_saved_at_its_migration() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden-v1.redb");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("golden.redb");
    std::fs::copy(&src, &path).unwrap();
    let before = now();
    let s = RedbStore::new(&path).await.unwrap();
    assert!(s.has_same_base_key("a@c.us.0", "m1", b"bk").await.unwrap());
    assert_eq!(s.delete_expired_base_keys(before - 1).await.unwrap(), 0);
    s.close().await.unwrap();

    // Migrated once: a reopen keeps the stamp (and the key).
    let s = RedbStore::new(&path).await.unwrap();
    assert_eq!(s.delete_expired_base_keys(before - 1).await.unwrap(), 0);
    assert_eq!(s.maintenance().await.unwrap().base_keys_deleted, 0);
    assert_eq!(s.delete_expired_base_keys(now() + 3600).await.unwrap(), 1);
    assert!(!s.has_same_base_key("a@c.us.0", "m1", b"bk").await.unwrap());
    assert!(
        s.for_device(2)
            .has_same_base_key("a@c.us.0", "m1", b"bk")
            .await
            .unwrap()
    );
    s.close().await.unwrap();
    assert!(RedbStore::check_file(&path).unwrap().is_ok());
}

/// A version 1 process that crashed left writes only in its journal (a
/// base key among them): the version 2 build replays them into the version
/// 1 file, then migrates it, and every row is there, base keys stamped.
/// The fixture was written by the version 1 build (commit 950941e) and
/// killed after its last write.
#[tokio::test]
async fn the_journal_of_a_crashed_version_1_process_is_replayed_then_migrated() {
    use wacore::store::traits::SignalStore;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crashed.redb");
    std::fs::copy(fixtures.join("crashed-v1.redb"), &path).unwrap();
    std::fs::copy(
        fixtures.join("crashed-v1.redb.journal"),
        dir.path().join("crashed.redb.journal"),
    )
    .unwrap();
    let before = now();
    let s = RedbStore::new(&path).await.unwrap();
    assert!(
        s.recovery_report().records_replayed >= 2,
        "{:?}",
        s.recovery_report()
    );
    assert!(s.recovery_report().stopped.is_none());
    for (address, id, key, session) in [
        ("a@c.us.0", "m1", &b"bk1"[..], &b"s1"[..]),
        ("b@c.us.0", "m2", b"bk2", b"s2"),
    ] {
        assert!(
            s.has_same_base_key(address, id, key).await.unwrap(),
            "{address}"
        );
        assert_eq!(
            s.get_session(address).await.unwrap().as_deref(),
            Some(session)
        );
    }
    assert_eq!(s.delete_expired_base_keys(before - 1).await.unwrap(), 0);
    s.close().await.unwrap();
    assert!(RedbStore::check_file(&path).unwrap().is_ok());
}

/// A sweep over many keys reuses the pages it frees: on a compacted file
/// (no free page at all) deleting every key leaves the file about its size.
#[tokio::test]
async fn a_long_sweep_does_not_grow_the_file() {
    const KEYS: u32 = 30_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    RedbStore::with_config(&path, plain())
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    {
        // Old rows straight into the file, in one transaction.
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let def = redb::TableDefinition::<(i32, &str, &str), &[u8]>::new("base_keys");
            let mut t = txn.open_table(def).unwrap();
            let row = [1, 0x92, 5, 0xc4, 32]
                .iter()
                .copied()
                .chain([7u8; 32])
                .collect::<Vec<_>>();
            for k in 0..KEYS {
                let address = format!("5511{k:09}@s.whatsapp.net.0");
                t.insert((1, address.as_str(), "3EB0000000000000"), &row[..])
                    .unwrap();
            }
        }
        txn.commit().unwrap();
        let mut db = db;
        db.compact(redb::CompactionMode::Balanced).unwrap();
    }
    let before = std::fs::metadata(&path).unwrap().len();
    let s = RedbStore::with_config(&path, RedbStoreConfig::default().with_auto_compact(None))
        .await
        .unwrap();
    assert_eq!(s.delete_expired_base_keys(100).await.unwrap(), KEYS);
    s.close().await.unwrap();
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(
        after * 100 <= before * 105,
        "{before} -> {after} bytes: the sweep grew the file"
    );
}
