//! Moving accounts between SqliteStore files and store files (feature
//! `sqlite`): [`import_sqlite`] and [`export_sqlite`], behind
//! `wa-redb import-sqlite` and `wa-redb export --to-sqlite`. Their
//! documentation is on the functions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use diesel::QueryableByName;
use diesel::RunQueryDsl;
use diesel::sql_types::{BigInt, Binary, Bool, Integer, Nullable, Text};
use diesel::sqlite::Sqlite;
use redb::Value;
use serde::Serialize;
use wacore::store::error::StoreError;
use wacore::store::traits::{AppSyncStore, DeviceStore, LidPnMappingEntry, ProtocolStore};
use whatsapp_rust_sqlite_storage::SqliteStore;

use crate::catalog::{self, StoreKey, Table, TableId, TableVisitor};
use crate::catalog::{
    APP_STATE_VERSIONS, BASE_KEYS, DEVICE_LISTS, GROUP_METADATA, IDENTITIES, MSG_SECRETS,
    MUTATION_MACS, PENDING_INBOUND, PREKEYS, SENDER_KEY_DEVICES, SENDER_KEYS, SENT_MESSAGES,
    SESSIONS, SIGNED_PREKEYS, SYNC_KEYS, TC_TOKENS,
};
use crate::codec::{
    MsgSecretRow, MutationMacRow, PendingInboundRow, PrekeyRow, SentMessageRow, TcTokenRow,
    encode_named, encode_row,
};
use crate::config::RedbStoreConfig;
use crate::engine::journal::journal_path;
use crate::engine::tx::{Snapshot, Tx};
use crate::error::{Error, Result};
use crate::export::{ExportOptions, ExportReport, Progress, ProgressFn, hex};
use crate::store::RedbStore;

/// A SqliteStore table, the column naming its account, and the store
/// tables its rows become (a LID mapping is also a row of the phone index).
struct SqlTable {
    name: &'static str,
    device_column: &'static str,
    into: &'static [TableId],
}

const fn t(name: &'static str, into: &'static [TableId]) -> SqlTable {
    SqlTable {
        name,
        device_column: "device_id",
        into,
    }
}

/// Every SqliteStore 0.7 table.
const SQL_TABLES: &[SqlTable] = &[
    SqlTable {
        name: "device",
        device_column: "id",
        into: &[TableId::DEVICES],
    },
    t("identities", &[TableId::IDENTITIES]),
    t("sessions", &[TableId::SESSIONS]),
    t("prekeys", &[TableId::PREKEYS]),
    t("signed_prekeys", &[TableId::SIGNED_PREKEYS]),
    t("sender_keys", &[TableId::SENDER_KEYS]),
    t("app_state_keys", &[TableId::SYNC_KEYS]),
    t("app_state_versions", &[TableId::APP_STATE_VERSIONS]),
    t("app_state_mutation_macs", &[TableId::MUTATION_MACS]),
    t("sender_key_devices", &[TableId::SENDER_KEY_DEVICES]),
    t(
        "lid_pn_mapping",
        &[TableId::LID_MAPPINGS, TableId::PN_INDEX],
    ),
    t("base_keys", &[TableId::BASE_KEYS]),
    t("device_registry", &[TableId::DEVICE_LISTS]),
    t("group_metadata", &[TableId::GROUP_METADATA]),
    t("tc_tokens", &[TableId::TC_TOKENS]),
    t("sent_messages", &[TableId::SENT_MESSAGES]),
    t("pending_inbound_messages", &[TableId::PENDING_INBOUND]),
    t("msg_secrets", &[TableId::MSG_SECRETS]),
];

/// Options of [`import_sqlite`].
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Replace accounts the store file already holds (each is deleted,
    /// then imported). Without it, such an import is refused.
    pub overwrite: bool,
    /// Called as rows are written.
    pub progress: Option<ProgressFn>,
}

impl ImportOptions {
    pub fn with_overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    pub fn with_progress(mut self, progress: ProgressFn) -> Self {
        self.progress = Some(progress);
        self
    }
}

/// One imported account.
#[derive(Debug, Clone, Serialize)]
pub struct AccountImport {
    pub device_id: i32,
    /// The store file held this account before; it was deleted first.
    pub replaced: bool,
    /// Rows written, by store table name (tables without rows omitted).
    pub rows: BTreeMap<&'static str, u64>,
    /// Rows of the SQLite file not imported, each with the reason.
    pub skipped: Vec<String>,
}

