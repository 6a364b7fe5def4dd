//! RedbStore vs SqliteStore on client-shaped workloads.
//!
//! Runs every workload on four stores, each on fresh files in a temporary
//! directory on the repository's disk: RedbStore with the default
//! (`Synchronous::Normal`) and `Synchronous::Full`, SqliteStore with its
//! default (`synchronous = NORMAL`) and with `synchronous = FULL`; first on
//! every CPU of the machine, then again in a child process pinned to one
//! CPU (`taskset -c 0`). Then the fleet workloads (many accounts in one
//! process) and the peak RSS of a mixed workload. Prints markdown tables to
//! stdout.
//!
//! ```text
//! cargo bench -p wa-redb-compat --bench compare
//! WA_BENCH_SCALE=0.2 cargo bench -p wa-redb-compat --bench compare   # quicker, noisier
//! ```
//!
//! Environment:
//! - `WA_BENCH_SCALE` (default 1.0): multiplies every iteration count.
//! - `WA_BENCH_ROUNDS` (default 3): rounds per workload; tables show the
//!   median over rounds.
//! - `WA_BENCH_ONLY`: comma-separated workload names to run (`put_session`,
//!   `sent_pair`, `flush`, `appstate`, `usync`, `msg_secrets`, `reads`,
//!   `cached_reads`, `concurrent`, `cold_start`, `reopen`, `signal`).
//! - `WA_BENCH_SECTIONS`: comma-separated subset of `cpus` (every CPU),
//!   `one-cpu`, `fleet`, `rss` (default: all).
//! - `WA_BENCH_STORES`: comma-separated subset of `redb`, `redb-full`,
//!   `sqlite`, `sqlite-full` (for profiling; other columns show NaN).
//! - `WA_BENCH_REDB_PROTECTION=off`: RedbStore creates plain (format v1)
//!   files instead of protected ones, for the overhead of protected pages;
//!   `=encrypted`: encrypted files (a raw key), for the overhead of
//!   encryption.
//! - `WA_BENCH_FLEET_SIZE`: every fleet with this many accounts (default
//!   1,000 in one file; 300 and 1,000 with a file each).
//! - `WA_BENCH_TRACE`: print the mean latency per tenth of the
//!   `put_session` run to stderr (drift over a run).
//! - `WA_BENCH_DIR`: parent of the temporary directory (default the
//!   workspace's `target`, i.e. the repository's disk, not tmpfs).
//! - Internal: the bench re-executes itself with `WA_BENCH_PASS=one-cpu`
//!   (the one-CPU pass), `WA_BENCH_FLEET` (a fleet step) or
//!   `WA_BENCH_CHILD` (a peak-RSS measurement), each in a fresh process.

mod data;
mod fleet;
mod measure;
mod report;
mod rss;
mod signal;
mod stores;
mod suite;
mod workloads;

use std::path::{Path, PathBuf};
use std::time::Instant;

use measure::{Scale, git_describe, load_line, machine_line};
use stores::{KINDS, Kind};
use suite::{Options, Pass};

fn options(root: PathBuf) -> Options {
    Options {
        scale: Scale::from_env(),
        rounds: std::env::var("WA_BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|v| *v > 0)
            .unwrap_or(3),
        only: std::env::var("WA_BENCH_ONLY")
            .ok()
            .map(|v| v.split(',').map(|s| s.trim().to_string()).collect()),
        stores: match std::env::var("WA_BENCH_STORES") {
            Ok(v) => v
                .split(',')
                .map(|s| Kind::from_slug(s.trim()).expect("WA_BENCH_STORES: unknown store"))
                .collect(),
            Err(_) => KINDS.to_vec(),
        },
        root,
    }
}

fn section(name: &str) -> bool {
    std::env::var("WA_BENCH_SECTIONS").map_or(true, |v| v.split(',').any(|s| s.trim() == name))
}

/// Runs the per-store suite again in a child process pinned to CPU 0.
fn one_cpu_pass(root: &Path) {
    let exe = std::env::current_exe().expect("bench binary");
    let out = std::process::Command::new("taskset")
        .args(["-c", "0"])
        .arg(exe)
        .env("WA_BENCH_PASS", "one-cpu")
        .env("WA_BENCH_DIR", root)
        .stderr(std::process::Stdio::inherit())
        .output();
    match out {
        Ok(out) if out.status.success() => print!("{}", String::from_utf8_lossy(&out.stdout)),
        Ok(out) => println!("(the one-CPU pass failed: {})", out.status),
        Err(e) => println!("(the one-CPU pass needs `taskset` (util-linux): {e})"),
    }
}

fn main() {
    if let Ok(slug) = std::env::var("WA_BENCH_CHILD") {
        rss::run_child(&slug);
        return;
    }
    if let Ok(spec) = std::env::var("WA_BENCH_FLEET") {
        fleet::child(&spec);
        return;
    }
    let started = Instant::now();
    let parent = std::env::var_os("WA_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    std::fs::create_dir_all(&parent).expect("create bench parent dir");
    let tmp = tempfile::Builder::new()
        .prefix("wa-bench-compare-")
        .tempdir_in(&parent)
        .expect("temp dir");
    let opts = options(tmp.path().to_path_buf());
    if std::env::var("WA_BENCH_PASS").is_ok_and(|p| p == "one-cpu") {
        suite::run(&opts, Pass::OneCpu);
        return;
    }
    eprintln!(
        "compare: scale {}, running in {}",
        opts.scale.0,
        opts.root.display()
    );
    println!("## RedbStore vs SqliteStore (compat/benches/compare)\n");
    println!("{}", machine_line(&opts.root));
    println!("Source: {}", git_describe());
    println!(
        "Scale {}, {} rounds; RedbStore Normal = `RedbStoreConfig::default()`, Full = `.with_synchronous(Synchronous::Full)`; SqliteStore default = `SqliteStoreConfig::default()` (synchronous NORMAL, WAL), FULL = `synchronous: Synchronous::Full`. Multi-thread tokio runtime with its default worker count. Ratio = SQLite time / redb time (> 1 means RedbStore is faster).\n",
        opts.scale.0, opts.rounds
    );
    if section("cpus") {
        println!(
            "### Every CPU ({})\n",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        suite::run(&opts, Pass::AllCpus);
    }
    if section("one-cpu") {
        println!("\n### One CPU (`taskset -c 0`, a runtime with one worker)\n");
        one_cpu_pass(&opts.root);
    }
    if section("fleet") {
        println!(
            "\n### Fleets: many accounts in one process (defaults: RedbStore Normal, SqliteStore default)\n"
        );
        fleet::run(&opts.root);
    }
    if section("rss") {
        rss::run(&opts);
    }
    println!(
        "\nTotal run time: {:.1} s. Load at end: {}",
        started.elapsed().as_secs_f64(),
        load_line()
    );
}
