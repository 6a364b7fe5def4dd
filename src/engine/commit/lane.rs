//! The write lane of a store file: who may run the [`Writer`] right now.
//!
//! There is no writer thread. Writes are committed by their callers, as
//! LevelDB and RocksDB writers do, but no caller ever *owns* the lane while
//! it is not running: the lane is taken, a batch committed and the lane let
//! go inside one synchronous step (one poll of a write future, one pool
//! task), so a future that is parked, starved or dropped holds nothing
//! anyone else waits for.
//!
//! A small write queues its job at the first poll of its future and yields
//! once to its runtime, so that writers about to write queue theirs
//! meanwhile. When it is polled again and its reply has not come, it takes
//! the lane if it is free and commits the next batch from the front of the
//! queue (its own job and those queued before and after it) on its own
//! thread — no thread hop, no wake-up. If the lane is taken it registers to
//! be woken when the lane is let go, and tries again then. A caller commits
//! one batch per poll, so a runtime thread is held for one batch at a time,
//! never for a stream of other callers' work.
//!
//! Work that must not run on a runtime thread goes to the process-wide
//! pool ([`crate::engine::pool`]): batches that fsync (`Full`), jobs that
//! carry a lot or scan rows, and checkpoints, which a timer in the pool or
//! a full journal requests. A pool worker drains the queue until it is
//! empty (a bounded number of batches per task).
//!
//! Cancellation: a job is queued at its future's first poll, and from then
//! on it is committed whatever becomes of the future — by the next batch
//! anyone commits, by a pool drain that dropping the future asks for, or
//! at the latest by the close. A future dropped before its first poll
//! queued nothing and writes nothing.
//!
//! Because only the lane's owner ever begins a redb write transaction,
//! redb's `begin_write` never waits. Nothing here spins: a waiting caller
//! awaits its reply (or a wake-up when the lane is let go), and on one CPU
//! the owner always has the core to itself.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::task::Waker;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::engine::pool;
use crate::engine::writer::{
    Due, INLINE_MAX_JOBS, INLINE_MAX_WEIGHT, Job, MAX_BATCH_JOBS, MAX_BATCH_WEIGHT, Pending,
    Writer, clone_outcome,
};
use crate::error::{CheckpointError, WriteError};

/// Batches a pool worker commits for one lane before it lets other work
/// of the pool run.
const DRAIN_ROUNDS: usize = 8;

/// Moves the next batch from the front of `queue` into `jobs` (empty): up
/// to [`MAX_BATCH_JOBS`] jobs and about `max_weight` of weight; with
/// `inline_only`, at most [`INLINE_MAX_JOBS`] jobs that may run on a
/// caller's thread.
fn take_batch(
    queue: &mut VecDeque<Box<dyn Job>>,
    jobs: &mut Vec<Box<dyn Job>>,
    max_weight: usize,
    inline_only: bool,
) {
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
        let Some(job) = queue.pop_front() else {
            break;
        };
        weight = weight.saturating_add(job.weight().get());
        jobs.push(job);
    }
}

#[derive(Default)]
struct State {
    /// Someone runs the writer right now: a caller inside one poll, a pool
    /// worker, an exclusive section, the close; or a drain queued on the
    /// pool (`drain_queued`).
    busy: bool,
    queue: VecDeque<Box<dyn Job>>,
    /// An empty batch vector kept between batches (one allocation less
    /// per batch).
    spare: Vec<Box<dyn Job>>,
    /// Callers with a queued job that found the lane taken: woken when it
    /// is let go with jobs left. Emptied at every let-go, so it holds at
    /// most one entry per caller polled since (see [`Waiting`]).
    waiters: Vec<Waker>,
    /// How many times `waiters` was emptied.
    round: u64,
    /// The queue's first job since the last batch was taken is a small
    /// one whose caller yields before committing it: others arriving now
    /// yield once more before they commit, so that the batch gathers as
    /// many jobs as it would if that caller held the lane across its yield
    /// (it does not: a caller that is never polled again only costs the
    /// others that one extra yield).
    gathering: bool,
    /// A caller gave up waiting for its queued job (its future was
    /// dropped): the next let-go hands the queue to a pool worker rather
    /// than to callers that may never be polled again.
    orphaned: bool,
    /// Callers of `checkpoint()`, answered after the next checkpoint.
    checkpoint_waiters: Vec<oneshot::Sender<Result<(), CheckpointError>>>,
    /// A checkpoint should run (timer fired, journal full).
    checkpoint_due: bool,
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
    /// A checkpoint timer is pending in the pool. An atomic, not part of
    /// `state`: every batch of a dirty writer checks it.
    timer_armed: AtomicBool,
    this: Weak<Lane>,
}

