//! Backups of a store in use, and restoring one in place of a store file.

use std::path::{Path, PathBuf};

use wacore::store::error::StoreError;

use crate::config::RedbStoreConfig;
use crate::engine::{Keying, files, journal_path};
use crate::error::{FileOpError, StorageError};

type Result<T, E = FileOpError> = std::result::Result<T, E>;
use crate::handle::RedbStore;
use crate::ops::whole_file::{not_open_here, open_bare, write_copy};
use crate::tables::{self};

impl RedbStore {
    /// Writes a consistent copy of the whole store (every account) to
    /// `target`, which must not exist, while the store stays open and in
    /// use. The copy holds every write acknowledged before the call, is
    /// compact, and opens as a store of its own.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), wacore::store::error::StoreError> {
    /// use wacore::store::traits::SignalStore;
    /// use whatsapp_rust_redb_storage::RedbStore;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let (path, copy) = (dir.path().join("live.redb"), dir.path().join("copy.redb"));
    /// let store = RedbStore::new(&path).await?;
    /// store.put_session("a@c.us.0", b"record").await?;
    /// store.backup_to(&copy).await?; // while `store` stays in use
    /// let backup = RedbStore::new(&copy).await?;
    /// assert!(backup.get_session("a@c.us.0").await?.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn backup_to(&self, target: impl AsRef<Path>) -> Result<(), StoreError> {
        let target = target.as_ref().to_path_buf();
        let cipher = self.engine.cipher.clone();
        // The copy's writes pass the store's fault hooks: tests hold a
        // backup inside its copy with them.
        let faults = self.engine.config().io_faults;
        self.read_for_op(move |s| {
            crate::telemetry::file_span!("wa_redb.backup", target);
            write_copy(s, &target, Keying::like(cipher.as_ref()), faults)
        })
        .await
    }
}

/// What [`RedbStore::restore_file`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RestoreReport {
    /// The store file, now a copy of the backup.
    pub restored: PathBuf,
    /// Where the file it replaced is kept, if there was one.
    pub replaced: Option<PathBuf>,
}

/// Gives the store file `target` a second name beside it,
/// `<target>.replaced-<unix seconds>[-<n>]`, owner-only, and moves its
/// journal (if any) to go with it. `target` itself is left in place.
fn keep_replaced(target: &Path) -> Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut n = 0u32;
    let kept = loop {
        let suffix = match n {
            0 => format!(".replaced-{secs}"),
            n => format!(".replaced-{secs}-{n}"),
        };
        let kept = files::with_suffix(target, suffix);
        match second_name(target, &kept) {
            Ok(()) => break kept,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(StorageError::io(&kept, e).into()),
        }
    };
    let journal = journal_path(target);
    if journal.exists() {
        std::fs::rename(&journal, journal_path(&kept))
            .map_err(|e| StorageError::io(&journal, e))?;
    }
    Ok(kept)
}

/// Makes `kept` (which must not exist) hold the content of `file`: a hard
/// link, or an owner-only copy where links are not supported.
fn second_name(file: &Path, kept: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(file, kept) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(e),
        Err(_) => {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut to = options.open(kept)?;
            let copied =
                std::io::copy(&mut std::fs::File::open(file)?, &mut to).and_then(|_| to.sync_all());
            if let Err(e) = copied {
                let _ = std::fs::remove_file(kept);
                return Err(e);
            }
        }
    }
    // A store holds private keys, whatever mode the old file had.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o600);
        if let Err(e) = std::fs::set_permissions(kept, private) {
            let _ = std::fs::remove_file(kept);
            return Err(e);
        }
    }
    Ok(())
}

