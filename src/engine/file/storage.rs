//! The redb storage backend: redb's own file backend plus I/O counters (for
//! `resource_report`), the test fault hooks, and fsyncs skipped while redb
//! commits in memory.

use std::fmt;
use std::fs::File;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use redb::backends::FileBackend;
use redb::{BackendError, DatabaseError, StorageBackend};

use crate::fault::{IoFaults, IoTarget};

/// What the engine and its storage backend share: bytes read from and
/// written to the store's files since open, and whether redb is committing
/// in memory.
#[derive(Debug, Default)]
pub(crate) struct IoStats {
    pub read_bytes: AtomicU64,
    pub write_bytes: AtomicU64,
    /// Set while the writer commits a batch with `Durability::None`. redb
    /// fsyncs the file whenever it grows it, whatever the durability of the
    /// commit; inside an in-memory commit that fsync protects nothing (the
    /// next durable commit's fsync makes the length durable with the data),
    /// and it would put a disk flush on the thread of the caller that
    /// commits. While set, `sync_data` returns at once.
    pub in_memory_commit: AtomicBool,
}

impl IoStats {
    pub fn add_read(&self, n: usize) {
        self.read_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub fn add_write(&self, n: usize) {
        self.write_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// The byte-range lock methods of a [`StorageBackend`] wrapper, forwarded
/// to its `inner` backend unchanged: redb's lock ranges name its own lock
/// bytes, not data, so a layer that moves data keeps them as they are.
macro_rules! forward_locks {
    () => {
        fn try_lock_range(
            &self,
            start: std::ops::Bound<u64>,
            end: std::ops::Bound<u64>,
        ) -> Result<bool, redb::BackendError> {
            self.inner.try_lock_range(start, end)
        }

        fn try_lock_shared_range(
            &self,
            start: std::ops::Bound<u64>,
            end: std::ops::Bound<u64>,
        ) -> Result<bool, redb::BackendError> {
            self.inner.try_lock_shared_range(start, end)
        }

        fn lock_range(
            &self,
            start: std::ops::Bound<u64>,
            end: std::ops::Bound<u64>,
        ) -> Result<(), redb::BackendError> {
            self.inner.lock_range(start, end)
        }

        fn lock_shared_range(
            &self,
            start: std::ops::Bound<u64>,
            end: std::ops::Bound<u64>,
        ) -> Result<(), redb::BackendError> {
            self.inner.lock_shared_range(start, end)
        }

        fn unlock_range(
            &self,
            start: std::ops::Bound<u64>,
            end: std::ops::Bound<u64>,
        ) -> Result<(), redb::BackendError> {
            self.inner.unlock_range(start, end)
        }

        fn query_lock_range(
            &self,
            start: std::ops::Bound<u64>,
            end: std::ops::Bound<u64>,
        ) -> Result<bool, redb::BackendError> {
            self.inner.query_lock_range(start, end)
        }
    };
}
pub(crate) use forward_locks;

pub(crate) struct FileStorage {
    inner: FileBackend,
    stats: Arc<IoStats>,
    faults: Option<Arc<dyn IoFaults>>,
}

impl fmt::Debug for FileStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStorage")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl FileStorage {
    pub fn new(
        file: File,
        stats: Arc<IoStats>,
        faults: Option<Arc<dyn IoFaults>>,
    ) -> Result<Self, DatabaseError> {
        Ok(Self {
            inner: FileBackend::new(file),
            stats,
            faults,
        })
    }

    fn hook(&self, f: impl FnOnce(&dyn IoFaults) -> io::Result<()>) -> io::Result<()> {
        match &self.faults {
            Some(faults) => f(faults.as_ref()),
            None => Ok(()),
        }
    }
}

impl StorageBackend for FileStorage {
    fn len(&self) -> Result<u64, BackendError> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), BackendError> {
        self.inner.read(offset, out)?;
        self.stats.add_read(out.len());
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), BackendError> {
        self.hook(|f| f.on_set_len(IoTarget::Database, len))?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), BackendError> {
        if self.stats.in_memory_commit.load(Ordering::Acquire) {
            return Ok(());
        }
        self.hook(|f| f.on_sync(IoTarget::Database))?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), BackendError> {
        self.hook(|f| f.on_write(IoTarget::Database, offset, data))?;
        self.inner.write(offset, data)?;
        self.stats.add_write(data.len());
        Ok(())
    }

    fn close(&self) -> Result<(), BackendError> {
        self.inner.close()
    }

    forward_locks!();
}
