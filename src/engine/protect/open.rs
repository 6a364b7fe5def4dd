//! Opening a protected file: telling the format from its first bytes,
//! reading its superblock, unlocking an encrypted one with its key, and
//! laying out a new one. Nothing here writes to an existing file but
//! [`rewrap`] (a rekey).

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use redb::backends::FileBackend;
use redb::{Builder, DatabaseError, ReadOnlyDatabase, StorageBackend};

use super::crypt::Cipher;
use super::layout::{
    self, DATA_BASE, REDB_MAGIC, SUPERBLOCK_AT, Superblock, SuperblockError, V2_MAGIC,
};
use super::{
    BLOCK, HEADER_DAMAGED, ProtectedStorage, SUPERBLOCK_DAMAGED, Segments, State, damaged,
};
use crate::config::EncryptionKey;
use crate::engine::storage::IoStats;
use crate::error::{KeyProblem, OpenError, StorageError};

/// Which format a file's first bytes announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// Empty: the opener decides.
    Empty,
    /// A plain redb file (format v1).
    Plain,
    /// A protected file (format v2).
    Protected,
    /// Neither.
    Unknown,
}

/// Tells the format from the first bytes of a file and its length.
pub(crate) fn detect(head: &[u8], len: u64) -> Format {
    if len == 0 {
        Format::Empty
    } else if head.starts_with(&V2_MAGIC) {
        Format::Protected
    } else if head.starts_with(&REDB_MAGIC) {
        Format::Plain
    } else if len >= DATA_BASE && head.iter().all(|&b| b == 0) {
        // Created protected, redb's header not written yet: the superblock
        // decides (a zeroed head of another file fails it).
        Format::Protected
    } else {
        Format::Unknown
    }
}

/// Why a protected file cannot be opened.
#[derive(Debug)]
pub(crate) enum UnlockError {
    Io(io::Error),
    Superblock(SuperblockError),
    /// The key given and the file's encryption do not go together.
    Key(KeyProblem),
    /// The superblock is intact but redb's header is not there, in a file
    /// that holds more than the superblock: never an empty database.
    HeaderDamaged,
}

impl From<io::Error> for UnlockError {
    fn from(e: io::Error) -> Self {
        UnlockError::Io(e)
    }
}

/// The backend's errors carry an `io::Error` (ours: damage and key
/// problems travel inside one), which is what is kept.
impl From<redb::BackendError> for UnlockError {
    fn from(e: redb::BackendError) -> Self {
        UnlockError::Io(e.into())
    }
}

impl UnlockError {
    /// In the crate's vocabulary, about the file `path`.
    pub fn into_error(self, path: &Path) -> OpenError {
        match self {
            UnlockError::Io(e) => StorageError::io(path, e).into(),
            UnlockError::Key(problem) => OpenError::key(path, problem),
            UnlockError::Superblock(SuperblockError::Damaged) => StorageError::corrupted(
                path,
                damaged(None, SUPERBLOCK_AT[0], SUPERBLOCK_DAMAGED).to_string(),
            )
            .into(),
            UnlockError::HeaderDamaged => {
                StorageError::corrupted(path, damaged(None, 0, HEADER_DAMAGED).to_string()).into()
            }
            UnlockError::Superblock(SuperblockError::Unsupported { version, mode }) => {
                OpenError::NotAStore {
                    path: path.to_path_buf(),
                    reason: format!(
                        "it is a protected store of format {version}, mode {mode}, which this \
                         build does not know; open it with the build that made it, or a newer one"
                    ),
                }
            }
        }
    }

    /// As redb's error, for callers of redb's read-only open.
    fn into_database_error(self) -> DatabaseError {
        let io = match self {
            UnlockError::Io(e) => e,
            UnlockError::Key(problem) => io::Error::new(io::ErrorKind::PermissionDenied, problem),
            UnlockError::Superblock(SuperblockError::Damaged) => {
                damaged(None, SUPERBLOCK_AT[0], SUPERBLOCK_DAMAGED)
            }
            UnlockError::HeaderDamaged => damaged(None, 0, HEADER_DAMAGED),
            UnlockError::Superblock(SuperblockError::Unsupported { version, mode }) => {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "a protected store of format {version}, mode {mode}, which this build \
                         does not know"
                    ),
                )
            }
        };
        DatabaseError::Storage(redb::StorageError::Io(io))
    }
}

