//! What a replica costs: `push_snapshot` and `restore_from_replica` of a
//! store of about 100 MiB (sessions of two accounts, 64 KiB values); and
//! replicated durability (`replicate_to`): an awaited `put_session`
//! (1.2 KB) alone and from 32 tasks at once, real Signal traffic between
//! two devices (wacore's `SignalStoreCache`, the pre-wire flush and the
//! receive flush waiting for the replica), and 1,000 accounts in one file
//! written from 64 tasks, each against the same without a replica. Targets: a directory on the same disk and moto's S3
//! server on 127.0.0.1 (if `moto_server` is installed; it stands for an S3
//! endpoint with no network latency, and is itself the bottleneck: a
//! Python server). Release build:
//!
//! `cargo bench --features replica --bench replica` (results in
//! compat/benches/README.md, "Replication"); under
//! `taskset -c 0` for one CPU. `WA_BENCH_REPLICA=traffic`: the Signal
//! and one-file rows alone; `=files`: 200 files of one account each,
//! replicated (to directories, and to moto if installed) or not (threads,
//! memory, writes per second); `=records`: the time to restore a store
//! whose replica holds a snapshot and 2,000 record objects after it.

#[path = "../tests/util/big_store.rs"]
mod big_store;
#[path = "../tests/util/proxy.rs"]
mod proxy;
#[path = "../tests/util/s3.rs"]
mod s3;
#[path = "../tests/util/signal/mod.rs"]
mod stack;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use stack::{ALICE, BOB, Peer, Profile, Stats, StoreHandle, message};
use wacore::store::traits::{Backend, SignalStore};
use whatsapp_rust_redb_storage::{
    RedbStore, RedbStoreConfig, ReplicaRestoreOptions, ReplicaTarget, ReplicationOptions,
};

const ROUNDS: usize = 3;

