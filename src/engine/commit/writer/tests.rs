//! The writer's batches: a failing job leaves its neighbours alone, one
//! that fails half-way drops its batch, one that panics halts the writer.

use tokio::sync::oneshot;

use crate::config::RedbStoreConfig;
use crate::engine::Engine;
use crate::engine::catalog::testing::{TEST_CATALOG, VALUES};
use crate::engine::lane::{Attempt, Committer, Waiting};
use crate::engine::tx::Tx;
use crate::error::WriteError;

type Result<T, E = WriteError> = std::result::Result<T, E>;

use super::{FnJob, Weight};

type Reply = oneshot::Receiver<Result<()>>;

/// Queues `f` as a job that its caller may commit.
fn job(engine: &Engine, f: impl FnOnce(&mut Tx<'_>) -> Result<()> + Send + 'static) -> Reply {
    let (reply, done) = oneshot::channel();
    let job = FnJob {
        f: Some(f),
        out: None,
        reply,
        weight: Weight::bytes(16),
        max_value: 1 << 10,
    };
    assert!(matches!(
        engine.lane.submit(Box::new(job)),
        Committer::Caller { .. }
    ));
    done
}

/// Commits the queued jobs as one batch on this thread.
fn commit(engine: &Engine) {
    let attempt = engine
        .lane
        .try_commit(&mut Waiting::default(), std::task::Waker::noop(), false);
    assert_eq!(attempt, Attempt::Committed);
}

fn put(name: &'static str) -> impl FnOnce(&mut Tx<'_>) -> Result<()> + Send {
    move |tx| tx.put(VALUES, (1, name), &b"v"[..])
}

fn stored(engine: &Engine, name: &str) -> bool {
    let s = engine.snapshot().unwrap();
    s.get(VALUES, (1, name), |_| ()).unwrap().is_some()
}

fn outcome(mut done: Reply) -> Result<()> {
    done.try_recv().expect("the batch replied")
}

fn open(dir: &tempfile::TempDir) -> Engine {
    Engine::open(
        TEST_CATALOG,
        &dir.path().join("s.redb"),
        &RedbStoreConfig::default(),
    )
    .unwrap()
}

/// Commits `middle` between puts of "a" and "b", the three as one
/// batch; their replies in that order.
fn around(
    engine: &Engine,
    middle: impl FnOnce(&mut Tx<'_>) -> Result<()> + Send + 'static,
) -> [Reply; 3] {
    let a = job(engine, put("a"));
    let m = job(engine, middle);
    let b = job(engine, put("b"));
    commit(engine);
    [a, m, b]
}

/// A job that fails before changing anything fails alone, in the same
/// transaction as its neighbours, which are written.
#[test]
fn a_job_that_fails_unchanged_leaves_its_batch_alone() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir);
    let [a, oversized, b] = around(&engine, |tx| tx.put(VALUES, (1, "big"), &[0u8; 2048][..]));
    assert!(outcome(a).is_ok() && outcome(b).is_ok());
    assert!(matches!(
        outcome(oversized),
        Err(WriteError::ValueTooLarge { .. })
    ));
    assert!(stored(&engine, "a") && stored(&engine, "b") && !stored(&engine, "big"));
    engine.close().unwrap();
}

/// A job that fails after a change (a bug: jobs check before they
/// write) gets its whole batch dropped, nothing of it written, and the
/// store carries on.
#[test]
fn a_job_that_fails_half_way_drops_its_batch_unwritten() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir);
    let [a, broken, b] = around(&engine, |tx| {
        tx.put(VALUES, (1, "half"), &b"v"[..])?;
        Err(WriteError::DeviceMissing { device_id: 77 })
    });
    assert!(matches!(
        outcome(broken),
        Err(WriteError::DeviceMissing { device_id: 77 })
    ));
    for neighbour in [a, b] {
        assert!(matches!(
            outcome(neighbour),
            Err(WriteError::BatchDropped { .. })
        ));
    }
    for name in ["a", "half", "b"] {
        assert!(!stored(&engine, name), "{name} was written");
    }
    let again = job(&engine, put("a"));
    commit(&engine);
    assert!(outcome(again).is_ok() && stored(&engine, "a"));
    engine.close().unwrap();
}

/// A job that panics (a bug; redb's panics on damage look the same)
/// fails its batch and halts the writer with the panic as the cause;
/// the lane is free, and the engine reopens its file and writes again.
#[test]
fn a_job_that_panics_halts_and_the_engine_heals() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir);
    let [a, panicked, b] = around(&engine, |_| panic!("injected panic inside a job"));
    for reply in [a, panicked, b] {
        let e = outcome(reply).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("injected panic inside a job"), "{text}");
    }
    assert!(engine.stopped());
    let refused = job(&engine, put("c"));
    commit(&engine);
    assert!(matches!(outcome(refused), Err(WriteError::Halted { .. })));
    assert!(engine.heal().unwrap(), "reopened");
    let again = job(&engine, put("a"));
    commit(&engine);
    assert!(outcome(again).is_ok() && stored(&engine, "a") && !stored(&engine, "c"));
    engine.close().unwrap();
}
