//! Looking at a store never changes it: `wa-redb info`, `dump`, `check`,
//! `backup` (and `export`, with feature `sqlite`) leave every file of the store's
//! directory byte-identical, work for a user who may only read the file,
//! show a crashed process's journal applied (in memory), and work while
//! another process has the store open, showing its last checkpoint and the
//! journal records complete at the time.
//!
//! Unix only: it runs commands as another user on files of mode 0644.
#![cfg(unix)]

#[path = "util/process.rs"]
mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig};

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `wa-redb`; as an unprivileged user (nobody) when the tests run as
/// root, so that file permissions apply.
fn wa_as_reader<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    wa(args, true)
}

fn wa<I, S>(args: I, as_reader: bool) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    // SAFETY: geteuid has no preconditions.
    let switch = as_reader && unsafe { libc::geteuid() } == 0;
    let mut cmd = match switch {
        true => Command::new(reader_binary()),
        false => Command::new(env!("CARGO_BIN_EXE_wa-redb")),
    };
    cmd.args(args).stdin(Stdio::null());
    if switch {
        // Private copies of a look go to TMPDIR, which must be the
        // reader's to write.
        cmd.uid(65534).gid(65534).env("TMPDIR", "/tmp");
    }
    let out = cmd.output().expect("run wa-redb");
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Every file of `dir`: name -> (bytes, mode).
fn files_of(dir: &Path) -> BTreeMap<String, (Vec<u8>, u32)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let mode = e.metadata().unwrap().permissions().mode();
            let bytes = std::fs::read(e.path()).unwrap();
            (e.file_name().to_string_lossy().into_owned(), (bytes, mode))
        })
        .collect()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The session keys `dump` shows for device 1, run as a reader.
fn sessions_shown(file: &Path) -> BTreeSet<String> {
    sessions_shown_to(file, true)
}

fn sessions_shown_to(file: &Path, as_reader: bool) -> BTreeSet<String> {
    let args = [
        OsStr::new("dump"),
        file.as_os_str(),
        OsStr::new("--table"),
        OsStr::new("sessions"),
    ];
    let r = wa(args, as_reader);
    assert_eq!(r.code, 0, "{r:?}");
    r.stdout
        .lines()
        .map(|l| json(l)["key"][0].as_str().unwrap().to_string())
        .collect()
}

