//! Journal recovery: a child process writes and is SIGKILLed, leaving a
//! journal the redb file does not have; the parent damages the journal the
//! ways a crash, a power loss or a bad disk would, and reopens.
//!
//! Journal layout (see src/engine/journal.rs): a 64-byte header, then
//! records of `len: u32, lsn: u64, checksum: u64, payload[len]`.

#[path = "util/process.rs"]
mod process;

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout};
use std::time::Duration;

use wacore::store::traits::SignalStore;
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig, Synchronous};

fn key(i: u32) -> String {
    format!("k{i}@c.us.0")
}

fn value(i: u32) -> Vec<u8> {
    let mut v = format!("value-{i}-").into_bytes();
    v.resize(100 + (i as usize % 5) * 300, i as u8);
    v
}

fn config(mode: &str) -> RedbStoreConfig {
    let synchronous = if mode == "full" {
        Synchronous::Full
    } else {
        Synchronous::Normal
    };
    // No automatic checkpoint during a test: the journal keeps everything.
    RedbStoreConfig::default()
        .with_synchronous(synchronous)
        .with_checkpoint_interval(Duration::from_secs(3600))
}

/// The child: opens the store, then obeys `put A B` and `checkpoint` lines
/// on stdin, answering `DONE` after each.
#[tokio::test]
#[ignore]
async fn journal_child() {
    let (Some(path), Ok(mode)) = (
        std::env::var_os("WA_REDB_JOURNAL_FILE"),
        std::env::var("WA_REDB_JOURNAL_MODE"),
    ) else {
        return;
    };
    let store = RedbStore::with_config(&path, config(&mode)).await.unwrap();
    println!("READY");
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line).unwrap() > 0 {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["put", a, b] => {
                for i in a.parse::<u32>().unwrap()..b.parse::<u32>().unwrap() {
                    store.put_session(&key(i), &value(i)).await.unwrap();
                }
            }
            ["checkpoint"] => store.checkpoint().await.unwrap(),
            other => panic!("unknown command {other:?}"),
        }
        println!("DONE");
        std::io::stdout().flush().unwrap();
        line.clear();
    }
}

struct Writer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Writer {
    fn start(path: &Path, mode: &str) -> Writer {
        let mut cmd = process::self_command("journal_child");
        cmd.env("WA_REDB_JOURNAL_FILE", path)
            .env("WA_REDB_JOURNAL_MODE", mode);
        let (mut child, stdout) = process::spawn_until(cmd, "READY");
        let stdin = child.stdin.take().unwrap();
        Writer {
            child,
            stdin,
            stdout,
        }
    }

    fn wait_for(&mut self, word: &str) {
        process::wait_for_line(&mut self.stdout, word);
    }

