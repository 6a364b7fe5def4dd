//! File-system helpers: private file creation, directory syncs, positional
//! I/O that works on Unix and Windows alike.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Opens `path` for reading and writing, creating it readable and writable
/// by the owner only (0600 on Unix): the store holds private keys.
/// An existing file keeps its content unless `truncate`.
pub(crate) fn create_private(path: &Path, truncate: bool) -> Result<File> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map_err(|e| Error::io(path, e))
}

/// The kinds of temporary file the store makes beside a store file: each
/// is moved into place once complete, or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TempKind {
    /// A new store being laid out.
    Creating,
    /// A backup or snapshot being written.
    Partial,
    /// A store being imported from SQLite.
    Importing,
    /// A backup being copied over a store.
    Restoring,
    /// A store being rewritten under a new data key.
    Rekeying,
}

impl TempKind {
    const ALL: [TempKind; 5] = [
        TempKind::Creating,
        TempKind::Partial,
        TempKind::Importing,
        TempKind::Restoring,
        TempKind::Rekeying,
    ];

    fn name(self) -> &'static str {
        match self {
            TempKind::Creating => "creating",
            TempKind::Partial => "partial",
            TempKind::Importing => "importing",
            TempKind::Restoring => "restoring",
            TempKind::Rekeying => "rekeying",
        }
    }
}

/// Creates a temporary file for `target`, beside it:
/// `<target>.<kind>-<pid>-<n>.tmp`. The name is new (created with
/// `create_new`: never an existing file, never one another process is
/// writing), the file owner-only. Whoever writes it holds a lock on it — redb
/// locks the files it has open; a plain copy takes [`File::try_lock`] — so
/// that [`remove_stale_temps`] can tell a live temporary from a crash's
/// leftover.
pub(crate) fn create_temp(target: &Path, kind: TempKind) -> Result<(PathBuf, File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = with_suffix(
            target,
            format!(".{}-{}-{n}{stamp:x}.tmp", kind.name(), std::process::id()),
        );
        let mut options = OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        match options.open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            // The temporary's name would only confuse: the caller named
            // `target`, in a directory that is not there.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !parent_dir(target).is_dir() => {
                return Err(Error::InvalidPath {
                    path: target.display().to_string(),
                    reason: format!(
                        "the directory {} does not exist; create it first",
                        parent_dir(target).display()
                    ),
                });
            }
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
}

/// Removes the temporaries of `target` that a crashed process left behind:
/// those nobody holds a lock on. Best effort: what cannot be inspected or
/// removed is left.
pub(crate) fn remove_stale_temps(target: &Path) {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return;
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        let Some(rest) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let Some(pid) = temp_owner(rest) else {
            continue;
        };
        // A live process may be between two steps with the file unlocked.
        if pid == std::process::id() || process_alive(pid) {
            continue;
        }
        let path = entry.path();
        let Ok(file) = File::open(&path) else {
            continue;
        };
        // A live writer holds it locked (a process id seen as dead may be
        // one of another pid namespace); a crash released the lock.
        if file.try_lock().is_ok() {
            log::info!("removing {}, left by a process that died", path.display());
            let _ = std::fs::remove_file(with_suffix(&path, ".journal"));
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// The process id in a temporary's name past `<target>.`
/// (`<kind>-<pid>-<n>.tmp`), if it is one of ours.
fn temp_owner(rest: &str) -> Option<u32> {
    let body = rest.strip_suffix(".tmp")?;
    let (kind, tail) = body.split_once('-')?;
    if !TempKind::ALL.iter().any(|k| k.name() == kind) {
        return None;
    }
    tail.split_once('-')?.0.parse().ok()
}

/// Whether a process with this id exists (on Unix; elsewhere, always
/// assumed dead, and the file lock alone decides).
pub(crate) fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

/// `path` with `suffix` appended to its file name (`store.redb` +
/// `.journal` = `store.redb.journal`): the store's companion files live
/// next to it.
pub(crate) fn with_suffix(path: &Path, suffix: impl AsRef<std::ffi::OsStr>) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Gives the finished file `tmp` the name `target` without ever replacing
/// an existing file (a hard link, or a rename where links are not
/// supported) and removes the name `tmp`. Fails with `AlreadyExists` if
/// `target` exists. The file itself (its inode) is unchanged: a handle
/// open on `tmp`, and the locks it holds, now hold `target`.
pub(crate) fn link_into_place(tmp: &Path, target: &Path) -> io::Result<()> {
    let result = std::fs::hard_link(tmp, target).or_else(|e| {
        if e.kind() != io::ErrorKind::AlreadyExists && !target.exists() {
            std::fs::rename(tmp, target)
        } else {
            Err(e)
        }
    });
    let _ = std::fs::remove_file(tmp);
    result
}

/// Removes `path`; a file that is not there is not an error.
pub(crate) fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsyncs the directory holding `path`, so a file just created or renamed
/// there survives a power loss. A no-op where directories cannot be synced.
pub(crate) fn sync_parent_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = parent_dir(path);
        let f = File::open(dir).map_err(|e| Error::io(dir, e))?;
        f.sync_all().map_err(|e| Error::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes all of `data` at `offset`.
pub(crate) fn write_all_at(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.write_all_at(data, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < data.len() {
            let n = file.seek_write(&data[done..], offset + done as u64)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            done += n;
        }
        Ok(())
    }
}

/// Fills `buf` from `offset`.
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            let n = file.seek_read(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }
}