impl RedbStore {
    /// Replaces the store file `target` with a copy of `backup` (written by
    /// [`RedbStore::backup_to`] or `wa-redb backup`), or creates it. Refuses
    /// if `target` is open in any process, or if `backup` is not a store.
    ///
    /// A file replaced is kept beside it, owner-only, as
    /// `<target>.replaced-<unix seconds>` (with `-<n>` added if that name is
    /// taken), together with its journal if a crash left one: it is a store
    /// of its own, and opening it replays that journal. The report names it;
    /// removing it is up to the caller.
    pub fn restore_file(
        backup: impl AsRef<Path>,
        target: impl AsRef<Path>,
    ) -> Result<RestoreReport, StoreError> {
        Self::restore_file_with(backup, target, &RedbStoreConfig::default())
    }

    /// [`RedbStore::restore_file`] with the key of encrypted stores
    /// ([`RedbStoreConfig::encryption`]): the backup must open with it, and
    /// so must the file it replaces.
    pub fn restore_file_with(
        backup: impl AsRef<Path>,
        target: impl AsRef<Path>,
        config: &RedbStoreConfig,
    ) -> Result<RestoreReport, StoreError> {
        let backup = crate::engine::canonical(backup.as_ref())?;
        let target = crate::engine::canonical(target.as_ref())?;
        crate::telemetry::file_span!("wa_redb.restore", target);
        if backup == target {
            return Err(FileOpError::SameFile { path: target }.into());
        }
        // The backup must be a store this build can open: a file that is
        // none at all says so (not a redb error about magic numbers).
        crate::engine::sniff(&backup)?;
        {
            let (db, _) = crate::engine::open_read_only(&backup, config.encryption.as_ref())
                .map_err(|e| StorageError::storage(&backup, e))?;
            crate::engine::read_meta(&db, &backup)?
                .refuse_newer(&backup, tables::SCHEMA_VERSION)?;
        }
        // Nobody may have the target open: we are about to replace it.
        not_open_here(&target)?;
        let replacing = target.exists();
        // Held until the new file has the name: a process that opens the
        // target meanwhile is refused (and, waiting, opens the new file),
        // rather than write into the file being replaced.
        let mut held = match replacing {
            true => Some(crate::engine::while_open_elsewhere(
                config.busy_timeout,
                || open_bare(&target, Keying::of(config)),
            )?),
            false => None,
        };
        files::remove_stale_temps(&target);
        let (tmp, mut to) = files::create_temp(&target, files::TempKind::Restoring)?;
        let mut kept = None;
        let result = (|| -> Result<()> {
            // Marks the copy as live for `remove_stale_temps` elsewhere.
            to.try_lock()
                .map_err(|e| StorageError::io(&tmp, e.into()))?;
            // Not `fs::copy`: it would copy the backup's permissions, and the
            // store holds private keys (owner only).
            let mut from =
                std::fs::File::open(&backup).map_err(|e| StorageError::io(&backup, e))?;
            std::io::copy(&mut from, &mut to).map_err(|e| StorageError::io(&tmp, e))?;
            to.sync_all().map_err(|e| StorageError::io(&tmp, e))?;
            if replacing {
                kept = Some(keep_replaced(&target)?);
                let renamed = match std::fs::rename(&tmp, &target) {
                    Err(e) if files::refused_while_held(&e) => {
                        held = None;
                        std::fs::rename(&tmp, &target)
                    }
                    renamed => renamed,
                };
                renamed.map_err(|e| StorageError::io(&target, e))?;
            } else {
                // A journal without its store belongs to nothing.
                files::remove_if_present(&journal_path(&target))?;
                // Never over a store another process created meanwhile.
                files::link_into_place(&tmp, &target).map_err(|e| StorageError::io(&target, e))?;
            }
            Ok(files::sync_parent_dir(&target)?)
        })();
        drop(held);
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
            if let Some(kept) = &kept {
                // The target is still the old file: its second name goes,
                // its journal comes back.
                let _ = std::fs::rename(journal_path(kept), journal_path(&target));
                let _ = std::fs::remove_file(kept);
            }
        }
        result?;
        Ok(RestoreReport {
            restored: target,
            replaced: kept,
        })
    }
}