/// What [`import_sqlite`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub source: PathBuf,
    pub target: PathBuf,
    /// The store file did not exist and was created.
    pub created_file: bool,
    pub accounts: Vec<AccountImport>,
    /// Rows written across all accounts.
    pub total_rows: u64,
}

fn db_err(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Database(Box::new(e))
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidPath {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// What is at `path`: nothing, an empty file, a SQLite database, or
/// something else.
enum FileKind {
    Missing,
    Empty,
    Sqlite,
    Other,
}

fn file_kind(path: &Path) -> Result<FileKind> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileKind::Missing),
        Err(e) => return Err(Error::io(path, e)),
    };
    if file.metadata().map_err(|e| Error::io(path, e))?.is_dir() {
        return Err(invalid(path, "it is a directory, not a file"));
    }
    let mut head = Vec::with_capacity(16);
    (&mut file)
        .take(16)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    Ok(match head.as_slice() {
        [] => FileKind::Empty,
        h if h == SQLITE_MAGIC => FileKind::Sqlite,
        _ => FileKind::Other,
    })
}

/// The URL SqliteStore is opened with: the plain path.
fn sqlite_url(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .ok_or_else(|| invalid(path, "SQLite paths must be valid UTF-8"))?;
    if text.starts_with("file:") || text.starts_with(":memory:") || text.contains(['?', '#']) {
        return Err(invalid(
            path,
            "give a plain file path (no URI, query or `:memory:`)",
        ));
    }
    Ok(text.to_owned())
}

// ---------------------------------------------------------------------------
// SQL side
// ---------------------------------------------------------------------------

#[derive(QueryableByName)]
struct DeviceCount {
    #[diesel(sql_type = Integer)]
    device: i32,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Rows per account per SqliteStore table: `{device: {table: rows}}`.
type SqlCounts = BTreeMap<i32, BTreeMap<&'static str, u64>>;

async fn sql_counts(src: &SqliteStore) -> Result<SqlCounts, StoreError> {
    src.shared()
        .read(|conn| {
            let mut out = SqlCounts::new();
            for table in SQL_TABLES {
                let sql = format!(
                    "SELECT {c} AS device, COUNT(*) AS n FROM {t} GROUP BY {c}",
                    c = table.device_column,
                    t = table.name
                );
                let rows: Vec<DeviceCount> = diesel::sql_query(sql).load(conn).map_err(db_err)?;
                for r in rows {
                    out.entry(r.device)
                        .or_default()
                        .insert(table.name, r.n as u64);
                }
            }
            Ok(out)
        })
        .await
}

/// Runs `sql` (with `?` bound to the device id) on SqliteStore's own
/// connection, in one read snapshot.
async fn select<T>(src: &SqliteStore, sql: &'static str, d: i32) -> Result<Vec<T>, StoreError>
where
    T: QueryableByName<Sqlite> + Send + 'static,
{
    src.shared()
        .read(move |conn| {
            diesel::sql_query(sql)
                .bind::<Integer, _>(d)
                .load(conn)
                .map_err(db_err)
        })
        .await
}

#[derive(QueryableByName)]
struct TextBlob {
    #[diesel(sql_type = Text)]
    k: String,
    #[diesel(sql_type = Binary)]
    v: Vec<u8>,
}

#[derive(QueryableByName)]
struct IdBlob {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Binary)]
    v: Vec<u8>,
}

#[derive(QueryableByName)]
struct PrekeySql {
    #[diesel(sql_type = Integer)]
    id: i32,
    #[diesel(sql_type = Binary)]
    v: Vec<u8>,
    #[diesel(sql_type = Bool)]
    uploaded: bool,
}

#[derive(QueryableByName)]
struct TextKey {
    #[diesel(sql_type = Text)]
    k: String,
}

#[derive(QueryableByName)]
struct BlobKey {
    #[diesel(sql_type = Binary)]
    k: Vec<u8>,
}

#[derive(QueryableByName)]
struct MacSql {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Binary)]
    index_mac: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    version: i64,
    #[diesel(sql_type = Binary)]
    value_mac: Vec<u8>,
}

#[derive(QueryableByName)]
struct SenderKeyDeviceSql {
    #[diesel(sql_type = Text)]
    group_jid: String,
    #[diesel(sql_type = Text)]
    device_jid: String,
    #[diesel(sql_type = BigInt)]
    has_key: i64,
}

