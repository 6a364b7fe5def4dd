//! Crash safety with real processes: a child performs acknowledged writes
//! and reports each `Ok` on stdout; the parent SIGKILLs it at a random
//! moment, many times over the same aging file, and checks after reopening
//! that every acknowledged write is there, every batch is all-or-nothing and
//! the file opens.
//!
//! `WA_REDB_CRASH_ITERS=<n>` runs more kills per mode than the CI default.

#[path = "util/dataset.rs"]
mod dataset;
#[path = "util/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dataset::Rng;
use wacore::store::traits::{MsgSecretEntry, MsgSecretStore, ProtocolStore, SignalStore};
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig, Synchronous};

/// Concurrent writer tasks in the child (exercises group commit).
const TASKS: u32 = 4;

fn value(g: u32, t: u32, i: u32, k: u32) -> Vec<u8> {
    let len = 16 + ((g + t + i + k) % 7) as usize * 200;
    let mut v = format!("{g}:{t}:{i}:{k}:").into_bytes();
    v.resize(len, (i % 251) as u8);
    v
}

fn session_key(g: u32, t: u32, i: u32) -> String {
    format!("s:{g}:{t}:{i}@c.us.0")
}
fn batch_key(g: u32, t: u32, i: u32, k: u32) -> String {
    format!("b:{g}:{t}:{i}:{k}@c.us.0")
}
fn chat(g: u32, t: u32) -> String {
    format!("c:{g}:{t}@s.whatsapp.net")
}
fn msg_id(i: u32) -> String {
    format!("m:{i}")
}
fn secret_id(i: u32, k: u32) -> String {
    format!("x:{i}:{k}")
}
fn secret(g: u32, t: u32, i: u32, k: u32) -> [u8; 32] {
    [((g * 7 + t * 5 + i * 3 + k) % 256) as u8; 32]
}

/// Operation `i` of task `t` in generation `g`. Kinds cycle so that deletes
/// and takes refer to earlier writes of the same task.
async fn run_op(s: &RedbStore, g: u32, t: u32, i: u32) {
    match i % 6 {
        0 => s
            .put_session(&session_key(g, t, i), &value(g, t, i, 0))
            .await
            .unwrap(),
        1 => {
            let batch: Vec<(Arc<str>, Bytes)> = (0..5)
                .map(|k| (batch_key(g, t, i, k).into(), Bytes::from(value(g, t, i, k))))
                .collect();
            s.put_sessions_batch(&batch).await.unwrap()
        }
        2 => s
            .store_sent_message(&chat(g, t), &msg_id(i), &value(g, t, i, 0))
            .await
            .unwrap(),
        3 => {
            let entries = (0..3)
                .map(|k| MsgSecretEntry {
                    chat: chat(g, t).into(),
                    sender: "p@s.whatsapp.net".into(),
                    msg_id: secret_id(i, k).into(),
                    secret: secret(g, t, i, k),
                    expires_at: 0,
                    message_ts: i as i64,
                })
                .collect();
            assert_eq!(s.put_msg_secrets(entries).await.unwrap(), 3);
        }
        4 => s.delete_session(&session_key(g, t, i - 4)).await.unwrap(),
        _ => {
            let taken = s
                .take_sent_message(&chat(g, t), &msg_id(i - 3))
                .await
                .unwrap();
            assert_eq!(
                taken,
                Some(value(g, t, i - 3, 0)),
                "acknowledged message lost"
            );
        }
    }
}

fn config(mode: &str, seed: u64) -> RedbStoreConfig {
    let mut rng = Rng(seed);
    let synchronous = match mode {
        "full" => Synchronous::Full,
        _ => Synchronous::Normal,
    };
    // "normal-encrypted": an encrypted store (its journal too).
    let key = mode.ends_with("-encrypted").then_some([0x3C; 32]);
    // Vary checkpoint pressure so crashes land before, during and after
    // checkpoints and journal rewinds.
    let interval = [20, 200, 2000][rng.below(3) as usize];
    let journal = [64 << 10, 1 << 20, 32 << 20][rng.below(3) as usize];
    let config = RedbStoreConfig::default()
        .with_synchronous(synchronous)
        .with_checkpoint_interval(Duration::from_millis(interval))
        .with_checkpoint_journal_bytes(journal);
    match key {
        Some(key) => config.with_encryption_key(key),
        None => config,
    }
}

/// The child: write forever, acknowledging on stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn crash_child() {
    let (Some(path), Ok(mode), Ok(g)) = (
        std::env::var_os("WA_REDB_CRASH_FILE"),
        std::env::var("WA_REDB_CRASH_MODE"),
        std::env::var("WA_REDB_CRASH_GEN"),
    ) else {
        return;
    };
    let g: u32 = g.parse().unwrap();
    let store = RedbStore::with_config(&path, config(&mode, g as u64))
        .await
        .unwrap();
    println!("READY");
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                run_op(&store, g, t, i).await;
                let mut out = std::io::stdout().lock();
                writeln!(out, "ACK {t} {i}").unwrap();
                out.flush().unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// What the parent knows: per generation and task, the last acknowledged
/// operation (None: none acknowledged).
type Acks = BTreeMap<(u32, u32), Option<u32>>;

