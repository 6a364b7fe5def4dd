//! Snapshots of a whole store file in a replica target, and restores from
//! them. A snapshot is a copy of the file as of one moment (every account),
//! written as a backup is (`whole_file::copy_to_temp`, the store staying in
//! use) and uploaded in parts; an encrypted store's copy is encrypted with
//! its key, so the target never sees plaintext. Unlike a backup, the copy
//! keeps the store's file id, with the sequence number it holds as its
//! checkpoint (`whole_file::Identity::Kept`): restored anywhere, it is the
//! same store. Objects are named `snapshots/<unix seconds>-<lsn>.redb`
//! (zero-padded, so that names sort by age), beside `store`, the file id of
//! the one store the target holds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wacore::store::error::StoreError;

use super::target::ReplicaTarget;
use crate::engine::{Engine, Keying, files};
use crate::error::{Error, FileOpError, StorageError};
use crate::handle::RedbStore;
use crate::ops::whole_file::{Identity, copy_to_temp};

type Result<T, E = FileOpError> = std::result::Result<T, E>;

/// Upload part size: redb files are uploaded in parts of this size, a
/// few at a time (memory stays within a few parts).
const PART: usize = 8 << 20;
const PARTS_IN_FLIGHT: usize = 4;

/// One snapshot in a replica.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplicaSnapshot {
    /// Its object name under the target's prefix.
    pub name: String,
    /// When it was taken (Unix seconds).
    pub taken_at: i64,
    /// The store's last write sequence number it holds, at least: records
    /// after it are replayed onto it.
    pub lsn: u64,
    /// Writes committed while it was copied may be in it too: it is a
    /// consistent state only once the records up to this one are replayed
    /// onto it (a restore that cannot reach it starts from an older
    /// snapshot). Equal to `lsn` in snapshots of earlier builds.
    pub replay_to: u64,
    /// Its size in bytes.
    pub bytes: u64,
    /// When the object store stored it (Unix milliseconds, its clock): a
    /// restore at a point in time starts from the newest snapshot stored
    /// by then.
    pub stored_at_ms: i64,
}

impl ReplicaSnapshot {
    fn name_for(taken_at: i64, lsn: u64, replay_to: u64) -> String {
        format!("snapshots/{taken_at:020}-{lsn:020}-{replay_to:020}.redb")
    }

    /// The snapshot an object name stands for (`<taken at>-<lsn>`, or with
    /// `-<replay to>` after it); `None` for another object.
    fn parse(name: &str, bytes: u64, stored_at_ms: i64) -> Option<Self> {
        let stem = name.strip_prefix("snapshots/")?.strip_suffix(".redb")?;
        let mut parts = stem.split('-');
        let taken_at = parts.next()?.parse().ok()?;
        let lsn = parts.next()?.parse().ok()?;
        let replay_to = match parts.next() {
            Some(to) => to.parse().ok().filter(|&to| to >= lsn)?,
            None => lsn,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(ReplicaSnapshot {
            name: name.to_string(),
            taken_at,
            lsn,
            replay_to,
            bytes,
            stored_at_ms,
        })
    }
}

/// The object naming the store a target holds snapshots of (its file id,
/// in hex): one store per target, so that a push never prunes another
/// store's snapshots.
const OWNER: &str = "store";

impl ReplicaTarget {
    /// Makes this target the replica of the store `file_id`: claims an
    /// unclaimed target (a create-only put, so that of two stores racing
    /// for it one wins), refuses one that holds another store's snapshots.
    /// A store restored from the target keeps its file id, so it goes on
    /// pushing to it.
    pub(super) async fn claim(&self, file_id: &str) -> Result<()> {
        let owner = self.object(OWNER);
        for _ in 0..2 {
            match self.store.get(&owner).await {
                Ok(got) => {
                    let bytes = got
                        .bytes()
                        .await
                        .map_err(|e| self.failed("reading its owner", e))?;
                    let theirs = String::from_utf8_lossy(&bytes).trim().to_string();
                    return match theirs == file_id {
                        true => Ok(()),
                        false => Err(self.refused(format!(
                            "it holds the snapshots of another store (file id {theirs}; this one is \
                             {file_id}); give each store a prefix of its own"
                        ))),
                    };
                }
                Err(object_store::Error::NotFound { .. }) => {
                    let mine = PutPayload::from(format!("{file_id}\n"));
                    match self
                        .store
                        .put_opts(&owner, mine, PutMode::Create.into())
                        .await
                    {
                        Ok(_) => return Ok(()),
                        // Claimed meanwhile: read whose it is.
                        Err(object_store::Error::AlreadyExists { .. }) => continue,
                        Err(e) => return Err(self.failed("claiming it", e)),
                    }
                }
                Err(e) => return Err(self.failed("reading its owner", e)),
            }
        }
        Err(self.refused("its owner changed while it was read; try again"))
    }

