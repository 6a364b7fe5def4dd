//! One engine per file per process.
//!
//! redb refuses a second open of a file, even from the same process, so
//! every handle of a path shares one [`Engine`]: one `Database`, one page
//! cache, one journal, whatever the number of accounts in the file.
//!
//! The registry is locked only to look a path up or change its slot, never
//! while a file is opened or closed: opening, recovering, verifying or
//! compacting one file holds up no open or close of another. Opens of the
//! same path wait for each other; an open of a path whose last handle is
//! being dropped waits for that close. An open that finds the file open in
//! another process waits up to `busy_timeout` for it to let go.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};

use crate::config::RedbStoreConfig;
use crate::engine::Engine;
use crate::engine::catalog::Catalog;
use crate::engine::closing::{Closing, Shutdown};
use crate::error::{CheckpointError, OpenError, StorageError};

type Result<T, E = OpenError> = std::result::Result<T, E>;

enum Slot {
    /// Open; the engine may be being dropped (then it moves to `Closing`).
    Open(Weak<Engine>),
    /// Some thread is opening the file.
    Opening,
    /// The last handle was dropped; the close runs, or waits to run.
    Closing(Arc<Closing>),
}

struct Registry {
    slots: Mutex<HashMap<PathBuf, Slot>>,
    /// Signalled whenever a slot changes.
    changed: Condvar,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        slots: Mutex::new(HashMap::new()),
        changed: Condvar::new(),
    })
}

fn lock(r: &Registry) -> MutexGuard<'_, HashMap<PathBuf, Slot>> {
    r.slots.lock().unwrap_or_else(|p| p.into_inner())
}

fn wait<'a>(
    r: &'a Registry,
    slots: MutexGuard<'a, HashMap<PathBuf, Slot>>,
) -> MutexGuard<'a, HashMap<PathBuf, Slot>> {
    r.changed.wait(slots).unwrap_or_else(|p| p.into_inner())
}

/// The absolute, symlink-free form of `path`, which need not exist yet (its
/// directory must).
pub(crate) fn canonical(path: &Path) -> Result<PathBuf> {
    let invalid = |reason: &str| OpenError::InvalidPath {
        path: path.display().to_string(),
        reason: reason.to_string(),
    };
    if path.as_os_str().is_empty() {
        return Err(invalid("the path is empty"));
    }
    match std::fs::canonicalize(path) {
        Ok(p) => {
            if p.is_dir() {
                return Err(invalid("it is a directory, not a file"));
            }
            Ok(p)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let name = path
                .file_name()
                .ok_or_else(|| invalid("it does not name a file"))?;
            let parent = crate::engine::files::parent_dir(path);
            let dir = std::fs::canonicalize(parent).map_err(|e| {
                invalid(&format!(
                    "its directory {} cannot be used: {e}",
                    parent.display()
                ))
            })?;
            if !dir.is_dir() {
                return Err(invalid(&format!("{} is not a directory", dir.display())));
            }
            Ok(dir.join(name))
        }
        Err(e) => Err(StorageError::io(path, e).into()),
    }
}

/// Puts the slot of `path` back when an open fails or panics.
struct OpeningGuard<'a> {
    path: &'a Path,
    armed: bool,
}

impl Drop for OpeningGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let r = registry();
            lock(r).remove(self.path);
            r.changed.notify_all();
        }
    }
}

/// Returns the engine of `path`, opening it if no handle of this process
/// has it open, and adapting it to `config` (see [`Engine::adopt`]).
/// Blocking: call from a blocking context.
pub(crate) fn open_shared(
    catalog: &'static dyn Catalog,
    path: &Path,
    config: &RedbStoreConfig,
) -> Result<Arc<Engine>> {
    let key = canonical(path)?;
    let r = registry();
    let mut slots = lock(r);
    loop {
        match slots.get(&key) {
            None => break,
            Some(Slot::Open(weak)) => match weak.upgrade() {
                Some(engine) => {
                    drop(slots);
                    // A halted engine reopens its file first: the next open
                    // of a path gets a store that writes, or the reason it
                    // cannot.
                    engine.heal()?;
                    engine.adopt(config)?;
                    return Ok(engine);
                }
                // The last handle is being dropped: its slot turns into
                // `Closing` in a moment.
                None => slots = wait(r, slots),
            },
            Some(Slot::Opening) => slots = wait(r, slots),
            Some(Slot::Closing(closing)) => {
                let closing = closing.clone();
                drop(slots);
                // Runs the close here if no worker has started it; its
                // outcome was logged, and the file is free either way.
                closing.finish();
                slots = lock(r);
            }
        }
    }
    slots.insert(key.clone(), Slot::Opening);
    drop(slots);
    let mut guard = OpeningGuard {
        path: &key,
        armed: true,
    };
    let engine = Arc::new(open_waiting(catalog, &key, config)?);
    guard.armed = false;
    drop(guard);
    lock(r).insert(key, Slot::Open(Arc::downgrade(&engine)));
    r.changed.notify_all();
    Ok(engine)
}

/// [`Engine::open`], waiting up to `config.busy_timeout` while another
/// process has the file open (see [`while_open_elsewhere`]).
fn open_waiting(
    catalog: &'static dyn Catalog,
    path: &Path,
    config: &RedbStoreConfig,
) -> Result<Engine> {
    while_open_elsewhere(config.busy_timeout, || Engine::open(catalog, path, config))
}

/// Runs `open` again while it fails with [`OpenError::AlreadyOpen`], for up to
/// `wait`: a process that just dropped its store lets go of the file
/// within its close (milliseconds), one that is still running keeps it, so
/// the wait ends in "open in another process". Polls with a backoff from
/// 1 ms to 50 ms: redb's locks cannot be waited on.
pub(crate) fn while_open_elsewhere<T>(
    wait: std::time::Duration,
    mut open: impl FnMut() -> Result<T>,
) -> Result<T> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match open() {
            Err(OpenError::AlreadyOpen { .. }) if started.elapsed() < wait => {
                let left = wait.saturating_sub(started.elapsed());
                std::thread::sleep(pause.min(left));
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Closes the file of an engine whose last handle went, on this thread. An
/// open of the same path meanwhile waits for the close, or runs it if it
/// gets there first: then `None` (the outcome was logged).
pub(crate) fn close(shutdown: Shutdown) -> Option<Result<(), CheckpointError>> {
    let closing = Closing::new(shutdown, released);
    let r = registry();
    lock(r).insert(closing.path().to_path_buf(), Slot::Closing(closing.clone()));
    r.changed.notify_all();
    closing.finish()
}

/// Called once a file is closed and released.
fn released(path: &Path) {
    let r = registry();
    let mut slots = lock(r);
    if matches!(slots.get(path), Some(Slot::Closing(_))) {
        slots.remove(path);
    }
    drop(slots);
    r.changed.notify_all();
}

/// True if this process has `path` open (or is closing it).
pub(crate) fn is_open_here(path: &Path) -> bool {
    let Ok(key) = canonical(path) else {
        return false;
    };
    match lock(registry()).get(&key) {
        None => false,
        Some(Slot::Open(weak)) => weak.strong_count() > 0,
        Some(Slot::Opening | Slot::Closing(_)) => true,
    }
}
