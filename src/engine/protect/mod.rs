//! Protected pages (file format v2): a storage layer under redb that tags
//! every block it writes and verifies every block it reads from disk before
//! redb sees the bytes.
//!
//! redb verifies page checksums only when it repairs or checks a file, so a
//! damaged page used to reach its B-tree code, which can panic on it (and
//! under `panic = "abort"` that is a crash). Here a block whose tag does not
//! match — damaged, zeroed, torn, moved, from another file, never written —
//! is an I/O error of kind `InvalidData` carrying [`Damaged`], which
//! [`crate::Error::storage`] reports as `Corrupted` with the offset. Hits in
//! redb's page cache never come down here, so they cost nothing.
//!
//! Crash semantics: tags of written blocks live in memory until redb asks
//! for durability (`sync_data`); then the changed tag slots are written —
//! each to the slot of its segment that does not hold the newest intact
//! generation, so a torn slot write leaves the older slot, which covers
//! every committed block, intact — and synced, and only after that redb's
//! header (page 0, which redb writes in place before it syncs) is written
//! and synced. redb's commit point therefore never becomes durable before
//! the pages and tags it points to, whatever redb's own commit mode; a crash
//! at any moment leaves the last commit readable. Page 0 stays raw: redb
//! protects its commit slots with its own checksums, and its god byte flip
//! relies on a single-byte write being atomic. Tags read only to verify
//! are a cache, within a share of the file's page cache ([`segments`]).
//!
//! The layout is in [`layout`] and in schema.md; opening (and unlocking)
//! a file is in `open`; the cipher of an encrypted file in [`crypt`].

pub(crate) mod crypt;
pub(crate) mod layout;
mod open;
mod segments;
pub(crate) use segments::pages_share;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cache;

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{BackendError, StorageBackend};

use crate::engine::storage::{IoStats, forward_locks};
pub(crate) use crate::error::Damaged;
use crypt::Cipher;
use layout::{BLOCK, Geometry, REDB_MAGIC, V2_MAGIC};
use segments::{Segment, Segments};

pub(crate) use open::{Format, NewKey, format_of, open_read_only, rewrap};

fn damaged(offset: Option<u64>, physical: u64, why: &'static str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        Damaged {
            offset,
            physical,
            why,
        },
    )
}

const HEADER_DAMAGED: &str = "(redb's header) is damaged: the file holds data but \
    no header; restore it from a backup (`wa-redb restore`)";

const SUPERBLOCK_DAMAGED: &str = "and the one after it: both copies of the protection \
    superblock are damaged (`wa-redb salvage` may copy out what still verifies)";

/// The start of page 0 that holds redb's header (320 bytes in redb 4.6 and 5.0,
/// which writes it in place): held in memory and written after the pages
/// it points to. The rest of page 0 passes through.
const HEADER_HELD: usize = 512;

/// The longest stretch of whole blocks from redb's offset `at` (at most
/// `len` bytes) that lies in one segment, so contiguous in the file.
struct Run {
    /// Data block of `at`.
    j: u64,
    segment: u64,
    /// Index of block `j` in its segment.
    k: usize,
    /// File offset of block `j`.
    physical: u64,
    /// Bytes of the run.
    len: usize,
}

impl Run {
    fn at(geometry: Geometry, at: u64, len: usize) -> Run {
        let j = at / BLOCK - 1;
        let (segment, k, physical) = geometry.locate(j);
        let blocks = ((geometry.per_segment - k as u64) as usize).min(len / BLOCK as usize);
        Run {
            j,
            segment,
            k,
            physical,
            len: blocks * BLOCK as usize,
        }
    }
}

struct State {
    /// The length redb sees.
    len: u64,
    segments: Segments,
    /// redb's header (the first [`HEADER_HELD`] bytes of page 0) as redb
    /// sees it (redb's magic), once read or written.
    page0: Option<Vec<u8>>,
    /// Bytes of the header written by redb and not yet on disk: `..end`.
    page0_dirty_end: usize,
    /// Blocks or slots written since the last sync.
    unsynced: bool,
}

/// A protected file over `S` (the file itself, or a look's overlay).
pub(crate) struct ProtectedStorage<S: StorageBackend> {
    inner: S,
    file_id: [u8; 16],
    seed: u64,
    geometry: Geometry,
    /// Set for an encrypted file (mode 2).
    cipher: Option<Arc<Cipher>>,
    /// Shared with the engine: whether redb is committing in memory (then
    /// `sync_data` leaves everything pending, as the file backend does).
    stats: Arc<IoStats>,
    state: Mutex<State>,
}

