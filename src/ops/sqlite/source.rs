//! The SQLite file an import reads. It is never opened with SQLite (which
//! would write to it: SqliteStore migrates, and even a reader of a WAL
//! database creates its `-shm`): its bytes are copied into a private
//! temporary directory, and only that copy is checked, migrated and read.

use std::fs::File;
use std::io;

use diesel::Connection;
use diesel::sqlite::SqliteConnection;

use super::*;
use crate::engine::files;

/// The diesel migrations of whatsapp-rust-sqlite-storage 0.7 (the version
/// in Cargo.lock), as diesel records them in `__diesel_schema_migrations`:
/// a database holding others was written by a newer SqliteStore.
///
/// To update after raising whatsapp-rust-sqlite-storage: list its
/// migrations (`ls ~/.cargo/registry/src/*/whatsapp-rust-sqlite-storage-<version>/migrations`);
/// diesel records a directory `2026-07-03-000001_name` as its part before
/// the first `_` without dashes (`20260703000001`). Append the new ones
/// here, make the import read any tables or columns they add, and run the
/// unit test `known_migrations_are_those_of_sqlite_store`, which compares
/// this list with what a new SqliteStore records.
pub(crate) const SQLITE_STORE_MIGRATIONS: &[&str] = &[
    "20250814035031",
    "202509230322320000",
    "20251204000000",
    "20251211000000",
    "20251224000000",
    "20260205000000",
    "20260212000000",
    "20260312000000",
    "20260315000000",
    "20260323000000",
    "20260326000000",
    "20260331000000",
    "20260406171140",
    "20260426000000",
    "20260513000000",
    "20260528000000",
    "20260531000000",
    "20260601000000",
    "20260610000000",
    "20260626000000",
    "20260702000000",
    "20260703000000",
    "20260703000001",
];

/// The files SQLite keeps beside a database that hold committed data not
/// yet in it: the write-ahead log (a SqliteStore's newest commits are only
/// there until a checkpoint, and stay only there if its process was
/// killed) and a rollback journal (which SQLite plays back on open). The
/// `-shm` index is not copied: SQLite rebuilds it from the log.
const COMPANIONS: [&str; 2] = ["-wal", "-journal"];

/// Copies taken before giving up on a source that keeps changing.
const COPY_ATTEMPTS: usize = 5;

/// Names of private copies: `wa-redb-import-<pid>-<random>` in the
/// temporary directory.
const COPY_PREFIX: &str = "wa-redb-import-";

/// Removes the private copies that imports of processes no longer running
/// left behind (killed before their `Drop` ran): they hold private keys.
/// Only directories of this user are touched; any failure leaves one as it
/// is, for the next import to try again.
fn remove_copies_of_dead_imports(temp_root: &Path) {
    let Ok(entries) = std::fs::read_dir(temp_root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(COPY_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let ours = entry.metadata().is_ok_and(|m| {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                // SAFETY: geteuid has no preconditions.
                m.is_dir() && m.uid() == unsafe { libc::geteuid() }
            }
            #[cfg(not(unix))]
            {
                m.is_dir()
            }
        });
        if ours
            && !files::process_alive(pid)
            && let Err(e) = std::fs::remove_dir_all(entry.path())
        {
            log::warn!(
                "{}: cannot remove a dead import's copy: {e}",
                entry.path().display()
            );
        }
    }
}

/// A private copy of a SQLite database (with its log or journal): in a
/// directory of its own, owner-only (it holds private keys), removed with
/// everything in it when this is dropped, whatever path the import takes.
pub(crate) struct PrivateCopy {
    /// The copy of the database (`<dir>/source.db`), as the URL SqliteStore
    /// and diesel are opened with.
    pub(crate) url: String,
    /// Held for its `Drop`, which removes the directory.
    _dir: tempfile::TempDir,
}

#[cfg(test)]
impl PrivateCopy {
    fn dir(&self) -> &Path {
        self._dir.path()
    }

    fn db(&self) -> PathBuf {
        PathBuf::from(&self.url)
    }
}

/// What identifies one version of a file: its length, modification time
/// and (on Unix) inode; `None` if the file does not exist.
#[derive(Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    inode: u64,
}

