//! SqliteStore file -> store file.

use super::*;

// Import
// ---------------------------------------------------------------------------

/// Copies every account of the SqliteStore file `sqlite_path` into the
/// store file `redb_path` (created if missing).
///
/// Every account of the SQLite file (every device id found in any of its
/// tables) and every table is copied, including what the trait cannot
/// express: pre-key `uploaded` flags, mutation-MAC `version`s, sent-message
/// `created_at`, pending-inbound `inserted_at`, message-secret deadlines and
/// timestamps, and LID mappings in SQLite rowid order (so `get_pn_mapping`
/// ties and the order of `get_all_lid_mappings` stay the same). Values
/// SqliteStore encodes (the device record; app-state sync keys and versions
/// as protobuf; device lists as JSON) are read through SqliteStore's own
/// methods, so its decoding is the one used; keys and the columns the trait
/// hides are read with SQL on SqliteStore's own connection. Rows are
/// written through the store's write path, one transaction per chunk.
///
/// Afterwards the rows of each account are counted in both files, table by
/// table; any difference fails the import. Rows SqliteStore itself treats as
/// absent (an app-state sync key that does not decode or whose `key_data` is
/// not 32 bytes) cannot be imported: they are listed in
/// [`AccountImport::skipped`] and the count check allows for them. A message
/// secret that is not 32 bytes is skipped the same way.
///
/// A new store file is built beside the target (`<file>.importing-<pid>-<n>.tmp`) and
/// moved into place only when complete. Importing into an existing store
/// adds the accounts to it; a device id it already holds is refused unless
/// [`ImportOptions::overwrite`], which deletes that account first. A failed
/// import into an existing store deletes the accounts it had begun writing
/// (a replaced account stays deleted: take a backup first).
///
/// The SQLite file is only read, never written, nor opened with SQLite:
/// it is copied, with its write-ahead log (`-wal`; a SqliteStore whose
/// process was killed has its newest commits only there) or rollback
/// journal, into a private temporary directory (owner-only, in the system's
/// temporary directory, `TMPDIR`; removed afterwards), and the import reads
/// the copy. A copy that changed while being taken (an application is
/// writing to the file) is taken again, a few times, then the import is
/// refused; import from a file no application is using. Before SqliteStore
/// opens the copy, it is checked: a SQLite database that is not a
/// SqliteStore (no SqliteStore migration recorded in
/// `__diesel_schema_migrations`) is refused with
/// [`Error::NotSqliteStore`](crate::Error::NotSqliteStore), one written by a
/// newer SqliteStore (migrations this build does not know) with
/// [`Error::SqliteSchemaTooNew`](crate::Error::SqliteSchemaTooNew), in both
/// cases before the store file is touched. An older SqliteStore is
/// migrated, as the application would, on the copy only.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), wacore::store::error::StoreError> {
/// use wacore::store::traits::{DeviceStore, SignalStore};
/// use whatsapp_rust_redb_storage::{ImportOptions, RedbStore, import_sqlite};
/// use whatsapp_rust_sqlite_storage::SqliteStore;
/// # let dir = tempfile::tempdir().unwrap();
/// # let (db, redb) = (dir.path().join("whatsapp.db"), dir.path().join("whatsapp.redb"));
/// // An account paired with SqliteStore...
/// let sqlite = SqliteStore::new(db.to_str().unwrap()).await?;
/// sqlite.create().await?;
/// sqlite.put_session("a@c.us.0", b"record").await?;
/// drop(sqlite);
/// // ...moved into a new store file, keeping its pairing.
/// let report = import_sqlite(&db, &redb, &ImportOptions::default()).await?;
/// assert_eq!(report.accounts.len(), 1);
/// let store = RedbStore::new(&redb).await?;
/// assert!(store.get_session("a@c.us.0").await?.is_some());
/// # Ok(()) }
/// ```
pub async fn import_sqlite(
    sqlite_path: impl AsRef<Path>,
    redb_path: impl AsRef<Path>,
    options: &ImportOptions,
) -> Result<ImportReport, StoreError> {
    let (sqlite_path, redb_path) = (sqlite_path.as_ref(), redb_path.as_ref());
    let import = import_into(sqlite_path, redb_path, options);
    crate::telemetry::in_file_span!("wa_redb.import", redb_path, import).await
}

