//! Typed access to the tables: [`Tx`] inside the writer's transaction,
//! [`Snapshot`] for readers. Domain modules use only these two; every change
//! made through a `Tx` is also recorded, byte for byte, for the journal.
//!
//! A write job reads and checks everything first and changes rows last, so
//! that once it has changed a row only a storage failure can stop it (and
//! that halts the writer): a job never fails half-applied, and its batch
//! never has to be undone or re-run. Hence [`TxTable::check`] and
//! [`TxTable::put_all`], which refuse oversized rows before the first write.

use std::borrow::Borrow;
use std::ops::Bound;
use std::path::Path;

use redb::{Key, ReadTransaction, ReadableTable, Value, WriteTransaction};

use crate::engine::catalog::{Bounds, Table, TableTag};
use crate::engine::journal::EffectLog;
use crate::error::{StorageError, StorageResult as Result, WriteError};

/// Longest key accepted (addresses, JIDs, ids). Real keys are < 200 bytes;
/// the cap keeps a hostile multi-megabyte key out of every B-tree branch
/// page it would otherwise be copied into.
pub(crate) const MAX_KEY_LEN: usize = 64 * 1024;

/// The rows `(device, name, ..)` of one exact `name` (a group, a phone, a
/// collection): owned, so a write job can carry it, and turned into key
/// bounds where used. Under bytewise order `name + "\0"` is the first string
/// after `name` and every string it prefixes, so it bounds them exactly.
pub(crate) struct NameRange {
    device: i32,
    name: String,
    next: String,
}

impl NameRange {
    pub fn new(device: i32, name: &str) -> Self {
        Self {
            device,
            name: name.to_owned(),
            next: format!("{name}\0"),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bounds for keys `(device, name, &str)`.
    pub fn str_keys(&self) -> Bounds<'_, (i32, &'static str, &'static str)> {
        (
            Bound::Included((self.device, self.name.as_str(), "")),
            Bound::Excluded((self.device, self.next.as_str(), "")),
        )
    }

    /// Bounds for keys `(device, name, &[u8])`.
    pub fn byte_keys(&self) -> Bounds<'_, (i32, &'static str, &'static [u8])> {
        (
            Bound::Included((self.device, self.name.as_str(), &[][..])),
            Bound::Excluded((self.device, self.next.as_str(), &[][..])),
        )
    }
}

/// Key order of a visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Ascending,
    Descending,
}

/// A visitor of entries: returns whether to go on.
type Visit<'f, K, V> =
    dyn FnMut(<K as Value>::SelfType<'_>, <V as Value>::SelfType<'_>) -> Result<bool> + 'f;

fn visit_in<'k, K: Key + 'static, V: Value + 'static>(
    table: &impl ReadableTable<K, V>,
    bounds: Bounds<'k, K>,
    order: Order,
    f: &mut Visit<'_, K, V>,
    path: &Path,
) -> Result<()> {
    let range = table
        .range(bounds)
        .map_err(|e| StorageError::storage(path, e))?;
    let mut step = |item: std::result::Result<_, redb::StorageError>| -> Result<bool> {
        let (k, v): (redb::AccessGuard<'_, K>, redb::AccessGuard<'_, V>) =
            item.map_err(|e| StorageError::storage(path, e))?;
        f(k.value(), v.value())
    };
    match order {
        Order::Ascending => {
            for item in range {
                if !step(item)? {
                    break;
                }
            }
        }
        Order::Descending => {
            for item in range.rev() {
                if !step(item)? {
                    break;
                }
            }
        }
    }
    Ok(())
}

fn get_in<'k, K: Key + 'static, V: Value + 'static, R>(
    table: &impl ReadableTable<K, V>,
    key: &K::SelfType<'k>,
    f: impl FnOnce(V::SelfType<'_>) -> R,
    path: &Path,
) -> Result<Option<R>> {
    let found = table.get(key).map_err(|e| StorageError::storage(path, e))?;
    Ok(found.map(|guard| f(guard.value())))
}

