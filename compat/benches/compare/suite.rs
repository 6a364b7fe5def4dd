//! The per-store workloads: each on the four stores, on fresh files, in
//! rotating order, for some rounds; then their tables (medians, ratios
//! against the targets, spread, latency, file sizes).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::data::Blobs;
use crate::measure::*;
use crate::report::*;
use crate::signal::w_signal;
use crate::stores::{KINDS, Kind, Store};
use crate::workloads::*;

/// What a run measures and where.
pub(crate) struct Options {
    pub(crate) scale: Scale,
    pub(crate) rounds: usize,
    pub(crate) only: Option<Vec<String>>,
    pub(crate) stores: Vec<Kind>,
    pub(crate) root: PathBuf,
}

impl Options {
    pub(crate) fn runs(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|n| n == name))
    }
}

/// All CPUs of the machine, or one (the process pinned to CPU 0).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pass {
    AllCpus,
    OneCpu,
}

/// (name, rows, latency label), with the targets of `pass`. Targets are
/// the write-path issue's: Normal vs SQLite default, Full vs SQLite FULL.
fn workloads(pass: Pass) -> Vec<Workload> {
    let one = pass == Pass::OneCpu;
    // On one CPU every write workload and the Signal traffic must be 1.5×;
    // reads and the cold start have no one-CPU target.
    let w = |two_cores: f64| Some(if one { 1.5 } else { two_cores });
    let r = |two_cores: f64| if one { None } else { Some(two_cores) };
    let full = Some(1.0);
    let wl = |name, rows, latency_label| Workload {
        name,
        rows,
        latency_label,
    };
    vec![
        wl(
            "put_session",
            vec![(
                "1a. awaited `put_session` (1.2 KB, distinct addresses)",
                "µs/op",
                true,
                w(2.5),
                full,
            )],
            Some("1a. put_session"),
        ),
        wl(
            "sent_pair",
            vec![(
                "1b. `store_sent_message` + `take_sent_message`",
                "µs/pair",
                true,
                w(4.0),
                full,
            )],
            Some("1b. sent pair"),
        ),
        wl(
            "flush",
            vec![(
                "2. signal flush: sessions 32 + identities 8 + sender keys 4",
                "µs/flush",
                true,
                w(3.0),
                full,
            )],
            Some("2. signal flush"),
        ),
        wl(
            "appstate",
            vec![
                (
                    "3a. `put_mutation_macs` 5,000 MACs",
                    "ms",
                    true,
                    w(2.0),
                    full,
                ),
                (
                    "3b. `get_mutation_macs` 5,000 in 20 × 250",
                    "ms total",
                    true,
                    r(2.0),
                    None,
                ),
            ],
            None,
        ),
        wl(
            "usync",
            vec![(
                "4. `update_device_lists` 1,024 records",
                "ms/call",
                true,
                w(3.0),
                full,
            )],
            None,
        ),
        wl(
            "msg_secrets",
            vec![(
                "5. `put_msg_secrets` 4,096 entries",
                "ms/call",
                true,
                w(2.5),
                full,
            )],
            None,
        ),
        wl(
            "reads",
            vec![(
                "6. random `get_session` (5,000 stored)",
                "µs/read",
                true,
                r(10.0),
                None,
            )],
            Some("6. get_session"),
        ),
        wl(
            "cached_reads",
            vec![(
                "6b. random `get_session` (500 stored, all in the page cache)",
                "µs/read",
                true,
                None,
                None,
            )],
            Some("6b. cached get_session"),
        ),
        wl(
            "concurrent",
            vec![
                (
                    "7. 32 tasks × awaited `put_session`",
                    "µs/op (aggregate)",
                    true,
                    w(5.0),
                    Some(3.0),
                ),
                ("7. same, throughput", "ops/s", false, None, None),
                (
                    "7. same, longest wait of a ready task (woken every 200 µs)",
                    "µs",
                    true,
                    None,
                    None,
                ),
            ],
            Some("7. concurrent put_session (per op)"),
        ),
        wl(
            "cold_start",
            vec![(
                "8. cold start: reopen + `get_all_lid_mappings` (50,000)",
                "ms (median)",
                true,
                r(1.0),
                full,
            )],
            None,
        ),
        wl(
            "reopen",
            vec![(
                "8b. reopen: 20 writes, drop, open again, first read",
                "ms (median)",
                true,
                Some(2.0),
                full,
            )],
            None,
        ),
        wl(
            "signal",
            vec![
                (
                    "9. real Signal traffic with reopens (SignalStoreCache, flush per message)",
                    "µs/msg (reopens included)",
                    true,
                    Some(if one { 2.0 } else { 2.5 }),
                    full,
                ),
                ("9. same, messages only", "µs/msg", true, None, None),
                (
                    "9. same, reopen of both stores (median)",
                    "ms",
                    true,
                    None,
                    None,
                ),
            ],
            None,
        ),
    ]
}

