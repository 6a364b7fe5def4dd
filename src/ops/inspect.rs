//! Looking inside a store: accounts, per-table sizes, a full check.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use redb::{ReadableTableMetadata, Value};
use serde::Serialize;
use wacore::store::error::StoreError;

use crate::engine::{Snapshot, files::file_len, journal_path};
use crate::error::{FileOpError, StorageError, StorageResult};

type Result<T, E = FileOpError> = std::result::Result<T, E>;
use crate::handle::RedbStore;
use crate::tables::codec;
use crate::tables::{self, DEVICES, StoreKey, Table, TableId, TableVisitor, every_row};

/// The names of every table of a store file, in catalog order.
pub fn table_names() -> Vec<&'static str> {
    TableId::ALL.iter().map(|t| t.name()).collect()
}

/// One account (device id) found in a store file.
#[derive(Debug, Clone, Serialize)]
pub struct AccountInfo {
    /// The account's device id.
    pub device_id: i32,
    /// Whether the account has a device record (it was `create()`d or
    /// `save()`d); rows without one are leftovers.
    pub has_device_record: bool,
    /// Its phone number JID, from the device record.
    pub phone: Option<String>,
    /// Its LID, from the device record.
    pub lid: Option<String>,
    /// Its push name, from the device record.
    pub push_name: Option<String>,
    /// Rows of this account across all tables.
    pub rows: u64,
}

/// One table of a store file.
#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    /// The table's name (see schema.md).
    pub name: &'static str,
    /// Rows, of every account.
    pub rows: u64,
    /// Bytes of keys and values.
    pub stored_bytes: u64,
    /// Bytes of B-tree overhead.
    pub metadata_bytes: u64,
}

/// An overview of a store file.
#[derive(Debug, Clone, Serialize)]
pub struct StoreInfo {
    /// The store file.
    pub path: PathBuf,
    /// Random identity of the file (hex), shared with its journal.
    pub file_id: String,
    /// The file's size.
    pub file_bytes: u64,
    /// The journal, present while the store is open.
    pub journal_bytes: Option<u64>,
    /// The file's schema version (after any migration of this open).
    pub schema_version: u32,
    /// The durability in effect (`off`, `normal`, `full`).
    pub synchronous: &'static str,
    /// Journal records acknowledged since the last checkpoint.
    pub pending_journal_records: u64,
    /// Journal records replayed when this process opened the file.
    pub recovered_records: u64,
    /// Why writes are refused, if they are.
    pub halted: Option<String>,
    /// How the file was seen, if it was opened to look at it.
    pub look: Option<crate::engine::LookReport>,
    /// Every account in the file.
    pub accounts: Vec<AccountInfo>,
    /// Every table, in catalog order.
    pub tables: Vec<TableInfo>,
}

/// Counts rows per device in every table, and sizes every table.
struct Census<'a, 'b> {
    snapshot: &'a Snapshot<'b>,
    rows_per_device: BTreeMap<i32, u64>,
    tables: Vec<TableInfo>,
}

impl TableVisitor for Census<'_, '_> {
    type Error = StorageError;

    fn visit<K: StoreKey, V: Value + 'static>(
        &mut self,
        id: TableId,
        table: Table<K, V>,
    ) -> StorageResult<()> {
        let path = self.snapshot.path();
        let t = self
            .snapshot
            .txn()
            .open_table(table.def)
            .map_err(|e| StorageError::storage(path, e))?;
        let stats = t.stats().map_err(|e| StorageError::storage(path, e))?;
        let rows = t.len().map_err(|e| StorageError::storage(path, e))?;
        self.tables.push(TableInfo {
            name: id.name(),
            rows,
            stored_bytes: stats.stored_bytes(),
            metadata_bytes: stats.metadata_bytes(),
        });
        if id == TableId::META {
            return Ok(());
        }
        let per_device = &mut self.rows_per_device;
        self.snapshot.visit(table, every_row::<K>(), |k, _| {
            if let Some(d) = K::device_of(&k) {
                *per_device.entry(d).or_default() += 1;
            }
            Ok(true)
        })
    }
}

fn census(s: &Snapshot<'_>) -> Result<(Vec<AccountInfo>, Vec<TableInfo>)> {
    let mut c = Census {
        snapshot: s,
        rows_per_device: BTreeMap::new(),
        tables: Vec::new(),
    };
    tables::visit_all(&mut c)?;
    let mut accounts = Vec::new();
    for (&device_id, &rows) in &c.rows_per_device {
        let device = s
            .get(DEVICES, device_id, codec::decode_device)?
            .and_then(|d| d.ok());
        accounts.push(AccountInfo {
            device_id,
            has_device_record: device.is_some(),
            phone: device
                .as_ref()
                .and_then(|d| d.pn.as_ref())
                .map(|j| j.to_string()),
            lid: device
                .as_ref()
                .and_then(|d| d.lid.as_ref())
                .map(|j| j.to_string()),
            push_name: device.map(|d| d.push_name),
            rows,
        });
    }
    Ok((accounts, c.tables))
}

/// Decodes every value of every table, collecting what does not decode.
struct Validate<'a, 'b> {
    snapshot: &'a Snapshot<'b>,
    rows: u64,
    problems: Vec<String>,
}

