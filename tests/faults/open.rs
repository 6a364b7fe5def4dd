//! Opening and creating on a failing disk: an existing store opens and
//! its first write fails clearly, changing nothing; a new store that
//! cannot be created leaves nothing at the path, not even a temporary.

use wacore::store::traits::SignalStore;
use whatsapp_rust_redb_storage::fault::IoTarget;
use whatsapp_rust_redb_storage::{RedbStore, Synchronous};

use crate::dataset::chain;
use crate::layer::{Faults, config, journal_of};
use crate::{EIO, ENOSPC, assert_no_space, bounded, reopen_and_verify, setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_on_a_failing_disk_fails_clearly_and_harms_nothing() {
    bounded(async {
        // An existing store whose journal cannot be written. Opening writes
        // nothing (the journal appears at the first write), so the open
        // succeeds; the first write fails, naming the journal, and changes
        // nothing.
        let dir = tempfile::tempdir().unwrap();
        let (path, _faults, s) = setup(dir.path(), Synchronous::Normal).await;
        s.close().await.unwrap();
        for (fail, mode) in [
            ("journal write", Synchronous::Normal),
            ("journal sync", Synchronous::Full),
            ("journal full", Synchronous::Normal),
        ] {
            let faults = Faults::new(&path);
            match fail {
                "journal write" => faults.fail_writes(IoTarget::Journal, EIO, 0),
                "journal sync" => faults.fail_syncs(IoTarget::Journal, EIO),
                _ => faults.disk_full(IoTarget::Journal, true),
            }
            let s = RedbStore::with_config(&path, config(mode, &faults))
                .await
                .unwrap();
            assert!(!journal_of(&path).exists(), "{fail}: the open wrote");
            let e = s.put_session("after-open", b"x").await.unwrap_err();
            eprintln!("first write with {fail} failing: {}", chain(&e));
            let text = chain(&e);
            assert!(
                text.contains(&journal_of(&path).display().to_string()),
                "{fail}: names the journal: {text}"
            );
            if fail == "journal full" {
                assert_no_space(&e, &path);
            }
            drop(s);
        }
        reopen_and_verify(&path, &[], &["after-open".to_string()]).await;

        // A new store that cannot be created: nothing half-made at the path.
        for fail in ["database write", "database full", "database sync"] {
            let path = dir
                .path()
                .join(format!("new-{}.redb", fail.replace(' ', "-")));
            let faults = Faults::new(&path);
            match fail {
                "database write" => faults.fail_writes(IoTarget::Database, ENOSPC, 0),
                "database full" => faults.disk_full(IoTarget::Database, true),
                _ => faults.fail_syncs(IoTarget::Database, EIO),
            }
            let e = RedbStore::with_config(&path, config(Synchronous::Normal, &faults))
                .await
                .unwrap_err();
            eprintln!("create with {fail} failing: {}", chain(&e));
            assert!(!path.exists(), "{fail}: a half-created store at the path");
            let s = RedbStore::new(&path).await.unwrap();
            s.put_session("x", b"y").await.unwrap();
            s.close().await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_creation_leaves_no_temporary_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.redb");
    let faults = Faults::new(&path);
    faults.fail_writes(IoTarget::Database, ENOSPC, 0);
    RedbStore::with_config(&path, config(Synchronous::Normal, &faults))
        .await
        .unwrap_err();
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
