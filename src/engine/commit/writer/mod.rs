//! The writer: the one place that owns write transactions, batching and
//! durability for a store file.
//!
//! Whoever holds the store's write lane (see [`crate::engine::lane`]) runs
//! batches of jobs (closures over a [`Tx`]) through [`Writer::commit_batch`]:
//!
//! 1. every job of the batch is applied in one redb write transaction;
//! 2. the batch's effects are appended to the journal as one record (and
//!    fdatasync'ed in `Full` mode) — from here the batch survives a crash;
//! 3. the transaction is committed with `Durability::None` (memory only,
//!    ~10 µs), which makes it visible to readers;
//! 4. every job gets its reply.
//!
//! Concurrent callers therefore share one transaction and one journal write
//! (group commit). A checkpoint commits `Durability::Immediate` with
//! quick-repair, recording the last journal sequence number it covers, and
//! rewinds the journal: when the journal passes `checkpoint_journal_bytes`,
//! on request, and once no write came for a `checkpoint_interval` (idle
//! time). While writes keep coming, the journal itself is what makes them
//! durable within `checkpoint_interval`: in `Normal` mode one fdatasync of
//! the records written since the last (a journal sync) instead of a
//! checkpoint, which would write every page changed since and fsync twice.
//! In `Off` mode there is no journal: a checkpoint every
//! `checkpoint_interval`. At close the last sequence number is recorded
//! without fsync, and redb's own closing commit makes it durable.
//!
//! A job that fails leaves its neighbours untouched: every job reads and
//! checks what it needs before its first change (see [`crate::engine::tx`]),
//! so a job that fails has changed nothing and the batch carries on without
//! it. Each job runs once. An I/O error halts the writer: every later write
//! fails with [`WriteError::Halted`] until the store is reopened, because nothing
//! more can be promised durable. A job that breaks the rule (fails after a
//! change: a bug) gets the batch dropped whole, none of it written.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use redb::{Database, Durability};

use crate::config::{RedbStoreConfig, Synchronous};
use crate::engine::journal::{EffectLog, Journal, JournalSpec};
use crate::engine::ship::Shipper;
use crate::engine::tx::Tx;
use crate::error::{CheckpointError, StorageError, StorageResult as Result, WriteError};
use crate::telemetry::FileMetrics;

mod durable;
mod job;

pub(crate) use durable::{Due, Pending, clone_outcome};

pub(crate) use job::{
    FnJob, INLINE_MAX_JOBS, INLINE_MAX_WEIGHT, Job, MAX_BATCH_JOBS, MAX_BATCH_WEIGHT, Weight,
};

/// Writer state visible to other threads (for `info` and health checks).
#[derive(Debug, Default)]
pub(crate) struct WriterStatus {
    pub halted: Mutex<Option<StorageError>>,
    /// `halted` is set: one load on every write, no lock.
    pub stopped: std::sync::atomic::AtomicBool,
    pub lsn: AtomicU64,
    pub checkpoint_lsn: AtomicU64,
}

pub(crate) struct Writer {
    /// `None` while a halted writer has let go of the file to reopen it
    /// ([`Writer::let_go`]).
    pub db: Option<Arc<Database>>,
    pub path: PathBuf,
    /// Created at the first write (see [`Journal::create`]).
    pub journal: Option<Journal>,
    pub journal_spec: JournalSpec,
    /// Append batches to the journal (`Normal`, `Full`); in `Off` mode the
    /// journal file only marks the store as written to.
    pub append: bool,
    pub lsn: u64,
    pub checkpoint_lsn: u64,
    pub config: RedbStoreConfig,
    pub status: Arc<WriterStatus>,
    /// When the oldest change not yet covered by a checkpoint was committed.
    pub dirty_since: Option<Instant>,
    /// When the oldest journal record not yet on stable storage was
    /// appended (`Normal` only: `Full` fsyncs each record).
    pub unsynced_since: Option<Instant>,
    /// When the newest change was committed: a checkpoint waits for an
    /// interval without one.
    pub last_write_at: Option<Instant>,
    pub halted: Option<StorageError>,
    pub log: EffectLog,
    /// Rows deleted since the last checkpoint: the close then commits
    /// durably (see [`Writer::record_for_close`]).
    pub deleted_since_checkpoint: u64,
    pub metrics: Arc<FileMetrics>,
    /// Each job's own failure, per batch (kept between batches: one
    /// allocation less per batch).
    pub failures: Vec<Option<WriteError>>,
    /// Replicated durability: each record also goes to a replica, and a
    /// batch's callers are answered once it is stored there.
    pub ship: Option<Shipper>,
}

