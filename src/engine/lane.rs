//! The write lane of a store file: who may run the [`Writer`] right now.
//!
//! There is no writer thread. Writes are committed by their callers, as
//! LevelDB and RocksDB writers do: a caller whose small write finds the lane
//! free becomes its leader, yields once to its runtime (so that writers
//! about to write queue their jobs meanwhile), and commits everything queued
//! as one batch on its own thread — no thread hop, no wake-up. Callers that
//! find the lane taken queue their job and wait; when the leader is done and
//! jobs are left, it hands the lane to the oldest waiting caller, which
//! commits the next batch. A leader commits one batch per turn, so a
//! runtime thread is held for one batch at a time, never for a stream of
//! other callers' work.
//!
//! Work that must not run on a runtime thread goes to the process-wide
//! pool ([`crate::engine::pool`]): batches that fsync (`Full`), jobs that
//! carry a lot or scan rows, and checkpoints, which a timer in the pool or
//! a full journal requests. A pool worker drains the queue until it is
//! empty.
//!
//! Because only the lane's owner ever begins a redb write transaction,
//! redb's `begin_write` never waits. Nothing here spins: a waiting caller
//! awaits its reply (or its turn to lead), and on one CPU the owner always
//! has the core to itself.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::sync::oneshot;

use crate::engine::pool;
use crate::engine::writer::{
    INLINE_MAX_JOBS, INLINE_MAX_WEIGHT, Job, MAX_BATCH_JOBS, MAX_BATCH_WEIGHT, Writer,
    clone_outcome,
};
use crate::error::{Error, Result};

/// Batches a pool worker commits for one lane before it lets other work
/// of the pool run.
const DRAIN_ROUNDS: usize = 8;

/// Takes the next batch from the front of `queue`: up to [`MAX_BATCH_JOBS`]
/// jobs and about `max_weight` of weight; with `inline_only`, at most
/// [`INLINE_MAX_JOBS`] jobs that may run on a caller's thread.
fn take_batch(
    queue: &mut VecDeque<Box<dyn Job>>,
    max_weight: usize,
    inline_only: bool,
) -> Vec<Box<dyn Job>> {
    let mut jobs = Vec::new();
    let mut weight = 0usize;
    let max_jobs = if inline_only {
        INLINE_MAX_JOBS
    } else {
        MAX_BATCH_JOBS
    };
    while jobs.len() < max_jobs && weight < max_weight {
        let Some(next) = queue.front() else {
            break;
        };
        if inline_only && !next.weight().inline_ok() {
            break;
        }
        let job = queue.pop_front().expect("peeked");
        weight = weight.saturating_add(job.weight().get());
        jobs.push(job);
    }
    jobs
}

#[derive(Default)]
struct State {
    /// Someone owns the lane: a leading caller, a pool worker, the close.
    busy: bool,
    queue: VecDeque<Box<dyn Job>>,
    /// Waiting callers that may lead, oldest first: sending makes one the
    /// leader.
    candidates: VecDeque<oneshot::Sender<()>>,
    /// Callers of `checkpoint()`, answered after the next checkpoint.
    checkpoint_waiters: Vec<oneshot::Sender<Result<()>>>,
    /// A checkpoint should run (timer fired, journal full).
    checkpoint_due: bool,
    /// A checkpoint timer is pending in the pool.
    timer_armed: bool,
    /// The journal's preallocated room runs low: a pool worker grows it.
    room_due: bool,
    /// The lane is owned by a drain queued on the pool that has not started.
    drain_queued: bool,
    /// The engine is closing: no new work.
    closed: bool,
    /// Threads waiting in [`Lane::acquire`] to own the lane (a close, a
    /// reconfiguration): the owner lets go to them, not to other work.
    acquiring: usize,
}

impl State {
    fn has_work(&self) -> bool {
        !self.queue.is_empty() || self.wants_checkpoint() || self.room_due
    }

    fn wants_checkpoint(&self) -> bool {
        self.checkpoint_due || !self.checkpoint_waiters.is_empty()
    }
}

pub(crate) struct Lane {
    state: Mutex<State>,
    freed: Condvar,
    /// Locked only by the lane's owner, so never contended; taken out for
    /// good by [`Lane::close`].
    writer: Mutex<Option<Writer>>,
    /// The store file, for errors.
    path: std::path::PathBuf,
    /// Small jobs may commit on the caller's thread (not in `Full` mode);
    /// cleared when a handle raises the file's durability to `Full`.
    inline: AtomicBool,
    this: Weak<Lane>,
}