impl<S: StorageBackend> fmt::Debug for ProtectedStorage<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectedStorage")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S: StorageBackend> ProtectedStorage<S> {
    /// The cipher of an encrypted file, for what else the store writes
    /// about it (its journal, copies of it).
    pub fn cipher(&self) -> Option<Arc<Cipher>> {
        self.cipher.clone()
    }

    /// Whether data block `j` as read (`block`) is what was written there
    /// with `entry`; an encrypted block is decrypted in place.
    fn open_block(&self, j: u64, block: &mut [u8], entry: &[u8]) -> bool {
        match &self.cipher {
            None => layout::tag(self.seed, j, block)[..] == *entry,
            Some(cipher) => cipher.open_block(&self.file_id, j, block, entry),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on segment `s`, read from its slots if it is not in
    /// memory. A load never races the flush of its slots: only segments in
    /// memory are dirty, and none is dropped while a flush runs (see
    /// [`segments`]).
    fn segment<R>(
        &self,
        state: &mut State,
        s: u64,
        f: impl FnOnce(&mut Segment) -> R,
    ) -> io::Result<R> {
        state.segments.with(s, || self.load_segment(s), f)
    }

    /// Bounds the tag entries kept in memory by a share of the file's
    /// page cache (`cache_bytes`); see [`segments`].
    pub fn set_cache_share(&self, cache_bytes: usize) {
        let entries_len = self.geometry.entries_len();
        self.state().segments.set_share(cache_bytes, entries_len);
    }

    /// The newest intact slot of segment `s`, or — none intact: never
    /// written, or its only write torn — no tags at all (its blocks read as
    /// damaged until written).
    fn load_segment(&self, s: u64) -> io::Result<Segment> {
        let mut both = vec![0u8; 2 * BLOCK as usize];
        let at = self.geometry.slot_at(s, 0);
        let have = self.inner.len()?.saturating_sub(at).min(both.len() as u64) as usize;
        self.inner.read(at, &mut both[..have])?;
        let (a, b) = both.split_at(BLOCK as usize);
        let slots = [
            layout::decode_slot(self.geometry, &self.file_id, s, a),
            layout::decode_slot(self.geometry, &self.file_id, s, b),
        ];
        let newest = (0..2)
            .filter(|&i| slots[i].is_some())
            .max_by_key(|&i| slots[i].as_ref().map(|x| x.generation));
        Ok(match newest {
            Some(i) => {
                let slot = slots.into_iter().nth(i).flatten().expect("intact");
                Segment::new(slot.entries, slot.generation, Some(i))
            }
            None => Segment::new(vec![0; self.geometry.entries_len()], 0, None),
        })
    }

    /// redb's header (the start of page 0, as redb sees it: redb's magic),
    /// read into the state if it is not there yet.
    fn header<'a>(&self, state: &'a mut State) -> io::Result<&'a mut Vec<u8>> {
        if state.page0.is_none() {
            let mut p = vec![0u8; HEADER_HELD];
            self.inner.read(0, &mut p)?;
            if p.starts_with(&V2_MAGIC) {
                p[..9].copy_from_slice(&REDB_MAGIC);
            }
            state.page0 = Some(p);
        }
        Ok(state.page0.as_mut().expect("read"))
    }

    /// Reads `out.len()` bytes of page 0 at `offset`: redb's header from
    /// the state (it may be newer than the file), the rest from the file.
    fn read_page0(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let held = HEADER_HELD.saturating_sub(offset as usize).min(out.len());
        let (head, tail) = out.split_at_mut(held);
        if held > 0 {
            let mut state = self.state();
            let h = self.header(&mut state)?;
            head.copy_from_slice(&h[offset as usize..offset as usize + held]);
        }
        if !tail.is_empty() {
            self.inner.read(offset + held as u64, tail)?;
        }
        Ok(())
    }

    /// Writes into page 0: redb's header is held until the next flush (see
    /// the module docs), the rest goes to the file.
    fn write_page0(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let held = HEADER_HELD.saturating_sub(offset as usize).min(data.len());
        let (head, tail) = data.split_at(held);
        let mut state = self.state();
        if held > 0 {
            let h = self.header(&mut state)?;
            h[offset as usize..offset as usize + held].copy_from_slice(head);
            let end = offset as usize + held;
            state.page0_dirty_end = state.page0_dirty_end.max(end);
        }
        if !tail.is_empty() {
            self.inner.write(offset + held as u64, tail)?;
            state.unsynced = true;
        }
        Ok(())
    }

    /// Splits `offset..offset + len` at page 0's end and checks that the
    /// rest is whole blocks.
    fn split(offset: u64, len: usize) -> io::Result<(usize, u64)> {
        let in_page0 = BLOCK.saturating_sub(offset).min(len as u64) as usize;
        let rest_at = offset + in_page0 as u64;
        let rest = (len - in_page0) as u64;
        if rest > 0 && (!rest_at.is_multiple_of(BLOCK) || !rest.is_multiple_of(BLOCK)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("protected storage: unaligned access at {offset} (+{len})"),
            ));
        }
        Ok((in_page0, rest_at))
    }

    /// Writes the dirty tag slots, syncs, then writes the dirty part of
    /// page 0 and syncs again (see the module docs for why in this order).
    fn flush(&self) -> io::Result<()> {
        // What to write, taken under the lock; the writes and fsyncs run
        // without it, so that readers are not held up by a disk flush. (Only
        // redb's committing thread writes, and it is the one flushing.)
        let (slots, unsynced, header) = {
            let mut state = self.state();
            let mut slots = Vec::new();
            for (&s, seg) in state.segments.iter_mut() {
                if seg.dirty {
                    let which = seg.newest.map_or(0, |i| 1 - i);
                    let bytes =
                        layout::encode_slot(&self.file_id, s, seg.generation + 1, &seg.entries);
                    slots.push((s, which, bytes));
                    seg.dirty = false;
                }
            }
            // The slots are written without the lock: none may be loaded
            // meanwhile (it could read one half written).
            state.segments.pinned = true;
            let unsynced = std::mem::take(&mut state.unsynced);
            let end = std::mem::take(&mut state.page0_dirty_end);
            let header = (end > 0).then(|| {
                let mut bytes = state.page0.as_ref().expect("written")[..end].to_vec();
                if bytes.starts_with(&REDB_MAGIC) {
                    bytes[..9].copy_from_slice(&V2_MAGIC);
                }
                bytes
            });
            (slots, unsynced, header)
        };
        let written = self.write_out(&slots, unsynced, header.as_deref());
        let mut state = self.state();
        state.segments.pinned = false;
        match written {
            Ok(()) => {
                for (s, which, _) in &slots {
                    let seg = state.segments.get_mut(s).expect("listed");
                    seg.generation += 1;
                    seg.newest = Some(*which);
                }
                Ok(())
            }
            Err(e) => {
                // Nothing counts as written: the next flush writes it all
                // again, to the same slots.
                for (s, _, _) in &slots {
                    state.segments.get_mut(s).expect("listed").dirty = true;
                }
                state.unsynced = true;
                if let Some(h) = &header {
                    state.page0_dirty_end = state.page0_dirty_end.max(h.len());
                }
                Err(e)
            }
        }
    }

    /// The tag slots, a sync, then redb's header and a sync.
    fn write_out(
        &self,
        slots: &[(u64, usize, Vec<u8>)],
        unsynced: bool,
        header: Option<&[u8]>,
    ) -> io::Result<()> {
        for (s, which, bytes) in slots {
            self.inner.write(self.geometry.slot_at(*s, *which), bytes)?;
        }
        if unsynced || !slots.is_empty() {
            self.inner.sync_data()?;
        }
        if let Some(header) = header {
            self.inner.write(0, header)?;
            self.inner.sync_data()?;
        }
        Ok(())
    }
}