impl Writer {
    /// Adopts what another handle of the file asks for (see
    /// `RedbStoreConfig::merged_with`): a stronger durability takes effect
    /// for every later batch, after a checkpoint has made everything
    /// acknowledged so far durable at that level too; the shorter
    /// checkpoint interval and journal size apply from the next batch.
    pub fn reconfigure(&mut self, merged: &RedbStoreConfig) -> Result<(), CheckpointError> {
        let (from, to) = (self.config.synchronous, merged.synchronous);
        if to > from {
            // Writes of `Off` live in memory, of `Normal` in an unsynced
            // journal: after a power cut a later fsynced record behind a
            // torn one would never be replayed. So first everything into
            // the file, durably; the journal starts over.
            self.checkpoint()?;
            let full = to == Synchronous::Full;
            self.append = to.uses_journal();
            self.journal_spec.sync_each = full;
            if let Some(journal) = &mut self.journal {
                journal.set_sync_each(full)?;
            }
        }
        self.config = merged.clone();
        Ok(())
    }

    fn halt(&mut self, err: &StorageError) {
        if self.halted.is_none() {
            log::error!(
                "{}: halting writes after a failure: {err}",
                self.path.display()
            );
            self.metrics.halted(err);
            *self.status.halted.lock().unwrap_or_else(|p| p.into_inner()) = Some(err.clone());
            self.status.stopped.store(true, Ordering::Release);
            self.halted = Some(err.clone());
            // No checkpoint can succeed any more.
            self.dirty_since = None;
            self.unsynced_since = None;
        }
    }

    /// Lets go of the database and the journal after a halt, so that the
    /// file can be opened afresh (redb latches an I/O failure: only a new
    /// open clears it). The writer stays halted until [`Writer::revive`].
    pub fn let_go(&mut self) {
        self.db = None;
        self.journal = None;
    }

    /// Resumes on `db`, freshly opened and recovered up to `lsn` (every
    /// record of the journal is in it, durably): as a writer just opened.
    pub fn revive(&mut self, db: Arc<Database>, lsn: u64) {
        self.db = Some(db);
        self.journal = None;
        self.lsn = lsn;
        self.checkpoint_lsn = lsn;
        self.dirty_since = None;
        self.unsynced_since = None;
        self.last_write_at = None;
        self.halted = None;
        self.status.lsn.store(lsn, Ordering::Relaxed);
        self.status.checkpoint_lsn.store(lsn, Ordering::Relaxed);
        *self.status.halted.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.status.stopped.store(false, Ordering::Release);
    }

    /// The database; only a halted writer has none.
    fn database<E>(
        &self,
        refusal: impl FnOnce(&Self) -> Option<E>,
        closed: impl FnOnce(PathBuf) -> E,
    ) -> Result<&Database, E> {
        // Lazily: building the error clones the path (an allocation per
        // batch otherwise).
        self.db
            .as_deref()
            .ok_or_else(|| refusal(self).unwrap_or_else(|| closed(self.path.clone())))
    }

    /// The error every write gets once the writer has halted.
    fn refusal(&self) -> Option<WriteError> {
        self.halted
            .as_ref()
            .map(|cause| WriteError::halted(&self.path, cause))
    }

    /// The error a checkpoint gets once the writer has halted.
    fn checkpoint_refusal(&self) -> Option<CheckpointError> {
        self.halted
            .as_ref()
            .map(|cause| CheckpointError::halted(&self.path, cause))
    }

