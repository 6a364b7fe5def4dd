//! Handing a store file over: after the last handle is dropped, another
//! process opens the file at once (no wait: `busy_timeout` zero), a copy of
//! the file alone holds every acknowledged write, and whole-file
//! replacements (rekey with a new data key, restore) racing another
//! process's opens lose none of its acknowledged writes.
//!
//! Deterministic: child processes driven line by line over their stdin;
//! every wait for a child is bounded and fails the test. Longer runs:
//! `WA_REDB_HANDOVER_ROUNDS` (default 200; 20 under an emulator).

// The cases with child processes run on Unix only (see each one); on other
// systems their helpers are unused, and the Windows build under wine would
// warn about every one of them.
#![cfg_attr(not(unix), allow(dead_code, unused_imports))]

#[path = "util/process.rs"]
mod process;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use wacore::store::traits::{DeviceStore, SignalStore};
use whatsapp_rust_redb_storage::{EncryptionKey, RedbStore, RedbStoreConfig, Rekey, Synchronous};

/// The longest any one step of a child may take before the test fails.
const STEP: Duration = Duration::from_secs(120);
/// The longest a child may take to say READY: it says so first.
const START: Duration = Duration::from_secs(60);

fn rounds() -> usize {
    std::env::var("WA_REDB_HANDOVER_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if process::emulated() { 20 } else { 200 })
}

fn at_once() -> RedbStoreConfig {
    RedbStoreConfig::default().with_busy_timeout(Duration::ZERO)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A child test process read line by line on a thread of its own, so that
/// every wait for a line is bounded.
struct Child {
    child: std::process::Child,
    lines: Receiver<String>,
}

impl Child {
    /// Starts the child test `test` and waits for its `READY`
    /// ([`process::spawn_until_within`]: a child that never starts, as
    /// when qemu-user deadlocks the fork before its exec, is spawned
    /// again).
    fn spawn(test: &str, envs: &[(&str, &Path)]) -> Child {
        let mut cmd = process::self_command(test);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let (child, out) = process::spawn_until_within(cmd, "READY", START);
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Child { child, lines }
    }

    fn send(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next line that starts with `prefix` (libtest's own lines are
    /// skipped).
    fn expect(&mut self, prefix: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(STEP)
                .unwrap_or_else(|_| panic!("no `{prefix}` line from the child within {STEP:?}"));
            if let Some(i) = line.find(prefix) {
                return line[i..].to_string();
            }
        }
    }

    fn finish(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child: {status}");
    }
}

impl Drop for Child {
    /// A child left behind by a failed test (or one that never started)
    /// is killed: it would hold this process's output open and keep the
    /// test run from ending.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn stdin_lines() -> impl Iterator<Item = String> {
    std::io::stdin().lines().map_while(Result::ok)
}

fn say(line: &str) {
    println!("{line}");
    std::io::stdout().flush().unwrap();
}

/// The child of the ping-pong: for each round it is sent, opens the store
/// with no wait, finds the parent's write of the round, writes its own and
/// drops the store.
#[test]
#[ignore = "child process of the hand-over test"]
fn handover_child() {
    let Some(path) = std::env::var_os("WA_REDB_HANDOVER_PATH") else {
        return;
    };
    let rt = runtime();
    say("READY");
    for round in stdin_lines() {
        let outcome = rt.block_on(async {
            let s = RedbStore::with_config(&path, at_once()).await?;
            let parents = s.get_session(&format!("p{round}@c.us.0")).await?;
            if parents.as_deref() != Some(round.as_bytes()) {
                return Ok(format!("missing the parent's write: {parents:?}"));
            }
            s.put_session(&format!("c{round}@c.us.0"), round.as_bytes())
                .await?;
            drop(s);
            Ok::<_, wacore::store::error::StoreError>("ok".to_string())
        });
        match outcome {
            Ok(text) => say(&format!("ROUND {text}")),
            Err(e) => say(&format!(
                "ROUND error {e}: {:?}",
                std::error::Error::source(&e)
            )),
        }
    }
}

#[tokio::test]
#[cfg(unix)]
async fn another_process_opens_the_file_at_once_after_every_drop() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let mut child = Child::spawn("handover_child", &[("WA_REDB_HANDOVER_PATH", &path)]);
    let rounds = rounds();
    let mut failures = Vec::new();
    for round in 0..rounds {
        let s = RedbStore::with_config(&path, at_once()).await.unwrap();
        if round > 0 {
            let prev = round - 1;
            let got = s.get_session(&format!("c{prev}@c.us.0")).await.unwrap();
            assert_eq!(got.as_deref(), Some(prev.to_string().as_bytes()));
        }
        s.put_session(&format!("p{round}@c.us.0"), round.to_string().as_bytes())
            .await
            .unwrap();
        drop(s);
        child.send(&round.to_string());
        let reply = child.expect("ROUND ");
        if reply != "ROUND ok" {
            failures.push(format!("round {round}: {reply}"));
        }
    }
    child.finish();
    assert!(
        failures.is_empty(),
        "{} of {rounds} failed: {failures:?}",
        failures.len()
    );
}

/// Writes 500 sessions with no checkpoint before the drop (they are only
/// in the journal and redb's memory until then), drops the store and at
/// once copies the store file alone: the copy holds all of them.
async fn copy_after_drop(synchronous: Synchronous) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let config = RedbStoreConfig::default()
        .with_synchronous(synchronous)
        .with_checkpoint_interval(Duration::MAX);
    let s = RedbStore::with_config(&path, config).await.unwrap();
    s.create().await.unwrap();
    for i in 0..500u32 {
        s.put_session(&format!("{i}@c.us.0"), &i.to_le_bytes())
            .await
            .unwrap();
    }
    drop(s);
    let copy = dir.path().join("copy.redb");
    std::fs::copy(&path, &copy).unwrap();
    let c = RedbStore::new(&copy).await.unwrap();
    assert_eq!(c.recovery_report().records_replayed, 0, "no journal needed");
    for i in 0..500u32 {
        let got = c.get_session(&format!("{i}@c.us.0")).await.unwrap();
        assert_eq!(got.as_deref(), Some(&i.to_le_bytes()[..]), "{i}");
    }
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_copy_taken_right_after_the_drop_holds_every_acknowledged_write() {
    for synchronous in [Synchronous::Off, Synchronous::Normal, Synchronous::Full] {
        copy_after_drop(synchronous).await;
    }
}

fn key(n: u8) -> EncryptionKey {
    EncryptionKey::raw([n; 32])
}

/// The child of the replacement races: opens the store over and over
/// (waiting for the parent's replacement, with whichever of the two keys
/// opens it), writes one session per open and reports each acknowledged
/// one, until its stdin closes... or `stop` is sent.
#[test]
#[ignore = "child process of the replacement race tests"]
fn replacement_race_child() {
    let Some(path) = std::env::var_os("WA_REDB_RACE_FILE") else {
        return;
    };
    let rt = runtime();
    let (tx, stop) = channel();
    std::thread::spawn(move || {
        let _ = stdin_lines().next();
        let _ = tx.send(());
    });
    say("READY");
    let mut n = 0u32;
    while stop.try_recv().is_err() {
        for k in [1, 2, 0] {
            let config = match k {
                0 => RedbStoreConfig::default(),
                k => RedbStoreConfig::default().with_encryption(key(k)),
            };
            let opened = rt.block_on(RedbStore::with_config(&path, config));
            let Ok(s) = opened else { continue };
            let name = format!("w{n}@c.us.0");
            if rt.block_on(s.put_session(&name, b"acknowledged")).is_ok() {
                say(&format!("ACK {name}"));
                n += 1;
            }
            drop(s);
            break;
        }
        // Leaves the parent windows to take the file in (it polls for it):
        // load shaping, not synchronisation; the checks hold either way.
        std::thread::sleep(Duration::from_millis(2));
    }
    say("DONE");
}

/// Runs the race child while `replace` replaces the file `rounds` times,
/// then checks that every write the child was told succeeded is in the
/// store (`open` opens the final file) or in a file a restore kept.
async fn race(
    path: &Path,
    rounds: usize,
    mut replace: impl FnMut(usize),
    open: impl AsyncFnOnce() -> RedbStore,
    kept: impl Fn() -> Vec<PathBuf>,
) {
    let mut child = Child::spawn("replacement_race_child", &[("WA_REDB_RACE_FILE", path)]);
    for round in 0..rounds {
        replace(round);
    }
    child.send("stop");
    let mut acked = Vec::new();
    loop {
        let line = child.expect("");
        if line.contains("DONE") {
            break;
        }
        if let Some(i) = line.find("ACK ") {
            acked.push(line[i + 4..].to_string());
        }
    }
    child.finish();
    assert!(!acked.is_empty(), "the child never wrote");
    let s = open().await;
    let mut missing = Vec::new();
    for name in &acked {
        if s.get_session(name).await.unwrap().is_none() {
            missing.push(name.clone());
        }
    }
    drop(s);
    // A restore keeps the file it replaced: what was written to it before
    // is there, not lost.
    for file in kept() {
        let k = RedbStore::new(&file).await.unwrap();
        let mut still = Vec::new();
        for name in missing {
            if k.get_session(&name).await.unwrap().is_none() {
                still.push(name);
            }
        }
        missing = still;
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes are in no file: {missing:?}",
        missing.len(),
        acked.len()
    );
}

fn replacement_rounds() -> usize {
    if process::emulated() { 5 } else { 40 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg(unix)]
async fn a_rekey_racing_another_process_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let config = |k: u8| RedbStoreConfig::default().with_encryption(key(k));
    RedbStore::with_config(&path, config(1))
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
    let rekeyed = |round: usize| {
        let (from, to) = if round.is_multiple_of(2) {
            (1, 2)
        } else {
            (2, 1)
        };
        // Refused while the child has the file open past the wait: the
        // round is then simply skipped.
        let _ = RedbStore::rekey_file(&path, &config(from), key(to), Rekey::NewDataKey);
    };
    let final_open = async || {
        for k in [1, 2] {
            if let Ok(s) = RedbStore::with_config(&path, config(k)).await {
                return s;
            }
        }
        panic!("the store opens with neither key");
    };
    race(&path, replacement_rounds(), rekeyed, final_open, Vec::new).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg(unix)]
async fn a_restore_racing_another_process_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let backup = dir.path().join("backup.redb");
    let s = RedbStore::new(&path).await.unwrap();
    s.put_session("base@c.us.0", b"base").await.unwrap();
    s.backup_to(&backup).await.unwrap();
    drop(s);
    let restored = |_| {
        let _ = RedbStore::restore_file(&backup, &path);
    };
    let kept = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with("s.redb.replaced-") && !name.ends_with(".journal")
            })
            .collect()
    };
    let final_open = async || RedbStore::new(&path).await.unwrap();
    race(&path, replacement_rounds(), restored, final_open, kept).await;
}
