//! Replicated durability: every journal record of a store stored in its
//! replica before the write is answered `Ok` ([`RedbStore::replicate_to`]).
//!
//! The engine's shipper (`engine::commit::ship`) decides what to upload
//! and when; this module is where it goes: objects named
//! `records/<first lsn>` (zero-padded, so that names sort in order), each a
//! journal header followed by the records from that one on, exactly as the
//! store's journal holds them (checksummed; sealed with the store's key
//! when it is encrypted, so the replica never sees plaintext). Objects are
//! created, never overwritten: of two writers that continue the same
//! replica (a host presumed dead, and the one that took over), both next
//! upload the record after the replica's last under the same name, one of
//! them is refused, and it stops replicating for good. A restore
//! concatenates the objects after a snapshot into a journal, and the
//! store's own recovery replays it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use object_store::{ObjectStoreExt, PutMode, PutPayload};
use wacore::store::error::StoreError;

use super::keep::Upkeep;
use super::options::ReplicationOptions;
use super::target::ReplicaTarget;
use super::uploads::Uploads;
use crate::engine::{RecordSink, ShipBounds, SinkError, UploadDone};
use crate::error::{Error, FileOpError};
use crate::handle::RedbStore;

type Result<T, E = FileOpError> = std::result::Result<T, E>;

/// The object that says a store replicates to a target, and how: its
/// records hold every acknowledged write, or (asynchronous) all but the
/// last moments' of them.
const MARKER: &str = "replicated";
const SYNCHRONOUS: &str = "synchronous: every acknowledged write is in records/\n";
const ASYNCHRONOUS: &str = "asynchronous: the newest acknowledged writes may be missing\n";

/// Where a replicated store's replica is ([`RedbStore::replication_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicationStatus {
    /// Every write up to this sequence number is stored in the replica.
    pub stored_lsn: u64,
    /// The store's newest write.
    pub local_lsn: u64,
    /// Bytes of records not yet stored in the replica.
    pub backlog_bytes: usize,
    /// The last upload's failure, until one succeeds again.
    pub last_error: Option<String>,
    /// Replication stopped for good, and why (writes are refused).
    pub stopped: Option<String>,
    /// How long the oldest write not yet in the replica has waited.
    pub lag: Duration,
}

/// Record objects a restore downloads at once.
const PARALLEL_DOWNLOADS: usize = 16;

/// One record object in a replica: its records start at `first`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordObject {
    pub name: String,
    pub first: u64,
    pub bytes: u64,
    /// When the object store stored it (Unix milliseconds, its clock).
    pub stored_at_ms: i64,
}

impl RecordObject {
    fn name_for(first: u64) -> String {
        format!("records/{first:020}")
    }

    fn parse(name: &str, bytes: u64, stored_at_ms: i64) -> Option<Self> {
        let first = name.strip_prefix("records/")?.parse().ok()?;
        Some(RecordObject {
            name: name.to_string(),
            first,
            bytes,
            stored_at_ms,
        })
    }
}

/// The records in a replica ([`ReplicaTarget::records`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ReplicaRecords {
    /// A store replicates to the target synchronously
    /// ([`RedbStore::replicate_to`]): its records hold every acknowledged
    /// write.
    pub replicated: bool,
    /// A store replicates to it asynchronously
    /// ([`ReplicationOptions::max_lag`]): the newest acknowledged writes
    /// may be missing.
    pub asynchronous: bool,
    /// Record objects (each one upload: the writes that gathered meanwhile).
    pub objects: usize,
    /// Their size.
    pub bytes: u64,
    /// The sequence number of the newest write in them (0: none).
    pub newest_lsn: u64,
    /// When the newest record object was stored (Unix milliseconds, the
    /// object store's clock): how fresh the replica is.
    pub newest_stored_at_ms: Option<i64>,
}

