//! Power-loss simulation. A test storage layer (the `IoFaults` hook every
//! write of the store passes through) keeps, for each file, the image that
//! has been fsynced, and at a random moment freezes it: that is what the
//! disk holds if the power goes out then. Writes not yet fsynced are lost,
//! or, in the harsher variant, a random subset of them reaches the disk.
//! The frozen images are written out as files and opened as a store.
//!
//! Cuts alternate between protected (format v2) and plain (v1) files, and
//! between losing every unsynced write and keeping a random subset of them.
//! `Full` must keep every write acknowledged before the cut; `Normal` may
//! lose a tail but must open, keep batches whole, and keep each writer's
//! writes a prefix (no holes).

#[path = "util/dataset.rs"]
mod dataset;

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dataset::Rng;
use wacore::store::traits::{MsgSecretEntry, MsgSecretStore, SignalStore};
use whatsapp_rust_redb_storage::fault::{IoFaults, IoTarget};
use whatsapp_rust_redb_storage::{PageProtection, RedbStore, RedbStoreConfig, Synchronous};

const TASKS: u32 = 3;
const OPS_PER_TASK: u32 = 120;

enum Pending {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Default)]
struct Image {
    durable: Vec<u8>,
    pending: Vec<Pending>,
}

fn apply(image: &mut Vec<u8>, p: &Pending) {
    match p {
        Pending::Write(offset, data) => {
            let end = *offset as usize + data.len();
            if image.len() < end {
                image.resize(end, 0);
            }
            image[*offset as usize..end].copy_from_slice(data);
        }
        Pending::SetLen(len) => image.resize(*len as usize, 0),
    }
}

/// The disk images at the cut, and the operations acknowledged by then.
type Frozen = (HashMap<IoTarget, Vec<u8>>, BTreeSet<(u32, u32)>);

struct Disk {
    images: HashMap<IoTarget, Image>,
    ios: u64,
    cut_at: u64,
    /// Apply a random half of the unsynced writes at the cut.
    partial: bool,
    rng: Rng,
    frozen: Option<Frozen>,
}

/// The shadow storage layer.
struct ShadowDisk {
    disk: Mutex<Disk>,
    acked: Arc<Mutex<BTreeSet<(u32, u32)>>>,
}

impl ShadowDisk {
    fn event(&self, target: IoTarget, p: Option<Pending>, sync: bool) -> io::Result<()> {
        let mut disk = self.disk.lock().unwrap();
        let d = &mut *disk;
        d.ios += 1;
        if d.ios == d.cut_at && d.frozen.is_none() {
            // The power goes out before this I/O.
            let mut images = HashMap::new();
            for (t, img) in &d.images {
                let mut bytes = img.durable.clone();
                for p in &img.pending {
                    if d.partial && d.rng.next_u64().is_multiple_of(2) {
                        apply(&mut bytes, p);
                    }
                }
                images.insert(*t, bytes);
            }
            let acked = self.acked.lock().unwrap().clone();
            d.frozen = Some((images, acked));
        }
        let img = d.images.entry(target).or_default();
        if let Some(p) = p {
            img.pending.push(p);
        }
        if sync {
            for p in std::mem::take(&mut img.pending) {
                apply(&mut img.durable, &p);
            }
        }
        Ok(())
    }
}

impl IoFaults for ShadowDisk {
    fn on_write(&self, target: IoTarget, offset: u64, data: &[u8]) -> io::Result<()> {
        self.event(target, Some(Pending::Write(offset, data.to_vec())), false)
    }
    fn on_set_len(&self, target: IoTarget, len: u64) -> io::Result<()> {
        self.event(target, Some(Pending::SetLen(len)), false)
    }
    fn on_sync(&self, target: IoTarget) -> io::Result<()> {
        self.event(target, None, true)
    }
}

fn key(t: u32, i: u32, k: u32) -> String {
    format!("{t}:{i}:{k}@c.us.0")
}
fn val(t: u32, i: u32, k: u32) -> Vec<u8> {
    let mut v = format!("{t}/{i}/{k}/").into_bytes();
    v.resize(64 + ((t + i + k) % 9) as usize * 150, k as u8);
    v
}
fn secret_id(i: u32, k: u32) -> String {
    format!("{i}.{k}")
}

/// Rows written by op `i` of task `t`.
fn rows(i: u32) -> u32 {
    match i % 3 {
        0 => 1,
        1 => 4,
        _ => 2,
    }
}

async fn run_op(s: &RedbStore, t: u32, i: u32) {
    match i % 3 {
        0 => s.put_session(&key(t, i, 0), &val(t, i, 0)).await.unwrap(),
        1 => {
            let batch: Vec<(Arc<str>, Bytes)> = (0..4)
                .map(|k| (key(t, i, k).into(), Bytes::from(val(t, i, k))))
                .collect();
            s.put_sessions_batch(&batch).await.unwrap()
        }
        _ => {
            let entries = (0..2)
                .map(|k| MsgSecretEntry {
                    chat: format!("chat{t}").into(),
                    sender: "s".into(),
                    msg_id: secret_id(i, k).into(),
                    secret: [(i + k) as u8; 32],
                    expires_at: 0,
                    message_ts: 7,
                })
                .collect();
            s.put_msg_secrets(entries).await.unwrap();
        }
    }
}

