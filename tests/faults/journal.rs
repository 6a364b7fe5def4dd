//! Faults on the journal: a journal that cannot grow fails only the calls
//! whose batch needed the room (`NoSpace`, batches all or nothing, nothing
//! of them after a reopen); a failed journal write or fsync fails the call
//! and halts; a failed fsync of the journal's new space in Full mode.

use std::sync::Arc;

use bytes::Bytes;
use wacore::store::traits::{DeviceStore, SignalStore};
use whatsapp_rust_redb_storage::fault::IoTarget;
use whatsapp_rust_redb_storage::{Error, RedbStore, Synchronous};

use crate::dataset::chain;
use crate::layer::journal_of;
use crate::{
    EIO, assert_close_failed, assert_no_space, assert_still_failing, big, bounded, explain,
    os_text, reopen_and_verify, setup, unflushed_writes,
};

async fn journal_full_case(mode: Synchronous) {
    let dir = tempfile::tempdir().unwrap();
    let (path, faults, s) = setup(dir.path(), mode).await;
    let mut present = Vec::new();
    let mut absent = Vec::new();

    faults.disk_full(IoTarget::Journal, true);
    // Small writes still fit in the journal's preallocated space.
    s.put_session("small-1", b"fits").await.unwrap();
    present.push(("small-1".to_string(), b"fits".to_vec()));

    // A write that needs the journal to grow fails, with NoSpace.
    let value = big(1, 3 << 20);
    let e = s.put_session("big", &value).await.unwrap_err();
    assert_no_space(&e, &path);
    assert!(faults.injected(IoTarget::Journal) > 0);
    eprintln!("{mode:?}: journal full: {}", chain(&e));
    assert_eq!(s.get_session("big").await.unwrap(), None, "nothing applied");

    // Only that call failed: the store carries on.
    s.put_session("small-2", b"still works").await.unwrap();
    present.push(("small-2".to_string(), b"still works".to_vec()));
    assert!(s.exists().await.unwrap());

    // Concurrent writers that together need more room than is left: each
    // call either succeeds or fails with NoSpace, nothing in between.
    let mut tasks = Vec::new();
    for t in 0..8u8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let key = format!("concurrent-{t}");
            let value = big(10 + t, 512 << 10);
            let result = s.put_session(&key, &value).await;
            (key, value, result)
        }));
    }
    let (mut ok, mut full) = (0, 0);
    for t in tasks {
        let (key, value, result) = t.await.unwrap();
        match result {
            Ok(()) => {
                ok += 1;
                present.push((key, value));
            }
            Err(e) => {
                assert_no_space(&e, &path);
                full += 1;
                assert_eq!(s.get_session(&key).await.unwrap(), None);
                absent.push(key);
            }
        }
    }
    eprintln!("{mode:?}: 8 concurrent 512 KiB writes on a full journal: {ok} ok, {full} NoSpace");
    assert!(full > 0, "the journal never ran out of room");

    // Space again: the same big write now succeeds.
    faults.heal();
    s.put_session("big", &value).await.unwrap();
    present.push(("big".to_string(), value));
    for key in &absent {
        // What failed can be retried too.
        let t: u8 = key.trim_start_matches("concurrent-").parse().unwrap();
        let v = big(10 + t, 512 << 10);
        s.put_session(key, &v).await.unwrap();
        present.push((key.clone(), v));
    }
    s.close().await.unwrap();
    reopen_and_verify(&path, &present, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_cannot_grow_fails_only_the_calls_that_needed_room_normal() {
    bounded(async {
        journal_full_case(Synchronous::Normal).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_cannot_grow_fails_only_the_calls_that_needed_room_full() {
    bounded(async {
        journal_full_case(Synchronous::Full).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_failed_with_no_space_is_absent_after_reopen() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (path, faults, s) = setup(dir.path(), Synchronous::Normal).await;
        faults.disk_full(IoTarget::Journal, true);
        let e = s.put_session("big", &big(2, 3 << 20)).await.unwrap_err();
        assert_no_space(&e, &path);
        s.put_session("small", b"ok").await.unwrap();
        faults.heal();
        s.close().await.unwrap();
        reopen_and_verify(
            &path,
            &[("small".to_string(), b"ok".to_vec())],
            &["big".to_string()],
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fsync_failure_on_the_journal_in_full_mode_fails_the_call_and_halts() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (path, faults, s) = setup(dir.path(), Synchronous::Full).await;
        s.put_session("before", b"acknowledged").await.unwrap();
        faults.fail_syncs(IoTarget::Journal, EIO);
        let e = s
            .put_session("during", b"not acknowledged")
            .await
            .unwrap_err();
        eprintln!("journal fsync EIO: {}", chain(&e));
        let (inner, text) = explain(&e);
        assert!(matches!(inner, Error::Io { .. }), "expected Io: {text}");
        assert!(
            text.contains(&journal_of(&path).display().to_string()),
            "{text}"
        );
        assert!(text.contains(&os_text(EIO)), "{text}");
        // After a failed fsync nothing more can be promised durable: halted.
        let e = s.put_session("later", b"x").await.unwrap_err();
        let journal = journal_of(&path);
        assert_still_failing(&e, &path, &journal, EIO, "write after the failed fsync");
        faults.heal();
        let e = s.close().await.unwrap_err();
        assert_close_failed(&e, &path, "close after the failed fsync");
        reopen_and_verify(
            &path,
            &[("before".to_string(), b"acknowledged".to_vec())],
            &["later".to_string()],
        )
        .await;
        // "during" failed after its record reached the journal file (only the
        // fsync failed): it may or may not be there after the replay, like a
        // write whose outcome the caller cannot know. Either is consistent.
        let s = RedbStore::new(&path).await.unwrap();
        let during = s.get_session("during").await.unwrap();
        eprintln!(
            "journal fsync EIO: the failed write is {} after reopen",
            if during.is_some() {
                "present"
            } else {
                "absent"
            }
        );
        if let Some(v) = during {
            assert_eq!(v.as_ref(), b"not acknowledged");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_write_error_fails_the_call_halts_and_loses_nothing_acknowledged() {
    bounded(async {
        for mode in [Synchronous::Normal, Synchronous::Full] {
            let dir = tempfile::tempdir().unwrap();
            let (path, faults, s) = setup(dir.path(), mode).await;
            let present = unflushed_writes(&s, 2, 1000).await;
            faults.fail_writes(IoTarget::Journal, EIO, 0);
            let e = s.put_session("failed", b"x").await.unwrap_err();
            eprintln!("{mode:?}: journal write EIO: {}", chain(&e));
            let (inner, text) = explain(&e);
            assert!(matches!(inner, Error::Io { .. }), "expected Io: {text}");
            assert!(
                text.contains(&journal_of(&path).display().to_string()),
                "{text}"
            );
            let e = s.put_session("later", b"x").await.unwrap_err();
            let context = "write after the failed journal write";
            assert_still_failing(&e, &path, &journal_of(&path), EIO, context);
            faults.heal();
            drop(s);
            reopen_and_verify(
                &path,
                &present,
                &["failed".to_string(), "later".to_string()],
            )
            .await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_journal_record_fails_is_all_or_nothing() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (path, faults, s) = setup(dir.path(), Synchronous::Normal).await;
        faults.disk_full(IoTarget::Journal, true);
        let batch: Vec<(Arc<str>, Bytes)> = (0..8)
            .map(|i| {
                (
                    Arc::from(format!("batch-{i}")),
                    Bytes::from(big(i, 512 << 10)),
                )
            })
            .collect();
        let e = s.put_sessions_batch(&batch).await.unwrap_err();
        assert_no_space(&e, &path);
        for (key, _) in &batch {
            assert_eq!(s.get_session(key).await.unwrap(), None, "{key}");
        }
        faults.heal();
        s.put_sessions_batch(&batch).await.unwrap();
        s.close().await.unwrap();
        let present: Vec<(String, Vec<u8>)> = batch
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        reopen_and_verify(&path, &present, &[]).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_growth_that_fails_to_sync_in_full_mode() {
    bounded(async {
        // In Full mode, growing the journal fsyncs the new space; an EIO there
        // fails the call without writing anything of it.
        let dir = tempfile::tempdir().unwrap();
        let (path, faults, s) = setup(dir.path(), Synchronous::Full).await;
        faults.fail_syncs(IoTarget::Journal, EIO);
        let e = s.put_session("big", &big(3, 3 << 20)).await.unwrap_err();
        let (inner, text) = explain(&e);
        eprintln!("full mode, journal growth fsync EIO: {text}");
        assert!(
            matches!(inner, Error::NoSpace { .. } | Error::Io { .. }),
            "{text}"
        );
        assert!(text.contains(&os_text(EIO)), "{text}");
        faults.heal();
        let later = s.put_session("later", b"x").await;
        eprintln!(
            "full mode, after a failed growth fsync the store {}",
            if later.is_ok() {
                "carries on"
            } else {
                "is halted"
            }
        );
        let mut present = Vec::new();
        if later.is_ok() {
            present.push(("later".to_string(), b"x".to_vec()));
            s.close().await.unwrap();
        } else {
            drop(s);
        }
        reopen_and_verify(&path, &present, &["big".to_string()]).await;
    })
    .await;
}
