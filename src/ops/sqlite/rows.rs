//! Writing imported rows into a store file, in chunks, and counting them.

use super::*;

// ---------------------------------------------------------------------------
// Store side
// ---------------------------------------------------------------------------

/// The owned form of a key (after the device id) and the store key it
/// stands for.
pub(crate) trait RowKey: Send + Sync + 'static {
    type K: StoreKey + Send + Sync;
    /// The store key of device `d`, borrowing this one's parts.
    fn key(&self, d: i32) -> <Self::K as redb::Value>::SelfType<'_>;
    fn len(&self) -> usize;
}

/// `RowKey` for an owned key type: the store key type, how to borrow the
/// owned key's parts (`k` is the owned key) and its length in bytes.
macro_rules! row_key {
    ($( $owned:ty => $key:ty, |$k:ident| ($($part:expr),+), len $len:expr; )*) => {$(
        impl RowKey for $owned {
            type K = $key;
            fn key(&self, d: i32) -> <Self::K as redb::Value>::SelfType<'_> {
                let $k = self;
                (d, $($part),+)
            }
            fn len(&self) -> usize {
                let $k = self;
                $len
            }
        }
    )*};
}

row_key! {
    String => (i32, &'static str), |k| (k.as_str()), len k.len();
    u32 => (i32, u32), |k| (*k), len { let _ = k; 4 };
    Vec<u8> => (i32, &'static [u8]), |k| (k.as_slice()), len k.len();
    (String, Vec<u8>) => (i32, &'static str, &'static [u8]),
        |k| (k.0.as_str(), k.1.as_slice()), len k.0.len() + k.1.len();
    (String, String) => (i32, &'static str, &'static str),
        |k| (k.0.as_str(), k.1.as_str()), len k.0.len() + k.1.len();
    (String, String, String) => (i32, &'static str, &'static str, &'static str),
        |k| (k.0.as_str(), k.1.as_str(), k.2.as_str()), len k.0.len() + k.1.len() + k.2.len();
}

/// Rows per write transaction, at most.
pub(crate) const CHUNK_ROWS: usize = 2000;
/// Bytes per write transaction, about.
pub(crate) const CHUNK_BYTES: usize = 4 << 20;

/// Splits rows into write-sized chunks.
pub(crate) fn chunks<T>(rows: Vec<T>, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut bytes = 0;
    for row in rows {
        bytes += size(&row);
        cur.push(row);
        if cur.len() >= CHUNK_ROWS || bytes >= CHUNK_BYTES {
            out.push(std::mem::take(&mut cur));
            bytes = 0;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Counts rows written (and skipped) and reports progress.
pub(crate) struct Tally {
    pub(crate) progress: Option<ProgressFn>,
    pub(crate) device: i32,
    pub(crate) done: u64,
    pub(crate) total: u64,
    pub(crate) rows: BTreeMap<&'static str, u64>,
    /// Rows not imported: (SqliteStore table, reason).
    pub(crate) skipped: Vec<(&'static str, String)>,
}

impl Tally {
    /// A row of SqliteStore `table` that cannot be imported.
    pub(crate) fn skip(&mut self, table: &'static str, why: String) {
        self.skipped.push((table, why));
        self.done += 1;
    }

    pub(crate) fn add(&mut self, table: &'static str, n: usize) {
        if n == 0 {
            return;
        }
        *self.rows.entry(table).or_default() += n as u64;
        self.done += n as u64;
        if let Some(p) = &self.progress {
            let stage = format!("device {}: {}", self.device, table);
            p(&Progress {
                stage: &stage,
                done: self.done,
                total: self.total,
            });
        }
    }
}

/// Writes `(key, value)` rows of device `d` into `table`, one transaction
/// per chunk.
pub(crate) async fn put_rows<R: RowKey>(
    store: &RedbStore,
    table: Table<R::K, &'static [u8]>,
    d: i32,
    rows: Vec<(R, Vec<u8>)>,
    tally: &mut Tally,
) -> Result<(), StoreError> {
    for chunk in chunks(rows, |(k, v)| k.len() + v.len() + 8) {
        let n = chunk.len();
        let weight = chunk.iter().map(|(k, v)| k.len() + v.len()).sum();
        let chunk = Arc::new(chunk);
        store
            .write(weight, move |tx| {
                tx.table(table)?
                    .put_all(chunk.iter().map(|(k, v)| (k.key(d), v.as_slice())))
            })
            .await?;
        tally.add(table.name, n);
    }
    Ok(())
}

/// Rows per table of one device in a store (tables without rows omitted).
pub(crate) fn device_row_counts(s: &Snapshot<'_>, d: i32) -> Result<HashMap<TableId, u64>> {
    struct Count<'a, 'b> {
        s: &'a Snapshot<'b>,
        d: i32,
        out: HashMap<TableId, u64>,
    }
    impl TableVisitor for Count<'_, '_> {
        type Error = StorageError;

        fn visit<K: StoreKey, V: Value + 'static>(
            &mut self,
            id: TableId,
            table: Table<K, V>,
        ) -> StorageResult<()> {
            let Some(bounds) = K::device_range(self.d) else {
                return Ok(());
            };
            let mut n = 0u64;
            self.s.visit(table, bounds, |_, _| {
                n += 1;
                Ok(true)
            })?;
            if n > 0 {
                self.out.insert(id, n);
            }
            Ok(())
        }
    }
    let mut c = Count {
        s,
        d,
        out: HashMap::new(),
    };
    tables::visit_all(&mut c)?;
    Ok(c.out)
}

/// Compares the rows of device `d` in both files; `skipped` rows of the
/// SQLite side (by SQLite table) are not expected in the store.
pub(crate) fn compare_counts(
    d: i32,
    sql: &BTreeMap<&'static str, u64>,
    skipped: &HashMap<&'static str, u64>,
    store: &HashMap<TableId, u64>,
    problems: &mut Vec<String>,
) {
    let mut covered = BTreeSet::new();
    for table in SQL_TABLES {
        let expected = sql.get(table.name).copied().unwrap_or(0)
            - skipped.get(table.name).copied().unwrap_or(0);
        for id in table.into {
            covered.insert(*id as u8);
            let got = store.get(id).copied().unwrap_or(0);
            if got != expected {
                problems.push(format!(
                    "device {d}: SQLite table {} has {expected} row(s) to copy, store table {} has {got}",
                    table.name,
                    id.name()
                ));
            }
        }
    }
    for (id, n) in store {
        if !covered.contains(&(*id as u8)) {
            problems.push(format!(
                "device {d}: store table {} has {n} unexpected row(s)",
                id.name()
            ));
        }
    }
}

// ---------------------------------------------------------------------------