fn stamp(path: &Path) -> Result<Option<Stamp>> {
    match std::fs::metadata(path) {
        Ok(m) => {
            #[cfg(unix)]
            let inode = std::os::unix::fs::MetadataExt::ino(&m);
            #[cfg(not(unix))]
            let inode = 0;
            Ok(Some(Stamp {
                len: m.len(),
                modified: m.modified().ok(),
                inode,
            }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io(path, e).into()),
    }
}

/// The stamps of `source` and of its companions.
fn stamps(source: &Path) -> Result<Vec<Option<Stamp>>> {
    std::iter::once(source.to_path_buf())
        .chain(COMPANIONS.iter().map(|c| files::with_suffix(source, c)))
        .map(|p| stamp(&p))
        .collect()
}

/// Copies the SQLite database `source` and its companions (see
/// [`COMPANIONS`]) into a new private temporary directory. `source` is only
/// read. The files are stamped (length, modification time, inode) before
/// and after the copy; if any changed, a process wrote to the database
/// meanwhile and the copy may mix two states, so it is taken again, up to
/// [`COPY_ATTEMPTS`] times. (A write that keeps a file's length within the
/// file system's timestamp granularity cannot be seen: import from a file no
/// application is using.)
pub(crate) fn private_copy(source: &Path) -> Result<PrivateCopy> {
    let temp_root = std::env::temp_dir();
    remove_copies_of_dead_imports(&temp_root);
    let prefix = format!("{COPY_PREFIX}{}-", std::process::id());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o700));
    }
    let dir = builder
        .tempdir()
        .map_err(|e| no_copy(source, &temp_root, e))?;
    let db = dir.path().join("source.db");
    let url = sqlite_url(&db)?;
    for _ in 0..COPY_ATTEMPTS {
        let before = stamps(source)?;
        if before[0].is_none() {
            return Err(invalid(source, "no such file"));
        }
        let mut vanished = false;
        for (i, suffix) in std::iter::once("").chain(COMPANIONS).enumerate() {
            let (from, to) = (
                files::with_suffix(source, suffix),
                files::with_suffix(&db, suffix),
            );
            if before[i].is_none() {
                // Left by an earlier attempt, if any.
                files::remove_if_present(&to)?;
                continue;
            }
            match copy_file(&from, &to) {
                Ok(()) => {}
                // Removed since the stamp (a checkpoint ended the log).
                Err(CopyError::Read(e)) if e.kind() == io::ErrorKind::NotFound => {
                    vanished = true;
                    break;
                }
                Err(CopyError::Read(e)) => return Err(StorageError::io(&from, e).into()),
                Err(CopyError::Write(e)) => return Err(no_copy(source, dir.path(), e)),
            }
        }
        if !vanished && stamps(source)? == before {
            return Ok(PrivateCopy { url, _dir: dir });
        }
    }
    Err(invalid(
        source,
        format!(
            "it changed while it was being copied, {COPY_ATTEMPTS} times (an application is \
             writing to it); stop the application and retry"
        ),
    ))
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `from` into `to` (created or truncated, owner-only).
fn copy_file(from: &Path, to: &Path) -> std::result::Result<(), CopyError> {
    let mut src = File::open(from).map_err(CopyError::Read)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut dst = options.open(to).map_err(CopyError::Write)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match io::Read::read(&mut src, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        io::Write::write_all(&mut dst, &buf[..n]).map_err(CopyError::Write)?;
    }
    Ok(())
}

fn no_copy(source: &Path, dir: &Path, e: io::Error) -> FileOpError {
    invalid(
        source,
        format!(
            "cannot write the private copy the import reads, in {}: {e}; the import needs room \
             for a copy of the SQLite file there (set TMPDIR to another directory)",
            dir.display()
        ),
    )
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Text)]
    version: String,
}