/// A read snapshot: sees every write acknowledged before it was taken.
pub(crate) struct Snapshot<'a> {
    txn: ReadTransaction,
    path: &'a Path,
}

impl<'a> Snapshot<'a> {
    pub fn new(txn: ReadTransaction, path: &'a Path) -> Self {
        Self { txn, path }
    }

    fn open<K: Key + 'static, V: Value + 'static>(
        &self,
        t: Table<K, V>,
    ) -> Result<redb::ReadOnlyTable<K, V>> {
        self.txn
            .open_table(t.def)
            .map_err(|e| StorageError::storage(self.path, e))
    }

    /// Looks up `key` and maps the value with `f`.
    pub fn get<'k, K: Key + 'static, V: Value + 'static, R>(
        &self,
        t: Table<K, V>,
        key: impl Borrow<K::SelfType<'k>>,
        f: impl FnOnce(V::SelfType<'_>) -> R,
    ) -> Result<Option<R>> {
        self.table(t)?.get(key, f)
    }

    /// Opens a table for many lookups.
    pub fn table<K: Key + 'static, V: Value + 'static>(
        &self,
        t: Table<K, V>,
    ) -> Result<SnapshotTable<'_, K, V>> {
        Ok(SnapshotTable {
            table: self.open(t)?,
            path: self.path,
        })
    }

    /// Visits the entries within `bounds` in key order until `f` returns
    /// `false`.
    pub fn visit<'k, K: Key + 'static, V: Value + 'static>(
        &self,
        t: Table<K, V>,
        bounds: Bounds<'k, K>,
        mut f: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> Result<bool>,
    ) -> Result<()> {
        visit_in(&self.open(t)?, bounds, Order::Ascending, &mut f, self.path)
    }

    /// Like [`Snapshot::visit`], in descending key order.
    pub fn visit_rev<'k, K: Key + 'static, V: Value + 'static>(
        &self,
        t: Table<K, V>,
        bounds: Bounds<'k, K>,
        mut f: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> Result<bool>,
    ) -> Result<()> {
        visit_in(&self.open(t)?, bounds, Order::Descending, &mut f, self.path)
    }

    pub fn path(&self) -> &Path {
        self.path
    }

    /// The underlying redb transaction, for whole-table copies.
    pub fn txn(&self) -> &ReadTransaction {
        &self.txn
    }
}

/// One table of a snapshot, open for many lookups.
pub(crate) struct SnapshotTable<'s, K: Key + 'static, V: Value + 'static> {
    table: redb::ReadOnlyTable<K, V>,
    path: &'s Path,
}

impl<K: Key + 'static, V: Value + 'static> SnapshotTable<'_, K, V> {
    /// Looks up `key` and maps the value with `f`.
    pub fn get<'k, R>(
        &self,
        key: impl Borrow<K::SelfType<'k>>,
        f: impl FnOnce(V::SelfType<'_>) -> R,
    ) -> Result<Option<R>> {
        get_in(&self.table, key.borrow(), f, self.path)
    }
}

/// The writer's view of its transaction. Every mutation goes through here
/// and is recorded in the effect log the journal persists.
pub(crate) struct Tx<'a> {
    txn: &'a WriteTransaction,
    log: &'a mut EffectLog,
    path: &'a Path,
    max_value: usize,
}

impl<'a> Tx<'a> {
    pub fn new(
        txn: &'a WriteTransaction,
        log: &'a mut EffectLog,
        path: &'a Path,
        max_value: usize,
    ) -> Self {
        Self {
            txn,
            log,
            path,
            max_value,
        }
    }

