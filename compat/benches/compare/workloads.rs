//! The per-store workloads: the call shapes of store-contract.md §5.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::traits::{Backend, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry};

use crate::data::*;
use crate::measure::*;
use crate::stores::{Kind, Store};

/// Workload 1a: Awaited single `put_session` of distinct ~1.2 KB records.
pub(crate) async fn w_put_session(store: &Store, blobs: &Blobs, sc: Scale) -> Outcome {
    let b = store.b();
    for i in 0..sc.n(100) as u64 {
        b.put_session(&session_address(9, i), blobs.session(i as usize))
            .await
            .unwrap();
    }
    let n = sc.n(3000);
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let addr = session_address(1, i);
        let t = Instant::now();
        b.put_session(&addr, blobs.session(i as usize))
            .await
            .unwrap();
        samples.push(t.elapsed());
    }
    trace_buckets("put_session", &samples);
    let total: Duration = samples.iter().sum();
    Outcome {
        values: vec![micros(total) / n as f64],
        latency: Some(percentiles(&mut samples)),
    }
}

/// With `WA_BENCH_TRACE` set, prints the mean latency of consecutive tenths
/// of the run to stderr (to see drift over a run).
pub(crate) fn trace_buckets(what: &str, samples: &[Duration]) {
    if std::env::var_os("WA_BENCH_TRACE").is_none() || samples.len() < 10 {
        return;
    }
    let means: Vec<String> = samples
        .chunks(samples.len() / 10)
        .map(|c| format!("{:.0}", micros(c.iter().sum::<Duration>()) / c.len() as f64))
        .collect();
    eprintln!(
        "    {what} mean µs per tenth of the run: {}",
        means.join(" ")
    );
}

/// Workload 1b: `store_sent_message` + `take_sent_message` pairs.
pub(crate) async fn w_sent_pairs(store: &Store, blobs: &Blobs, sc: Scale) -> Outcome {
    let b = store.b();
    let chat = "5511987650001@s.whatsapp.net";
    let mut rng = Rng::new(0x5e47);
    for i in 0..sc.n(50) {
        let id = format!("3EB0{:016X}", rng.next_u64());
        b.store_sent_message(chat, &id, &blobs.payloads[i % 64])
            .await
            .unwrap();
        b.take_sent_message(chat, &id).await.unwrap();
    }
    let n = sc.n(1500);
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("3EB0{:016X}", rng.next_u64());
        let payload = &blobs.payloads[i % 64];
        let t = Instant::now();
        b.store_sent_message(chat, &id, payload).await.unwrap();
        let got = b.take_sent_message(chat, &id).await.unwrap();
        samples.push(t.elapsed());
        assert_eq!(got.as_deref(), Some(payload.as_slice()));
    }
    let total: Duration = samples.iter().sum();
    Outcome {
        values: vec![micros(total) / n as f64],
        latency: Some(percentiles(&mut samples)),
    }
}

/// `n` random mutation MACs and their index MACs (the lookup keys).
pub(crate) fn random_macs(rng: &mut Rng, n: usize) -> (Vec<AppStateMutationMAC>, Vec<[u8; 32]>) {
    let macs: Vec<AppStateMutationMAC> = (0..n)
        .map(|_| AppStateMutationMAC {
            index_mac: rng.arr32().to_vec(),
            value_mac: rng.arr32().to_vec(),
        })
        .collect();
    let keys = macs
        .iter()
        .map(|m| m.index_mac.as_slice().try_into().unwrap())
        .collect();
    (macs, keys)
}

pub(crate) type Batch = Vec<(Arc<str>, Bytes)>;
pub(crate) type IdentityBatch = Vec<(Arc<str>, [u8; 32])>;

/// The three batches of one `SignalStoreCache::flush`: 32 sessions, 8
/// identities, 4 sender keys, drawn from a pool of contacts (upserts).
pub(crate) fn flush_batches(k: u64, blobs: &Blobs, rng: &mut Rng) -> (Batch, IdentityBatch, Batch) {
    const POOL: u64 = 2000;
    let sessions = (0..32)
        .map(|j| {
            let i = (k * 32 + j) % POOL;
            (
                Arc::from(session_address(2, i)),
                blobs.session((k * 32 + j) as usize).clone(),
            )
        })
        .collect();
    let identities = (0..8)
        .map(|j| {
            (
                Arc::from(session_address(2, (k * 8 + j) % POOL)),
                rng.arr32(),
            )
        })
        .collect();
    let sender_keys = (0..4)
        .map(|j| {
            let i = (k * 4 + j) % 400;
            (
                Arc::from(sender_key_name(i)),
                blobs.sender_keys[((k * 4 + j) % 64) as usize].clone(),
            )
        })
        .collect();
    (sessions, identities, sender_keys)
}

