//! Many tasks hammering one store at once, every trait domain mixed, with
//! an in-memory model of what the store must hold.
//!
//! 16 tasks on a multi-thread runtime share one file. Tasks 0..8 share
//! device 1 and own disjoint keys (their key strings carry the task
//! number; they never use device-wide operations that could touch another
//! task's rows). Tasks 8..16 each own a whole device (among them i32::MAX
//! and i32::MIN) and also run device-wide operations: sweeps, clears,
//! `delete_device`, `create`. So the final state is well defined whatever
//! the interleaving, and every read a task makes must equal its model at
//! once (read-your-writes). A task occasionally checkpoints, or takes a
//! backup and checks it holds exactly its model. At the end every key of
//! every model is compared with the store (present and absent), then again
//! after a close and reopen. The whole run is bounded by a timeout, so a
//! deadlock fails the test instead of hanging it; nothing sleeps.
//!
//! `WA_REDB_STRESS_SECS=<n>` (default 3): how long the tasks run.
//! `WA_REDB_STRESS_SEED=<n>`: base seed of the tasks' operation streams.
//!
//! Layout: this file has the shared definitions (the model, key names, the
//! task, the `ok!`/`same!` macros) and the run; `task.rs` drives a task
//! (its random choice of operation, device records, device-wide
//! operations, backups); `signal.rs`, `appstate.rs`, `protocol.rs` and
//! `messages.rs` have the operations of each trait domain, checked against
//! the model; `verify.rs` compares a whole key space with a model.

#[path = "../util/dataset.rs"]
mod dataset;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dataset::Rng;
use wacore::store::Device;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig};

const TASKS: u32 = 16;
const SHARED_TASKS: u32 = 8;
const SHARED_DEVICE: i32 = 1;
/// Distinct keys per task and domain: small, so that writes overwrite,
/// deletes hit and takes find.
const KEYS: u64 = 12;