    fn open<K: Key + 'static, V: Value + 'static>(
        &self,
        t: Table<K, V>,
    ) -> Result<redb::Table<'a, K, V>> {
        self.txn
            .open_table(t.def)
            .map_err(|e| StorageError::storage(self.path, e))
    }

    fn err(&self, e: impl Into<redb::Error>) -> StorageError {
        StorageError::storage(self.path, e)
    }

    /// Opens a table for several operations (a batch opens each table
    /// once, not once per row).
    pub fn table<K: Key + 'static, V: Value + 'static>(
        &mut self,
        t: Table<K, V>,
    ) -> Result<TxTable<'_, 'a, K, V>, WriteError> {
        Ok(TxTable {
            table: self.open(t)?,
            log: self.log,
            tag: t.tag,
            path: self.path,
            max_value: self.max_value,
        })
    }

    /// Looks up `key` (seeing this transaction's own writes).
    pub fn get<'k, K: Key + 'static, V: Value + 'static, R>(
        &mut self,
        t: Table<K, V>,
        key: impl Borrow<K::SelfType<'k>>,
        f: impl FnOnce(V::SelfType<'_>) -> R,
    ) -> Result<Option<R>, WriteError> {
        self.table(t)?.get(key, f)
    }

    /// Visits the entries within `bounds` in key order until `f` returns
    /// `false`.
    pub fn visit<'k, K: Key + 'static, V: Value + 'static>(
        &self,
        t: Table<K, V>,
        bounds: Bounds<'k, K>,
        mut f: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> Result<bool>,
    ) -> Result<(), WriteError> {
        Ok(visit_in(
            &self.open(t)?,
            bounds,
            Order::Ascending,
            &mut f,
            self.path,
        )?)
    }

    /// Refuses a key or value of table `t` too large to store (see
    /// [`TxTable::check`]).
    pub fn check<'k, 'v, K: Key + 'static, V: Value + 'static>(
        &self,
        _t: Table<K, V>,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<(), WriteError> {
        check_row::<K, V>(key.borrow(), value.borrow(), self.max_value)
    }

    /// Inserts or replaces `key`.
    pub fn put<'k, 'v, K: Key + 'static, V: Value + 'static>(
        &mut self,
        t: Table<K, V>,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<(), WriteError> {
        self.table(t)?.put(key, value)
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove<'k, K: Key + 'static, V: Value + 'static>(
        &mut self,
        t: Table<K, V>,
        key: impl Borrow<K::SelfType<'k>>,
    ) -> Result<bool, WriteError> {
        self.table(t)?.remove(key)
    }

    /// Removes every entry within `bounds`; returns how many.
    pub fn delete_range<'k, K: Key + 'static, V: Value + 'static>(
        &mut self,
        t: Table<K, V>,
        bounds: Bounds<'k, K>,
    ) -> Result<u64, WriteError> {
        let encoded = encode_bounds::<K>(&bounds);
        let mut removed = 0u64;
        self.open(t)?
            .retain_in(bounds, |_, _| {
                removed += 1;
                false
            })
            .map_err(|e| self.err(e))?;
        if removed > 0 {
            self.log
                .delete_range(t.tag, as_ref(&encoded.0), as_ref(&encoded.1), removed);
        }
        Ok(removed)
    }

    /// Removes the entries within `bounds` for which `pred` holds; returns
    /// how many.
    pub fn delete_where<'k, K: Key + 'static, V: Value + 'static>(
        &mut self,
        t: Table<K, V>,
        bounds: Bounds<'k, K>,
        mut pred: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> bool,
    ) -> Result<u32, WriteError> {
        // Find, then delete. Not redb's `extract_from_if`: on a damaged page
        // its iterator panics, and panics again in its `Drop` while
        // unwinding, which aborts the process.
        let mut doomed: Vec<Vec<u8>> = Vec::new();
        self.visit(t, bounds, |k, v| {
            let key = K::as_bytes(&k).as_ref().to_vec();
            if pred(k, v) {
                doomed.push(key);
            }
            Ok(true)
        })?;
        let mut table = self.table(t)?;
        for key in &doomed {
            table.remove(K::from_bytes(key))?;
        }
        Ok(doomed.len() as u32)
    }

    /// Applies one journal effect (recovery), recording nothing.
    fn apply_raw<K: Key + 'static, V: Value + 'static>(
        txn: &WriteTransaction,
        t: Table<K, V>,
        effect: &crate::engine::journal::Effect<'_>,
        path: &Path,
    ) -> Result<()> {
        use crate::engine::journal::Effect;
        let err = |e: redb::StorageError| StorageError::storage(path, e);
        let mut table = txn
            .open_table(t.def)
            .map_err(|e| StorageError::storage(path, e))?;
        match effect {
            Effect::Put { key, value, .. } => {
                table
                    .insert(K::from_bytes(key), V::from_bytes(value))
                    .map_err(err)?;
            }
            Effect::Delete { key, .. } => {
                table.remove(K::from_bytes(key)).map_err(err)?;
            }
            Effect::DeleteRange { lower, upper, .. } => {
                let bounds: Bounds<'_, K> = (decode_bound::<K>(lower), decode_bound::<K>(upper));
                table.retain_in(bounds, |_, _| false).map_err(err)?;
            }
        }
        Ok(())
    }
}

