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
//!
//! The fault layer is in `layer.rs`, the tests in `journal.rs`,
//! `database.rs` and `open.rs`; here the helpers they share (the checks of
//! the errors, `setup`, `reopen_and_verify`, `unflushed_writes`).

mod database;
#[path = "../util/dataset.rs"]
mod dataset;
mod heal;
mod journal;
mod layer;
mod open;
mod timed;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dataset::chain;
use layer::{Faults, config, journal_of};
use wacore::store::error::StoreError;
use wacore::store::traits::SignalStore;
use whatsapp_rust_redb_storage::{Error, RedbStore, Synchronous};

// The operating system's own codes for a full disk and a failing one, so
// that the store sees them as the real thing (Windows: ERROR_DISK_FULL and
// ERROR_IO_DEVICE).
#[cfg(unix)]
const ENOSPC: i32 = 28;
#[cfg(unix)]
const EIO: i32 = 5;
#[cfg(windows)]
const ENOSPC: i32 = 112;
#[cfg(windows)]
const EIO: i32 = 1117;
const ROWS: u32 = 20;

/// Runs a test body, failing it if it does not finish in time (a hang).
async fn bounded<F: std::future::Future>(body: F) -> F::Output {
    let limit = Duration::from_secs(120);
    tokio::time::timeout(limit, body)
        .await
        .unwrap_or_else(|_| panic!("did not finish within {limit:?}: a hang"))
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
    let Error::Halted { cause, .. } = inner else {
        panic!("{context}: expected Halted: {text}");
    };
    // The failure that halted the store, kept as a value: the I/O error
    // itself, not a halt of a halt, nor text.
    assert!(
        matches!(
            **cause,
            Error::Io { .. } | Error::Storage { .. } | Error::Corrupted { .. }
        ),
        "{context}: the cause is the failure: {cause:?}"
    );
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("reopen"), "says what to do: {text}");
}

/// A write after a halting failure whose cause is still there: refused
/// with `Halted` carrying it, or — when it first reopened the file (the
/// store does before a write after a halt) — failing again with the same
/// failure, naming `file`.
fn assert_still_failing(e: &StoreError, path: &Path, file: &Path, errno: i32, context: &str) {
    let (inner, text) = explain(e);
    if matches!(inner, Error::Halted { .. }) {
        return assert_halted(e, path, context);
    }
    assert!(matches!(inner, Error::Io { .. }), "{context}: {text}");
    assert!(
        text.contains(&file.display().to_string()),
        "{context}: {text}"
    );
    assert!(text.contains(&os_text(errno)), "{context}: {text}");
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
