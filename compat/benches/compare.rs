//! RedbStore vs SqliteStore on client-shaped workloads.
//!
//! Runs every workload on four stores, each on fresh files in a temporary
//! directory on the repository's disk: RedbStore with the default
//! (`Synchronous::Normal`) and `Synchronous::Full`, SqliteStore with its
//! default (`synchronous = NORMAL`) and with `synchronous = FULL`. Prints
//! markdown tables to stdout.
//!
//! ```text
//! cargo bench --bench compare
//! WA_BENCH_SCALE=0.2 cargo bench --bench compare   # quicker, noisier
//! WA_BENCH_DIR=/some/dir cargo bench --bench compare
//! ```
//!
//! Environment:
//! - `WA_BENCH_SCALE` (default 1.0): multiplies every iteration count.
//! - `WA_BENCH_ROUNDS` (default 3): rounds per workload; tables show the
//!   median over rounds.
//! - `WA_BENCH_ONLY`: comma-separated workload names to run (`put_session`,
//!   `sent_pair`, `flush`, `appstate`, `usync`, `msg_secrets`, `reads`,
//!   `concurrent`, `cold_start`); the RSS children always run.
//! - `WA_BENCH_STORES`: comma-separated subset of `redb`, `redb-full`,
//!   `sqlite`, `sqlite-full` (for profiling; other columns show NaN).
//! - `WA_BENCH_RSS=0`: skip the peak-RSS child processes.
//! - `WA_BENCH_TRACE`: print the mean latency per tenth of the
//!   `put_session` run to stderr (drift over a run).
//! - `WA_BENCH_DIR`: parent of the temporary directory (default
//!   `<crate>/target`, i.e. the repository's disk, not tmpfs).
//! - `WA_BENCH_CHILD` (internal): the bench re-executes itself with this set
//!   to measure the peak RSS of one store in a fresh process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::traits::{
    Backend, DeviceInfo, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry,
};
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig, Synchronous};
use whatsapp_rust_sqlite_storage::{
    SqliteStore, SqliteStoreConfig, Synchronous as SqliteSynchronous,
};

// ---------------------------------------------------------------------------
// Stores
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    RedbNormal,
    RedbFull,
    SqliteNormal,
    SqliteFull,
}

/// Column order of every table.
const KINDS: [Kind; 4] = [
    Kind::RedbNormal,
    Kind::RedbFull,
    Kind::SqliteNormal,
    Kind::SqliteFull,
];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::RedbNormal => "RedbStore Normal",
            Kind::RedbFull => "RedbStore Full",
            Kind::SqliteNormal => "SqliteStore default",
            Kind::SqliteFull => "SqliteStore FULL",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Kind::RedbNormal => "redb",
            Kind::RedbFull => "redb-full",
            Kind::SqliteNormal => "sqlite",
            Kind::SqliteFull => "sqlite-full",
        }
    }

    fn from_slug(s: &str) -> Option<Kind> {
        KINDS.into_iter().find(|k| k.slug() == s)
    }

    fn file_name(self) -> &'static str {
        match self {
            Kind::RedbNormal | Kind::RedbFull => "store.redb",
            Kind::SqliteNormal | Kind::SqliteFull => "store.db",
        }
    }
}

enum Store {
    Redb(RedbStore),
    Sqlite(SqliteStore),
}

impl Store {
    async fn open(kind: Kind, dir: &Path) -> Store {
        let path = dir.join(kind.file_name());
        match kind {
            Kind::RedbNormal => Store::Redb(
                RedbStore::with_config(&path, RedbStoreConfig::default())
                    .await
                    .expect("open RedbStore"),
            ),
            Kind::RedbFull => Store::Redb(
                RedbStore::with_config(
                    &path,
                    RedbStoreConfig::default().with_synchronous(Synchronous::Full),
                )
                .await
                .expect("open RedbStore"),
            ),
            Kind::SqliteNormal | Kind::SqliteFull => {
                let config = SqliteStoreConfig {
                    synchronous: if kind == Kind::SqliteFull {
                        SqliteSynchronous::Full
                    } else {
                        SqliteSynchronous::Normal
                    },
                    ..Default::default()
                };
                let url = path.to_str().expect("utf-8 temp path");
                Store::Sqlite(
                    SqliteStore::with_config(url, config)
                        .await
                        .expect("open SqliteStore"),
                )
            }
        }
    }