/// How many rows of op `i` of task `t` the store holds.
async fn rows_present(s: &RedbStore, t: u32, i: u32) -> u32 {
    let mut n = 0;
    for k in 0..rows(i) {
        let found = if i % 3 == 2 {
            s.get_msg_secret(&format!("chat{t}"), "s", &secret_id(i, k))
                .await
                .unwrap()
                .map(|v| assert_eq!(v, vec![(i + k) as u8; 32]))
        } else {
            s.get_session(&key(t, i, k))
                .await
                .unwrap()
                .map(|v| assert_eq!(v.as_ref(), &val(t, i, k)[..]))
        };
        n += found.is_some() as u32;
    }
    n
}

async fn one_cut(mode: Synchronous, seed: u64, partial: bool) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.redb");
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let mut rng = Rng(seed);
    let disk = Arc::new(ShadowDisk {
        disk: Mutex::new(Disk {
            images: HashMap::new(),
            ios: 0,
            cut_at: 30 + rng.next_u64() % 1500,
            partial,
            rng: Rng(seed ^ 0xABCDEF),
            frozen: None,
        }),
        acked: acked.clone(),
    });
    // Every file format in turn: protected (v2, the default), plain (v1),
    // and encrypted (v2, mode 2: its journal is encrypted too).
    let (protection, key) = match (seed / 2) % 3 {
        0 => (PageProtection::Verified, None),
        1 => (PageProtection::Off, None),
        _ => (PageProtection::Verified, Some([0x77; 32])),
    };
    let keyed = |c: RedbStoreConfig| match key {
        Some(key) => c.with_encryption_key(key),
        None => c,
    };
    let config = keyed(RedbStoreConfig::default())
        .with_page_protection(protection)
        .with_synchronous(mode)
        .with_checkpoint_interval(Duration::from_millis(5 + rng.next_u64() % 50))
        .with_checkpoint_journal_bytes(64 << 10)
        .with_io_faults(disk.clone());
    let store = RedbStore::with_config(&path, config).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (store, acked) = (store.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..OPS_PER_TASK {
                run_op(&store, t, i).await;
                acked.lock().unwrap().insert((t, i));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    store.close().await.unwrap();

    let Some((images, acked_at_cut)) = disk.disk.lock().unwrap().frozen.take() else {
        // The workload finished before the cut: nothing to check this time.
        return (0, 0);
    };
    let after = tempfile::tempdir().unwrap();
    let restored = after.path().join("p.redb");
    write_image(&restored, images.get(&IoTarget::Database));
    write_image(
        &after.path().join("p.redb.journal"),
        images.get(&IoTarget::Journal),
    );
    let s = RedbStore::with_config(&restored, keyed(RedbStoreConfig::default()))
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: store does not open after power loss: {e}"));
    let mut present_ops = 0;
    for t in 0..TASKS {
        let mut prefix_ended = false;
        for i in 0..OPS_PER_TASK {
            let n = rows_present(&s, t, i).await;
            assert!(
                n == 0 || n == rows(i),
                "seed {seed}: torn op {t}/{i}: {n}/{}",
                rows(i)
            );
            if n > 0 {
                assert!(
                    !prefix_ended,
                    "seed {seed}: task {t} op {i} present after a gap"
                );
                present_ops += 1;
            } else {
                prefix_ended = true;
                if mode == Synchronous::Full {
                    assert!(
                        !acked_at_cut.contains(&(t, i)),
                        "seed {seed}: op {t}/{i} acknowledged before the power cut is lost"
                    );
                }
            }
        }
    }
    (acked_at_cut.len(), present_ops)
}

fn write_image(path: &Path, bytes: Option<&Vec<u8>>) {
    if let Some(bytes) = bytes {
        std::fs::write(path, bytes).unwrap();
    }
}

fn cuts() -> u64 {
    std::env::var("WA_REDB_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn full_keeps_every_acknowledged_write_across_a_power_cut() {
    let (mut acked, mut present) = (0, 0);
    for seed in 0..cuts() {
        let (a, p) = one_cut(Synchronous::Full, seed, seed % 2 == 1).await;
        acked += a;
        present += p;
    }
    eprintln!(
        "full: {} cuts, {acked} ops acknowledged at the cut, {present} present",
        cuts()
    );
    assert!(acked > 0, "no cut landed inside a workload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn normal_survives_a_power_cut_consistent() {
    let (mut acked, mut present) = (0, 0);
    for seed in 0..cuts() {
        let (a, p) = one_cut(Synchronous::Normal, 1000 + seed, seed % 2 == 1).await;
        acked += a;
        present += p;
    }
    eprintln!(
        "normal: {} cuts, {acked} ops acknowledged at the cut, {present} present",
        cuts()
    );
}