async fn import_into(
    sqlite_path: &Path,
    redb_path: &Path,
    options: &ImportOptions,
) -> Result<ImportReport, StoreError> {
    match file_kind(sqlite_path)? {
        FileKind::Sqlite => {}
        FileKind::Missing => return Err(invalid(sqlite_path, "no such file").into()),
        FileKind::Empty => return Err(invalid(sqlite_path, "the file is empty").into()),
        FileKind::Other => {
            return Err(invalid(sqlite_path, "not a SQLite database (SqliteStore file)").into());
        }
    }
    // Everything below reads a private copy; it is removed when `copy` is
    // dropped, after the SqliteStores opened on it.
    let copy = {
        let source = sqlite_path.to_path_buf();
        crate::handle::blocking(move || {
            let copy = private_copy(&source)?;
            check_sqlite_store(&source, &copy)?;
            Ok::<_, FileOpError>(copy)
        })
        .await?
    };
    let url = copy.url.clone();
    let counts = {
        let probe = SqliteStore::new(&url).await?;
        sql_counts(&probe).await?
    };
    let created_file = matches!(file_kind(redb_path)?, FileKind::Missing);
    let work_path = if created_file {
        use crate::engine::files;
        // Imports that did not finish (the process died) left these.
        files::remove_stale_temps(redb_path);
        // A name of our own (created, so no one else has it), for the store
        // the open below creates there.
        let (tmp, _) = files::create_temp(redb_path, files::TempKind::Importing)?;
        files::remove_if_present(&tmp)?;
        tmp
    } else {
        redb_path.to_path_buf()
    };
    let config = RedbStoreConfig {
        encryption: options.key.clone(),
        ..RedbStoreConfig::default().with_auto_compact(None)
    };
    let store = RedbStore::with_config_for_device(&work_path, 1, config).await?;
    let mut begun = Vec::new();
    let result = import_accounts(&store, &url, &counts, options, &mut begun).await;
    match result {
        Ok(accounts) => {
            store.close().await?;
            if created_file {
                crate::ops::whole_file::publish(&work_path, redb_path)?;
            }
            Ok(ImportReport {
                source: sqlite_path.to_path_buf(),
                target: redb_path.to_path_buf(),
                created_file,
                total_rows: accounts.iter().flat_map(|a| a.rows.values()).sum(),
                accounts,
            })
        }
        Err(e) => {
            if created_file {
                let _ = store.close().await;
                let _ = std::fs::remove_file(&work_path);
            } else {
                for d in begun {
                    if let Err(undo) = store.delete_device(d).await {
                        log::error!("import failed, and deleting device {d} again failed: {undo}");
                    }
                }
                let _ = store.close().await;
            }
            Err(e)
        }
    }
}

pub(crate) async fn import_accounts(
    store: &RedbStore,
    url: &str,
    counts: &SqlCounts,
    options: &ImportOptions,
    begun: &mut Vec<i32>,
) -> Result<Vec<AccountImport>, StoreError> {
    let existing: BTreeSet<i32> = store
        .accounts()
        .await?
        .iter()
        .map(|a| a.device_id)
        .collect();
    let clash: Vec<i32> = counts
        .keys()
        .filter(|d| existing.contains(d))
        .copied()
        .collect();
    if !clash.is_empty() && !options.overwrite {
        return Err(FileOpError::AccountsExist {
            path: store.path().to_path_buf(),
            device_ids: clash,
        }
        .into());
    }
    // Progress counts SQLite rows (a LID mapping once, not its index row).
    let total: u64 = counts.values().flat_map(|tables| tables.values()).sum();
    let mut tally = Tally {
        progress: options.progress.clone(),
        device: 0,
        done: 0,
        total,
        rows: BTreeMap::new(),
        skipped: Vec::new(),
    };
    let mut accounts = Vec::new();
    for (&d, sql) in counts {
        let replaced = existing.contains(&d);
        if replaced {
            store.delete_device(d).await?;
        }
        begun.push(d);
        tally.device = d;
        tally.rows.clear();
        tally.skipped.clear();
        let src = SqliteStore::new_for_device(url, d).await?;
        import_account(&src, &store.for_device(d), &mut tally).await?;
        drop(src);
        let mut skipped_per_table = HashMap::new();
        for (table, _) in &tally.skipped {
            *skipped_per_table.entry(*table).or_insert(0u64) += 1;
        }
        let got = store.read_for_op(move |s| device_row_counts(s, d)).await?;
        let mut problems = Vec::new();
        compare_counts(d, sql, &skipped_per_table, &got, &mut problems);
        if !problems.is_empty() {
            return Err(FileOpError::CountsDiffer {
                operation: "import",
                problems,
            }
            .into());
        }
        accounts.push(AccountImport {
            device_id: d,
            replaced,
            rows: tally.rows.clone(),
            skipped: tally
                .skipped
                .iter()
                .map(|(table, why)| format!("{table}: {why}"))
                .collect(),
        });
    }
    Ok(accounts)
}

