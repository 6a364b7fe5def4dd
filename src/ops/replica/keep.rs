//! The replica's upkeep, run by [`RedbStore::maintenance`]: a new snapshot
//! of a replicated store once the newest is old enough or enough records
//! were stored after it, then the retention of snapshots (by count and by
//! age) and of the records that only older snapshots needed. So a
//! replica's size, and the time a restore takes, stay bounded however long
//! the store replicates, without a task of its own: the application's
//! periodic maintenance call is the clock.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use wacore::store::error::StoreError;

use super::options::ReplicationOptions;
use super::snapshot::{ReplicaSnapshot, Retention};
use super::stream::Uploader;
use crate::error::Error;
use crate::handle::RedbStore;

/// When the next snapshot is due, and whether one is being pushed.
pub(crate) struct Upkeep {
    every: Duration,
    after_bytes: u64,
    retention: Retention,
    /// When the newest snapshot was taken (Unix seconds).
    newest_at: AtomicI64,
    /// Bytes of records stored after it.
    since: AtomicU64,
    /// A maintenance call is pushing one: others skip.
    busy: AtomicBool,
}

impl Upkeep {
    pub fn new(options: &ReplicationOptions, newest_at: i64, since: u64) -> Self {
        Upkeep {
            every: options.snapshot_every,
            after_bytes: options.snapshot_after_bytes,
            retention: options.retention(),
            newest_at: AtomicI64::new(newest_at),
            since: AtomicU64::new(since),
            busy: AtomicBool::new(false),
        }
    }

    /// `bytes` of records were stored.
    pub fn stored(&self, bytes: u64) {
        self.since.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A snapshot taken at `taken_at` is stored; `counted` of the bytes
    /// counted so far were stored before it was taken.
    pub fn snapshotted(&self, taken_at: i64, counted: u64) {
        self.newest_at.store(taken_at, Ordering::Relaxed);
        self.since.fetch_sub(counted, Ordering::Relaxed);
    }

    fn due(&self, now: i64) -> bool {
        let every = i64::try_from(self.every.as_secs()).unwrap_or(i64::MAX);
        let age = now.saturating_sub(self.newest_at.load(Ordering::Relaxed));
        age >= every || self.since.load(Ordering::Relaxed) >= self.after_bytes
    }
}

/// Clears the busy flag however the push ends (a maintenance future
/// dropped half-way included).
struct Busy<'a>(&'a AtomicBool);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl RedbStore {
    /// Pushes a snapshot to the replica this store's file replicates to
    /// ([`RedbStore::replicate_to`]) if one is due, keeping what the
    /// replication options say; the snapshot pushed, if one was. Nothing
    /// to do for a store that does not replicate, or while another handle
    /// of the file pushes one.
    pub(crate) async fn keep_replica(&self) -> Result<Option<ReplicaSnapshot>, StoreError> {
        let Some(sink) = self.engine.replica_sink() else {
            return Ok(None);
        };
        let sink: Arc<dyn Any + Send + Sync> = sink;
        let Ok(uploader) = sink.downcast::<Uploader>() else {
            return Ok(None);
        };
        let upkeep = &uploader.upkeep;
        if !upkeep.due(crate::clock::now_secs()) || upkeep.busy.swap(true, Ordering::AcqRel) {
            return Ok(None);
        }
        let _busy = Busy(&upkeep.busy);
        let counted = upkeep.since.load(Ordering::Relaxed);
        // A client of its own: the uploader's belongs to the upload
        // runtime, this push runs on the caller's.
        let target = uploader.target.fresh().map_err(Error::from)?;
        let pushed = self.push_snapshot_kept(&target, upkeep.retention).await?;
        upkeep.snapshotted(pushed.taken_at, counted);
        Ok(Some(pushed))
    }
}
