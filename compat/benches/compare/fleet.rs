//! Workload 10: a fleet of accounts in one process, as bot farms run it —
//! all accounts in one store file, or one store file per account. Each
//! configuration runs in two fresh processes of its own: one creates the
//! accounts (device record, 8 sessions, 8 identities each) and closes
//! them; the other, measured, opens them all at once, runs every account at
//! once for some rounds (a Signal flush of 2 sessions and an identity, a
//! sent message stored and taken back, a session read: 5 store calls per
//! account and round), drops them all (each store closes its file as it is
//! dropped), and reopens them all.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::data::{Blobs, session_address};
use crate::measure::{Scale, fmt_bytes, millis};
use crate::rss::status_kib;
use crate::stores::{Kind, Store};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Layout {
    OneFile,
    FilePerAccount,
}

impl Layout {
    fn slug(self) -> &'static str {
        match self {
            Layout::OneFile => "one-file",
            Layout::FilePerAccount => "file-each",
        }
    }

    fn from_slug(s: &str) -> Layout {
        match s {
            "one-file" => Layout::OneFile,
            "file-each" => Layout::FilePerAccount,
            other => panic!("unknown fleet layout {other}"),
        }
    }
}

/// The configurations measured: (layout, accounts).
pub(crate) const CONFIGS: [(Layout, usize); 3] = [
    (Layout::OneFile, 1000),
    (Layout::FilePerAccount, 300),
    (Layout::FilePerAccount, 1000),
];

/// The two stores a fleet is compared on: the defaults.
pub(crate) const FLEET_KINDS: [Kind; 2] = [Kind::RedbNormal, Kind::SqliteNormal];

