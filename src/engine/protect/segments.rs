//! The tag entries of the segments a protected file has in memory: a
//! cache bounded by a share of the file's page cache.
//!
//! Without a bound, every segment ever read stayed in memory: 4 KiB of
//! entries per 1 MiB of verified file read (per 404 KiB encrypted), for as
//! long as the file is open. A segment that is only read is a copy of its
//! newest intact slot on disk, so it may be dropped and read again at its
//! next use. A dirty one (tags of blocks written since the last flush) is
//! the only copy of those tags and is never dropped; nor is any segment
//! while a flush writes slots without the lock (a segment loaded then could
//! read a slot half written).
//!
//! Eviction is a clock without a hand (second chance, near enough least
//! recently used): a hit marks its segment used; when a new segment finds
//! the cache full, one sweep drops clean segments not used since the last
//! sweep, down to three quarters of the bound, and clears the marks of the
//! rest. A sweep walks the segments in memory once (twice if all were
//! used), and runs at most once per quarter of the bound of segments
//! loaded, each of which costs a disk read of its slots anyway — unless
//! dirty segments alone fill the cache, when every load sweeps until the
//! next flush.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;

/// The tag entries of a file take at most this fraction of its page-cache
/// share: one segment's 4 KiB of entries covers 253 pages (101 encrypted),
/// so this covers far more of the file than the same bytes of pages would.
const SHARE_DIVISOR: usize = 8;

/// What is left of a protected file's page-cache share for redb's own
/// cache once its tag entries have theirs: the two together stay within
/// the share, and so within the process-wide budget.
pub(crate) fn pages_share(cache_bytes: usize) -> usize {
    cache_bytes - cache_bytes / SHARE_DIVISOR
}

/// The least a file keeps, whatever its share: the segments of redb's
/// upper B-tree pages, which every lookup reads.
pub(crate) const MIN_SEGMENTS: usize = 8;

/// The entries (tags, or nonces and tags) of one segment, as this process
/// knows them; an all-zero entry means "never written".
pub(super) struct Segment {
    pub entries: Vec<u8>,
    /// Generation of the newest intact slot on disk (0: none).
    pub generation: u64,
    /// Which slot holds it (the next write goes to the other one).
    pub newest: Option<usize>,
    /// Changed since written.
    pub dirty: bool,
    /// Used since the last sweep.
    used: bool,
}

impl Segment {
    pub fn new(entries: Vec<u8>, generation: u64, newest: Option<usize>) -> Segment {
        Segment {
            entries,
            generation,
            newest,
            dirty: false,
            used: false,
        }
    }
}

/// Fibonacci hashing of a segment number (small, dense integers: the
/// multiplication spreads them over the high bits the table probes with).
/// Every block read looks its segment up: SipHash was 7% of the verified
/// layer's instructions on reads, by callgrind.
#[derive(Default)]
pub(super) struct SegmentHasher(u64);

impl Hasher for SegmentHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type Map = HashMap<u64, Segment, BuildHasherDefault<SegmentHasher>>;

/// The segments in memory, by number.
pub(super) struct Segments {
    map: Map,
    /// Clean segments are dropped beyond this many.
    max: usize,
    /// A flush is writing slots: nothing is dropped.
    pub pinned: bool,
}

impl Segments {
    /// A cache within `1 / SHARE_DIVISOR` of `cache_bytes`, for segments of
    /// `entries_len` bytes of entries.
    pub fn within(cache_bytes: usize, entries_len: usize) -> Segments {
        let mut segments = Segments {
            map: Map::default(),
            max: MIN_SEGMENTS,
            pinned: false,
        };
        segments.set_share(cache_bytes, entries_len);
        segments
    }

    /// Bounds the cache by `1 / SHARE_DIVISOR` of `cache_bytes` from the
    /// next segment loaded on.
    pub fn set_share(&mut self, cache_bytes: usize, entries_len: usize) {
        let per_segment = entries_len + std::mem::size_of::<(u64, Segment)>();
        self.max = (cache_bytes / SHARE_DIVISOR / per_segment).max(MIN_SEGMENTS);
    }

    /// Runs `f` on segment `s`, loaded by `load` if it is not in memory.
    /// (`f` rather than returning the segment: a borrow returned from the
    /// hit would keep the map borrowed for the eviction a miss needs, and
    /// cost a second probe on every hit. By callgrind, a read of a cached
    /// 4 KiB block from an in-memory file costs 7794 instructions, against
    /// 7805 with the entry API and no eviction.)
    #[inline]
    pub fn with<R>(
        &mut self,
        s: u64,
        load: impl FnOnce() -> io::Result<Segment>,
        f: impl FnOnce(&mut Segment) -> R,
    ) -> io::Result<R> {
        if let Some(seg) = self.map.get_mut(&s) {
            seg.used = true;
            return Ok(f(seg));
        }
        let seg = load()?;
        self.make_room();
        Ok(f(self.map.entry(s).or_insert(seg)))
    }

    /// Drops clean segments unused since the last sweep if the cache is
    /// full (see the module docs).
    fn make_room(&mut self) {
        if self.map.len() < self.max || self.pinned {
            return;
        }
        let target = self.max - self.max / 4;
        // The second sweep finds every mark cleared by the first.
        for _ in 0..2 {
            let mut over = self.map.len().saturating_sub(target);
            self.map.retain(|_, seg| {
                if over > 0 && !seg.dirty && !seg.used {
                    over -= 1;
                    return false;
                }
                seg.used = false;
                true
            });
            if self.map.len() <= target {
                return;
            }
        }
    }

    pub fn get_mut(&mut self, s: &u64) -> Option<&mut Segment> {
        self.map.get_mut(s)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&u64, &mut Segment)> {
        self.map.iter_mut()
    }

    pub fn retain(&mut self, keep: impl FnMut(&u64, &mut Segment) -> bool) {
        self.map.retain(keep);
    }

    /// Segments in memory.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The most clean segments kept.
    #[cfg(test)]
    pub fn max(&self) -> usize {
        self.max
    }
}
