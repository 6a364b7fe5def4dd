//! A pure-Rust storage backend for [whatsapp-rust](https://crates.io/crates/whatsapp-rust)
//! on [redb](https://crates.io/crates/redb): a drop-in replacement for
//! `SqliteStore` in a single file, with no C toolchain.
//!
//! ```no_run
//! # async fn demo() -> Result<(), wacore::store::error::StoreError> {
//! use whatsapp_rust_redb_storage::RedbStore;
//! let store = RedbStore::new("whatsapp.redb").await?;
//! # Ok(()) }
//! ```
//!
//! Layout of the crate:
//! - [`RedbStore`] (`store`): the handle; the trait implementations live in
//!   one module per trait domain: `signal`, `appstate`, `protocol`,
//!   `msg_secret`, `device`, plus `legacy` for the older sender-key API.
//! - `catalog`: every table; `codec`: value encodings.
//! - `engine`: the writer thread, journal, recovery, schema.
//! - Operations: `maintenance` (backup, restore, compact, delete an
//!   account), `inspect` (accounts, info, check), `export` (an account to
//!   any `Backend`), `dump` (rows as JSON, feature `cli`), `sqlite` (import
//!   from / export to SqliteStore files, feature `sqlite`). The `wa-redb`
//!   tool (feature `cli`) is a thin layer over these.

#![warn(missing_docs)]

mod appstate;
mod catalog;
mod codec;
mod config;
mod device;
#[cfg(feature = "cli")]
mod dump;
mod engine;
mod error;
mod export;
pub mod fault;
mod inspect;
mod legacy;
mod maintenance;
mod msg_secret;
mod protocol;
mod retention;
mod shape;
mod signal;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

pub use config::{IntegrityCheck, RedbStoreConfig, Synchronous};
#[cfg(feature = "cli")]
pub use dump::{DumpOptions, DumpRow};
pub use engine::look::LookReport;
pub use engine::recovery::RecoveryReport;
pub use error::Error;
pub use export::{ExportOptions, ExportReport, Progress, ProgressFn};
pub use inspect::{AccountInfo, CheckReport, StoreInfo, TableInfo, table_names};
pub use legacy::SkdmTracking;
pub use maintenance::{CompactReport, RestoreReport};
pub use retention::MaintenanceReport;
#[cfg(feature = "sqlite")]
pub use sqlite::{AccountImport, ImportOptions, ImportReport, export_sqlite, import_sqlite};
pub use store::{CloseOutcome, RedbStore};