impl ReplicaTarget {
    /// What records this target holds: whether a store replicates to it,
    /// how many objects, how large, up to which write.
    pub async fn records(&self) -> std::result::Result<ReplicaRecords, StoreError> {
        let all = self.list_records().await.map_err(Error::from)?;
        let mode = self.replication().await.map_err(Error::from)?;
        Ok(ReplicaRecords {
            replicated: mode == Some(true),
            asynchronous: mode == Some(false),
            objects: all.len(),
            bytes: all.iter().map(|r| r.bytes).sum(),
            newest_lsn: self.newest_record(&all).await.map_err(Error::from)?,
            newest_stored_at_ms: all.iter().map(|r| r.stored_at_ms).max(),
        })
    }

    /// The record objects in this target, in order.
    pub(crate) async fn list_records(&self) -> Result<Vec<RecordObject>> {
        let under = self.object("records");
        let mut listing = self.store.list(Some(&under));
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| self.failed("listing records", e))?;
            let (name, at) = (self.relative(&meta.location), meta.last_modified);
            if let Some(r) = RecordObject::parse(&name, meta.size, at.timestamp_millis()) {
                found.push(r);
            }
        }
        found.sort_by_key(|r| r.first);
        Ok(found)
    }

    /// The bytes of the object `name`.
    pub(crate) async fn get_bytes(&self, name: &str) -> Result<bytes::Bytes> {
        let failed = |e: &dyn std::fmt::Display| self.failed(&format!("downloading {name}"), e);
        let got = self
            .store
            .get(&self.object(name))
            .await
            .map_err(|e| failed(&e))?;
        got.bytes().await.map_err(|e| failed(&e))
    }

    /// How a store replicates to this target: `Some(true)` synchronously
    /// (its records hold every acknowledged write), `Some(false)`
    /// asynchronously, `None` not at all (snapshots only).
    pub(crate) async fn replication(&self) -> Result<Option<bool>> {
        match self.get_bytes(MARKER).await {
            Ok(marker) => Ok(Some(!marker.starts_with(b"asynchronous"))),
            Err(_) if !self.exists(MARKER).await? => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the object `name` exists.
    async fn exists(&self, name: &str) -> Result<bool> {
        match self.store.head(&self.object(name)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.failed(&format!("looking for {name}"), e)),
        }
    }

    /// The records after `lsn` as a journal (header, records in order, end
    /// marker) and the last one's number; `None` if there are none. Only
    /// those stored by `until` (Unix milliseconds, the object store's
    /// clock), if given: the objects up to the first one stored later
    /// (uploads go one at a time, so that is every record the replica held
    /// at that moment). Fails if they do not follow one another from `lsn`
    /// on, or their objects are not of one journal.
    pub(crate) async fn journal_after(
        &self,
        lsn: u64,
        until: Option<i64>,
    ) -> Result<Option<(Vec<u8>, u64)>> {
        let mut all = self.list_records().await?;
        if let Some(until) = until {
            let held = all.iter().take_while(|r| r.stored_at_ms <= until).count();
            all.truncate(held);
        }
        // From the last object that starts at or before the first record
        // wanted (it may hold it) on.
        let from = all.iter().rposition(|r| r.first <= lsn + 1).unwrap_or(0);
        let mut journal: Vec<u8> = Vec::new();
        let mut next = lsn + 1;
        // Downloaded a few at a time, used in order: one object is one
        // upload, there may be thousands, and one round trip each in turn
        // made a restore from a distant bucket take minutes.
        let mut objects = futures_util::stream::iter(&all[from..])
            .map(|r| async move { (r, self.get_bytes(&r.name).await) })
            .buffered(PARALLEL_DOWNLOADS);
        while let Some((r, object)) = objects.next().await {
            if r.first > next {
                return Err(self.refused(format!(
                    "its records skip from {} to {} ({}): the replica is incomplete",
                    next - 1,
                    r.first,
                    r.name
                )));
            }
            let object = object?;
            let damaged = || self.refused(format!("its record object {} is damaged", r.name));
            let (header, records) = crate::engine::split_object(&object).ok_or_else(damaged)?;
            if journal.is_empty() {
                journal.extend_from_slice(header);
            } else if journal[..header.len()] != *header {
                return Err(self.refused(format!(
                    "its record object {} belongs to another journal (schema or store)",
                    r.name
                )));
            }
            for (at, record) in records {
                if at == next {
                    journal.extend_from_slice(record);
                    next += 1;
                }
            }
        }
        if next == lsn + 1 {
            return Ok(None);
        }
        journal.extend_from_slice(&crate::engine::END_MARKER);
        Ok(Some((journal, next - 1)))
    }

    /// The number of the newest record in `all`, this target's record
    /// objects as listed (0: none): its last object's last record.
    pub(crate) async fn newest_record(&self, all: &[RecordObject]) -> Result<u64> {
        let Some(last) = all.last() else {
            return Ok(0);
        };
        let object = self.get_bytes(&last.name).await?;
        let damaged = || self.refused(format!("its record object {} is damaged", last.name));
        let (_, records) = crate::engine::split_object(&object).ok_or_else(damaged)?;
        Ok(records.last().map_or(last.first, |(lsn, _)| *lsn))
    }

    /// Deletes the record objects wholly at or below `lsn` (a snapshot
    /// that is kept holds them): those followed by an object starting at
    /// or below `lsn + 1`.
    pub(crate) async fn prune_records(&self, lsn: u64) -> Result<()> {
        let all = self.list_records().await?;
        for pair in all.windows(2) {
            if pair[1].first <= lsn + 1 {
                let name = &pair[0].name;
                self.store
                    .delete(&self.object(name))
                    .await
                    .map_err(|e| self.failed(&format!("deleting {name}"), e))?;
            }
        }
        Ok(())
    }

    /// Stores one record object, create-only; an object already there
    /// under that name is fine if it is the same (an earlier attempt whose
    /// answer was lost), and a refusal if not.
    async fn put_records(&self, first: u64, object: &[u8]) -> Result<(), SinkError> {
        let name = RecordObject::name_for(first);
        let location = self.object(&name);
        let payload = PutPayload::from(bytes::Bytes::copy_from_slice(object));
        match self
            .store
            .put_opts(&location, payload, PutMode::Create.into())
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let theirs = self
                    .get_bytes(&name)
                    .await
                    .map_err(|e| SinkError::Transient(e.to_string()))?;
                if theirs.as_ref() == object {
                    Ok(())
                } else {
                    Err(SinkError::Refused(format!(
                        "the replica already holds other writes as {name}: another host writes \
                         this store, or this store lost writes the replica has; restore from \
                         the replica (`wa-redb replica restore`) or give this store a prefix \
                         of its own"
                    )))
                }
            }
            Err(e) => Err(SinkError::Transient(format!(
                "{e} (check the URL, the AWS_* settings and that the server is reachable)"
            ))),
        }
    }
}