/// How a submitted job will be committed.
pub(crate) enum Submitted<'a> {
    /// By this caller: yield once, then [`Leader::commit`].
    Lead(Leader<'a>),
    /// By someone else; this caller may be asked to lead meanwhile.
    Queued(Option<Candidate<'a>>),
}

/// The lane, owned by a caller that is to commit on its own thread.
pub(crate) struct Leader<'a> {
    lane: &'a Lane,
    armed: bool,
}

impl Leader<'_> {
    /// Commits the next batch on this thread and lets go of the lane.
    pub fn commit(mut self) {
        self.armed = false;
        self.lane.commit_inline();
    }
}

impl Drop for Leader<'_> {
    /// A leader that never committed (its future was dropped) passes the
    /// lane on, with the queue and its own job.
    fn drop(&mut self) {
        if self.armed {
            self.lane.release();
        }
    }
}

/// A waiting caller that the leader may hand the lane to.
pub(crate) struct Candidate<'a> {
    lane: &'a Lane,
    /// `None` once it resolved: a oneshot receiver must not be polled
    /// again after it completed.
    turn: Option<oneshot::Receiver<()>>,
}

impl<'a> Candidate<'a> {
    /// Resolves with a [`Leader`] when this caller's turn to lead comes;
    /// pending forever if it never does (poll it together with the reply).
    pub fn turn(&mut self) -> impl Future<Output = Leader<'a>> + '_ {
        std::future::poll_fn(move |cx: &mut Context<'_>| {
            let Some(turn) = self.turn.as_mut() else {
                return Poll::Pending;
            };
            match Pin::new(turn).poll(cx) {
                Poll::Ready(Ok(())) => {
                    self.turn = None;
                    Poll::Ready(Leader {
                        lane: self.lane,
                        armed: true,
                    })
                }
                // Never promoted (the lane closed, or every job was
                // committed): wait for the reply alone.
                Poll::Ready(Err(_)) => {
                    self.turn = None;
                    Poll::Pending
                }
                Poll::Pending => Poll::Pending,
            }
        })
    }
}

impl Drop for Candidate<'_> {
    /// Handed the lane but gone before it noticed: pass it on. The
    /// receiver is closed first, so that a leader handing the lane over
    /// right now either fails to (and tries the next caller) or succeeds
    /// before the close and is seen here: a turn sent between a bare
    /// `try_recv` and the receiver's drop would be lost, and with it the
    /// lane (every later write would queue behind an owner that is gone).
    fn drop(&mut self) {
        if let Some(mut turn) = self.turn.take() {
            turn.close();
            if turn.try_recv().is_ok() {
                self.lane.release();
            }
        }
    }
}

/// The writer, borrowed by the lane's owner.
struct Owned<'a>(MutexGuard<'a, Option<Writer>>);

impl std::ops::Deref for Owned<'_> {
    type Target = Writer;
    fn deref(&self) -> &Writer {
        self.0
            .as_ref()
            .expect("only an owner of an open lane borrows the writer")
    }
}
impl std::ops::DerefMut for Owned<'_> {
    fn deref_mut(&mut self) -> &mut Writer {
        self.0
            .as_mut()
            .expect("only an owner of an open lane borrows the writer")
    }
}

