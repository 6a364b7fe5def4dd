//! How a store file is opened, shared and closed: merged configurations
//! (the strongest durability wins), a drop that closes the file before it
//! returns with work that does not grow with the file, opens of different
//! files that never wait for each other, and what a process exit right
//! after a drop leaves.
//!
//! Deterministic: fault hooks that park an I/O until the test lets it go
//! stand in for slow disks; child processes for exits. No sleeps.

// The cases with child processes run on Unix only (see each one); on other
// systems their helpers are unused, and the Windows build under wine would
// warn about every one of them.
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]

#[path = "util/big_store.rs"]
mod big_store;
#[path = "util/process.rs"]
mod process;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wacore::store::traits::{DeviceStore, SignalStore};
use whatsapp_rust_redb_storage::fault::{IoFaults, IoTarget};
use whatsapp_rust_redb_storage::{CloseOutcome, RedbStore, RedbStoreConfig, Synchronous};

fn journal_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.journal", path.display()))
}

/// Counts fsyncs per target.
#[derive(Default)]
struct SyncCount {
    journal: AtomicU64,
    directory: AtomicU64,
}

impl IoFaults for SyncCount {
    fn on_sync(&self, target: IoTarget) -> io::Result<()> {
        match target {
            IoTarget::Journal => self.journal.fetch_add(1, Ordering::SeqCst),
            IoTarget::Directory => self.directory.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
        Ok(())
    }
}

#[tokio::test]
async fn a_second_handle_asking_for_full_raises_every_handle_to_full() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let syncs = Arc::new(SyncCount::default());
    let normal = RedbStoreConfig::default().with_io_faults(syncs.clone());
    let a = RedbStore::with_config_for_device(&path, 1, normal)
        .await
        .unwrap();
    a.put_session("before@c.us.0", b"normal").await.unwrap();
    assert_eq!(
        syncs.journal.load(Ordering::SeqCst),
        0,
        "Normal does not fsync"
    );

    let full = RedbStoreConfig::default().with_synchronous(Synchronous::Full);
    let b = RedbStore::with_config_for_device(&path, 2, full)
        .await
        .unwrap();
    assert_eq!(b.config().synchronous, Synchronous::Full);
    assert_eq!(
        a.config().synchronous,
        Synchronous::Full,
        "for every handle"
    );

    // Every acknowledged write of either handle is fsynced from now on.
    for (i, s) in [&a, &b, &a].into_iter().enumerate() {
        let before = syncs.journal.load(Ordering::SeqCst);
        s.put_session(&format!("after-{i}@c.us.0"), b"full")
            .await
            .unwrap();
        assert!(syncs.journal.load(Ordering::SeqCst) > before, "write {i}");
    }

    // A later, weaker handle does not lower it.
    let c = RedbStore::with_config_for_device(&path, 3, RedbStoreConfig::default())
        .await
        .unwrap();
    assert_eq!(c.config().synchronous, Synchronous::Full);
    // The other settings merge too: the shorter interval wins.
    let d = RedbStore::with_config_for_device(
        &path,
        4,
        RedbStoreConfig::default().with_checkpoint_interval(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    assert_eq!(a.config().checkpoint_interval, Duration::from_millis(300));
    for s in [a, b, c, d] {
        s.close().await.unwrap();
    }
}

#[tokio::test]
async fn off_then_normal_journals_from_then_on_and_keeps_what_came_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let off = RedbStoreConfig::default().with_synchronous(Synchronous::Off);
    let a = RedbStore::with_config_for_device(&path, 1, off)
        .await
        .unwrap();
    a.put_session("in-memory@c.us.0", b"off").await.unwrap();
    let b = RedbStore::with_config_for_device(&path, 2, RedbStoreConfig::default())
        .await
        .unwrap();
    assert_eq!(a.config().synchronous, Synchronous::Normal);
    a.put_session("journaled@c.us.0", b"normal").await.unwrap();
    // What the Off handle wrote before was made durable by the switch, what
    // it writes after is journaled: a crash now (the journal is the only
    // record of the second write) keeps both. Simulate it by copying the
    // files while the store is open.
    let copy = dir.path().join("copy.redb");
    std::fs::copy(&path, &copy).unwrap();
    std::fs::copy(journal_of(&path), journal_of(&copy)).unwrap();
    drop((a, b));
    let s = RedbStore::new(&copy).await.unwrap();
    assert_eq!(
        s.get_session("in-memory@c.us.0").await.unwrap().as_deref(),
        Some(&b"off"[..])
    );
    assert_eq!(
        s.get_session("journaled@c.us.0").await.unwrap().as_deref(),
        Some(&b"normal"[..])
    );
    s.close().await.unwrap();
}

#[tokio::test]
async fn close_says_whether_the_file_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let a = RedbStore::new(&path).await.unwrap();
    a.put_session("x@c.us.0", b"x").await.unwrap();
    let other_account = a.for_device(2);
    assert_eq!(a.close().await.unwrap(), CloseOutcome::StillOpen);
    assert!(
        journal_of(&path).exists(),
        "still open for the other handle"
    );
    assert_eq!(other_account.close().await.unwrap(), CloseOutcome::Closed);
    assert!(!journal_of(&path).exists());
}

