//! The harness: cases of random steps (an op on one of two device ids),
//! both stores on their own files, running steps on both and comparing
//! every result, shrinking a mismatch to a short reproduction, the run's
//! knobs and the optional per-op statistics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use whatsapp_rust_redb_storage::RedbStore;
use whatsapp_rust_sqlite_storage::SqliteStore;

use crate::diff_util::{Op, Out, Rng, USERS, apply, difference};

pub const DEFAULT_CASES: u64 = 24;
pub const DEFAULT_OPS: usize = 1000;
pub const DEFAULT_SEED: u64 = 0x00C0_FFEE_0000;

/// Device-id pairs the cases cycle through (two accounts per file).
const DEVICE_PAIRS: &[[i32; 2]] = &[
    [1, 2],
    [i32::MIN, i32::MAX],
    [-1, 0],
    [i32::MAX - 1, i32::MAX],
    [7, 1],
    [0, i32::MIN + 1],
];

pub fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

#[derive(Debug, Clone)]
pub struct Step {
    /// Index into the case's device pair.
    pub dev: usize,
    pub op: Op,
}

pub struct Case {
    seed: u64,
    ids: [i32; 2],
    pub steps: Vec<Step>,
}

pub fn generate_case(seed: u64, n_ops: usize) -> Case {
    let mut rng = Rng::new(seed);
    let ids = DEVICE_PAIRS[(seed % DEVICE_PAIRS.len() as u64) as usize];
    let mut uniq = 0;
    let steps = (0..n_ops)
        .map(|_| Step {
            dev: rng.below(2),
            op: Op::generate(&mut rng, USERS, &mut uniq),
        })
        .collect();
    Case { seed, ids, steps }
}

/// Both stores, each on its own file, each with a handle per device id.
pub struct Stores {
    ids: [i32; 2],
    redb_dir: TempDir,
    sqlite_dir: TempDir,
    pub redb: Vec<RedbStore>,
    pub sqlite: Vec<SqliteStore>,
}

impl Stores {
    pub async fn open(ids: [i32; 2]) -> Stores {
        let mut stores = Stores {
            ids,
            redb_dir: tempfile::tempdir().expect("temp dir"),
            sqlite_dir: tempfile::tempdir().expect("temp dir"),
            redb: Vec::new(),
            sqlite: Vec::new(),
        };
        stores.open_handles().await;
        stores
    }

    async fn open_handles(&mut self) {
        let redb_path = self.redb_dir.path().join("store.redb");
        let sqlite_path = self.sqlite_dir.path().join("store.db");
        let sqlite_path = sqlite_path.to_str().expect("utf-8 temp path");
        let redb_a = RedbStore::new_for_device(&redb_path, self.ids[0])
            .await
            .expect("open RedbStore");
        let redb_b = redb_a.for_device(self.ids[1]);
        self.redb = vec![redb_a, redb_b];
        for id in self.ids {
            let s = SqliteStore::new_for_device(sqlite_path, id)
                .await
                .expect("open SqliteStore");
            self.sqlite.push(s);
        }
    }

    /// Closes both files (every handle) and opens them again.
    async fn reopen(&mut self) {
        let mut redb = std::mem::take(&mut self.redb);
        let last = redb.pop().expect("handles");
        drop(redb);
        last.close().await.expect("close RedbStore");
        self.sqlite.clear();
        self.open_handles().await;
    }
}

#[derive(Debug)]
pub struct Mismatch {
    index: usize,
    step: Step,
    device_id: i32,
    kind: &'static str,
    redb: Out,
    sqlite: Out,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "op #{} on device #{} (id {}): {}",
            self.index, self.step.dev, self.device_id, self.kind
        )?;
        writeln!(f, "  op:          {:?}", self.step.op)?;
        writeln!(f, "  RedbStore:   {:?}", self.redb)?;
        write!(f, "  SqliteStore: {:?}", self.sqlite)
    }
}

/// Known RedbStore bugs whose comparison is temporarily skipped, keyed to
/// the bug (see the report). Returns the bug's name if this result is one.
/// None at present.
fn known_bug(_step: &Step, _redb: &Out, _sqlite: &Out) -> Option<&'static str> {
    None
}

/// SqliteStore results that are not a semantic answer: `resource_report`
/// returns the all-`None` default when its connection is busy (contract
/// §2.6); RedbStore's report is then not compared.
fn sqlite_gave_no_answer(step: &Step, sqlite: &Out) -> bool {
    matches!(step.op, Op::ResourceReport)
        && sqlite.res.as_deref() == Ok("memory_bytes set: false, pages set: false")
}

/// With `WA_REDB_DIFF_STATS=1`, per op: calls, errors and distinct results
/// (printed at the end of each part, with `--nocapture`), to see what the
/// run exercises.
type Stats = BTreeMap<String, (usize, usize, BTreeSet<String>)>;
static STATS: Mutex<Option<Stats>> = Mutex::new(None);

