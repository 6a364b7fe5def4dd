//! Journal replay at open.
//!
//! The redb file holds everything up to its last checkpoint; the journal
//! holds the batches acknowledged after it. Replay applies those, in order,
//! in one write transaction, then checkpoints. A record that fails to apply
//! ends the replay just like a torn one: everything before it is kept, the
//! journal is set aside for inspection, and the store opens.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use redb::{Database, Value, WriteTransaction};

use crate::catalog::{META_CHECKPOINT_LSN, SCHEMA_VERSION, StoreKey, Table, TableVisitor};
use crate::engine::files::{remove_if_present, with_suffix};
use crate::engine::journal::{Effect, Effects, JournalContents, read_journal};
use crate::engine::schema::{self, FileMeta};
use crate::engine::tx::Tx;
use crate::error::{Error, Result};

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

struct ApplyEffect<'a, 'e> {
    txn: &'a WriteTransaction,
    effect: &'a Effect<'e>,
    path: &'a Path,
}

impl TableVisitor for ApplyEffect<'_, '_> {
    fn visit<K: StoreKey, V: Value + 'static>(&mut self, table: Table<K, V>) -> Result<()> {
        Tx::apply_raw(self.txn, table, self.effect, self.path)
    }
}

fn table_of(effect: &Effect<'_>) -> crate::catalog::TableId {
    match effect {
        Effect::Put { table, .. }
        | Effect::Delete { table, .. }
        | Effect::DeleteRange { table, .. } => *table,
    }
}

/// Applies `records` (all of them, or none) and records the last lsn as the
/// checkpoint, durably.
fn apply_records(db: &Database, path: &Path, records: &[(u64, Vec<u8>)]) -> Result<()> {
    let mut txn = schema::begin_durable(db, path)?;
    txn.set_quick_repair(true);
    for (lsn, payload) in records {
        for effect in Effects::new(payload) {
            let effect = effect?;
            let mut apply = ApplyEffect {
                txn: &txn,
                effect: &effect,
                path,
            };
            table_of(&effect)
                .visit(&mut apply)
                .map_err(|e| Error::Corrupted {
                    path: path.to_path_buf(),
                    detail: format!("journal record {lsn}: {e}"),
                })?;
        }
    }
    if let Some((last, _)) = records.last() {
        schema::put_meta(&txn, path, &[(META_CHECKPOINT_LSN, &last.to_le_bytes())])?;
    }
    txn.commit().map_err(|e| Error::storage(path, e))
}

/// Moves an unusable journal out of the way, keeping it for inspection
/// under a name no earlier set-aside has (`<journal>.<why>-<secs>`, then
/// `-2`, `-3`… within one second). The store's lock is held, so no one else
/// sets one aside meanwhile.
fn set_aside(journal: &Path, why: &str) -> Result<PathBuf> {
    let stem = format!(".{why}-{}", crate::store::now_secs());
    let target = (1..=u32::MAX)
        .map(|n| match n {
            1 => with_suffix(journal, &stem),
            n => with_suffix(journal, format!("{stem}-{n}")),
        })
        .find(|p| !p.exists())
        .ok_or_else(|| {
            Error::io(
                journal,
                std::io::Error::other("no unused name to set it aside"),
            )
        })?;
    std::fs::rename(journal, &target).map_err(|e| Error::io(journal, e))?;
    Ok(target)
}

/// Replays `journal` into `db`. On return the redb file holds every record
/// that could be recovered and `meta.checkpoint_lsn` is the last of them.
pub(crate) fn recover(
    db: &Database,
    path: &Path,
    journal: &Path,
    meta: &mut FileMeta,
) -> Result<RecoveryReport> {
    let mut report = RecoveryReport::default();
    let (schema_version, mut records, stopped) =
        match read_journal(journal, &meta.file_id, meta.checkpoint_lsn)? {
            JournalContents::Missing => return Ok(report),
            JournalContents::Foreign { reason } => {
                log::warn!(
                    "{}: ignoring journal {}: {reason}",
                    path.display(),
                    journal.display()
                );
                report.set_aside = Some(set_aside(journal, "foreign")?);
                return Ok(report);
            }
            JournalContents::Records {
                schema_version,
                records,
                stopped,
            } => (schema_version, records, stopped),
        };
    if records.is_empty() {
        match stopped {
            Some(why) => {
                log::warn!("{}: journal ended early: {why}", path.display());
                report.set_aside = Some(set_aside(journal, "damaged")?);
                report.stopped = Some(why);
            }
            // Nothing to apply: the file holds everything.
            None => remove_if_present(journal)?,
        }
        return Ok(report);
    }
    if schema_version != meta.schema_version || schema_version != SCHEMA_VERSION {
        return Err(Error::Invalid(format!(
            "{}: journal {} holds unapplied writes of schema version {schema_version}; \
             open the store once with the version of whatsapp-rust-redb-storage that wrote it",
            path.display(),
            journal.display()
        )));
    }
    report.stopped = stopped;
    // Apply everything; if a record cannot be applied (it passed its
    // checksum, so this is deliberate damage or a bug), keep the records
    // before it.
    loop {
        let outcome = catch_unwind(AssertUnwindSafe(|| apply_records(db, path, &records)));
        let failure = match outcome {
            Ok(Ok(())) => break,
            Ok(Err(e)) if e.is_fatal() && !matches!(e, Error::Corrupted { .. }) => return Err(e),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "applying a journal record panicked".to_string(),
        };
        log::error!("{}: journal replay: {failure}", path.display());
        report.stopped = Some(failure);
        // Find the first record that fails on its own, by retrying with one
        // record fewer each time (replay is rare; clarity over speed).
        records.pop();
    }
    report.records_replayed = records.len() as u64;
    if let Some((last, _)) = records.last() {
        meta.checkpoint_lsn = *last;
    }
    // A journal that ended early (torn by a power loss, or damaged) is kept
    // for inspection rather than overwritten by the new journal.
    if report.stopped.is_some() {
        report.set_aside = Some(set_aside(journal, "damaged")?);
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
