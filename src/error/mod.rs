//! Error types.
//!
//! Inside the crate each operation has its own enum (`operation.rs`: open,
//! write, read, checkpoint, whole-file operations) over the file's own
//! failures (`storage.rs`), as redb has. Every failure the store reports is
//! one variant of the flat public [`Error`] they all convert into, and every
//! variant that concerns the file names it. At the trait boundary an `Error`
//! becomes a [`wacore::store::error::StoreError`] (see the `From` impl below)
//! with the `Error` kept as its source, so callers can downcast for detail.
//!
//! Messages deliberately avoid the words "busy" and "locked": whatsapp-rust
//! retries app-state sync whenever an error's text contains them
//! (`StoreError::is_database_busy_or_locked`), and none of our errors is
//! cured by retrying.

use std::path::PathBuf;
use std::sync::Arc;

use wacore::store::error::StoreError;

mod key_problem;
mod operation;
mod storage;

pub(crate) use key_problem::Damaged;
pub use key_problem::KeyProblem;
pub(crate) use operation::{CheckpointError, FileOpError, OpenError, ReadError, WriteError};
pub(crate) use storage::{StorageError, StorageResult};

/// What went wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path given to a constructor cannot name a store file (or, for
    /// an operation, names no file, or one that must not be replaced).
    #[error("{}{reason}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it cannot name a store file.
        reason: String,
    },

    /// A configuration value is out of range.
    #[error("invalid store configuration: {0}")]
    InvalidConfig(String),

    /// Another process holds the file open.
    #[error(
        "{}: the store file is open in another process (this open waited the configured time for it to let go); a store file can be open in only one process at a time: stop that process first, or have it write a copy with `RedbStore::backup_to` and use the copy",
        .path.display()
    )]
    AlreadyOpen {
        /// The file the error is about.
        path: PathBuf,
    },

    /// The file exists but is not a store written by this crate.
    #[error("{}: not a whatsapp-rust-redb-storage store: {reason}", .path.display())]
    NotAStore {
        /// The file the error is about.
        path: PathBuf,
        /// What the file is instead, and what to do.
        reason: String,
    },

    /// The file's encryption and the key given do not go together.
    #[error("{}: {problem}", .path.display())]
    Key {
        /// The file the error is about.
        path: PathBuf,
        /// What is wrong, and what to do.
        problem: KeyProblem,
    },

    /// The file was written by a newer version of this crate.
    #[error(
        "{}: store schema version {found} is newer than the newest this build understands ({supported}); upgrade whatsapp-rust-redb-storage",
        .path.display()
    )]
    SchemaTooNew {
        /// The file the error is about.
        path: PathBuf,
        /// The file's schema version.
        found: u32,
        /// The newest schema version this build understands.
        supported: u32,
    },

    /// A SQLite file given to import is not a whatsapp-rust SqliteStore
    /// database (or SQLite cannot read it). Nothing was imported; the file
    /// was not written.
    #[error(
        "{}: not a whatsapp-rust SqliteStore database ({reason}); nothing was imported and the file was not changed; give the SQLite file the application opens with SqliteStore",
        .path.display()
    )]
    NotSqliteStore {
        /// The SQLite file.
        path: PathBuf,
        /// What it is instead.
        reason: String,
    },

    /// A SqliteStore database has migrations this build does not know: a
    /// newer whatsapp-rust-sqlite-storage wrote it.
    #[error(
        "{} was written by a newer whatsapp-rust-sqlite-storage (unknown migrations: {}); nothing was imported and the file was not changed; upgrade wa-redb / whatsapp-rust-redb-storage",
        .path.display(),
        .unknown.join(", ")
    )]
    SqliteSchemaTooNew {
        /// The SQLite file.
        path: PathBuf,
        /// The migrations this build does not know.
        unknown: Vec<String>,
    },

    /// The file is damaged.
    #[error(
        "{}: the store file is damaged: {detail}; `wa-redb check` says what is damaged, `wa-redb restore` puts a backup in its place",
        .path.display()
    )]
    Corrupted {
        /// The file the error is about.
        path: PathBuf,
        /// What is damaged.
        detail: String,
    },

    /// An operating-system I/O error (disk full, permission denied, EIO...).
    #[error("{}: I/O error: {source} (check the path, its permissions and the disk)", .path.display())]
    Io {
        /// The file the error is about.
        path: PathBuf,
        /// The operating system's error (shared, so that the error is
        /// `Clone`: one failure can be reported to every caller it failed).
        #[source]
        source: Arc<std::io::Error>,
    },

    /// The journal could not grow (usually a full disk). Nothing of the
    /// write was applied; the store keeps working and the write can be
    /// retried once there is space.
    #[error(
        "{}: cannot reserve journal space, nothing was written (disk full?): {source}",
        .path.display()
    )]
    NoSpace {
        /// The file the error is about.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },

    /// An error reported by redb.
    #[error("{}: storage error: {source}", .path.display())]
    Storage {
        /// The file the error is about.
        path: PathBuf,
        /// redb's error.
        #[source]
        source: Arc<redb::Error>,
    },

    /// An earlier I/O failure made the store refuse further writes.
    #[error(
        "{}: the store stopped accepting writes after an earlier failure ({cause}); acknowledged data is safe on disk; once the cause is gone (space freed, the device back) the next write reopens the file by itself, or call `RedbStore::reopen_if_halted` to see why it cannot",
        .path.display()
    )]
    Halted {
        /// The file the error is about.
        path: PathBuf,
        /// The failure that stopped writes.
        cause: Box<Error>,
    },

    /// The write was not made because another write committed with it (in
    /// the same batch) failed after changing rows, which no write should
    /// (a bug). Nothing of the batch was written; the store carries on, so
    /// retrying is safe.
    #[error(
        "{}: not written: another write of the same batch failed half-way (a bug of whatsapp-rust-redb-storage, please report it); nothing of the batch was written, so retrying is safe",
        .path.display()
    )]
    BatchDropped {
        /// The file the error is about.
        path: PathBuf,
    },

    /// A write to a store opened only to look at it.
    #[error(
        "{}: opened read-only to look at it (wa-redb info/dump/check/export); writes are refused",
        .path.display()
    )]
    OpenedToLook {
        /// The file the error is about.
        path: PathBuf,
    },

    /// The store was closed.
    #[error("{}: the store has been closed; open it again to use it", .path.display())]
    Closed {
        /// The file the error is about.
        path: PathBuf,
    },

    /// A value exceeds the configured maximum size.
    #[error("{what} of {len} bytes exceeds the maximum value size of {limit} bytes")]
    ValueTooLarge {
        /// What the value is (a session, a payload...).
        what: &'static str,
        /// Its size in bytes.
        len: usize,
        /// The configured `max_value_size`.
        limit: usize,
    },

    /// A stored record could not be decoded.
    #[error("{}cannot decode {what}: {detail}", .path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Decode {
        /// The store file, once the error reaches the caller.
        path: Option<PathBuf>,
        /// What was being decoded.
        what: &'static str,
        /// Why it does not decode.
        detail: String,
    },

    /// `create()` found an existing device record.
    #[error("device {device_id} already exists in this store")]
    DeviceExists {
        /// The device id.
        device_id: i32,
    },

    /// A LID mapping was written for a device that has no device record
    /// (SqliteStore refuses this through a foreign key; so do we).
    #[error(
        "device {device_id} has no device record; create() or save() it before storing LID mappings"
    )]
    DeviceMissing {
        /// The device id.
        device_id: i32,
    },

    /// The file is open in this process (another handle, or another thread
    /// opened it meanwhile), and the operation needs it closed.
    #[error("{}: open in this process; close every handle of it first", .path.display())]
    OpenHere {
        /// The file the error is about.
        path: PathBuf,
    },

    /// A restore whose backup is the target itself.
    #[error(
        "{}: the backup and the target are the same file; restore into another path",
        .path.display()
    )]
    SameFile {
        /// The file the error is about.
        path: PathBuf,
    },

    /// An operation named an account the file does not hold.
    #[error("{}: no account with device id {device_id}", .path.display())]
    NoSuchAccount {
        /// The file the error is about.
        path: PathBuf,
        /// The device id asked for.
        device_id: i32,
    },

    /// An import or export whose target already holds accounts of the same
    /// device ids; nothing was written.
    #[error(
        "{} already holds device id(s) {}; nothing was written; import or export into another file, or set `overwrite` to replace them (wa-redb: --overwrite)",
        .path.display(),
        .device_ids.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")
    )]
    AccountsExist {
        /// The target file.
        path: PathBuf,
        /// The device ids it already holds.
        device_ids: Vec<i32>,
    },

    /// `export_to_backend` into a target that already has this account's
    /// device record.
    #[error(
        "the target already has a device record for device id {device_id}; export into an empty target (or set merge_into_existing)"
    )]
    TargetHasAccount {
        /// The device id.
        device_id: i32,
    },

    /// The row counts read back after an import or export differ from
    /// those of the source.
    #[error("{operation} check failed, the row counts differ: {}", .problems.join("; "))]
    CountsDiffer {
        /// "import" or "export".
        operation: &'static str,
        /// Each difference, naming its table and account.
        problems: Vec<String>,
    },

    /// `dump` asked for a table that does not exist.
    #[error("unknown table {name:?}; the tables are: {}", .known.join(", "))]
    UnknownTable {
        /// The name asked for.
        name: String,
        /// The table names there are.
        known: Vec<&'static str>,
    },

    /// No chain of migrations leads from the file's schema version to this
    /// build's (a build that lacks a step: a bug).
    #[error(
        "{}: no migration from schema version {from} to {to}; open it with the version of whatsapp-rust-redb-storage that wrote it",
        .path.display()
    )]
    NoMigration {
        /// The file the error is about.
        path: PathBuf,
        /// The version a step is missing from.
        from: u32,
        /// The version it should lead to.
        to: u32,
    },

    /// The journal holds unapplied writes of a schema version this build
    /// cannot replay.
    #[error(
        "{}: journal {} holds unapplied writes of schema version {found}; open the store once with the version of whatsapp-rust-redb-storage that wrote it",
        .path.display(),
        .journal.display()
    )]
    JournalSchema {
        /// The store file.
        path: PathBuf,
        /// Its journal.
        journal: PathBuf,
        /// The journal's schema version.
        found: u32,
    },

    /// A journal record could not be encrypted (the cipher refused the
    /// buffer: a bug). Nothing of the write was applied.
    #[error(
        "{}: cannot encrypt a journal record ({detail}); nothing was written (a bug of whatsapp-rust-redb-storage, please report it)",
        .path.display()
    )]
    Encryption {
        /// The file the error is about.
        path: PathBuf,
        /// The cipher's error.
        detail: String,
    },

    /// A replica target (feature `replica`) could not be used: the
    /// server is unreachable or refused, the bucket or object is missing,
    /// the credentials are wrong. Nothing local was changed.
    #[error("replica {target}: {reason}")]
    Replica {
        /// The target's URL.
        target: String,
        /// What failed, and why.
        reason: String,
    },

    /// A write to a replicated store (feature `replica`) was not
    /// confirmed by the replica in time, or replication has stopped. The
    /// write may be in the local store: it is uploaded once the replica
    /// answers, unless `reason` says replication stopped.
    #[error("{}: a write was not replicated to {target}: {reason}", path.display())]
    NotReplicated {
        /// The store file.
        path: PathBuf,
        /// The replica's URL.
        target: String,
        /// What failed, and why.
        reason: String,
    },

    /// A look at a store in use could not get a steady copy of it: the
    /// store was checkpointed during every attempt.
    #[error(
        "{}: the store was checkpointed during each of {attempts} attempts to copy it for a look; try again, or have the application write a copy with `RedbStore::backup_to`",
        .path.display()
    )]
    Unsteady {
        /// The file the error is about.
        path: PathBuf,
        /// How many copies were tried.
        attempts: u32,
    },
}

