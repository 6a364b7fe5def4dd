//! One error enum per operation, as redb has (`DatabaseError`,
//! `CommitError`, ...): what an open, a write, a read, a checkpoint or a
//! whole-file operation can fail with, and nothing else. Each holds the
//! file's own failures as its `Storage` variant ([`StorageError`]). The
//! handle turns them into the flat public [`Error`] (the `From` impls
//! below, no information lost) and that into wacore's `StoreError`, once,
//! at the trait boundary.
//!
//! Messages are the umbrella [`Error`]'s: each enum displays as the
//! `Error` it becomes.

use std::path::{Path, PathBuf};

use super::{Error, KeyProblem, StorageError};

/// Why a store file could not be opened (to use it, or to look at it).
#[derive(Debug, Clone)]
pub(crate) enum OpenError {
    /// The path cannot name a store file.
    InvalidPath {
        path: String,
        reason: String,
    },
    /// A configuration value is out of range.
    InvalidConfig(String),
    /// Another process holds the file.
    AlreadyOpen {
        path: PathBuf,
    },
    /// The file is not a store of this crate.
    NotAStore {
        path: PathBuf,
        reason: String,
    },
    /// A newer build wrote the file.
    SchemaTooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// No chain of migrations leads to this build's schema.
    NoMigration {
        path: PathBuf,
        from: u32,
        to: u32,
    },
    /// The journal holds writes of a schema this build cannot replay.
    JournalSchema {
        path: PathBuf,
        journal: PathBuf,
        found: u32,
    },
    /// A look could not get a steady copy of a store in use.
    Unsteady {
        path: PathBuf,
        attempts: u32,
    },
    /// A second opener asked for stronger durability, and the checkpoint
    /// that raises it for every handle failed.
    Checkpoint(CheckpointError),
    Storage(StorageError),
}

impl OpenError {
    pub(crate) fn key(path: &Path, problem: KeyProblem) -> Self {
        StorageError::Key {
            path: path.to_path_buf(),
            problem,
        }
        .into()
    }

