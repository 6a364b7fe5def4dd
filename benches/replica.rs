//! What a replica costs: `push_snapshot` and `restore_from_replica` of a
//! store of about 100 MiB (sessions of two accounts, 64 KiB values); and
//! replicated durability (`replicate_to`): an awaited `put_session`
//! (1.2 KB) alone and from 32 tasks at once, against the same store
//! without a replica. Targets: a directory on the same disk and moto's S3
//! server on 127.0.0.1 (if `moto_server` is installed; it stands for an S3
//! endpoint with no network latency, and is itself the bottleneck: a
//! Python server). Release build:
//!
//! `cargo bench --features replica --bench replica` (results in
//! compat/benches/README.md, "Replication"); under
//! `taskset -c 0` for one CPU.

#[path = "../tests/util/big_store.rs"]
mod big_store;
#[path = "../tests/util/s3.rs"]
mod s3;

use std::path::Path;
use std::time::{Duration, Instant};

use wacore::store::traits::SignalStore;
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

fn main() {
    // Not a criterion bench: `cargo bench` passes `--bench`, nothing to parse.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    rt.block_on(async {
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
    });
}
