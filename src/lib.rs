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

mod appstate;
mod catalog;
mod codec;
mod config;
mod device;
mod engine;
mod error;
pub mod fault;
mod inspect;
mod legacy;
mod maintenance;
mod msg_secret;
mod protocol;
mod signal;
mod store;

pub use config::{IntegrityCheck, RedbStoreConfig, Synchronous};
pub use engine::recovery::RecoveryReport;
pub use error::Error;
pub use inspect::{AccountInfo, CheckReport, StoreInfo, TableInfo, table_names};
pub use legacy::SkdmTracking;
pub use maintenance::CompactReport;
pub use store::RedbStore;