    /// Opens a fresh store and writes its device row (the client always has
    /// one; SqliteStore's LID table has a foreign key on it).
    async fn open_fresh(kind: Kind, dir: &Path) -> Store {
        let store = Store::open(kind, dir).await;
        store.b().create().await.expect("create device");
        store
    }

    fn b(&self) -> &dyn Backend {
        match self {
            Store::Redb(s) => s,
            Store::Sqlite(s) => s,
        }
    }

    /// An owned handle, as the client holds it (`Arc<dyn Backend>`).
    fn arc(&self) -> Arc<dyn Backend> {
        match self {
            Store::Redb(s) => Arc::new(s.clone()),
            Store::Sqlite(s) => Arc::new(s.clone()),
        }
    }

    /// Closes the store: RedbStore checkpoints and removes its journal;
    /// SqliteStore closes its connection (checkpointing the WAL) on drop.
    async fn close(self) {
        match self {
            Store::Redb(s) => s.close().await.expect("close RedbStore"),
            Store::Sqlite(s) => drop(s),
        }
    }
}

// ---------------------------------------------------------------------------
// Deterministic data
// ---------------------------------------------------------------------------

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }

    fn arr32(&mut self) -> [u8; 32] {
        let mut a = [0u8; 32];
        self.fill(&mut a);
        a
    }
}

const SESSION_LEN: usize = 1200;
const SENDER_KEY_LEN: usize = 600;
const SENT_PAYLOAD_LEN: usize = 320;

/// Blobs reused across writes (content does not matter to either engine,
/// but every blob is incompressible).
struct Blobs {
    sessions: Vec<Bytes>,
    sender_keys: Vec<Bytes>,
    payloads: Vec<Vec<u8>>,
}

impl Blobs {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        Blobs {
            sessions: (0..256)
                .map(|_| Bytes::from(rng.bytes(SESSION_LEN)))
                .collect(),
            sender_keys: (0..64)
                .map(|_| Bytes::from(rng.bytes(SENDER_KEY_LEN)))
                .collect(),
            payloads: (0..64).map(|_| rng.bytes(SENT_PAYLOAD_LEN)).collect(),
        }
    }

    fn session(&self, i: usize) -> &Bytes {
        &self.sessions[i % self.sessions.len()]
    }
}

/// A Signal address as the client renders it: `"{user}:{device}@c.us.0"`.
fn session_address(space: u64, i: u64) -> String {
    format!("55119{:08}:{}@c.us.0", space * 10_000_000 + i / 8, i % 8)
}

fn sender_key_name(i: u64) -> String {
    format!("1203630{:011}@g.us:5511987650001:{}@c.us.0", i / 4, i % 4)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn device_list_record(rng: &mut Rng, i: u64, ts: i64) -> DeviceListRecord {
    let n = 1 + rng.below(4) as u32;
    let mut devices = vec![DeviceInfo::new(0, None)];
    for d in 1..n {
        devices.push(DeviceInfo::new(d, Some(d + rng.below(8) as u32)));
    }
    DeviceListRecord {
        user: format!("5511{:09}", 100_000_000 + i),
        devices,
        timestamp: ts,
        phash: Some(format!("2:{:08x}", rng.next_u64() as u32)),
        raw_id: Some(rng.next_u64() as u32),
    }
}

fn msg_secret_entry(rng: &mut Rng, i: u64, now: i64) -> MsgSecretEntry {
    let chat: Arc<str> = Arc::from(format!("5511{:09}@s.whatsapp.net", 200_000_000 + i / 64));
    let sender = if i.is_multiple_of(2) {
        chat.clone()
    } else {
        Arc::from("5511987650001@s.whatsapp.net")
    };
    MsgSecretEntry {
        chat,
        sender,
        msg_id: Arc::from(format!("3EB0{:016X}{:04X}", rng.next_u64(), i & 0xffff)),
        secret: rng.arr32(),
        expires_at: now + 30 * 86_400,
        message_ts: now - (i as i64),
    }
}

fn lid_entry(i: u64, now: i64) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: format!("1{:014}", 10_000_000_000_000 + i * 7),
        phone_number: format!("5511{:09}", 300_000_000 + i),
        created_at: now - 86_400,
        updated_at: now,
        learning_source: "usync".to_string(),
    }
}