async fn store_of(path: &Path, mib: usize) -> RedbStore {
    let s = RedbStore::new(path).await.expect("open");
    big_store::fill_two_accounts(&s, mib).await;
    s.checkpoint().await.expect("checkpoint");
    s
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn measure(label: &str, target: &ReplicaTarget, store: &RedbStore, dir: &Path) {
    let (mut push, mut restore) = (Vec::new(), Vec::new());
    let mut bytes = 0;
    for round in 0..ROUNDS {
        store
            .put_session(&format!("round-{round}@c.us.0"), b"r")
            .await
            .expect("write");
        let t = Instant::now();
        let pushed = store.push_snapshot(target, 1).await.expect("push");
        push.push(t.elapsed());
        bytes = pushed.bytes;
        let out = dir.join(format!("restored-{label}-{round}.redb"));
        let t = Instant::now();
        RedbStore::restore_from_replica(
            target,
            &out,
            &RedbStoreConfig::default(),
            &ReplicaRestoreOptions::accepting_stale_state(),
        )
        .await
        .expect("restore");
        restore.push(t.elapsed());
        std::fs::remove_file(&out).expect("remove");
    }
    let mib = bytes as f64 / (1 << 20) as f64;
    let (p, r) = (median(push), median(restore));
    println!(
        "| {label} | {mib:.1} MiB | {:.0} ms ({:.0} MiB/s) | {:.0} ms ({:.0} MiB/s) |",
        p.as_secs_f64() * 1e3,
        mib / p.as_secs_f64(),
        r.as_secs_f64() * 1e3,
        mib / r.as_secs_f64()
    );
}

/// µs per awaited `put_session`: `n` in a row, then 32 tasks × `n / 8`.
async fn writes(store: &RedbStore, n: usize) -> (f64, f64) {
    let value = vec![7u8; 1200];
    let t = Instant::now();
    for i in 0..n {
        store
            .put_session(&format!("55{i:08}@c.us.0"), &value)
            .await
            .expect("write");
    }
    let alone = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let t = Instant::now();
    let tasks: Vec<_> = (0..32)
        .map(|task| {
            let (s, value) = (store.clone(), value.clone());
            tokio::spawn(async move {
                for i in 0..n / 8 {
                    s.put_session(&format!("t{task}-{i}@c.us.0"), &value)
                        .await
                        .expect("write");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let together = t.elapsed().as_secs_f64() * 1e6 / (32 * (n / 8)) as f64;
    (alone, together)
}

async fn replicated(label: &str, target: Option<&ReplicaTarget>, dir: &Path) {
    let path = dir.join(format!("replicated-{}.redb", label.len()));
    let store = RedbStore::new(&path).await.expect("open");
    if let Some(target) = target {
        store
            .replicate_to(target, &ReplicationOptions::default())
            .await
            .expect("replicate");
    }
    writes(&store, 800).await;
    let (alone, together) = writes(&store, 800).await;
    // Record bytes uploaded per byte of session written (both rounds:
    // 2 × (n + 32 × n / 8) writes of 1,200 bytes).
    let per_byte = match target {
        Some(target) => {
            let records = target.records().await.expect("records");
            let written = 2 * (800 + 32 * 100) * 1200;
            format!("{:.2}", records.bytes as f64 / written as f64)
        }
        None => "".into(),
    };
    println!("| {label} | {alone:.1} µs | {together:.1} µs | {per_byte} |");
    store.close().await.expect("close");
}

/// A device's store, replicating to `target` if given (a prefix of its
/// own: one store per target).
struct Handle(RedbStore);

impl StoreHandle for Handle {
    fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(self.0.clone())
    }

    async fn close(self) {
        self.0.close().await.expect("close");
    }
}

async fn peer(
    dir: &Path,
    profile: &'static Profile,
    target: Option<(ReplicaTarget, ReplicationOptions)>,
) -> Peer<Handle> {
    let store = RedbStore::new(dir.join(format!("{}.redb", profile.name)))
        .await
        .expect("open");
    if let Some((target, options)) = target {
        store
            .replicate_to(&target, &options)
            .await
            .expect("replicate");
    }
    Peer::open(Handle(store), profile, 1).await
}

/// µs per message of seeded traffic (a quarter of it group messages),
/// after the pre-key exchange; `targets` for Alice and Bob.
async fn signal_traffic(
    dir: &Path,
    targets: Option<([ReplicaTarget; 2], ReplicationOptions)>,
) -> f64 {
    let [a, b] = match targets {
        Some(([a, b], options)) => [Some((a, options.clone())), Some((b, options))],
        None => [None, None],
    };
    let mut alice = peer(dir, &ALICE, a).await;
    let mut bob = peer(dir, &BOB, b).await;
    alice.provision().await;
    bob.provision().await;
    let bundle = bob.bundle(7).await;
    let bob_address = bob.address.clone();
    alice.install_bundle(&bob_address, &bundle).await;
    let mut stats = Stats::default();
    message(&mut alice, &mut bob, false, &mut stats).await;
    let mut rng = StdRng::seed_from_u64(0x5157_0A11);
    const MESSAGES: usize = 600;
    let t = Instant::now();
    for _ in 0..MESSAGES {
        let group = rng.random_bool(0.25);
        match rng.random_bool(0.5) {
            true => message(&mut alice, &mut bob, group, &mut stats).await,
            false => message(&mut bob, &mut alice, group, &mut stats).await,
        }
    }
    let per = t.elapsed().as_secs_f64() * 1e6 / MESSAGES as f64;
    assert_eq!(stats.direct_received, stats.direct_sent, "{stats:?}");
    alice.shut_down().await;
    bob.shut_down().await;
    per
}

/// Writes per second of 20,000 awaited `put_session`s (1.2 KB) from 64
/// tasks, each write to the next of `handles` in turn.
async fn writes_across(handles: Vec<RedbStore>) -> f64 {
    const WRITES: usize = 20_000;
    let handles = Arc::new(handles);
    let t = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|task| {
            let handles = handles.clone();
            tokio::spawn(async move {
                let value = vec![7u8; 1200];
                for i in (task..WRITES).step_by(64) {
                    handles[i % handles.len()]
                        .put_session(&format!("55{i:08}@c.us.0"), &value)
                        .await
                        .expect("write");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    WRITES as f64 / t.elapsed().as_secs_f64()
}

/// Writes per second into one file holding `ACCOUNTS` accounts, from 64
/// tasks, each `put_session` (1.2 KB) awaited, to accounts in turn.
async fn fleet_in_one_file(dir: &Path, target: Option<(ReplicaTarget, ReplicationOptions)>) -> f64 {
    const ACCOUNTS: i32 = 1000;
    let store = RedbStore::new(dir.join("fleet.redb")).await.expect("open");
    if let Some((target, options)) = target {
        store
            .replicate_to(&target, &options)
            .await
            .expect("replicate");
    }
    let accounts = (1..=ACCOUNTS).map(|d| store.for_device(d)).collect();
    let per_second = writes_across(accounts).await;
    store.close().await.expect("close");
    per_second
}

/// The Signal and fleet rows: no replica, a directory, moto S3, and moto
/// S3 in asynchronous mode (a lag of 1 s at most).
async fn traffic(dir: &Path) {
    let n = std::sync::atomic::AtomicUsize::new(0);
    let fresh = || {
        let sub = dir.join(format!("traffic-{}", n.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&sub).expect("dir");
        sub
    };
    let sync = ReplicationOptions::default();
    let lagging = ReplicationOptions::default().asynchronous(Duration::from_secs(1));
    let in_dir = |sub: &Path, name: &str| {
        ReplicaTarget::new(&format!("file://{}", sub.join(name).display())).expect("target")
    };
    let server = s3::S3Server::start();
    let in_s3 = |name: String| {
        let server = server.as_ref()?;
        server.create_bucket("traffic");
        let url = format!("s3://traffic/{name}");
        Some(ReplicaTarget::with_options(&url, s3::s3_options(server.port)).expect("target"))
    };
    let shown = |v: Option<f64>, decimals: usize, unit: &str| match v {
        Some(v) => format!("{v:.decimals$}{unit}"),
        None => "moto not installed".into(),
    };
    println!(
        "| workload | no replica (`Normal`) | replicated, directory | replicated, moto S3 | asynchronous (1 s), moto S3 |"
    );
    println!("|---|---:|---:|---:|---:|");
    let none = signal_traffic(&fresh(), None).await;
    let sub = fresh();
    let pair = [in_dir(&sub, "alice"), in_dir(&sub, "bob")];
    let in_directory = signal_traffic(&sub, Some((pair, sync.clone()))).await;
    let mut in_moto = [None, None];
    for (i, options) in [&sync, &lagging].into_iter().enumerate() {
        if let (Some(a), Some(b)) = (in_s3(format!("alice-{i}")), in_s3(format!("bob-{i}"))) {
            in_moto[i] = Some(signal_traffic(&fresh(), Some(([a, b], options.clone()))).await);
        }
    }
    println!(
        "| Signal traffic, µs per message | {none:.1} µs | {in_directory:.1} µs | {} | {} |",
        shown(in_moto[0], 1, " µs"),
        shown(in_moto[1], 1, " µs")
    );
    let none = fleet_in_one_file(&fresh(), None).await;
    let sub = fresh();
    let target = in_dir(&sub, "replica");
    let in_directory = fleet_in_one_file(&sub, Some((target, sync.clone()))).await;
    let mut in_moto = [None, None];
    for (i, options) in [&sync, &lagging].into_iter().enumerate() {
        if let Some(target) = in_s3(format!("fleet-{i}")) {
            in_moto[i] = Some(fleet_in_one_file(&fresh(), Some((target, options.clone()))).await);
        }
    }
    println!(
        "| 1,000 accounts in one file, 64 tasks, writes per second | {none:.0} | {in_directory:.0} | {} | {} |",
        shown(in_moto[0], 0, ""),
        shown(in_moto[1], 0, "")
    );
}

/// A store that replicated `n` awaited writes to `target` after its base
/// snapshot (an object each), then the restore of it through `from` (the
/// same replica; median of `ROUNDS`).
async fn restore_records(
    label: &str,
    target: &ReplicaTarget,
    from: &ReplicaTarget,
    dir: &Path,
    n: usize,
) {
    let path = dir.join(format!("records-{label}.redb"));
    let store = RedbStore::new(&path).await.expect("open");
    store
        .replicate_to(target, &ReplicationOptions::default())
        .await
        .expect("replicate");
    for i in 0..n {
        store
            .put_session(&format!("55{i:08}@c.us.0"), &[7u8; 1200])
            .await
            .expect("write");
    }
    let objects = target.records().await.expect("records").objects;
    store.close().await.expect("close");
    let mut times = Vec::new();
    for round in 0..ROUNDS {
        let out = dir.join(format!("records-{label}-{round}.redb"));
        let t = Instant::now();
        let restored = RedbStore::restore_from_replica(
            from,
            &out,
            &RedbStoreConfig::default(),
            &ReplicaRestoreOptions::default(),
        )
        .await
        .expect("restore");
        times.push(t.elapsed());
        assert!(restored.records as usize >= n, "{restored:?}");
        std::fs::remove_file(&out).expect("remove");
    }
    println!(
        "| {label} | {objects} | {:.0} ms |",
        median(times).as_secs_f64() * 1e3
    );
}

/// Threads of this process, and its resident memory in KiB.
fn threads_and_rss() -> (usize, u64) {
    let threads = std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    (threads, rss)
}

/// `n` store files, one account each, replicating to prefixes of their
/// own in `targets` if given: the threads and memory each costs once
/// open, and the writes per second of 64 tasks across them.
async fn fleet_of_files(
    dir: &Path,
    n: usize,
    replicated: Option<(&str, &[(&'static str, String)])>,
) -> String {
    let (threads_before, rss_before) = threads_and_rss();
    let mut stores = Vec::with_capacity(n);
    for i in 0..n {
        let s = RedbStore::new(dir.join(format!("{i}.redb")))
            .await
            .expect("open");
        if let Some((url, options)) = replicated {
            let target =
                ReplicaTarget::with_options(&format!("{url}/{i}"), options.iter().cloned())
                    .expect("target");
            s.replicate_to(&target, &ReplicationOptions::default())
                .await
                .expect("replicate");
        }
        stores.push(s);
    }
    let (threads, rss) = threads_and_rss();
    let per_second = writes_across(stores.clone()).await;
    // Idle for a while: what the open files hold then.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (idle_threads, _) = threads_and_rss();
    for s in stores {
        s.close().await.expect("close");
    }
    format!(
        "{} | {} | {:.1} KiB | {per_second:.0}",
        // Signed: threads the runtime had before may have left since.
        threads as i64 - threads_before as i64,
        idle_threads as i64 - threads_before as i64,
        rss.saturating_sub(rss_before) as f64 / n as f64
    )
}

fn main() {
    // Not a criterion bench: `cargo bench` passes `--bench`, nothing to parse.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    rt.block_on(async {
        if std::env::var("WA_BENCH_REPLICA").as_deref() == Ok("traffic") {
            traffic(dir.path()).await;
            return;
        }
        if std::env::var("WA_BENCH_REPLICA").as_deref() == Ok("records") {
            let n = 2_000;
            println!("| restore of {n} writes after the snapshot | record objects | restore: median of {ROUNDS} |");
            println!("|---|---:|---:|");
            let url = format!("file://{}", dir.path().join("records-replica").display());
            let target = ReplicaTarget::new(&url).expect("target");
            restore_records("directory", &target, &target, dir.path(), n).await;
            if let Some(server) = s3::S3Server::start() {
                server.create_bucket("records");
                let options = s3::s3_options(server.port);
                let target = ReplicaTarget::with_options("s3://records/store", options)
                    .expect("target");
                restore_records("moto S3", &target, &target, dir.path(), n).await;
                // The same replica 20 ms away: a bucket in another region.
                let far = proxy::Proxy::with_latency(server.port, Duration::from_millis(20));
                let options = s3::s3_options(far.port);
                let distant = ReplicaTarget::with_options("s3://records/far", options)
                    .expect("target");
                let near = ReplicaTarget::with_options("s3://records/far", s3::s3_options(server.port))
                    .expect("target");
                restore_records("moto S3, 20 ms away", &near, &distant, dir.path(), n).await;
            }
            return;
        }
        if std::env::var("WA_BENCH_REPLICA").as_deref() == Ok("files") {
            let n = 200;
            println!("| {n} files, an account each | threads added once open | after writing, then 3 s idle | RSS per open file | writes per second (64 tasks) |");
            println!("|---|---:|---:|---:|---:|");
            let plain = dir.path().join("files-plain");
            std::fs::create_dir_all(&plain).expect("dir");
            println!("| no replica | {} |", fleet_of_files(&plain, n, None).await);
            let replicated = dir.path().join("files-replicated");
            std::fs::create_dir_all(&replicated).expect("dir");
            let url = format!("file://{}", dir.path().join("files-replica").display());
            let row = fleet_of_files(&replicated, n, Some((&url, &[]))).await;
            println!("| replicated, directory | {row} |");
            if let Some(server) = s3::S3Server::start() {
                server.create_bucket("files");
                let replicated = dir.path().join("files-s3");
                std::fs::create_dir_all(&replicated).expect("dir");
                let options = s3::s3_options(server.port);
                let row = fleet_of_files(&replicated, n, Some(("s3://files", &options))).await;
                println!("| replicated, moto S3 | {row} |");
            }
            return;
        }
        let store = store_of(&dir.path().join("store.redb"), 100).await;
        println!("| target | snapshot | push: median of {ROUNDS} | restore (download, check every page) |");
        println!("|---|---:|---:|---:|");
        let local = dir.path().join("replica");
        let target = ReplicaTarget::new(&format!("file://{}", local.display())).expect("target");
        measure("directory, same disk", &target, &store, dir.path()).await;
        match s3::S3Server::start() {
            Some(server) => {
                server.create_bucket("bench");
                let target =
                    ReplicaTarget::with_options("s3://bench/store", s3::s3_options(server.port))
                        .expect("target");
                measure("moto S3, 127.0.0.1", &target, &store, dir.path()).await;
            }
            None => println!("| moto S3 | not installed | | |"),
        }
        store.close().await.expect("close");
        println!();
        println!(
            "| awaited `put_session` (1.2 KB) | alone | 32 tasks at once (per write) | bytes uploaded per byte written |"
        );
        println!("|---|---:|---:|---:|");
        replicated("no replica (Normal)", None, dir.path()).await;
        let local = dir.path().join("replica-writes");
        let target = ReplicaTarget::new(&format!("file://{}", local.display())).expect("target");
        replicated("replicated, directory (fsync per upload)", Some(&target), dir.path()).await;
        if let Some(server) = s3::S3Server::start() {
            server.create_bucket("writes");
            let target =
                ReplicaTarget::with_options("s3://writes/store", s3::s3_options(server.port))
                    .expect("target");
            replicated("replicated, moto S3 on 127.0.0.1", Some(&target), dir.path()).await;
        }
        println!();
        traffic(dir.path()).await;
    });
}