#[derive(QueryableByName)]
struct LidSql {
    #[diesel(sql_type = Text)]
    lid: String,
    #[diesel(sql_type = Text)]
    phone_number: String,
    #[diesel(sql_type = BigInt)]
    created_at: i64,
    #[diesel(sql_type = BigInt)]
    updated_at: i64,
    #[diesel(sql_type = Text)]
    learning_source: String,
}

#[derive(QueryableByName)]
struct Text2Blob {
    #[diesel(sql_type = Text)]
    a: String,
    #[diesel(sql_type = Text)]
    b: String,
    #[diesel(sql_type = Binary)]
    v: Vec<u8>,
}

#[derive(QueryableByName)]
struct TcSql {
    #[diesel(sql_type = Text)]
    k: String,
    #[diesel(sql_type = Binary)]
    token: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    token_timestamp: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    sender_timestamp: Option<i64>,
}

#[derive(QueryableByName)]
struct SentSql {
    #[diesel(sql_type = Text)]
    a: String,
    #[diesel(sql_type = Text)]
    b: String,
    #[diesel(sql_type = Binary)]
    v: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    at: i64,
}

#[derive(QueryableByName)]
struct Text3BlobTime {
    #[diesel(sql_type = Text)]
    a: String,
    #[diesel(sql_type = Text)]
    b: String,
    #[diesel(sql_type = Text)]
    c: String,
    #[diesel(sql_type = Binary)]
    v: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    at: i64,
}

#[derive(QueryableByName)]
struct SecretSql {
    #[diesel(sql_type = Text)]
    a: String,
    #[diesel(sql_type = Text)]
    b: String,
    #[diesel(sql_type = Text)]
    c: String,
    #[diesel(sql_type = Binary)]
    v: Vec<u8>,
    #[diesel(sql_type = BigInt)]
    expires_at: i64,
    #[diesel(sql_type = BigInt)]
    message_ts: i64,
}

// ---------------------------------------------------------------------------
// Store side
// ---------------------------------------------------------------------------

/// The owned form of a key (after the device id) and how to write a row
/// under it.
trait RowKey: Send + Sync + 'static {
    type K: StoreKey + Send + Sync;
    fn put(
        &self,
        tx: &mut Tx<'_>,
        t: Table<Self::K, &'static [u8]>,
        d: i32,
        v: &[u8],
    ) -> Result<()>;
    fn len(&self) -> usize;
}