    /// [`ReplicaTarget::claim`]s this target for the store `engine` opened.
    pub(super) async fn claim_for(&self, engine: &Engine) -> Result<(), Error> {
        let file_id: String = engine.file_id.iter().map(|b| format!("{b:02x}")).collect();
        Ok(self.claim(&file_id).await?)
    }

    /// The snapshots in this target, oldest first.
    pub async fn snapshots(&self) -> Result<Vec<ReplicaSnapshot>, StoreError> {
        Ok(self.list_snapshots().await.map_err(Error::from)?)
    }

    pub(super) async fn list_snapshots(&self) -> Result<Vec<ReplicaSnapshot>> {
        let under = self.object("snapshots");
        let mut listing = self.store.list(Some(&under));
        let mut found = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| self.failed("listing snapshots", e))?;
            let name = self.relative(&meta.location);
            let at = meta.last_modified.timestamp_millis();
            if let Some(s) = ReplicaSnapshot::parse(&name, meta.size, at) {
                found.push(s);
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    /// `location` without this target's prefix.
    pub(super) fn relative(&self, location: &ObjectPath) -> String {
        let full = location.as_ref();
        match self.prefix.as_ref() {
            "" => full.to_string(),
            prefix => full
                .strip_prefix(prefix)
                .map_or(full, |r| r.trim_start_matches('/'))
                .to_string(),
        }
    }

    /// Uploads `file` (named `from`, `bytes` long) as the object `name`,
    /// in parts.
    async fn upload(&self, file: std::fs::File, from: &Path, name: &str, bytes: u64) -> Result<()> {
        let stage = format!("uploading {name}");
        let mut done = 0u64;
        self.report(&stage, done, bytes);
        let failed = |e: &dyn std::fmt::Display| self.failed(&format!("uploading {name}"), e);
        let mut file = tokio::fs::File::from_std(file);
        let upload = self
            .store
            .put_multipart(&self.object(name))
            .await
            .map_err(|e| failed(&e))?;
        let mut parts = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| StorageError::io(from, e));
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    let _ = parts.abort().await;
                    return Err(e.into());
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = parts.wait_for_capacity(PARTS_IN_FLIGHT).await {
                return Err(failed(&e));
            }
            parts.write(&buf[..n]);
            done += n as u64;
            self.report(&stage, done, bytes.max(done));
        }
        parts.finish().await.map_err(|e| failed(&e))?;
        Ok(())
    }

    /// Downloads the object `name` into `file` (named `to`; empty), and
    /// syncs it.
    pub(super) async fn download(
        &self,
        name: &str,
        file: std::fs::File,
        to: &Path,
        bytes: u64,
    ) -> Result<()> {
        let failed = |e: &dyn std::fmt::Display| self.failed(&format!("downloading {name}"), e);
        let got = self
            .store
            .get(&self.object(name))
            .await
            .map_err(|e| failed(&e))?;
        let mut file = tokio::fs::File::from_std(file);
        let mut stream = got.into_stream();
        let mut written = 0u64;
        let stage = format!("downloading {name}");
        self.report(&stage, written, bytes);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| failed(&e))?;
            file.write_all(&chunk)
                .await
                .map_err(|e| StorageError::io(to, e))?;
            written += chunk.len() as u64;
            self.report(&stage, written, bytes.max(written));
        }
        file.sync_all().await.map_err(|e| StorageError::io(to, e))?;
        if written != bytes {
            return Err(failed(&format!(
                "got {written} bytes of a {bytes}-byte object (it changed or the transfer was cut)"
            )));
        }
        Ok(())
    }
}

impl RedbStore {
    /// Writes a snapshot of the whole store file (every account, as of
    /// now) to `target`, then keeps the newest `keep` snapshots there
    /// (older ones are deleted once this one is in place). The store stays
    /// in use meanwhile; an encrypted store's snapshot is encrypted with
    /// its key. Restore one with [`RedbStore::restore_from_replica`].
    pub async fn push_snapshot(
        &self,
        target: &ReplicaTarget,
        keep: usize,
    ) -> Result<ReplicaSnapshot, StoreError> {
        let retention = Retention {
            count: keep,
            max_age: Duration::ZERO,
        };
        self.push_snapshot_kept(target, retention).await
    }

