//! A storage backend that never writes to its file: pages written by redb
//! stay in memory, every other read comes from the file, opened read-only.
//!
//! Looking at a store (`wa-redb info`, `dump`, `check`, `export`) runs the
//! ordinary open on it — redb's repair after a crash, journal replay,
//! migrations — so that a look shows exactly what the next real open
//! would, while the file stays byte-identical and needs no write
//! permission. Only the pages such an open changes are held in memory
//! (a few for a clean file; those of the replayed records otherwise).

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::sync::Mutex;

use redb::{BackendError, StorageBackend};

/// The unit the overlay copies on first write (redb's page size).
const PAGE: u64 = 4096;

pub(crate) struct OverlayStorage {
    /// The file, only ever read.
    pub base: File,
    state: Mutex<State>,
}

struct State {
    /// The length redb sees.
    len: u64,
    /// Bytes of `base` still visible: the file's length, lowered by any
    /// truncation redb made (what it cut off reads as zeros if it grows
    /// the file again).
    base_visible: u64,
    /// Pages redb wrote, by page number.
    pages: HashMap<u64, Box<[u8]>>,
}

impl fmt::Debug for OverlayStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state();
        f.debug_struct("OverlayStorage")
            .field("len", &state.len)
            .field("pages_in_memory", &state.pages.len())
            .finish_non_exhaustive()
    }
}

impl OverlayStorage {
    /// An overlay over `base`, which is only ever read.
    pub fn new(base: File) -> io::Result<Self> {
        let len = base.metadata()?.len();
        Ok(Self {
            base,
            state: Mutex::new(State {
                len,
                base_visible: len,
                pages: HashMap::new(),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fills `out` with the file's bytes at `offset`, zeros past what is
    /// visible of it.
    fn read_base(&self, visible: u64, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let from_file = visible.saturating_sub(offset).min(out.len() as u64) as usize;
        let (head, tail) = out.split_at_mut(from_file);
        crate::engine::files::read_exact_at(&self.base, head, offset)?;
        tail.fill(0);
        Ok(())
    }
}

/// The pieces of `len` bytes at `offset`, split at page boundaries:
/// (page number, offset in the page, offset in the buffer, length).
fn pieces(offset: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize, usize)> {
    let end = offset + len as u64;
    let mut at = offset;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let page = at / PAGE;
        let in_page = (at % PAGE) as usize;
        let n = (PAGE as usize - in_page).min((end - at) as usize);
        let piece = (page, in_page, (at - offset) as usize, n);
        at += n as u64;
        Some(piece)
    })
}

impl StorageBackend for OverlayStorage {
    fn len(&self) -> Result<u64, BackendError> {
        Ok(self.state().len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendError> {
        let state = self.state();
        if offset.saturating_add(out.len() as u64) > state.len {
            // As a file read past its end fails.
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        for (page, in_page, at, n) in pieces(offset, out.len()) {
            let dest = &mut out[at..at + n];
            match state.pages.get(&page) {
                Some(bytes) => dest.copy_from_slice(&bytes[in_page..in_page + n]),
                None => self.read_base(state.base_visible, page * PAGE + in_page as u64, dest)?,
            }
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), BackendError> {
        let mut state = self.state();
        if len < state.len {
            state.base_visible = state.base_visible.min(len);
            let first_gone = len.div_ceil(PAGE);
            state.pages.retain(|&p, _| p < first_gone);
            let keep = (len % PAGE) as usize;
            if keep > 0
                && let Some(last) = state.pages.get_mut(&(len / PAGE))
            {
                last[keep..].fill(0);
            }
        }
        state.len = len;
        Ok(())
    }

    fn sync_data(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        let mut state = self.state();
        let visible = state.base_visible;
        for (page, in_page, at, n) in pieces(offset, data.len()) {
            let bytes = match state.pages.entry(page) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let mut fresh = vec![0u8; PAGE as usize].into_boxed_slice();
                    self.read_base(visible, page * PAGE, &mut fresh)?;
                    e.insert(fresh)
                }
            };
            bytes[in_page..in_page + n].copy_from_slice(&data[at..at + n]);
        }
        state.len = state.len.max(offset + data.len() as u64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay_over(bytes: &[u8]) -> (tempfile::NamedTempFile, OverlayStorage) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        let ro = File::open(file.path()).unwrap();
        let overlay = OverlayStorage::new(ro).unwrap();
        (file, overlay)
    }

    fn read(o: &OverlayStorage, offset: u64, n: usize) -> Vec<u8> {
        let mut out = vec![0xEE; n];
        o.read(offset, &mut out).unwrap();
        out
    }

    #[test]
    fn writes_stay_in_memory_and_reads_see_them() {
        let original: Vec<u8> = (0..3 * PAGE).map(|i| (i % 251) as u8).collect();
        let (file, o) = overlay_over(&original);
        // Across a page boundary, and past the end of the file.
        o.write(PAGE - 2, &[1, 2, 3, 4]).unwrap();
        o.write(3 * PAGE + 10, &[9; 5]).unwrap();
        assert_eq!(o.len().unwrap(), 3 * PAGE + 15);
        assert_eq!(
            read(&o, PAGE - 3, 6),
            [original[4093], 1, 2, 3, 4, original[4098]]
        );
        assert_eq!(read(&o, 3 * PAGE, 15)[..10], [0; 10]);
        assert_eq!(read(&o, 3 * PAGE + 10, 5), [9; 5]);
        assert!(o.read(3 * PAGE + 10, &mut [0; 6]).is_err());
        o.sync_data().unwrap();
        assert_eq!(std::fs::read(file.path()).unwrap(), original);
    }

    #[test]
    fn what_a_truncation_cut_off_reads_as_zeros_when_the_file_grows_again() {
        let (_file, o) = overlay_over(&[7u8; 2 * PAGE as usize]);
        o.write(PAGE + 100, &[1; 10]).unwrap();
        o.set_len(PAGE + 50).unwrap();
        o.set_len(2 * PAGE).unwrap();
        assert_eq!(read(&o, PAGE + 40, 10), [7; 10]);
        assert_eq!(read(&o, PAGE + 50, 60), [0; 60]);
        o.write(PAGE + 60, &[5]).unwrap();
        assert_eq!(read(&o, PAGE + 59, 3), [0, 5, 0]);
    }
}
