//! A pure-Rust storage backend for [whatsapp-rust](https://crates.io/crates/whatsapp-rust)
//! on [redb](https://crates.io/crates/redb): a drop-in replacement for
//! `SqliteStore` in a single file, with no C toolchain.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wacore::store::error::StoreError> {
//! use wacore::store::traits::SignalStore;
//! use whatsapp_rust_redb_storage::RedbStore;
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("whatsapp.redb");
//! // Instead of `SqliteStore::new("whatsapp.db")`:
//! let store = RedbStore::new(&path).await?;
//! store.put_session("5511987650001:1@c.us.0", b"session record").await?;
//! store.close().await?;
//!
//! let store = RedbStore::new(&path).await?;
//! let session = store.get_session("5511987650001:1@c.us.0").await?;
//! assert_eq!(session.as_deref(), Some(&b"session record"[..]));
//! # Ok(()) }
//! ```
//!
//! What a user reaches:
//! - [`RedbStore`]: the handle, implementing every wacore 0.7 store trait
//!   (`Backend`); its constructors mirror SqliteStore's, and
//!   [`RedbStore::for_device`] gives other accounts of the same file.
//! - [`RedbStoreConfig`] and [`Synchronous`]: durability, checkpoints,
//!   cache, limits, retention; see the README's "Configuration and
//!   durability".
//! - Operations on a store: [`RedbStore::backup_to`],
//!   [`RedbStore::restore_file`], [`RedbStore::compact_file`],
//!   [`RedbStore::delete_device`], [`RedbStore::maintenance`],
//!   [`RedbStore::info`], [`RedbStore::check_file`],
//!   [`RedbStore::open_to_look`] (never writes; works on a store in use),
//!   [`RedbStore::export_to_backend`] (an account to any `Backend`); with
//!   feature `cli`, `RedbStore::dump`; with feature `sqlite`,
//!   `import_sqlite` and `export_sqlite`.
//! - [`Error`]: what went wrong, naming the file and what to do; a
//!   `StoreError` carries it as its source ([`Error::find_in`]).
//!
//! Features: `cli` (the `wa-redb` tool and `dump`), `sqlite` (SQLite
//! import/export; compiles C SQLite), `bot` (the whatsapp-rust example).

#![warn(missing_docs)]

mod appstate;
mod catalog;
mod clock;
mod codec;
mod config;
mod device;
#[cfg(feature = "cli")]
mod dump;
mod engine;
mod error;
mod export;
// The fault-injection hooks are public only for tests (feature
// `fault-injection`, which `cargo test --workspace` turns on).
#[cfg(feature = "fault-injection")]
pub mod fault;
#[cfg(not(feature = "fault-injection"))]
#[allow(dead_code, unreachable_pub)]
pub(crate) mod fault;
mod inspect;
mod keys;
mod legacy;
mod maintenance;
mod msg_secret;
mod protocol;
mod retention;
mod salvage;
mod shape;
mod signal;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
pub mod telemetry;

pub use config::{EncryptionKey, IntegrityCheck, PageProtection, RedbStoreConfig, Synchronous};
#[cfg(feature = "cli")]
pub use dump::{DumpOptions, DumpRow};
pub use engine::look::LookReport;
pub use engine::recovery::RecoveryReport;
pub use error::{Error, KeyProblem};
pub use export::{ExportOptions, ExportReport, Progress, ProgressFn};
pub use inspect::{AccountInfo, CheckReport, StoreInfo, TableInfo, table_names};
pub use keys::Rekey;
pub use legacy::SkdmTracking;
pub use maintenance::{CompactReport, Packing, RestoreReport};
pub use retention::MaintenanceReport;
pub use salvage::{SalvageReport, TableSalvage};
#[cfg(feature = "sqlite")]
pub use sqlite::{AccountImport, ImportOptions, ImportReport, export_sqlite, import_sqlite};
pub use store::{CloseOutcome, RedbStore};