/// Workload 2: Signal-cache flush: `put_sessions_batch(32)`,
/// `put_identities_batch(8)` and `put_sender_keys_batch(4)`.
pub(crate) async fn w_flush(store: &Store, blobs: &Blobs, sc: Scale) -> Outcome {
    let b = store.b();
    let mut rng = Rng::new(0xf105);
    let warm = sc.n(20) as u64;
    let n = sc.n(800) as u64;
    let mut samples = Vec::with_capacity(n as usize);
    for k in 0..warm + n {
        let (s, i, sk) = flush_batches(k, blobs, &mut rng);
        let t = Instant::now();
        b.put_sessions_batch(&s).await.unwrap();
        b.put_identities_batch(&i).await.unwrap();
        b.put_sender_keys_batch(&sk).await.unwrap();
        if k >= warm {
            samples.push(t.elapsed());
        }
    }
    let total: Duration = samples.iter().sum();
    Outcome {
        values: vec![micros(total) / n as f64],
        latency: Some(percentiles(&mut samples)),
    }
}

/// Workload 3: App-state snapshot: `put_mutation_macs` of 5,000 MACs, then
/// `get_mutation_macs` of all of them in batches of 250. Each repetition
/// uses a fresh collection; values are means per repetition.
pub(crate) async fn w_appstate(store: &Store, sc: Scale) -> Outcome {
    const NAMES: [&str; 5] = [
        "regular",
        "regular_low",
        "regular_high",
        "critical_block",
        "critical_unblock_low",
    ];
    let b = store.b();
    let mut rng = Rng::new(0xa995);
    // Warm-up on a collection of its own.
    let (warm, keys) = random_macs(&mut rng, 250);
    b.put_mutation_macs("warmup", 1, &warm).await.unwrap();
    b.get_mutation_macs("warmup", &keys).await.unwrap();

    let reps = sc.n(3).min(NAMES.len() * 4);
    let (mut put, mut get) = (Duration::ZERO, Duration::ZERO);
    for r in 0..reps {
        let name = format!("{}{}", NAMES[r % NAMES.len()], r / NAMES.len());
        let (macs, keys) = random_macs(&mut rng, 5000);
        let t = Instant::now();
        b.put_mutation_macs(&name, 10 + r as u64, &macs)
            .await
            .unwrap();
        put += t.elapsed();
        let mut found = 0;
        let t = Instant::now();
        for chunk in keys.chunks(250) {
            let got: HashMap<[u8; 32], Vec<u8>> = b.get_mutation_macs(&name, chunk).await.unwrap();
            found += got.len();
        }
        get += t.elapsed();
        assert_eq!(found, 5000);
    }
    Outcome {
        values: vec![millis(put) / reps as f64, millis(get) / reps as f64],
        latency: None,
    }
}

/// Workload 4: usync: `update_device_lists` of 1,024 records (the first call
/// inserts, later ones overwrite with new timestamps).
pub(crate) async fn w_usync(store: &Store, sc: Scale) -> Outcome {
    let b = store.b();
    let mut rng = Rng::new(0x05c);
    let warm: Vec<DeviceListRecord> = (0..64)
        .map(|i| device_list_record(&mut rng, 1_000_000 + i, 1))
        .collect();
    b.update_device_lists(warm).await.unwrap();
    let reps = sc.n(6);
    let now = now_secs();
    let mut total = Duration::ZERO;
    for r in 0..reps {
        let records: Vec<DeviceListRecord> = (0..1024)
            .map(|i| device_list_record(&mut rng, i, now + r as i64))
            .collect();
        let t = Instant::now();
        b.update_device_lists(records).await.unwrap();
        total += t.elapsed();
    }
    assert!(b.get_devices("5511100000000").await.unwrap().is_some());
    Outcome {
        values: vec![millis(total) / reps as f64],
        latency: None,
    }
}