/// Checks the reopened store against every acknowledged operation.
async fn verify(s: &RedbStore, acks: &Acks) {
    for (&(g, t), &last) in acks {
        let done = |i: u32| last.is_some_and(|a| i <= a);
        let in_flight = |i: u32| last.map_or(0, |a| a + 1) == i;
        let end = last.map_or(0, |a| a + 2);
        for i in 0..end {
            match i % 6 {
                0 => {
                    let got = s.get_session(&session_key(g, t, i)).await.unwrap();
                    if done(i + 4) {
                        assert_eq!(got, None, "acknowledged delete of {g}/{t}/{i} undone");
                    } else if done(i) && !in_flight(i + 4) {
                        assert_eq!(
                            got.as_deref(),
                            Some(&value(g, t, i, 0)[..]),
                            "acknowledged session {g}/{t}/{i} lost"
                        );
                    }
                }
                1 => {
                    let mut present = 0;
                    for k in 0..5 {
                        if let Some(v) = s.get_session(&batch_key(g, t, i, k)).await.unwrap() {
                            assert_eq!(v.as_ref(), &value(g, t, i, k)[..]);
                            present += 1;
                        }
                    }
                    if done(i) {
                        assert_eq!(present, 5, "acknowledged batch {g}/{t}/{i} incomplete");
                    } else {
                        assert!(
                            present == 0 || present == 5,
                            "torn batch {g}/{t}/{i}: {present}/5"
                        );
                    }
                }
                // Sent messages: an acknowledged take (op i + 3) must stay
                // done; presence is checked on a copy (taking consumes).
                2 if done(i + 3) => {
                    let got = s.take_sent_message(&chat(g, t), &msg_id(i)).await.unwrap();
                    assert_eq!(got, None, "acknowledged take of {g}/{t}/{i} undone");
                }
                3 => {
                    let mut present = 0;
                    for k in 0..3 {
                        if let Some((sec, ts)) = s
                            .get_msg_secret_with_ts(
                                &chat(g, t),
                                "p@s.whatsapp.net",
                                &secret_id(i, k),
                            )
                            .await
                            .unwrap()
                        {
                            assert_eq!((sec, ts), (secret(g, t, i, k).to_vec(), i as i64));
                            present += 1;
                        }
                    }
                    if done(i) {
                        assert_eq!(present, 3, "acknowledged secrets {g}/{t}/{i} incomplete");
                    } else {
                        assert!(
                            present == 0 || present == 3,
                            "torn secret batch {g}/{t}/{i}"
                        );
                    }
                }
                _ => {}
            }
        }
    }
}

/// Sent messages are checked without consuming them: every acknowledged,
/// not-yet-taken message must still be takeable. Done last, on a copy of
/// the state that is then discarded (taking consumes).
async fn verify_sent_messages(path: &Path, acks: &Acks, mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.redb");
    let store = RedbStore::with_config(path, config(mode, 999))
        .await
        .unwrap();
    store.backup_to(&copy).await.unwrap();
    store.close().await.unwrap();
    // The copy is encrypted like the store, under the same key.
    let s = RedbStore::with_config(&copy, config(mode, 999))
        .await
        .unwrap();
    for (&(g, t), &last) in acks {
        let Some(a) = last else { continue };
        for i in (2..=a).step_by(6) {
            let taken = i + 3 <= a + 1; // acknowledged or in flight
            let got = s.take_sent_message(&chat(g, t), &msg_id(i)).await.unwrap();
            if !taken {
                assert_eq!(
                    got,
                    Some(value(g, t, i, 0)),
                    "acknowledged message {g}/{t}/{i} lost"
                );
            }
        }
    }
}

async fn crash_loop(mode: &str, seed: u64) {
    let iterations: u32 = std::env::var("WA_REDB_CRASH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let mut rng = Rng(seed);
    let mut acks = Acks::new();
    for g in 0..iterations {
        for t in 0..TASKS {
            acks.insert((g, t), None);
        }
        let mut child = process::self_command("crash_child")
            .env("WA_REDB_CRASH_FILE", &path)
            .env("WA_REDB_CRASH_MODE", mode)
            .env("WA_REDB_CRASH_GEN", g.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let kill_after = 1 + rng.below(400);
        let mut seen = 0;
        let mut line = String::new();
        let mut killed = false;
        loop {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if let Some(rest) = line.trim_end().split("ACK ").nth(1) {
                let mut it = rest.split(' ').map(|x| x.parse::<u32>().unwrap());
                let (t, i) = (it.next().unwrap(), it.next().unwrap());
                let slot = acks.get_mut(&(g, t)).unwrap();
                assert_eq!(slot.map_or(0, |a| a + 1), i, "acks arrive in order");
                *slot = Some(i);
                seen += 1;
                if seen == kill_after && !killed {
                    child.kill().unwrap(); // SIGKILL
                    killed = true;
                }
            }
        }
        let status = child.wait().unwrap();
        assert!(killed, "child {g} exited on its own: {status:?}");
        // Every other time, let the next child recover the crashed file
        // itself; otherwise check it now.
        if g % 2 == 1 || g + 1 == iterations {
            let store = RedbStore::with_config(&path, config(mode, 999))
                .await
                .unwrap();
            verify(&store, &acks).await;
            store.close().await.unwrap();
        }
    }
    verify_sent_messages(&path, &acks, mode).await;
    let total: u32 = acks.values().map(|a| a.map_or(0, |a| a + 1)).sum();
    eprintln!("{mode}: {iterations} kills, {total} acknowledged operations verified");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_never_loses_an_acknowledged_write_normal() {
    crash_loop("normal", 0xC0FFEE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_never_loses_an_acknowledged_write_full() {
    crash_loop("full", 0xBADC0DE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_never_loses_an_acknowledged_write_encrypted() {
    crash_loop("normal-encrypted", 0x5EC2E7).await;
}
