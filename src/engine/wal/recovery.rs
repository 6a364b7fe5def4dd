//! Journal replay at open.
//!
//! The redb file holds everything up to its last checkpoint; the journal
//! holds the batches acknowledged after it. Replay applies those, in order,
//! in one write transaction, then checkpoints. A record that fails to apply
//! ends the replay just like a torn one: everything before it is kept, the
//! journal is set aside for inspection, and the store opens. Records are
//! read, checked and applied one at a time (a second pass over the journal
//! applies the records before one that failed), so replay holds one record
//! in memory, however long the journal.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use redb::{Database, WriteTransaction};

use crate::engine::catalog::{Catalog, META_CHECKPOINT_LSN};
use crate::engine::files::{remove_if_present, with_suffix};
use crate::engine::journal::{Effects, JournalContents, JournalReader, read_journal};
use crate::engine::protect::crypt::Cipher;
use crate::engine::schema::{self, FileMeta};
use crate::error::{OpenError, StorageError, StorageResult as Result};

/// What recovery did, for logs and `info`.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    /// Journal records applied.
    pub records_replayed: u64,
    /// Why the journal ended early, if it did (torn tail, bad checksum...).
    pub stopped: Option<String>,
    /// Where an unusable journal was moved, if one was.
    pub set_aside: Option<PathBuf>,
}

/// Where a pass over the records is, followed as it goes so that the
/// caller knows which record failed, even by a panic.
#[derive(Default)]
struct Progress {
    /// Records applied.
    applied: u64,
    /// The lsn of the last record applied.
    last: Option<u64>,
    /// The lsn of the record being applied; `None` before the first and
    /// after the last (beginning or committing the transaction).
    at: Option<u64>,
}

/// Why a pass over the records failed.
enum PassError {
    /// Reading the journal failed: not a record's fault; the open fails.
    Read(StorageError),
    /// Applying a record (or committing) failed.
    Apply(StorageError),
}

/// Applies the first `limit` records of `reader` (all of them, or none),
/// one at a time as they are read, and records the last lsn as the
/// checkpoint, durably.
fn apply_records(
    catalog: &dyn Catalog,
    db: &Database,
    path: &Path,
    reader: &mut JournalReader<'_>,
    limit: u64,
    progress: &mut Progress,
) -> std::result::Result<(), PassError> {
    let mut txn = schema::begin_durable(db, path).map_err(PassError::Apply)?;
    txn.set_quick_repair(true);
    reader.rewind();
    while progress.applied < limit {
        let Some((lsn, payload)) = reader.next_record().map_err(PassError::Read)? else {
            break;
        };
        progress.at = Some(lsn);
        apply_record(catalog, &txn, path, lsn, payload).map_err(PassError::Apply)?;
        progress.at = None;
        progress.applied += 1;
        progress.last = Some(lsn);
    }
    if let Some(last) = progress.last {
        schema::put_meta(&txn, path, &[(META_CHECKPOINT_LSN, &last.to_le_bytes())])
            .map_err(PassError::Apply)?;
    }
    txn.commit()
        .map_err(|e| PassError::Apply(StorageError::storage(path, e)))
}

/// Applies the effects of record `lsn`.
fn apply_record(
    catalog: &dyn Catalog,
    txn: &WriteTransaction,
    path: &Path,
    lsn: u64,
    payload: &[u8],
) -> Result<()> {
    for effect in Effects::new(payload) {
        let effect = effect?;
        let name = catalog.table_name(effect.tag()).ok_or_else(|| {
            StorageError::decode(
                "journal record",
                format!("unknown table id {}", effect.tag().0),
            )
        })?;
        if !effect.well_formed(catalog) {
            return Err(StorageError::corrupted(
                path,
                format!(
                    "journal record {lsn}: a key or value is not a valid encoding for table {name}"
                ),
            ));
        }
        catalog.apply(txn, &effect, path).map_err(|e| match e {
            // The disk failed, not the record (a full disk while the file
            // grows): the open fails and the journal stays whole for the
            // next one, rather than being set aside with acknowledged
            // writes in it.
            e if e.is_io() => e,
            e => StorageError::corrupted(path, format!("journal record {lsn}: {e}")),
        })?;
    }
    Ok(())
}

