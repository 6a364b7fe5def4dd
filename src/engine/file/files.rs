//! File-system helpers: private file creation, directory syncs, positional
//! I/O that works on Unix and Windows alike.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{OpenError, StorageError, StorageResult as Result};

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
    options.open(path).map_err(|e| StorageError::io(path, e))
}

/// Writes `data` to a new owner-only file at `path`, durably.
pub(crate) fn write_private_file(path: &Path, data: &[u8]) -> Result<()> {
    let file = create_private(path, true)?;
    write_all_at(&file, data, 0).map_err(|e| StorageError::io(path, e))?;
    file.sync_all().map_err(|e| StorageError::io(path, e))
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
pub(crate) fn create_temp(target: &Path, kind: TempKind) -> Result<(PathBuf, File), OpenError> {
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
                return Err(OpenError::InvalidPath {
                    path: target.display().to_string(),
                    reason: format!(
                        "the directory {} does not exist; create it first",
                        parent_dir(target).display()
                    ),
                });
            }
            Err(e) => return Err(StorageError::io(&path, e).into()),
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
        if !locked_by_someone(&file) {
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
/// an existing file and removes the name `tmp`. Fails with `AlreadyExists`
/// if `target` exists. The file itself (its inode) is unchanged: a handle
/// open on `tmp`, and the locks it holds, now hold `target`.
///
/// A hard link where the file system has them; else (FAT, exFAT, some
/// FUSE mounts) a rename that the kernel refuses if `target` exists
/// (`RENAME_NOREPLACE`, Linux). Only where neither exists is it a check
/// then a rename, which a file created by another process between the two
/// could lose to.
pub(crate) fn link_into_place(tmp: &Path, target: &Path) -> io::Result<()> {
    let result = match std::fs::hard_link(tmp, target) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => match rename_noreplace(tmp, target) {
            Err(e) if is_unsupported(&e) && !target.exists() => std::fs::rename(tmp, target),
            other => other,
        },
        other => other,
    };
    let _ = std::fs::remove_file(tmp);
    result
}

fn is_unsupported(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Unsupported
        || matches!(e.raw_os_error(), Some(code) if is_unsupported_code(code))
}

#[cfg(target_os = "linux")]
fn is_unsupported_code(code: i32) -> bool {
    code == libc::EINVAL || code == libc::ENOSYS || code == libc::EOPNOTSUPP
}

#[cfg(not(target_os = "linux"))]
fn is_unsupported_code(_: i32) -> bool {
    false
}

/// Whether renaming over a file failed only because this process holds it
/// open. Windows without POSIX rename semantics (releases before 10 1709,
/// file systems other than NTFS, wine) refuses to replace an open file;
/// the caller then lets go of it and renames once more (a process that
/// opened it in between makes that rename fail too, rather than write into
/// a replaced file). Never on Unix, where an open file is replaced.
pub(crate) fn refused_while_held(e: &io::Error) -> bool {
    cfg!(windows) && e.kind() == io::ErrorKind::PermissionDenied
}

/// `rename(from, to)` that fails with `AlreadyExists` rather than replace
/// `to` (Linux `renameat2(RENAME_NOREPLACE)`); `Unsupported` elsewhere.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput)
        };
        let (from, to) = (c(from)?, c(to)?);
        // SAFETY: two NUL-terminated paths relative to the working
        // directory; the raw syscall, as older C libraries lack a wrapper.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (from, to);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Whether some open file description holds a lock on `file`: redb's own
/// (byte-range OFD locks on Linux; it also takes `flock` up to redb 4.x,
/// but not every version does) or a plain copy's `flock`
/// ([`File::try_lock`]). The same kinds redb checks, so that a file redb
/// would refuse to open is never taken for abandoned.
pub(crate) fn locked_by_someone(file: &File) -> bool {
    if file.try_lock().is_err() {
        return true;
    }
    let _ = file.unlock();
    #[cfg(target_os = "linux")]
    if ofd_lock_held(file) {
        return true;
    }
    false
}

/// Whether an open file description other than `file`'s holds a byte-range
/// (OFD) lock on it, as redb takes them: a write lock over the whole range
/// conflicts with any, this process's too, and `F_OFD_GETLK` reports it.
/// Through the kernel's large-file ABI, as redb calls it: on 32-bit glibc
/// `struct flock` has 32-bit offsets, which glibc's `fcntl` translates
/// through.
#[cfg(target_os = "linux")]
fn ofd_lock_held(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    #[cfg(target_env = "gnu")]
    type Flock = libc::flock64;
    #[cfg(not(target_env = "gnu"))]
    type Flock = libc::flock;
    #[cfg(all(
        target_env = "gnu",
        not(any(
            target_pointer_width = "64",
            target_arch = "x86_64",
            target_arch = "riscv32"
        ))
    ))]
    let call = libc::SYS_fcntl64;
    #[cfg(not(all(
        target_env = "gnu",
        not(any(
            target_pointer_width = "64",
            target_arch = "x86_64",
            target_arch = "riscv32"
        ))
    )))]
    let call = libc::SYS_fcntl;
    // SAFETY: an all-zero `flock` is a valid value of the C struct.
    let mut probe: Flock = unsafe { std::mem::zeroed() };
    probe.l_type = libc::F_WRLCK as libc::c_short;
    probe.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: F_OFD_GETLK only reads and fills in `probe`, a struct of the
    // layout this syscall takes.
    let rc = unsafe {
        libc::syscall(
            call,
            file.as_raw_fd(),
            libc::F_OFD_GETLK,
            &mut probe as *mut Flock,
        )
    };
    // A file system without OFD locks: `flock` alone decides.
    rc == 0 && probe.l_type != libc::F_UNLCK as libc::c_short
}

/// What tells one file from another on its file system (device and
/// inode), where there is such a thing.
pub(crate) fn id_of(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// [`id_of`] an open file.
pub(crate) fn file_id(file: &File) -> Option<(u64, u64)> {
    file.metadata().ok().and_then(|m| id_of(&m))
}

/// The length of the file `path`, as `stat` shows it.
pub(crate) fn file_len(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .map_err(|e| StorageError::io(path, e))?
        .len())
}

/// Removes `path`; a file that is not there is not an error.
pub(crate) fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StorageError::io(path, e)),
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
        let f = File::open(dir).map_err(|e| StorageError::io(dir, e))?;
        f.sync_all().map_err(|e| StorageError::io(dir, e))?;
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

/// Reads what there is, up to `buf.len()` bytes, from `offset` (0 at the
/// end of the file).
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_at(buf, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        file.seek_read(buf, offset)
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

/// Free space (bytes this process may use) on the file system that holds
/// `path`; `None` where that cannot be told (statvfs failed; not Unix).
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) fn disk_free(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: statvfs is plain data; all zeroes is a valid value.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a NUL-terminated path and `st` a statvfs we own.
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return None;
        }
        // The field types differ between targets (u32 on 32-bit ARM).
        #[allow(clippy::unnecessary_cast)]
        Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}
