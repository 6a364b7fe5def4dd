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

use crate::config::RedbStoreConfig;
use crate::engine::Snapshot;
use crate::error::{FileOpError, StorageError, StorageResult};

type Result<T, E = FileOpError> = std::result::Result<T, E>;
use crate::handle::RedbStore;
use crate::ops::export::{ExportOptions, ExportReport, Progress, ProgressFn, hex};
use crate::tables::codec::{
    BaseKeyRow, MsgSecretRow, MutationMacRow, PendingInboundRow, PrekeyRow, SentMessageRow,
    TcTokenRow, encode_named, encode_row,
};
use crate::tables::{self, StoreKey, Table, TableId, TableVisitor};
use crate::tables::{
    APP_STATE_VERSIONS, BASE_KEYS, DEVICE_LISTS, GROUP_METADATA, IDENTITIES, MSG_SECRETS,
    MUTATION_MACS, PENDING_INBOUND, PREKEYS, SENDER_KEY_DEVICES, SENDER_KEYS, SENT_MESSAGES,
    SESSIONS, SIGNED_PREKEYS, SYNC_KEYS, TC_TOKENS,
};

/// A SqliteStore table, the column naming its account, and the store
/// tables its rows become (a LID mapping is also a row of the phone index).
pub(crate) struct SqlTable {
    pub(crate) name: &'static str,
    pub(crate) device_column: &'static str,
    pub(crate) into: &'static [TableId],
}

pub(crate) const fn t(name: &'static str, into: &'static [TableId]) -> SqlTable {
    SqlTable {
        name,
        device_column: "device_id",
        into,
    }
}

/// Every SqliteStore 0.7 table.
pub(crate) const SQL_TABLES: &[SqlTable] = &[
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
    /// The key of the store written: a new store is created encrypted with
    /// it, an existing encrypted one opens with it.
    pub key: Option<crate::config::EncryptionKey>,
}

impl ImportOptions {
    /// Sets [`ImportOptions::key`].
    pub fn with_key(mut self, key: crate::config::EncryptionKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Replace accounts the store file already holds (refused otherwise).
    pub fn with_overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Reports progress to `progress` as rows are copied.
    pub fn with_progress(mut self, progress: ProgressFn) -> Self {
        self.progress = Some(progress);
        self
    }
}

/// One imported account.
#[derive(Debug, Clone, Serialize)]
pub struct AccountImport {
    /// The account's device id (the same in both files).
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
    /// The SQLite file read (never written).
    pub source: PathBuf,
    /// The store file written.
    pub target: PathBuf,
    /// The store file did not exist and was created.
    pub created_file: bool,
    /// Every account imported.
    pub accounts: Vec<AccountImport>,
    /// Rows written across all accounts.
    pub total_rows: u64,
}

pub(crate) fn db_err(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Database(Box::new(e))
}

pub(crate) fn invalid(path: &Path, reason: impl Into<String>) -> FileOpError {
    FileOpError::InvalidPath {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

pub(crate) const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// What is at `path`: nothing, an empty file, a SQLite database, or
/// something else.
pub(crate) enum FileKind {
    Missing,
    Empty,
    Sqlite,
    Other,
}

pub(crate) fn file_kind(path: &Path) -> Result<FileKind> {
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileKind::Missing),
        Err(e) => return Err(StorageError::io(path, e).into()),
    };
    if file
        .metadata()
        .map_err(|e| StorageError::io(path, e))?
        .is_dir()
    {
        return Err(invalid(path, "it is a directory, not a file"));
    }
    let mut head = Vec::with_capacity(16);
    (&mut file)
        .take(16)
        .read_to_end(&mut head)
        .map_err(|e| StorageError::io(path, e))?;
    Ok(match head.as_slice() {
        [] => FileKind::Empty,
        h if h == SQLITE_MAGIC => FileKind::Sqlite,
        _ => FileKind::Other,
    })
}

/// The URL SqliteStore is opened with: the plain path.
pub(crate) fn sqlite_url(path: &Path) -> Result<String> {
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

mod export;
mod import;
mod rows;
mod source;
mod sql;

pub use export::export_sqlite;
pub use import::import_sqlite;
use rows::*;
use source::*;
use sql::*;

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