impl Lane {
    pub fn new(writer: Writer, inline: bool) -> Arc<Lane> {
        let path = writer.path.clone();
        Arc::new_cyclic(|this| Lane {
            state: Mutex::new(State::default()),
            freed: Condvar::new(),
            writer: Mutex::new(Some(writer)),
            path,
            inline: AtomicBool::new(inline),
            this: this.clone(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer; only for the lane's owner.
    fn writer(&self) -> Owned<'_> {
        Owned(self.writer.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn closed_error(&self) -> Error {
        Error::Closed {
            path: self.path.clone(),
        }
    }

    /// Queues `job` (its reply says how it went) and says who commits it.
    pub fn submit(&self, job: Box<dyn Job>) -> Submitted<'_> {
        let mut state = self.state();
        if state.closed {
            drop(state);
            let err = self.closed_error();
            job.finish(Err(err));
            return Submitted::Queued(None);
        }
        let may_lead = self.inline.load(Ordering::Relaxed) && job.weight().inline_ok();
        state.queue.push_back(job);
        if !may_lead {
            self.dispatch(state);
            return Submitted::Queued(None);
        }
        if !state.busy && !state.wants_checkpoint() && state.acquiring == 0 {
            state.busy = true;
            return Submitted::Lead(Leader {
                lane: self,
                armed: true,
            });
        }
        let (tx, turn) = oneshot::channel();
        state.candidates.push_back(tx);
        self.dispatch(state);
        Submitted::Queued(Some(Candidate {
            lane: self,
            turn: Some(turn),
        }))
    }

    /// Commits the next batch of small jobs on this thread, then lets go.
    fn commit_inline(&self) {
        let jobs = {
            let mut state = self.state();
            if state.wants_checkpoint() {
                Vec::new()
            } else {
                take_batch(&mut state.queue, INLINE_MAX_WEIGHT, true)
            }
        };
        if !jobs.is_empty() {
            let mut writer = self.writer();
            writer.commit_batch(jobs);
            self.after_commit(&writer);
        }
        self.release();
    }

    /// Asks for a checkpoint and returns a receiver of its outcome.
    pub fn checkpoint(&self) -> oneshot::Receiver<Result<()>> {
        let (reply, done) = oneshot::channel();
        let mut state = self.state();
        if state.closed {
            drop(state);
            let _ = reply.send(Err(self.closed_error()));
            return done;
        }
        state.checkpoint_waiters.push(reply);
        self.dispatch(state);
        done
    }

    /// Hands the lane to a pool worker if nobody owns it (or is about to).
    fn dispatch(&self, mut state: MutexGuard<'_, State>) {
        if state.busy || state.acquiring > 0 {
            return; // the owner sees the new work before it lets go
        }
        state.busy = true;
        self.spawn_drain(state);
    }

    /// Queues a drain of this lane on the pool; the lane stays owned by it
    /// until it runs (or [`Lane::close`] takes the work over).
    fn spawn_drain(&self, mut state: MutexGuard<'_, State>) {
        state.drain_queued = true;
        drop(state);
        let lane = self.this.upgrade().expect("a lane in use is alive");
        pool::spawn(move || lane.drain_task());
    }

    /// The pool's side of a queued drain: nothing to do if the close took
    /// the work over meanwhile.
    fn drain_task(&self) {
        {
            let mut state = self.state();
            if !std::mem::take(&mut state.drain_queued) {
                return;
            }
        }
        self.drain(DRAIN_ROUNDS);
    }

    /// After a batch: arms the checkpoint timer when the writer just became
    /// dirty, asks for a checkpoint when the journal is full and for more
    /// journal room when it runs low.
    fn after_commit(&self, writer: &Writer) {
        let deadline = writer.checkpoint_deadline();
        let full = writer.journal_full();
        let room = writer.journal_room_low();
        if deadline.is_none() && !full && !room {
            return;
        }
        let mut state = self.state();
        if full {
            state.checkpoint_due = true;
        }
        if room {
            state.room_due = true;
        }
        if let Some(at) = deadline
            && !state.timer_armed
        {
            state.timer_armed = true;
            drop(state);
            self.arm_timer(at);
        }
    }

    fn arm_timer(&self, at: Instant) {
        let lane = self.this.clone();
        pool::spawn_at(at, move || {
            if let Some(lane) = lane.upgrade() {
                lane.timer_fired();
            }
        });
    }

    fn timer_fired(&self) {
        let mut state = self.state();
        state.timer_armed = false;
        if state.closed {
            return;
        }
        state.checkpoint_due = true;
        self.dispatch(state);
    }

    /// The owner lets go: to the oldest waiting caller that may lead when
    /// small jobs are left, to a pool worker for other work, or to nobody.
    fn release(&self) {
        let mut state = self.state();
        if state.has_work() && state.acquiring == 0 {
            if !state.wants_checkpoint()
                && state.queue.front().is_some_and(|j| j.weight().inline_ok())
            {
                while let Some(next) = state.candidates.pop_front() {
                    if next.send(()).is_ok() {
                        return; // the lane is theirs now
                    }
                }
            }
            self.spawn_drain(state);
            return;
        }
        state.busy = false;
        if !state.has_work() {
            // Nobody is waiting any more: every queued job was committed.
            state.candidates.clear();
        }
        let wake = state.acquiring > 0;
        drop(state);
        if wake {
            self.freed.notify_all();
        }
    }

    /// Commits queued batches and due checkpoints until there is nothing
    /// left, then lets go; after `rounds` batches it queues itself again on
    /// the pool instead, so that other files' work gets a worker too.
    fn drain(&self, rounds: usize) {
        for _ in 0..rounds {
            let (jobs, checkpoint, waiters, room) = {
                let mut state = self.state();
                if !state.has_work() || state.acquiring > 0 {
                    drop(state);
                    self.release();
                    return;
                }
                let room = std::mem::take(&mut state.room_due);
                let jobs = take_batch(&mut state.queue, MAX_BATCH_WEIGHT, false);
                // A checkpoint runs once the queue is empty: it then covers
                // every write acknowledged before it was asked for.
                let checkpoint = state.queue.is_empty() && state.wants_checkpoint();
                let waiters = if checkpoint {
                    state.checkpoint_due = false;
                    std::mem::take(&mut state.checkpoint_waiters)
                } else {
                    Vec::new()
                };
                (jobs, checkpoint, waiters, room)
            };
            let mut writer = self.writer();
            if room {
                writer.grow_journal();
            }
            if !jobs.is_empty() {
                writer.commit_batch(jobs);
            }
            if checkpoint {
                let outcome = if waiters.is_empty() && !writer.checkpoint_due() {
                    // A timer that fired for writes a checkpoint covered
                    // since: nothing due yet.
                    Ok(())
                } else {
                    writer.checkpoint()
                };
                if let Err(e) = &outcome
                    && waiters.is_empty()
                {
                    log::error!("{}: checkpoint failed: {e}", writer.path.display());
                }
                for reply in waiters {
                    let _ = reply.send(clone_outcome(&outcome, &writer.path));
                }
            }
            self.after_commit(&writer);
        }
        self.spawn_drain(self.state());
    }

    /// Waits until this thread owns the lane: when its owner lets go, or at
    /// once when the owner is a drain still waiting for a pool worker (this
    /// thread may be one: it does that work itself rather than wait for it).
    /// Blocking.
    fn acquire(&self) -> MutexGuard<'_, State> {
        let mut state = self.state();
        while state.busy {
            if std::mem::take(&mut state.drain_queued) {
                drop(state);
                self.drain(usize::MAX);
                state = self.state();
                continue;
            }
            state.acquiring += 1;
            state = self.freed.wait(state).unwrap_or_else(|e| e.into_inner());
            state.acquiring -= 1;
        }
        state.busy = true;
        state
    }

    /// Runs `f` on the writer with the lane to itself (no batch before it
    /// has finished, none after it starts), then lets go. Blocking.
    pub fn exclusive<R>(&self, f: impl FnOnce(&mut Writer, &AtomicBool) -> R) -> R {
        let state = self.acquire();
        drop(state);
        let result = f(&mut self.writer(), &self.inline);
        self.release();
        result
    }

    /// Takes the lane for good, once its owner let go and the queue is
    /// empty, and returns the writer for the final steps of closing. Later
    /// submissions fail with [`Error::Closed`]. Blocking.
    pub fn close(&self) -> Writer {
        self.state().closed = true;
        let mut state = self.acquire();
        // Answer what can no longer run.
        let waiters = std::mem::take(&mut state.checkpoint_waiters);
        drop(state);
        for reply in waiters {
            let _ = reply.send(Err(self.closed_error()));
        }
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("a lane is closed once")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use tokio::sync::oneshot;

    use crate::catalog::SESSIONS;
    use crate::config::RedbStoreConfig;
    use crate::engine::writer::{FnJob, Weight};
    use crate::engine::{Engine, pool};

    /// Closing a file whose queued work waits for a pool worker must not
    /// wait for one: every worker may be busy (here: parked) — closing
    /// other files, say, whose own work is queued behind this one.
    #[test]
    fn close_does_the_queued_work_itself_when_no_pool_worker_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let engine = Engine::open(&path, &RedbStoreConfig::default()).unwrap();
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
                tx.put(SESSIONS, (1, "a@c.us.0"), &b"queued"[..])
            }),
            out: None,
            reply,
            weight: Weight::SCAN,
            max_value: 1 << 20,
        };
        assert!(matches!(
            engine.lane.submit(Box::new(job)),
            super::Submitted::Queued(None)
        ));
        engine.close().unwrap();
        for _ in 0..pool::max_threads() {
            release_tx.send(()).unwrap();
        }
        let engine = Engine::open(&path, &RedbStoreConfig::default()).unwrap();
        let got = engine
            .snapshot()
            .unwrap()
            .get(SESSIONS, (1, "a@c.us.0"), <[u8]>::to_vec)
            .unwrap();
        assert_eq!(got.as_deref(), Some(&b"queued"[..]));
    }
}