fn account(kind: Kind, layout: Layout, dir: &Path, i: usize) -> (PathBuf, i32) {
    match layout {
        Layout::OneFile => (dir.join(format!("all.{}", kind.file_name())), i as i32 + 1),
        Layout::FilePerAccount => (dir.join(format!("{i}.{}", kind.file_name())), 1),
    }
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn rss_kib() -> u64 {
    status_kib("VmRSS:").unwrap_or(0)
}

/// Opens every account at once (in one file, the first account alone
/// first: concurrent first opens of a new SqliteStore file race on its
/// schema migrations).
async fn open_all(kind: Kind, layout: Layout, dir: &Path, n: usize) -> Vec<Arc<Store>> {
    let first = if layout == Layout::OneFile {
        let (path, device) = account(kind, layout, dir, 0);
        Some(Arc::new(Store::open_at(kind, &path, device).await))
    } else {
        None
    };
    let skip = usize::from(first.is_some());
    let tasks: Vec<_> = (skip..n)
        .map(|i| {
            let (path, device) = account(kind, layout, dir, i);
            tokio::spawn(async move { Arc::new(Store::open_at(kind, &path, device).await) })
        })
        .collect();
    let mut stores: Vec<Arc<Store>> = first.into_iter().collect();
    for t in tasks {
        stores.push(t.await.expect("open task"));
    }
    stores
}

/// Closes every account at once.
async fn close_all(stores: Vec<Arc<Store>>) {
    let tasks: Vec<_> = stores
        .into_iter()
        .map(|s| {
            tokio::spawn(async move {
                let s = Arc::try_unwrap(s).unwrap_or_else(|_| panic!("store still shared"));
                s.close().await;
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("close task");
    }
}

async fn setup(kind: Kind, layout: Layout, dir: &Path, n: usize, blobs: &Blobs) {
    let stores = open_all(kind, layout, dir, n).await;
    for (i, s) in stores.iter().enumerate() {
        let b = s.b();
        b.create().await.expect("create");
        let sessions: Vec<(Arc<str>, Bytes)> = (0..8)
            .map(|j| {
                let addr = session_address(i as u64, j);
                (Arc::from(addr), blobs.session(i + j as usize).clone())
            })
            .collect();
        b.put_sessions_batch(&sessions).await.unwrap();
        let identities: Vec<(Arc<str>, [u8; 32])> = (0..8)
            .map(|j| (Arc::from(session_address(i as u64, j)), [j as u8; 32]))
            .collect();
        b.put_identities_batch(&identities).await.unwrap();
    }
    close_all(stores).await;
}

/// One account's round: 5 store calls.
async fn account_round(store: Arc<Store>, i: usize, round: usize, blobs: Arc<Blobs>) {
    let b = store.b();
    let j = (round % 4) as u64 * 2;
    let sessions: Vec<(Arc<str>, Bytes)> = (j..j + 2)
        .map(|k| {
            let addr = session_address(i as u64, k);
            (
                Arc::from(addr),
                blobs.session(i + round + k as usize).clone(),
            )
        })
        .collect();
    b.put_sessions_batch(&sessions).await.unwrap();
    let identity = [(Arc::from(session_address(i as u64, j)), [round as u8; 32])];
    b.put_identities_batch(&identity).await.unwrap();
    let chat = "5511987650001@s.whatsapp.net";
    let id = format!("3EB0{i:08X}{round:08X}");
    b.store_sent_message(chat, &id, &blobs.payloads[round % 64])
        .await
        .unwrap();
    assert!(b.take_sent_message(chat, &id).await.unwrap().is_some());
    let addr = session_address(i as u64, (round % 8) as u64);
    assert!(b.get_session(&addr).await.unwrap().is_some());
}

async fn measure(kind: Kind, layout: Layout, dir: &Path, n: usize, sc: Scale) -> String {
    let blobs = Arc::new(Blobs::new(0xf1ee7));
    let (base_rss, base_threads) = (rss_kib(), threads());
    let t = Instant::now();
    let stores = open_all(kind, layout, dir, n).await;
    let open = t.elapsed();
    let (idle_rss, idle_threads) = (rss_kib(), threads());
    let rounds = sc.n(10);
    let mut max_threads = idle_threads;
    let t = Instant::now();
    for round in 0..rounds {
        let tasks: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, s)| tokio::spawn(account_round(s.clone(), i, round, blobs.clone())))
            .collect();
        for task in tasks {
            task.await.expect("account task");
        }
        max_threads = max_threads.max(threads());
    }
    let work = t.elapsed();
    let work_rss = rss_kib();
    let t = Instant::now();
    close_all(stores).await;
    let close = t.elapsed();
    let t = Instant::now();
    let stores = open_all(kind, layout, dir, n).await;
    let reopen = t.elapsed();
    max_threads = max_threads.max(threads());
    close_all(stores).await;
    let ops = (n * rounds * 5) as f64;
    format!(
        "WA_FLEET open_ms={:.1} reopen_ms={:.1} close_ms={:.1} threads_idle={} threads_max={} base_threads={} idle_kib_per={:.1} work_kib_per={:.1} ops_per_s={:.0}",
        millis(open),
        millis(reopen),
        millis(close),
        idle_threads,
        max_threads,
        base_threads,
        idle_rss.saturating_sub(base_rss) as f64 / n as f64,
        work_rss.saturating_sub(base_rss) as f64 / n as f64,
        ops / work.as_secs_f64()
    )
}

/// The child side: `WA_BENCH_FLEET=<setup|measure>:<kind>:<layout>:<n>`.
pub(crate) fn child(spec: &str) {
    let parts: Vec<&str> = spec.split(':').collect();
    let [step, kind, layout, n] = parts[..] else {
        panic!("WA_BENCH_FLEET: {spec}");
    };
    let kind = Kind::from_slug(kind).expect("fleet kind");
    let layout = Layout::from_slug(layout);
    let n: usize = n.parse().expect("fleet size");
    let dir = PathBuf::from(std::env::var("WA_BENCH_FLEET_DIR").expect("WA_BENCH_FLEET_DIR"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match step {
        "setup" => rt.block_on(setup(kind, layout, &dir, n, &Blobs::new(0xf1ee7))),
        "measure" => println!(
            "{}",
            rt.block_on(measure(kind, layout, &dir, n, Scale::from_env()))
        ),
        other => panic!("WA_BENCH_FLEET step {other}"),
    }
}

/// One measured configuration, as the child printed it.
struct Measured {
    fields: Vec<(String, f64)>,
}

impl Measured {
    fn get(&self, key: &str) -> f64 {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map_or(f64::NAN, |(_, v)| *v)
    }
}

fn run_child(
    step: &str,
    kind: Kind,
    layout: Layout,
    n: usize,
    dir: &Path,
) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .env(
            "WA_BENCH_FLEET",
            format!("{step}:{}:{}:{n}", kind.slug(), layout.slug()),
        )
        .env("WA_BENCH_FLEET_DIR", dir)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr
            .lines()
            .find(|l| l.contains("panicked"))
            .unwrap_or("");
        return Err(format!(
            "fleet {step} {kind:?} {layout:?} {n}: {}: {first}",
            out.status
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn measure_config(kind: Kind, layout: Layout, n: usize, root: &Path) -> Result<Measured, String> {
    let dir = root.join(format!("fleet-{}-{}-{n}", kind.slug(), layout.slug()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    run_child("setup", kind, layout, n, &dir)?;
    let out = run_child("measure", kind, layout, n, &dir)?;
    let line = out
        .lines()
        .find(|l| l.starts_with("WA_FLEET "))
        .ok_or_else(|| format!("fleet child printed {out:?}"))?;
    let fields = line
        .split_whitespace()
        .skip(1)
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Measured { fields })
}

/// Runs every configuration on both stores and prints the table.
pub(crate) fn run(root: &Path) {
    // For a quick look: every fleet of this size instead.
    let size: Option<usize> = std::env::var("WA_BENCH_FLEET_SIZE")
        .ok()
        .and_then(|v| v.parse().ok());
    println!(
        "| Fleet | Store | open all (ms) | reopen all (ms) | drop all (ms) | OS threads idle / max | RSS per idle account | RSS per account after work | throughput (ops/s) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (layout, n) in CONFIGS {
        let n = size.unwrap_or(n);
        let mut results = Vec::new();
        for kind in FLEET_KINDS {
            let t = Instant::now();
            let r = measure_config(kind, layout, n, root);
            eprintln!(
                "  fleet {layout:?} {n} {:<20} {:>7.2}s",
                kind.label(),
                t.elapsed().as_secs_f64()
            );
            match r {
                Ok(m) => {
                    println!(
                        "| {} × {n} | {} | {:.1} | {:.1} | {:.1} | {:.0} / {:.0} | {} | {} | {:.0} |",
                        layout.slug(),
                        kind.label(),
                        m.get("open_ms"),
                        m.get("reopen_ms"),
                        m.get("close_ms"),
                        m.get("threads_idle"),
                        m.get("threads_max"),
                        fmt_bytes((m.get("idle_kib_per") * 1024.0) as u64),
                        fmt_bytes((m.get("work_kib_per") * 1024.0) as u64),
                        m.get("ops_per_s")
                    );
                    results.push(m);
                }
                Err(e) => println!(
                    "| {} × {n} | {} | error: {} |",
                    layout.slug(),
                    kind.label(),
                    e.replace('\n', " ")
                ),
            }
        }
        if let [redb, sqlite] = &results[..] {
            println!(
                "| {} × {n} | ratio (SQLite / redb; throughput redb / SQLite) | {:.2}× | {:.2}× | {:.2}× | | | | {:.2}× |",
                layout.slug(),
                sqlite.get("open_ms") / redb.get("open_ms"),
                sqlite.get("reopen_ms") / redb.get("reopen_ms"),
                sqlite.get("close_ms") / redb.get("close_ms"),
                redb.get("ops_per_s") / sqlite.get("ops_per_s"),
            );
        }
    }
}
