//! The single writer: the one place that owns write transactions, batching
//! and durability.
//!
//! Callers hand in jobs (closures over a [`Tx`]) through a channel and await
//! a reply. The writer thread, a plain OS thread (redb's `begin_write`
//! blocks, so it must never run on an async worker), drains whatever is
//! queued into one batch and:
//!
//! 1. applies every job of the batch in one redb write transaction;
//! 2. appends the batch's effects to the journal as one record (and
//!    fdatasyncs it in `Full` mode) — from here the batch survives a crash;
//! 3. commits the transaction with `Durability::None` (memory only, ~10 µs),
//!    which makes it visible to readers;
//! 4. replies to every job.
//!
//! Concurrent callers therefore share one transaction and one journal write
//! (group commit). Every `checkpoint_interval`, when the journal passes
//! `checkpoint_journal_bytes`, on request and at shutdown, a checkpoint
//! commits `Durability::Immediate` with quick-repair, recording the last
//! journal sequence number it covers, and rewinds the journal.
//!
//! A job that fails leaves its neighbours untouched: if it changed nothing
//! the batch carries on; otherwise the transaction is dropped and the batch
//! re-run without it (jobs are deterministic and re-runnable: they capture
//! their inputs, including any timestamp, when created). An I/O error halts
//! the writer: every later write fails with [`Error::Halted`] until the
//! store is reopened, because nothing more can be promised durable.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{Database, Durability};
use tokio::sync::oneshot;

use crate::catalog::META_CHECKPOINT_LSN;
use crate::config::RedbStoreConfig;
use crate::engine::journal::{EffectLog, Journal};
use crate::engine::schema;
use crate::engine::tx::Tx;
use crate::error::{Error, Result};

/// How long the writer polls for more work before sleeping.
const SPIN: Duration = Duration::from_micros(50);
/// Most jobs coalesced into one batch.
const MAX_BATCH_JOBS: usize = 1024;
/// Batches stop growing past this many bytes of job input.
const MAX_BATCH_WEIGHT: usize = 16 << 20;

