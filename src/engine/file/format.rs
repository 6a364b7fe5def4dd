//! Which format a store file is, and opening it as its format says: plain
//! (v1), verified (v2, mode 1) or encrypted (v2, mode 2), with the key an
//! encrypted file needs.

use std::path::Path;
use std::sync::Arc;

use redb::{Builder, Database};

use crate::config::{EncryptionKey, PageProtection, RedbStoreConfig};
use crate::engine::contain_panic;
use crate::engine::files;
use crate::engine::protect::crypt::Cipher;
use crate::engine::protect::{self, Format, NewKey, ProtectedStorage};
use crate::engine::storage::{FileStorage, IoStats};
use crate::error::{KeyProblem, OpenError, StorageError};

type Result<T, E = OpenError> = std::result::Result<T, E>;
use crate::fault::IoFaults;

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// How a file is keyed: the format a new file gets, and the key an
/// encrypted file opens with.
#[derive(Clone, Copy)]
pub(crate) enum Keying<'a> {
    /// A new file is plain (format v1).
    Plain,
    /// A new file is verified, not encrypted.
    Verified,
    /// A new file is encrypted under this key; an existing one needs it.
    Key(&'a EncryptionKey),
    /// The key of this open file's cipher: a new file is encrypted like it
    /// (a copy of it: a new data key under the same key-encryption key); the
    /// file itself (the one the cipher was unlocked for, by an earlier open)
    /// opens without deriving its key again; another needs the same key.
    Cipher(&'a Arc<Cipher>),
    /// As `Cipher`, but a new file gets this cipher's data key itself: a
    /// replica's snapshot, which the store's journal records (sealed with
    /// that data key) are replayed into at a restore.
    #[cfg(feature = "replica")]
    Twin(&'a Arc<Cipher>),
}

impl<'a> Keying<'a> {
    /// Like the open file whose cipher this is, with its data key (see
    /// [`Keying::Twin`]; `None`: not encrypted, verified).
    #[cfg(feature = "replica")]
    pub fn twin(cipher: Option<&'a Arc<Cipher>>) -> Keying<'a> {
        cipher.map_or(Keying::Verified, Keying::Twin)
    }

    /// As the configuration asks.
    pub fn of(config: &'a RedbStoreConfig) -> Keying<'a> {
        match (&config.encryption, config.page_protection) {
            (Some(key), _) => Keying::Key(key),
            (None, PageProtection::Verified) => Keying::Verified,
            (None, PageProtection::Off) => Keying::Plain,
        }
    }

    /// Like the open file whose cipher this is (`None`: not encrypted,
    /// verified).
    pub fn like(cipher: Option<&'a Arc<Cipher>>) -> Keying<'a> {
        cipher.map_or(Keying::Verified, Keying::Cipher)
    }

    /// The key an existing file opens with.
    pub fn key(self) -> Option<&'a EncryptionKey> {
        match self {
            Keying::Plain | Keying::Verified => None,
            Keying::Key(key) => Some(key),
            Keying::Cipher(cipher) => Some(cipher.source()),
            #[cfg(feature = "replica")]
            Keying::Twin(cipher) => Some(cipher.source()),
        }
    }
}

/// A database open through the storage layer its format needs.
pub(crate) struct Opened {
    pub db: Database,
    /// The cipher of an encrypted file.
    pub cipher: Option<Arc<Cipher>>,
}

/// Checks the first bytes of an existing file, so that a file that is not a
/// redb database gets a clear error instead of reaching redb; says which
/// format the file is.
pub(crate) fn sniff(path: &Path) -> Result<PageProtection> {
    use std::io::Read;
    let not_a_store = |reason: String| OpenError::not_a_store(path, reason);
    let mut head = Vec::with_capacity(16);
    std::fs::File::open(path)
        .and_then(|f| f.take(16).read_to_end(&mut head))
        .map_err(|e| StorageError::io(path, e))?;
    if head.is_empty() {
        return Err(not_a_store(
            "the file is empty (0 bytes); remove it to create a new store there".into(),
        ));
    }
    if head.as_slice() == SQLITE_MAGIC {
        return Err(not_a_store(
            "it is a SQLite database; to move a SqliteStore account here, use `wa-redb import-sqlite`"
                .into(),
        ));
    }
    if head.starts_with(&protect::layout::V2_MAGIC) {
        Ok(PageProtection::Verified)
    } else if head.starts_with(&protect::layout::REDB_MAGIC) {
        Ok(PageProtection::Off)
    } else {
        Err(not_a_store("unrecognized file header".into()))
    }
}

/// Opens the redb database in `path` with `builder`, through our storage
/// backend. The file is created owner-only if missing (and emptied first if
/// `truncate`). redb's plain open trusts the file and may panic on damage
/// it does not expect; such a panic becomes [`StorageError::Corrupted`].
/// `cache_bytes` is the file's page-cache share (the size `builder` gives
/// redb's cache): a protected file keeps its tag entries within a part of
/// it.
pub(crate) fn open_with(
    builder: &Builder,
    cache_bytes: usize,
    path: &Path,
    truncate: bool,
    io: Arc<IoStats>,
    faults: Option<Arc<dyn IoFaults>>,
    keying: Keying<'_>,
) -> Result<Opened> {
    // A whole-file replacement (restore, rekey) renames another file over
    // `path` while it holds this one's lock: a handle that opened the old
    // file and got its lock once the replacement let go would write into
    // a file nobody will read again. So the file locked must still be the
    // one `path` names; if not, open again (the replacement is done).
    let mut tries = 0;
    loop {
        let file = files::create_private(path, truncate)?;
        let opened_id = files::file_id(&file);
        let opened = open_file(
            builder,
            cache_bytes,
            file,
            path,
            io.clone(),
            faults.clone(),
            keying,
        )?;
        tries += 1;
        let named_id = std::fs::metadata(path).ok().and_then(|m| files::id_of(&m));
        if opened_id == named_id {
            return Ok(opened);
        }
        drop(opened);
        if tries == 3 {
            // Replaced three times in a row while opening: another process
            // is busy with it; an open that waits tries again.
            return Err(OpenError::AlreadyOpen {
                path: path.to_path_buf(),
            });
        }
    }
}

/// [`open_with`] on a file already open (`path` names it in errors): a
/// protected file (format v2) through [`ProtectedStorage`], a plain one
/// (v1) directly; an empty file is laid out as `keying` says.
pub(crate) fn open_file(
    builder: &Builder,
    cache_bytes: usize,
    file: std::fs::File,
    path: &Path,
    io: Arc<IoStats>,
    faults: Option<Arc<dyn IoFaults>>,
    keying: Keying<'_>,
) -> Result<Opened> {
    let format = protect::format_of(&file).map_err(|e| StorageError::io(path, e))?;
    if format == Format::Plain && keying.key().is_some() {
        return Err(OpenError::key(path, KeyProblem::NotEncrypted));
    }
    let backend =
        FileStorage::new(file, io.clone(), faults).map_err(|e| StorageError::storage(path, e))?;
    contain_panic(path, || {
        let storage = match (format, keying) {
            (Format::Empty, Keying::Plain) | (Format::Plain | Format::Unknown, _) => {
                let db = builder.create_with_backend(backend);
                return Ok(Opened {
                    db: db.map_err(|e| StorageError::storage(path, e))?,
                    cipher: None,
                });
            }
            (Format::Empty, keying) => {
                let new_key = match keying {
                    Keying::Key(key) => NewKey::Key(key),
                    Keying::Cipher(cipher) => NewKey::LikeOf(cipher),
                    #[cfg(feature = "replica")]
                    Keying::Twin(cipher) => NewKey::TwinOf(cipher),
                    Keying::Plain | Keying::Verified => NewKey::None,
                };
                ProtectedStorage::create(backend, io, new_key)
            }
            (Format::Protected, Keying::Cipher(cipher)) => {
                ProtectedStorage::open_unlocked(backend, io, cipher)
            }
            (Format::Protected, keying) => ProtectedStorage::open(backend, io, keying.key()),
        }
        .map_err(|e| e.into_error(path))?;
        storage.set_cache_share(cache_bytes);
        let cipher = storage.cipher();
        let db = builder
            .create_with_backend(storage)
            .map_err(|e| StorageError::storage(path, e))?;
        Ok(Opened { db, cipher })
    })
}

/// The builder the engine opens its redb file with. `cache_bytes` is the
/// file's share of the budget: a protected file's tag entries take part of
/// it, redb's cache the rest.
pub(crate) fn engine_builder(
    path: &Path,
    cache_bytes: usize,
    protection: PageProtection,
    verify: bool,
) -> Builder {
    let pages = match protection {
        PageProtection::Verified => protect::pages_share(cache_bytes),
        PageProtection::Off => cache_bytes,
    };
    let shown = path.display().to_string();
    let mut builder = Builder::new();
    builder
        .set_cache_size(pages)
        .set_check_integrity_on_open(verify)
        .set_repair_callback(move |s| {
            log::warn!(
                "{shown}: repairing after an unclean shutdown ({:.0}%)",
                s.progress() * 100.0
            )
        });
    builder
}
