//! The failures of the file itself, which every operation can meet: the
//! disk's (I/O, a full disk), redb's, damage, a key that does not fit, a
//! record that does not decode, a cipher that refuses. The lowest error of
//! the crate, as `redb::StorageError` is redb's: each operation's own enum
//! ([`super::operation`]) holds one of these as its `Storage` variant.
//!
//! The writer's policy lives here: [`StorageError::is_fatal`] says which
//! failures stop it, [`StorageError::is_io`] which of those may pass.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Error;
use super::key_problem::{Damaged, KeyProblem};

/// A failure of the store file or its journal. Messages are the
/// umbrella [`Error`]'s (one text per failure, wherever it is reported).
#[derive(Debug, Clone)]
pub(crate) enum StorageError {
    /// An operating-system I/O error (disk full, permission denied, EIO...).
    Io {
        path: PathBuf,
        source: Arc<std::io::Error>,
    },
    /// The journal could not grow (usually a full disk); nothing of the
    /// write was applied.
    NoSpace {
        path: PathBuf,
        source: Arc<std::io::Error>,
    },
    /// An error reported by redb that none of the others describes.
    Redb {
        path: PathBuf,
        source: Arc<redb::Error>,
    },
    /// The file is damaged.
    Corrupted { path: PathBuf, detail: String },
    /// The file's encryption and the key given do not go together.
    Key { path: PathBuf, problem: KeyProblem },
    /// A stored record could not be decoded (`path` is filled in once the
    /// error reaches a layer that knows the file).
    Decode {
        path: Option<PathBuf>,
        what: &'static str,
        detail: String,
    },
    /// A journal record could not be encrypted (a bug).
    Encryption { path: PathBuf, detail: String },
}

pub(crate) type StorageResult<T, E = StorageError> = std::result::Result<T, E>;

impl StorageError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        StorageError::Io {
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn decode(what: &'static str, detail: impl std::fmt::Display) -> Self {
        StorageError::Decode {
            path: None,
            what,
            detail: detail.to_string(),
        }
    }

    pub(crate) fn corrupted(path: &Path, detail: impl Into<String>) -> Self {
        StorageError::Corrupted {
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }

    /// Maps a redb error to our vocabulary, keeping redb's error as the
    /// source where it adds information. A file another process holds is
    /// not a storage failure but an open's: [`super::OpenError::from_redb`].
    pub(crate) fn storage(path: &Path, source: impl Into<redb::Error>) -> Self {
        let source = source.into();
        match source {
            redb::Error::Corrupted(detail) => StorageError::corrupted(path, detail),
            // redb reads only inside the file it laid out: a short read
            // means the file was truncated or a page reference is damaged.
            redb::Error::Io(source) if source.kind() == std::io::ErrorKind::UnexpectedEof => {
                StorageError::corrupted(
                    path,
                    "a read past the end of the file: it is truncated or a page \
                     reference in it is damaged",
                )
            }
            redb::Error::Io(source) if source.get_ref().is_some_and(|e| e.is::<KeyProblem>()) => {
                StorageError::Key {
                    path: path.to_path_buf(),
                    problem: source
                        .get_ref()
                        .and_then(|e| e.downcast_ref::<KeyProblem>())
                        .cloned()
                        .unwrap_or(KeyProblem::Wrong),
                }
            }
            redb::Error::Io(source) if source.get_ref().is_some_and(|e| e.is::<Damaged>()) => {
                StorageError::corrupted(path, format!("{source}; run `wa-redb check` on it"))
            }
            redb::Error::Io(source) => StorageError::io(path, source),
            source => StorageError::Redb {
                path: path.to_path_buf(),
                source: Arc::new(source),
            },
        }
    }

    /// The same error, about `path` instead (for errors about a temporary
    /// file the caller never named, or raised without a file).
    pub(crate) fn with_path(self, path: &Path) -> Self {
        let path = path.to_path_buf();
        match self {
            StorageError::Io { source, .. } => StorageError::Io { path, source },
            StorageError::NoSpace { source, .. } => StorageError::NoSpace { path, source },
            StorageError::Redb { source, .. } => StorageError::Redb { path, source },
            StorageError::Corrupted { detail, .. } => StorageError::Corrupted { path, detail },
            StorageError::Key { problem, .. } => StorageError::Key { path, problem },
            StorageError::Decode { what, detail, .. } => StorageError::Decode {
                path: Some(path),
                what,
                detail,
            },
            StorageError::Encryption { detail, .. } => StorageError::Encryption { path, detail },
        }
    }

    /// Whether this is the disk's failure (I/O, a full disk), which may
    /// pass, rather than damage or a fault in the data.
    pub(crate) fn is_io(&self) -> bool {
        match self {
            StorageError::Io { .. } | StorageError::NoSpace { .. } => true,
            StorageError::Redb { source, .. } => {
                matches!(**source, redb::Error::Io(_) | redb::Error::PreviousIo)
            }
            _ => false,
        }
    }

    /// True for failures after which the writer must stop: the file or the
    /// journal may hold a state the process no longer knows, so continuing
    /// could acknowledge writes that are not durable.
    pub(crate) fn is_fatal(&self) -> bool {
        match self {
            StorageError::Io { .. } | StorageError::Corrupted { .. } => true,
            StorageError::Redb { source, .. } => !matches!(
                **source,
                redb::Error::ValueTooLarge(_) | redb::Error::TransactionInProgress
            ),
            _ => false,
        }
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Io { path, source } => Error::Io { path, source },
            StorageError::NoSpace { path, source } => Error::NoSpace { path, source },
            StorageError::Redb { path, source } => Error::Storage { path, source },
            StorageError::Corrupted { path, detail } => Error::Corrupted { path, detail },
            StorageError::Key { path, problem } => Error::Key { path, problem },
            StorageError::Decode { path, what, detail } => Error::Decode { path, what, detail },
            StorageError::Encryption { path, detail } => Error::Encryption { path, detail },
        }
    }
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Error::from(self.clone()).fmt(f)
    }
}

impl std::error::Error for StorageError {}