/// Who commits a submitted job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Committer {
    /// The caller may: after a yield, [`Lane::try_commit`] until the reply
    /// comes. `first`: its job opened the batch being gathered.
    Caller { first: bool },
    /// A pool worker (or the job was answered already: the lane is
    /// closed); the caller only awaits the reply.
    Pool,
}

/// What [`Lane::try_commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Committed one batch on this thread.
    Committed,
    /// The lane is taken: the waker is woken when it is let go.
    Busy,
    /// Another caller is gathering a batch: yield once, then try again.
    Defer,
    /// Nothing for this caller to commit: a pool worker has the queue, or
    /// it is empty. The reply comes on its own.
    Elsewhere,
}

/// A caller's entry among the lane's waiters, so that polling it again
/// replaces its waker instead of adding another.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    entry: Option<(u64, usize)>,
}

/// The lane, owned by this thread for one step: let go when dropped — also
/// when a panic unwinds through the step, so that no panic leaves the lane
/// owned by nobody.
struct Owner<'a> {
    lane: &'a Lane,
    armed: bool,
    /// The batch vector, empty, handed back to the lane for the next batch.
    spare: Vec<Box<dyn Job>>,
}

impl<'a> Owner<'a> {
    fn new(lane: &'a Lane) -> Self {
        Owner {
            lane,
            armed: true,
            spare: Vec::new(),
        }
    }
}