/// Checks that the copy is a SqliteStore database this build understands,
/// before SqliteStore (which would migrate anything) opens it. Errors name
/// `source`, the file the caller gave.
pub(crate) fn check_sqlite_store(source: &Path, copy: &PrivateCopy) -> Result<()> {
    let not_store = |reason: String| FileOpError::NotSqliteStore {
        path: source.to_path_buf(),
        reason,
    };
    let unreadable = |e: &dyn std::fmt::Display| not_store(format!("SQLite cannot read it: {e}"));
    let mut conn = SqliteConnection::establish(&copy.url).map_err(|e| unreadable(&e))?;
    let tables: Vec<Name> = diesel::sql_query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .load(&mut conn)
    .map_err(|e| unreadable(&e))?;
    let tables: BTreeSet<String> = tables.into_iter().map(|t| t.name).collect();
    if !tables.contains("__diesel_schema_migrations") {
        return Err(not_store(format!(
            "it has no `__diesel_schema_migrations` table, so no SqliteStore migration ever ran \
             on it; {}",
            table_list(&tables)
        )));
    }
    let versions: Vec<Version> = diesel::sql_query(
        "SELECT CAST(version AS TEXT) AS version FROM __diesel_schema_migrations ORDER BY version",
    )
    .load(&mut conn)
    .map_err(|e| unreadable(&e))?;
    let versions: Vec<String> = versions.into_iter().map(|v| v.version).collect();
    let first = SQLITE_STORE_MIGRATIONS[0];
    if !versions.iter().any(|v| v == first) {
        return Err(not_store(format!(
            "its diesel migrations are not SqliteStore's (SqliteStore's first, {first}, is not \
             among them); {}",
            table_list(&tables)
        )));
    }
    let unknown: Vec<String> = versions
        .into_iter()
        .filter(|v| !SQLITE_STORE_MIGRATIONS.contains(&v.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(FileOpError::SqliteSchemaTooNew {
            path: source.to_path_buf(),
            unknown,
        });
    }
    // Tables of SqliteStore's first migration.
    let missing: Vec<&str> = ["device", "identities", "sessions"]
        .into_iter()
        .filter(|t| !tables.contains(*t))
        .collect();
    if !missing.is_empty() {
        return Err(not_store(format!(
            "SqliteStore's migrations are recorded, but SqliteStore's table(s) {} are missing",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// "its tables: a, b, c" (at most ten), or "it has no tables".
fn table_list(tables: &BTreeSet<String>) -> String {
    if tables.is_empty() {
        return "it has no tables".into();
    }
    let mut names: Vec<&str> = tables.iter().map(String::as_str).take(10).collect();
    if tables.len() > names.len() {
        names.push("...");
    }
    format!("its tables: {}", names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(url: &str) -> Vec<String> {
        let mut conn = SqliteConnection::establish(url).unwrap();
        let rows: Vec<Version> = diesel::sql_query(
            "SELECT CAST(version AS TEXT) AS version FROM __diesel_schema_migrations \
             ORDER BY version",
        )
        .load(&mut conn)
        .unwrap();
        rows.into_iter().map(|v| v.version).collect()
    }

    /// The list is what the SqliteStore of Cargo.lock records in a new
    /// database.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn known_migrations_are_those_of_sqlite_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let url = path.to_str().unwrap();
        drop(SqliteStore::new(url).await.unwrap());
        let mut known: Vec<&str> = SQLITE_STORE_MIGRATIONS.to_vec();
        known.sort_unstable();
        assert_eq!(versions(url), known);
        assert_eq!(
            known[0], SQLITE_STORE_MIGRATIONS[0],
            "the first stays first"
        );
    }

    /// The copy holds the database and its log, byte for byte, owner-only,
    /// and is removed with its directory when dropped; the source's
    /// directory is not touched.
    #[test]
    fn the_private_copy_is_exact_owner_only_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("app.db");
        // Not opened with SQLite: any bytes are copied as they are.
        std::fs::write(&source, b"main bytes").unwrap();
        std::fs::write(files::with_suffix(&source, "-wal"), b"log bytes").unwrap();
        std::fs::write(files::with_suffix(&source, "-shm"), b"index").unwrap();
        let copy = private_copy(&source).unwrap();
        let copy_dir = copy.dir().to_path_buf();
        assert!(copy_dir.starts_with(std::env::temp_dir()), "{copy_dir:?}");
        assert_eq!(std::fs::read(copy.db()).unwrap(), b"main bytes");
        let wal = files::with_suffix(&copy.db(), "-wal");
        assert_eq!(std::fs::read(&wal).unwrap(), b"log bytes");
        let mut names: Vec<String> = std::fs::read_dir(&copy_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["source.db", "source.db-wal"], "no -shm, no journal");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&copy_dir), 0o700);
            assert_eq!(mode(&copy.db()), 0o600);
            assert_eq!(mode(&wal), 0o600);
        }
        drop(copy);
        assert!(!copy_dir.exists(), "the copy is removed");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["app.db", "app.db-shm", "app.db-wal"]);
        assert_eq!(std::fs::read(&source).unwrap(), b"main bytes");
    }

    #[test]
    fn copies_left_by_dead_imports_are_removed_and_live_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        // A process id that existed and no longer does.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let names = [
            format!("{COPY_PREFIX}{dead}-a1"),
            format!("{COPY_PREFIX}{}-b2", std::process::id()),
            "unrelated".to_string(),
            format!("{COPY_PREFIX}nopid"),
        ];
        for name in &names {
            std::fs::create_dir(root.path().join(name)).unwrap();
            std::fs::write(root.path().join(name).join("source.db"), b"keys").unwrap();
        }
        remove_copies_of_dead_imports(root.path());
        let left: Vec<bool> = names.iter().map(|n| root.path().join(n).exists()).collect();
        assert_eq!(left, [false, true, true, true]);
    }

    #[test]
    fn a_missing_source_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("none.db");
        let err = private_copy(&source).err().unwrap().to_string();
        assert!(
            err.contains("none.db") && err.contains("no such file"),
            "{err}"
        );
    }
}
