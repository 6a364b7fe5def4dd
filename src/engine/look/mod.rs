//! Opening a store only to look at it (`wa-redb info`, `dump`, `check`,
//! `export`; [`crate::RedbStore::open_to_look`]): nothing is ever written to
//! the store file, its journal or its directory, and read permission is
//! enough.
//!
//! The look runs the ordinary open — redb's repair after a crash, journal
//! replay, migrations — on an [`OverlayStorage`] that keeps every page redb
//! writes in memory, so it shows exactly what the next real open would.
//! Which file the overlay reads depends on who else has the store:
//!
//! - **nobody, closed cleanly**: the file itself, under redb's read-only
//!   handle, which keeps any writer from opening it until the look ends (so
//!   the pages read cannot change underneath);
//! - **nobody, after a crash** (redb refuses a read-only handle then): a
//!   private copy, as below, and the journal is replayed in memory;
//! - **a process has it open**: a private copy taken while the file's
//!   header stayed the same. redb writes that header only at durable
//!   commits (our checkpoints), and a page of the last durable commit is
//!   reused only after a later durable commit: a copy taken between two
//!   header reads that agree holds the state of the last checkpoint whole.
//!   The journal records complete when read are replayed on top (they
//!   carry checksums and consecutive sequence numbers, so a record being
//!   written or rewound away ends the replay there).
//!
//! Private copies are unnamed files in the temporary directory (`TMPDIR`),
//! readable by this user only and gone when the look ends.

pub(super) mod overlay;

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use redb::{Builder, DatabaseError, ReadOnlyDatabase};
use serde::Serialize;

use self::overlay::OverlayStorage;
use crate::config::{EncryptionKey, RedbStoreConfig};
use crate::engine::catalog::Catalog;
use crate::engine::format::sniff;
use crate::engine::journal::journal_path;
use crate::engine::protect::{self, Format, ProtectedStorage};
use crate::engine::recovery::{self, JournalFile};
use crate::engine::{Engine, cache, contain_panic, files, schema};
use crate::error::{KeyProblem, OpenError, StorageError};

type Result<T, E = OpenError> = std::result::Result<T, E>;

/// redb's database header: magic number, god byte, both commit slots.
const HEADER_BYTES: usize = 320;
/// Copies of a store in use tried before giving up.
const COPY_ATTEMPTS: u32 = 20;
/// Page cache of a look: enough for tree walks, small for a tool.
const LOOK_CACHE_BYTES: usize = 16 << 20;

/// How a store opened to look at it was seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LookReport {
    /// Another process (or another part of this one) had the store open:
    /// the look shows its last checkpoint, plus the journal records that
    /// were complete when read. Writes acknowledged after that are not
    /// shown.
    pub in_use: bool,
    /// The last process to write did not close the store (its journal was
    /// there, or redb's header says so), and no process has it open now.
    pub crashed: bool,
    /// When the checkpoint the view starts from was committed (unix
    /// seconds), if the file records it.
    pub checkpointed_at: Option<i64>,
    /// Journal records applied (in memory only) on top of that checkpoint.
    pub journal_records: u64,
    /// Why the journal replay stopped early, if it did.
    pub journal_stopped: Option<String>,
    /// Page checksums, if the look verified them: `false` if redb had to
    /// repair its allocator state.
    pub pages_ok: Option<bool>,
}

/// What an engine opened to look at holds on to.
pub(crate) struct Look {
    pub report: LookReport,
    /// redb's read-only handle of the file being read in place: writers
    /// cannot open it until the look is over.
    _guard: Option<ReadOnlyDatabase>,
}

impl Engine {
    /// Opens the existing store at the canonical `path` to look at it,
    /// verifying every page checksum first if `verify`. Blocking.
    pub fn open_to_look(
        catalog: &'static dyn Catalog,
        path: &Path,
        verify: bool,
        key: Option<&EncryptionKey>,
    ) -> Result<Engine> {
        contain_panic(path, || open(catalog, path, verify, key))
    }
}