/// The shipper's sink: the target with the client of the process's upload
/// runtime ([`Uploads`]; for S3 one per bucket and settings, shared with
/// the other files uploading there); and the replica's upkeep, which
/// [`RedbStore::maintenance`] finds through it.
pub(super) struct Uploader {
    pub(super) target: ReplicaTarget,
    uploads: Arc<Uploads>,
    pub(super) upkeep: Upkeep,
}

impl RecordSink for Uploader {
    fn target(&self) -> String {
        self.target.shown.clone()
    }

    fn put(
        self: Arc<Self>,
        first: u64,
        _last: u64,
        object: Arc<[u8]>,
        deadline: Instant,
        done: UploadDone,
    ) {
        let uploads = self.uploads.clone();
        let done = Outcome(Some(done));
        uploads.handle().spawn(async move {
            let put = self.target.put_records(first, &object);
            let stored = match tokio::time::timeout_at(deadline.into(), put).await {
                Ok(done) => done,
                Err(_) => Err(SinkError::Transient(
                    "the replica did not answer in time".into(),
                )),
            };
            if stored.is_ok() {
                self.upkeep.stored(object.len() as u64);
            }
            done.tell(stored);
        });
    }

    fn wake_at(&self, at: Instant, wake: Box<dyn FnOnce() + Send>) {
        self.uploads.handle().spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            wake();
        });
    }
}

