//! I/O observation and fault injection, for tests.
//!
//! Every byte the store writes to its files (the redb file through the
//! storage backend, the journal directly) passes these hooks first. Tests use
//! them to fail a write as a full disk would, or to keep a shadow copy of
//! what has been fsynced and so simulate a power loss. Production code never
//! installs one; the cost of the hook when absent is one branch per I/O.

use std::io;

/// Which file an I/O touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IoTarget {
    /// The redb database file.
    Database,
    /// The write-ahead journal beside it.
    Journal,
    /// The directory holding both (an fsync of its entries).
    Directory,
}

/// Hooks called before the store performs an I/O. Returning an error makes
/// that I/O fail with it, without touching the file.
pub trait IoFaults: Send + Sync + 'static {
    /// Before writing `data` at `offset`.
    fn on_write(&self, target: IoTarget, offset: u64, data: &[u8]) -> io::Result<()> {
        let _ = (target, offset, data);
        Ok(())
    }

    /// Before changing the file length.
    fn on_set_len(&self, target: IoTarget, len: u64) -> io::Result<()> {
        let _ = (target, len);
        Ok(())
    }

    /// Before an fsync / fdatasync.
    fn on_sync(&self, target: IoTarget) -> io::Result<()> {
        let _ = target;
        Ok(())
    }

    /// Before a write batch's redb commit, its journal record already
    /// written: an error here stands for the commit failing (redb finding a
    /// damaged page, an allocation it cannot make), after which the batch
    /// must not reappear.
    fn before_commit(&self) -> io::Result<()> {
        Ok(())
    }
}