    pub(crate) fn not_a_store(path: &Path, reason: impl Into<String>) -> Self {
        OpenError::NotAStore {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// The same error, about `path` instead (for errors about a temporary
    /// file the caller never named).
    pub(crate) fn with_path(self, path: &Path) -> Self {
        match self {
            OpenError::AlreadyOpen { .. } => OpenError::AlreadyOpen {
                path: path.to_path_buf(),
            },
            OpenError::NotAStore { reason, .. } => OpenError::not_a_store(path, reason),
            OpenError::Storage(e) => OpenError::Storage(e.with_path(path)),
            other => other,
        }
    }
}

/// Why a write (a batch of the writer, or one caller's part of it) was
/// not made.
#[derive(Debug, Clone)]
pub(crate) enum WriteError {
    /// The store was closed.
    Closed {
        path: PathBuf,
    },
    /// The store was opened only to look at it.
    OpenedToLook {
        path: PathBuf,
    },
    /// A value over the configured maximum size.
    ValueTooLarge {
        what: &'static str,
        len: usize,
        limit: usize,
    },
    /// An earlier failure stopped the writer.
    Halted {
        path: PathBuf,
        cause: Box<StorageError>,
    },
    /// Another write of the same batch failed half-way (a bug).
    BatchDropped {
        path: PathBuf,
    },
    /// `create()` found an existing device record.
    DeviceExists {
        device_id: i32,
    },
    /// A row for a device that has no device record.
    DeviceMissing {
        device_id: i32,
    },
    /// A replicated store's replica did not store the write (in time).
    NotReplicated {
        path: PathBuf,
        target: String,
        reason: String,
    },
    Storage(StorageError),
}

impl CheckpointError {
    /// Checkpoints refused after `cause` halted the writer.
    pub(crate) fn halted(path: &Path, cause: &StorageError) -> Self {
        CheckpointError::Halted {
            path: path.to_path_buf(),
            cause: Box::new(cause.clone()),
        }
    }
}

impl WriteError {
    /// Writes refused after `cause` halted the writer.
    pub(crate) fn halted(path: &Path, cause: &StorageError) -> Self {
        WriteError::Halted {
            path: path.to_path_buf(),
            cause: Box::new(cause.clone()),
        }
    }
}

/// Why a read failed.
#[derive(Debug, Clone)]
pub(crate) enum ReadError {
    /// The store was closed.
    Closed {
        path: PathBuf,
    },
    /// A halted store reopening its file (or failing to) has none to read.
    Halted {
        path: PathBuf,
        cause: Box<StorageError>,
    },
    Storage(StorageError),
}

/// Why a checkpoint (or a close, which ends with one) failed.
#[derive(Debug, Clone)]
pub(crate) enum CheckpointError {
    /// The store was closed.
    Closed {
        path: PathBuf,
    },
    /// An earlier failure stopped the writer.
    Halted {
        path: PathBuf,
        cause: Box<StorageError>,
    },
    Storage(StorageError),
}

/// Why a whole-file operation (backup, restore, compaction, deleting an
/// account, rekeying, salvage, import, export, dump) failed. It opens,
/// reads, writes and checkpoints stores, whose errors it carries as they
/// are.
#[derive(Debug, Clone)]
pub(crate) enum FileOpError {
    /// A path that names no file, or one that must not be replaced.
    InvalidPath {
        path: String,
        reason: String,
    },
    /// The file is open in this process and must be closed first.
    OpenHere {
        path: PathBuf,
    },
    /// A restore whose backup is the target itself.
    SameFile {
        path: PathBuf,
    },
    /// No account with this device id.
    #[cfg(feature = "sqlite")]
    NoSuchAccount {
        path: PathBuf,
        device_id: i32,
    },
    /// The target already holds these accounts.
    #[cfg(feature = "sqlite")]
    AccountsExist {
        path: PathBuf,
        device_ids: Vec<i32>,
    },
    /// `export_to_backend` into a target with this account.
    TargetHasAccount {
        device_id: i32,
    },
    /// Row counts read back differ from the source's.
    #[cfg(feature = "sqlite")]
    CountsDiffer {
        operation: &'static str,
        problems: Vec<String>,
    },
    /// `dump` of a table that does not exist.
    #[cfg(feature = "cli")]
    UnknownTable {
        name: String,
        known: Vec<&'static str>,
    },
    /// Not a SqliteStore database.
    #[cfg(feature = "sqlite")]
    NotSqliteStore {
        path: PathBuf,
        reason: String,
    },
    /// A SqliteStore database with migrations this build does not know.
    #[cfg(feature = "sqlite")]
    SqliteSchemaTooNew {
        path: PathBuf,
        unknown: Vec<String>,
    },
    /// A replica target failed (unreachable, refused, not found...).
    #[cfg(feature = "replica")]
    Replica {
        target: String,
        reason: String,
    },
    Open(OpenError),
    Write(WriteError),
    Read(ReadError),
    Checkpoint(CheckpointError),
    Storage(StorageError),
}

/// `From<StorageError>` and `Display` for each operation's enum, and
/// `std::error::Error`: the same for all of them.
macro_rules! operation_error {
    ($($op:ident),*) => {$(
        impl From<StorageError> for $op {
            fn from(e: StorageError) -> Self {
                $op::Storage(e)
            }
        }

        impl std::fmt::Display for $op {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                Error::from(self.clone()).fmt(f)
            }
        }

        impl std::error::Error for $op {}
    )*};
}

operation_error!(WriteError, ReadError, CheckpointError, FileOpError);

impl From<StorageError> for OpenError {
    /// redb's "already open" met while opening is this open's own failure
    /// (another process holds the file), whichever helper met it.
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Redb { path, source }
                if matches!(*source, redb::Error::DatabaseAlreadyOpen) =>
            {
                OpenError::AlreadyOpen { path }
            }
            e => OpenError::Storage(e),
        }
    }
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Error::from(self.clone()).fmt(f)
    }
}

impl std::error::Error for OpenError {}

impl From<CheckpointError> for OpenError {
    fn from(e: CheckpointError) -> Self {
        OpenError::Checkpoint(e)
    }
}

impl From<OpenError> for FileOpError {
    fn from(e: OpenError) -> Self {
        FileOpError::Open(e)
    }
}

impl From<WriteError> for FileOpError {
    fn from(e: WriteError) -> Self {
        FileOpError::Write(e)
    }
}

impl From<ReadError> for FileOpError {
    fn from(e: ReadError) -> Self {
        FileOpError::Read(e)
    }
}

