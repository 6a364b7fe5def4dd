//! The stores under test: RedbStore (Normal, Full) and SqliteStore (default, FULL).

use std::path::Path;
use std::sync::Arc;

use wacore::store::traits::Backend;
use whatsapp_rust_redb_storage::{PageProtection, RedbStore, RedbStoreConfig, Synchronous};
use whatsapp_rust_sqlite_storage::{
    SqliteStore, SqliteStoreConfig, Synchronous as SqliteSynchronous,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    RedbNormal,
    RedbFull,
    SqliteNormal,
    SqliteFull,
}

/// Column order of every table.
pub(crate) const KINDS: [Kind; 4] = [
    Kind::RedbNormal,
    Kind::RedbFull,
    Kind::SqliteNormal,
    Kind::SqliteFull,
];

impl Kind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::RedbNormal => "RedbStore Normal",
            Kind::RedbFull => "RedbStore Full",
            Kind::SqliteNormal => "SqliteStore default",
            Kind::SqliteFull => "SqliteStore FULL",
        }
    }

    pub(crate) fn slug(self) -> &'static str {
        match self {
            Kind::RedbNormal => "redb",
            Kind::RedbFull => "redb-full",
            Kind::SqliteNormal => "sqlite",
            Kind::SqliteFull => "sqlite-full",
        }
    }

    pub(crate) fn from_slug(s: &str) -> Option<Kind> {
        KINDS.into_iter().find(|k| k.slug() == s)
    }

    pub(crate) fn file_name(self) -> &'static str {
        match self {
            Kind::RedbNormal | Kind::RedbFull => "store.redb",
            Kind::SqliteNormal | Kind::SqliteFull => "store.db",
        }
    }
}

pub(crate) enum Store {
    Redb(RedbStore),
    Sqlite(SqliteStore),
}

impl Store {
    /// Opens the store of `kind` in `dir` (its usual file name), device 1.
    pub(crate) async fn open(kind: Kind, dir: &Path) -> Store {
        Store::open_at(kind, &dir.join(kind.file_name()), 1).await
    }

    /// Opens the store file `path` of `kind` for account `device`, with
    /// each store's defaults (Full: synchronous FULL).
    pub(crate) async fn open_at(kind: Kind, path: &Path, device: i32) -> Store {
        match kind {
            Kind::RedbNormal | Kind::RedbFull => {
                let mut config = RedbStoreConfig::default();
                if kind == Kind::RedbFull {
                    config = config.with_synchronous(Synchronous::Full);
                }
                // For the overhead of protected pages and of encryption:
                // the same run on plain (format v1) or encrypted files.
                match std::env::var("WA_BENCH_REDB_PROTECTION").as_deref() {
                    Ok("off") => config = config.with_page_protection(PageProtection::Off),
                    Ok("encrypted") => config = config.with_encryption_key([0xBE; 32]),
                    _ => {}
                }
                Store::Redb(
                    RedbStore::with_config_for_device(path, device, config)
                        .await
                        .expect("open RedbStore"),
                )
            }
            Kind::SqliteNormal | Kind::SqliteFull => {
                let config = SqliteStoreConfig {
                    synchronous: if kind == Kind::SqliteFull {
                        SqliteSynchronous::Full
                    } else {
                        SqliteSynchronous::Normal
                    },
                    ..Default::default()
                };
                let url = path.to_str().expect("utf-8 temp path");
                Store::Sqlite(
                    SqliteStore::with_config_for_device(url, device, config)
                        .await
                        .expect("open SqliteStore"),
                )
            }
        }
    }

    /// Opens a fresh store and writes its device row (the client always has
    /// one; SqliteStore's LID table has a foreign key on it).
    pub(crate) async fn open_fresh(kind: Kind, dir: &Path) -> Store {
        let store = Store::open(kind, dir).await;
        store.b().create().await.expect("create device");
        store
    }

    pub(crate) fn b(&self) -> &dyn Backend {
        match self {
            Store::Redb(s) => s,
            Store::Sqlite(s) => s,
        }
    }

    /// An owned handle, as the client holds it (`Arc<dyn Backend>`).
    pub(crate) fn arc(&self) -> Arc<dyn Backend> {
        match self {
            Store::Redb(s) => Arc::new(s.clone()),
            Store::Sqlite(s) => Arc::new(s.clone()),
        }
    }

    /// Closes the store as the client does, by dropping it: both close
    /// their file before the drop returns (RedbStore: redb's close and the
    /// journal's removal; SqliteStore: its connections, checkpointing the
    /// WAL).
    pub(crate) async fn close(self) {
        drop(self);
    }
}
