//! The cache of tag entries ([`super::segments`]): bounded while a file is
//! read, never dropping tags not yet flushed.

use std::io;
use std::sync::{Arc, Mutex};

use redb::{BackendError, StorageBackend};

use super::layout::{self, BLOCK, Geometry};
use super::segments::MIN_SEGMENTS;
use super::tests::{Mem, geometry, modes, storage};
use super::{Damaged, ProtectedStorage};
use crate::config::EncryptionKey;

/// A block's contents in the cache tests: its number, so a block read from
/// the wrong place shows.
fn numbered(j: u64) -> Vec<u8> {
    let mut b = vec![(j % 251) as u8; BLOCK as usize];
    b[..8].copy_from_slice(&j.to_le_bytes());
    b
}

/// `segments` segments' worth of numbered blocks, written through
/// `storage`, after a page 0 with redb's magic (so the file reopens).
fn write_numbered<S: StorageBackend>(storage: &ProtectedStorage<S>, g: Geometry, segments: u64) {
    let blocks = segments * g.per_segment;
    storage.set_len((blocks + 1) * BLOCK).unwrap();
    let mut page0 = vec![0u8; BLOCK as usize];
    page0[..9].copy_from_slice(&layout::REDB_MAGIC);
    storage.write(0, &page0).unwrap();
    for j in 0..blocks {
        storage.write((j + 1) * BLOCK, &numbered(j)).unwrap();
    }
}

/// A file of `segments` numbered segments, written, synced and opened
/// again with the least cache share (so the tag cache holds its floor).
fn reopened_at_the_least_share(
    key: &Option<EncryptionKey>,
    g: Geometry,
    segments: u64,
) -> (Mem, ProtectedStorage<Mem>) {
    let mem = Mem::default();
    let written = storage(mem.clone(), key);
    write_numbered(&written, g, segments);
    written.sync_data().unwrap();
    drop(written);
    let storage = ProtectedStorage::open(mem.clone(), Arc::default(), key.as_ref()).unwrap();
    storage.set_cache_share(0);
    (mem, storage)
}

/// Reading a file three times the size the tag cache covers keeps the
/// cache within its bound; blocks of segments dropped and read again
/// still verify, and damage to one is still found.
#[test]
fn tags_of_a_file_read_stay_within_the_cache_bound() {
    for key in &modes() {
        let g = geometry(key);
        let segments = 3 * MIN_SEGMENTS as u64;
        let (mem, storage) = reopened_at_the_least_share(key, g, segments);
        let max = storage.state().segments.max();
        assert_eq!(max, MIN_SEGMENTS);
        let mut out = vec![0u8; BLOCK as usize];
        // Twice: the second pass reads every segment again after its drop.
        for _ in 0..2 {
            for j in 0..segments * g.per_segment {
                storage.read((j + 1) * BLOCK, &mut out).unwrap();
                assert!(out == numbered(j), "block {j}");
                let held = storage.state().segments.len();
                assert!(held <= max, "{held} segments held, bound {max}");
            }
        }
        assert!(
            storage.state().segments.get_mut(&0).is_none(),
            "not dropped"
        );
        let (_, _, at) = g.locate(3);
        mem.0.lock().unwrap()[at as usize + 100] ^= 0x40;
        let err = io::Error::from(storage.read(4 * BLOCK, &mut out).unwrap_err());
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.get_ref().is_some_and(|e| e.is::<Damaged>()), "{err}");
        storage.read(5 * BLOCK, &mut out).unwrap();
        assert!(out == numbered(4));
    }
}

/// Tags not flushed yet are the only copy: however many segments hold
/// them, none is dropped, and every block written reads back before and
/// after the flush, and after a reopen.
#[test]
fn unflushed_tags_are_never_dropped() {
    for key in &modes() {
        let g = geometry(key);
        let mem = Mem::default();
        let segments = 3 * MIN_SEGMENTS as u64;
        let storage = storage(mem.clone(), key);
        storage.set_cache_share(0);
        write_numbered(&storage, g, segments);
        assert_eq!(storage.state().segments.len(), segments as usize);
        let mut out = vec![0u8; BLOCK as usize];
        let read_all = |storage: &ProtectedStorage<Mem>, out: &mut Vec<u8>| {
            for j in 0..segments * g.per_segment {
                storage.read((j + 1) * BLOCK, out).unwrap();
                assert!(*out == numbered(j), "block {j}");
            }
        };
        read_all(&storage, &mut out);
        storage.sync_data().unwrap();
        read_all(&storage, &mut out);
        drop(storage);
        let storage = ProtectedStorage::open(mem.clone(), Arc::default(), key.as_ref()).unwrap();
        storage.set_cache_share(0);
        read_all(&storage, &mut out);
        assert!(storage.state().segments.len() <= MIN_SEGMENTS);
    }
}