fn record_stats(op: &Op, out: &Out) {
    if env_u64("WA_REDB_DIFF_STATS") != Some(1) {
        return;
    }
    let mut stats = STATS.lock().unwrap_or_else(|e| e.into_inner());
    let entry = stats.get_or_insert_default().entry(op.name()).or_default();
    entry.0 += 1;
    match &out.res {
        Ok(r) => {
            entry.2.insert(r.chars().take(60).collect());
        }
        Err(_) => entry.1 += 1,
    }
}

fn print_stats() {
    let stats = STATS.lock().unwrap_or_else(|e| e.into_inner());
    for (name, (calls, errors, distinct)) in stats.iter().flatten() {
        println!(
            "{name:32} calls {calls:5}  errors {errors:4}  distinct results {:4}",
            distinct.len()
        );
    }
}

/// Runs `steps` on fresh stores; the first disagreement, if any.
pub async fn run_steps(ids: [i32; 2], steps: &[Step]) -> Result<(), Mismatch> {
    let mut stores = Stores::open(ids).await;
    // Whether each device's record was last written by create() (random
    // keys, different in each store) rather than save().
    let mut created = [false; 2];
    for (index, step) in steps.iter().enumerate() {
        let d = step.dev;
        if let Op::Reopen = step.op {
            stores.reopen().await;
            continue;
        }
        let redb = apply(&stores.redb[d], Some(&stores.redb[d]), created[d], &step.op).await;
        let sqlite = apply(&stores.sqlite[d], None, created[d], &step.op).await;
        record_stats(&step.op, &sqlite);
        if let Some(kind) = difference(&redb, &sqlite)
            && known_bug(step, &redb, &sqlite).is_none()
            && !sqlite_gave_no_answer(step, &sqlite)
        {
            return Err(Mismatch {
                index,
                step: step.clone(),
                device_id: ids[d],
                kind,
                redb,
                sqlite,
            });
        }
        match step.op {
            Op::Create if redb.res.is_ok() => created[d] = true,
            Op::Save { .. } if redb.res.is_ok() => created[d] = false,
            _ => {}
        }
    }
    Ok(())
}

/// Greedily removes steps (halving chunks, then single steps) while some
/// mismatch remains. Bounded in attempts and time.
async fn shrink(ids: [i32; 2], mut steps: Vec<Step>, first: Mismatch) -> (Vec<Step>, Mismatch) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut attempts = 0;
    let mut best = first;
    steps.truncate(best.index + 1);
    let mut chunk = steps.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        while i < steps.len() {
            if attempts >= 400 || Instant::now() > deadline {
                return (steps, best);
            }
            attempts += 1;
            let mut candidate = steps.clone();
            candidate.drain(i..(i + chunk).min(steps.len()));
            match run_steps(ids, &candidate).await {
                Err(m) => {
                    candidate.truncate(m.index + 1);
                    steps = candidate;
                    best = m;
                }
                Ok(()) => i += chunk,
            }
        }
        if chunk == 1 {
            return (steps, best);
        }
        chunk = chunk.div_ceil(2);
    }
}

pub fn format_steps(ids: [i32; 2], steps: &[Step]) -> String {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| format!("    #{i} dev {} (id {}): {:?}\n", s.dev, ids[s.dev], s.op))
        .collect()
}

async fn run_case(case_no: u64, case: Case) {
    let Err(m) = run_steps(case.ids, &case.steps).await else {
        return;
    };
    let mut msg = format!(
        "RedbStore and SqliteStore disagree: seed {:#x} (case {case_no}), device ids {:?}\n{m}\n",
        case.seed, case.ids
    );
    let from = m.index.saturating_sub(15);
    msg += &format!("  preceding ops #{from}..#{}:\n", m.index);
    msg += &format_steps(case.ids, &case.steps[..m.index])
        .lines()
        .skip(from)
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    if env_u64("WA_REDB_DIFF_SHRINK") != Some(0) {
        let (steps, last) = shrink(case.ids, case.steps.clone(), m).await;
        msg += &format!(
            "  minimised reproduction ({} ops, fresh stores):\n{}  which gives:\n{last}\n",
            steps.len(),
            format_steps(case.ids, &steps)
        );
    }
    msg += &format!(
        "  replay: WA_REDB_DIFF_SEED={:#x} WA_REDB_DIFF_CASES=1 WA_REDB_DIFF_OPS={} cargo test --test differential",
        case.seed,
        case.steps.len()
    );
    panic!("{msg}");
}

/// Runs the cases `part, part + parts, ...` of the configured run.
pub async fn run_part(part: u64, parts: u64) {
    let cases = env_u64("WA_REDB_DIFF_CASES").unwrap_or(DEFAULT_CASES);
    let n_ops = env_u64("WA_REDB_DIFF_OPS").map_or(DEFAULT_OPS, |n| n as usize);
    let base = env_u64("WA_REDB_DIFF_SEED").unwrap_or(DEFAULT_SEED);
    for case_no in (part..cases).step_by(parts as usize) {
        let seed = base.wrapping_add(case_no);
        run_case(case_no, generate_case(seed, n_ops)).await;
    }
    print_stats();
}
