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

// Layers, each using only those listed before it (ARCHITECTURE.md):
// the shared vocabulary (errors, configuration, clock, telemetry, fault
// hooks); the engine (one open file, knowing no WhatsApp table); the tables
// (the catalog the engine is given); the handle (`RedbStore`); the trait
// domains; whole-file operations.
mod clock;
mod config;
mod error;
// The fault-injection hooks are public only for tests (feature
// `fault-injection`, which `cargo test --workspace` turns on).
#[cfg(feature = "fault-injection")]
pub mod fault;
#[cfg(not(feature = "fault-injection"))]
#[allow(dead_code, unreachable_pub)]
pub(crate) mod fault;
pub mod telemetry;

mod domain;
mod engine;
mod handle;
mod ops;
mod tables;

pub use config::{EncryptionKey, IntegrityCheck, PageProtection, RedbStoreConfig, Synchronous};
pub use domain::legacy::SkdmTracking;
pub use engine::LookReport;
pub use engine::Packing;
pub use engine::RecoveryReport;
pub use error::{Error, KeyProblem};
pub use handle::{CloseOutcome, RedbStore};
pub use ops::backup::RestoreReport;
pub use ops::compact::CompactReport;
#[cfg(feature = "cli")]
pub use ops::dump::{DumpOptions, DumpRow};
pub use ops::export::{ExportOptions, ExportReport, Progress, ProgressFn};
pub use ops::inspect::{AccountInfo, CheckReport, StoreInfo, TableInfo, table_names};
pub use ops::maintenance::MaintenanceReport;
pub use ops::rekey::Rekey;
#[cfg(feature = "replica")]
pub use ops::replica::options::ReplicationOptions;
#[cfg(feature = "replica")]
pub use ops::replica::restore::{ReplicaRestoreOptions, ReplicaRestored};
#[cfg(feature = "replica")]
pub use ops::replica::snapshot::ReplicaSnapshot;
#[cfg(feature = "replica")]
pub use ops::replica::stream::{ReplicaRecords, ReplicationStatus};
#[cfg(feature = "replica")]
pub use ops::replica::target::ReplicaTarget;
pub use ops::salvage::{SalvageReport, TableSalvage};
#[cfg(feature = "sqlite")]
pub use ops::sqlite::{AccountImport, ImportOptions, ImportReport, export_sqlite, import_sqlite};
