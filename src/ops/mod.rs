//! Whole-file operations on a store: `backup` (and restore), `compact`,
//! `delete_device`, the periodic `maintenance()`, reading a store from
//! outside (`inspect`, `dump`), copying accounts out (`export`, `sqlite`),
//! re-keying (`rekey`) and `salvage`; `whole_file` is what they share.

pub(crate) mod backup;
pub(crate) mod compact;
pub(crate) mod delete_device;
#[cfg(feature = "cli")]
pub(crate) mod dump;
pub(crate) mod export;
pub(crate) mod inspect;
pub(crate) mod maintenance;
pub(crate) mod rekey;
#[cfg(feature = "replica")]
pub(crate) mod replica;
pub(crate) mod salvage;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;
pub(crate) mod whole_file;
