//! The fault layer (`IoFaults`): per file (database, journal), a full disk,
//! failing writes and failing syncs, armed and healed by the tests; and the
//! store configuration that installs it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use whatsapp_rust_redb_storage::fault::{IoFaults, IoTarget};
use whatsapp_rust_redb_storage::{RedbStoreConfig, Synchronous};

use crate::ENOSPC;

fn idx(t: IoTarget) -> usize {
    match t {
        IoTarget::Database => 0,
        // Directory fsyncs (at a clean close) count with the journal's.
        _ => 1,
    }
}

/// The fault layer. Each knob is per file (database, journal):
/// - `full`: the disk is full: a write or `set_len` that would make the
///   file longer than it is fails with ENOSPC; overwrites inside it work
///   (what a real full disk does to a preallocated file);
/// - `fail_writes`: every write fails with this errno, once `skip` more
///   writes have passed;
/// - `fail_syncs`: every sync fails with this errno.
#[derive(Default)]
pub struct Faults {
    full: [AtomicBool; 2],
    fail_writes: [AtomicI32; 2],
    skip: [AtomicU64; 2],
    fail_syncs: [AtomicI32; 2],
    /// Length of each file as the writes seen so far made it.
    len: Mutex<[u64; 2]>,
    writes: [AtomicU64; 2],
    injected: [AtomicU64; 2],
}

impl Faults {
    /// A layer for the store at `path`, knowing its current size.
    pub fn new(path: &Path) -> Arc<Faults> {
        let f = Faults::default();
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        *f.len.lock().unwrap() = [size(path), size(&journal_of(path))];
        Arc::new(f)
    }

    pub fn disk_full(&self, t: IoTarget, on: bool) {
        self.full[idx(t)].store(on, Ordering::SeqCst);
    }

    /// Every write to `t` after the next `skip` fails with `errno`.
    pub fn fail_writes(&self, t: IoTarget, errno: i32, skip: u64) {
        self.skip[idx(t)].store(skip, Ordering::SeqCst);
        self.fail_writes[idx(t)].store(errno, Ordering::SeqCst);
    }

    pub fn fail_syncs(&self, t: IoTarget, errno: i32) {
        self.fail_syncs[idx(t)].store(errno, Ordering::SeqCst);
    }

    pub fn heal(&self) {
        for i in 0..2 {
            self.full[i].store(false, Ordering::SeqCst);
            self.fail_writes[i].store(0, Ordering::SeqCst);
            self.fail_syncs[i].store(0, Ordering::SeqCst);
        }
    }

    pub fn injected(&self, t: IoTarget) -> u64 {
        self.injected[idx(t)].load(Ordering::SeqCst)
    }

    fn fail(&self, i: usize, errno: i32) -> io::Result<()> {
        self.injected[i].fetch_add(1, Ordering::SeqCst);
        Err(io::Error::from_raw_os_error(errno))
    }
}

impl IoFaults for Faults {
    fn on_write(&self, t: IoTarget, offset: u64, data: &[u8]) -> io::Result<()> {
        let i = idx(t);
        self.writes[i].fetch_add(1, Ordering::SeqCst);
        let errno = self.fail_writes[i].load(Ordering::SeqCst);
        if errno != 0 {
            let passed = self.skip[i]
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| s.checked_sub(1))
                .is_ok();
            if !passed {
                return self.fail(i, errno);
            }
        }
        let mut len = self.len.lock().unwrap();
        let end = offset + data.len() as u64;
        if end > len[i] {
            if self.full[i].load(Ordering::SeqCst) {
                drop(len);
                return self.fail(i, ENOSPC);
            }
            len[i] = end;
        }
        Ok(())
    }

    fn on_set_len(&self, t: IoTarget, new_len: u64) -> io::Result<()> {
        let i = idx(t);
        let mut len = self.len.lock().unwrap();
        if new_len > len[i] && self.full[i].load(Ordering::SeqCst) {
            drop(len);
            return self.fail(i, ENOSPC);
        }
        len[i] = new_len;
        Ok(())
    }

    fn on_sync(&self, t: IoTarget) -> io::Result<()> {
        let errno = self.fail_syncs[idx(t)].load(Ordering::SeqCst);
        if errno != 0 {
            return self.fail(idx(t), errno);
        }
        Ok(())
    }
}

pub fn journal_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.journal", path.display()))
}

pub fn config(mode: Synchronous, faults: &Arc<Faults>) -> RedbStoreConfig {
    // No timed checkpoint during a test: the tests choose when.
    RedbStoreConfig::default()
        .with_synchronous(mode)
        .with_checkpoint_interval(Duration::from_secs(3600))
        .with_io_faults(faults.clone())
}
