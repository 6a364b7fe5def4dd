//! Running the `wa-redb` binary as a user does, and the store files the CLI
//! tests run it on.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use wacore::store::Device;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::RedbStore;

/// What a run of `wa-redb` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The `wa-redb` command, stdin empty and not a terminal.
pub fn command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wa-redb"));
    cmd.args(args).stdin(Stdio::null());
    cmd
}

/// How long a run may take before the test fails: far above any command's
/// (a store held by another process makes one wait its 5 s busy timeout).
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Runs `cmd` to its end; fails the test if that takes over [`RUN_LIMIT`].
pub fn run(mut cmd: Command) -> Run {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wa-redb");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = rx
        .recv_timeout(RUN_LIMIT)
        .unwrap_or_else(|_| panic!("wa-redb still running after {RUN_LIMIT:?}: {cmd:?}"))
        .expect("run wa-redb");
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

pub fn wa<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(command(args))
}

pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The one LID mapping the fixtures store (LID 100 -> phone 55).
pub fn lid_mapping() -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: "100".into(),
        phone_number: "55".into(),
        created_at: 1,
        updated_at: 2,
        learning_source: "usync".into(),
    }
}

/// Rows in several tables of one account.
pub async fn fill(s: &RedbStore) {
    let d = s.device_id();
    let mut dev = Device::new();
    dev.push_name = format!("user-{d}");
    s.save(&dev).await.unwrap();
    let sessions: Vec<(Arc<str>, Bytes)> = (0..30)
        .map(|i| {
            (
                Arc::from(format!("55{i:08}@c.us.0")),
                Bytes::from(vec![d as u8; 64]),
            )
        })
        .collect();
    s.put_sessions_batch(&sessions).await.unwrap();
    s.put_identity("5500000000@c.us.0", [7; 32]).await.unwrap();
    s.store_prekey(1, b"prekey", true).await.unwrap();
    s.store_prekey(2, b"prekey", false).await.unwrap();
    s.put_lid_mapping(&lid_mapping()).await.unwrap();
    s.put_msg_secret("c@s.whatsapp.net", "a@lid", "M1", &[0xEE; 32])
        .await
        .unwrap();
    s.store_sent_message("c@s.whatsapp.net", "M1", b"payload")
        .await
        .unwrap();
}

/// A closed store file `store.redb` in `dir` with accounts 1 and 2.
pub async fn fixture(dir: &Path) -> PathBuf {
    fixture_with(dir, &[1, 2]).await
}

/// A closed store file `store.redb` in `dir` with the given accounts.
pub async fn fixture_with(dir: &Path, devices: &[i32]) -> PathBuf {
    let path = dir.join("store.redb");
    let s = RedbStore::new(&path).await.unwrap();
    for &d in devices {
        fill(&s.for_device(d)).await;
    }
    s.close().await.unwrap();
    path
}

/// `wa-redb dump FILE EXTRA..`, and its rows.
pub fn dump(file: &Path, extra: &[&str]) -> (Run, Vec<Value>) {
    let mut args = vec![OsStr::new("dump"), file.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    let r = wa(&args);
    let rows = r.stdout.lines().map(json).collect();
    (r, rows)
}
