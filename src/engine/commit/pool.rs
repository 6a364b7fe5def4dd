//! Two process-wide pools of worker threads for the work that blocks, for
//! every store file the process has open:
//!
//! - the *commit* pool ([`spawn`], [`spawn_at`]): the write lanes' work —
//!   batches that fsync or are large, checkpoints and their timers;
//! - the *long* pool ([`run`], [`spawn_long`]): opens (with Argon2id for a
//!   passphrase), closes, backups, exports and scans, which may each take
//!   seconds.
//!
//! They are separate so that commits never queue behind long work: with one
//! FIFO pool, a few concurrent backups or encrypted opens took every worker
//! and stalled every fsynced write and checkpoint of the process until they
//! finished. Neither pool waits on the other's queue: commit work never
//! waits for long work, and long work that needs a lane (a close, a
//! reconfiguration) does the lane's queued drain itself rather than wait
//! for a commit worker (`Lane::acquire`).
//!
//! Each pool is bounded ([`max_threads`]) whatever the number of files, so a
//! thousand idle accounts cost no thread at all; threads start when work
//! arrives and no thread is free, and exit after [`IDLE_EXIT`] without work.
//! Timed work (periodic checkpoints) waits in a heap inside the commit pool
//! rather than on a thread of its own: an idle worker sleeps until the
//! earliest deadline.
//!
//! Nothing here spins: a worker with nothing to do sleeps on a condition
//! variable, so on one CPU the pool never takes the core from the thread it
//! is waiting for.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// A unit of pool work.
type Task = Box<dyn FnOnce() + Send>;

/// How long a worker waits for work before it exits.
const IDLE_EXIT: Duration = Duration::from_secs(10);

/// The most worker threads each pool runs: twice the CPUs this process may
/// use, at least 4, at most 8 (so at most 16 in all, none when idle).
///
/// Commit work mostly waits for fsyncs of different files, which overlap
/// even on one CPU. Long work is closes (fsyncs again: measured on 2 cores,
/// closing 300 files at once took 360 ms with 2 workers, 290 ms with 4 and
/// 220 ms with 8), opens and copies; 8 at most bounds what concurrent
/// Argon2id derivations hold (19 MiB each) and how many copies compete for
/// the disk at once.
pub(crate) fn max_threads() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        (2 * cpus).clamp(4, 8)
    })
}