impl Drop for Owner<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.lane.release(std::mem::take(&mut self.spare));
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
            timer_armed: AtomicBool::new(false),
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

    fn closed_write(&self) -> WriteError {
        WriteError::Closed {
            path: self.path.clone(),
        }
    }

    fn closed_checkpoint(&self) -> CheckpointError {
        CheckpointError::Closed {
            path: self.path.clone(),
        }
    }

    /// Whether the job at the front of the queue may commit on a caller's
    /// thread.
    fn front_inline(&self, state: &State) -> bool {
        self.inline.load(Ordering::Relaxed)
            && state.queue.front().is_some_and(|j| j.weight().inline_ok())
    }

    /// Queues `job` (its reply says how it went) and says who commits it.
    /// From here on the job runs, whatever becomes of the caller.
    pub fn submit(&self, job: Box<dyn Job>) -> Committer {
        let mut state = self.state();
        if state.closed {
            drop(state);
            job.finish(Err(self.closed_write()));
            return Committer::Pool;
        }
        let inline = self.inline.load(Ordering::Relaxed) && job.weight().inline_ok();
        let first = inline && state.queue.is_empty() && !state.busy;
        state.queue.push_back(job);
        if inline {
            state.gathering |= first;
            return Committer::Caller { first };
        }
        self.dispatch(state);
        Committer::Pool
    }

    /// Commits the next batch of small jobs on this thread if the lane is
    /// free, and lets go of it before returning; otherwise registers
    /// `waker` to be woken when the lane is let go. A `patient` caller
    /// leaves a batch being gathered to the caller gathering it.
    pub fn try_commit(&self, waiting: &mut Waiting, waker: &Waker, patient: bool) -> Attempt {
        let mut state = self.state();
        if state.queue.is_empty() {
            return Attempt::Elsewhere;
        }
        if patient && state.gathering && !state.busy {
            return Attempt::Defer;
        }
        if state.busy || state.acquiring > 0 {
            Self::wait_turn(&mut state, waiting, waker);
            return Attempt::Busy;
        }
        if state.wants_checkpoint() || !self.front_inline(&state) {
            // Pool work comes first; the drain hands the lane back (and
            // wakes this caller) once it is done.
            Self::wait_turn(&mut state, waiting, waker);
            self.dispatch(state);
            return Attempt::Busy;
        }
        state.busy = true;
        state.gathering = false;
        let mut jobs = std::mem::take(&mut state.spare);
        take_batch(&mut state.queue, &mut jobs, INLINE_MAX_WEIGHT, true);
        drop(state);
        let mut owner = Owner::new(self);
        let mut writer = self.writer();
        writer.commit_batch(&mut jobs);
        self.after_commit(writer.pending());
        drop(writer);
        owner.spare = jobs;
        Attempt::Committed
    }

    fn wait_turn(state: &mut State, waiting: &mut Waiting, waker: &Waker) {
        match waiting.entry {
            Some((round, i)) if round == state.round => {
                let entry = &mut state.waiters[i];
                if !entry.will_wake(waker) {
                    entry.clone_from(waker);
                }
            }
            _ => {
                waiting.entry = Some((state.round, state.waiters.len()));
                state.waiters.push(waker.clone());
            }
        }
    }

    /// A caller stopped waiting for its job (its future was dropped): the
    /// job is committed soon by a pool worker if nobody else does.
    pub fn abandon(&self) {
        let mut state = self.state();
        if state.queue.is_empty() || state.closed {
            return;
        }
        state.orphaned = true;
        state.gathering = false;
        self.dispatch(state);
    }

    /// Asks for a checkpoint and returns a receiver of its outcome.
    pub fn checkpoint(&self) -> oneshot::Receiver<Result<(), CheckpointError>> {
        let (reply, done) = oneshot::channel();
        let mut state = self.state();
        if state.closed {
            drop(state);
            let _ = reply.send(Err(self.closed_checkpoint()));
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
    /// until it runs (or [`Lane::acquire`] takes the work over).
    fn spawn_drain(&self, mut state: MutexGuard<'_, State>) {
        state.drain_queued = true;
        drop(state);
        let lane = self.this.upgrade().expect("a lane in use is alive");
        pool::spawn(move || lane.drain_task());
    }

    /// The pool's side of a queued drain: nothing to do if an acquirer
    /// took the work over meanwhile.
    fn drain_task(&self) {
        {
            let mut state = self.state();
            if !std::mem::take(&mut state.drain_queued) {
                return;
            }
        }
        self.drain(DRAIN_ROUNDS);
    }

    /// After a batch: arms the checkpoint timer when the writer is dirty
    /// and none is armed, asks for a checkpoint when the journal is full and
    /// for more journal room when it runs low. Most batches need none of
    /// it, and take no lock here.
    fn after_commit(&self, pending: Pending) {
        let Pending {
            deadline,
            full,
            room,
        } = pending;
        if let Some(at) = deadline
            && !self.timer_armed.swap(true, Ordering::AcqRel)
        {
            self.arm_timer(at);
        }
        if !full && !room {
            return;
        }
        let mut state = self.state();
        state.checkpoint_due |= full;
        state.room_due |= room;
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
        // Cleared first: a batch committed from here on arms a new timer
        // (at worst one checkpoint more), never none.
        self.timer_armed.store(false, Ordering::Release);
        let mut state = self.state();
        if state.closed {
            return;
        }
        state.checkpoint_due = true;
        self.dispatch(state);
    }

    /// The owner lets go: to a thread waiting in [`Lane::acquire`], to a
    /// pool worker for work that is the pool's (or jobs nobody may be
    /// waiting for), else to nobody — waking the callers that wait for it.
    fn release(&self, spare: Vec<Box<dyn Job>>) {
        let mut state = self.state();
        if state.spare.capacity() == 0 {
            state.spare = spare;
        }
        if state.acquiring > 0 {
            // The acquirer goes first; its own let-go wakes the waiters.
            state.busy = false;
            drop(state);
            self.freed.notify_all();
            return;
        }
        if self.pool_work(&state) {
            self.spawn_drain(state);
            return;
        }
        state.busy = false;
        let waiters = std::mem::take(&mut state.waiters);
        state.round = state.round.wrapping_add(1);
        // With the queue empty every waiter's job was committed, and its
        // reply wakes it.
        let wake = !state.queue.is_empty();
        drop(state);
        if wake {
            waiters.into_iter().for_each(Waker::wake);
        }
    }

    /// Whether the queue's state asks for a pool worker rather than the
    /// callers: a checkpoint or journal room is due, the front job may not
    /// run on a caller's thread, or its caller gave up waiting.
    fn pool_work(&self, state: &State) -> bool {
        state.wants_checkpoint()
            || state.room_due
            || (!state.queue.is_empty() && (state.orphaned || !self.front_inline(state)))
    }

    /// Commits queued batches and due checkpoints while the work is the
    /// pool's (see [`Lane::pool_work`]), then lets go — to the callers, who
    /// commit small jobs on their own threads, without a thread hop; after
    /// `rounds` batches it queues itself again on the pool instead, so that
    /// other files' work gets a worker too.
    fn drain(&self, rounds: usize) {
        let mut owner = Owner::new(self);
        for _ in 0..rounds {
            let mut jobs = std::mem::take(&mut owner.spare);
            let (checkpoint, waiters, room) = {
                let mut state = self.state();
                if !self.pool_work(&state) || state.acquiring > 0 {
                    return; // the owner lets go
                }
                state.orphaned = false;
                state.gathering = false;
                let room = std::mem::take(&mut state.room_due);
                take_batch(&mut state.queue, &mut jobs, MAX_BATCH_WEIGHT, false);
                // A checkpoint runs once the queue is empty: it then covers
                // every write acknowledged before it was asked for.
                let checkpoint = state.queue.is_empty() && state.wants_checkpoint();
                let waiters = if checkpoint {
                    state.checkpoint_due = false;
                    std::mem::take(&mut state.checkpoint_waiters)
                } else {
                    Vec::new()
                };
                (checkpoint, waiters, room)
            };
            let mut writer = self.writer();
            if room {
                writer.grow_journal();
            }
            if !jobs.is_empty() {
                writer.commit_batch(&mut jobs);
            }
            owner.spare = jobs;
            if checkpoint {
                let due = match waiters.is_empty() {
                    true => writer.due(),
                    false => Due::Checkpoint,
                };
                let outcome = match due {
                    // A timer that fired for writes covered since: nothing
                    // due yet.
                    Due::Nothing => Ok(()),
                    Due::Sync => writer.sync_journal(),
                    Due::Checkpoint => writer.checkpoint(),
                };
                if let Err(e) = &outcome
                    && waiters.is_empty()
                {
                    let what = match due {
                        Due::Sync => "journal sync",
                        _ => "checkpoint",
                    };
                    log::error!("{}: {what} failed: {e}", writer.path.display());
                }
                for reply in waiters {
                    let _ = reply.send(clone_outcome(&outcome, &writer.path));
                }
            }
            self.after_commit(writer.pending());
        }
        owner.armed = false;
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
        drop(self.acquire());
        let _owner = Owner::new(self);
        f(&mut self.writer(), &self.inline)
    }

    /// Takes the lane for good, once its owner let go, commits every job
    /// still queued (a queued job runs whatever became of its caller) and
    /// returns the writer for the final steps of closing. Later submissions
    /// fail with [`WriteError::Closed`]. Blocking.
    pub fn close(&self) -> Writer {
        self.state().closed = true;
        let mut state = self.acquire();
        // Answer what can no longer run.
        let waiters = std::mem::take(&mut state.checkpoint_waiters);
        let mut queue = std::mem::take(&mut state.queue);
        state.waiters.clear();
        drop(state);
        for reply in waiters {
            let _ = reply.send(Err(self.closed_checkpoint()));
        }
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("a lane is closed once");
        let mut jobs = Vec::new();
        while !queue.is_empty() {
            take_batch(&mut queue, &mut jobs, MAX_BATCH_WEIGHT, false);
            writer.commit_batch(&mut jobs);
        }
        writer
    }
}

#[cfg(test)]
mod tests;
