//! Durability over time: what the writer owes to the clock and to the
//! journal's size, and the checkpoint itself.
//!
//! A timer the lane arms (see [`Writer::pending`]) asks [`Writer::due`]
//! what to do. While writes keep coming, `Normal` fsyncs the journal every
//! `checkpoint_interval` (a journal sync: one fsync of what was appended),
//! which is all a timed checkpoint would promise; the checkpoint, which
//! writes every page changed since the last and fsyncs twice, waits for
//! the journal to fill (`checkpoint_journal_bytes`), for an interval
//! without writes, for a request or for the close. In a fleet of busy
//! files that halves the work of the disk and of the CPU between calls.
//! `Off` has no journal: a checkpoint every interval is its durability.

use std::sync::atomic::Ordering;
use std::time::Instant;

use redb::{Database, Durability};

use super::Writer;
use crate::engine::catalog::{META_CHECKPOINT_LSN, META_CHECKPOINTED_AT};
use crate::engine::journal::Journal;
use crate::engine::schema;
use crate::error::{CheckpointError, StorageError, StorageResult as Result};

/// What the lane does after a batch: arm the checkpoint timer (the writer is
/// dirty until then), ask for a checkpoint, grow the journal.
pub(crate) struct Pending {
    pub deadline: Option<Instant>,
    pub full: bool,
    pub room: bool,
}

/// What a timer that fired finds due (see [`Writer::due`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Due {
    /// Nothing yet: what the timer was armed for is covered.
    Nothing,
    /// A journal sync: records older than `checkpoint_interval` are not on
    /// stable storage, and writes keep coming.
    Sync,
    /// A checkpoint: the journal is full, or the file is idle.
    Checkpoint,
}

impl Writer {
    /// When the timer should next fire, by the oldest thing it waits for:
    /// in `Off` mode the oldest change not checkpointed (there is no
    /// journal); otherwise the oldest record not on stable storage, else,
    /// when changes are not checkpointed, an interval after the newest.
    /// `None` when nothing is pending.
    fn timer_base(&self) -> Option<Instant> {
        if !self.append {
            return self.dirty_since;
        }
        self.unsynced_since
            .or_else(|| self.dirty_since.and(self.last_write_at))
    }

    /// Whether no change was committed for a whole `checkpoint_interval`.
    fn idle(&self, now: Instant) -> bool {
        self.last_write_at
            .is_none_or(|at| now.saturating_duration_since(at) >= self.config.checkpoint_interval)
    }

    /// Whether the journal should grow its preallocated room now, so that
    /// batches committed on a caller's thread do not have to.
    pub fn journal_room_low(&self) -> bool {
        self.journal.as_ref().is_some_and(Journal::room_low)
    }

    /// Grows the journal's preallocated room by one step. A failure (a full
    /// disk) is only logged: the batch that needs the room reports it.
    pub fn grow_journal(&mut self) {
        if let Some(journal) = &mut self.journal
            && let Err(e) = journal.make_room()
        {
            log::warn!("{}: {e}", self.path.display());
        }
    }

    /// Whether the journal has grown enough that a checkpoint should run.
    pub fn journal_full(&self) -> bool {
        self.journal
            .as_ref()
            .is_some_and(|j| j.used() >= self.config.checkpoint_journal_bytes)
    }

    /// What is due now: a checkpoint when the journal is full, or by time
    /// (in `Off` mode, or once the file is idle), a journal sync when the
    /// oldest unsynced record is an interval old while writes keep coming.
    pub fn due(&self) -> Due {
        if self.journal_full() {
            return Due::Checkpoint;
        }
        let now = Instant::now();
        let Some(at) = self.checkpoint_deadline() else {
            return Due::Nothing;
        };
        if at > now {
            Due::Nothing
        } else if self.unsynced_since.is_some() && !self.idle(now) {
            Due::Sync
        } else {
            Due::Checkpoint
        }
    }

    /// What the lane should arrange after a batch or checkpoint.
    pub fn pending(&self) -> Pending {
        Pending {
            deadline: self.checkpoint_deadline(),
            full: self.journal_full(),
            room: self.journal_room_low(),
        }
    }

    /// When the next timed checkpoint or journal sync is due, if one will
    /// be. An interval too long to add to an instant (`Duration::MAX`, the
    /// natural way to say "never") sets no timer: only the journal's size
    /// and explicit requests then checkpoint.
    pub fn checkpoint_deadline(&self) -> Option<Instant> {
        self.timer_base()?
            .checked_add(self.config.checkpoint_interval)
    }

    /// Puts every record appended so far on stable storage (a journal
    /// sync): what a timed checkpoint would promise, for one fdatasync.
    /// A failure halts the writer, as a failed checkpoint does: after a
    /// failed fsync nothing written since the last one can be trusted.
    pub fn sync_journal(&mut self) -> Result<(), CheckpointError> {
        if let Some(refusal) = self.checkpoint_refusal() {
            return Err(refusal);
        }
        // (`unsynced_since` is set only once a record is in the journal.)
        if let Some(journal) = &mut self.journal {
            if let Err(e) = journal.sync() {
                self.halt(&e);
                return Err(e.into());
            }
            self.metrics.journal_synced();
        }
        self.unsynced_since = None;
        Ok(())
    }

