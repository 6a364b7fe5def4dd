//! A full disk and failing writes, through the store's I/O fault hook
//! (`RedbStoreConfig::with_io_faults`): every write, `set_len` and sync of
//! the store's files passes a test layer that can fail it.
//!
//! What must hold:
//! - the failing call returns an error that names the file and says what
//!   happened (and which kind: `NoSpace`, `Io`, `Halted`);
//! - a journal that cannot grow fails only the calls whose batch needed the
//!   space (`NoSpace`); the store keeps working, and once there is space
//!   again the same write succeeds;
//! - a failure writing the database (a checkpoint, the final checkpoint at
//!   close) or syncing the journal halts writes with a clear error;
//! - whatever happens, everything acknowledged before is there after a
//!   reopen without faults, and nothing that failed with `NoSpace` is.

#[path = "util/dataset.rs"]
mod dataset;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dataset::chain;
use wacore::store::error::StoreError;
use wacore::store::traits::{DeviceStore, SignalStore};
use whatsapp_rust_redb_storage::fault::{IoFaults, IoTarget};
use whatsapp_rust_redb_storage::{Error, RedbStore, RedbStoreConfig, Synchronous};

const ENOSPC: i32 = 28;
const EIO: i32 = 5;
const ROWS: u32 = 20;

/// Runs a test body, failing it if it does not finish in time (a hang).
async fn bounded<F: std::future::Future>(body: F) -> F::Output {
    let limit = Duration::from_secs(120);
    tokio::time::timeout(limit, body)
        .await
        .unwrap_or_else(|_| panic!("did not finish within {limit:?}: a hang"))
}

fn idx(t: IoTarget) -> usize {
    match t {
        IoTarget::Database => 0,
        // Directory fsyncs (at a clean close) count with the journal's.
        _ => 1,
    }
}

/// The fault layer. Each knob is per file (database, journal):
/// - `full`: the disk is full: a write or `set_len` that would make the
///   file longer than it is fails with ENOSPC; overwrites inside it work
///   (what a real full disk does to a preallocated file);
/// - `fail_writes`: every write fails with this errno, once `skip` more
///   writes have passed;
/// - `fail_syncs`: every sync fails with this errno.
#[derive(Default)]
struct Faults {
    full: [AtomicBool; 2],
    fail_writes: [AtomicI32; 2],
    skip: [AtomicU64; 2],
    fail_syncs: [AtomicI32; 2],
    /// Length of each file as the writes seen so far made it.
    len: Mutex<[u64; 2]>,
    writes: [AtomicU64; 2],
    injected: [AtomicU64; 2],
}

impl Faults {
    /// A layer for the store at `path`, knowing its current size.
    fn new(path: &Path) -> Arc<Faults> {
        let f = Faults::default();
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        *f.len.lock().unwrap() = [size(path), size(&journal_of(path))];
        Arc::new(f)
    }

    fn disk_full(&self, t: IoTarget, on: bool) {
        self.full[idx(t)].store(on, Ordering::SeqCst);
    }

    /// Every write to `t` after the next `skip` fails with `errno`.
    fn fail_writes(&self, t: IoTarget, errno: i32, skip: u64) {
        self.skip[idx(t)].store(skip, Ordering::SeqCst);
        self.fail_writes[idx(t)].store(errno, Ordering::SeqCst);
    }

    fn fail_syncs(&self, t: IoTarget, errno: i32) {
        self.fail_syncs[idx(t)].store(errno, Ordering::SeqCst);
    }

    fn heal(&self) {
        for i in 0..2 {
            self.full[i].store(false, Ordering::SeqCst);
            self.fail_writes[i].store(0, Ordering::SeqCst);
            self.fail_syncs[i].store(0, Ordering::SeqCst);
        }
    }

    fn injected(&self, t: IoTarget) -> u64 {
        self.injected[idx(t)].load(Ordering::SeqCst)
    }

    fn fail(&self, i: usize, errno: i32) -> io::Result<()> {
        self.injected[i].fetch_add(1, Ordering::SeqCst);
        Err(io::Error::from_raw_os_error(errno))
    }
}

impl IoFaults for Faults {
    fn on_write(&self, t: IoTarget, offset: u64, data: &[u8]) -> io::Result<()> {
        let i = idx(t);
        self.writes[i].fetch_add(1, Ordering::SeqCst);
        let errno = self.fail_writes[i].load(Ordering::SeqCst);
        if errno != 0 {
            let passed = self.skip[i]
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| s.checked_sub(1))
                .is_ok();
            if !passed {
                return self.fail(i, errno);
            }
        }
        let mut len = self.len.lock().unwrap();
        let end = offset + data.len() as u64;
        if end > len[i] {
            if self.full[i].load(Ordering::SeqCst) {
                drop(len);
                return self.fail(i, ENOSPC);
            }
            len[i] = end;
        }
        Ok(())
    }

    fn on_set_len(&self, t: IoTarget, new_len: u64) -> io::Result<()> {
        let i = idx(t);
        let mut len = self.len.lock().unwrap();
        if new_len > len[i] && self.full[i].load(Ordering::SeqCst) {
            drop(len);
            return self.fail(i, ENOSPC);
        }
        len[i] = new_len;
        Ok(())
    }

    fn on_sync(&self, t: IoTarget) -> io::Result<()> {
        let errno = self.fail_syncs[idx(t)].load(Ordering::SeqCst);
        if errno != 0 {
            return self.fail(idx(t), errno);
        }
        Ok(())
    }
}