// ---------------------------------------------------------------------------
// Measurement plumbing
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Scale(f64);

impl Scale {
    fn from_env() -> Scale {
        let s = std::env::var("WA_BENCH_SCALE")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| *v > 0.0)
            .unwrap_or(1.0);
        Scale(s)
    }

    fn n(self, base: usize) -> usize {
        ((base as f64 * self.0).round() as usize).max(1)
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// (p50, p99) in µs.
fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    samples.sort_unstable();
    let p = |q: usize| micros(samples[(samples.len() * q / 100).min(samples.len() - 1)]);
    (p(50), p(99))
}

/// What one workload on one store produced.
#[derive(Default)]
struct Outcome {
    /// Primary values, one per result row of the workload.
    values: Vec<f64>,
    /// Per-op latency (p50, p99) in µs, for single-op workloads.
    latency: Option<(f64, f64)>,
}

/// Total bytes of every file in `dir`: apparent size and allocated size.
fn dir_size(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if let Ok(m) = e.metadata()
                && m.is_file()
            {
                apparent += m.len();
                allocated += m.blocks() * 512;
            }
        }
    }
    (apparent, allocated)
}

fn dir_listing(dir: &Path) -> String {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let len = e.metadata().ok()?.len();
                    Some(format!(
                        "{}={}",
                        e.file_name().to_string_lossy(),
                        fmt_bytes(len)
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.join(", ")
}

fn fmt_bytes(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.2} MiB", b as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", b as f64 / 1024.0)
    }
}

struct SizeRecord {
    live: [(u64, u64); 4],
    closed: [(u64, u64); 4],
    listing_live: [String; 4],
}

// ---------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------