/// Applies one journal effect to `table` (recovery, through the catalog
/// that knows the table's types), recording nothing.
pub(crate) fn apply_effect<K: Key + 'static, V: Value + 'static>(
    txn: &WriteTransaction,
    table: Table<K, V>,
    effect: &crate::engine::journal::Effect<'_>,
    path: &Path,
) -> Result<()> {
    Tx::apply_raw(txn, table, effect, path)
}

/// One table open in the writer's transaction. Every change is recorded
/// in the effect log the journal persists.
pub(crate) struct TxTable<'t, 'a, K: Key + 'static, V: Value + 'static> {
    table: redb::Table<'a, K, V>,
    log: &'t mut EffectLog,
    tag: TableTag,
    path: &'a Path,
    max_value: usize,
}

impl<K: Key + 'static, V: Value + 'static> TxTable<'_, '_, K, V> {
    /// Looks up `key` (seeing this transaction's own writes).
    pub fn get<'k, R>(
        &self,
        key: impl Borrow<K::SelfType<'k>>,
        f: impl FnOnce(V::SelfType<'_>) -> R,
    ) -> Result<Option<R>, WriteError> {
        Ok(get_in(&self.table, key.borrow(), f, self.path)?)
    }

    /// Refuses a key or value too large to store. A job that writes several
    /// rows checks them all this way before its first write (see
    /// [`TxTable::put_all`]), so that it cannot fail half-way.
    pub fn check<'k, 'v>(
        &self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<(), WriteError> {
        check_row::<K, V>(key.borrow(), value.borrow(), self.max_value)
    }

    /// Like [`TxTable::check`], for a value of `value_len` bytes (an upper
    /// bound of a value computed later, as by [`TxTable::put_merged`]).
    pub fn check_len<'k>(
        &self,
        key: impl Borrow<K::SelfType<'k>>,
        value_len: usize,
    ) -> Result<(), WriteError> {
        check_sizes(
            K::as_bytes(key.borrow()).as_ref().len(),
            value_len,
            self.max_value,
        )
    }

    /// Inserts or replaces `key`. Oversized keys and values are refused
    /// before anything changes.
    pub fn put<'k, 'v>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<(), WriteError> {
        let (key, value) = (key.borrow(), value.borrow());
        let kb = K::as_bytes(key);
        let vb = V::as_bytes(value);
        let (kb, vb) = (kb.as_ref(), vb.as_ref());
        check_sizes(kb.len(), vb.len(), self.max_value)?;
        let path = self.path;
        self.table
            .insert(key, value)
            .map_err(|e| StorageError::storage(path, e))?;
        self.log.put(self.tag, kb, vb);
        Ok(())
    }

    /// Inserts or replaces every row, or none: all are checked first, so
    /// only a storage failure (which halts the writer) can stop it part-way.
    pub fn put_all<'k, 'v, KB, VB, I>(&mut self, rows: I) -> Result<(), WriteError>
    where
        I: IntoIterator<Item = (KB, VB)> + Clone,
        KB: Borrow<K::SelfType<'k>>,
        VB: Borrow<V::SelfType<'v>>,
    {
        for (key, value) in rows.clone() {
            self.check(key, value)?;
        }
        for (key, value) in rows {
            self.put(key, value)?;
        }
        Ok(())
    }