struct Timer {
    at: Instant,
    seq: u64,
    task: Task,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

struct State {
    tasks: VecDeque<Task>,
    timers: BinaryHeap<Reverse<Timer>>,
    next_seq: u64,
    threads: usize,
    /// Workers waiting for work.
    idle: usize,
}

/// One pool: a FIFO queue, a timer heap and the workers serving them.
struct Pool {
    /// The name of its threads.
    name: &'static str,
    state: Mutex<State>,
    work: Condvar,
}

impl Pool {
    const fn new(name: &'static str) -> Pool {
        Pool {
            name,
            state: Mutex::new(State {
                tasks: VecDeque::new(),
                timers: BinaryHeap::new(),
                next_seq: 0,
                threads: 0,
                idle: 0,
            }),
            work: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spawn(&'static self, task: Task) {
        let mut state = self.lock();
        state.tasks.push_back(task);
        self.wake(state);
    }

    fn spawn_at(&'static self, at: Instant, task: Task) {
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        state.timers.push(Reverse(Timer { at, seq, task }));
        // A sleeping worker recomputes its deadline; with none at all, start
        // one (busy ones see the timer when they look for work again).
        if state.idle > 0 {
            drop(state);
            self.work.notify_all();
        } else if state.threads == 0 {
            self.start_worker(state);
        }
    }

    /// Makes sure a worker will pick up what was just queued: wakes an idle
    /// one, or starts one if none is idle and the pool is below its bound
    /// (above it, the work waits for the next free worker).
    fn wake(&'static self, state: MutexGuard<'_, State>) {
        // Idle workers already woken for earlier tasks still count as idle
        // until they run: start one more when the queue outnumbers them.
        let enough = state.tasks.len() <= state.idle;
        if state.idle > 0 {
            self.work.notify_one();
        }
        if !enough {
            self.start_worker(state);
        }
    }

    /// Starts one more worker, unless the pool is at its bound (then the
    /// work waits for the next free worker).
    fn start_worker(&'static self, mut state: MutexGuard<'_, State>) {
        if state.threads >= max_threads() {
            return;
        }
        state.threads += 1;
        drop(state);
        let started = std::thread::Builder::new()
            .name(self.name.into())
            .spawn(move || self.worker());
        if let Err(e) = started {
            // Work still runs on the existing workers, if any.
            log::error!("cannot start a {} thread: {e}", self.name);
            let mut state = self.lock();
            state.threads -= 1;
            if state.threads == 0 {
                // No worker at all: run what is queued on this thread
                // rather than never.
                let tasks: Vec<Task> = state.tasks.drain(..).collect();
                drop(state);
                tasks.into_iter().for_each(run_task);
            }
        }
    }

    fn worker(&'static self) {
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            while state.timers.peek().is_some_and(|Reverse(t)| t.at <= now) {
                let Reverse(timer) = state.timers.pop().expect("peeked");
                state.tasks.push_back(timer.task);
            }
            if let Some(task) = state.tasks.pop_front() {
                if !state.tasks.is_empty() && state.idle > 0 {
                    self.work.notify_one();
                }
                drop(state);
                run_task(task);
                state = self.lock();
                continue;
            }
            let wait = match state.timers.peek() {
                Some(Reverse(t)) => t.at.saturating_duration_since(now).min(IDLE_EXIT),
                None => IDLE_EXIT,
            };
            state.idle += 1;
            let (next, timeout) = self
                .work
                .wait_timeout(state, wait)
                .unwrap_or_else(|e| e.into_inner());
            state = next;
            state.idle -= 1;
            let nothing_due = state.tasks.is_empty()
                && state
                    .timers
                    .peek()
                    .is_none_or(|Reverse(t)| t.at > Instant::now());
            // The last worker stays while timers are pending.
            if timeout.timed_out()
                && wait == IDLE_EXIT
                && nothing_due
                && (state.timers.is_empty() || state.threads > 1)
            {
                state.threads -= 1;
                return;
            }
        }
    }
}

/// The write lanes' pool.
static COMMIT: Pool = Pool::new("wa-redb-commit");
/// The pool of opens, closes, copies and scans.
static LONG: Pool = Pool::new("wa-redb-long");

/// Runs `task` (a write lane's work) on a commit-pool worker.
pub(crate) fn spawn(task: impl FnOnce() + Send + 'static) {
    COMMIT.spawn(Box::new(task));
}

/// Runs `task` (a write lane's timer) on a commit-pool worker at `at` (or
/// soon after).
pub(crate) fn spawn_at(at: Instant, task: impl FnOnce() + Send + 'static) {
    COMMIT.spawn_at(at, Box::new(task));
}

/// Runs `task` (long work whose outcome nobody awaits: a close) on a
/// long-pool worker.
pub(crate) fn spawn_long(task: impl FnOnce() + Send + 'static) {
    LONG.spawn(Box::new(task));
}

/// Runs `f` (long work) on a long-pool worker and returns its result.
/// `None` if `f` panicked.
pub(crate) async fn run<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let (tx, rx) = oneshot::channel();
    spawn_long(move || {
        let _ = tx.send(f());
    });
    rx.await.ok()
}

fn run_task(task: Task) {
    // A task never panics by design; if one does, the worker survives it
    // (the caller waiting on it sees its reply channel closed).
    if catch_unwind(AssertUnwindSafe(task)).is_err() {
        log::error!("a wa-redb worker task panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn runs_many_tasks_on_a_bounded_set_of_threads() {
        let done = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..200 {
            let (done, tx) = (done.clone(), tx.clone());
            spawn(move || {
                std::thread::sleep(Duration::from_micros(200));
                done.fetch_add(1, Ordering::SeqCst);
                let _ = tx.send(());
            });
        }
        for _ in 0..200 {
            rx.recv_timeout(Duration::from_secs(30)).unwrap();
        }
        assert_eq!(done.load(Ordering::SeqCst), 200);
        assert!(COMMIT.lock().threads <= max_threads());
    }

    #[test]
    fn every_timer_fires_and_none_before_its_deadline() {
        // Two due timers may run at once on two workers, so the order in
        // which they *finish* is not the pool's to promise (qemu showed it);
        // that each runs, and none early, is.
        let (tx, rx) = std::sync::mpsc::channel();
        let now = Instant::now();
        for (i, ms) in [(2u64, 60), (0, 20), (1, 40)] {
            let tx = tx.clone();
            let at = now + Duration::from_millis(ms);
            spawn_at(at, move || {
                let _ = tx.send((i, at, Instant::now()));
            });
        }
        let mut got: Vec<u64> = (0..3)
            .map(|_| {
                let (i, at, ran) = rx.recv_timeout(Duration::from_secs(30)).unwrap();
                assert!(ran >= at, "timer {i} ran before its deadline");
                i
            })
            .collect();
        got.sort_unstable();
        assert_eq!(got, vec![0, 1, 2]);
    }

    /// Long work holding every long-pool worker (backups, encrypted opens)
    /// must not delay a commit: the commit pool has workers of its own.
    #[test]
    fn commit_work_runs_while_every_long_worker_is_blocked() {
        let (blocked_tx, blocked_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
        // One more than the bound: the last waits in the queue.
        for _ in 0..=max_threads() {
            let (blocked_tx, release_rx) = (blocked_tx.clone(), release_rx.clone());
            spawn_long(move || {
                let _ = blocked_tx.send(());
                let _ = release_rx.lock().unwrap().recv();
            });
        }
        for _ in 0..max_threads() {
            blocked_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        }
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let tx = done_tx.clone();
        spawn(move || {
            let _ = tx.send("spawn");
        });
        spawn_at(Instant::now(), move || {
            let _ = done_tx.send("spawn_at");
        });
        let mut got: Vec<&str> = (0..2)
            .map(|_| done_rx.recv_timeout(Duration::from_secs(30)))
            .collect::<Result<_, _>>()
            .expect("commit work waited behind long work");
        got.sort_unstable();
        assert_eq!(got, ["spawn", "spawn_at"]);
        for _ in 0..=max_threads() {
            release_tx.send(()).unwrap();
        }
        blocked_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    }
}
