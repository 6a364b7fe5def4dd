//! One process-wide pool of worker threads for the work that blocks: write
//! batches that fsync or are large, checkpoints, opens, closes and long
//! scans, for every store file the process has open.
//!
//! The pool is bounded ([`max_threads`]) whatever the number of files, so a
//! thousand idle accounts cost no thread at all; threads start when work
//! arrives and no thread is free, and exit after [`IDLE_EXIT`] without work.
//! Timed work (periodic checkpoints) waits in a heap inside the pool rather
//! than on a thread of its own: an idle worker sleeps until the earliest
//! deadline.
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

/// The most worker threads the pool runs: twice the CPUs this process may
/// use, at least 4, at most 8. Pool work mostly waits for fsyncs (Full-mode
/// batches, checkpoints, closes), which overlap even on one CPU: measured
/// on 2 cores, closing 300 files at once took 360 ms with 2 workers, 290 ms
/// with 4 and 220 ms with 8.
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

#[derive(Default)]
struct State {
    tasks: VecDeque<Task>,
    timers: BinaryHeap<Reverse<Timer>>,
    next_seq: u64,
    threads: usize,
    /// Workers waiting for work.
    idle: usize,
}

struct Pool {
    state: Mutex<State>,
    work: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(State::default()),
        work: Condvar::new(),
    })
}

fn lock(p: &Pool) -> MutexGuard<'_, State> {
    p.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes sure a worker will pick up what was just queued: wakes an idle one,
/// or starts one if none is idle and the pool is below its bound (above it,
/// the work waits for the next free worker).
fn wake(p: &'static Pool, state: MutexGuard<'_, State>) {
    // Idle workers already woken for earlier tasks still count as idle
    // until they run: start one more when the queue outnumbers them.
    let enough = state.tasks.len() <= state.idle;
    if state.idle > 0 {
        p.work.notify_one();
    }
    if !enough {
        start_worker(p, state);
    }
}

/// Starts one more worker, unless the pool is at its bound (then the work
/// waits for the next free worker).
fn start_worker(p: &'static Pool, mut state: MutexGuard<'_, State>) {
    if state.threads >= max_threads() {
        return;
    }
    state.threads += 1;
    drop(state);
    let started = std::thread::Builder::new()
        .name("wa-redb-worker".into())
        .spawn(move || worker(p));
    if let Err(e) = started {
        // Work still runs on the existing workers, if any.
        log::error!("cannot start a wa-redb worker thread: {e}");
        let mut state = lock(p);
        state.threads -= 1;
        if state.threads == 0 {
            // No worker at all: run what is queued on this thread rather
            // than never.
            let tasks: Vec<Task> = state.tasks.drain(..).collect();
            drop(state);
            tasks.into_iter().for_each(run_task);
        }
    }
}

/// Runs `task` on a pool worker.
pub(crate) fn spawn(task: impl FnOnce() + Send + 'static) {
    let p = pool();
    let mut state = lock(p);
    state.tasks.push_back(Box::new(task));
    wake(p, state);
}

/// Runs `task` on a pool worker at `at` (or soon after).
pub(crate) fn spawn_at(at: Instant, task: impl FnOnce() + Send + 'static) {
    let p = pool();
    let mut state = lock(p);
    let seq = state.next_seq;
    state.next_seq += 1;
    state.timers.push(Reverse(Timer {
        at,
        seq,
        task: Box::new(task),
    }));
    // A sleeping worker recomputes its deadline; with none at all, start
    // one (busy ones see the timer when they look for work again).
    if state.idle > 0 {
        drop(state);
        p.work.notify_all();
    } else if state.threads == 0 {
        start_worker(p, state);
    }
}

/// Runs `f` on a pool worker and returns its result. `None` if `f`
/// panicked.
pub(crate) async fn run<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let (tx, rx) = oneshot::channel();
    spawn(move || {
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

fn worker(p: &'static Pool) {
    let mut state = lock(p);
    loop {
        let now = Instant::now();
        while state.timers.peek().is_some_and(|Reverse(t)| t.at <= now) {
            let Reverse(timer) = state.timers.pop().expect("peeked");
            state.tasks.push_back(timer.task);
        }
        if let Some(task) = state.tasks.pop_front() {
            if !state.tasks.is_empty() && state.idle > 0 {
                p.work.notify_one();
            }
            drop(state);
            run_task(task);
            state = lock(p);
            continue;
        }
        let wait = match state.timers.peek() {
            Some(Reverse(t)) => t.at.saturating_duration_since(now).min(IDLE_EXIT),
            None => IDLE_EXIT,
        };
        state.idle += 1;
        let (next, timeout) = p
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
        assert!(lock(pool()).threads <= max_threads());
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
}
