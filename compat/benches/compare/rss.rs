//! Peak RSS of one store running a mixed workload, in a process of its own.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use wacore::store::traits::{DeviceListRecord, LidPnMappingEntry, MsgSecretEntry};

use crate::data::*;
use crate::measure::*;
use crate::stores::{Kind, Store};
use crate::suite::Options;
use crate::workloads::{concurrent_round, flush_batches, put_sessions, random_macs};

pub(crate) fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A mixed workload on one store, in a process of its own; prints its
/// VmHWM.
pub(crate) async fn child_mixed(kind: Kind, dir: &Path, sc: Scale) {
    let blobs = Arc::new(Blobs::new(0xb10b));
    let store = Store::open_fresh(kind, dir).await;
    let b = store.b();
    let now = now_secs();
    let mut rng = Rng::new(0xc41d);
    // Sessions (the whole signal cache's worth), single writes, flushes.
    let n_sessions = sc.n(5000) as u64;
    put_sessions(b, &blobs, n_sessions).await;
    for i in 0..sc.n(1000) as u64 {
        b.put_session(&session_address(1, i), blobs.session(i as usize))
            .await
            .unwrap();
    }
    for k in 0..sc.n(200) as u64 {
        let (s, i, skeys) = flush_batches(k, &blobs, &mut rng);
        b.put_sessions_batch(&s).await.unwrap();
        b.put_identities_batch(&i).await.unwrap();
        b.put_sender_keys_batch(&skeys).await.unwrap();
    }
    // App state.
    let (macs, keys) = random_macs(&mut rng, 5000);
    b.put_mutation_macs("regular", 1, &macs).await.unwrap();
    for chunk in keys.chunks(250) {
        b.get_mutation_macs("regular", chunk).await.unwrap();
    }
    drop((macs, keys));
    // usync, history sync, LID mappings.
    for r in 0..2 {
        let records: Vec<DeviceListRecord> = (0..1024)
            .map(|i| device_list_record(&mut rng, i, now + r))
            .collect();
        b.update_device_lists(records).await.unwrap();
    }
    for r in 0..sc.n(3) as u64 {
        let entries: Vec<MsgSecretEntry> = (0..4096)
            .map(|i| msg_secret_entry(&mut rng, r * 4096 + i, now))
            .collect();
        b.put_msg_secrets(entries).await.unwrap();
    }
    let n_lid = sc.n(20_000) as u64;
    for start in (0..n_lid).step_by(1000) {
        let chunk: Vec<LidPnMappingEntry> = (start..(start + 1000).min(n_lid))
            .map(|i| lid_entry(i, now))
            .collect();
        b.put_lid_mappings(&chunk).await.unwrap();
    }
    assert_eq!(b.get_all_lid_mappings().await.unwrap().len() as u64, n_lid);
    // Reads and concurrent writes.
    for _ in 0..sc.n(10_000) {
        b.get_session(&session_address(3, rng.below(n_sessions)))
            .await
            .unwrap();
    }
    concurrent_round(&store, &blobs, 4, sc.n(50)).await;
    store.close().await;
}

pub(crate) fn run_child(slug: &str) {
    let sc = Scale::from_env();
    let dir = PathBuf::from(std::env::var("WA_BENCH_CHILD_DIR").expect("WA_BENCH_CHILD_DIR"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if slug != "none" {
        let kind = Kind::from_slug(slug).expect("unknown WA_BENCH_CHILD");
        rt.block_on(child_mixed(kind, &dir, sc));
    }
    drop(rt);
    println!(
        "WA_BENCH_VMHWM_KIB={} WA_BENCH_VMRSS_KIB={} WA_BENCH_DIR_BYTES={}",
        status_kib("VmHWM:").unwrap_or(0),
        status_kib("VmRSS:").unwrap_or(0),
        dir_size(&dir).0
    );
}

/// Runs the child for `slug`; returns (VmHWM KiB, file bytes) or an error.
pub(crate) fn measure_child(slug: &str, dir: &Path) -> ChildResult {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .env("WA_BENCH_CHILD", slug)
        .env("WA_BENCH_CHILD_DIR", dir)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "child {slug} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let field = |name: &str| -> Option<u64> {
        stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
    };
    match (field("WA_BENCH_VMHWM_KIB="), field("WA_BENCH_DIR_BYTES=")) {
        (Some(h), Some(d)) => Ok((h, d)),
        _ => Err(format!("child {slug}: unexpected output {stdout:?}")),
    }
}

/// A child's (VmHWM KiB, store bytes), or what went wrong.
pub(crate) type ChildResult = Result<(u64, u64), String>;

/// Measures the peak RSS of each store in a fresh process (plus the bare
/// binary) and prints the table.
pub(crate) fn run(opts: &Options) {
    let mut rss: Vec<(String, ChildResult)> = Vec::new();
    for slug in ["none", "redb", "sqlite", "redb-full", "sqlite-full"] {
        if Kind::from_slug(slug).is_some_and(|k| !opts.stores.contains(&k)) {
            continue;
        }
        let t = Instant::now();
        let r = measure_child(slug, &opts.root.join(format!("rss-{slug}")));
        eprintln!(
            "  rss child {slug:<12} {:>7.2}s  {r:?}",
            t.elapsed().as_secs_f64()
        );
        rss.push((slug.to_string(), r));
    }
    println!(
        "\n### Peak RSS (VmHWM) of a fresh process holding one store and running a mixed workload\n"
    );
    println!(
        "Mixed workload: 5,000 sessions in batches of 250, 1,000 single `put_session`, 200 signal flushes, 5,000 MACs put + get, 2 × 1,024 device lists, 3 × 4,096 msg secrets, 20,000 LID mappings + `get_all_lid_mappings`, 10,000 random `get_session`, 32 tasks × 50 `put_session` (counts × scale). `none` = the same binary with only the runtime started.\n"
    );
    println!("| Process | Peak RSS | Δ vs none | Store files after close |");
    println!("|---|---:|---:|---:|");
    let base = rss
        .iter()
        .find(|(s, _)| s == "none")
        .and_then(|(_, r)| r.as_ref().ok())
        .map(|r| r.0);
    let mut hwm: HashMap<String, u64> = HashMap::new();
    for (slug, r) in &rss {
        let label = Kind::from_slug(slug).map(|k| k.label()).unwrap_or("none");
        match r {
            Ok((kib, bytes)) => {
                hwm.insert(slug.clone(), *kib);
                println!(
                    "| {label} | {:.1} MiB | {} | {} |",
                    *kib as f64 / 1024.0,
                    base.map(|b| format!("{:+.1} MiB", (*kib as f64 - b as f64) / 1024.0))
                        .unwrap_or_default(),
                    fmt_bytes(*bytes)
                );
            }
            Err(e) => println!("| {label} | error: {} | | |", e.replace('\n', " ")),
        }
    }
    for (redb, sqlite) in [("redb", "sqlite"), ("redb-full", "sqlite-full")] {
        if let (Some(r), Some(s)) = (hwm.get(redb), hwm.get(sqlite)) {
            let d = (*r as f64 - *s as f64) / 1024.0;
            println!(
                "\n{} − {}: {d:+.1} MiB ({} ≤ +16 MiB)",
                Kind::from_slug(redb).unwrap().label(),
                Kind::from_slug(sqlite).unwrap().label(),
                if d <= 16.0 { "meets" } else { "MISSES" }
            );
        }
    }
}
