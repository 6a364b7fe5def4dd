//! Whole-file operations on a store: backup, restore, compaction and
//! account deletion (`maintenance`), the periodic sweep (`retention`),
//! reading a store from outside (`inspect`, `dump`), copying accounts out
//! (`export`, `sqlite`), re-keying (`rekey`) and `salvage`.

#[cfg(feature = "cli")]
pub(crate) mod dump;
pub(crate) mod export;
pub(crate) mod inspect;
pub(crate) mod maintenance;
pub(crate) mod rekey;
pub(crate) mod retention;
pub(crate) mod salvage;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
