//! Closing a store file: what durability needs, and nothing else.
//!
//! The journal holds every acknowledged write, so a close only has to make
//! them part of the redb file and let go of it: the last sequence number is
//! recorded in a commit that costs no fsync, and redb's own close makes it
//! durable together with its allocator state (so that the next open needs
//! no repair), then the journal is removed. No walk of the file, no
//! compaction ([`crate::RedbStore::maintenance`] compacts): the close of
//! the last handle runs on the dropping thread and returns with the file
//! released, so that another process can open it and a copy of it is the
//! whole store at once. An open of the same path in this process
//! meanwhile waits for that close.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use redb::Database;

use crate::engine::cache::Share;
use crate::engine::contain_panic;
use crate::engine::lane::Lane;
use crate::engine::writer::WriterStatus;
use crate::error::{CheckpointError, StorageError};

type Result<T, E = CheckpointError> = std::result::Result<T, E>;

/// What closing a file needs of its engine.
pub(crate) struct Shutdown {
    pub path: PathBuf,
    /// `None`: a halted engine that let go of its file and could not open
    /// it again; nothing to close, the journal stays for the next open.
    pub db: Option<Arc<Database>>,
    pub lane: Arc<Lane>,
    pub status: Arc<WriterStatus>,
    /// Returned to the process-wide budget once the file is closed.
    pub cache: Share,
}

impl Shutdown {
    /// Stops writes, closes the database durably and removes the journal:
    /// redb's close (its allocator state in a two-phase commit, then its
    /// clean-shutdown header: three to five fsyncs), and the unlink. The directory
    /// is not synced: if a power cut brings the journal back, every record
    /// in it is at or below the sequence number the file recorded, so the
    /// next open replays nothing (it only verifies the file, as after any
    /// unclean shutdown).
    fn run(self) -> Result<()> {
        let Shutdown {
            path,
            db,
            lane,
            status,
            cache,
        } = self;
        let halted = || {
            status
                .halted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
        };
        let mut writer = lane.close();
        let recorded = writer.record_for_close();
        let journal = writer.journal.take();
        // The writer holds the other reference to the database.
        drop(writer);
        let mut result = Ok(());
        match db.map(Arc::try_unwrap) {
            None => {}
            Some(Ok(db)) => {
                let closed = contain_panic(&path, || {
                    db.close().map_err(|e| StorageError::storage(&path, e))
                });
                match closed {
                    Err(e) => result = Err(e.into()),
                    Ok(()) if recorded.is_ok() => {
                        // Everything is in the file: the journal is redundant.
                        if let Some(journal) = journal
                            && let Err(e) = journal.remove()
                        {
                            log::warn!("{}: {e}", path.display());
                        }
                    }
                    Ok(()) => {}
                }
            }
            Some(Err(_)) => {
                log::error!("{}: database still referenced at close", path.display())
            }
        }
        drop(cache);
        // After a halt, redb's own close error ("previous I/O error") says
        // less than the failure that halted the writer.
        if let Some(cause) = halted() {
            result = Err(CheckpointError::halted(&path, &cause));
        }
        result
    }
}

enum State {
    /// Registered; the dropping thread (or an open of the same path that
    /// got there first) runs it.
    Queued(Box<Shutdown>),
    Running,
    Done,
}

/// A close in flight: whoever calls [`Closing::finish`] first runs it.
pub(crate) struct Closing {
    path: PathBuf,
    state: Mutex<State>,
    done: Condvar,
    /// Told once the close has run and the file is released (the
    /// registry's; passed in, so that this module knows nothing of it).
    released: fn(&Path),
}

impl Closing {
    /// The close of `shutdown`'s file, not yet run; `released` is called
    /// once it has.
    pub fn new(shutdown: Shutdown, released: fn(&Path)) -> Arc<Closing> {
        Arc::new(Closing {
            path: shutdown.path.clone(),
            state: Mutex::new(State::Queued(Box::new(shutdown))),
            done: Condvar::new(),
            released,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the close if nobody has started it, and returns its outcome;
    /// otherwise waits until it is done and returns `None` (its outcome
    /// was logged). Blocking.
    pub fn finish(&self) -> Option<Result<()>> {
        let mut state = self.state();
        loop {
            match std::mem::replace(&mut *state, State::Running) {
                State::Queued(shutdown) => {
                    drop(state);
                    let result = shutdown.run();
                    if let Err(e) = &result {
                        log::error!("{}: closing: {e}", self.path.display());
                    }
                    *self.state() = State::Done;
                    self.done.notify_all();
                    (self.released)(&self.path);
                    return Some(result);
                }
                State::Running => {
                    *state = State::Running;
                    state = self.done.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                State::Done => {
                    *state = State::Done;
                    return None;
                }
            }
        }
    }
}