/// An upload's answer to the shipper, given once: if the upload's task
/// ends without one (a panic in the object-store client), the shipper is
/// told it failed and retries, rather than waiting for it forever.
struct Outcome(Option<UploadDone>);

impl Outcome {
    fn tell(mut self, outcome: Result<(), SinkError>) {
        if let Some(done) = self.0.take() {
            done(outcome);
        }
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if let Some(done) = self.0.take() {
            done(Err(SinkError::Transient(
                "the upload ended without an answer".into(),
            )));
        }
    }
}

impl RedbStore {
    /// Replicates this store's file (every account of it) to `target`:
    /// from now on a write returns `Ok` only once its journal record is
    /// stored there, so a restore from the replica on any host
    /// ([`RedbStore::restore_from_replica`]) has every write that was
    /// acknowledged. Concurrent writes share uploads (one object per
    /// upload, whatever has gathered), and the next writes commit while an
    /// upload is under way.
    ///
    /// First pushes a snapshot (the base the records apply to; writes made
    /// meanwhile wait for it), unless the replica already holds every
    /// write of this store (it replicated there before and wrote nothing
    /// since): a restart does not upload the whole file again.
    ///
    /// A write the replica does not confirm within `options.timeout` fails
    /// with [`crate::Error::NotReplicated`]: it is in the local store, and
    /// is uploaded once the replica answers (records are uploaded in order,
    /// never skipped). Refused if the replica holds writes this store lacks
    /// (restore from it instead), or another store's snapshots. See
    /// [`ReplicationOptions::max_lag`] for the asynchronous mode.
    ///
    /// Replication lasts while the file is open in this process (every
    /// handle of it); [`RedbStore::close`] waits for the last uploads.
    pub async fn replicate_to(
        &self,
        target: &ReplicaTarget,
        options: &ReplicationOptions,
    ) -> Result<(), StoreError> {
        if options.timeout.is_zero() || options.keep_snapshots == 0 {
            return Err(Error::from(target.refused(
                "replication needs a timeout above zero and at least one snapshot kept",
            ))
            .into());
        }
        let engine = self.engine.clone();
        target.claim_for(&engine).await?;
        let local = engine.status.lsn.load(std::sync::atomic::Ordering::Acquire);
        let newest_snapshot = target.list_snapshots().await.map_err(Error::from)?.pop();
        let listed = target.list_records().await.map_err(Error::from)?;
        let newest = target
            .newest_record(&listed)
            .await
            .map_err(Error::from)?
            .max(newest_snapshot.as_ref().map_or(0, |s| s.lsn));
        if newest > local {
            return Err(Error::from(target.refused(format!(
                "the replica holds writes up to {newest} and this store only up to {local}: \
                 another host writes it, or this store lost writes the replica has; restore \
                 from the replica instead"
            )))
            .into());
        }
        let uploads = Uploads::shared()
            .map_err(|e| Error::from(target.refused(format!("starting its uploader: {e}"))))?;
        // What the upkeep counts from: the newest snapshot, and the
        // records stored after it.
        let after = newest_snapshot.as_ref().map_or(0, |s| s.lsn);
        let since = listed.iter().filter(|r| r.first > after).map(|r| r.bytes);
        let (since, newest_at): (u64, _) = (
            since.sum(),
            newest_snapshot.as_ref().map_or(0, |s| s.taken_at),
        );
        let sink = Arc::new(Uploader {
            target: uploads.target_for(target).map_err(Error::from)?,
            uploads,
            upkeep: Upkeep::new(options, newest_at, since),
        });
        let bounds = ShipBounds {
            timeout: options.timeout,
            max_backlog: options.max_backlog_bytes,
            max_lag: options.max_lag,
        };
        let started = engine.clone();
        let shipped = sink.clone();
        let from = crate::handle::blocking(move || started.replicate(shipped, bounds)).await?;
        // The replica already holds every write up to where the records
        // start (this store replicated there before, and wrote nothing
        // since): no new base. Otherwise a snapshot, which holds at least
        // every write up to `from`.
        let current = newest_snapshot.is_some() && newest == from;
        let based = match current {
            true => Ok(()),
            false => match self.push_snapshot_kept(target, options.retention()).await {
                Ok(base) => {
                    // The records before it count no more.
                    sink.upkeep.snapshotted(base.taken_at, since);
                    Ok(())
                }
                Err(e) => Err(format!("its base snapshot could not be stored: {e}")),
            },
        };
        let marked = match based {
            Ok(()) => {
                let marker = PutPayload::from(match options.max_lag {
                    None => SYNCHRONOUS,
                    Some(_) => ASYNCHRONOUS,
                });
                let put = target.store.put(&target.object(MARKER), marker).await;
                put.map(drop).map_err(|e| {
                    Error::from(target.failed("writing its replication marker", e)).to_string()
                })
            }
            Err(why) => Err(why),
        };
        let started = match marked {
            Ok(()) => {
                engine.replica_ready();
                self.take_over().await
            }
            Err(why) => Err(why),
        };
        match started {
            Ok(()) => Ok(()),
            Err(why) => {
                let failed = engine.clone();
                let told = why.clone();
                crate::handle::blocking(move || {
                    failed.replica_failed(told);
                    Ok::<_, Error>(())
                })
                .await?;
                Err(Error::from(target.refused(why)).into())
            }
        }
    }