    /// Runs one batch; see the module docs.
    pub fn commit_batch(&mut self, jobs: &mut Vec<Box<dyn Job>>) {
        if let Some(refusal) = self.refusal() {
            for job in jobs.drain(..) {
                job.finish(Err(refusal.clone()));
            }
            return;
        }
        let started = self.metrics.start();
        let mut failures = std::mem::take(&mut self.failures);
        failures.clear();
        failures.resize_with(jobs.len(), || None);
        self.journal_spec
            .stats
            .in_memory_commit
            .store(true, Ordering::Release);
        let outcome = catch_unwind(AssertUnwindSafe(|| self.try_batch(jobs, &mut failures)))
            .unwrap_or_else(|_| {
                Err(BatchFailure::Halt(StorageError::corrupted(
                    &self.path,
                    "redb failed while committing (run `wa-redb check`)",
                )))
            });
        self.journal_spec
            .stats
            .in_memory_commit
            .store(false, Ordering::Release);
        match outcome {
            Ok(()) => {
                if !self.log.is_empty() {
                    let writes = failures.iter().filter(|f| f.is_none()).count();
                    self.metrics.committed(
                        started,
                        writes,
                        self.journal.as_ref().map(Journal::used),
                    );
                }
                match &self.ship {
                    // A record was made: its callers wait for the replica.
                    Some(ship) if !self.log.is_empty() => {
                        ship.defer(self.lsn, jobs.drain(..).zip(failures.drain(..)).collect());
                    }
                    _ => {
                        for (job, failure) in jobs.drain(..).zip(failures.drain(..)) {
                            job.finish(failure.map_or(Ok(()), Err));
                        }
                    }
                }
            }
            Err(BatchFailure::Unwritten(err)) => {
                for (job, failure) in jobs.drain(..).zip(failures.drain(..)) {
                    job.finish(Err(failure.unwrap_or_else(|| err.clone())));
                }
            }
            Err(BatchFailure::Halt(err)) => {
                self.halt(&err);
                // The first job without a failure of its own gets the
                // failure itself, the others the halt it caused.
                let refusal = WriteError::halted(&self.path, &err);
                let mut first = Some(WriteError::Storage(err));
                for (job, failure) in jobs.drain(..).zip(failures.drain(..)) {
                    let err = failure
                        .or_else(|| first.take())
                        .unwrap_or_else(|| refusal.clone());
                    job.finish(Err(err));
                }
            }
        }
        self.failures = failures;
    }

    /// Journals the batch recorded in the effect log as record `lsn`,
    /// creating the journal at the first write.
    fn journal_batch(&mut self, lsn: u64) -> Result<(), WriteError> {
        if self.journal.is_none() {
            // Nothing of the batch is written yet: a full disk fails this
            // batch only, and the next write tries again.
            let created = Journal::create(self.journal_spec.clone()).map_err(|e| match e {
                StorageError::Io { path, source }
                    if source.kind() == std::io::ErrorKind::StorageFull =>
                {
                    StorageError::NoSpace { path, source }
                }
                other => other,
            })?;
            self.journal = Some(created);
        }
        match &mut self.journal {
            Some(journal) if self.append => journal.append(lsn, &mut self.log),
            _ => Ok(()),
        }
    }

