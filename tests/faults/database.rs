//! Faults on the database file: a failed checkpoint (write or fsync) halts
//! writes, and so does a failure of the final checkpoint at close or in
//! `Drop`; the cause is reported; a database file that cannot grow. A
//! reopen without faults has everything acknowledged.

use wacore::store::traits::SignalStore;
use whatsapp_rust_redb_storage::fault::IoTarget;
use whatsapp_rust_redb_storage::{RedbStore, Synchronous};

use crate::dataset::chain;
use crate::layer::{Faults, journal_of};
use crate::{
    EIO, ENOSPC, assert_close_failed, assert_halted, assert_halting, big, bounded, explain,
    os_text, reopen_and_verify, setup, unflushed_writes,
};

/// How the database write of a checkpoint fails.
#[derive(Debug, Clone, Copy)]
enum DbFault {
    /// The k-th database write from now on, and every later one, fails
    /// with this errno.
    Write { skip: u64, errno: i32 },
    /// fsync of the database fails (EIO).
    Sync,
}

impl DbFault {
    fn arm(self, f: &Faults) {
        match self {
            DbFault::Write { skip, errno } => f.fail_writes(IoTarget::Database, errno, skip),
            DbFault::Sync => f.fail_syncs(IoTarget::Database, EIO),
        }
    }

    fn errno(self) -> i32 {
        match self {
            DbFault::Write { errno, .. } => errno,
            DbFault::Sync => EIO,
        }
    }
}

async fn checkpoint_failure_case(fault: DbFault) {
    let dir = tempfile::tempdir().unwrap();
    let (path, faults, s) = setup(dir.path(), Synchronous::Normal).await;
    s.checkpoint().await.unwrap();
    // Acknowledged, in the journal, not yet in a durable commit. (The
    // non-durable commits already grew the file: a checkpoint writes into
    // space the file has, so a full disk hits ordinary writes first; see
    // `a_database_file_that_cannot_grow`.)
    let present = unflushed_writes(&s, 6, 400 << 10).await;

    fault.arm(&faults);
    let e = s.checkpoint().await.unwrap_err();
    eprintln!("{fault:?}: checkpoint: {}", chain(&e));
    assert!(faults.injected(IoTarget::Database) > 0);
    assert_halting(&e, &path, &os_text(fault.errno()));
    // Writes are refused from now on, clearly.
    let e = s.put_session("refused", b"x").await.unwrap_err();
    assert_halted(
        &e,
        &path,
        &format!("{fault:?}: write after the failed checkpoint"),
    );
    // Reads of acknowledged data return it, or (when they must reach the
    // file redb stopped using) the halting error; never a wrong answer.
    for (key, value) in &present[..2] {
        match s.get_session(key).await {
            Ok(got) => assert_eq!(
                got.as_deref(),
                Some(value.as_slice()),
                "{fault:?}: read of acknowledged {key} while halted"
            ),
            Err(e) => assert_halted(&e, &path, &format!("{fault:?}: read of {key} while halted")),
        }
    }
    let e = s.close().await.unwrap_err();
    assert_close_failed(
        &e,
        &path,
        &format!("{fault:?}: close after the failed checkpoint"),
    );
    assert!(journal_of(&path).exists(), "the journal is kept for replay");

    // The disk is fixed; reopening replays what the file lacks.
    reopen_and_verify(&path, &present, &["refused".to_string()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_checkpoint_halts_writes_and_a_reopen_has_everything() {
    bounded(async {
        for fault in [
            DbFault::Write {
                skip: 0,
                errno: ENOSPC,
            },
            DbFault::Write {
                skip: 1,
                errno: EIO,
            },
            DbFault::Write {
                skip: 3,
                errno: ENOSPC,
            },
            DbFault::Write {
                skip: 20,
                errno: EIO,
            },
            DbFault::Sync,
        ] {
            checkpoint_failure_case(fault).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_error_in_the_final_checkpoint_at_close_is_reported_and_nothing_is_lost() {
    bounded(async {
        for fault in [
            DbFault::Write {
                skip: 0,
                errno: EIO,
            },
            DbFault::Write {
                skip: 2,
                errno: ENOSPC,
            },
            DbFault::Sync,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (path, faults, s) = setup(dir.path(), Synchronous::Normal).await;
            let present = unflushed_writes(&s, 4, 300 << 10).await;
            fault.arm(&faults);
            let e = s.close().await.unwrap_err();
            eprintln!("{fault:?}: close: {}", chain(&e));
            assert_close_failed(&e, &path, &format!("{fault:?}: close"));
            assert!(journal_of(&path).exists(), "the journal is kept for replay");
            reopen_and_verify(&path, &present, &[]).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_with_a_failing_disk_loses_nothing() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (path, faults, s) = setup(dir.path(), Synchronous::Normal).await;
        let present = unflushed_writes(&s, 3, 100 << 10).await;
        faults.fail_writes(IoTarget::Database, EIO, 0);
        // No close(): the engine checkpoints in Drop, fails, and must neither
        // panic nor delete the journal.
        drop(s);
        assert!(journal_of(&path).exists());
        reopen_and_verify(&path, &present, &[]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_after_a_failure_reports_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let (path, faults, s) = setup(dir.path(), Synchronous::Normal).await;
    s.put_session("unflushed", b"x").await.unwrap();
    faults.fail_writes(IoTarget::Database, ENOSPC, 0);
    let e = s.close().await.unwrap_err();
    // The caller learns why: the disk is full.
    assert_halting(&e, &path, &os_text(ENOSPC));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_file_that_cannot_grow() {
    bounded(async {
        // The disk fills up while the database file still has to grow: the
        // first write that needs a bigger file fails. Acknowledged writes
        // survive; the store halts or carries on, but says which.
        let dir = tempfile::tempdir().unwrap();
        let (path, faults, s) = setup(dir.path(), Synchronous::Normal).await;
        s.checkpoint().await.unwrap();
        faults.disk_full(IoTarget::Database, true);
        let mut present = Vec::new();
        let mut failed = None;
        for i in 0..64u8 {
            let (key, value) = (format!("grow-{i}"), big(i, 256 << 10));
            match s.put_session(&key, &value).await {
                Ok(()) => present.push((key, value)),
                Err(e) => {
                    failed = Some((key, value, e));
                    break;
                }
            }
        }
        let (key, value, e) = failed.expect("16 MiB written to a full disk without an error");
        let (inner, text) = explain(&e);
        eprintln!(
            "database full: write {} of 256 KiB failed: {text}",
            present.len()
        );
        assert!(
            text.contains(&path.display().to_string()),
            "names the file: {text}"
        );
        assert!(text.contains(&os_text(ENOSPC)), "says why: {text}");
        let halted = matches!(
            s.put_session("small", b"x").await.map_err(|e| explain(&e).0.to_string()),
            Err(t) if t.contains("stopped accepting writes")
        );
        eprintln!(
            "database full: error variant {}, the store {}",
            format!("{inner:?}").split([' ', '{']).next().unwrap(),
            if halted { "halted" } else { "carries on" }
        );
        faults.heal();
        drop(s);
        reopen_and_verify(&path, &present, &[]).await;
        let s = RedbStore::new(&path).await.unwrap();
        let after = s.get_session(&key).await.unwrap();
        eprintln!(
            "database full: the failed write is {} after reopen",
            if after.is_some() { "PRESENT" } else { "absent" }
        );
        assert!(
            after.is_none(),
            "a write that failed (the database could not grow) was applied at the next open"
        );
        drop(value);
    })
    .await;
}
