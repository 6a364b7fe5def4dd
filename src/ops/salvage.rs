//! Salvage: copies what a damaged store still holds into a new store, and
//! says per table what came back and what was lost.
//!
//! The damaged file is opened to look at (nothing is written to it, its
//! journal is applied in memory). Each table is read forward from its first
//! key until a page fails to verify, then backward from its last key down to
//! where the forward pass stopped: a damaged page costs the rows under it,
//! not the rest of the table. Every row is decoded as its table's encoding
//! says before it is copied; a row that does not decode is counted and left
//! out. Tables are copied in catalog order, the device record and the
//! identity keys (what keeps an account paired) first.

use std::path::{Path, PathBuf};

use redb::{Value, WriteTransaction};
use serde::Serialize;
use wacore::store::error::StoreError;

use crate::config::RedbStoreConfig;
use crate::engine::{Engine, Keying, create_bare_temp, files};
use crate::error::{FileOpError, StorageError};

type Result<T, E = FileOpError> = std::result::Result<T, E>;
use crate::handle::RedbStore;
use crate::ops::inspect::validate_value;
use crate::ops::whole_file::{copy_counters, publish, refuse_existing};
use crate::tables::every_row;
use crate::tables::{self, StoreKey, Table, TableId, TableVisitor};

/// What salvage recovered of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableSalvage {
    /// The table's name (as in schema.md).
    pub table: &'static str,
    /// Rows copied to the new store.
    pub recovered: u64,
    /// Rows read whose value does not decode: left out.
    pub undecodable: u64,
    /// Why part of the table (or all of it) could not be read, if so: the
    /// rows under the damaged pages are lost, how many is not known.
    pub unreadable: Option<String>,
}

impl TableSalvage {
    /// Whether every row of the table came back.
    pub fn complete(&self) -> bool {
        self.undecodable == 0 && self.unreadable.is_none()
    }
}

/// What [`RedbStore::salvage_file`] did.
#[derive(Debug, Clone, Serialize)]
pub struct SalvageReport {
    /// The damaged store read (never written).
    pub source: PathBuf,
    /// The new store written.
    pub target: PathBuf,
    /// The accounts (device ids) whose device record came back.
    pub accounts: Vec<i32>,
    /// Per table, in catalog order.
    pub tables: Vec<TableSalvage>,
    /// Why the damaged store's journal was not applied in full, if it was
    /// not.
    pub journal_stopped: Option<String>,
}

impl SalvageReport {
    /// Whether everything came back (the store was not damaged where it
    /// holds rows).
    pub fn complete(&self) -> bool {
        self.tables.iter().all(TableSalvage::complete) && self.journal_stopped.is_none()
    }
}

impl RedbStore {
    /// Copies every row of the damaged store `damaged` (opened with
    /// `config`'s key if it is encrypted; never written to, and it may be
    /// in use) that still verifies and decodes into a new store at `out`,
    /// which must not exist, keyed as `out_config` says; reports per table
    /// what came back and what was lost. Fails only if the damaged store
    /// cannot be opened at all (its header, its superblock or redb's table
    /// of tables is damaged): then nothing can be copied.
    pub fn salvage_file(
        damaged: impl AsRef<Path>,
        config: &RedbStoreConfig,
        out: impl AsRef<Path>,
        out_config: &RedbStoreConfig,
    ) -> std::result::Result<SalvageReport, StoreError> {
        let source = crate::engine::canonical(damaged.as_ref())?;
        let target = out.as_ref().to_path_buf();
        crate::telemetry::file_span!("wa_redb.salvage", source);
        out_config.validate()?;
        refuse_existing(&target)?;
        let key = config.encryption.as_ref();
        let engine = Engine::open_to_look(crate::tables::CATALOG, &source, false, key)?;
        let journal_stopped = engine.recovery.stopped.clone();
        let (tmp, db) = create_bare_temp(
            crate::tables::CATALOG,
            &target,
            files::TempKind::Partial,
            None,
            Keying::of(out_config),
        )
        .map_err(|e| e.with_path(&target))?;
        let copied = crate::engine::contain_panic(&source, || {
            let txn = crate::engine::begin_durable(&db, &tmp)?;
            let mut copy = Salvage {
                source: &source,
                key,
                engine: Some(engine),
                to: &txn,
                target: &tmp,
                tables: Vec::new(),
                accounts: Vec::new(),
            };
            tables::visit_all(&mut copy)?;
            copy_counters(&copy.current()?.snapshot()?, &txn, &tmp)?;
            let (tables, accounts) = (copy.tables, copy.accounts);
            txn.commit().map_err(|e| StorageError::storage(&tmp, e))?;
            db.close().map_err(|e| StorageError::storage(&tmp, e))?;
            Ok((tables, accounts))
        });
        let (tables, accounts) = match copied.and_then(|c| publish(&tmp, &target).map(|()| c)) {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e.into());
            }
        };
        Ok(SalvageReport {
            source,
            target,
            accounts,
            tables,
            journal_stopped,
        })
    }
}