fn journal_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.journal", path.display()))
}

fn config(mode: Synchronous, faults: &Arc<Faults>) -> RedbStoreConfig {
    // No timed checkpoint during a test: the tests choose when.
    RedbStoreConfig::default()
        .with_synchronous(mode)
        .with_checkpoint_interval(Duration::from_secs(3600))
        .with_io_faults(faults.clone())
}

/// The store's error inside a `StoreError`, with its text.
fn explain(e: &StoreError) -> (&Error, String) {
    let inner = dataset::inner(e).unwrap_or_else(|| panic!("not a store error: {}", chain(e)));
    (inner, chain(e))
}

fn os_text(errno: i32) -> String {
    io::Error::from_raw_os_error(errno).to_string()
}

/// Asserts `e` is the `NoSpace` of the journal of `path`.
fn assert_no_space(e: &StoreError, path: &Path) {
    let (inner, text) = explain(e);
    assert!(
        matches!(inner, Error::NoSpace { .. }),
        "expected NoSpace: {text}"
    );
    assert!(
        text.contains(&journal_of(path).display().to_string()),
        "names the journal: {text}"
    );
    assert!(text.contains("disk full"), "{text}");
    assert!(text.contains(&os_text(ENOSPC)), "{text}");
}

/// Asserts that `e` halted the store: either the failure itself (`Io`) or
/// `Halted` carrying it; in both cases naming `file` and saying `what`.
fn assert_halting(e: &StoreError, file: &Path, what: &str) {
    let (inner, text) = explain(e);
    assert!(
        matches!(
            inner,
            Error::Io { .. } | Error::Halted { .. } | Error::Storage { .. }
        ),
        "expected a halting error: {text}"
    );
    assert!(
        text.contains(&file.display().to_string()),
        "names {}: {text}",
        file.display()
    );
    assert!(text.contains(what), "says {what:?}: {text}");
}

fn assert_halted(e: &StoreError, path: &Path, context: &str) {
    let (inner, text) = explain(e);
    assert!(
        matches!(inner, Error::Halted { .. }),
        "{context}: expected Halted: {text}"
    );
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("reopen"), "says what to do: {text}");
}

/// Asserts that `close` failed, naming the file. (Which error: see
/// `close_after_a_failure_reports_the_cause`.)
fn assert_close_failed(e: &StoreError, path: &Path, context: &str) {
    let (inner, text) = explain(e);
    assert!(
        matches!(
            inner,
            Error::Io { .. } | Error::Halted { .. } | Error::Storage { .. }
        ),
        "{context}: {text}"
    );
    assert!(
        text.contains(&path.display().to_string()),
        "{context}: names the file: {text}"
    );
}

fn big(tag: u8, len: usize) -> Vec<u8> {
    let mut v = vec![tag; len];
    v[..8].copy_from_slice(&(len as u64).to_le_bytes());
    v
}

/// Reopens `path` without faults and checks the data set and `present`
/// sessions are there and `absent` ones are not.
async fn reopen_and_verify(path: &Path, present: &[(String, Vec<u8>)], absent: &[String]) {
    let s = RedbStore::new(path)
        .await
        .unwrap_or_else(|e| panic!("reopen without faults: {}", chain(&e)));
    let c = dataset::check(&s, ROWS, false).await;
    assert!(
        c.is_clean(),
        "acknowledged data set after reopen: diffs {:?}, errors {:?}",
        c.diffs,
        c.errors
            .iter()
            .map(|(w, e)| format!("{w}: {}", chain(e)))
            .collect::<Vec<_>>()
    );
    for (key, value) in present {
        let got = s.get_session(key).await.unwrap();
        assert!(
            got.as_deref() == Some(value.as_slice()),
            "acknowledged {key} lost or wrong after reopen ({:?} bytes)",
            got.map(|g| g.len())
        );
    }
    for key in absent {
        assert_eq!(
            s.get_session(key).await.unwrap().map(|v| v.len()),
            None,
            "{key} failed but is stored"
        );
    }
    // The reopened store takes writes and closes cleanly.
    s.put_session("after-reopen", b"x").await.unwrap();
    s.close().await.unwrap();
    assert!(!journal_of(path).exists());
}

/// A store with the data set, acknowledged, and faults installed (none
/// armed yet).
async fn setup(dir: &Path, mode: Synchronous) -> (PathBuf, Arc<Faults>, RedbStore) {
    let path = dir.join("store.redb");
    let faults = Faults::new(&path);
    let s = RedbStore::with_config(&path, config(mode, &faults))
        .await
        .unwrap();
    dataset::populate(&s, ROWS).await;
    (path, faults, s)
}

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

/// Acknowledged writes after the last checkpoint: in the journal only.
async fn unflushed_writes(s: &RedbStore, n: u32, len: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for i in 0..n {
        let (key, value) = (format!("unflushed-{i}"), big(50 + i as u8, len));
        s.put_session(&key, &value).await.unwrap();
        out.push((key, value));
    }
    out
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
        assert_halted(&e, &path, "write after the failed fsync");
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
            assert_halted(&e, &path, "write after the failed journal write");
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
