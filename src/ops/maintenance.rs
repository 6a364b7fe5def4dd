//! `RedbStore::maintenance()`, the periodic hook: retention (deleting what
//! the client stores and never deletes itself: base keys), and compaction
//! when a large part of the file is free.

use std::time::Duration;

use serde::Serialize;
use wacore::store::error::StoreError;

use crate::clock::now_secs;
use crate::domain::protocol::base_key_row;
use crate::handle::RedbStore;
use crate::tables::BASE_KEYS;

/// Keys deleted per write transaction: a sweep of a large table never holds
/// the write lane for long, so other writers go in between.
const DELETE_SLICE: usize = 256;
/// Slices between the checkpoints of a long sweep (4,096 keys, as
/// `delete_device` does).
const SLICES_PER_CHECKPOINT: usize = 16;

/// What [`RedbStore::maintenance`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MaintenanceReport {
    /// Base keys deleted by the retention of
    /// [`crate::config::RedbStoreConfig::base_key_retention`].
    pub base_keys_deleted: u32,
    /// The file's size before and after, if it was compacted.
    pub compaction: Option<crate::ops::compact::CompactReport>,
    /// The snapshot pushed to the replica, if the file replicates and one
    /// was due ([`crate::ReplicationOptions::snapshot_every`]).
    #[cfg(feature = "replica")]
    pub replica_snapshot: Option<crate::ReplicaSnapshot>,
}

impl RedbStore {
    /// Deletes this account's base keys saved before `cutoff_secs` (unix
    /// seconds), as upstream whatsapp-rust's `delete_expired_base_keys`
    /// does, and returns how many. Keys saved again after the cutoff (a
    /// retry) are kept. A row that does not decode is kept (and reported
    /// by `wa-redb check`).
    ///
    /// The matching keys are found in a snapshot, off the caller's thread,
    /// then deleted in slices of a few hundred per transaction, each key
    /// checked again inside it: the sweep never holds up other writers for
    /// long.
    pub async fn delete_expired_base_keys(&self, cutoff_secs: i64) -> Result<u32, StoreError> {
        let d = self.device_id();
        let expired = self
            .read_for_op(move |s| {
                let mut out = Vec::new();
                s.visit(BASE_KEYS, BASE_KEYS.device(d), |(_, address, id), v| {
                    if base_key_row(v).is_ok_and(|row| row.saved_at < cutoff_secs) {
                        out.push((address.to_owned(), id.to_owned()));
                    }
                    Ok(true)
                })?;
                Ok(out)
            })
            .await?;
        let mut deleted = 0u32;
        for (n, slice) in expired.chunks(DELETE_SLICE).enumerate() {
            // Pages freed by in-memory commits become reusable only after a
            // durable one: a long sweep checkpoints now and then, so that it
            // reuses what it freed instead of growing the file.
            if n > 0 && n % SLICES_PER_CHECKPOINT == 0 {
                self.checkpoint().await?;
            }
            let slice = slice.to_vec();
            let weight = slice.iter().map(|(a, i)| a.len() + i.len()).sum();
            deleted += self
                .write(weight, move |tx| {
                    let mut t = tx.table(BASE_KEYS)?;
                    let mut n = 0;
                    for (address, id) in &slice {
                        let key = (d, address.as_str(), id.as_str());
                        let still_expired = t
                            .get(key, |v| {
                                base_key_row(v).is_ok_and(|row| row.saved_at < cutoff_secs)
                            })?
                            .unwrap_or(false);
                        if still_expired {
                            t.remove(key)?;
                            n += 1;
                        }
                    }
                    Ok(n)
                })
                .await?;
        }
        Ok(deleted)
    }

    /// The periodic upkeep of this account, for the client's maintenance
    /// hook (about hourly): deletes the base keys older than
    /// [`crate::config::RedbStoreConfig::base_key_retention`]. Runs off the hot
    /// path: scans on a pool thread, deletes in short transactions.
    ///
    /// Then, if a quarter or more of the file is free
    /// ([`crate::config::RedbStoreConfig::auto_compact`]), it compacts the file,
    /// which no close does: space freed by deletions is reused by later
    /// writes at once, and compaction gives what stays free back to the
    /// file system. While it runs (every page is verified, then moved:
    /// about a second per 100 MB), writes and reads of the file (every
    /// account in it) wait; a read or backup in progress makes it skip.
    ///
    /// Last, if the file replicates (feature `replica`, `replicate_to`),
    /// it pushes a new snapshot to the replica when one is due, and prunes
    /// older snapshots and records (see `ReplicationOptions::
    /// snapshot_every`); a failure there is this call's error, after the
    /// local upkeep is done.
    pub async fn maintenance(&self) -> Result<MaintenanceReport, StoreError> {
        let mut report = MaintenanceReport::default();
        if let Some(keep) = self.config().base_key_retention {
            let cutoff = now_secs().saturating_sub(secs(keep));
            report.base_keys_deleted = self.delete_expired_base_keys(cutoff).await?;
        }
        report.compaction = self.compact_if_worth().await?;
        #[cfg(feature = "replica")]
        {
            report.replica_snapshot = self.keep_replica().await?;
        }
        Ok(report)
    }

    /// Compacts the file now if a quarter or more of it is free
    /// ([`crate::config::RedbStoreConfig::auto_compact`]; never if that is
    /// `None`), as [`RedbStore::maintenance`] does; the sizes before and
    /// after if it did. Writes and reads of the file wait meanwhile; a
    /// read or backup in progress makes it skip (`None`).
    pub async fn compact_if_worth(
        &self,
    ) -> Result<Option<crate::ops::compact::CompactReport>, StoreError> {
        let engine = self.engine.clone();
        Ok(crate::handle::blocking(move || engine.compact_if_worth())
            .await?
            .map(
                |(bytes_before, bytes_after)| crate::ops::compact::CompactReport {
                    bytes_before,
                    bytes_after,
                },
            ))
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}