/// Workload 1a: Awaited single `put_session` of distinct ~1.2 KB records.
async fn w_put_session(store: &Store, blobs: &Blobs, sc: Scale) -> Outcome {
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
fn trace_buckets(what: &str, samples: &[Duration]) {
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
async fn w_sent_pairs(store: &Store, blobs: &Blobs, sc: Scale) -> Outcome {
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
fn random_macs(rng: &mut Rng, n: usize) -> (Vec<AppStateMutationMAC>, Vec<[u8; 32]>) {
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

type Batch = Vec<(Arc<str>, Bytes)>;
type IdentityBatch = Vec<(Arc<str>, [u8; 32])>;

/// The three batches of one `SignalStoreCache::flush`: 32 sessions, 8
/// identities, 4 sender keys, drawn from a pool of contacts (upserts).
fn flush_batches(k: u64, blobs: &Blobs, rng: &mut Rng) -> (Batch, IdentityBatch, Batch) {
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
async fn w_flush(store: &Store, blobs: &Blobs, sc: Scale) -> Outcome {
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
async fn w_appstate(store: &Store, sc: Scale) -> Outcome {
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
async fn w_usync(store: &Store, sc: Scale) -> Outcome {
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
async fn w_msg_secrets(store: &Store, sc: Scale) -> Outcome {
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
async fn put_sessions(b: &dyn Backend, blobs: &Blobs, n: u64) {
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

/// Workload 6: Random `get_session` over 5,000 stored sessions.
async fn w_reads(store: &Store, blobs: &Blobs, sc: Scale) -> Outcome {
    const N: u64 = 5000;
    let b = store.b();
    put_sessions(b, blobs, N).await;
    let mut rng = Rng::new(0x4ead);
    for _ in 0..sc.n(1000) {
        b.get_session(&session_address(3, rng.below(N)))
            .await
            .unwrap();
    }
    let n = sc.n(30_000);
    let addrs: Vec<String> = (0..n).map(|_| session_address(3, rng.below(N))).collect();
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
async fn concurrent_round(
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
async fn w_concurrent(store: &Store, blobs: &Arc<Blobs>, sc: Scale) -> Outcome {
    concurrent_round(store, blobs, 5, sc.n(5)).await;
    let per_task = sc.n(150);
    let (wall, mut samples) = concurrent_round(store, blobs, 4, per_task).await;
    let ops = (32 * per_task) as f64;
    Outcome {
        values: vec![micros(wall) / ops, ops / wall.as_secs_f64()],
        latency: Some(percentiles(&mut samples)),
    }
}

const LID_COUNT: u64 = 50_000;

/// Workload 8: Cold start: a file with 50,000 LID mappings is closed; then time
/// reopen + `get_all_lid_mappings` (median of the repetitions). The store
/// is left closed.
async fn w_cold_start(kind: Kind, dir: &Path, sc: Scale) -> (Outcome, (u64, u64), String) {
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

// ---------------------------------------------------------------------------
// Peak RSS child
// ---------------------------------------------------------------------------

fn status_kib(field: &str) -> Option<u64> {
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
async fn child_mixed(kind: Kind, dir: &Path, sc: Scale) {
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

fn run_child(slug: &str) {
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
fn measure_child(slug: &str, dir: &Path) -> ChildResult {
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

// ---------------------------------------------------------------------------
// Machine description
// ---------------------------------------------------------------------------

fn filesystem_of(path: &Path) -> String {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(usize, String)> = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 {
            continue;
        }
        let mount_point = f[1].replace("\\040", " ");
        if path.starts_with(&mount_point)
            && best.as_ref().is_none_or(|(l, _)| mount_point.len() >= *l)
        {
            best = Some((
                mount_point.len(),
                format!("{} ({} on {})", f[2], f[0], mount_point),
            ));
        }
    }
    best.map(|(_, s)| s).unwrap_or_else(|| "unknown".into())
}

fn machine_line(dir: &Path) -> String {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let mem = status_meminfo("MemTotal:")
        .map(|k| format!("{:.1} GiB", k as f64 / (1 << 20) as f64))
        .unwrap_or_else(|| "?".into());
    let load = load_line();
    format!(
        "Machine: nproc={nproc}, CPU: {cpu}, RAM {mem}, kernel {kernel}, temp dir filesystem: {}, load average at start: {load}",
        filesystem_of(dir)
    )
}

/// The crate's git revision (best effort), since the engine under test
/// changes often.
fn git_describe() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=12"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| format!("git {}", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| "git revision unknown".into())
}

/// Load averages, plus CPU pressure (PSI) where the kernel reports it: the
/// machine is shared, so this says how quiet it was.
fn load_line() -> String {
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let psi = std::fs::read_to_string("/proc/pressure/cpu")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.trim_start_matches("some ").to_string())
        })
        .map(|p| format!(" (CPU pressure: {p})"))
        .unwrap_or_default();
    format!("{load}{psi}")
}

fn status_meminfo(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

struct Row {
    name: &'static str,
    unit: &'static str,
    values: [f64; 4],
    /// max / min of the per-round values.
    spread: [f64; 4],
    /// Lower is better (times); false for throughput.
    lower_better: bool,
    target_normal: Option<f64>,
    target_full: Option<f64>,
}

impl Row {
    /// Above 1 means RedbStore is better; (Normal vs SQLite default, Full
    /// vs SQLite FULL).
    fn ratios(&self) -> (f64, f64) {
        let r = |redb: f64, sqlite: f64| {
            if self.lower_better {
                sqlite / redb
            } else {
                redb / sqlite
            }
        };
        (
            r(self.values[0], self.values[2]),
            r(self.values[1], self.values[3]),
        )
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Prints the head of a table with a column per store, then `extra`
/// columns (`extra_head` like " A | B |", `extra_rule` like "---|---|").
fn print_store_header(extra_head: &str, extra_rule: &str) {
    let labels: Vec<&str> = KINDS.iter().map(|k| k.label()).collect();
    println!("| Workload | {} |{extra_head}", labels.join(" | "));
    println!("|---|---:|---:|---:|---:|{extra_rule}");
}

fn fmt_val(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn fmt_ratio(r: f64, target: Option<f64>) -> String {
    match target {
        Some(t) => format!(
            "{r:.2}× ({} ≥{t}×)",
            if r >= t { "meets" } else { "MISSES" }
        ),
        None => format!("{r:.2}×"),
    }
}

/// (row name, unit, lower is better, target Normal, target Full).
type RowDef = (&'static str, &'static str, bool, Option<f64>, Option<f64>);

/// A child's (VmHWM KiB, store bytes), or what went wrong.
type ChildResult = Result<(u64, u64), String>;

struct Workload {
    name: &'static str,
    rows: Vec<RowDef>,
    latency_label: Option<&'static str>,
}

fn main() {
    if let Ok(slug) = std::env::var("WA_BENCH_CHILD") {
        run_child(&slug);
        return;
    }
    let started = Instant::now();
    let sc = Scale::from_env();
    let rounds = std::env::var("WA_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(3);
    let stores: Vec<Kind> = match std::env::var("WA_BENCH_STORES") {
        Ok(v) => v
            .split(',')
            .map(|s| Kind::from_slug(s.trim()).expect("WA_BENCH_STORES: unknown store"))
            .collect(),
        Err(_) => KINDS.to_vec(),
    };
    let parent = std::env::var_os("WA_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    std::fs::create_dir_all(&parent).expect("create bench parent dir");
    let tmp = tempfile::Builder::new()
        .prefix("wa-bench-compare-")
        .tempdir_in(&parent)
        .expect("temp dir");
    let root = tmp.path().to_path_buf();
    let machine = machine_line(&root);
    eprintln!("compare: scale {}, running in {}", sc.0, root.display());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let blobs = Arc::new(Blobs::new(0xb10b));

    // Workload definitions: (row name, unit, lower_better, target Normal, target Full).
    let workloads: Vec<Workload> = vec![
        Workload {
            name: "put_session",
            rows: vec![(
                "1a. awaited `put_session` (1.2 KB, distinct addresses)",
                "µs/op",
                true,
                Some(1.5),
                Some(1.0),
            )],
            latency_label: Some("1a. put_session"),
        },
        Workload {
            name: "sent_pair",
            rows: vec![(
                "1b. `store_sent_message` + `take_sent_message`",
                "µs/pair",
                true,
                Some(1.5),
                Some(1.0),
            )],
            latency_label: Some("1b. sent pair"),
        },
        Workload {
            name: "flush",
            rows: vec![(
                "2. signal flush: sessions 32 + identities 8 + sender keys 4",
                "µs/flush",
                true,
                Some(3.0),
                Some(1.0),
            )],
            latency_label: Some("2. signal flush"),
        },
        Workload {
            name: "appstate",
            rows: vec![
                (
                    "3a. `put_mutation_macs` 5,000 MACs",
                    "ms",
                    true,
                    Some(2.0),
                    Some(1.0),
                ),
                (
                    "3b. `get_mutation_macs` 5,000 in 20 × 250",
                    "ms total",
                    true,
                    Some(2.0),
                    None,
                ),
            ],
            latency_label: None,
        },
        Workload {
            name: "usync",
            rows: vec![(
                "4. `update_device_lists` 1,024 records",
                "ms/call",
                true,
                Some(3.0),
                Some(1.0),
            )],
            latency_label: None,
        },
        Workload {
            name: "msg_secrets",
            rows: vec![(
                "5. `put_msg_secrets` 4,096 entries",
                "ms/call",
                true,
                Some(2.0),
                Some(1.0),
            )],
            latency_label: None,
        },
        Workload {
            name: "reads",
            rows: vec![(
                "6. random `get_session` (5,000 stored)",
                "µs/read",
                true,
                Some(10.0),
                None,
            )],
            latency_label: Some("6. get_session"),
        },
        Workload {
            name: "concurrent",
            rows: vec![
                (
                    "7. 32 tasks × awaited `put_session`",
                    "µs/op (aggregate)",
                    true,
                    Some(3.0),
                    Some(3.0),
                ),
                ("7. same, throughput", "ops/s", false, None, None),
            ],
            latency_label: Some("7. concurrent put_session (per op)"),
        },
        Workload {
            name: "cold_start",
            rows: vec![(
                "8. cold start: reopen + `get_all_lid_mappings` (50,000)",
                "ms (median)",
                true,
                Some(1.0),
                Some(1.0),
            )],
            latency_label: None,
        },
    ];

    let mut rows: Vec<Row> = Vec::new();
    let mut latencies: Vec<(&'static str, [(f64, f64); 4])> = Vec::new();
    let mut sizes: Vec<(&'static str, SizeRecord)> = Vec::new();

    let only: Option<Vec<String>> = std::env::var("WA_BENCH_ONLY")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    for w in workloads
        .iter()
        .filter(|w| only.as_ref().is_none_or(|o| o.iter().any(|n| n == w.name)))
    {
        // outcomes[kind][round]
        let mut outcomes: Vec<Vec<Outcome>> = (0..4).map(|_| Vec::new()).collect();
        let mut size = SizeRecord {
            live: [(0, 0); 4],
            closed: [(0, 0); 4],
            listing_live: Default::default(),
        };
        for round in 0..rounds {
            // Rotate the store order each round so no store always runs
            // first (or right after the same neighbour).
            for step in 0..4 {
                let ki = (step + round) % 4;
                let kind = KINDS[ki];
                if !stores.contains(&kind) {
                    outcomes[ki].push(Outcome {
                        values: vec![f64::NAN; w.rows.len()],
                        latency: None,
                    });
                    continue;
                }
                let dir = root.join(format!("{}-{}-{round}", w.name, kind.slug()));
                std::fs::create_dir_all(&dir).unwrap();
                let t = Instant::now();
                let outcome = rt.block_on(async {
                    if w.name == "cold_start" {
                        let (o, live, listing) = w_cold_start(kind, &dir, sc).await;
                        size.live[ki] = live;
                        size.listing_live[ki] = listing;
                        return o;
                    }
                    let store = Store::open_fresh(kind, &dir).await;
                    let o = match w.name {
                        "put_session" => w_put_session(&store, &blobs, sc).await,
                        "sent_pair" => w_sent_pairs(&store, &blobs, sc).await,
                        "flush" => w_flush(&store, &blobs, sc).await,
                        "appstate" => w_appstate(&store, sc).await,
                        "usync" => w_usync(&store, sc).await,
                        "msg_secrets" => w_msg_secrets(&store, sc).await,
                        "reads" => w_reads(&store, &blobs, sc).await,
                        "concurrent" => w_concurrent(&store, &blobs, sc).await,
                        other => unreachable!("{other}"),
                    };
                    size.live[ki] = dir_size(&dir);
                    size.listing_live[ki] = dir_listing(&dir);
                    store.close().await;
                    o
                });
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
        for (ri, &(name, unit, lower_better, tn, tf)) in w.rows.iter().enumerate() {
            let per_round =
                |k: usize| -> Vec<f64> { outcomes[k].iter().map(|o| o.values[ri]).collect() };
            rows.push(Row {
                name,
                unit,
                values: std::array::from_fn(|k| median(per_round(k))),
                spread: std::array::from_fn(|k| {
                    let v = per_round(k);
                    let max = v.iter().cloned().fold(f64::MIN, f64::max);
                    let min = v.iter().cloned().fold(f64::MAX, f64::min);
                    max / min
                }),
                lower_better,
                target_normal: tn,
                target_full: tf,
            });
        }
        if let Some(label) = w.latency_label {
            latencies.push((
                label,
                std::array::from_fn(|k| {
                    let l: Vec<(f64, f64)> = outcomes[k]
                        .iter()
                        .map(|o| o.latency.unwrap_or((f64::NAN, f64::NAN)))
                        .collect();
                    (
                        median(l.iter().map(|x| x.0).collect()),
                        median(l.iter().map(|x| x.1).collect()),
                    )
                }),
            ));
        }
        sizes.push((w.name, size));
    }
    drop(rt);

    // Peak RSS, each store in a fresh process (plus the bare binary).
    let mut rss: Vec<(String, ChildResult)> = Vec::new();
    for slug in ["none", "redb", "sqlite", "redb-full", "sqlite-full"] {
        if std::env::var("WA_BENCH_RSS").is_ok_and(|v| v == "0")
            || Kind::from_slug(slug).is_some_and(|k| !stores.contains(&k))
        {
            continue;
        }
        let t = Instant::now();
        let r = measure_child(slug, &root.join(format!("rss-{slug}")));
        eprintln!(
            "  rss child {slug:<12} {:>7.2}s  {r:?}",
            t.elapsed().as_secs_f64()
        );
        rss.push((slug.to_string(), r));
    }

    // ----- Print -----
    let total = started.elapsed();
    println!("## RedbStore vs SqliteStore (benches/compare.rs)\n");
    println!("{machine}");
    println!("Source: {}", git_describe());
    println!(
        "Temp dir: {} (scale {}, {rounds} rounds; RedbStore Normal = `RedbStoreConfig::default()`, Full = `.with_synchronous(Synchronous::Full)`; SqliteStore default = `SqliteStoreConfig::default()` (synchronous NORMAL, WAL), FULL = `synchronous: Synchronous::Full`). Multi-thread tokio runtime. Ratio = SQLite time / redb time (> 1 means RedbStore is faster).\n",
        root.display(),
        sc.0
    );
    println!(
        "| Workload | Unit | {} | {} | {} | {} | Normal vs SQLite default | Full vs SQLite FULL |",
        KINDS[0].label(),
        KINDS[1].label(),
        KINDS[2].label(),
        KINDS[3].label()
    );
    println!("|---|---|---:|---:|---:|---:|---|---|");
    for r in &rows {
        let (rn, rf) = r.ratios();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.unit,
            fmt_val(r.values[0]),
            fmt_val(r.values[1]),
            fmt_val(r.values[2]),
            fmt_val(r.values[3]),
            fmt_ratio(rn, r.target_normal),
            fmt_ratio(rf, r.target_full),
        );
    }

    println!(
        "\nValues are medians of {rounds} rounds (each round: a fresh store per workload, store order rotated). Run-to-run spread (max/min over rounds):\n"
    );
    print_store_header("", "");
    for r in &rows {
        println!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            r.name, r.spread[0], r.spread[1], r.spread[2], r.spread[3]
        );
    }

    println!("\n### Per-op latency, p50 / p99 (µs), medians over rounds\n");
    print_store_header("", "");
    for (label, l) in &latencies {
        let cell = |(p50, p99): (f64, f64)| format!("{} / {}", fmt_val(p50), fmt_val(p99));
        println!(
            "| {label} | {} | {} | {} | {} |",
            cell(l[0]),
            cell(l[1]),
            cell(l[2]),
            cell(l[3])
        );
    }

    println!(
        "\n### File size after each workload (last round): open (live, incl. journal / -wal / -shm) → after close; apparent bytes\n"
    );
    print_store_header(
        " Normal: redb / SQLite (closed) | Full: redb / SQLite (closed) |",
        "---|---|",
    );
    let mut alloc_notes = Vec::new();
    for (name, s) in &sizes {
        let cell = |k: usize| format!("{} → {}", fmt_bytes(s.live[k].0), fmt_bytes(s.closed[k].0));
        let ratio = |a: usize, b: usize| {
            let r = s.closed[a].0 as f64 / s.closed[b].0 as f64;
            format!(
                "{r:.2}× ({} ≤1.5×)",
                if r <= 1.5 { "meets" } else { "MISSES" }
            )
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} |",
            cell(0),
            cell(1),
            cell(2),
            cell(3),
            ratio(0, 2),
            ratio(1, 3)
        );
        for (k, kind) in KINDS.iter().enumerate() {
            let (app, alloc) = s.closed[k];
            if app > 0 && (alloc as f64 / app as f64 - 1.0).abs() > 0.25 && app > 64 * 1024 {
                alloc_notes.push(format!(
                    "{name}/{}: closed apparent {} but allocated {}",
                    kind.label(),
                    fmt_bytes(app),
                    fmt_bytes(alloc)
                ));
            }
        }
    }
    if !alloc_notes.is_empty() {
        println!(
            "\nAllocated (on-disk blocks) differs from apparent size: {}",
            alloc_notes.join("; ")
        );
    }
    println!("\nFiles while open:");
    for (name, s) in &sizes {
        println!(
            "- {name}: {}",
            (0..4)
                .map(|k| format!("{} [{}]", KINDS[k].label(), s.listing_live[k]))
                .collect::<Vec<_>>()
                .join("; ")
        );
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
    println!(
        "\nTotal run time: {:.1} s. Load at end: {}",
        total.as_secs_f64(),
        load_line()
    );
}