/// Builds a store of about `mib` MiB with two accounts and deletes the
/// second, so that half the file is free.
async fn big_store_with_a_deleted_account(path: &Path, mib: usize, io: Arc<DropIo>) -> RedbStore {
    let s = RedbStore::with_config(path, RedbStoreConfig::default().with_io_faults(io))
        .await
        .unwrap();
    big_store::fill_two_accounts(&s, mib).await;
    s.checkpoint().await.unwrap();
    s.delete_device(2).await.unwrap();
    s
}

/// The database I/O done while armed: bytes written and fsyncs.
#[derive(Default)]
struct DropIo {
    armed: std::sync::atomic::AtomicBool,
    written: AtomicU64,
    syncs: AtomicU64,
}

impl DropIo {
    fn arm(&self, on: bool) {
        self.armed.store(on, Ordering::SeqCst);
    }
    fn taken(&self) -> (u64, u64) {
        (
            self.written.swap(0, Ordering::SeqCst),
            self.syncs.swap(0, Ordering::SeqCst),
        )
    }
}

impl IoFaults for DropIo {
    fn on_write(&self, target: IoTarget, _offset: u64, data: &[u8]) -> io::Result<()> {
        if target == IoTarget::Database && self.armed.load(Ordering::SeqCst) {
            self.written.fetch_add(data.len() as u64, Ordering::SeqCst);
        }
        Ok(())
    }
    fn on_sync(&self, target: IoTarget) -> io::Result<()> {
        if self.armed.load(Ordering::SeqCst) {
            let _ = target;
            self.syncs.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// The drop of the last handle runs the file's close on the caller's
/// thread (so that the file is free when it returns). What keeps that from
/// stalling a runtime is that the close's work does not grow with the
/// file: redb's close and the removal of the journal, no walk of the file,
/// no checkpoint of a backlog, no compaction. Asserted here as I/O counted
/// on a small and a 100 MiB file, which does not depend on the machine's
/// speed; the stall itself, in milliseconds, is measured by the `drop_stall`
/// bench (compat/benches/README.md).
#[test]
fn dropping_the_last_handle_does_work_that_does_not_grow_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut counted = Vec::new();
    for mib in [8, 100] {
        let path = dir.path().join(format!("{mib}.redb"));
        let io = Arc::new(DropIo::default());
        let (written, syncs, size) = rt.block_on(async {
            let s = big_store_with_a_deleted_account(&path, mib, io.clone()).await;
            let size = std::fs::metadata(&path).unwrap().len();
            assert!(size > (mib as u64 * 9 / 10) << 20, "{size}");
            // A write that is still only in the journal when the drop comes.
            s.put_session("last@c.us.0", b"last").await.unwrap();
            io.arm(true);
            drop(s);
            io.arm(false);
            assert!(
                !journal_of(&path).exists(),
                "closed before the drop returned"
            );
            let (written, syncs) = io.taken();
            let s = RedbStore::new(&path).await.unwrap();
            assert!(s.get_session("0:0@c.us.0").await.unwrap().is_some());
            assert!(s.get_session("last@c.us.0").await.unwrap().is_some());
            s.close().await.unwrap();
            (written, syncs, size)
        });
        counted.push((mib, written, syncs, size));
    }
    eprintln!("(MiB, bytes written, fsyncs, file size) of each drop: {counted:?}");
    let [
        (_, small_written, small_syncs, _),
        (_, big_written, big_syncs, big_size),
    ] = counted[..]
    else {
        unreachable!()
    };
    // No compaction: that would move the live half of the file.
    assert!(
        big_written < big_size / 50,
        "the drop wrote {big_written} bytes of a {big_size}-byte file: {counted:?}"
    );
    // The same fsyncs on either file, and writes that barely grow (redb's
    // allocator state has a few bits per page).
    assert_eq!(big_syncs, small_syncs, "{counted:?}");
    assert!(big_written <= 2 * small_written + (64 << 10), "{counted:?}");
}

/// Parks the first database fsync (redb's at open) until released.
struct ParkedOpen {
    parked: Mutex<Option<Sender<()>>>,
    release: Mutex<Receiver<()>>,
}

impl IoFaults for ParkedOpen {
    fn on_sync(&self, target: IoTarget) -> io::Result<()> {
        let parked = self.parked.lock().unwrap().take();
        if target == IoTarget::Database
            && let Some(parked) = parked
        {
            let _ = parked.send(());
            let _ = self.release.lock().unwrap().recv();
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_in_progress_holds_up_no_open_of_another_file() {
    let dir = tempfile::tempdir().unwrap();
    let (slow, fast) = (dir.path().join("slow.redb"), dir.path().join("fast.redb"));
    // Both exist already (closed cleanly).
    for p in [&slow, &fast] {
        RedbStore::new(p).await.unwrap().close().await.unwrap();
    }
    let (parked_tx, parked_rx) = channel();
    let (release_tx, release_rx) = channel();
    let faults = Arc::new(ParkedOpen {
        parked: Mutex::new(Some(parked_tx)),
        release: Mutex::new(release_rx),
    });
    let slow_open = tokio::spawn(RedbStore::with_config(
        slow.clone(),
        RedbStoreConfig::default().with_io_faults(faults),
    ));
    tokio::task::spawn_blocking(move || parked_rx.recv().unwrap())
        .await
        .unwrap();
    // The slow open is parked inside redb's open; another file opens.
    let other = RedbStore::new(&fast).await.unwrap();
    other.put_session("a@c.us.0", b"x").await.unwrap();
    assert!(!slow_open.is_finished());
    release_tx.send(()).unwrap();
    let s = slow_open.await.unwrap().unwrap();
    s.close().await.unwrap();
    other.close().await.unwrap();
}

/// The journal's removal is not synced: the close costs redb's fsyncs and
/// no more. A power cut that brings the journal back costs the next open a
/// verification of the file; it replays nothing (see
/// `a_journal_back_after_a_clean_close_replays_nothing`).
#[tokio::test]
async fn a_clean_close_does_not_sync_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let syncs = Arc::new(SyncCount::default());
    let s = RedbStore::with_config(
        &path,
        RedbStoreConfig::default().with_io_faults(syncs.clone()),
    )
    .await
    .unwrap();
    s.put_session("a@c.us.0", b"x").await.unwrap();
    assert!(journal_of(&path).exists());
    let before = syncs.directory.load(Ordering::SeqCst);
    s.close().await.unwrap();
    assert!(!journal_of(&path).exists());
    assert_eq!(syncs.directory.load(Ordering::SeqCst), before);
}

/// In a child process: writes, drops the last handle, then ends the
/// process at once, either skipping exit handlers (`_exit`) or with
/// `std::process::exit`.
#[test]
#[ignore = "child process of the exit tests"]
fn exit_during_close_child() {
    let Some(path) = std::env::var_os("WA_REDB_EXIT_PATH") else {
        return;
    };
    let abrupt = std::env::var_os("WA_REDB_EXIT_ABRUPT").is_some();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = RedbStore::new(&path).await.unwrap();
        s.create().await.unwrap();
        for i in 0..200u32 {
            s.put_session(&format!("{i}@c.us.0"), &i.to_le_bytes())
                .await
                .unwrap();
        }
        drop(s);
    });
    if abrupt {
        // SAFETY: ends the process at once, as a crash would (no exit
        // handlers, no unwinding).
        unsafe { libc_exit(0) };
    }
    std::process::exit(0);
}

unsafe extern "C" {
    #[link_name = "_exit"]
    fn libc_exit(code: i32) -> !;
}

async fn run_exit_child(path: &Path, abrupt: bool) {
    let mut cmd = process::self_command("exit_during_close_child");
    cmd.env("WA_REDB_EXIT_PATH", path);
    if abrupt {
        cmd.env("WA_REDB_EXIT_ABRUPT", "1");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
}

async fn assert_all_there(path: &Path) {
    let s = RedbStore::new(path).await.unwrap();
    for i in 0..200u32 {
        let got = s.get_session(&format!("{i}@c.us.0")).await.unwrap();
        assert_eq!(got.as_deref(), Some(&i.to_le_bytes()[..]), "{i}");
    }
    s.close().await.unwrap();
}

#[tokio::test]
#[cfg(unix)]
async fn a_process_that_dies_right_after_a_drop_leaves_a_closed_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    run_exit_child(&path, true).await;
    assert!(!journal_of(&path).exists(), "closed by the drop");
    assert_all_there(&path).await;
}

#[tokio::test]
#[cfg(unix)]
async fn process_exit_right_after_a_drop_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    run_exit_child(&path, false).await;
    assert!(!journal_of(&path).exists(), "closed by the drop");
    assert_all_there(&path).await;
}

/// In a child process: waits for the parent's go (its stdin closing), then
/// races the other children to open (creating) the store, and prints what
/// it got.
#[test]
#[ignore = "child process of the creation race test"]
fn create_race_child() {
    let (Some(path), Some(id)) = (
        std::env::var_os("WA_REDB_RACE_PATH"),
        std::env::var_os("WA_REDB_RACE_ID"),
    ) else {
        return;
    };
    let id = id.to_string_lossy().into_owned();
    process::report_and_wait("READY");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        match RedbStore::new(&path).await {
            Ok(s) => {
                s.put_session(&format!("{id}@c.us.0"), id.as_bytes())
                    .await
                    .unwrap();
                s.close().await.unwrap();
                println!("RESULT opened");
            }
            Err(e) => {
                // The whole chain: wacore's `StoreError` shows its kind, ours
                // (the source) the file and cause.
                let mut text = e.to_string();
                let mut layer = std::error::Error::source(&e);
                while let Some(l) = layer {
                    text = format!("{text}: {l}");
                    layer = l.source();
                }
                if text.contains("is open in another process") {
                    println!("RESULT busy")
                } else {
                    println!("RESULT error {text}")
                }
            }
        }
    });
}

