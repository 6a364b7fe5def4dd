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

use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wacore::store::error::StoreError;

use super::target::ReplicaTarget;
use crate::config::RedbStoreConfig;
use crate::engine::{Engine, Keying, files, journal_path};
use crate::error::{Error, FileOpError, StorageError};
use crate::handle::RedbStore;
use crate::ops::whole_file::{Identity, copy_to_temp, publish, refuse_existing};

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
    /// The store's last write sequence number it holds, at least.
    pub lsn: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

impl ReplicaSnapshot {
    fn name_for(taken_at: i64, lsn: u64) -> String {
        format!("snapshots/{taken_at:020}-{lsn:020}.redb")
    }

    /// The snapshot an object name stands for; `None` for another object.
    fn parse(name: &str, bytes: u64) -> Option<Self> {
        let stem = name.strip_prefix("snapshots/")?.strip_suffix(".redb")?;
        let (taken_at, lsn) = stem.split_once('-')?;
        Some(ReplicaSnapshot {
            name: name.to_string(),
            taken_at: taken_at.parse().ok()?,
            lsn: lsn.parse().ok()?,
            bytes,
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
            if let Some(s) = ReplicaSnapshot::parse(&name, meta.size) {
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

    /// Uploads `file` (named `from`) as the object `name`, in parts.
    async fn upload(&self, file: std::fs::File, from: &Path, name: &str) -> Result<()> {
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
        }
        parts.finish().await.map_err(|e| failed(&e))?;
        Ok(())
    }

    /// Downloads the object `name` into `file` (named `to`; empty), and
    /// syncs it.
    async fn download(&self, name: &str, file: std::fs::File, to: &Path, bytes: u64) -> Result<()> {
        let failed = |e: &dyn std::fmt::Display| self.failed(&format!("downloading {name}"), e);
        let got = self
            .store
            .get(&self.object(name))
            .await
            .map_err(|e| failed(&e))?;
        let mut file = tokio::fs::File::from_std(file);
        let mut stream = got.into_stream();
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| failed(&e))?;
            file.write_all(&chunk)
                .await
                .map_err(|e| StorageError::io(to, e))?;
            written += chunk.len() as u64;
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

/// What [`RedbStore::restore_from_replica`] restored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ReplicaRestored {
    /// The snapshot it started from.
    pub snapshot: ReplicaSnapshot,
    /// Records replayed on top of it (writes made after it).
    pub records: u64,
    /// The sequence number of the store's last write it holds.
    pub lsn: u64,
}

/// How [`RedbStore::restore_from_replica`] goes.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ReplicaRestoreOptions {
    /// Must be set for a restore to happen: a snapshot holds the store as
    /// it was when it was taken, not the writes after it. A client resumed
    /// from it has older Signal sessions and sender keys than its contacts
    /// have seen, so it may encrypt with message keys it already used and
    /// its next messages may fail to decrypt until the sessions are
    /// renewed; pre-keys it uploaded since may be offered again. The
    /// pairing itself is kept. Setting this says the caller accepts that.
    /// Not needed for a target that a store replicates to
    /// ([`RedbStore::replicate_to`]): its records hold every acknowledged
    /// write.
    pub accept_stale_state: bool,
}

impl ReplicaRestoreOptions {
    /// Options that accept the state of the snapshot (see
    /// [`ReplicaRestoreOptions::accept_stale_state`]).
    pub fn accepting_stale_state() -> Self {
        ReplicaRestoreOptions {
            accept_stale_state: true,
        }
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
        if keep == 0 {
            return Err(Error::from(target.refused(
                "keeping 0 snapshots would delete the one just pushed; keep at least 1",
            ))
            .into());
        }
        let engine = self.engine.clone();
        target.claim_for(&engine).await?;
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
        let name = ReplicaSnapshot::name_for(taken_at, lsn);
        Ok(push_and_prune(target, temp, &name, keep)
            .await
            .map_err(Error::from)?)
    }

    /// Restores the newest snapshot of `target` as a new store file at
    /// `path` (never over an existing file), after checking every page of
    /// it (with `config`'s key, for an encrypted store), with the records
    /// after it replayed (each checked), and says what it restored. A
    /// restored store keeps its accounts' pairing. From a target that a
    /// store replicates to ([`RedbStore::replicate_to`]), that is every
    /// acknowledged write; from snapshots alone, it is refused unless
    /// `options` accept the snapshot's state (see
    /// [`ReplicaRestoreOptions::accept_stale_state`]).
    pub async fn restore_from_replica(
        target: &ReplicaTarget,
        path: impl AsRef<Path>,
        config: &RedbStoreConfig,
        options: &ReplicaRestoreOptions,
    ) -> Result<ReplicaRestored, StoreError> {
        let why = match target.replication().await.map_err(Error::from)? {
            Some(true) => None,
            Some(false) => Some(
                "restore refused: the replica was written asynchronously, so the newest \
                 acknowledged writes may be missing, and a client resumed from it may reuse \
                 Signal message keys; set ReplicaRestoreOptions::accept_stale_state to restore \
                 it anyway",
            ),
            None => Some(
                "restore refused: a snapshot lacks the writes made after it, and a client \
                 resumed from it may reuse Signal message keys; set \
                 ReplicaRestoreOptions::accept_stale_state to restore it anyway",
            ),
        };
        if let Some(why) = why.filter(|_| !options.accept_stale_state) {
            return Err(Error::from(target.refused(why)).into());
        }
        let path = path.as_ref().to_path_buf();
        Ok(restore(target, path, config.clone())
            .await
            .map_err(Error::from)?)
    }
}

/// A temporary file (and, while it is uploaded, its locked handle),
/// removed when this is dropped unless it was [`Temp::keep`]-ed.
struct Temp {
    path: Option<PathBuf>,
    file: Option<std::fs::File>,
}

impl Temp {
    fn new(path: PathBuf) -> Self {
        Temp {
            path: Some(path),
            file: None,
        }
    }

    fn path(&self) -> &Path {
        self.path.as_deref().expect("kept only at the end")
    }

    /// The file is in place under another name: nothing to remove.
    fn keep(mut self) {
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

async fn push_and_prune(
    target: &ReplicaTarget,
    mut temp: Temp,
    name: &str,
    keep: usize,
) -> Result<ReplicaSnapshot> {
    let tmp = temp.path().to_path_buf();
    let file = temp.file.take().expect("opened with the copy");
    let bytes = file
        .metadata()
        .map_err(|e| StorageError::io(&tmp, e))?
        .len();
    target.upload(file, &tmp, name).await?;
    drop(temp);
    let all = target.list_snapshots().await?;
    let old = all.len().saturating_sub(keep);
    for s in all.iter().take(old).filter(|s| s.name != name) {
        target
            .store
            .delete(&target.object(&s.name))
            .await
            .map_err(|e| target.failed(&format!("deleting {}", s.name), e))?;
    }
    // Records the oldest snapshot kept already holds are never replayed.
    if let Some(oldest) = all.iter().skip(old).map(|s| s.lsn).min() {
        target.prune_records(oldest).await?;
    }
    ReplicaSnapshot::parse(name, bytes)
        .ok_or_else(|| target.refused(format!("the snapshot name {name} does not parse")))
}

async fn restore(
    target: &ReplicaTarget,
    path: PathBuf,
    config: RedbStoreConfig,
) -> Result<ReplicaRestored> {
    refuse_existing(&path)?;
    let newest = target
        .list_snapshots()
        .await?
        .pop()
        .ok_or_else(|| target.refused("nothing to restore: the replica holds no snapshot"))?;
    files::remove_stale_temps(&path);
    let (tmp, file) = files::create_temp(&path, files::TempKind::Restoring)?;
    // Removed if the restore fails or is dropped at any point (its
    // journal too, should a replay have stopped half-way).
    let temp = Temp::new(tmp.clone());
    let _journal = Temp::new(journal_path(&tmp));
    target
        .download(&newest.name, file, &tmp, newest.bytes)
        .await?;
    // The records the snapshot lacks, before anything is checked: a
    // replica that cannot give them fails the restore.
    let journal = target.journal_after(newest.lsn).await?;
    let worker = |f: Box<dyn FnOnce() -> Result<()> + Send>| async {
        crate::engine::run_blocking(f)
            .await
            .unwrap_or_else(|| Err(target.refused("restoring: a worker task panicked")))
    };
    let (checked, shown, key) = (tmp.clone(), path.clone(), config.encryption.clone());
    worker(Box::new(move || verify(&checked, &shown, key.as_ref()))).await?;
    let (records, lsn) = match journal {
        Some((journal, last)) => (
            replay(target, &tmp, &path, journal, last, &config).await?,
            last,
        ),
        None => (0, newest.lsn),
    };
    worker(Box::new(move || {
        // A journal without its store belongs to nothing; and the restored
        // store keeps the file id of the one the snapshot was taken from,
        // so a journal of that store left here would be replayed into it.
        files::remove_if_present(&journal_path(&path))?;
        publish(temp.path(), &path)?;
        temp.keep();
        Ok(())
    }))
    .await?;
    Ok(ReplicaRestored {
        snapshot: newest,
        records,
        lsn,
    })
}

/// Checks every page of the downloaded copy (and that the key opens it).
fn verify(tmp: &Path, path: &Path, key: Option<&crate::config::EncryptionKey>) -> Result<()> {
    drop(
        Engine::open_to_look(crate::tables::CATALOG, tmp, true, key)
            .map_err(|e| e.with_path(path))?,
    );
    Ok(())
}

/// Replays the records after the snapshot into the copy at `tmp`: they
/// become its journal, which an open of it replays (checking every
/// record), and its close makes part of the file. Says how many.
async fn replay(
    target: &ReplicaTarget,
    tmp: &Path,
    path: &Path,
    journal: Vec<u8>,
    last: u64,
    config: &RedbStoreConfig,
) -> Result<u64> {
    let at = journal_path(tmp);
    let written = at.clone();
    crate::engine::run_blocking(move || {
        let file = files::create_private(&written, false)?;
        files::write_all_at(&file, &journal, 0).map_err(|e| StorageError::io(&written, e))?;
        file.sync_all().map_err(|e| StorageError::io(&written, e))
    })
    .await
    .unwrap_or_else(|| {
        Err(StorageError::io(
            &at,
            std::io::Error::other("worker panicked"),
        ))
    })?;
    let fail = |e: StoreError| {
        target.refused(format!(
            "replaying its records into {}: {e}",
            path.display()
        ))
    };
    // Every page was just checked: the replay's open need not check them
    // again because the journal makes the copy look uncleanly closed.
    let config = config
        .clone()
        .with_integrity_check(crate::config::IntegrityCheck::Never);
    let store = RedbStore::with_config(tmp, config).await.map_err(fail)?;
    let report = store.recovery_report().clone();
    let reached = store
        .engine
        .status
        .lsn
        .load(std::sync::atomic::Ordering::Acquire);
    store.close().await.map_err(fail)?;
    if reached < last {
        return Err(target.refused(format!(
            "its records replay only up to {reached} of {last} ({}); the replica is damaged",
            report.stopped.as_deref().unwrap_or("no reason given")
        )));
    }
    Ok(report.records_replayed)
}