/// Applies the records, or, if one cannot be applied (it passed its
/// checksum, so this is deliberate damage or a bug), the records before it:
/// two passes over the journal at most, never a search, each holding one
/// record in memory at a time. Returns how far the replay got, and why it
/// stopped early if a record could not apply.
fn apply_prefix(
    catalog: &dyn Catalog,
    db: &Database,
    path: &Path,
    reader: &mut JournalReader<'_>,
) -> Result<(Progress, Option<String>)> {
    let mut stopped = None;
    let mut limit = u64::MAX;
    loop {
        #[cfg(test)]
        tests::PASSES.with(|p| p.set(p.get() + 1));
        let mut progress = Progress::default();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            apply_records(catalog, db, path, reader, limit, &mut progress)
        }));
        let failure = match outcome {
            Ok(Ok(())) => return Ok((progress, stopped)),
            Ok(Err(PassError::Read(e))) => return Err(e),
            Ok(Err(PassError::Apply(e)))
                if e.is_fatal() && !matches!(e, StorageError::Corrupted { .. }) =>
            {
                return Err(e);
            }
            Ok(Err(PassError::Apply(e))) => e,
            Err(_) => StorageError::corrupted(
                path,
                match progress.at {
                    Some(lsn) => format!("applying journal record {lsn} panicked"),
                    None => "committing the replayed journal panicked".into(),
                },
            ),
        };
        // A failure outside the records (beginning or committing), or
        // again in the second pass over records that applied in the first:
        // not the journal's fault; the open fails.
        if progress.at.is_none() || stopped.is_some() {
            return Err(failure);
        }
        log::error!("{}: journal replay: {failure}", path.display());
        stopped = Some(failure.to_string());
        limit = progress.applied;
    }
}

/// Moves an unusable journal out of the way, keeping it for inspection
/// under a name no earlier set-aside has (`<journal>.<why>-<secs>`, then
/// `-2`, `-3`… within one second). The store's lock is held, so no one else
/// sets one aside meanwhile.
fn set_aside(journal: &Path, why: &str) -> Result<PathBuf> {
    let stem = format!(".{why}-{}", crate::clock::now_secs());
    let target = (1..=u32::MAX)
        .map(|n| match n {
            1 => with_suffix(journal, &stem),
            n => with_suffix(journal, format!("{stem}-{n}")),
        })
        .find(|p| !p.exists())
        .ok_or_else(|| {
            StorageError::io(
                journal,
                std::io::Error::other("no unused name to set it aside"),
            )
        })?;
    std::fs::rename(journal, &target).map_err(|e| StorageError::io(journal, e))?;
    Ok(target)
}

/// What recovery does with the journal file once it has read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JournalFile {
    /// The store's owner: removes a journal whose records are in the file
    /// now, sets aside one that is foreign or ended early.
    Tidy,
    /// Someone only looking: the journal file is left as it is (and the
    /// records go to a database that is never written back).
    Leave,
}

/// Brings an opened file up to date: refuses one newer than `catalog`
/// (before anything is written to it), replays its journal (records are
/// raw rows of the file's own version), then migrates it to the catalog's
/// version.
pub(crate) fn recover_and_migrate(
    catalog: &dyn Catalog,
    db: &Database,
    path: &Path,
    journal: &Path,
    meta: &mut FileMeta,
    file: JournalFile,
    cipher: Option<&Cipher>,
) -> Result<RecoveryReport, OpenError> {
    meta.refuse_newer(path, catalog.schema_version())?;
    let report = recover(catalog, db, path, journal, meta, file, cipher)?;
    let (migrations, version) = (catalog.migrations(), catalog.schema_version());
    schema::migrate(catalog, db, path, meta, migrations, version)?;
    Ok(report)
}

