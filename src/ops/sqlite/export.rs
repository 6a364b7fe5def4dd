//! Store file -> SqliteStore file.

use super::*;

// Export
// ---------------------------------------------------------------------------

/// Writes the accounts of the store file `redb_path` (all, or only
/// `device`) into the SqliteStore file `sqlite_path` (created if missing),
/// each under its own device id, through SqliteStore's trait methods with
/// [`RedbStore::export_to_backend`] (see there for what the trait cannot
/// carry: sent-message and pending-inbound times become the export time).
///
/// Refuses a device id the SQLite file already has rows for, unless
/// `options.overwrite`: then those rows are deleted first (if the export
/// then fails, the SQLite file is left without that account; the store file
/// still has it). After each account, the rows are counted in both files, table by table; on any
/// difference or failure the rows of that account are deleted from the
/// SQLite file again and the export fails. `redb_path` is only read
/// ([`RedbStore::open_to_look`]): it may be read-only, or in use by another
/// process (the export then has its last checkpoint and journal).
pub async fn export_sqlite(
    redb_path: impl AsRef<Path>,
    sqlite_path: impl AsRef<Path>,
    device: Option<i32>,
    options: &ExportOptions,
) -> Result<Vec<ExportReport>, StoreError> {
    let (redb_path, sqlite_path) = (redb_path.as_ref(), sqlite_path.as_ref());
    let export = export_into(redb_path, sqlite_path, device, options);
    crate::telemetry::in_file_span!("wa_redb.export", redb_path, export).await
}

async fn export_into(
    redb_path: &Path,
    sqlite_path: &Path,
    device: Option<i32>,
    options: &ExportOptions,
) -> Result<Vec<ExportReport>, StoreError> {
    if matches!(file_kind(redb_path)?, FileKind::Missing) {
        return Err(invalid(redb_path, "no such file").into());
    }
    if matches!(file_kind(sqlite_path)?, FileKind::Other) {
        return Err(invalid(
            sqlite_path,
            "the file exists and is not a SQLite database; refusing to touch it",
        )
        .into());
    }
    let url = sqlite_url(sqlite_path)?;
    // Only read: the store is never written, and may be in use.
    let looked = redb_path.to_path_buf();
    let config = RedbStoreConfig {
        encryption: options.key.clone(),
        ..RedbStoreConfig::default()
    };
    let store =
        crate::handle::blocking(move || RedbStore::open_to_look_with(looked, &config)).await?;
    let accounts = store.accounts().await?;
    let selected: Vec<(i32, u64)> = match device {
        Some(d) => match accounts.iter().find(|a| a.device_id == d) {
            Some(a) => vec![(d, a.rows)],
            None => {
                return Err(FileOpError::NoSuchAccount {
                    path: redb_path.to_path_buf(),
                    device_id: d,
                }
                .into());
            }
        },
        None => accounts.iter().map(|a| (a.device_id, a.rows)).collect(),
    };
    let existing = {
        let probe = SqliteStore::new(&url).await?;
        sql_counts(&probe).await?
    };
    let clash: Vec<i32> = selected
        .iter()
        .filter(|(d, _)| existing.contains_key(d))
        .map(|(d, _)| *d)
        .collect();
    if !clash.is_empty() && !options.overwrite {
        return Err(FileOpError::AccountsExist {
            path: sqlite_path.to_path_buf(),
            device_ids: clash,
        }
        .into());
    }
    // Progress counts the rows written through the trait: not the phone
    // index, which is not a row of its own in SqliteStore.
    let ids: Vec<i32> = selected.iter().map(|(d, _)| *d).collect();
    let total: u64 = store
        .read_for_op(move |s| {
            let mut total = 0;
            for d in ids {
                let counts = device_row_counts(s, d)?;
                total += counts
                    .iter()
                    .filter(|(id, _)| **id != TableId::PN_INDEX)
                    .map(|(_, n)| n)
                    .sum::<u64>();
            }
            Ok(total)
        })
        .await?;
    let mut done = 0u64;
    let mut reports = Vec::new();
    for &(d, _) in &selected {
        let target = SqliteStore::new_for_device(&url, d).await?;
        let replaced = existing.contains_key(&d);
        if replaced {
            delete_sql_rows(&target, d).await?;
        }
        let mut opts = ExportOptions::default();
        if let Some(p) = options.progress.clone() {
            let offset = done;
            opts.progress = Some(Arc::new(move |pr: &Progress<'_>| {
                p(&Progress {
                    stage: pr.stage,
                    done: offset + pr.done,
                    total,
                })
            }));
        }
        let result = async {
            let report = store
                .for_device(d)
                .export_to_backend(&target, &opts)
                .await?;
            let sql = sql_counts(&target).await?.remove(&d).unwrap_or_default();
            let got = store.read_for_op(move |s| device_row_counts(s, d)).await?;
            let mut problems = Vec::new();
            compare_counts(d, &sql, &HashMap::new(), &got, &mut problems);
            if !problems.is_empty() {
                return Err(FileOpError::CountsDiffer {
                    operation: "export",
                    problems,
                }
                .into());
            }
            Ok::<_, StoreError>(report)
        }
        .await;
        match result {
            Ok(report) => {
                done += report.total_rows;
                reports.push(ExportReport { replaced, ..report });
            }
            Err(e) => {
                if let Err(undo) = delete_sql_rows(&target, d).await {
                    log::error!("export failed, and deleting device {d} again failed: {undo}");
                }
                return Err(e);
            }
        }
    }
    drop(store);
    Ok(reports)
}

/// Deletes every row of device `d` from a SqliteStore file (undoing a
/// failed export), children before the device record.
pub(crate) async fn delete_sql_rows(target: &SqliteStore, d: i32) -> Result<(), StoreError> {
    target
        .shared()
        .run(move |conn| {
            for table in SQL_TABLES.iter().rev() {
                let sql = format!(
                    "DELETE FROM {} WHERE {} = ?",
                    table.name, table.device_column
                );
                diesel::sql_query(sql)
                    .bind::<Integer, _>(d)
                    .execute(conn)
                    .map_err(db_err)?;
            }
            Ok(())
        })
        .await
}
