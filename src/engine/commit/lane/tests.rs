//! The lane under a pool with no free worker, and jobs that go to the pool.

use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::config::RedbStoreConfig;
use crate::engine::catalog::testing::{TEST_CATALOG, VALUES};
use crate::engine::writer::{FnJob, Weight};
use crate::engine::{Engine, pool};

/// Closing a file whose queued work waits for a pool worker must not
/// wait for one: every worker may be busy (here: parked) — closing
/// other files, say, whose own work is queued behind this one.
#[test]
fn close_does_the_queued_work_itself_when_no_pool_worker_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let engine = Engine::open(TEST_CATALOG, &path, &RedbStoreConfig::default()).unwrap();
    // Park every pool worker.
    let (parked_tx, parked_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Arc::new(std::sync::Mutex::new(release_rx));
    for _ in 0..pool::max_threads() {
        let (parked_tx, release_rx) = (parked_tx.clone(), release_rx.clone());
        pool::spawn(move || {
            parked_tx.send(()).unwrap();
            let _ = release_rx.lock().unwrap().recv();
        });
    }
    for _ in 0..pool::max_threads() {
        parked_rx.recv().unwrap();
    }
    // A scan-weighted job always goes to the pool: it waits there.
    let (reply, _ignored) = oneshot::channel();
    let job = FnJob {
        f: Some(|tx: &mut crate::engine::tx::Tx<'_>| {
            tx.put(VALUES, (1, "a@c.us.0"), &b"queued"[..])
        }),
        out: None,
        reply,
        weight: Weight::SCAN,
        max_value: 1 << 20,
    };
    assert_eq!(
        engine.lane.submit(Box::new(job)),
        crate::engine::Committer::Pool
    );
    engine.close().unwrap();
    for _ in 0..pool::max_threads() {
        release_tx.send(()).unwrap();
    }
    let engine = Engine::open(TEST_CATALOG, &path, &RedbStoreConfig::default()).unwrap();
    let got = engine
        .snapshot()
        .unwrap()
        .get(VALUES, (1, "a@c.us.0"), <[u8]>::to_vec)
        .unwrap();
    assert_eq!(got.as_deref(), Some(&b"queued"[..]));
}