    fn run(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        self.wait_for("DONE");
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn journal_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.journal", path.display()))
}

/// (offset, total length) of each record, up to the end marker.
fn records(journal: &Path) -> Vec<(u64, u64)> {
    let bytes = std::fs::read(journal).unwrap();
    let mut out = Vec::new();
    let mut pos = 64usize;
    while pos + 20 <= bytes.len() && bytes[pos..pos + 20] != [0; 20] {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        out.push((pos as u64, (20 + len) as u64));
        pos += 20 + len;
    }
    out
}

fn patch(journal: &Path, offset: u64, data: &[u8]) {
    let mut bytes = std::fs::read(journal).unwrap();
    let end = offset as usize + data.len();
    if bytes.len() < end {
        bytes.resize(end, 0);
    }
    bytes[offset as usize..end].copy_from_slice(data);
    std::fs::write(journal, bytes).unwrap();
}

/// A killed writer that acknowledged `n` puts, each its own record.
fn crashed_store(dir: &Path, mode: &str, n: u32) -> PathBuf {
    let path = dir.join("j.redb");
    let mut w = Writer::start(&path, mode);
    w.run(&format!("put 0 {n}"));
    w.kill();
    assert_eq!(records(&journal_of(&path)).len(), n as usize);
    path
}

async fn present(s: &RedbStore, n: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for i in 0..n {
        if let Some(v) = s.get_session(&key(i)).await.unwrap() {
            assert_eq!(v.as_ref(), &value(i)[..], "record {i} has the wrong value");
            found.push(i);
        }
    }
    found
}

/// Recovery stopped at a torn record, kept the damaged journal aside for
/// inspection, and the store works.
async fn torn_and_set_aside(s: RedbStore) {
    let report = s.recovery_report().clone();
    assert!(
        report.stopped.as_deref().unwrap().contains("torn"),
        "{report:?}"
    );
    assert!(report.set_aside.as_ref().unwrap().exists());
    still_works(s).await;
}

/// After recovery the store takes writes and reopens cleanly.
async fn still_works(s: RedbStore) {
    s.put_session("after", b"x").await.unwrap();
    let path = s.path().to_path_buf();
    s.close().await.unwrap();
    let s = RedbStore::new(&path).await.unwrap();
    assert!(s.has_session("after").await.unwrap());
    assert_eq!(s.recovery_report().records_replayed, 0);
}

#[tokio::test]
async fn an_intact_journal_is_replayed_in_full() {
    for mode in ["normal", "full"] {
        let dir = tempfile::tempdir().unwrap();
        let path = crashed_store(dir.path(), mode, 12);
        let s = RedbStore::new(&path).await.unwrap();
        assert_eq!(present(&s, 12).await, (0..12).collect::<Vec<_>>(), "{mode}");
        let report = s.recovery_report();
        assert_eq!(report.records_replayed, 12);
        assert!(
            report.stopped.is_none() && report.set_aside.is_none(),
            "{report:?}"
        );
        still_works(s).await;
    }
}

#[tokio::test]
async fn a_torn_last_record_is_dropped_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = crashed_store(dir.path(), "normal", 10);
    let journal = journal_of(&path);
    let (offset, len) = *records(&journal).last().unwrap();
    // The second half of the last record never reached the disk.
    patch(
        &journal,
        offset + len / 2,
        &vec![0; (len - len / 2) as usize],
    );
    let s = RedbStore::new(&path).await.unwrap();
    assert_eq!(present(&s, 10).await, (0..9).collect::<Vec<_>>());
    torn_and_set_aside(s).await;
}

/// A record header damaged to claim 4 GiB, the journal made that long by a
/// hole (a sparse file): the open neither reads nor allocates it; the
/// record ends the journal like a torn one.
#[tokio::test]
async fn a_record_claiming_4_gib_is_damage_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let path = crashed_store(dir.path(), "normal", 10);
    let journal = journal_of(&path);
    let (offset, _) = records(&journal)[6];
    let claim = u32::MAX;
    patch(&journal, offset, &claim.to_le_bytes());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap();
    file.set_len(offset + 20 + u64::from(claim)).unwrap();
    drop(file);
    let peak_before = peak_rss_kib();
    let s = RedbStore::new(&path).await.unwrap();
    if let (Some(before), Some(after)) = (peak_before, peak_rss_kib()) {
        assert!(
            after - before < 256 << 10,
            "peak RSS grew {before} -> {after} KiB"
        );
    }
    assert_eq!(present(&s, 10).await, (0..6).collect::<Vec<_>>());
    torn_and_set_aside(s).await;
}

/// This process's peak resident memory (Linux), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn garbage_after_the_last_record_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = crashed_store(dir.path(), "full", 10);
    let journal = journal_of(&path);
    let (offset, len) = *records(&journal).last().unwrap();
    // Overwrite the end marker and beyond with noise.
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    patch(&journal, offset + len, &noise);
    let s = RedbStore::new(&path).await.unwrap();
    assert_eq!(present(&s, 10).await, (0..10).collect::<Vec<_>>());
    assert_eq!(s.recovery_report().records_replayed, 10);
    still_works(s).await;
}