/// Checks one stored value against its table's encoding.
pub(crate) fn validate_value(table: TableId, bytes: &[u8]) -> StorageResult<()> {
    use crate::tables::codec::*;
    use wacore::appstate::hash::HashState;
    use wacore::store::traits::{AppStateSyncKey, DeviceListRecord};
    let what = table.name();
    match table {
        TableId::DEVICES => decode_device(bytes).map(drop),
        TableId::IDENTITIES if bytes.len() != 32 => Err(StorageError::decode(what, "not 32 bytes")),
        TableId::PREKEYS => decode::<PrekeyRow>(what, bytes).map(drop),
        TableId::SYNC_KEYS => decode::<AppStateSyncKey>(what, bytes).map(drop),
        TableId::APP_STATE_VERSIONS => decode::<HashState>(what, bytes).map(drop),
        TableId::MUTATION_MACS => decode::<MutationMacRow>(what, bytes).map(drop),
        TableId::LID_MAPPINGS => decode::<LidMappingRow>(what, bytes).map(drop),
        TableId::DEVICE_LISTS => decode::<DeviceListRecord>(what, bytes).map(drop),
        TableId::TC_TOKENS => decode::<TcTokenRow>(what, bytes).map(drop),
        TableId::SENT_MESSAGES => decode::<SentMessageRow>(what, bytes).map(drop),
        TableId::PENDING_INBOUND => decode::<PendingInboundRow>(what, bytes).map(drop),
        TableId::MSG_SECRETS => decode::<MsgSecretRow>(what, bytes).map(drop),
        TableId::BASE_KEYS => decode::<BaseKeyRow>(what, bytes).map(drop),
        _ => Ok(()),
    }
}

impl TableVisitor for Validate<'_, '_> {
    type Error = StorageError;

    fn visit<K: StoreKey, V: Value + 'static>(
        &mut self,
        id: TableId,
        table: Table<K, V>,
    ) -> StorageResult<()> {
        let (rows, problems) = (&mut self.rows, &mut self.problems);
        self.snapshot.visit(table, every_row::<K>(), |_, v| {
            *rows += 1;
            if let Err(e) = validate_value(id, V::as_bytes(&v).as_ref())
                && problems.len() < 100
            {
                problems.push(format!("{}: {e}", id.name()));
            }
            Ok(true)
        })
    }
}

/// The result of [`RedbStore::check_file`].
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The file checked.
    pub path: PathBuf,
    /// How the file was seen (in use by another process, crashed...).
    pub look: crate::engine::LookReport,
    /// redb's page checksums verified (and the allocator state rebuilt).
    pub pages_ok: bool,
    /// Records decoded.
    pub rows_checked: u64,
    /// Records that do not decode (at most 100 listed).
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Whether the file is sound: every page and every record.
    pub fn is_ok(&self) -> bool {
        self.pages_ok && self.problems.is_empty()
    }
}

impl RedbStore {
    /// The accounts in this store file, with their row counts. Reads the
    /// whole file: an operations tool, not for hot paths.
    pub async fn accounts(&self) -> Result<Vec<AccountInfo>, StoreError> {
        self.read_for_op(|s| census(s).map(|(accounts, _)| accounts))
            .await
    }

    /// An overview of the whole file (every account). Reads the whole file.
    pub async fn info(&self) -> Result<StoreInfo, StoreError> {
        let engine = self.engine.clone();
        self.read_for_op(move |s| {
            let (accounts, tables) = census(s)?;
            let meta = crate::engine::read_meta(&*engine.database()?, &engine.path)?;
            let status = &engine.status;
            let lsn = status.lsn.load(Ordering::Relaxed);
            let checkpoint = status.checkpoint_lsn.load(Ordering::Relaxed);
            Ok(StoreInfo {
                path: engine.path.clone(),
                file_id: engine.file_id.iter().map(|b| format!("{b:02x}")).collect(),
                file_bytes: file_len(&engine.path)?,
                journal_bytes: std::fs::metadata(journal_path(&engine.path))
                    .ok()
                    .map(|m| m.len()),
                schema_version: meta.schema_version,
                synchronous: engine.config().synchronous.as_str(),
                pending_journal_records: lsn - checkpoint,
                recovered_records: engine.recovery.records_replayed,
                halted: engine.halted().map(|cause| cause.to_string()),
                look: engine.look.as_ref().map(|look| look.report.clone()),
                accounts,
                tables,
            })
        })
        .await
    }

    /// Verifies a store file without writing to it (see
    /// [`RedbStore::open_to_look`]; it may be in use): checks every page
    /// checksum (repairing the allocator state in memory if needed),
    /// applies the journal in memory if the last process crashed, and
    /// decodes every record.
    pub fn check_file(path: impl AsRef<Path>) -> Result<CheckReport, StoreError> {
        Self::check_file_with(path, &crate::config::RedbStoreConfig::default())
    }

    /// [`RedbStore::check_file`] with the key of an encrypted store
    /// ([`crate::config::RedbStoreConfig::encryption`]).
    pub fn check_file_with(
        path: impl AsRef<Path>,
        config: &crate::config::RedbStoreConfig,
    ) -> Result<CheckReport, StoreError> {
        let path = crate::engine::canonical(path.as_ref())?;
        let engine = crate::engine::Engine::open_to_look(
            crate::tables::CATALOG,
            &path,
            true,
            config.encryption.as_ref(),
        )?;
        let look = engine
            .look
            .as_ref()
            .map(|l| l.report.clone())
            .unwrap_or_default();
        let pages_ok = look.pages_ok.unwrap_or(true);
        let snapshot = engine.snapshot()?;
        let mut v = Validate {
            snapshot: &snapshot,
            rows: 0,
            problems: Vec::new(),
        };
        crate::engine::contain_panic(&path, || tables::visit_all(&mut v))?;
        Ok(CheckReport {
            path: path.clone(),
            look,
            pages_ok,
            rows_checked: v.rows,
            problems: v.problems,
        })
    }
}
