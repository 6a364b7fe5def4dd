//! What replicated durability is bound by, and how the replica is kept
//! ([`RedbStore::replicate_to`](crate::RedbStore::replicate_to)'s options).

use std::time::Duration;

use super::snapshot::Retention;

/// What [`RedbStore::replicate_to`](crate::RedbStore::replicate_to) is bound by.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReplicationOptions {
    /// How long a write waits for the replica before it fails with
    /// [`crate::Error::NotReplicated`] (it stays in the local store and is
    /// uploaded once the replica answers). Default 10 s.
    pub timeout: Duration,
    /// The most bytes of records that may wait for the replica: past it,
    /// writes are refused before they change anything. Default 64 MiB.
    pub max_backlog_bytes: usize,
    /// Snapshots kept in the replica (the base pushed when replication
    /// starts is one); records older than the oldest kept are deleted.
    /// Default 2.
    pub keep_snapshots: usize,
    /// Asynchronous mode: a write is answered without waiting for the
    /// replica while no write has waited for it longer than this; past
    /// it, writes wait for their record as in synchronous mode (and fail
    /// after `timeout`). So the replica lags the acknowledged writes by
    /// about this much at most while it answers. **Dangerous for Signal
    /// state**: a restore misses up to this much of acknowledged writes,
    /// and a client resumed from it may reuse message keys, so restoring
    /// from an asynchronous replica needs
    /// [`crate::ReplicaRestoreOptions::accept_stale_state`]. `None` (the
    /// default): synchronous, every write waits for the replica.
    pub max_lag: Option<Duration>,
    /// [`RedbStore::maintenance`](crate::RedbStore::maintenance) pushes a new snapshot once the newest is
    /// this old (and prunes by `keep_snapshots` and `keep_snapshots_for`),
    /// so that the replica's size and a restore's time stay bounded.
    /// Default 24 h.
    pub snapshot_every: Duration,
    /// ... or once the records stored after the newest snapshot exceed
    /// this many bytes. Default 64 MiB.
    pub snapshot_after_bytes: u64,
    /// Snapshots taken within this long are kept too, beyond the newest
    /// `keep_snapshots`, with the records after them: how far back a
    /// restore at a point in time ([`crate::ReplicaRestoreOptions::at`])
    /// can go. Default zero (`keep_snapshots` alone decides).
    pub keep_snapshots_for: Duration,
}

impl Default for ReplicationOptions {
    fn default() -> Self {
        ReplicationOptions {
            timeout: Duration::from_secs(10),
            max_backlog_bytes: 64 << 20,
            keep_snapshots: 2,
            max_lag: None,
            snapshot_every: Duration::from_secs(24 * 3600),
            snapshot_after_bytes: 64 << 20,
            keep_snapshots_for: Duration::ZERO,
        }
    }
}

impl ReplicationOptions {
    /// Sets [`ReplicationOptions::timeout`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Asynchronous mode with this bound on the lag (see
    /// [`ReplicationOptions::max_lag`]).
    pub fn asynchronous(mut self, max_lag: Duration) -> Self {
        self.max_lag = Some(max_lag);
        self
    }

    /// Sets [`ReplicationOptions::max_backlog_bytes`].
    pub fn with_max_backlog_bytes(mut self, bytes: usize) -> Self {
        self.max_backlog_bytes = bytes;
        self
    }

    /// Sets when [`RedbStore::maintenance`](crate::RedbStore::maintenance) pushes a new snapshot: once
    /// the newest is `every` old, or `after_bytes` of records were stored
    /// after it.
    pub fn snapshot_every(mut self, every: Duration, after_bytes: u64) -> Self {
        self.snapshot_every = every;
        self.snapshot_after_bytes = after_bytes;
        self
    }

    /// Sets the retention of snapshots: the newest `count`, and any taken
    /// within `max_age`.
    pub fn keep_snapshots(mut self, count: usize, max_age: Duration) -> Self {
        self.keep_snapshots = count;
        self.keep_snapshots_for = max_age;
        self
    }

    pub(crate) fn retention(&self) -> Retention {
        Retention {
            count: self.keep_snapshots,
            max_age: self.keep_snapshots_for,
        }
    }
}