/// Copies one account; rows that cannot be imported go to
/// `tally.skipped`.
pub(crate) async fn import_account(
    src: &SqliteStore,
    store: &RedbStore,
    tally: &mut Tally,
) -> Result<(), StoreError> {
    let d = store.device_id();
    // The device record first: LID mappings require it, as in SqliteStore.
    if let Some(device) = src.load().await? {
        store.save(&device).await?;
        tally.add(TableId::DEVICES.name(), 1);
    }
    let text_blob = |rows: Vec<TextBlob>| rows.into_iter().map(|r| (r.k, r.v)).collect::<Vec<_>>();
    let rows = select(
        src,
        "SELECT address AS k, key AS v FROM identities WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    put_rows(store, IDENTITIES, d, text_blob(rows), tally).await?;
    let rows = select(
        src,
        "SELECT address AS k, record AS v FROM sessions WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    put_rows(store, SESSIONS, d, text_blob(rows), tally).await?;
    let rows: Vec<PrekeySql> = select(
        src,
        "SELECT id, key AS v, uploaded FROM prekeys WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    let rows = rows
        .into_iter()
        .map(|r| {
            let row = PrekeyRow {
                uploaded: r.uploaded,
                record: r.v,
            };
            // SqliteStore stores the u32 id as i32: cast back bit for bit.
            (r.id as u32, encode_row(&row))
        })
        .collect();
    put_rows(store, PREKEYS, d, rows, tally).await?;
    let rows: Vec<IdBlob> = select(
        src,
        "SELECT id, record AS v FROM signed_prekeys WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    let rows = rows.into_iter().map(|r| (r.id as u32, r.v)).collect();
    put_rows(store, SIGNED_PREKEYS, d, rows, tally).await?;
    let rows = select(
        src,
        "SELECT address AS k, record AS v FROM sender_keys WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    put_rows(store, SENDER_KEYS, d, text_blob(rows), tally).await?;

    // App-state sync keys and versions: SqliteStore decodes its protobuf.
    let ids: Vec<BlobKey> = select(
        src,
        "SELECT key_id AS k FROM app_state_keys WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    let mut rows = Vec::new();
    for BlobKey { k } in ids {
        match src.get_sync_key(&k).await? {
            Some(key) => {
                let value = encode_named(&key)?;
                rows.push((k, value));
            }
            None => tally.skip(
                "app_state_keys",
                format!(
                    "key id {} is unreadable in SqliteStore too (undecodable, or key_data not 32 bytes)",
                    hex(&k)
                ),
            ),
        }
    }
    put_rows(store, SYNC_KEYS, d, rows, tally).await?;
    let names: Vec<TextKey> = select(
        src,
        "SELECT name AS k FROM app_state_versions WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    let mut rows = Vec::new();
    for TextKey { k } in names {
        // A state SqliteStore cannot decode reads as the default (version
        // 0, a full re-sync); it is imported as such.
        let state = src.get_version(&k).await?;
        rows.push((k, encode_named(&state)?));
    }
    put_rows(store, APP_STATE_VERSIONS, d, rows, tally).await?;
    let rows: Vec<MacSql> = select(
        src,
        "SELECT name, index_mac, version, value_mac FROM app_state_mutation_macs \
         WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    let rows = rows
        .into_iter()
        .map(|r| {
            let row = MutationMacRow {
                version: r.version as u64,
                value_mac: r.value_mac,
            };
            ((r.name, r.index_mac), encode_row(&row))
        })
        .collect();
    put_rows(store, MUTATION_MACS, d, rows, tally).await?;

    let rows: Vec<SenderKeyDeviceSql> = select(
        src,
        "SELECT group_jid, device_jid, has_key FROM sender_key_devices \
         WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    for chunk in chunks(rows, |r| r.group_jid.len() + r.device_jid.len() + 8) {
        let n = chunk.len();
        let weight = chunk
            .iter()
            .map(|r| r.group_jid.len() + r.device_jid.len())
            .sum();
        let chunk: Arc<Vec<(String, String, bool)>> = Arc::new(
            chunk
                .into_iter()
                .map(|r| (r.group_jid, r.device_jid, r.has_key != 0))
                .collect(),
        );
        store
            .write(weight, move |tx| {
                tx.table(SENDER_KEY_DEVICES)?.put_all(
                    chunk
                        .iter()
                        .map(|(group, jid, has_key)| ((d, group.as_str(), jid.as_str()), has_key)),
                )
            })
            .await?;
        tally.add(SENDER_KEY_DEVICES.name, n);
    }

    // LID mappings in rowid order: the store numbers them in the order
    // written, which reproduces SqliteStore's rowid tie-break and listing
    // order. `put_lid_mappings` keeps `created_at` for new rows.
    let rows: Vec<LidSql> = select(
        src,
        "SELECT lid, phone_number, created_at, updated_at, learning_source FROM lid_pn_mapping \
         WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    let entries: Vec<LidPnMappingEntry> = rows
        .into_iter()
        .map(|r| LidPnMappingEntry {
            lid: r.lid,
            phone_number: r.phone_number,
            created_at: r.created_at,
            updated_at: r.updated_at,
            learning_source: r.learning_source,
        })
        .collect();
    for chunk in chunks(entries, |e| e.lid.len() + e.phone_number.len() + 32) {
        store.put_lid_mappings(&chunk).await?;
        tally.add(TableId::LID_MAPPINGS.name(), chunk.len());
    }

    // SqliteStore's `created_at` (when the key was last saved) becomes
    // the row's `saved_at`, which retention goes by.
    let rows: Vec<Text2BlobTime> = select(
        src,
        "SELECT address AS a, message_id AS b, base_key AS v, created_at AS at FROM base_keys \
         WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    let rows = rows
        .into_iter()
        .map(|r| {
            let row = BaseKeyRow {
                saved_at: r.at,
                key: r.v,
            };
            ((r.a, r.b), encode_row(&row))
        })
        .collect();
    put_rows(store, BASE_KEYS, d, rows, tally).await?;
    // Device lists: SqliteStore decodes its JSON.
    let users: Vec<TextKey> = select(
        src,
        "SELECT user_id AS k FROM device_registry WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    let mut rows = Vec::new();
    for TextKey { k } in users {
        match src.get_devices(&k).await? {
            Some(record) => rows.push((k, encode_named(&record)?)),
            None => tally.skip(
                "device_registry",
                format!("user {k:?} vanished while reading"),
            ),
        }
    }
    put_rows(store, DEVICE_LISTS, d, rows, tally).await?;
    let rows = select(
        src,
        "SELECT group_jid AS k, info AS v FROM group_metadata WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    put_rows(store, GROUP_METADATA, d, text_blob(rows), tally).await?;
    let rows: Vec<TcSql> = select(
        src,
        "SELECT jid AS k, token, token_timestamp, sender_timestamp FROM tc_tokens \
         WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    let rows = rows
        .into_iter()
        .map(|r| {
            let row = TcTokenRow {
                token: r.token,
                token_timestamp: r.token_timestamp,
                sender_timestamp: r.sender_timestamp,
            };
            (r.k, encode_row(&row))
        })
        .collect();
    put_rows(store, TC_TOKENS, d, rows, tally).await?;
    let rows: Vec<Text2BlobTime> = select(
        src,
        "SELECT chat_jid AS a, message_id AS b, payload AS v, created_at AS at FROM sent_messages \
         WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    let rows = rows
        .into_iter()
        .map(|r| {
            let row = SentMessageRow {
                created_at: r.at,
                payload: r.v,
            };
            ((r.a, r.b), encode_row(&row))
        })
        .collect();
    put_rows(store, SENT_MESSAGES, d, rows, tally).await?;
    let rows: Vec<Text3BlobTime> = select(
        src,
        "SELECT chat AS a, sender AS b, id AS c, message AS v, inserted_at AS at \
         FROM pending_inbound_messages WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    let rows = rows
        .into_iter()
        .map(|r| {
            let row = PendingInboundRow {
                inserted_at: r.at,
                message: r.v,
            };
            ((r.a, r.b, r.c), encode_row(&row))
        })
        .collect();
    put_rows(store, PENDING_INBOUND, d, rows, tally).await?;
    let rows: Vec<SecretSql> = select(
        src,
        "SELECT chat AS a, sender AS b, msg_id AS c, secret AS v, expires_at, message_ts \
         FROM msg_secrets WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    let mut secrets = Vec::new();
    for r in rows {
        let Ok(secret) = <[u8; 32]>::try_from(r.v.as_slice()) else {
            tally.skip(
                "msg_secrets",
                format!(
                    "({:?}, {:?}, {:?}): the secret is {} bytes, not 32",
                    r.a,
                    r.b,
                    r.c,
                    r.v.len()
                ),
            );
            continue;
        };
        let row = MsgSecretRow {
            secret: secret.into(),
            expires_at: r.expires_at,
            message_ts: r.message_ts,
        };
        secrets.push(((r.a, r.b, r.c), encode_row(&row)));
    }
    put_rows(store, MSG_SECRETS, d, secrets, tally).await?;
    Ok(())
}

// ---------------------------------------------------------------------------