/// Children racing to create the same new store: each either creates or
/// opens the one store, or is told another process has it open; the file
/// is sound, every winner's write is in it, and no temporary is left.
#[tokio::test]
#[cfg(unix)]
async fn processes_racing_to_create_a_store_all_see_one_sound_store() {
    use std::io::BufRead;
    const CHILDREN: usize = 6;
    let rounds = if process::emulated() { 2 } else { 4 };
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let children: Vec<_> = (0..CHILDREN)
            .map(|i| {
                let mut cmd = process::self_command("create_race_child");
                cmd.env("WA_REDB_RACE_PATH", &path)
                    .env("WA_REDB_RACE_ID", i.to_string());
                process::spawn_until(cmd, "READY")
            })
            .collect();
        // Go: every child is blocked reading stdin; close them all at once.
        let mut waiting = Vec::new();
        for (mut child, out) in children {
            drop(child.stdin.take());
            waiting.push((child, out));
        }
        let mut opened = Vec::new();
        for (i, (mut child, mut out)) in waiting.into_iter().enumerate() {
            let mut result = None;
            let mut line = String::new();
            while out.read_line(&mut line).unwrap() > 0 {
                if let Some(r) = line.trim_end().split("RESULT ").nth(1) {
                    result = Some(r.to_string());
                }
                line.clear();
            }
            assert!(child.wait().unwrap().success(), "round {round} child {i}");
            match result.as_deref() {
                Some("opened") => opened.push(i),
                Some("busy") => {}
                other => panic!("round {round} child {i}: {other:?}"),
            }
        }
        assert!(!opened.is_empty(), "round {round}: nobody opened the store");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "s.redb")
            .collect();
        assert!(leftovers.is_empty(), "round {round}: left {leftovers:?}");
        let report = RedbStore::check_file(&path).unwrap();
        assert!(report.is_ok(), "round {round}: {report:?}");
        let s = RedbStore::new(&path).await.unwrap();
        for i in opened {
            let got = s.get_session(&format!("{i}@c.us.0")).await.unwrap();
            assert_eq!(
                got.as_deref(),
                Some(i.to_string().as_bytes()),
                "round {round}"
            );
        }
        s.close().await.unwrap();
    }
}