fn open(
    catalog: &'static dyn Catalog,
    path: &Path,
    verify: bool,
    key: Option<&EncryptionKey>,
) -> Result<Engine> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(invalid_path(path, "not a file")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(invalid_path(path, "no such file"));
        }
        Err(e) => return Err(StorageError::io(path, e).into()),
    }
    sniff(path)?;
    let (base, guard, unlocked, in_use) = match protect::open_read_only(path, key) {
        Ok((ro, cipher)) => (
            File::open(path).map_err(|e| StorageError::io(path, e))?,
            Some(ro),
            cipher,
            false,
        ),
        Err(DatabaseError::DatabaseAlreadyOpen) => (private_copy(path)?, None, None, true),
        // A read-only handle cannot repair: the last process crashed.
        Err(DatabaseError::RepairAborted) => (private_copy(path)?, None, None, false),
        Err(e) => return Err(StorageError::storage(path, e).into()),
    };
    let jpath = journal_path(path);
    let crashed = !in_use && (guard.is_none() || jpath.exists());
    let overlay = OverlayStorage::new(base).map_err(|e| StorageError::io(path, e))?;
    let shown = path.display().to_string();
    let mut builder = Builder::new();
    builder
        .set_cache_size(LOOK_CACHE_BYTES)
        .set_repair_callback(move |s| {
            log::info!(
                "{shown}: repairing a private view after an unclean shutdown ({:.0}%)",
                s.progress() * 100.0
            )
        });
    let protected = protect::format_of(&overlay.base).map_err(|e| StorageError::io(path, e))?;
    let (db, cipher) = match protected {
        Format::Protected => {
            let storage = match &unlocked {
                Some(cipher) => ProtectedStorage::open_unlocked(overlay, Arc::default(), cipher),
                None => ProtectedStorage::open(overlay, Arc::default(), key),
            }
            .map_err(|e| e.into_error(path))?;
            storage.set_cache_share(LOOK_CACHE_BYTES);
            let cipher = storage.cipher();
            (builder.create_with_backend(storage), cipher)
        }
        _ if key.is_some() => {
            return Err(OpenError::key(path, KeyProblem::NotEncrypted));
        }
        _ => (builder.create_with_backend(overlay), None),
    };
    let mut db = db.map_err(|e| StorageError::storage(path, e))?;
    let pages_ok = match verify {
        true => Some(
            db.check_integrity()
                .map_err(|e| StorageError::storage(path, e))?,
        ),
        false => None,
    };
    let mut meta = schema::read_meta(&db, path)?;
    let checkpointed_at = meta.checkpointed_at;
    let recovery = recovery::recover_and_migrate(
        catalog,
        &db,
        path,
        &jpath,
        &mut meta,
        JournalFile::Leave,
        cipher.as_deref(),
    )?;
    let look = Look {
        report: LookReport {
            in_use,
            crashed,
            checkpointed_at,
            journal_records: recovery.records_replayed,
            journal_stopped: recovery.stopped.clone(),
            pages_ok,
        },
        _guard: guard,
    };
    let config = RedbStoreConfig {
        encryption: key.cloned(),
        ..RedbStoreConfig::default().with_auto_compact(None)
    };
    let share = cache::Share::take(LOOK_CACHE_BYTES, path);
    Ok(Engine::assemble(
        catalog,
        path,
        db,
        cipher,
        &meta,
        recovery,
        &config,
        Arc::default(),
        share,
        Some(look),
    ))
}

fn invalid_path(path: &Path, reason: &str) -> OpenError {
    OpenError::InvalidPath {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn header(file: &File, path: &Path) -> Result<[u8; HEADER_BYTES]> {
    let mut bytes = [0; HEADER_BYTES];
    files::read_exact_at(file, &mut bytes, 0).map_err(|e| StorageError::io(path, e))?;
    Ok(bytes)
}

/// A private copy of the store file in `path` holding one durable commit
/// whole (see the module docs).
fn private_copy(path: &Path) -> Result<File> {
    let source = File::open(path).map_err(|e| StorageError::io(path, e))?;
    let tmp = std::env::temp_dir();
    let mut buf = vec![0u8; 1 << 20];
    for _ in 0..COPY_ATTEMPTS {
        let before = header(&source, path)?;
        let copy = tempfile::tempfile_in(&tmp).map_err(|e| StorageError::io(&tmp, e))?;
        let mut at = 0u64;
        loop {
            let n = files::read_at(&source, &mut buf, at).map_err(|e| StorageError::io(path, e))?;
            if n == 0 {
                break;
            }
            files::write_all_at(&copy, &buf[..n], at).map_err(|e| StorageError::io(&tmp, e))?;
            at += n as u64;
        }
        if header(&source, path)? == before {
            return Ok(copy);
        }
    }
    Err(OpenError::Unsteady {
        path: path.to_path_buf(),
        attempts: COPY_ATTEMPTS,
    })
}