    /// [`RedbStore::push_snapshot`], keeping what `retention` says.
    pub(crate) async fn push_snapshot_kept(
        &self,
        target: &ReplicaTarget,
        retention: Retention,
    ) -> Result<ReplicaSnapshot, StoreError> {
        if retention.count == 0 {
            return Err(Error::from(target.refused(
                "keeping 0 snapshots would delete the one just pushed; keep at least 1",
            ))
            .into());
        }
        let engine = self.engine.clone();
        target.claim_for(&engine).await?;
        // Records of a replicating store follow its own history: a
        // snapshot of another copy (a host it fenced, a file closed
        // behind it) may hold writes of another history under the same
        // numbers, and a restore would replay the records onto it.
        let replicated = target.replication().await.map_err(Error::from)?;
        if replicated.is_some() && engine.replica_sink().is_none() {
            return Err(Error::from(target.refused(
                "a store replicates to this target, and this one does not (or was fenced): \
                 the snapshots come from the replicating store (`replicate_to`, then \
                 `maintenance()`), since a snapshot of another copy may hold another history",
            ))
            .into());
        }
        // Read before the copy's snapshot begins: the copy holds at least
        // every write up to it.
        let lsn = engine.status.lsn.load(std::sync::atomic::Ordering::Acquire);
        let taken_at = crate::clock::now_secs();
        let cipher = engine.cipher.clone();
        let beside = engine.path.clone();
        // A guard from the moment the copy exists: a push dropped at any
        // point (even while the copy runs on a pool thread) leaves no
        // temporary file behind.
        let temp = self
            .read_for_op(move |s| {
                let tmp = copy_to_temp(
                    s,
                    &beside,
                    files::TempKind::Partial,
                    Keying::twin(cipher.as_ref()),
                    None,
                    Identity::Kept { lsn },
                )?;
                // Locked while it is uploaded: marks it as live for
                // `remove_stale_temps` elsewhere.
                let file = std::fs::File::open(&tmp).map_err(|e| StorageError::io(&tmp, e));
                let file = file.and_then(|f| {
                    f.try_lock()
                        .map_err(|e| StorageError::io(&tmp, e.into()))
                        .map(|()| f)
                });
                let mut temp = Temp::new(tmp);
                temp.file = Some(file?);
                Ok(temp)
            })
            .await?;
        // Taken after the copy's read snapshot began, under the write
        // lane: no write in the copy comes after it.
        let settled = engine.clone();
        let replay_to =
            crate::handle::blocking(move || Ok::<_, StoreError>(settled.committed_lsn().max(lsn)))
                .await?;
        let name = ReplicaSnapshot::name_for(taken_at, lsn, replay_to);
        Ok(push_and_prune(target, temp, &name, retention)
            .await
            .map_err(Error::from)?)
    }
}

/// A temporary file (and, while it is uploaded, its locked handle),
/// removed when this is dropped unless it was [`Temp::keep`]-ed.
pub(super) struct Temp {
    path: Option<PathBuf>,
    file: Option<std::fs::File>,
}

impl Temp {
    pub(super) fn new(path: PathBuf) -> Self {
        Temp {
            path: Some(path),
            file: None,
        }
    }

    pub(super) fn path(&self) -> &Path {
        self.path.as_deref().expect("kept only at the end")
    }

    /// The file is in place under another name: nothing to remove.
    pub(super) fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        // The handle first: a file still open cannot be removed on Windows.
        drop(self.file.take());
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Which snapshots a push keeps: the newest `count`, and any younger than
/// `max_age` (by when they were taken). Records are kept from the oldest
/// snapshot kept on, so a restore at a point in time reaches back to it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    pub count: usize,
    pub max_age: Duration,
}

async fn push_and_prune(
    target: &ReplicaTarget,
    mut temp: Temp,
    name: &str,
    retention: Retention,
) -> Result<ReplicaSnapshot> {
    let tmp = temp.path().to_path_buf();
    let file = temp.file.take().expect("opened with the copy");
    let bytes = file
        .metadata()
        .map_err(|e| StorageError::io(&tmp, e))?
        .len();
    target.upload(file, &tmp, name, bytes).await?;
    drop(temp);
    let all = target.list_snapshots().await?;
    let beyond_count = all.len().saturating_sub(retention.count);
    let max_age = i64::try_from(retention.max_age.as_secs()).unwrap_or(i64::MAX);
    let young_from = crate::clock::now_secs().saturating_sub(max_age);
    let (old, kept): (Vec<_>, Vec<_>) = all.into_iter().enumerate().partition(|(i, s)| {
        let old_enough = retention.max_age.is_zero() || s.taken_at < young_from;
        *i < beyond_count && old_enough && s.name != name
    });
    for (_, s) in &old {
        target
            .store
            .delete(&target.object(&s.name))
            .await
            .map_err(|e| target.failed(&format!("deleting {}", s.name), e))?;
    }
    // Records the oldest snapshot kept already holds are never replayed.
    if let Some(oldest) = kept.iter().map(|(_, s)| s.lsn).min() {
        target.prune_records(oldest).await?;
    }
    let all = kept.into_iter().map(|(_, s)| s);
    let pushed = all.into_iter().find(|s| s.name == name);
    pushed
        .filter(|s| s.bytes == bytes)
        .ok_or_else(|| target.refused(format!("the snapshot {name} is not there after its upload")))
}