/// Workload 5: History sync: `put_msg_secrets` of 4,096 new entries.
pub(crate) async fn w_msg_secrets(store: &Store, sc: Scale) -> Outcome {
    let b = store.b();
    let mut rng = Rng::new(0x5ec);
    let now = now_secs();
    let warm: Vec<MsgSecretEntry> = (0..256)
        .map(|i| msg_secret_entry(&mut rng, 1_000_000 + i, now))
        .collect();
    b.put_msg_secrets(warm).await.unwrap();
    let reps = sc.n(6);
    let mut total = Duration::ZERO;
    for r in 0..reps {
        let entries: Vec<MsgSecretEntry> = (0..4096)
            .map(|i| msg_secret_entry(&mut rng, r as u64 * 4096 + i, now))
            .collect();
        let t = Instant::now();
        let n = b.put_msg_secrets(entries).await.unwrap();
        total += t.elapsed();
        assert_eq!(n, 4096);
    }
    Outcome {
        values: vec![millis(total) / reps as f64],
        latency: None,
    }
}

/// Stores `n` sessions (addresses `session_address(3, i)`) in batches of
/// 250, as the signal cache's flushes would.
pub(crate) async fn put_sessions(b: &dyn Backend, blobs: &Blobs, n: u64) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(250) {
        let batch: Batch = chunk
            .iter()
            .map(|&i| {
                (
                    Arc::from(session_address(3, i)),
                    blobs.session(i as usize).clone(),
                )
            })
            .collect();
        b.put_sessions_batch(&batch).await.unwrap();
    }
}

/// Workload 6: Random `get_session` over 5,000 stored sessions (6 MB of
/// sessions: more than the default 6 MiB page cache holds, so most reads
/// come from the OS).
pub(crate) async fn w_reads(store: &Store, blobs: &Blobs, sc: Scale) -> Outcome {
    random_reads(store, blobs, sc, 5000, false).await
}

/// Workload 6b: Random `get_session` over 500 stored sessions, all of them
/// read once before the timing: every timed read is served by the store's
/// page cache (redb's, or SQLite's), the reads a running client repeats.
pub(crate) async fn w_cached_reads(store: &Store, blobs: &Blobs, sc: Scale) -> Outcome {
    random_reads(store, blobs, sc, 500, true).await
}

/// Random `get_session` over `n_stored` sessions, after a warm-up of random
/// reads, preceded by one read of each session if `read_each_first`.
async fn random_reads(
    store: &Store,
    blobs: &Blobs,
    sc: Scale,
    n_stored: u64,
    read_each_first: bool,
) -> Outcome {
    let b = store.b();
    put_sessions(b, blobs, n_stored).await;
    if read_each_first {
        for i in 0..n_stored {
            b.get_session(&session_address(3, i)).await.unwrap();
        }
    }
    let mut rng = Rng::new(0x4ead);
    for _ in 0..sc.n(1000) {
        b.get_session(&session_address(3, rng.below(n_stored)))
            .await
            .unwrap();
    }
    let n = sc.n(30_000);
    let addrs: Vec<String> = (0..n)
        .map(|_| session_address(3, rng.below(n_stored)))
        .collect();
    let mut samples = Vec::with_capacity(n);
    for addr in &addrs {
        let t = Instant::now();
        let got = b.get_session(addr).await.unwrap();
        samples.push(t.elapsed());
        assert_eq!(got.map(|g| g.len()), Some(SESSION_LEN));
    }
    let total: Duration = samples.iter().sum();
    Outcome {
        values: vec![micros(total) / n as f64],
        latency: Some(percentiles(&mut samples)),
    }
}

/// One round of 32 tasks, each doing `per_task` awaited `put_session`s on
/// its own addresses. Returns (wall time, per-op latencies).
pub(crate) async fn concurrent_round(
    store: &Store,
    blobs: &Arc<Blobs>,
    space: u64,
    per_task: usize,
) -> (Duration, Vec<Duration>) {
    const TASKS: usize = 32;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS + 1));
    let mut handles = Vec::with_capacity(TASKS);
    for task in 0..TASKS {
        let b = store.arc();
        let blobs = blobs.clone();
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            let addrs: Vec<String> = (0..per_task as u64)
                .map(|i| session_address(space, task as u64 * 1_000_000 + i))
                .collect();
            let mut samples = Vec::with_capacity(per_task);
            barrier.wait().await;
            for (i, addr) in addrs.iter().enumerate() {
                let t = Instant::now();
                b.put_session(addr, blobs.session(task * 7 + i))
                    .await
                    .unwrap();
                samples.push(t.elapsed());
            }
            samples
        }));
    }
    barrier.wait().await;
    let t = Instant::now();
    let mut samples = Vec::with_capacity(TASKS * per_task);
    for h in handles {
        samples.extend(h.await.unwrap());
    }
    (t.elapsed(), samples)
}

