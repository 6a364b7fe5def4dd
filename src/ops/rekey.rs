//! Changing how a store file is encrypted: a new key or passphrase
//! ([`RedbStore::rekey_file`]), and copies with another keying
//! ([`RedbStore::copy_file`]: `wa-redb encrypt` and `decrypt`).

use std::path::Path;

use wacore::store::error::StoreError;

use crate::config::{EncryptionKey, RedbStoreConfig};
use crate::engine::{Engine, Keying, files};
use crate::error::{KeyProblem, OpenError, StorageError};
use crate::handle::RedbStore;
use crate::ops::whole_file::{
    Identity, copy_to_temp, recover_and_close, with_store_alone, write_copy,
};

/// How [`RedbStore::rekey_file`] changes the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rekey {
    /// The data key stays and is wrapped under the new key: two small
    /// writes, whatever the file's size. Someone who kept the old key *and*
    /// a copy of the file's superblock can still read what the file held.
    #[default]
    Rewrap,
    /// The file is rewritten under a new data key (a full copy, then an
    /// atomic rename): nothing the old key opened opens any more.
    NewDataKey,
}

impl RedbStore {
    /// Writes a copy of the store `src` (opened with `src_config`'s key, if
    /// it is encrypted) to `dst`, which must not exist, keyed as
    /// `dst_config` says: encrypted with its key, or not encrypted (in the
    /// format of its `page_protection`). The copy holds every account and
    /// every acknowledged write (a crashed process's journal is applied to
    /// the copy). `src` is only looked at, as by [`RedbStore::open_to_look`]:
    /// never written, and it may be in use. What `wa-redb encrypt` and
    /// `wa-redb decrypt` do.
    pub fn copy_file(
        src: impl AsRef<Path>,
        src_config: &RedbStoreConfig,
        dst: impl AsRef<Path>,
        dst_config: &RedbStoreConfig,
    ) -> Result<(), StoreError> {
        let src = crate::engine::canonical(src.as_ref())?;
        let dst = dst.as_ref();
        dst_config.validate()?;
        let engine = Engine::open_to_look(
            crate::tables::CATALOG,
            &src,
            false,
            src_config.encryption.as_ref(),
        )?;
        write_copy(&engine.snapshot()?, dst, Keying::of(dst_config), None)?;
        Ok(())
    }

    /// Changes the key of the encrypted store `path`, which no process may
    /// have open: `old` opens it (its [`RedbStoreConfig::encryption`]), and
    /// afterwards `new` does, and `old` no longer does. With
    /// [`Rekey::Rewrap`] the data key is rewrapped in place; with
    /// [`Rekey::NewDataKey`] the file is rewritten. Either way a kill at any
    /// moment leaves a store that opens, with the old key or the new one
    /// (a rewrap cut short between its two superblock writes opens with
    /// either; run it again).
    pub fn rekey_file(
        path: impl AsRef<Path>,
        old: &RedbStoreConfig,
        new: EncryptionKey,
        how: Rekey,
    ) -> Result<(), StoreError> {
        let path = crate::engine::canonical(path.as_ref())?;
        crate::telemetry::file_span!("wa_redb.rekey", path);
        let Some(old_key) = &old.encryption else {
            // Without a key: either the store is encrypted (its key is
            // needed) or it is not (there is nothing to rekey).
            let problem = match Engine::open_to_look(crate::tables::CATALOG, &path, false, None) {
                Ok(_) => KeyProblem::NotEncrypted,
                Err(OpenError::Storage(StorageError::Key { problem, .. })) => problem,
                Err(e) => return Err(e.into()),
            };
            return Err(OpenError::key(&path, problem).into());
        };
        let new_config = RedbStoreConfig {
            encryption: Some(new.clone()),
            ..old.clone()
        };
        match how {
            Rekey::Rewrap => {
                // Replays a crashed process's journal first and checks that
                // `old` opens the store; the rewrap keeps the data key, so a
                // journal stays readable either way.
                recover_and_close(&path, old)?;
                crate::engine::rewrap(&path, old_key, &new)?;
            }
            Rekey::NewDataKey => {
                let pending = with_store_alone(&path, old, |engine| {
                    let tmp = copy_to_temp(
                        &engine.snapshot()?,
                        &path,
                        files::TempKind::Rekeying,
                        Keying::of(&new_config),
                        None,
                        Identity::Own,
                    )?;
                    // Renamed while the old file is still open here, its
                    // lock held: a process that opens the path meanwhile is
                    // refused (and, waiting, opens the new file), rather
                    // than write into the file being replaced. Its journal
                    // was replayed at this open and nothing wrote since:
                    // the close that follows leaves none behind.
                    match std::fs::rename(&tmp, &path) {
                        Ok(()) => Ok(files::sync_parent_dir(&path).map(|()| None)?),
                        // Renamed once the store is closed, below.
                        Err(e) if files::refused_while_held(&e) => Ok(Some(tmp)),
                        Err(e) => {
                            let _ = std::fs::remove_file(&tmp);
                            Err(StorageError::io(&path, e).into())
                        }
                    }
                })?;
                if let Some(tmp) = pending {
                    let renamed =
                        std::fs::rename(&tmp, &path).map_err(|e| StorageError::io(&path, e));
                    if renamed.is_err() {
                        let _ = std::fs::remove_file(&tmp);
                    }
                    renamed?;
                    files::sync_parent_dir(&path)?;
                }
            }
        }
        Ok(())
    }
}