    /// Removes `key`; returns whether it was present.
    pub fn remove<'k>(&mut self, key: impl Borrow<K::SelfType<'k>>) -> Result<bool, WriteError> {
        let key = key.borrow();
        let found = self
            .table
            .remove(key)
            .map_err(|e| StorageError::storage(self.path, e))?
            .is_some();
        if found {
            self.log.delete(self.tag, K::as_bytes(key).as_ref());
        }
        Ok(found)
    }
}

impl<K: Key + 'static> TxTable<'_, '_, K, &'static [u8]> {
    /// Upsert with a merge, in one B-tree walk when `key` is new: inserts
    /// `value`; if `key` held a value, `merge(old)` computes the value to
    /// store instead (the common case of a new key pays no lookup). The
    /// merge cannot fail: the caller checks the key and the largest value a
    /// merge can give ([`TxTable::check_len`]) before its first write.
    pub fn put_merged<'k>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: &[u8],
        merge: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> Result<(), WriteError> {
        let key = key.borrow();
        let kb = K::as_bytes(key);
        check_sizes(kb.as_ref().len(), value.len(), self.max_value)?;
        let path = self.path;
        let merged = self
            .table
            .insert(key, value)
            .map_err(|e| StorageError::storage(path, e))?
            .map(|old| merge(old.value()));
        match merged {
            Some(v) => {
                if let Err(e) = check_sizes(kb.as_ref().len(), v.len(), self.max_value) {
                    // A merge beyond its caller's bound: the insert above
                    // changed the table, so it is recorded, and the writer
                    // drops the batch (see `writer`).
                    self.log.put(self.tag, kb.as_ref(), value);
                    return Err(e);
                }
                self.table
                    .insert(key, v.as_slice())
                    .map_err(|e| StorageError::storage(path, e))?;
                self.log.put(self.tag, kb.as_ref(), &v);
                Ok(())
            }
            None => {
                self.log.put(self.tag, kb.as_ref(), value);
                Ok(())
            }
        }
    }
}

/// Refuses a row whose key or value is too large (see [`check_sizes`]).
fn check_row<K: Key, V: Value>(
    key: &K::SelfType<'_>,
    value: &V::SelfType<'_>,
    max_value: usize,
) -> Result<(), WriteError> {
    check_sizes(
        K::as_bytes(key).as_ref().len(),
        V::as_bytes(value).as_ref().len(),
        max_value,
    )
}

/// The size limits of a row: keys up to [`MAX_KEY_LEN`], values up to the
/// handle's `max_value_size`.
fn check_sizes(key_len: usize, value_len: usize, max_value: usize) -> Result<(), WriteError> {
    if key_len > MAX_KEY_LEN {
        return Err(WriteError::ValueTooLarge {
            what: "key",
            len: key_len,
            limit: MAX_KEY_LEN,
        });
    }
    if value_len > max_value {
        return Err(WriteError::ValueTooLarge {
            what: "value",
            len: value_len,
            limit: max_value,
        });
    }
    Ok(())
}

fn encode_bounds<K: Key>(bounds: &Bounds<'_, K>) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let enc = |b: &Bound<K::SelfType<'_>>| match b {
        Bound::Included(x) => Bound::Included(K::as_bytes(x).as_ref().to_vec()),
        Bound::Excluded(x) => Bound::Excluded(K::as_bytes(x).as_ref().to_vec()),
        Bound::Unbounded => Bound::Unbounded,
    };
    (enc(&bounds.0), enc(&bounds.1))
}

fn decode_bound<'a, K: Key>(b: &Bound<&'a [u8]>) -> Bound<K::SelfType<'a>> {
    match *b {
        Bound::Included(x) => Bound::Included(K::from_bytes(x)),
        Bound::Excluded(x) => Bound::Excluded(K::from_bytes(x)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(x) => Bound::Included(x.as_slice()),
        Bound::Excluded(x) => Bound::Excluded(x.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}
