use std::io;
use std::sync::{Arc, Mutex};

use redb::{
    BackendError, Database, ReadableDatabase, ReadableTable, StorageBackend, TableDefinition,
};

use super::layout::{self, BLOCK, DATA_BASE, ENCRYPTED, Geometry, VERIFIED};
use super::open::UnlockError;
use super::{Damaged, NewKey, ProtectedStorage};
use crate::config::EncryptionKey;
use crate::engine::storage::IoStats;
use crate::error::KeyProblem;

/// Each test runs in both modes: verified (no key) and encrypted.
pub(super) fn modes() -> [Option<EncryptionKey>; 2] {
    [None, Some(EncryptionKey::raw([0x5A; 32]))]
}

pub(super) fn geometry(key: &Option<EncryptionKey>) -> Geometry {
    if key.is_some() { ENCRYPTED } else { VERIFIED }
}

const T: TableDefinition<u64, &[u8]> = TableDefinition::new("t");

/// Bytes in memory that outlive the database over them, so a test can
/// reopen them, damage them, or keep only what was written before a point.
#[derive(Debug, Clone, Default)]
pub(super) struct Mem(pub(super) Arc<Mutex<Vec<u8>>>);

impl StorageBackend for Mem {
    fn len(&self) -> Result<u64, BackendError> {
        Ok(self.0.lock().unwrap().len() as u64)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendError> {
        let b = self.0.lock().unwrap();
        let end = offset as usize + out.len();
        if end > b.len() {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        out.copy_from_slice(&b[offset as usize..end]);
        Ok(())
    }
    fn set_len(&self, len: u64) -> Result<(), BackendError> {
        self.0.lock().unwrap().resize(len as usize, 0);
        Ok(())
    }
    fn sync_data(&self) -> Result<(), BackendError> {
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        let mut b = self.0.lock().unwrap();
        let end = offset as usize + data.len();
        if end > b.len() {
            b.resize(end, 0);
        }
        b[offset as usize..end].copy_from_slice(data);
        Ok(())
    }
}

pub(super) fn storage<S: StorageBackend>(
    inner: S,
    key: &Option<EncryptionKey>,
) -> ProtectedStorage<S> {
    let new_key = key.as_ref().map_or(NewKey::None, NewKey::Key);
    ProtectedStorage::create(inner, Arc::new(IoStats::default()), new_key).unwrap()
}

fn create(mem: &Mem, key: &Option<EncryptionKey>) -> Database {
    Database::builder()
        .create_with_backend(storage(mem.clone(), key))
        .unwrap()
}

fn open(mem: &Mem, key: &Option<EncryptionKey>) -> Result<Database, redb::DatabaseError> {
    let storage = ProtectedStorage::open(mem.clone(), Arc::new(IoStats::default()), key.as_ref())
        .map_err(|e| {
        redb::DatabaseError::Storage(redb::StorageError::Io(io::Error::other(format!("{e:?}"))))
    })?;
    // A cache that holds the whole (small) file: each block is read from
    // the layer once per open, and every open starts with an empty cache.
    // (The cipher's generic rounds are compiled in this crate, unoptimized
    // in a test build: reading each block per row took 40 s.)
    Database::builder()
        .set_cache_size(4 << 20)
        .create_with_backend(storage)
}

fn value(i: u64) -> Vec<u8> {
    (0..(200 + i % 300)).map(|b| (b ^ i) as u8).collect()
}

fn fill(db: &Database, rows: std::ops::Range<u64>) {
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(T).unwrap();
        for i in rows {
            t.insert(i, value(i).as_slice()).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Every row present with its value, or an error; a wrong value fails.
fn read_all(db: &Database, rows: std::ops::Range<u64>) -> Result<(), redb::Error> {
    let tx = db.begin_read()?;
    let t = tx.open_table(T)?;
    for i in rows {
        let got = t.get(i)?.map(|v| v.value().to_vec());
        assert_eq!(got, Some(value(i)), "row {i}");
    }
    Ok(())
}

#[test]
fn lengths_map_both_ways() {
    for g in [VERIFIED, ENCRYPTED] {
        let n = g.per_segment;
        for blocks in [1u64, 2, 3, n, n + 1, n + 2, 5 * n + 7] {
            let len = blocks * BLOCK;
            assert_eq!(g.logical_len(g.physical_len(len)), len, "{blocks}");
        }
        assert_eq!(g.physical_len(2 * BLOCK), DATA_BASE + 3 * BLOCK);
        assert_eq!(g.physical_len((n + 1) * BLOCK), DATA_BASE + g.segment_len());
        // Every block sits after its segment's two slots, inside the segment.
        for j in [0, 1, n - 1, n, 3 * n + 5] {
            let (s, k, at) = g.locate(j);
            assert_eq!(at, g.slot_at(s, 0) + (2 + k as u64) * BLOCK);
            assert!(at + BLOCK <= DATA_BASE + (s + 1) * g.segment_len());
        }
    }
    assert_eq!((VERIFIED.per_segment, ENCRYPTED.per_segment), (253, 101));
}

#[test]
fn a_database_survives_reopen_and_redb_magic_is_not_on_disk() {
    for key in &modes() {
        let mem = Mem::default();
        let db = create(&mem, key);
        fill(&db, 0..3000);
        drop(db);
        let bytes = mem.0.lock().unwrap().clone();
        assert_eq!(bytes[..9], layout::V2_MAGIC);
        // Plain redb refuses the file instead of reading tag slots as pages.
        let plain = Database::builder().create_with_backend(Mem(Arc::new(Mutex::new(bytes))));
        assert!(plain.is_err());
        let db = open(&mem, key).unwrap();
        read_all(&db, 0..3000).unwrap();
        fill(&db, 3000..4000);
        drop(db);
        read_all(&open(&mem, key).unwrap(), 0..4000).unwrap();
    }
}

fn damaged_payload(e: &redb::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<io::Error>()
            && io.get_ref().is_some_and(|i| i.is::<Damaged>())
        {
            return true;
        }
        src = s.source();
    }
    e.to_string().contains("tag")
}

/// Every block of a populated file, damaged in turn (zeroed, or one byte
/// flipped): the open or the reads fail, or every row reads back as it
/// was — redb never parses a damaged block, so nothing panics.
#[test]
fn a_damaged_block_is_an_error_never_bytes_for_redb() {
    for key in &modes() {
        let mem = Mem::default();
        let db = create(&mem, key);
        fill(&db, 0..600);
        drop(db);
        let good = mem.0.lock().unwrap().clone();
        let blocks = good.len() as u64 / BLOCK;
        let (mut failed, mut intact) = (0, 0);
        for b in 1..blocks {
            for zero in [true, false] {
                let mut bytes = good.clone();
                let at = (b * BLOCK) as usize;
                if zero {
                    bytes[at..at + BLOCK as usize].fill(0);
                } else {
                    bytes[at + 100] ^= 0x40;
                }
                if bytes == good {
                    continue;
                }
                let mem = Mem(Arc::new(Mutex::new(bytes)));
                let outcome = std::panic::catch_unwind(|| match open(&mem, key) {
                    Err(_) => Err(()),
                    Ok(db) => read_all(&db, 0..600).map_err(|e| {
                        assert!(damaged_payload(&e), "block {b}: {e}");
                    }),
                });
                match outcome.expect("redb panicked on a damaged block") {
                    Ok(()) => intact += 1,
                    Err(()) => failed += 1,
                }
            }
        }
        // Damage to a superblock copy, the older tag slot or a free block is
        // survived; the rest is detected.
        assert!(failed > 0 && intact > 0, "failed {failed}, intact {intact}");
    }
}

/// A crash while tag slots are written (the write torn, nothing after it
/// on disk) leaves the last commit readable: the header is written only
/// after the slots, and the other slot of each segment is untouched.
#[test]
fn a_crash_during_the_tag_flush_keeps_the_last_commit() {
    for key in &modes() {
        let mem = Mem::default();
        let db = create(&mem, key);
        fill(&db, 0..1500);
        drop(db);
        let committed = mem.0.lock().unwrap().clone();
        // Record every write of the next commit.
        let log = Arc::new(Mutex::new(Vec::new()));
        type Writes = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;
        #[derive(Debug)]
        struct Logging(Mem, Writes);
        impl StorageBackend for Logging {
            fn len(&self) -> Result<u64, BackendError> {
                self.0.len()
            }
            fn read(&self, o: u64, out: &mut [u8]) -> Result<(), BackendError> {
                self.0.read(o, out)
            }
            fn set_len(&self, l: u64) -> Result<(), BackendError> {
                self.1
                    .lock()
                    .unwrap()
                    .push((u64::MAX, l.to_le_bytes().to_vec()));
                self.0.set_len(l)
            }
            fn sync_data(&self) -> Result<(), BackendError> {
                Ok(())
            }
            fn write(&self, o: u64, d: &[u8]) -> Result<(), BackendError> {
                self.1.lock().unwrap().push((o, d.to_vec()));
                self.0.write(o, d)
            }
        }
        let copy = Mem(Arc::new(Mutex::new(committed.clone())));
        let storage = ProtectedStorage::open(
            Logging(copy, log.clone()),
            Arc::new(IoStats::default()),
            key.as_ref(),
        )
        .unwrap();
        let db = Database::builder().create_with_backend(storage).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table(T).unwrap();
            for i in 0..1500 {
                t.insert(i, b"rewritten".as_slice()).unwrap();
            }
        }
        tx.commit().unwrap();
        drop(db);
        let writes = log.lock().unwrap().clone();
        // Replay the commit's writes up to each point, tearing the last one
        // (its first half written, the rest left as it was).
        for cut in 0..writes.len() {
            let mut bytes = committed.clone();
            for (i, (o, d)) in writes[..=cut].iter().enumerate() {
                if *o == u64::MAX {
                    bytes.resize(u64::from_le_bytes(d[..8].try_into().unwrap()) as usize, 0);
                    continue;
                }
                let keep = if i == cut { d.len() / 2 } else { d.len() };
                let end = *o as usize + d.len();
                if end > bytes.len() {
                    bytes.resize(end, 0);
                }
                bytes[*o as usize..*o as usize + keep].copy_from_slice(&d[..keep]);
            }
            let mem = Mem(Arc::new(Mutex::new(bytes)));
            let db = open(&mem, key).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            let tx = db.begin_read().unwrap();
            let t = tx.open_table(T).unwrap();
            let v = t.get(7).unwrap().unwrap().value().to_vec();
            assert!(v == value(7) || v == b"rewritten", "cut {cut}");
        }
    }
}

/// A protected file whose page 0 was zeroed is damaged, not empty: redb
/// would otherwise lay out a new database over it.
#[test]
fn a_zeroed_header_is_damage_not_an_empty_file() {
    for key in &modes() {
        let mem = Mem::default();
        fill(&create(&mem, key), 0..100);
        mem.0.lock().unwrap()[..BLOCK as usize].fill(0);
        let before = mem.0.lock().unwrap().clone();
        let opened =
            ProtectedStorage::open(mem.clone(), Arc::new(IoStats::default()), key.as_ref());
        assert!(matches!(opened, Err(UnlockError::HeaderDamaged)));
        assert_eq!(*mem.0.lock().unwrap(), before, "nothing written");
    }
}

/// A file redb shrinks stays shrunk: the tag slots of segments cut off are
/// not written back past the new end.
#[test]
fn a_shrunk_file_is_not_grown_back_by_its_tags() {
    for key in &modes() {
        let mem = Mem::default();
        let storage = storage(mem.clone(), key);
        let g = geometry(key);
        let blocks = 3 * g.per_segment;
        storage.set_len((blocks + 1) * BLOCK).unwrap();
        for j in 0..blocks {
            storage
                .write((j + 1) * BLOCK, &[j as u8; BLOCK as usize])
                .unwrap();
        }
        storage.sync_data().unwrap();
        let small = (g.per_segment / 2 + 1) * BLOCK;
        storage.set_len(small).unwrap();
        storage.sync_data().unwrap();
        assert_eq!(mem.len().unwrap(), g.physical_len(small));
        let mut out = vec![0u8; BLOCK as usize];
        storage.read(BLOCK, &mut out).unwrap();
        assert_eq!(out, vec![0u8; BLOCK as usize]);
        // A block cut off and grown back reads as never written.
        storage.set_len(2 * g.per_segment * BLOCK).unwrap();
        let err = storage
            .read((g.per_segment - 1) * BLOCK, &mut out)
            .unwrap_err();
        assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidData);
    }
}

/// An encrypted file holds none of what was written in the clear, and
/// opens only with its key: no key, another key, a passphrase for a raw
/// key are each refused, and the refusal writes nothing; a key for a
/// verified file is refused too.
#[test]
fn an_encrypted_file_shows_no_plaintext_and_opens_only_with_its_key() {
    let marker = b"MARKER-the-identity-key-bytes-0123456789";
    let key = Some(EncryptionKey::raw([9; 32]));
    let mem = Mem::default();
    let db = create(&mem, &key);
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table(T).unwrap();
        for i in 0..500u64 {
            let mut v = marker.to_vec();
            v.extend_from_slice(&i.to_le_bytes());
            t.insert(i, v.as_slice()).unwrap();
        }
    }
    tx.commit().unwrap();
    drop(db);
    let bytes = mem.0.lock().unwrap().clone();
    assert!(
        !bytes.windows(16).any(|w| w == &marker[..16]),
        "plaintext on disk"
    );