/// The bound is a fixed part of the file's cache share.
#[test]
fn the_tag_cache_grows_with_the_cache_share() {
    let storage = storage(Mem::default(), &None);
    storage.set_cache_share(6 << 20);
    // An eighth of 6 MiB in segments of about 4 KiB of entries.
    let max = storage.state().segments.max();
    assert!((150..=192).contains(&max), "{max}");
}

/// Code run by [`Hooked`], once.
type Hook = Box<dyn FnOnce() + Send>;

/// A backend that runs a hook once, at its first write after the hook is
/// set: a read from another thread at that moment.
#[derive(Clone, Default)]
struct Hooked {
    mem: Mem,
    hook: Arc<Mutex<Option<Hook>>>,
}

impl std::fmt::Debug for Hooked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooked")
    }
}

impl StorageBackend for Hooked {
    fn len(&self) -> Result<u64, BackendError> {
        self.mem.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendError> {
        self.mem.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), BackendError> {
        self.mem.set_len(len)
    }
    fn sync_data(&self) -> Result<(), BackendError> {
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        let hook = self.hook.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
        self.mem.write(offset, data)
    }
}

/// A flush writes its slots without the lock; a read that loads another
/// segment meanwhile, into a full cache, drops none of the segments being
/// flushed (they count as clean from the moment their slots are taken).
#[test]
fn a_read_during_a_flush_drops_no_segment_being_flushed() {
    for key in &modes() {
        let g = geometry(key);
        let hooked = Hooked::default();
        let storage = Arc::new(storage(hooked.clone(), key));
        storage.set_cache_share(0);
        let segments = MIN_SEGMENTS as u64 + 1;
        write_numbered(&storage, g, segments);
        // Room for a segment never written, which the read loads.
        let far = 3 * segments * g.per_segment;
        storage.set_len((far + 2) * BLOCK).unwrap();
        let reader = storage.clone();
        *hooked.hook.lock().unwrap() = Some(Box::new(move || {
            let mut out = vec![0u8; BLOCK as usize];
            // Never written: an error, after its segment was loaded.
            assert!(reader.read((far + 1) * BLOCK, &mut out).is_err());
        }));
        storage.sync_data().unwrap();
        assert!(hooked.hook.lock().unwrap().is_none(), "the read ran");
        drop(storage);
        let storage = ProtectedStorage::open(hooked.mem.clone(), Arc::default(), key.as_ref());
        let storage = storage.unwrap();
        let mut out = vec![0u8; BLOCK as usize];
        for j in 0..segments * g.per_segment {
            storage.read((j + 1) * BLOCK, &mut out).unwrap();
            assert!(out == numbered(j), "block {j}");
        }
    }
}

/// A file cut in the middle of a segment that was dropped from the cache:
/// the tags of the blocks cut off are cleared all the same, so a block cut
/// off and grown back reads as never written, not as damaged.
#[test]
fn a_cut_clears_the_tags_of_a_dropped_segment() {
    for key in &modes() {
        let g = geometry(key);
        let segments = 2 * MIN_SEGMENTS as u64;
        let (_mem, storage) = reopened_at_the_least_share(key, g, segments);
        let mut out = vec![0u8; BLOCK as usize];
        for j in 0..segments * g.per_segment {
            storage.read((j + 1) * BLOCK, &mut out).unwrap();
        }
        assert!(
            storage.state().segments.get_mut(&1).is_none(),
            "not dropped"
        );
        // Cut half-way through segment 1, sync, grow back.
        let kept = g.per_segment + g.per_segment / 2;
        storage.set_len((kept + 1) * BLOCK).unwrap();
        storage.sync_data().unwrap();
        storage
            .set_len((segments * g.per_segment + 1) * BLOCK)
            .unwrap();
        let err = io::Error::from(storage.read((kept + 1) * BLOCK, &mut out).unwrap_err());
        let damaged = err.get_ref().and_then(|e| e.downcast_ref::<Damaged>());
        assert!(
            damaged.is_some_and(|d| d.why.contains("no valid tag")),
            "{err}"
        );
        storage.read(kept * BLOCK, &mut out).unwrap();
        assert!(out == numbered(kept - 1));
    }
}
