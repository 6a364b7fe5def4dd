//! Restores from a replica target on any host: the newest state, or the
//! state at a point in time. A snapshot is downloaded and every page of it
//! checked, the records stored after it are fetched and become its
//! journal, and the store's own recovery replays them (checking each),
//! before the restored file gets its name.

use std::path::{Path, PathBuf};

use wacore::store::error::StoreError;

use super::snapshot::{ReplicaSnapshot, Temp};
use super::target::ReplicaTarget;
use crate::config::RedbStoreConfig;
use crate::engine::{Engine, files, journal_path};
use crate::error::{Error, FileOpError, StorageError};
use crate::handle::RedbStore;
use crate::ops::whole_file::{publish, refuse_existing};

type Result<T, E = FileOpError> = std::result::Result<T, E>;

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
    /// Restore the state the replica held at this moment rather than the
    /// newest: the newest snapshot stored by then, and the records stored
    /// by then after it, by the object store's clock (S3 keeps times to
    /// the second: everything stored within that second is in). How far
    /// back is possible depends on the snapshots kept
    /// ([`crate::ReplicationOptions::keep_snapshots_for`]). An older state
    /// is a stale one for Signal, so this needs
    /// [`ReplicaRestoreOptions::accept_stale_state`] too.
    pub at: Option<std::time::SystemTime>,
}

impl ReplicaRestoreOptions {
    /// Options that accept the state of the snapshot (see
    /// [`ReplicaRestoreOptions::accept_stale_state`]).
    pub fn accepting_stale_state() -> Self {
        ReplicaRestoreOptions {
            accept_stale_state: true,
            at: None,
        }
    }

    /// Restores the state at `at` (see [`ReplicaRestoreOptions::at`]).
    pub fn at(mut self, at: std::time::SystemTime) -> Self {
        self.at = Some(at);
        self
    }
}

/// `at` in Unix milliseconds (negative before 1970).
fn unix_ms(at: std::time::SystemTime) -> i64 {
    match at.duration_since(std::time::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

impl RedbStore {
    /// Restores the newest state of `target` (or the state at
    /// [`ReplicaRestoreOptions::at`]) as a new store file at `path` (never
    /// over an existing file): the newest snapshot its records reach,
    /// every page of it checked (with `config`'s key, for an encrypted
    /// store), with the records after it replayed (each checked); says
    /// what it restored. A
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
        let why = match options.at {
            Some(_) => Some(
                "restore refused: a state from the past lacks the writes made after it, and a \
                 client resumed from it may reuse Signal message keys; set \
                 ReplicaRestoreOptions::accept_stale_state to restore it anyway",
            ),
            None => why,
        };
        if let Some(why) = why.filter(|_| !options.accept_stale_state) {
            return Err(Error::from(target.refused(why)).into());
        }
        let path = path.as_ref().to_path_buf();
        let at = options.at.map(unix_ms);
        Ok(restore(target, path, config.clone(), at)
            .await
            .map_err(Error::from)?)
    }
}

async fn restore(
    target: &ReplicaTarget,
    path: PathBuf,
    config: RedbStoreConfig,
    at: Option<i64>,
) -> Result<ReplicaRestored> {
    refuse_existing(&path)?;
    let (newest, journal) = base_and_records(target, at).await?;
    files::remove_stale_temps(&path);
    let (tmp, file) = files::create_temp(&path, files::TempKind::Restoring)?;
    // Removed if the restore fails or is dropped at any point (its
    // journal too, should a replay have stopped half-way).
    let temp = Temp::new(tmp.clone());
    let _journal = Temp::new(journal_path(&tmp));
    target
        .download(&newest.name, file, &tmp, newest.bytes)
        .await?;
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

/// The snapshot to restore (stored by `at`, if given) and the records
/// after it, as a journal with the last record's number: the newest
/// snapshot that the records reach [`ReplicaSnapshot::replay_to`] from
/// (an older one if they do not, as when a host died with the records of
/// writes made during the newest's copy not yet stored). The records are
/// fetched before anything is downloaded or checked: a replica that cannot
/// give them fails the restore at once.
async fn base_and_records(
    target: &ReplicaTarget,
    at: Option<i64>,
) -> Result<(ReplicaSnapshot, Option<(Vec<u8>, u64)>)> {
    let all = target.list_snapshots().await?;
    let oldest = all.first().map(|s| s.stored_at_ms);
    let mut short = None;
    for snapshot in all
        .into_iter()
        .rev()
        .filter(|s| at.is_none_or(|at| s.stored_at_ms <= at))
    {
        let journal = target.journal_after(snapshot.lsn, at).await?;
        let reached = journal.as_ref().map_or(snapshot.lsn, |(_, last)| *last);
        if reached >= snapshot.replay_to {
            return Ok((snapshot, journal));
        }
        log::warn!(
            "{}: the records after snapshot {} reach write {reached}, not {}, which it may \
             hold: trying an older snapshot",
            target.shown,
            snapshot.name,
            snapshot.replay_to
        );
        short.get_or_insert((snapshot.name, reached, snapshot.replay_to));
    }
    Err(match (short, at, oldest) {
        (Some((name, reached, needed)), _, _) => target.refused(format!(
            "no snapshot is consistent with the records: those after {name} reach write \
             {reached}, and it needs them up to {needed}; no older snapshot is kept (keep more \
             with ReplicationOptions::keep_snapshots)"
        )),
        (None, Some(at), Some(oldest)) => target.refused(format!(
            "nothing to restore at {} (Unix seconds): the oldest snapshot the replica keeps was \
             stored at {}",
            seconds(at),
            seconds(oldest)
        )),
        _ => target.refused("nothing to restore: the replica holds no snapshot"),
    })
}

/// Unix milliseconds as seconds, for messages.
fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
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