/// The format of an open file, from its first bytes.
pub(crate) fn format_of(file: &File) -> io::Result<Format> {
    let len = file.metadata()?.len();
    let mut head = [0u8; 16];
    let n = (len.min(16)) as usize;
    crate::engine::files::read_exact_at(file, &mut head[..n], 0)?;
    Ok(detect(&head[..n], len))
}

/// redb's read-only open of `path`, through the protection layer if the
/// file is protected (`key` opens an encrypted one), and the cipher of an
/// encrypted file: a later open of the same file takes it
/// ([`ProtectedStorage::open_unlocked`]) instead of deriving the key again
/// (Argon2id: a second or two on a Raspberry Pi Zero).
pub(crate) fn open_read_only(
    path: &Path,
    key: Option<&EncryptionKey>,
) -> Result<(ReadOnlyDatabase, Option<Arc<Cipher>>), DatabaseError> {
    let file = File::open(path)?;
    match format_of(&file)? {
        Format::Protected => {
            let storage = ProtectedStorage::open(FileBackend::new(file), Arc::default(), key)
                .map_err(UnlockError::into_database_error)?;
            let cipher = storage.cipher();
            Ok((Builder::new().open_read_only_with_backend(storage)?, cipher))
        }
        _ if key.is_some() => Err(UnlockError::Key(KeyProblem::NotEncrypted).into_database_error()),
        _ => Ok((Builder::new().open_read_only(path)?, None)),
    }
}

/// The intact superblock copies of `inner`, newest first.
fn read_superblocks<S: StorageBackend>(inner: &S) -> Result<Vec<Superblock>, UnlockError> {
    let mut copies = [vec![0u8; BLOCK as usize], vec![0u8; BLOCK as usize]];
    for (at, copy) in SUPERBLOCK_AT.into_iter().zip(copies.iter_mut()) {
        if inner.len()? >= at + BLOCK {
            inner.read(at, copy)?;
        }
    }
    Superblock::decode([&copies[0], &copies[1]]).map_err(UnlockError::Superblock)
}

/// The superblock `key` opens (the newest that it does: a rekey cut short
/// leaves copies of two generations, each opened by its own key), and the
/// cipher for an encrypted file.
fn unlock<'a>(
    sbs: &'a [Superblock],
    key: Option<&EncryptionKey>,
) -> Result<(&'a Superblock, Option<Arc<Cipher>>), UnlockError> {
    let mut problem = None;
    for sb in sbs {
        match (&sb.envelope, key) {
            (None, None) => return Ok((sb, None)),
            (None, Some(_)) => return Err(UnlockError::Key(KeyProblem::NotEncrypted)),
            (Some(_), None) => return Err(UnlockError::Key(KeyProblem::Required)),
            (Some(envelope), Some(key)) => match Cipher::unlock(key, envelope, &sb.file_id) {
                Ok(c) => return Ok((sb, Some(Arc::new(c)))),
                Err(e) => problem = Some(e.into_problem(key)),
            },
        }
    }
    Err(UnlockError::Key(problem.unwrap_or(KeyProblem::Wrong)))
}