/// Workload 7: 32 concurrent tasks, each awaiting `put_session` in a loop.
pub(crate) async fn w_concurrent(store: &Store, blobs: &Arc<Blobs>, sc: Scale) -> Outcome {
    concurrent_round(store, blobs, 5, sc.n(5)).await;
    let per_task = sc.n(150);
    let probe = StallProbe::start();
    let (wall, mut samples) = concurrent_round(store, blobs, 4, per_task).await;
    let stall = probe.stop().await;
    let ops = (32 * per_task) as f64;
    Outcome {
        values: vec![micros(wall) / ops, ops / wall.as_secs_f64(), micros(stall)],
        latency: Some(percentiles(&mut samples)),
    }
}

/// Measures how long the runtime leaves a ready task waiting: an OS thread
/// wakes a task every 200 µs and the task notes how late it got to run. On
/// a runtime thread held by other work (a store committing inline, say) the
/// task waits for as long as that work runs.
pub(crate) struct StallProbe {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Duration>,
}

impl StallProbe {
    pub(crate) fn start() -> StallProbe {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
        let stopping = stop.clone();
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_micros(200));
                if tx.send(Instant::now()).is_err() {
                    break;
                }
            }
        });
        let task = tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            while let Some(sent) = rx.recv().await {
                worst = worst.max(sent.elapsed());
            }
            worst
        });
        StallProbe { stop, task }
    }

    /// The longest wait seen.
    pub(crate) async fn stop(self) -> Duration {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.expect("stall probe")
    }
}

pub(crate) const LID_COUNT: u64 = 50_000;

/// Workload 8: Cold start: a file with 50,000 LID mappings is closed; then time
/// reopen + `get_all_lid_mappings` (median of the repetitions). The store
/// is left closed.
pub(crate) async fn w_cold_start(
    kind: Kind,
    dir: &Path,
    sc: Scale,
) -> (Outcome, (u64, u64), String) {
    let store = Store::open_fresh(kind, dir).await;
    let now = now_secs();
    for start in (0..LID_COUNT).step_by(1000) {
        let chunk: Vec<LidPnMappingEntry> =
            (start..start + 1000).map(|i| lid_entry(i, now)).collect();
        store.b().put_lid_mappings(&chunk).await.unwrap();
    }
    let live = dir_size(dir);
    let listing = dir_listing(dir);
    store.close().await;
    let reps = sc.n(5).max(3);
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        let store = Store::open(kind, dir).await;
        let all = store.b().get_all_lid_mappings().await.unwrap();
        times.push(t.elapsed());
        assert_eq!(all.len() as u64, LID_COUNT);
        drop(all);
        store.close().await;
    }
    times.sort_unstable();
    (
        Outcome {
            values: vec![millis(times[times.len() / 2])],
            latency: None,
        },
        live,
        listing,
    )
}

/// Workload 8b: a store holding an account (200 sessions, 1,000 LID
/// mappings); each repetition writes 20 sessions, then times the drop of
/// the store, an open of the file and the first read (median).
pub(crate) async fn w_reopen(kind: Kind, dir: &Path, blobs: &Blobs, sc: Scale) -> Outcome {
    let mut store = Store::open_fresh(kind, dir).await;
    let now = now_secs();
    let chunk: Vec<LidPnMappingEntry> = (0..1000).map(|i| lid_entry(i, now)).collect();
    store.b().put_lid_mappings(&chunk).await.unwrap();
    for i in 0..200usize {
        let addr = format!("5511{i:09}:0@c.us.0");
        store
            .b()
            .put_session(&addr, blobs.session(i))
            .await
            .unwrap();
    }
    let reps = sc.n(40).max(5);
    let mut times = Vec::with_capacity(reps);
    for rep in 0..reps {
        for i in 0..20usize {
            let addr = format!("5511{:09}:0@c.us.0", (rep * 20 + i) % 200);
            store
                .b()
                .put_session(&addr, blobs.session(rep + i))
                .await
                .unwrap();
        }
        let t = Instant::now();
        store.close().await;
        store = Store::open(kind, dir).await;
        let first = store
            .b()
            .get_session("5511000000007:0@c.us.0")
            .await
            .unwrap();
        times.push(t.elapsed());
        assert!(first.is_some());
    }
    store.close().await;
    times.sort_unstable();
    Outcome {
        values: vec![millis(times[times.len() / 2])],
        latency: None,
    }
}
