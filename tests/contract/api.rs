//! The public API: constructors, paths, handles sharing one file, other
//! processes, files that are not stores.

use std::time::Instant;

use wacore::store::error::StoreError;
use wacore::store::traits::{DeviceStore, SignalStore};
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig, Synchronous};

use crate::process::{self_command, spawn_until};

#[tokio::test]
async fn constructors_bind_device_ids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let a = RedbStore::new(&path).await.unwrap();
    assert_eq!(a.device_id(), 1);
    let b = RedbStore::new_for_device(&path, 5).await.unwrap();
    assert_eq!(b.device_id(), 5);
    let c = RedbStore::with_config(&path, RedbStoreConfig::default())
        .await
        .unwrap();
    assert_eq!(c.device_id(), 1);
    let d = RedbStore::with_config_for_device(&path, -3, RedbStoreConfig::default())
        .await
        .unwrap();
    assert_eq!(d.device_id(), -3);
    // All four share the file: writes through one are read through another.
    a.put_session("x", b"1").await.unwrap();
    assert!(c.has_session("x").await.unwrap());
    assert!(!b.has_session("x").await.unwrap());
    let a2 = a.clone();
    assert_eq!(a2.device_id(), 1);
    assert!(a2.has_session("x").await.unwrap());
}

#[tokio::test]
async fn paths_accept_redb_prefix_and_reject_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.redb");
    let url = format!("redb://{}", path.display());
    let s = RedbStore::new(&url).await.unwrap();
    s.put_session("x", b"1").await.unwrap();
    drop(s);
    assert!(path.exists());
    let s = RedbStore::new(&path).await.unwrap();
    assert!(s.has_session("x").await.unwrap());
    drop(s);

    for bad in ["", ":memory:", "redb://"] {
        let err = RedbStore::new(bad).await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidConfig(_)),
            "{bad:?}: {err:?}"
        );
    }
    let missing_dir = dir.path().join("no/such/dir/s.redb");
    let err = RedbStore::new(&missing_dir).await.unwrap_err();
    assert!(err.to_string().contains("no/such/dir"), "{err}");
    let err = RedbStore::new(dir.path()).await.unwrap_err();
    assert!(err.to_string().contains("directory"), "{err}");
}

#[tokio::test]
async fn files_that_are_not_stores_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        ("empty", b"", "empty"),
        ("text", b"hello, I am a text file\n", "unrecognized"),
        ("sqlite", b"SQLite format 3\0and then some pages", "SQLite"),
        ("short", b"re", "unrecognized"),
    ];
    for (name, content, expect) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let err = RedbStore::new(&path).await.unwrap_err();
        let text = format!(
            "{err}: {:?}",
            std::error::Error::source(&err).map(|s| s.to_string())
        );
        assert!(text.contains(expect), "{name}: {text}");
        assert!(text.contains(name), "{name}: error names the file: {text}");
        // The file is left as it was.
        assert_eq!(std::fs::read(&path).unwrap(), content);
    }
}

#[tokio::test]
async fn closing_one_handle_keeps_the_file_open_for_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let a = RedbStore::new(&path).await.unwrap();
    let b = a.for_device(2);
    a.close().await.unwrap();
    b.put_session("x", b"1").await.unwrap();
    b.close().await.unwrap();
    // Now closed for good: the journal is gone and the file reopens.
    assert!(!dir.path().join("s.redb.journal").exists());
    let b = RedbStore::new_for_device(&path, 2).await.unwrap();
    assert!(b.has_session("x").await.unwrap());
}

#[tokio::test]
async fn the_first_configuration_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let a = RedbStore::with_config(
        &path,
        RedbStoreConfig::default().with_synchronous(Synchronous::Full),
    )
    .await
    .unwrap();
    let b = RedbStore::with_config_for_device(&path, 2, RedbStoreConfig::default())
        .await
        .unwrap();
    assert_eq!(b.config().synchronous, Synchronous::Full);
    drop((a, b));
}

#[tokio::test]
async fn invalid_configurations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    for config in [
        RedbStoreConfig::default().with_cache_size_kib(1),
        RedbStoreConfig::default().with_checkpoint_interval(std::time::Duration::ZERO),
        RedbStoreConfig::default().with_max_value_size(0),
        RedbStoreConfig::default().with_auto_compact(Some(2.0)),
    ] {
        let err = RedbStore::with_config(&path, config).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidConfig(_)), "{err:?}");
    }
    assert!(!path.exists(), "nothing was created");
}

/// Child half of `a_second_process_gets_a_clear_error_after_the_wait`.
#[tokio::test]
#[ignore]
async fn child_holds_store_open() {
    let Some(path) = std::env::var_os("WA_REDB_HOLD") else {
        return;
    };
    let store = RedbStore::new(&path).await.unwrap();
    store.create().await.unwrap();
    // Hold the store until the parent closes our stdin.
    crate::process::report_and_wait("READY");
    drop(store);
}

#[tokio::test]
async fn a_second_process_gets_a_clear_error_after_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("held.redb");
    let mut cmd = self_command("api::child_holds_store_open");
    cmd.env("WA_REDB_HOLD", &path);
    let (mut child, _out) = spawn_until(cmd, "READY");
    // The open waits `busy_timeout` for the other process to let go, then
    // says why it cannot open; with no wait, it says so at once.
    let wait = std::time::Duration::from_millis(300);
    for busy_timeout in [wait, std::time::Duration::ZERO] {
        let config = RedbStoreConfig::default().with_busy_timeout(busy_timeout);
        let started = Instant::now();
        let err = RedbStore::with_config(&path, config).await.unwrap_err();
        assert!(started.elapsed() >= busy_timeout, "{:?}", started.elapsed());
        assert!(matches!(err, StoreError::Connection(_)), "{err:?}");
        let text = std::error::Error::source(&err).unwrap().to_string();
        assert!(text.contains("another process"), "{text}");
        assert!(text.contains("held.redb"), "{text}");
        assert!(!text.contains("locked") && !text.contains("busy"), "{text}");
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    // Once the other process is gone, the file opens, with its data.
    let store = RedbStore::new(&path).await.unwrap();
    assert!(store.exists().await.unwrap());
}
