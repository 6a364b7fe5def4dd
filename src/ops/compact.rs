//! Compacting a store file nobody has open.

use std::path::Path;

use wacore::store::error::StoreError;

use crate::config::RedbStoreConfig;
use crate::engine::{Packing, files};
use crate::error::FileOpError;

type Result<T, E = FileOpError> = std::result::Result<T, E>;
use crate::handle::RedbStore;
use crate::ops::whole_file::recover_and_close;

/// Sizes of the file before and after a compaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CompactReport {
    /// The file's size before, as `stat` shows it.
    pub bytes_before: u64,
    /// The file's size after.
    pub bytes_after: u64,
}

impl CompactReport {
    /// Bytes given back to the file system (0 if none).
    pub fn bytes_freed(&self) -> u64 {
        self.bytes_before.saturating_sub(self.bytes_after)
    }
}

impl RedbStore {
    /// Compacts a store file that no process has open, returning its size
    /// before and after. (A store also compacts itself at open when a large
    /// part of the file is free, see [`RedbStoreConfig::auto_compact`].)
    ///
    /// The sizes are the file's length as the file system reports it, taken
    /// before anything touches the file and after the compaction: the
    /// recovery and the close that come first may change it (a close
    /// records redb's allocator state, a page or so on a compact file).
    pub fn compact_file(path: impl AsRef<Path>) -> Result<CompactReport, StoreError> {
        Self::compact_file_with(path, &RedbStoreConfig::default())
    }

    /// [`RedbStore::compact_file`] with the key of an encrypted store
    /// ([`RedbStoreConfig::encryption`]).
    pub fn compact_file_with(
        path: impl AsRef<Path>,
        config: &RedbStoreConfig,
    ) -> Result<CompactReport, StoreError> {
        Self::compact_file_packing(path, config, Packing::Balanced)
    }

    /// [`RedbStore::compact_file_with`], packing the file as `packing`
    /// says: [`Packing::Maximum`] (`wa-redb compact --maximum`) leaves it
    /// smallest, for a file that will mostly be read or archived.
    pub fn compact_file_packing(
        path: impl AsRef<Path>,
        config: &RedbStoreConfig,
        packing: Packing,
    ) -> Result<CompactReport, StoreError> {
        let path = crate::engine::canonical(path.as_ref())?;
        let bytes_before = std::fs::metadata(&path).map_or(0, |m| m.len());
        recover_and_close(&path, config)?;
        crate::engine::compact_lean(&path, config, packing)?;
        Ok(CompactReport {
            bytes_before,
            bytes_after: files::file_len(&path)?,
        })
    }
}