    /// Applies every job in one transaction and commits it. An error is
    /// the batch's: nothing of it is written; `failures` are the jobs' own.
    fn try_batch(
        &mut self,
        jobs: &mut [Box<dyn Job>],
        failures: &mut [Option<WriteError>],
    ) -> std::result::Result<(), BatchFailure> {
        if let Some(ship) = &self.ship {
            ship.admit().map_err(BatchFailure::Unwritten)?;
        }
        let closed = |path| WriteError::Closed { path };
        let mut txn = self
            .database(Self::refusal, closed)
            .map_err(BatchFailure::Unwritten)?
            .begin_write()
            .map_err(|e| StorageError::storage(&self.path, e))?;
        txn.set_durability(Durability::None)
            .map_err(|e| StorageError::storage(&self.path, e))?;
        self.log.clear();
        for (job, failure) in jobs.iter_mut().zip(failures.iter_mut()) {
            let mark = self.log.len();
            let mut tx = Tx::new(&txn, &mut self.log, &self.path, job.max_value());
            match catch_unwind(AssertUnwindSafe(|| job.apply(&mut tx))) {
                Ok(Ok(())) => {}
                Ok(Err(WriteError::Storage(e))) if e.is_fatal() => {
                    return Err(BatchFailure::Halt(e));
                }
                // It changed nothing: the batch goes on without it.
                Ok(Err(e)) if self.log.len() == mark => *failure = Some(e),
                Ok(Err(e)) => {
                    // A job that broke its promise to fail before changing
                    // anything (a bug): its changes cannot be told from its
                    // neighbours', so none of the batch is written.
                    log::error!(
                        "{}: a write failed after changing rows ({e}); its batch is dropped",
                        self.path.display()
                    );
                    *failure = Some(e);
                    let _ = txn.abort();
                    return Err(BatchFailure::Unwritten(WriteError::BatchDropped {
                        path: self.path.clone(),
                    }));
                }
                Err(panic) => {
                    // Jobs do not panic on their own; redb does, on pages it
                    // finds damaged. Nothing more may be written.
                    let what = panic_message(&panic);
                    return Err(BatchFailure::Halt(StorageError::corrupted(
                        &self.path,
                        format!("a write failed inside redb ({what}); run `wa-redb check`"),
                    )));
                }
            }
        }
        if self.log.is_empty() {
            // Nothing changed (reads, deletes of missing keys): no commit.
            let _ = txn.abort();
            return Ok(());
        }
        let lsn = self.lsn + 1;
        if let Err(e) = self.journal_batch(lsn) {
            let _ = txn.abort();
            return Err(e.into());
        }
        self.commit_journaled(txn)?;
        if let Some(ship) = &self.ship {
            ship.push(lsn, self.log.sealed_record());
        }
        self.deleted_since_checkpoint += self.log.deletes();
        self.lsn = lsn;
        self.status.lsn.store(lsn, Ordering::Relaxed);
        let now = Instant::now();
        self.dirty_since.get_or_insert(now);
        self.last_write_at = Some(now);
        if self.append && !self.journal_spec.sync_each {
            self.unsynced_since.get_or_insert(now);
        }
        Ok(())
    }

    /// Commits a batch whose journal record is written. If the commit
    /// fails, the record is taken back: the callers are told the batch
    /// failed, so it must not be replayed at the next open.
    fn commit_journaled(&mut self, txn: redb::WriteTransaction) -> Result<()> {
        // redb may panic on damage it meets while committing (issue 13
        // moves that detection below redb): contained here, between the
        // record and its retraction, so that the record is retracted
        // whatever way the commit fails.
        let faults = self.journal_spec.faults.clone();
        let outcome = crate::engine::contain_panic(&self.path, || {
            if let Some(f) = &faults
                && let Err(e) = f.before_commit()
            {
                let _ = txn.abort();
                return Err(StorageError::io(&self.path, e));
            }
            txn.commit()
                .map_err(|e| StorageError::storage(&self.path, e))
        });
        if outcome.is_err()
            && self.append
            && let Some(journal) = &mut self.journal
            && let Err(undo) = journal.retract()
        {
            // The batch is now in the journal and not in redb: the halt
            // that follows keeps this process from writing past it, and the
            // next open replays it.
            log::error!(
                "{}: a failed commit could not be taken back from the journal: {undo}",
                self.path.display()
            );
        }
        outcome
    }
}

/// Why a batch was not committed, which decides what its jobs are told.
enum BatchFailure {
    /// Nothing of the batch was written and the store carries on (the
    /// journal could not grow; a job failed half-way): each job gets this
    /// error, unless it failed on its own.
    Unwritten(WriteError),
    /// Nothing more can be promised durable: the writer halts.
    Halt(StorageError),
}

impl From<StorageError> for BatchFailure {
    /// A failure below the jobs (redb, the journal), by its kind.
    fn from(e: StorageError) -> Self {
        if e.is_fatal() {
            BatchFailure::Halt(e)
        } else {
            BatchFailure::Unwritten(e.into())
        }
    }
}

impl From<WriteError> for BatchFailure {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Storage(e) => e.into(),
            e => BatchFailure::Unwritten(e),
        }
    }
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

#[cfg(test)]
mod tests;