#[tokio::test]
async fn a_bad_checksum_in_the_middle_keeps_the_prefix_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = crashed_store(dir.path(), "full", 10);
    let journal = journal_of(&path);
    let recs = records(&journal);
    // Flip one payload byte of the 5th record (keys 0..4 are records 1..4).
    let (offset, len) = recs[4];
    let mut byte = [0u8];
    byte[0] = std::fs::read(&journal).unwrap()[(offset + len - 1) as usize] ^ 0x40;
    patch(&journal, offset + len - 1, &byte);
    let s = RedbStore::new(&path).await.unwrap();
    // A consistent prefix: nothing after the damage is applied, nothing
    // before it is lost.
    assert_eq!(present(&s, 10).await, (0..4).collect::<Vec<_>>());
    let report = s.recovery_report().clone();
    assert_eq!(report.records_replayed, 4);
    assert!(
        report.stopped.is_some() && report.set_aside.is_some(),
        "{report:?}"
    );
    still_works(s).await;
}

#[tokio::test]
async fn a_crash_between_checkpoint_and_rewind_replays_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let journal = journal_of(&path);
    let mut w = Writer::start(&path, "normal");
    w.run("put 0 10");
    let before_checkpoint = std::fs::read(&journal).unwrap();
    w.run("checkpoint");
    w.kill();
    // The checkpoint reached the file, the rewind did not: put the old
    // journal back.
    std::fs::write(&journal, &before_checkpoint).unwrap();
    let s = RedbStore::new(&path).await.unwrap();
    assert_eq!(present(&s, 10).await, (0..10).collect::<Vec<_>>());
    let report = s.recovery_report();
    assert_eq!(report.records_replayed, 0, "{report:?}");
    assert!(report.stopped.is_none(), "{report:?}");
    still_works(s).await;
}

#[tokio::test]
async fn records_after_a_rewind_are_replayed_and_stale_ones_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let mut w = Writer::start(&path, "normal");
    w.run("put 0 20");
    w.run("checkpoint");
    // Fewer, and so shorter, records than before: stale records of the
    // first generation remain behind them in the file.
    w.run("put 20 23");
    w.kill();
    assert_eq!(records(&journal_of(&path)).len(), 3);
    let s = RedbStore::new(&path).await.unwrap();
    assert_eq!(present(&s, 23).await, (0..23).collect::<Vec<_>>());
    let report = s.recovery_report();
    assert_eq!(report.records_replayed, 3);
    assert!(report.stopped.is_none(), "{report:?}");
    still_works(s).await;
}

#[tokio::test]
async fn a_journal_of_another_store_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let a = crashed_store(dir.path(), "normal", 5);
    let other_dir = tempfile::tempdir().unwrap();
    let b = crashed_store(other_dir.path(), "normal", 3);
    // Store a's journal next to store b.
    std::fs::copy(journal_of(&a), journal_of(&b)).unwrap();
    let s = RedbStore::new(&b).await.unwrap();
    // b's own records are lost with its journal; none of a's is applied.
    assert!(present(&s, 5).await.is_empty());
    let report = s.recovery_report();
    assert_eq!(report.records_replayed, 0);
    assert!(report.set_aside.as_ref().unwrap().exists(), "{report:?}");
    still_works(s).await;
}

#[tokio::test]
async fn a_journal_with_a_garbage_header_never_blocks_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.redb");
    let s = RedbStore::new(&path).await.unwrap();
    s.put_session(&key(1), &value(1)).await.unwrap();
    s.close().await.unwrap();
    std::fs::write(journal_of(&path), b"not a journal at all").unwrap();
    let s = RedbStore::new(&path).await.unwrap();
    assert_eq!(present(&s, 2).await, [1]);
    assert!(s.recovery_report().set_aside.is_some());
    still_works(s).await;
}