/// A temporary left by a process that died is removed by the next creation
/// beside it; one a live process is writing (locked: `flock`, or redb's
/// byte-range locks) is not.
#[tokio::test]
#[cfg(unix)]
async fn creation_removes_the_temporaries_of_dead_processes_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    // A process id that is certainly dead: a child that has been reaped.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let stale = dir.path().join(format!("s.redb.creating-{dead}-0.tmp"));
    std::fs::write(&stale, b"half a store").unwrap();
    std::fs::write(format!("{}.journal", stale.display()), b"x").unwrap();
    let live = dir.path().join(format!("s.redb.partial-{dead}-1.tmp"));
    let held = std::fs::File::create(&live).unwrap();
    held.try_lock().unwrap();
    // One redb has open: redb 5 holds byte-range (OFD) locks only, no
    // `flock`, and it is just as live.
    let in_redb = dir.path().join(format!("s.redb.importing-{dead}-2.tmp"));
    let db = redb::Database::create(&in_redb).unwrap();
    let unrelated = dir.path().join("s.redb.notes.tmp");
    std::fs::write(&unrelated, b"mine").unwrap();

    let s = RedbStore::new(&path).await.unwrap();
    s.close().await.unwrap();
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "s.redb",
            &format!("s.redb.importing-{dead}-2.tmp"),
            "s.redb.notes.tmp",
            &format!("s.redb.partial-{dead}-1.tmp")
        ]
    );
    drop((held, db));
}
