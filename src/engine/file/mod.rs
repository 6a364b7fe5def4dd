//! One store file on disk: opening it (`open`, `format`: atomic creation,
//! the format and keying, recovery, migration), its identity and schema
//! (`schema`), redb's file backend (`storage`), the page-cache budget
//! (`cache`), compaction (`compact`) and file-system helpers (`files`).

pub(super) mod cache;
pub(super) mod compact;
pub(crate) mod files;
pub(super) mod format;
pub(super) mod open;
pub(super) mod schema;
pub(super) mod storage;