impl<S: StorageBackend> StorageBackend for ProtectedStorage<S> {
    fn len(&self) -> Result<u64, BackendError> {
        Ok(self.state().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendError> {
        let (in_page0, rest_at) = Self::split(offset, out.len())?;
        let (head, rest) = out.split_at_mut(in_page0);
        if in_page0 > 0 {
            self.read_page0(offset, head)?;
        }
        let mut at = rest_at;
        let mut rest = rest;
        while !rest.is_empty() {
            let Run {
                j,
                segment: s,
                k,
                physical,
                len,
            } = Run::at(self.geometry, at, rest.len());
            let (run, next) = rest.split_at_mut(len);
            self.inner.read(physical, run)?;
            let e = self.geometry.entry;
            // The run's entries, copied out under the lock: on the stack
            // for the reads redb makes most (a page or a few).
            let mut on_stack = [0u8; 8 * crypt::ENTRY_LEN];
            let mut on_heap = Vec::new();
            let n = run.len() / BLOCK as usize * e;
            let expected: &mut [u8] = if n <= on_stack.len() {
                &mut on_stack[..n]
            } else {
                on_heap.resize(n, 0);
                &mut on_heap
            };
            {
                let mut state = self.state();
                self.segment(&mut state, s, |seg| {
                    expected.copy_from_slice(&seg.entries[k * e..k * e + n]);
                })?;
            }
            // Verified (or decrypted) without the lock: readers of other
            // blocks do not wait.
            for (i, (block, entry)) in run
                .chunks_mut(BLOCK as usize)
                .zip(expected.chunks(e))
                .enumerate()
            {
                let why = if entry.iter().all(|&b| b == 0) {
                    Some("has no valid tag (its tag slots are damaged, or it was never written)")
                } else if !self.open_block(j + i as u64, block, entry) {
                    Some("does not match its tag: it is damaged")
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(damaged(
                        Some(at + i as u64 * BLOCK),
                        physical + i as u64 * BLOCK,
                        why,
                    )
                    .into());
                }
            }
            at += run.len() as u64;
            rest = next;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), BackendError> {
        let mut state = self.state();
        let g = self.geometry;
        self.inner.set_len(g.physical_len(len))?;
        if len < state.len {
            // Segments cut off entirely are gone from the file (a flush of
            // their slots would grow it again); in the one cut in part, the
            // blocks cut off read as never written until redb writes them.
            let end = g.physical_len(len);
            state.segments.retain(|&s, _| g.slot_at(s, 0) < end);
            let first_gone = len.max(BLOCK) / BLOCK - 1;
            // The segment cut in part may have been dropped from the cache:
            // its slots on disk still hold the tags of the blocks cut off.
            let (cut, k, _) = g.locate(first_gone);
            if k > 0 {
                self.segment(&mut state, cut, |_| ())?;
            }
            for (&seg_no, seg) in state.segments.iter_mut() {
                for (k, entry) in seg.entries.chunks_mut(g.entry).enumerate() {
                    let gone = seg_no * g.per_segment + k as u64 >= first_gone;
                    if gone && entry.iter().any(|&b| b != 0) {
                        entry.fill(0);
                        seg.dirty = true;
                    }
                }
            }
        }
        state.len = len;
        state.unsynced = true;
        Ok(())
    }

    fn sync_data(&self) -> Result<(), BackendError> {
        if self
            .stats
            .in_memory_commit
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return Ok(());
        }
        Ok(self.flush()?)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        let (in_page0, rest_at) = Self::split(offset, data.len())?;
        let (head, rest) = data.split_at(in_page0);
        if in_page0 > 0 {
            self.write_page0(offset, head)?;
        }
        let mut at = rest_at;
        let mut rest = rest;
        let mut sealed = Vec::new();
        while !rest.is_empty() {
            let Run {
                j,
                segment: s,
                k,
                physical,
                len,
            } = Run::at(self.geometry, at, rest.len());
            let (run, next) = rest.split_at(len);
            let e = self.geometry.entry;
            let mut entries = vec![0u8; run.len() / BLOCK as usize * e];
            let on_disk = match &self.cipher {
                None => {
                    for (i, (d, entry)) in run
                        .chunks(BLOCK as usize)
                        .zip(entries.chunks_mut(e))
                        .enumerate()
                    {
                        entry.copy_from_slice(&layout::tag(self.seed, j + i as u64, d));
                    }
                    run
                }
                Some(cipher) => {
                    sealed.clear();
                    sealed.extend_from_slice(run);
                    for (i, (d, entry)) in sealed
                        .chunks_mut(BLOCK as usize)
                        .zip(entries.chunks_mut(e))
                        .enumerate()
                    {
                        entry.copy_from_slice(&cipher.seal_block(
                            &self.file_id,
                            j + i as u64,
                            d,
                        )?);
                    }
                    &sealed[..]
                }
            };
            self.inner.write(physical, on_disk)?;
            let mut state = self.state();
            state.unsynced = true;
            self.segment(&mut state, s, |seg| {
                seg.entries[k * e..k * e + entries.len()].copy_from_slice(&entries);
                seg.dirty = true;
            })?;
            drop(state);
            at += run.len() as u64;
            rest = next;
        }
        Ok(())
    }

    fn close(&self) -> Result<(), BackendError> {
        self.flush()?;
        self.inner.close()
    }

    forward_locks!();
}