/// Copies the readable, decodable rows of every table but the meta table.
struct Salvage<'a> {
    source: &'a Path,
    key: Option<&'a crate::config::EncryptionKey>,
    /// The damaged store, open to look at; `None` after a read failed: redb
    /// latches an I/O error (every later read of that handle fails), so the
    /// next read opens it again.
    engine: Option<Engine>,
    to: &'a WriteTransaction,
    target: &'a Path,
    tables: Vec<TableSalvage>,
    accounts: Vec<i32>,
}

impl Salvage<'_> {
    /// The damaged store, opened again if the last read failed.
    fn current(&mut self) -> Result<&Engine> {
        if self.engine.is_none() {
            self.engine = Some(Engine::open_to_look(
                crate::tables::CATALOG,
                self.source,
                false,
                self.key,
            )?);
        }
        Ok(self.engine.as_ref().expect("just opened"))
    }
}

impl TableVisitor for Salvage<'_> {
    type Error = FileOpError;

    fn visit<K: StoreKey, V: Value + 'static>(
        &mut self,
        id: TableId,
        table: Table<K, V>,
    ) -> Result<()> {
        if id == TableId::META {
            return Ok(());
        }
        let target = self.target;
        let mut dst = self
            .to
            .open_table(table.def)
            .map_err(|e| StorageError::storage(target, e))?;
        let mut report = TableSalvage {
            table: id.name(),
            recovered: 0,
            undecodable: 0,
            unreadable: None,
        };
        let mut accounts = Vec::new();
        // A write to the new store that fails is not damage: it ends the
        // salvage (kept here, the visit stopped).
        let mut failed = None;
        let mut copy = |k: K::SelfType<'_>, v: V::SelfType<'_>, report: &mut TableSalvage| {
            if validate_value(id, V::as_bytes(&v).as_ref()).is_err() {
                report.undecodable += 1;
                return true;
            }
            if id == TableId::DEVICES
                && let Some(d) = K::device_of(&k)
            {
                accounts.push(d);
            }
            match dst.insert(k, v) {
                Ok(_) => {
                    report.recovered += 1;
                    true
                }
                Err(e) => {
                    failed = Some(StorageError::storage(target, e));
                    false
                }
            }
        };
        // Forward, remembering the last key read.
        let mut last: Option<Vec<u8>> = None;
        let forward = self
            .current()?
            .snapshot()?
            .visit(table, every_row::<K>(), |k, v| {
                last = Some(K::as_bytes(&k).as_ref().to_vec());
                Ok(copy(k, v, &mut report))
            });
        if let Err(e) = forward {
            report.unreadable = Some(e.to_string());
            self.engine = None;
            // Backward from the end, down to where the forward pass got.
            // (An error here only ends the backward pass: what it could
            // not reach is under the damage too.)
            let backward =
                self.current()?
                    .snapshot()?
                    .visit_rev(table, every_row::<K>(), |k, v| {
                        let beyond = last
                            .as_deref()
                            .is_none_or(|l| K::compare(K::as_bytes(&k).as_ref(), l).is_gt());
                        Ok(beyond && copy(k, v, &mut report))
                    });
            if backward.is_err() {
                self.engine = None;
            }
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
        self.accounts.extend(accounts);
        self.tables.push(report);
        Ok(())
    }
}