    /// Fences every other host writing the replica: a write of its own
    /// (who took the replica over, and when) whose record takes the next
    /// object name, create-only, before any write of the application. From
    /// then on the host that replicated before is refused at its next
    /// upload ("another host writes this store") and stops replicating; if
    /// that host wrote first (after this store's restore), this is refused
    /// instead, and this store must be restored again. Any failure is why
    /// replication did not start.
    async fn take_over(&self) -> Result<(), String> {
        let claim = format!("pid {} at {}", std::process::id(), crate::clock::now_secs());
        let written = self
            .write(claim.len(), move |tx| {
                tx.table(crate::tables::META)?
                    .put(crate::tables::META_REPLICA_CLAIM, claim.as_bytes())?;
                Ok(())
            })
            .await;
        // In asynchronous mode the write is answered before it is stored:
        // the fence holds only once it is.
        let stored = match written {
            Ok(()) => self.wait_for_replica().await,
            Err(e) => Err(e),
        };
        stored.map_err(|e| {
            let why = match Error::find_in(&e) {
                Some(cause) => cause.to_string(),
                None => e.to_string(),
            };
            format!("taking the replica over: {why}")
        })
    }

    /// Waits until the replica holds every write made so far (at most the
    /// replication `timeout`; [`crate::Error::NotReplicated`] after it):
    /// in asynchronous mode, what a caller does before something that must
    /// not be lost to a host loss. Nothing to wait for if the store does
    /// not replicate.
    pub async fn wait_for_replica(&self) -> Result<(), StoreError> {
        let engine = self.engine.clone();
        crate::handle::blocking(move || engine.replica_drain()).await
    }

    /// Where the replica is, if this store replicates
    /// ([`RedbStore::replicate_to`]).
    pub fn replication_status(&self) -> Option<ReplicationStatus> {
        let s = self.engine.replica_status()?;
        Some(ReplicationStatus {
            stored_lsn: s.stored_lsn,
            local_lsn: self
                .engine
                .status
                .lsn
                .load(std::sync::atomic::Ordering::Acquire),
            backlog_bytes: s.backlog,
            last_error: s.last_error,
            stopped: s.refused,
            lag: s.lag,
        })
    }
}