fn owner_device(t: u32) -> i32 {
    match t {
        8 => i32::MAX,
        9 => i32::MIN,
        10 => 0,
        11 => -1,
        _ => 1000 + t as i32,
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

#[derive(Clone, Debug, PartialEq)]
struct Tc {
    token: Vec<u8>,
    token_ts: i64,
    sender_ts: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
struct Lid {
    phone: String,
    created: i64,
    updated: i64,
    source: String,
    seq: u64,
}

#[derive(Clone, Debug, PartialEq)]
struct Secret {
    secret: [u8; 32],
    expires: i64,
    ts: i64,
}

type K2 = (String, String);
type K3 = (String, String, String);

/// What one task's keys hold.
#[derive(Default, Clone)]
struct Model {
    /// push_name of the device record (owners only).
    device: Option<String>,
    identities: BTreeMap<String, [u8; 32]>,
    sessions: BTreeMap<String, Vec<u8>>,
    prekeys: BTreeMap<u32, Vec<u8>>,
    signed: BTreeMap<u32, Vec<u8>>,
    sender_keys: BTreeMap<String, Vec<u8>>,
    sync_keys: BTreeMap<Vec<u8>, (Vec<u8>, i64)>,
    versions: BTreeMap<String, u64>,
    macs: BTreeMap<(String, [u8; 32]), Vec<u8>>,
    /// (group, device jid) -> has_key.
    skd: BTreeMap<K2, bool>,
    lids: BTreeMap<String, Lid>,
    lid_seq: u64,
    base_keys: BTreeMap<K2, Vec<u8>>,
    device_lists: BTreeMap<String, (u32, i64)>,
    group_meta: BTreeMap<String, Vec<u8>>,
    tc: BTreeMap<String, Tc>,
    sent: BTreeMap<K2, Vec<u8>>,
    inbound: BTreeMap<K3, Vec<u8>>,
    secrets: BTreeMap<K3, Secret>,
}

impl Model {
    /// Rows this model holds, as `delete_device` counts them.
    fn rows(&self) -> u64 {
        (self.device.is_some() as usize
            + self.identities.len()
            + self.sessions.len()
            + self.prekeys.len()
            + self.signed.len()
            + self.sender_keys.len()
            + self.sync_keys.len()
            + self.versions.len()
            + self.macs.len()
            + self.skd.len()
            + 2 * self.lids.len()
            + self.base_keys.len()
            + self.device_lists.len()
            + self.group_meta.len()
            + self.tc.len()
            + self.sent.len()
            + self.inbound.len()
            + self.secrets.len()) as u64
    }

    fn best_lid_for(&self, phone: &str) -> Option<String> {
        self.lids
            .iter()
            .filter(|(_, l)| l.phone == phone)
            .max_by_key(|(_, l)| (l.updated, std::cmp::Reverse(l.seq)))
            .map(|(lid, _)| lid.clone())
    }
}

/// Names of a task's keys: every string carries the task number.
#[derive(Clone, Copy)]
struct Names {
    t: u32,
}

impl Names {
    fn addr(&self, i: u64) -> String {
        format!("t{}-a{i}@c.us.0", self.t)
    }
    fn group(&self, i: u64) -> String {
        format!("t{}-g{i}@g.us", self.t)
    }
    fn jid(&self, i: u64) -> String {
        format!("t{}-d{i}:1@lid", self.t)
    }
    fn coll(&self, i: u64) -> String {
        format!("t{}-coll{i}", self.t)
    }
    fn lid(&self, i: u64) -> String {
        format!("t{}-lid{i}", self.t)
    }
    fn phone(&self, i: u64) -> String {
        format!("t{}-pn{i}", self.t)
    }
    fn chat(&self, i: u64) -> String {
        format!("t{}-c{}@s.whatsapp.net", self.t, i % 3)
    }
    fn id(&self, i: u64) -> String {
        format!("t{}-m{i}", self.t)
    }
    fn sync_key(&self, i: u64) -> Vec<u8> {
        format!("t{}-key{i:02}", self.t).into_bytes()
    }
    fn mac(&self, i: u64) -> [u8; 32] {
        let mut m = [0u8; 32];
        m[0] = self.t as u8;
        m[1] = i as u8;
        m
    }
    /// Pre-key and signed pre-key ids: a range of their own per task.
    fn prekey(&self, i: u64) -> u32 {
        self.t * 1000 + i as u32 + 1
    }
}

struct Task {
    t: u32,
    owner: bool,
    s: RedbStore,
    m: Model,
    rng: Rng,
    n: Names,
    ops: u64,
    stats: Arc<Stats>,
    backup_dir: std::path::PathBuf,
}

#[derive(Default)]
struct Stats {
    ops: AtomicU64,
    writes: AtomicU64,
    device_wide: AtomicU64,
    checkpoints: AtomicU64,
    backups: AtomicU64,
}

macro_rules! ok {
    ($task:expr, $call:expr, $what:expr) => {
        $call.await.unwrap_or_else(|e| {
            panic!("task {} op {} {}: {}", $task.t, $task.ops, $what, chain(&e))
        })
    };
}

macro_rules! same {
    ($task:expr, $got:expr, $want:expr, $what:expr) => {{
        let (got, want) = ($got, $want);
        assert!(
            got == want,
            "task {} op {} {}: store has {:?}, model says {:?}",
            $task.t,
            $task.ops,
            $what,
            got,
            want
        );
    }};
}

// The task's operations and the verification: declared after `ok!` and
// `same!`, which they use (a `macro_rules!` is in scope only below it).
mod appstate;
mod messages;
mod protocol;
mod signal;
mod task;
mod verify;

use verify::verify_model;

async fn run(path: std::path::PathBuf, secs: u64, seed: u64) -> (Vec<(u32, Model)>, Arc<Stats>) {
    let config = RedbStoreConfig::default()
        .with_checkpoint_interval(Duration::from_millis(50))
        .with_checkpoint_journal_bytes(256 << 10);
    let store = RedbStore::with_config_for_device(&path, SHARED_DEVICE, config)
        .await
        .unwrap();
    store.save(&Device::new()).await.unwrap();
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let backup_dir = path.parent().unwrap().join("backups");
    std::fs::create_dir_all(&backup_dir).unwrap();

    // A reader scanning the whole file while the tasks write.
    let scanner = {
        let (s, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut scans = 0u64;
            while !stop.load(Ordering::Relaxed) {
                s.info().await.unwrap();
                scans += 1;
                tokio::task::yield_now().await;
            }
            scans
        })
    };
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let owner = t >= SHARED_TASKS;
        let s = if owner {
            store.for_device(owner_device(t))
        } else {
            store.clone()
        };
        let mut task = Task {
            t,
            owner,
            s,
            m: Model::default(),
            rng: Rng(seed ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            n: Names { t },
            ops: 0,
            stats: stats.clone(),
            backup_dir: backup_dir.clone(),
        };
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                task.step().await;
            }
            (task.t, task.m)
        }));
    }
    let mut models = Vec::new();
    for t in tasks {
        models.push(t.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    let scans = scanner.await.unwrap();
    eprintln!("stress: {scans} whole-file scans ran alongside");

    // Every key of every model, with the store still open.
    for (t, m) in &models {
        let owner = *t >= SHARED_TASKS;
        let s = if owner {
            store.for_device(owner_device(*t))
        } else {
            store.clone()
        };
        verify_model(&s, m, &Names { t: *t }, owner, false)
            .await
            .unwrap_or_else(|e| panic!("task {t} at the end: {e}"));
    }
    store.close().await.unwrap();
    (models, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_mixing_every_operation_agree_with_the_model() {
    let secs = env_u64("WA_REDB_STRESS_SECS").unwrap_or(3);
    let seed = env_u64("WA_REDB_STRESS_SEED").unwrap_or(0x57_2E55);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stress.redb");
    let started = Instant::now();
    // A deadlock anywhere fails here instead of hanging the test.
    let limit = Duration::from_secs(secs * 4 + 120);
    // And if one blocks every runtime worker so that even the timer cannot
    // fire, a plain thread ends the process.
    let (done, watchdog) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            watchdog.recv_timeout(limit * 2 + Duration::from_secs(60))
        {
            eprintln!("stress: the runtime is stuck (deadlock?); aborting");
            std::process::abort();
        }
    });
    let (models, stats) = tokio::time::timeout(limit, run(path.clone(), secs, seed))
        .await
        .unwrap_or_else(|_| panic!("stress run did not finish within {limit:?}: deadlock?"));
    let ran = started.elapsed();

    // After a reopen, including the device-wide listings.
    let verified = tokio::time::timeout(limit, async {
        for (t, m) in &models {
            let owner = *t >= SHARED_TASKS;
            let d = if owner {
                owner_device(*t)
            } else {
                SHARED_DEVICE
            };
            let s = RedbStore::new_for_device(&path, d).await.unwrap();
            verify_model(&s, m, &Names { t: *t }, owner, true)
                .await
                .unwrap_or_else(|e| panic!("task {t} after reopen: {e}"));
        }
    })
    .await;
    assert!(verified.is_ok(), "verification after reopen did not finish");

    let keys: usize = models.iter().map(|(_, m)| m.rows() as usize).sum();
    let devices: BTreeSet<i32> = (SHARED_TASKS..TASKS).map(owner_device).collect();
    eprintln!(
        "stress: {TASKS} tasks for {secs} s: {} ops ({} writes, {} device-wide, {} checkpoints, \
         {} backups verified); {keys} rows in the final models over {} devices; run {ran:?}, total {:?}",
        stats.ops.load(Ordering::Relaxed),
        stats.writes.load(Ordering::Relaxed),
        stats.device_wide.load(Ordering::Relaxed),
        stats.checkpoints.load(Ordering::Relaxed),
        stats.backups.load(Ordering::Relaxed),
        devices.len() + 1,
        started.elapsed()
    );
    assert!(
        stats.ops.load(Ordering::Relaxed) > 1000,
        "too few operations ran"
    );
    drop(done);
}