impl Error {
    /// This crate's error inside a [`StoreError`] a trait method returned,
    /// if there is one. wacore 0.7's `StoreError` prints a fixed text for
    /// most of its variants ("database connection error", "database
    /// operation error"); the file, the cause and what to do are in this
    /// error, which the `StoreError` carries as its source:
    ///
    /// ```
    /// # use whatsapp_rust_redb_storage::Error;
    /// # fn report(e: &wacore::store::error::StoreError) -> String {
    /// match Error::find_in(e) {
    ///     Some(ours) => ours.to_string(),
    ///     None => e.to_string(),
    /// }
    /// # }
    /// ```
    pub fn find_in(e: &StoreError) -> Option<&Error> {
        let mut layer: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(l) = layer {
            if let Some(ours) = l.downcast_ref::<Error>() {
                return Some(ours);
            }
            layer = l.source();
        }
        None
    }
}

impl From<Error> for StoreError {
    fn from(err: Error) -> Self {
        match err {
            Error::InvalidPath { .. } | Error::InvalidConfig(_) => {
                StoreError::InvalidConfig(err.to_string())
            }
            Error::AlreadyOpen { .. }
            | Error::Key { .. }
            | Error::NotAStore { .. }
            | Error::NotSqliteStore { .. }
            | Error::Closed { .. } => StoreError::Connection(Box::new(err)),
            Error::SchemaTooNew { .. } | Error::SqliteSchemaTooNew { .. } => {
                StoreError::Migration(Box::new(err))
            }
            Error::ValueTooLarge { .. }
            | Error::OpenedToLook { .. }
            | Error::OpenHere { .. }
            | Error::SameFile { .. }
            | Error::NoSuchAccount { .. }
            | Error::AccountsExist { .. }
            | Error::TargetHasAccount { .. }
            | Error::UnknownTable { .. } => StoreError::Validation(err.to_string()),
            Error::NoMigration { .. } | Error::JournalSchema { .. } => {
                StoreError::Migration(Box::new(err))
            }
            Error::Decode { .. } => StoreError::Serialization(Box::new(err)),
            Error::Replica { .. } | Error::NotReplicated { .. } => {
                StoreError::Connection(Box::new(err))
            }
            _ => StoreError::Database(Box::new(err)),
        }
    }
}

/// The trait boundary for each operation's error: through the umbrella
/// [`Error`], which the `StoreError` keeps as its source.
macro_rules! into_store_error {
    ($($op:ty),*) => {$(
        impl From<$op> for StoreError {
            fn from(e: $op) -> Self {
                Error::from(e).into()
            }
        }
    )*};
}

into_store_error!(
    StorageError,
    OpenError,
    WriteError,
    ReadError,
    CheckpointError,
    FileOpError
);