/// A unit of work for the writer.
pub(crate) trait Job: Send {
    /// Applies the job. May run more than once (on a fresh transaction
    /// each time) if a neighbour in its batch fails; must do the same thing
    /// every time.
    fn apply(&mut self, tx: &mut Tx<'_>) -> Result<()>;
    /// Delivers the outcome to the caller.
    fn finish(self: Box<Self>, outcome: Result<()>);
    /// Approximate input size, to bound batches.
    fn weight(&self) -> usize;
}

/// A job built from a closure; see [`crate::engine::Engine::write`].
pub(crate) struct FnJob<F, R> {
    pub f: F,
    pub out: Option<R>,
    pub reply: oneshot::Sender<Result<R>>,
    pub weight: usize,
}

impl<F, R> Job for FnJob<F, R>
where
    F: Fn(&mut Tx<'_>) -> Result<R> + Send,
    R: Send,
{
    fn apply(&mut self, tx: &mut Tx<'_>) -> Result<()> {
        self.out = Some((self.f)(tx)?);
        Ok(())
    }

    fn finish(self: Box<Self>, outcome: Result<()>) {
        let FnJob { out, reply, .. } = *self;
        let result = outcome.map(|()| out.expect("a job that succeeded produced its output"));
        // The caller may have stopped waiting (its future was dropped); the
        // write happened regardless, like any committed write.
        let _ = reply.send(result);
    }

    fn weight(&self) -> usize {
        self.weight
    }
}

/// What the writer thread is asked to do.
pub(crate) enum Msg {
    Job(Box<dyn Job>),
    /// Make everything acknowledged so far part of the redb file now.
    Checkpoint(oneshot::Sender<Result<()>>),
}

/// Writer state visible to other threads (for `info` and health checks).
#[derive(Debug, Default)]
pub(crate) struct WriterStatus {
    pub halted: Mutex<Option<String>>,
    pub lsn: AtomicU64,
    pub checkpoint_lsn: AtomicU64,
}

pub(crate) struct Writer {
    pub db: Arc<Database>,
    pub path: PathBuf,
    pub journal: Journal,
    /// Append batches to the journal (`Normal`, `Full`); in `Off` mode the
    /// journal file only marks the store as open.
    pub append: bool,
    pub lsn: u64,
    pub checkpoint_lsn: u64,
    pub config: RedbStoreConfig,
    pub status: Arc<WriterStatus>,
    /// When the oldest change not yet covered by a checkpoint was committed.
    pub dirty_since: Option<Instant>,
    pub halted: Option<String>,
    pub log: EffectLog,
}

impl Writer {
    /// The thread body: serve messages until every sender is gone, then
    /// checkpoint and remove the journal.
    pub fn run(mut self, rx: Receiver<Msg>) {
        let mut jobs: Vec<Box<dyn Job>> = Vec::new();
        let mut checkpoints = Vec::new();
        loop {
            let first = match spin_recv(&rx) {
                Some(msg) => Ok(msg),
                None => match self.time_to_checkpoint() {
                    Some(wait) => rx.recv_timeout(wait),
                    None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                },
            };
            let mut weight = 0;
            let mut take = |msg: Msg, jobs: &mut Vec<Box<dyn Job>>, weight: &mut usize| match msg {
                Msg::Job(job) => {
                    *weight += job.weight();
                    jobs.push(job);
                }
                Msg::Checkpoint(reply) => checkpoints.push(reply),
            };
            match first {
                Ok(msg) => take(msg, &mut jobs, &mut weight),
                Err(RecvTimeoutError::Timeout) => {
                    self.checkpoint_logged();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while jobs.len() < MAX_BATCH_JOBS && weight < MAX_BATCH_WEIGHT {
                match rx.try_recv() {
                    Ok(msg) => take(msg, &mut jobs, &mut weight),
                    Err(_) => break,
                }
            }
            if !jobs.is_empty() {
                self.commit_batch(std::mem::take(&mut jobs));
            }
            if !checkpoints.is_empty() {
                let outcome = self.checkpoint();
                for reply in checkpoints.drain(..) {
                    let _ = reply.send(clone_outcome(&outcome, &self.path));
                }
            } else if self.checkpoint_due() {
                self.checkpoint_logged();
            }
        }
        self.shutdown();
    }

    fn time_to_checkpoint(&self) -> Option<Duration> {
        let since = self.dirty_since?;
        Some(
            self.config
                .checkpoint_interval
                .saturating_sub(since.elapsed()),
        )
    }

    fn checkpoint_due(&self) -> bool {
        let by_size = self.journal.used() >= self.config.checkpoint_journal_bytes;
        by_size || self.time_to_checkpoint() == Some(Duration::ZERO)
    }

    fn halt(&mut self, err: &Error) {
        if self.halted.is_none() {
            log::error!(
                "{}: halting writes after a failure: {err}",
                self.path.display()
            );
            let cause = err.to_string();
            *self.status.halted.lock().unwrap_or_else(|p| p.into_inner()) = Some(cause.clone());
            self.halted = Some(cause);
            // No checkpoint can succeed any more; stop the timer.
            self.dirty_since = None;
        }
    }

    fn halted_error(&self) -> Error {
        Error::Halted {
            path: self.path.clone(),
            cause: self.halted.clone().unwrap_or_default(),
        }
    }

    /// Runs one batch; see the module docs.
    fn commit_batch(&mut self, mut jobs: Vec<Box<dyn Job>>) {
        if self.halted.is_some() {
            for job in jobs {
                let err = self.halted_error();
                job.finish(Err(err));
            }
            return;
        }
        let mut failures: Vec<Option<Error>> = jobs.iter().map(|_| None).collect();
        let outcome = loop {
            let attempt = catch_unwind(AssertUnwindSafe(|| {
                self.try_batch(&mut jobs, &mut failures)
            }))
            .unwrap_or_else(|_| {
                Attempt::Done(Err(Error::Corrupted {
                    path: self.path.clone(),
                    detail: "redb failed while committing (run `wa-redb check`)".into(),
                }))
            });
            match attempt {
                Attempt::Retry => continue,
                Attempt::Done(outcome) => break outcome,
            }
        };
        match outcome {
            Ok(()) => {
                for (job, failure) in jobs.into_iter().zip(failures) {
                    job.finish(failure.map_or(Ok(()), Err));
                }
            }
            Err(err) if !err.is_fatal() => {
                // Nothing of the batch was applied (e.g. the journal could
                // not grow): every job fails, the store carries on.
                for (job, failure) in jobs.into_iter().zip(failures) {
                    let err = failure
                        .or_else(|| err.duplicate_no_space())
                        .unwrap_or_else(|| Error::Invalid(err.to_string()));
                    job.finish(Err(err));
                }
            }
            Err(err) => {
                self.halt(&err);
                let mut first = Some(err);
                for (job, failure) in jobs.into_iter().zip(failures) {
                    let err = failure
                        .or_else(|| first.take())
                        .unwrap_or_else(|| self.halted_error());
                    job.finish(Err(err));
                }
            }
        }
    }

    fn try_batch(&mut self, jobs: &mut [Box<dyn Job>], failures: &mut [Option<Error>]) -> Attempt {
        let mut txn = match self.db.begin_write() {
            Ok(txn) => txn,
            Err(e) => return Attempt::Done(Err(Error::storage(&self.path, e))),
        };
        if let Err(e) = txn.set_durability(Durability::None) {
            return Attempt::Done(Err(Error::storage(&self.path, e)));
        }
        self.log.clear();
        for (job, failure) in jobs.iter_mut().zip(failures.iter_mut()) {
            if failure.is_some() {
                continue;
            }
            let mark = self.log.len();
            let mut tx = Tx::new(&txn, &mut self.log, &self.path, self.config.max_value_size);
            let result = catch_unwind(AssertUnwindSafe(|| job.apply(&mut tx)));
            let changed = self.log.len() != mark;
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.is_fatal() => return Attempt::Done(Err(e)),
                Ok(Err(e)) => {
                    *failure = Some(e);
                    if changed {
                        // Partly applied: start over without this job.
                        return Attempt::Retry;
                    }
                }
                Err(panic) => {
                    // Jobs do not panic on their own; redb does, on pages it
                    // finds damaged. Nothing more may be written.
                    let what = panic_message(&panic);
                    return Attempt::Done(Err(Error::Corrupted {
                        path: self.path.clone(),
                        detail: format!("a write failed inside redb ({what}); run `wa-redb check`"),
                    }));
                }
            }
        }
        if self.log.is_empty() {
            // Nothing changed (reads, deletes of missing keys): no commit.
            let _ = txn.abort();
            return Attempt::Done(Ok(()));
        }
        let lsn = self.lsn + 1;
        if self.append
            && let Err(e) = self.journal.append(lsn, &mut self.log)
        {
            let _ = txn.abort();
            return Attempt::Done(Err(e));
        }
        if let Err(e) = txn.commit() {
            return Attempt::Done(Err(Error::storage(&self.path, e)));
        }
        self.lsn = lsn;
        self.status.lsn.store(lsn, Ordering::Relaxed);
        self.dirty_since.get_or_insert_with(Instant::now);
        Attempt::Done(Ok(()))
    }

    /// Commits durably everything acknowledged so far and rewinds the
    /// journal.
    fn checkpoint(&mut self) -> Result<()> {
        if self.halted.is_some() {
            return Err(self.halted_error());
        }
        if self.dirty_since.is_none() && self.lsn == self.checkpoint_lsn {
            return Ok(());
        }
        let result =
            crate::engine::contain_panic(&self.path.clone(), || self.durable_commit_of_lsn());
        match &result {
            Ok(()) => {
                self.checkpoint_lsn = self.lsn;
                self.dirty_since = None;
                self.status
                    .checkpoint_lsn
                    .store(self.lsn, Ordering::Relaxed);
                // The checkpoint is durable; old records are redundant. A
                // failed rewind leaves a longer journal, nothing worse.
                if let Err(e) = self.journal.rewind() {
                    log::warn!("{}: {e}", self.path.display());
                }
            }
            Err(e) => self.halt(e),
        }
        result
    }

    fn durable_commit_of_lsn(&self) -> Result<()> {
        let mut txn = schema::begin_durable(&self.db, &self.path)?;
        // Quick-repair: reopening after a crash is instant rather than a
        // full scan of the file.
        txn.set_quick_repair(true);
        let lsn = self.lsn.to_le_bytes();
        schema::put_meta(&txn, &self.path, &[(META_CHECKPOINT_LSN, &lsn)])?;
        txn.commit().map_err(|e| Error::storage(&self.path, e))
    }

    fn checkpoint_logged(&mut self) {
        if let Err(e) = self.checkpoint() {
            log::error!("{}: checkpoint failed: {e}", self.path.display());
        }
    }

    fn shutdown(mut self) {
        if self.halted.is_some() {
            // Keep the journal: it may hold acknowledged writes the file
            // lacks. The next open replays it.
            return;
        }
        match self.checkpoint() {
            Ok(()) => {
                if let Err(e) = self.journal.remove() {
                    log::warn!("{}: {e}", self.path.display());
                }
            }
            Err(e) => log::error!("{}: final checkpoint failed: {e}", self.path.display()),
        }
    }
}

/// Polls the queue for a short while before the writer goes to sleep: a
/// caller awaiting each write sends the next one within microseconds, and
/// finding the writer awake saves the wake-up of a sleeping thread, which
/// on virtual machines costs tens of microseconds.
fn spin_recv(rx: &Receiver<Msg>) -> Option<Msg> {
    let until = Instant::now() + SPIN;
    loop {
        match rx.try_recv() {
            Ok(msg) => return Some(msg),
            Err(std::sync::mpsc::TryRecvError::Disconnected) => return None,
            Err(std::sync::mpsc::TryRecvError::Empty) => {}
        }
        if Instant::now() >= until {
            return None;
        }
        std::hint::spin_loop();
    }
}

enum Attempt {
    Retry,
    Done(Result<()>),
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// One checkpoint outcome for several waiters (errors are not `Clone`).
fn clone_outcome(outcome: &Result<()>, path: &std::path::Path) -> Result<()> {
    match outcome {
        Ok(()) => Ok(()),
        Err(e) => Err(Error::Halted {
            path: path.to_path_buf(),
            cause: e.to_string(),
        }),
    }
}