    /// Records the last sequence number for redb's close to make durable:
    /// a commit without fsync (`Durability::None`), which redb's closing
    /// commit then includes, so that the close costs no checkpoint of its
    /// own. After deletions it is a durable commit (one fsync): pages freed
    /// by commits without fsync are released only by a durable one, and
    /// redb's closing commit releases none, so without it the close could
    /// not trim a file that a large deletion grew (a transaction cannot
    /// reuse the pages it frees). Refused (and the journal kept) if the
    /// writer halted.
    pub fn record_for_close(&mut self) -> Result<(), CheckpointError> {
        if !self.must_record()? {
            return Ok(());
        }
        let how = match self.deleted_since_checkpoint {
            0 => Record::InMemory,
            _ => Record::Durable,
        };
        let result = self.record_lsn(self.live_database()?, how);
        if let Err(e) = &result {
            self.halt(e);
        }
        Ok(result?)
    }

    /// Commits durably everything acknowledged so far and rewinds the
    /// journal.
    pub fn checkpoint(&mut self) -> Result<(), CheckpointError> {
        if !self.must_record()? {
            return Ok(());
        }
        crate::telemetry::file_span!("wa_redb.checkpoint", self.path);
        let started = self.metrics.start();
        let result = self.record_lsn(self.live_database()?, Record::Checkpoint);
        match &result {
            Ok(()) => {
                self.checkpoint_lsn = self.lsn;
                self.dirty_since = None;
                self.unsynced_since = None;
                self.deleted_since_checkpoint = 0;
                self.status
                    .checkpoint_lsn
                    .store(self.lsn, Ordering::Relaxed);
                // The checkpoint is durable; old records are redundant. A
                // failed rewind leaves a longer journal, nothing worse.
                if let Some(journal) = &mut self.journal
                    && let Err(e) = journal.rewind()
                {
                    log::warn!("{}: {e}", self.path.display());
                }
                self.metrics
                    .checkpointed(started, self.journal.as_ref().map(Journal::used));
            }
            Err(e) => self.halt(e),
        }
        Ok(result?)
    }

    /// Whether there is a sequence number to record; refused if the
    /// writer halted.
    fn must_record(&self) -> Result<bool, CheckpointError> {
        if let Some(refusal) = self.checkpoint_refusal() {
            return Err(refusal);
        }
        Ok(self.dirty_since.is_some() || self.lsn != self.checkpoint_lsn)
    }

    /// The database to checkpoint, or why there is none.
    fn live_database(&self) -> Result<&Database, CheckpointError> {
        let closed = |path| CheckpointError::Closed { path };
        self.database(Self::checkpoint_refusal, closed)
    }

    /// Commits the last sequence number as the file's checkpoint, `how`
    /// says how durably. Redb's panics on damage are contained.
    fn record_lsn(&self, db: &Database, how: Record) -> Result<()> {
        crate::engine::contain_panic(&self.path.clone(), || {
            let mut txn = match how {
                Record::InMemory => {
                    let mut txn = db
                        .begin_write()
                        .map_err(|e| StorageError::storage(&self.path, e))?;
                    txn.set_durability(Durability::None)
                        .map_err(|e| StorageError::storage(&self.path, e))?;
                    txn
                }
                Record::Durable | Record::Checkpoint => schema::begin_durable(db, &self.path)?,
            };
            // Quick-repair: reopening after a crash is instant rather than
            // a full scan of the file. Not before a close, whose own commit
            // records the allocator state right after.
            txn.set_quick_repair(how == Record::Checkpoint);
            self.put_checkpoint_meta(&txn)?;
            txn.commit()
                .map_err(|e| StorageError::storage(&self.path, e))
        })
    }

    /// The last sequence number and the time, as the file's checkpoint.
    fn put_checkpoint_meta(&self, txn: &redb::WriteTransaction) -> Result<()> {
        let lsn = self.lsn.to_le_bytes();
        let at = crate::clock::now_secs().to_le_bytes();
        schema::put_meta(
            txn,
            &self.path,
            &[(META_CHECKPOINT_LSN, &lsn), (META_CHECKPOINTED_AT, &at)],
        )
    }
}

/// How [`Writer::record_lsn`] commits the last sequence number.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Record {
    /// A checkpoint: durable, with quick-repair.
    Checkpoint,
    /// Before a close after deletions: durable (it releases the pages
    /// freed since the last checkpoint), no quick-repair.
    Durable,
    /// Before a close: in memory; redb's closing commit makes it durable.
    InMemory,
}

/// One checkpoint outcome for several waiters: a failed checkpoint halts
/// the writer, and each waiter is told so.
pub(crate) fn clone_outcome(
    outcome: &Result<(), CheckpointError>,
    path: &std::path::Path,
) -> Result<(), CheckpointError> {
    match outcome {
        Ok(()) => Ok(()),
        Err(CheckpointError::Storage(cause)) => Err(CheckpointError::halted(path, cause)),
        Err(refused) => Err(refused.clone()),
    }
}