/// Runs one workload on one store in `dir`.
async fn run_one(
    name: &str,
    kind: Kind,
    dir: &std::path::Path,
    blobs: &Arc<Blobs>,
    sc: Scale,
    size: &mut SizeRecord,
    ki: usize,
) -> Outcome {
    match name {
        "cold_start" => {
            let (o, live, listing) = w_cold_start(kind, dir, sc).await;
            size.live[ki] = live;
            size.listing_live[ki] = listing;
            return o;
        }
        "signal" => return w_signal(kind, dir, sc).await,
        "reopen" => return w_reopen(kind, dir, blobs, sc).await,
        _ => {}
    }
    let store = Store::open_fresh(kind, dir).await;
    let o = match name {
        "put_session" => w_put_session(&store, blobs, sc).await,
        "sent_pair" => w_sent_pairs(&store, blobs, sc).await,
        "flush" => w_flush(&store, blobs, sc).await,
        "appstate" => w_appstate(&store, sc).await,
        "usync" => w_usync(&store, sc).await,
        "msg_secrets" => w_msg_secrets(&store, sc).await,
        "reads" => w_reads(&store, blobs, sc).await,
        "cached_reads" => w_cached_reads(&store, blobs, sc).await,
        "concurrent" => w_concurrent(&store, blobs, sc).await,
        other => unreachable!("{other}"),
    };
    size.live[ki] = dir_size(dir);
    size.listing_live[ki] = dir_listing(dir);
    store.close().await;
    o
}

/// Runs every selected workload and prints its tables.
pub(crate) fn run(opts: &Options, pass: Pass) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let blobs = Arc::new(Blobs::new(0xb10b));
    let mut rows: Vec<Row> = Vec::new();
    let mut latencies: Vec<(&'static str, [(f64, f64); 4])> = Vec::new();
    let mut sizes: Vec<(&'static str, SizeRecord)> = Vec::new();
    for w in workloads(pass).iter().filter(|w| opts.runs(w.name)) {
        // outcomes[kind][round]
        let mut outcomes: Vec<Vec<Outcome>> = (0..4).map(|_| Vec::new()).collect();
        let mut size = SizeRecord::default();
        for round in 0..opts.rounds {
            // Rotate the store order each round so no store always runs
            // first (or right after the same neighbour).
            for step in 0..4 {
                let ki = (step + round) % 4;
                let kind = KINDS[ki];
                if !opts.stores.contains(&kind) {
                    outcomes[ki].push(Outcome {
                        values: vec![f64::NAN; w.rows.len()],
                        latency: None,
                    });
                    continue;
                }
                let dir = opts
                    .root
                    .join(format!("{}-{}-{round}", w.name, kind.slug()));
                std::fs::create_dir_all(&dir).unwrap();
                let t = Instant::now();
                let outcome = rt.block_on(run_one(
                    w.name, kind, &dir, &blobs, opts.scale, &mut size, ki,
                ));
                size.closed[ki] = dir_size(&dir);
                eprintln!(
                    "  {:<12} r{round} {:<20} {:>7.2}s  {:?}",
                    w.name,
                    kind.label(),
                    t.elapsed().as_secs_f64(),
                    outcome.values
                );
                let _ = std::fs::remove_dir_all(&dir);
                outcomes[ki].push(outcome);
            }
        }
        rows.extend(summarize(w, &outcomes));
        if let Some(label) = w.latency_label {
            latencies.push((label, latency_medians(&outcomes)));
        }
        sizes.push((w.name, size));
    }
    drop(rt);
    print_tables(opts, &rows, &latencies, &sizes);
    if opts.runs("put_session") {
        println!(
            "\nThe fdatasync floor on this disk (a 256-byte write into a preallocated file, then `fdatasync`, median of 500): {:.1} µs. An awaited `Full` write cannot be faster.",
            fsync_floor(&opts.root)
        );
    }
}

/// µs per write + fdatasync of a small record into a preallocated file:
/// what one durable commit costs at least on this disk.
fn fsync_floor(root: &std::path::Path) -> f64 {
    use std::os::unix::fs::FileExt;
    let path = root.join("fsync-floor");
    let file = std::fs::File::create(&path).expect("floor file");
    file.write_all_at(&vec![0u8; 1 << 20], 0).unwrap();
    file.sync_all().unwrap();
    let mut samples: Vec<f64> = (0..500u64)
        .map(|i| {
            let t = Instant::now();
            file.write_all_at(&[i as u8; 256], (i * 256) % (1 << 20))
                .unwrap();
            file.sync_data().unwrap();
            micros(t.elapsed())
        })
        .collect();
    let _ = std::fs::remove_file(&path);
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn print_tables(
    opts: &Options,
    rows: &[Row],
    latencies: &[(&'static str, [(f64, f64); 4])],
    sizes: &[(&'static str, SizeRecord)],
) {
    print_ratio_table(rows);
    println!(
        "\nValues are medians of {} rounds (each round: a fresh store per workload, store order rotated). Run-to-run spread (max/min over rounds):\n",
        opts.rounds
    );
    print_store_header("", "");
    for r in rows {
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            r.name, r.spread[0], r.spread[1], r.spread[2], r.spread[3]
        );
    }
    println!("\n#### Per-op latency, p50 / p99 (µs), medians over rounds\n");
    print_store_header("", "");
    for (label, l) in latencies {
        let cell = |(p50, p99): (f64, f64)| format!("{} / {}", fmt_val(p50), fmt_val(p99));
        println!(
            "| {label} | {} | {} | {} | {} |",
            cell(l[0]),
            cell(l[1]),
            cell(l[2]),
            cell(l[3])
        );
    }
    print_size_table(sizes);
}
