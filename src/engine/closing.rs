//! Closing a store file: the last checkpoint, redb's close, the journal's
//! removal and, when it is worth it, compaction.
//!
//! When the last handle of a file is dropped the close is handed to a pool
//! worker and the dropping thread returns at once: the last `Arc<dyn
//! Backend>` is often dropped inside a task, and the close of a large file
//! takes long enough to stall a runtime. An open of the same path meanwhile
//! waits for the close, or runs it itself if no worker has started it yet;
//! `RedbStore::close().await` runs it and reports its outcome. A normal
//! process exit waits for background closes (an `atexit` hook, at most 30
//! s); if the process dies instead, nothing acknowledged is lost: the
//! journal is still there, and the next open replays it.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use redb::Database;

use crate::config::RedbStoreConfig;
use crate::engine::cache::Share;
use crate::engine::compact::{compact_lean, should_compact};
use crate::engine::lane::Lane;
use crate::engine::storage::IoStats;
use crate::engine::writer::WriterStatus;
use crate::engine::{contain_panic, files, registry};
use crate::error::{Error, Result};
use crate::fault::IoTarget;

/// What closing a file needs of its engine.
pub(crate) struct Shutdown {
    pub path: PathBuf,
    /// `None`: a halted engine that let go of its file and could not open
    /// it again; nothing to close, the journal stays for the next open.
    pub db: Option<Arc<Database>>,
    pub lane: Arc<Lane>,
    pub config: RedbStoreConfig,
    pub io: Arc<IoStats>,
    pub status: Arc<WriterStatus>,
    /// Returned to the process-wide budget once the file is closed.
    pub cache: Share,
}

/// Whether a session may have left much of the file free, so that the
/// free-space walk at close is worth its cost: it deleted rows, or it wrote
/// more than a quarter of the file's size (copy-on-write frees what it
/// rewrites). A session that mostly read, or wrote a little, skips the walk.
fn may_have_freed_space(path: &Path, rows_deleted: u64, io: &IoStats) -> bool {
    let written = io.write_bytes.load(Ordering::Relaxed);
    let file_len = std::fs::metadata(path).map_or(0, |m| m.len());
    rows_deleted > 0 || written > file_len / 4
}

impl Shutdown {
    /// Stops writes, makes everything durable and closes the database, then
    /// removes the journal: one fsync for the last checkpoint (none if the
    /// session wrote nothing since the last one), redb's close, the unlink
    /// and an fsync of the directory, so that a power cut after a clean
    /// close does not make the next open take the file for crashed.
    fn run(self) -> Result<()> {
        let Shutdown {
            path,
            db,
            lane,
            config,
            io,
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
        let rows_deleted = writer.rows_deleted;
        let recorded = writer.checkpoint_for_close();
        let journal = writer.journal.take();
        // The writer holds the other reference to the database.
        drop(writer);
        let mut result = Ok(());
        match db.map(Arc::try_unwrap) {
            None => {}
            Some(Ok(db)) => {
                // Both walk the file on trust: damage found there is
                // contained like damage found by any other read. Only worth
                // a walk when this session may have freed much of the file.
                let compact = recorded.is_ok()
                    && halted().is_none()
                    && may_have_freed_space(&path, rows_deleted, &io)
                    && contain_panic(&path, || should_compact(&db, &path, &config))
                        .unwrap_or(false);
                let closed =
                    contain_panic(&path, || db.close().map_err(|e| Error::storage(&path, e)));
                match closed {
                    Err(e) => result = Err(e),
                    Ok(()) if recorded.is_ok() => {
                        // Everything is in the file: the journal is redundant.
                        if let Some(journal) = journal {
                            let removed = journal.remove().and_then(|()| {
                                if let Some(faults) = &config.io_faults {
                                    faults
                                        .on_sync(IoTarget::Directory)
                                        .map_err(|e| Error::io(&path, e))?;
                                }
                                files::sync_parent_dir(&path)
                            });
                            if let Err(e) = removed {
                                log::warn!("{}: {e}", path.display());
                            }
                        }
                        if compact && let Err(e) = compact_lean(&path, &config) {
                            // The store is closed and sound; it is just larger.
                            log::warn!("{}: compaction at close: {e}", path.display());
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
            result = Err(Error::halted(&path, &cause));
        }
        result
    }
}

enum State {
    /// Waiting for a worker (or an open of the same path) to run it.
    Queued(Box<Shutdown>),
    Running,
    Done,
}

/// A close in flight: whoever calls [`Closing::finish`] first runs it.
pub(crate) struct Closing {
    path: PathBuf,
    state: Mutex<State>,
    done: Condvar,
}

impl Closing {
    /// Registers the close of `shutdown`'s file with the registry.
    pub fn register(shutdown: Shutdown) -> Arc<Closing> {
        let closing = Arc::new(Closing {
            path: shutdown.path.clone(),
            state: Mutex::new(State::Queued(Box::new(shutdown))),
            done: Condvar::new(),
        });
        registry::closing(&closing.path, closing.clone());
        closing
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
                    registry::released(&self.path);
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

/// Background closes not finished yet, and a signal when that drops to 0.
static PENDING: Mutex<usize> = Mutex::new(0);
static IDLE: Condvar = Condvar::new();

/// The longest a process exit waits for background closes.
const EXIT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

fn pending() -> MutexGuard<'static, usize> {
    PENDING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `closing` on a long-pool worker (a close is long work: the last
/// checkpoint, fsyncs, maybe a compaction; its lane's queued work it does
/// itself, never waiting for a commit worker), and makes a normal process
/// exit wait for it (up to [`EXIT_WAIT`]): a program that drops its last
/// handle at the end of `main` still leaves a cleanly closed file, not one
/// the next start must recover. A process that dies instead loses nothing:
/// the journal stays.
pub(crate) fn in_background(closing: Arc<Closing>) {
    register_exit_hook();
    *pending() += 1;
    crate::engine::pool::spawn_long(move || {
        closing.finish();
        let mut n = pending();
        *n -= 1;
        if *n == 0 {
            IDLE.notify_all();
        }
    });
}

fn register_exit_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    #[cfg(unix)]
    ONCE.call_once(|| {
        extern "C" fn wait_for_closes() {
            let mut n = pending();
            let deadline = std::time::Instant::now() + EXIT_WAIT;
            while *n > 0 {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return;
                }
                n = IDLE
                    .wait_timeout(n, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        // SAFETY: registers a plain function with the C runtime's exit
        // handlers; it takes no arguments and only waits on a condvar.
        unsafe {
            libc::atexit(wait_for_closes);
        }
    });
    #[cfg(not(unix))]
    ONCE.call_once(|| {});
}