/// Replays `journal` into `db`. On return the redb file holds every record
/// that could be recovered and `meta.checkpoint_lsn` is the last of them.
pub(crate) fn recover(
    catalog: &dyn Catalog,
    db: &Database,
    path: &Path,
    journal: &Path,
    meta: &mut FileMeta,
    file: JournalFile,
    cipher: Option<&Cipher>,
) -> Result<RecoveryReport, OpenError> {
    crate::telemetry::file_span!("wa_redb.recovery", path);
    let tidy = file == JournalFile::Tidy;
    let set_aside = |journal: &Path, why: &str| match tidy {
        true => set_aside(journal, why).map(Some),
        false => Ok(None),
    };
    let remove_if_present = |journal: &Path| match tidy {
        true => remove_if_present(journal),
        false => Ok(()),
    };
    let mut report = RecoveryReport::default();
    let mut reader = match read_journal(journal, &meta.file_id, meta.checkpoint_lsn, cipher)? {
        JournalContents::Missing => return Ok(report),
        JournalContents::Foreign { reason } => {
            log::warn!(
                "{}: ignoring journal {}: {reason}",
                path.display(),
                journal.display()
            );
            report.set_aside = set_aside(journal, "foreign")?;
            return Ok(report);
        }
        JournalContents::Records(reader) => reader,
    };
    if reader.next_record()?.is_none() {
        match reader.stopped() {
            Some(why) => {
                log::warn!("{}: journal ended early: {why}", path.display());
                report.set_aside = set_aside(journal, "damaged")?;
                report.stopped = Some(why.to_string());
            }
            // Nothing to apply: the file holds everything.
            None => remove_if_present(journal)?,
        }
        return Ok(report);
    }
    // Records are raw rows of the file's own version, replayed before the
    // file is migrated.
    let schema_version = reader.schema_version;
    let replayable = catalog.journal_replayable_from()..=catalog.schema_version();
    if schema_version != meta.schema_version || !replayable.contains(&schema_version) {
        return Err(OpenError::JournalSchema {
            path: path.to_path_buf(),
            journal: journal.to_path_buf(),
            found: schema_version,
        });
    }
    let (progress, unapplied) = apply_prefix(catalog, db, path, &mut reader)?;
    // A record that could not apply ends the replay there; otherwise the
    // reading ended it (at the end marker, or early at a torn record).
    report.stopped = unapplied.or_else(|| reader.stopped().map(str::to_string));
    report.records_replayed = progress.applied;
    if let Some(last) = progress.last {
        meta.checkpoint_lsn = last;
    }
    // A journal that ended early (torn by a power loss, or damaged) is kept
    // for inspection rather than overwritten by the new journal.
    if report.stopped.is_some() {
        report.set_aside = set_aside(journal, "damaged")?;
    } else {
        // Every record is durable in the file now. The journal is recreated
        // at the next write.
        remove_if_present(journal)?;
    }
    if report.records_replayed > 0 {
        log::info!(
            "{}: recovered {} journal records",
            path.display(),
            report.records_replayed
        );
    }
    if let Some(why) = &report.stopped {
        log::warn!("{}: journal ended early: {why}", path.display());
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::sync::Arc;

    use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, Value};

    use super::recover;
    use crate::engine::catalog::testing::{TEST_CATALOG, VALUES, VERSION};
    use crate::engine::create_bare_temp;
    use crate::engine::files::TempKind;
    use crate::engine::journal::{EffectLog, Journal, JournalSpec, journal_path};
    use crate::engine::schema;

    thread_local! {
        /// Replay passes over the records, on this thread.
        pub(super) static PASSES: Cell<u32> = const { Cell::new(0) };
    }

    fn key(addr: &str) -> Vec<u8> {
        <(i32, &str)>::as_bytes(&(1, addr)).to_vec()
    }

    /// A journal of 1000 records, record 600 of which cannot be applied:
    /// the 599 before it are, in two passes over the records, and the
    /// journal is set aside.
    #[test]
    fn a_record_that_cannot_apply_ends_replay_there_in_two_passes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("s.redb");
        let (path, db) = create_bare_temp(
            TEST_CATALOG,
            &target,
            TempKind::Creating,
            None,
            crate::engine::Keying::Verified,
        )
        .unwrap();
        let mut meta = schema::read_meta(&db, &path).unwrap();
        let jpath = journal_path(&path);
        let mut journal = Journal::create(JournalSpec {
            path: jpath.clone(),
            schema_version: VERSION,
            file_id: meta.file_id,
            sync_each: false,
            retain: 1 << 20,
            stats: Arc::default(),
            faults: None,
            cipher: None,
        })
        .unwrap();
        let mut log = EffectLog::new();
        for lsn in 1..=1000u64 {
            log.clear();
            let k = match lsn {
                // Three bytes: not an (i32, &str) key (redb would panic).
                600 => vec![0, 0, 1],
                _ => key(&format!("a{lsn}")),
            };
            log.put(VALUES.tag, &k, b"session");
            journal.append(lsn, &mut log).unwrap();
        }
        drop(journal);

        PASSES.with(|p| p.set(0));
        let report = recover(
            TEST_CATALOG,
            &db,
            &path,
            &jpath,
            &mut meta,
            super::JournalFile::Tidy,
            None,
        )
        .unwrap();
        assert_eq!(PASSES.with(Cell::get), 2);
        assert_eq!(report.records_replayed, 599);
        assert_eq!(meta.checkpoint_lsn, 599);
        let why = report.stopped.unwrap();
        assert!(why.contains("journal record 600"), "{why}");
        assert!(report.set_aside.unwrap().exists());
        assert!(!jpath.exists());
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(VALUES.def).unwrap();
        assert!(t.get((1, "a599")).unwrap().is_some());
        assert!(t.get((1, "a601")).unwrap().is_none());
        assert_eq!(t.len().unwrap(), 599);
    }
}
