//! One engine per file per process.
//!
//! redb refuses a second open of a file, even from the same process, so
//! every handle of a path shares one [`Engine`]: one `Database`, one page
//! cache, one writer thread, whatever the number of accounts in the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};

use crate::config::RedbStoreConfig;
use crate::engine::Engine;
use crate::error::{Error, Result};

struct Registry {
    engines: Mutex<HashMap<PathBuf, Weak<Engine>>>,
    /// Signalled when an engine finished closing and left the map.
    closed: Condvar,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        engines: Mutex::new(HashMap::new()),
        closed: Condvar::new(),
    })
}

fn lock(r: &Registry) -> MutexGuard<'_, HashMap<PathBuf, Weak<Engine>>> {
    r.engines.lock().unwrap_or_else(|p| p.into_inner())
}

/// The absolute, symlink-free form of `path`, which need not exist yet (its
/// directory must).
pub(crate) fn canonical(path: &Path) -> Result<PathBuf> {
    let invalid = |reason: &str| Error::InvalidPath {
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
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Returns the engine of `path`, opening it if no handle of this process
/// has it open. Blocking: call from a blocking context.
pub(crate) fn open_shared(path: &Path, config: &RedbStoreConfig) -> Result<Arc<Engine>> {
    let key = canonical(path)?;
    let r = registry();
    let mut engines = lock(r);
    loop {
        match engines.get(&key).map(Weak::upgrade) {
            Some(Some(engine)) => {
                if !engine.same_config(config) {
                    log::warn!(
                        "{}: already open in this process with another configuration; \
                         the first configuration stays in effect",
                        key.display()
                    );
                }
                return Ok(engine);
            }
            // The last handle is being dropped and the engine is still
            // closing the file: wait until it is gone, then open anew.
            Some(None) => {
                engines = r.closed.wait(engines).unwrap_or_else(|p| p.into_inner());
            }
            None => break,
        }
    }
    // Opening under the registry lock serializes opens; it is rare, and it
    // keeps two threads from racing to open one file. Nothing in here may
    // drop an `Arc<Engine>` (its drop takes this lock).
    let engine = Arc::new(Engine::open(&key, config)?);
    engines.insert(key, Arc::downgrade(&engine));
    Ok(engine)
}

/// Called by a closing engine once the file is released.
pub(crate) fn release(path: &Path) {
    let r = registry();
    let mut engines = lock(r);
    if engines.get(path).is_some_and(|w| w.strong_count() == 0) {
        engines.remove(path);
    }
    r.closed.notify_all();
}

/// True if this process has `path` open.
pub(crate) fn is_open_here(path: &Path) -> bool {
    let Ok(key) = canonical(path) else {
        return false;
    };
    lock(registry())
        .get(&key)
        .is_some_and(|w| w.strong_count() > 0)
}