impl From<CheckpointError> for FileOpError {
    fn from(e: CheckpointError) -> Self {
        FileOpError::Checkpoint(e)
    }
}

fn halted(path: PathBuf, cause: StorageError) -> Error {
    Error::Halted {
        path,
        cause: Box::new(cause.into()),
    }
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::InvalidPath { path, reason } => Error::InvalidPath { path, reason },
            OpenError::InvalidConfig(what) => Error::InvalidConfig(what),
            OpenError::AlreadyOpen { path } => Error::AlreadyOpen { path },
            OpenError::NotAStore { path, reason } => Error::NotAStore { path, reason },
            OpenError::SchemaTooNew {
                path,
                found,
                supported,
            } => Error::SchemaTooNew {
                path,
                found,
                supported,
            },
            OpenError::NoMigration { path, from, to } => Error::NoMigration { path, from, to },
            OpenError::JournalSchema {
                path,
                journal,
                found,
            } => Error::JournalSchema {
                path,
                journal,
                found,
            },
            OpenError::Unsteady { path, attempts } => Error::Unsteady { path, attempts },
            OpenError::Checkpoint(e) => e.into(),
            OpenError::Storage(e) => e.into(),
        }
    }
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Closed { path } => Error::Closed { path },
            WriteError::OpenedToLook { path } => Error::OpenedToLook { path },
            WriteError::ValueTooLarge { what, len, limit } => {
                Error::ValueTooLarge { what, len, limit }
            }
            WriteError::Halted { path, cause } => halted(path, *cause),
            WriteError::BatchDropped { path } => Error::BatchDropped { path },
            WriteError::DeviceExists { device_id } => Error::DeviceExists { device_id },
            WriteError::DeviceMissing { device_id } => Error::DeviceMissing { device_id },
            WriteError::NotReplicated {
                path,
                target,
                reason,
            } => Error::NotReplicated {
                path,
                target,
                reason,
            },
            WriteError::Storage(e) => e.into(),
        }
    }
}

impl From<ReadError> for Error {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Closed { path } => Error::Closed { path },
            ReadError::Halted { path, cause } => halted(path, *cause),
            ReadError::Storage(e) => e.into(),
        }
    }
}

impl From<CheckpointError> for Error {
    fn from(e: CheckpointError) -> Self {
        match e {
            CheckpointError::Closed { path } => Error::Closed { path },
            CheckpointError::Halted { path, cause } => halted(path, *cause),
            CheckpointError::Storage(e) => e.into(),
        }
    }
}

impl From<FileOpError> for Error {
    fn from(e: FileOpError) -> Self {
        match e {
            FileOpError::InvalidPath { path, reason } => Error::InvalidPath { path, reason },
            FileOpError::OpenHere { path } => Error::OpenHere { path },
            FileOpError::SameFile { path } => Error::SameFile { path },
            #[cfg(feature = "sqlite")]
            FileOpError::NoSuchAccount { path, device_id } => {
                Error::NoSuchAccount { path, device_id }
            }
            #[cfg(feature = "sqlite")]
            FileOpError::AccountsExist { path, device_ids } => {
                Error::AccountsExist { path, device_ids }
            }
            FileOpError::TargetHasAccount { device_id } => Error::TargetHasAccount { device_id },
            #[cfg(feature = "sqlite")]
            FileOpError::CountsDiffer {
                operation,
                problems,
            } => Error::CountsDiffer {
                operation,
                problems,
            },
            #[cfg(feature = "cli")]
            FileOpError::UnknownTable { name, known } => Error::UnknownTable { name, known },
            #[cfg(feature = "sqlite")]
            FileOpError::NotSqliteStore { path, reason } => Error::NotSqliteStore { path, reason },
            #[cfg(feature = "sqlite")]
            FileOpError::SqliteSchemaTooNew { path, unknown } => {
                Error::SqliteSchemaTooNew { path, unknown }
            }
            #[cfg(feature = "replica")]
            FileOpError::Replica { target, reason } => Error::Replica { target, reason },
            FileOpError::Open(e) => e.into(),
            FileOpError::Write(e) => e.into(),
            FileOpError::Read(e) => e.into(),
            FileOpError::Checkpoint(e) => e.into(),
            FileOpError::Storage(e) => e.into(),
        }
    }
}