impl RowKey for String {
    type K = (i32, &'static str);
    fn put(
        &self,
        tx: &mut Tx<'_>,
        t: Table<Self::K, &'static [u8]>,
        d: i32,
        v: &[u8],
    ) -> Result<()> {
        tx.put(t, (d, self.as_str()), v)
    }
    fn len(&self) -> usize {
        String::len(self)
    }
}

impl RowKey for u32 {
    type K = (i32, u32);
    fn put(
        &self,
        tx: &mut Tx<'_>,
        t: Table<Self::K, &'static [u8]>,
        d: i32,
        v: &[u8],
    ) -> Result<()> {
        tx.put(t, (d, *self), v)
    }
    fn len(&self) -> usize {
        4
    }
}

impl RowKey for Vec<u8> {
    type K = (i32, &'static [u8]);
    fn put(
        &self,
        tx: &mut Tx<'_>,
        t: Table<Self::K, &'static [u8]>,
        d: i32,
        v: &[u8],
    ) -> Result<()> {
        tx.put(t, (d, self.as_slice()), v)
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

impl RowKey for (String, Vec<u8>) {
    type K = (i32, &'static str, &'static [u8]);
    fn put(
        &self,
        tx: &mut Tx<'_>,
        t: Table<Self::K, &'static [u8]>,
        d: i32,
        v: &[u8],
    ) -> Result<()> {
        tx.put(t, (d, self.0.as_str(), self.1.as_slice()), v)
    }
    fn len(&self) -> usize {
        self.0.len() + self.1.len()
    }
}

impl RowKey for (String, String) {
    type K = (i32, &'static str, &'static str);
    fn put(
        &self,
        tx: &mut Tx<'_>,
        t: Table<Self::K, &'static [u8]>,
        d: i32,
        v: &[u8],
    ) -> Result<()> {
        tx.put(t, (d, self.0.as_str(), self.1.as_str()), v)
    }
    fn len(&self) -> usize {
        self.0.len() + self.1.len()
    }
}

impl RowKey for (String, String, String) {
    type K = (i32, &'static str, &'static str, &'static str);
    fn put(
        &self,
        tx: &mut Tx<'_>,
        t: Table<Self::K, &'static [u8]>,
        d: i32,
        v: &[u8],
    ) -> Result<()> {
        tx.put(t, (d, self.0.as_str(), self.1.as_str(), self.2.as_str()), v)
    }
    fn len(&self) -> usize {
        self.0.len() + self.1.len() + self.2.len()
    }
}

/// Rows per write transaction, at most.
const CHUNK_ROWS: usize = 2000;
/// Bytes per write transaction, about.
const CHUNK_BYTES: usize = 4 << 20;

/// Splits rows into write-sized chunks.
fn chunks<T>(rows: Vec<T>, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut bytes = 0;
    for row in rows {
        bytes += size(&row);
        cur.push(row);
        if cur.len() >= CHUNK_ROWS || bytes >= CHUNK_BYTES {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Counts rows written (and skipped) and reports progress.
struct Tally {
    progress: Option<ProgressFn>,
    device: i32,
    done: u64,
    total: u64,
    rows: BTreeMap<&'static str, u64>,
    /// Rows not imported: (SqliteStore table, reason).
    skipped: Vec<(&'static str, String)>,
}

impl Tally {
    /// A row of SqliteStore `table` that cannot be imported.
    fn skip(&mut self, table: &'static str, why: String) {
        self.skipped.push((table, why));
        self.done += 1;
    }

    fn add(&mut self, table: TableId, n: usize) {
        if n == 0 {
            return;
        }
        *self.rows.entry(table.name()).or_default() += n as u64;
        self.done += n as u64;
        if let Some(p) = &self.progress {
            let stage = format!("device {}: {}", self.device, table.name());
            p(&Progress {
                stage: &stage,
                done: self.done,
                total: self.total,
            });
        }
    }
}

/// Writes `(key, value)` rows of device `d` into `table`, one transaction
/// per chunk.
async fn put_rows<R: RowKey>(
    store: &RedbStore,
    table: Table<R::K, &'static [u8]>,
    d: i32,
    rows: Vec<(R, Vec<u8>)>,
    tally: &mut Tally,
) -> Result<(), StoreError> {
    for chunk in chunks(rows, |(k, v)| k.len() + v.len() + 8) {
        let n = chunk.len();
        let weight = chunk.iter().map(|(k, v)| k.len() + v.len()).sum();
        let chunk = Arc::new(chunk);
        store
            .write(weight, move |tx| {
                for (k, v) in chunk.iter() {
                    k.put(tx, table, d, v)?;
                }
                Ok(())
            })
            .await?;
        tally.add(table.id, n);
    }
    Ok(())
}

/// Rows per table of one device in a store (tables without rows omitted).
fn device_row_counts(s: &Snapshot<'_>, d: i32) -> Result<HashMap<TableId, u64>> {
    struct Count<'a, 'b> {
        s: &'a Snapshot<'b>,
        d: i32,
        out: HashMap<TableId, u64>,
    }
    impl TableVisitor for Count<'_, '_> {
        fn visit<K: StoreKey, V: Value + 'static>(&mut self, table: Table<K, V>) -> Result<()> {
            let Some(bounds) = K::device_range(self.d) else {
                return Ok(());
            };
            let mut n = 0u64;
            self.s.visit(table, bounds, |_, _| {
                n += 1;
                Ok(true)
            })?;
            if n > 0 {
                self.out.insert(table.id, n);
            }
            Ok(())
        }
    }
    let mut c = Count {
        s,
        d,
        out: HashMap::new(),
    };
    catalog::visit_all(&mut c)?;
    Ok(c.out)
}

/// Compares the rows of device `d` in both files; `skipped` rows of the
/// SQLite side (by SQLite table) are not expected in the store.
fn compare_counts(
    d: i32,
    sql: &BTreeMap<&'static str, u64>,
    skipped: &HashMap<&'static str, u64>,
    store: &HashMap<TableId, u64>,
    problems: &mut Vec<String>,
) {
    let mut covered = BTreeSet::new();
    for table in SQL_TABLES {
        let expected = sql.get(table.name).copied().unwrap_or(0)
            - skipped.get(table.name).copied().unwrap_or(0);
        for id in table.into {
            covered.insert(*id as u8);
            let got = store.get(id).copied().unwrap_or(0);
            if got != expected {
                problems.push(format!(
                    "device {d}: SQLite table {} has {expected} row(s) to copy, store table {} has {got}",
                    table.name,
                    id.name()
                ));
            }
        }
    }
    for (id, n) in store {
        if !covered.contains(&(*id as u8)) {
            problems.push(format!(
                "device {d}: store table {} has {n} unexpected row(s)",
                id.name()
            ));
        }
    }
}

// ---------------------------------------------------------------------------
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
/// A new store file is built beside the target (`<file>.importing`) and
/// moved into place only when complete. Importing into an existing store
/// adds the accounts to it; a device id it already holds is refused unless
/// [`ImportOptions::overwrite`], which deletes that account first. A failed
/// import into an existing store deletes the accounts it had begun writing
/// (a replaced account stays deleted: take a backup first).
///
/// SqliteStore opens the SQLite file and applies its pending migrations, as
/// the application would. Import from a file no process is writing to: the
/// tables are read one after another, not in one snapshot.
pub async fn import_sqlite(
    sqlite_path: impl AsRef<Path>,
    redb_path: impl AsRef<Path>,
    options: &ImportOptions,
) -> Result<ImportReport, StoreError> {
    let (sqlite_path, redb_path) = (sqlite_path.as_ref(), redb_path.as_ref());
    match file_kind(sqlite_path)? {
        FileKind::Sqlite => {}
        FileKind::Missing => return Err(invalid(sqlite_path, "no such file").into()),
        FileKind::Empty => return Err(invalid(sqlite_path, "the file is empty").into()),
        FileKind::Other => {
            return Err(invalid(sqlite_path, "not a SQLite database (SqliteStore file)").into());
        }
    }
    let url = sqlite_url(sqlite_path)?;
    let counts = {
        let probe = SqliteStore::new(&url).await?;
        sql_counts(&probe).await?
    };
    let created_file = matches!(file_kind(redb_path)?, FileKind::Missing);
    let work_path = if created_file {
        let mut tmp = redb_path.as_os_str().to_owned();
        tmp.push(".importing");
        let tmp = PathBuf::from(tmp);
        // Left by an import that did not finish.
        for stale in [tmp.clone(), journal_path(&tmp)] {
            match std::fs::remove_file(&stale) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(&stale, e).into());
                }
                _ => {}
            }
        }
        tmp
    } else {
        redb_path.to_path_buf()
    };
    let config = RedbStoreConfig::default().with_auto_compact(None);
    let store = RedbStore::with_config_for_device(&work_path, 1, config).await?;
    let mut begun = Vec::new();
    let result = import_accounts(&store, &url, &counts, options, &mut begun).await;
    match result {
        Ok(accounts) => {
            store.close().await?;
            if created_file {
                crate::maintenance::publish(&work_path, redb_path)?;
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

async fn import_accounts(
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
    let clash: Vec<String> = counts
        .keys()
        .filter(|d| existing.contains(d))
        .map(|d| d.to_string())
        .collect();
    if !clash.is_empty() && !options.overwrite {
        return Err(Error::Invalid(format!(
            "{} already holds device id(s) {}; set `overwrite` to replace them (wa-redb: --overwrite)",
            store.path().display(),
            clash.join(", ")
        ))
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
        let got = store
            .read_blocking(move |s| device_row_counts(s, d))
            .await?;
        let mut problems = Vec::new();
        compare_counts(d, sql, &skipped_per_table, &got, &mut problems);
        if !problems.is_empty() {
            return Err(Error::Invalid(format!(
                "import check failed, the row counts differ: {}",
                problems.join("; ")
            ))
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
async fn import_account(
    src: &SqliteStore,
    store: &RedbStore,
    tally: &mut Tally,
) -> Result<(), StoreError> {
    let d = store.device_id();
    // The device record first: LID mappings require it, as in SqliteStore.
    if let Some(device) = src.load().await? {
        store.save(&device).await?;
        tally.add(TableId::DEVICES, 1);
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
                for (group, jid, has_key) in chunk.iter() {
                    tx.put(
                        SENDER_KEY_DEVICES,
                        (d, group.as_str(), jid.as_str()),
                        has_key,
                    )?;
                }
                Ok(())
            })
            .await?;
        tally.add(TableId::SENDER_KEY_DEVICES, n);
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
        tally.add(TableId::LID_MAPPINGS, chunk.len());
    }

    let rows: Vec<Text2Blob> = select(
        src,
        "SELECT address AS a, message_id AS b, base_key AS v FROM base_keys \
         WHERE device_id = ? ORDER BY rowid",
        d,
    )
    .await?;
    let rows = rows.into_iter().map(|r| ((r.a, r.b), r.v)).collect();
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
    let rows: Vec<SentSql> = select(
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
// Export
// ---------------------------------------------------------------------------

/// Writes the accounts of the store file `redb_path` (all, or only
/// `device`) into the SqliteStore file `sqlite_path` (created if missing),
/// each under its own device id, through SqliteStore's trait methods with
/// [`RedbStore::export_to_backend`] (see there for what the trait cannot
/// carry: sent-message and pending-inbound times become the export time).
///
/// Refuses a device id the SQLite file already has rows for. After each
/// account, the rows are counted in both files, table by table; on any
/// difference or failure the rows of that account are deleted from the
/// SQLite file again and the export fails. `redb_path` must not be open in
/// another process.
pub async fn export_sqlite(
    redb_path: impl AsRef<Path>,
    sqlite_path: impl AsRef<Path>,
    device: Option<i32>,
    options: &ExportOptions,
) -> Result<Vec<ExportReport>, StoreError> {
    let (redb_path, sqlite_path) = (redb_path.as_ref(), sqlite_path.as_ref());
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
    let config = RedbStoreConfig::default().with_auto_compact(None);
    let store = RedbStore::with_config_for_device(redb_path, 1, config).await?;
    let accounts = store.accounts().await?;
    let selected: Vec<(i32, u64)> = match device {
        Some(d) => match accounts.iter().find(|a| a.device_id == d) {
            Some(a) => vec![(d, a.rows)],
            None => {
                return Err(Error::Invalid(format!(
                    "{} has no account with device id {d}",
                    redb_path.display()
                ))
                .into());
            }
        },
        None => accounts.iter().map(|a| (a.device_id, a.rows)).collect(),
    };
    let existing = {
        let probe = SqliteStore::new(&url).await?;
        sql_counts(&probe).await?
    };
    let clash: Vec<String> = selected
        .iter()
        .filter(|(d, _)| existing.contains_key(d))
        .map(|(d, _)| d.to_string())
        .collect();
    if !clash.is_empty() {
        return Err(Error::Invalid(format!(
            "{} already holds rows of device id(s) {}; export into another file",
            sqlite_path.display(),
            clash.join(", ")
        ))
        .into());
    }
    // Progress counts the rows written through the trait: not the phone
    // index, which is not a row of its own in SqliteStore.
    let ids: Vec<i32> = selected.iter().map(|(d, _)| *d).collect();
    let total: u64 = store
        .read_blocking(move |s| {
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
            let got = store
                .read_blocking(move |s| device_row_counts(s, d))
                .await?;
            let mut problems = Vec::new();
            compare_counts(d, &sql, &HashMap::new(), &got, &mut problems);
            if !problems.is_empty() {
                return Err(Error::Invalid(format!(
                    "export check failed, the row counts differ: {}",
                    problems.join("; ")
                ))
                .into());
            }
            Ok::<_, StoreError>(report)
        }
        .await;
        match result {
            Ok(report) => {
                done += report.total_rows;
                reports.push(report);
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
async fn delete_sql_rows(target: &SqliteStore, d: i32) -> Result<(), StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every store table but `meta` receives the rows of exactly one
    /// SqliteStore table.
    #[test]
    fn every_store_table_has_a_source() {
        let mut seen: Vec<TableId> = SQL_TABLES
            .iter()
            .flat_map(|t| t.into.iter().copied())
            .collect();
        seen.sort_by_key(|t| *t as u8);
        let mut all: Vec<TableId> = TableId::ALL
            .iter()
            .copied()
            .filter(|t| *t != TableId::META)
            .collect();
        all.sort_by_key(|t| *t as u8);
        assert_eq!(seen, all);
    }

    #[test]
    fn chunks_split_by_rows_and_bytes() {
        let rows: Vec<usize> = (0..5000).collect();
        let c = chunks(rows, |_| 1);
        assert_eq!(
            c.iter().map(Vec::len).collect::<Vec<_>>(),
            [2000, 2000, 1000]
        );
        let big = chunks(vec![0u8; 3], |_| CHUNK_BYTES);
        assert_eq!(big.len(), 3);
    }
}