/// How a new protected file is keyed.
#[derive(Clone, Copy)]
pub(crate) enum NewKey<'a> {
    /// Verified, not encrypted.
    None,
    /// Encrypted with a new data key under this key.
    Key(&'a EncryptionKey),
    /// Encrypted with a new data key under the same key-encryption key as
    /// this file (a copy of it: no second key derivation).
    LikeOf(&'a Cipher),
    /// Encrypted with this file's data key itself, wrapped for the new
    /// file (a replica's snapshot: see `Keying::Twin`).
    #[cfg(feature = "replica")]
    TwinOf(&'a Cipher),
}

impl<S: StorageBackend> ProtectedStorage<S> {
    /// Makes the empty `inner` a protected file: writes its superblock.
    /// redb initializes it as an empty database.
    pub fn create(inner: S, stats: Arc<IoStats>, key: NewKey<'_>) -> Result<Self, UnlockError> {
        let mut file_id = [0u8; 16];
        getrandom::fill(&mut file_id).map_err(|e| io::Error::other(e.to_string()))?;
        let (cipher, envelope) = match key {
            NewKey::None => (None, None),
            NewKey::Key(key) => {
                let (c, e) = Cipher::create(key, &file_id)?;
                (Some(Arc::new(c)), Some(e))
            }
            NewKey::LikeOf(of) => {
                let (c, e) = of.sibling(&file_id)?;
                (Some(Arc::new(c)), Some(e))
            }
            #[cfg(feature = "replica")]
            NewKey::TwinOf(of) => {
                let (c, e) = of.twin(&file_id)?;
                (Some(Arc::new(c)), Some(e))
            }
        };
        let sb = Superblock {
            file_id,
            generation: 1,
            envelope,
        };
        let block = sb.encode();
        inner.set_len(DATA_BASE)?;
        for at in SUPERBLOCK_AT {
            inner.write(at, &block)?;
        }
        inner.sync_data()?;
        Ok(Self::with(inner, &sb, cipher, 0, stats))
    }

    /// Opens the protected file `inner`; an encrypted one needs its `key`.
    /// Nothing is written.
    pub fn open(
        inner: S,
        stats: Arc<IoStats>,
        key: Option<&EncryptionKey>,
    ) -> Result<Self, UnlockError> {
        let sbs = read_superblocks(&inner)?;
        let (sb, cipher) = unlock(&sbs, key)?;
        Self::open_as(inner, stats, sb, cipher)
    }

    /// Opens the protected file `inner` with `cipher`: the one an earlier
    /// open of this same file (its file id) unlocked, or else with the key
    /// it was unlocked with.
    pub fn open_unlocked(
        inner: S,
        stats: Arc<IoStats>,
        cipher: &Arc<Cipher>,
    ) -> Result<Self, UnlockError> {
        let sbs = read_superblocks(&inner)?;
        let same_file = sbs
            .iter()
            .find(|sb| sb.envelope.is_some() && sb.file_id == *cipher.file_id());
        let (sb, cipher) = match same_file {
            Some(sb) => (sb, Some(cipher.clone())),
            None => unlock(&sbs, Some(cipher.source()))?,
        };
        Self::open_as(inner, stats, sb, cipher)
    }

    fn open_as(
        inner: S,
        stats: Arc<IoStats>,
        sb: &Superblock,
        cipher: Option<Arc<Cipher>>,
    ) -> Result<Self, UnlockError> {
        let mut head = [0u8; 9];
        inner.read(0, &mut head)?;
        let len = if head == V2_MAGIC {
            sb.geometry().logical_len(inner.len()?)
        } else if inner.len()? <= DATA_BASE {
            0 // created, redb never wrote its header: an empty database
        } else {
            // redb would take it for empty and lay out a new database.
            return Err(UnlockError::HeaderDamaged);
        };
        Ok(Self::with(inner, sb, cipher, len, stats))
    }

    fn with(
        inner: S,
        sb: &Superblock,
        cipher: Option<Arc<Cipher>>,
        len: u64,
        stats: Arc<IoStats>,
    ) -> Self {
        Self {
            inner,
            seed: layout::seed_of(&sb.file_id),
            file_id: sb.file_id,
            geometry: sb.geometry(),
            cipher,
            stats,
            state: Mutex::new(State {
                len,
                // Until the opener gives the file's cache share.
                segments: Segments::within(0, sb.geometry().entries_len()),
                page0: None,
                page0_dirty_end: 0,
                unsynced: false,
            }),
        }
    }
}

/// Rewraps the data key of the encrypted file `path` (closed, and kept
/// closed by the caller) under `new`; `old` must open it. Crash-safe: the
/// superblock copies are rewritten one at a time, each synced, with a
/// higher generation; a kill between the two leaves one copy of each key,
/// and the file opens with either (the newest first), so the rekey can be
/// run again.
pub(crate) fn rewrap(
    path: &Path,
    old: &EncryptionKey,
    new: &EncryptionKey,
) -> Result<(), OpenError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| StorageError::io(path, e))?;
    if format_of(&file).map_err(|e| StorageError::io(path, e))? != Format::Protected {
        return Err(OpenError::key(path, KeyProblem::NotEncrypted));
    }
    // Takes redb's lock: a store open in another process is refused.
    let backend = FileBackend::new(file);
    let sbs = read_superblocks(&backend).map_err(|e| e.into_error(path))?;
    let (sb, cipher) = unlock(&sbs, Some(old)).map_err(|e| e.into_error(path))?;
    let cipher = cipher.expect("a key unlocked it: encrypted");
    let generation = sbs.iter().map(|s| s.generation).max().unwrap_or(0) + 1;
    let envelope = cipher
        .rewrap(new, &sb.file_id)
        .map_err(|e| StorageError::io(path, e))?;
    let block = Superblock {
        file_id: sb.file_id,
        generation,
        envelope: Some(envelope),
    }
    .encode();
    let io = |e: redb::BackendError| StorageError::io(path, e.into());
    for at in SUPERBLOCK_AT {
        backend.write(at, &block).map_err(io)?;
        backend.sync_data().map_err(io)?;
    }
    Ok(())
}