/// Runs every looking command on `file` as a reader and asserts that the
/// files of its directory are byte-identical afterwards; returns `info`'s
/// JSON.
fn look_everywhere(file: &Path) -> Value {
    let dir = file.parent().unwrap();
    let before = files_of(dir);
    let f = file.as_os_str();
    let info = wa_as_reader([OsStr::new("info"), f, OsStr::new("--json")]);
    assert_eq!(info.code, 0, "{info:?}");
    let r = wa_as_reader([OsStr::new("info"), f]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("accounts   1"), "{r:?}");
    let r = wa_as_reader([OsStr::new("dump"), f]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = wa_as_reader([OsStr::new("check"), f]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("ok: "), "{r:?}");
    // A backup only looks at its source too.
    let out = world_dir();
    chmod(out.path(), 0o777);
    let copy = out.path().join("backup.redb");
    let r = wa_as_reader([OsStr::new("backup"), f, copy.as_os_str()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(copy.exists(), "{r:?}");
    #[cfg(feature = "sqlite")]
    {
        // Into a directory the reader may write.
        let out = world_dir();
        chmod(out.path(), 0o777);
        let db = out.path().join("exported.db");
        let r = wa_as_reader([OsStr::new("export-sqlite"), f, db.as_os_str()]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains("exported device 1"), "{r:?}");
    }
    let after = files_of(dir);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (name, (bytes, mode)) in &before {
        assert!(after[name].0 == *bytes, "{name} changed");
        assert_eq!(after[name].1, *mode, "{name}'s mode changed");
    }
    json(&info.stdout)
}

/// A store directory a reader may list but not write, holding `store.redb`.
/// Whether every directory above `path` lets others pass.
fn others_can_reach(path: &Path) -> bool {
    path.ancestors()
        .skip(1)
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

/// A fresh directory the reader (nobody) can reach: in the temporary
/// directory if others can pass through it, else in `/tmp`.
fn world_dir() -> tempfile::TempDir {
    let base = std::env::temp_dir();
    let dir = match others_can_reach(&base.join("x")) {
        true => tempfile::tempdir_in(base),
        false => tempfile::tempdir_in("/tmp"),
    }
    .unwrap();
    chmod(dir.path(), 0o755);
    dir
}

/// The `wa-redb` binary where the reader can run it: a copy in a world
/// directory when the build's own directory is private (a clone in /root).
fn reader_binary() -> std::path::PathBuf {
    static COPY: std::sync::OnceLock<(tempfile::TempDir, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    let built = Path::new(env!("CARGO_BIN_EXE_wa-redb"));
    if others_can_reach(built) {
        return built.to_path_buf();
    }
    let (_, copy) = COPY.get_or_init(|| {
        let dir = world_dir();
        let copy = dir.path().join("wa-redb");
        std::fs::copy(built, &copy).unwrap();
        chmod(&copy, 0o755);
        (dir, copy)
    });
    copy.clone()
}

fn reader_dir() -> tempfile::TempDir {
    world_dir()
}

#[tokio::test]
async fn looking_at_a_closed_store_changes_nothing_and_needs_only_read_permission() {
    let dir = reader_dir();
    let file = dir.path().join("store.redb");
    let store = RedbStore::new(&file).await.unwrap();
    store
        .put_session("alice@s.whatsapp.net.0", b"s1")
        .await
        .unwrap();
    store.close().await.unwrap();
    chmod(&file, 0o644);
    chmod(dir.path(), 0o555);
    let info = look_everywhere(&file);
    assert_eq!(info["look"]["in_use"], false);
    assert_eq!(info["look"]["crashed"], false);
    assert_eq!(
        sessions_shown(&file),
        BTreeSet::from(["alice@s.whatsapp.net.0".to_string()])
    );
    chmod(dir.path(), 0o755);
}

/// Child of the crash test: writes past its last checkpoint, then waits to
/// be killed.
#[tokio::test]
#[ignore]
async fn child_writes_then_waits_to_be_killed() {
    let Some(path) = std::env::var_os("WA_REDB_LOOK_FILE") else {
        return;
    };
    let config = RedbStoreConfig::default().with_checkpoint_interval(Duration::from_secs(3600));
    let store = RedbStore::with_config(&path, config).await.unwrap();
    store.put_session("checkpointed.0", b"a").await.unwrap();
    store.checkpoint().await.unwrap();
    store.put_session("journaled.0", b"b").await.unwrap();
    process::report_and_wait("READY");
    // Holding the store until the parent is done looking.
    drop(store);
}

fn start_child(test: &str, file: &Path) -> (std::process::Child, impl std::io::BufRead) {
    let mut cmd = process::self_command(test);
    cmd.env("WA_REDB_LOOK_FILE", file);
    process::spawn_until(cmd, "READY")
}

#[tokio::test]
async fn looking_after_a_crash_shows_the_journal_applied_in_memory_only() {
    let dir = reader_dir();
    let file = dir.path().join("store.redb");
    let (mut child, _out) = start_child("child_writes_then_waits_to_be_killed", &file);
    child.kill().unwrap();
    child.wait().unwrap();
    let journal = dir.path().join("store.redb.journal");
    assert!(journal.exists(), "the killed process left its journal");
    chmod(&file, 0o644);
    chmod(&journal, 0o644);
    chmod(dir.path(), 0o555);
    let info = look_everywhere(&file);
    assert_eq!(info["look"]["crashed"], true, "{info}");
    assert_eq!(info["look"]["in_use"], false, "{info}");
    assert_eq!(info["look"]["journal_records"], 1, "{info}");
    let shown = sessions_shown(&file);
    assert_eq!(
        shown,
        BTreeSet::from(["checkpointed.0".to_string(), "journaled.0".to_string()])
    );
    let r = wa_as_reader([OsStr::new("info"), file.as_os_str()]);
    assert!(r.stderr.contains("did not close the store"), "{r:?}");
    // The application's next open still finds (and applies) the journal.
    chmod(dir.path(), 0o755);
    let store = RedbStore::new(&file).await.unwrap();
    assert_eq!(store.recovery_report().records_replayed, 1);
    assert!(store.get_session("journaled.0").await.unwrap().is_some());
}

#[tokio::test]
async fn a_store_in_use_shows_its_last_checkpoint_and_complete_journal_records() {
    let dir = reader_dir();
    let file = dir.path().join("store.redb");
    let (mut child, mut out) = start_child("child_writes_then_waits_to_be_killed", &file);
    let journal = dir.path().join("store.redb.journal");
    chmod(&file, 0o644);
    chmod(&journal, 0o644);
    let info = look_everywhere(&file);
    assert_eq!(info["look"]["in_use"], true, "{info}");
    let at = info["look"]["checkpointed_at"].as_i64().expect("recorded");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - 3600..=now).contains(&at), "{at} vs {now}");
    assert_eq!(
        sessions_shown(&file),
        BTreeSet::from(["checkpointed.0".to_string(), "journaled.0".to_string()])
    );
    let r = wa_as_reader([OsStr::new("info"), file.as_os_str()]);
    assert!(r.stderr.contains("open in another process"), "{r:?}");
    drop(child.stdin.take());
    std::io::Read::read_to_end(&mut out, &mut Vec::new()).unwrap();
    assert!(child.wait().unwrap().success());
}

/// Child of the racing look: writes sessions 0, 1, 2… with a checkpoint
/// every few, until told to stop.
#[tokio::test]
#[ignore]
async fn child_writes_and_checkpoints_until_stopped() {
    let Some(path) = std::env::var_os("WA_REDB_LOOK_FILE") else {
        return;
    };
    let store = RedbStore::new(&path).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopper = stop.clone();
    std::thread::spawn(move || {
        process::report_and_wait("READY");
        stopper.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let mut k = 0u32;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        store
            .put_session(&format!("s{k:06}.0"), &k.to_le_bytes())
            .await
            .unwrap();
        if k % 25 == 24 {
            store.checkpoint().await.unwrap();
        }
        k += 1;
    }
    store.close().await.unwrap();
}

#[tokio::test]
async fn looks_at_a_store_being_written_always_see_a_prefix_of_its_writes() {
    let dir = reader_dir();
    let file = dir.path().join("store.redb");
    let (mut child, mut out) = start_child("child_writes_and_checkpoints_until_stopped", &file);
    // (As the owner: the child's files are owner-only.)
    for _ in 0..8 {
        let shown = sessions_shown_to(&file, false);
        // Writes are acknowledged one after another: a consistent view
        // holds sessions 0..n for some n.
        let expected: BTreeSet<String> = (0..shown.len()).map(|k| format!("s{k:06}.0")).collect();
        assert_eq!(shown, expected, "a view with a gap");
    }
    drop(child.stdin.take());
    std::io::Read::read_to_end(&mut out, &mut Vec::new()).unwrap();
    assert!(child.wait().unwrap().success());
}

#[tokio::test]
async fn a_store_the_user_cannot_read_is_an_error_not_damage() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Only root can run the reader as someone else; an owner can
        // always read their own 0600 file.
        return;
    }
    let dir = reader_dir();
    let file = dir.path().join("store.redb");
    RedbStore::new(&file).await.unwrap().close().await.unwrap();
    chmod(&file, 0o600);
    for command in ["check", "info"] {
        let r = wa_as_reader([OsStr::new(command), file.as_os_str()]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(!r.stdout.contains("DAMAGED"), "{r:?}");
        assert!(r.stderr.contains("Permission denied"), "{r:?}");
        assert!(r.stderr.contains("store.redb"), "{r:?}");
    }
}