    let refused = |k: Option<EncryptionKey>| {
        let before = mem.0.lock().unwrap().clone();
        let e = ProtectedStorage::open(mem.clone(), Arc::default(), k.as_ref()).unwrap_err();
        assert_eq!(*mem.0.lock().unwrap(), before, "a refused open wrote");
        match e {
            UnlockError::Key(p) => p,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(refused(None), KeyProblem::Required);
    assert_eq!(
        refused(Some(EncryptionKey::raw([8; 32]))),
        KeyProblem::Wrong
    );
    assert!(matches!(
        refused(Some(EncryptionKey::passphrase("p"))),
        KeyProblem::WrongKind { .. }
    ));
    let db = open(&mem, &key).unwrap();
    let tx = db.begin_read().unwrap();
    let t = tx.open_table(T).unwrap();
    assert!(t.get(499).unwrap().unwrap().value().starts_with(marker));

    let plain = Mem::default();
    drop(create(&plain, &None));
    let e = ProtectedStorage::open(plain.clone(), Arc::default(), key.as_ref()).unwrap_err();
    assert!(matches!(e, UnlockError::Key(KeyProblem::NotEncrypted)));
}

/// The checksums are part of the file format (tags, tag slots, journal
/// records): these vectors were computed with the xxhash-rust crate, which
/// wrote every file before the switch to twox-hash, so files written by
/// either build verify under the other.
#[test]
fn checksums_are_the_format_s_xxh3() {
    use std::hash::Hasher;
    use twox_hash::{XxHash3_64, XxHash3_128};
    let data: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 5)) as u8)
        .collect();
    let seed = 0x0123_4567_89ab_cdef;
    let tag = XxHash3_128::oneshot_with_seed(seed, &data);
    assert_eq!(tag, 0x19da7e96e8c9ef4fdd9469a4fe002887);
    assert_eq!(
        layout::tag(seed ^ 3u64.wrapping_mul(0x9E37_79B9_7F4A_7C15), 3, &data),
        tag.to_le_bytes()
    );
    assert_eq!(
        XxHash3_128::oneshot(&data[..4080]),
        0xe301760b6d015a6b24564913faa4d169
    );
    assert_eq!(XxHash3_64::oneshot(&data[..16]), 0xf9fbd0260ba978df);
    let mut h = XxHash3_64::new();
    h.write(&data[..16]);
    h.write(&data[16..24]);
    h.write(&data[24..1000]);
    assert_eq!(h.finish(), 0xdc36a285e5259479);
}
