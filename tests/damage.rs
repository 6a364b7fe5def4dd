//! Damaged store files: a fuzz-style sweep over many kinds of damage.
//!
//! The parent builds a good store (every table filled, two accounts),
//! closed cleanly, plus the states a crashed writer leaves behind (a journal
//! with unapplied records, a stale journal behind a checkpoint). Each case
//! damages a copy: byte flips at seeded random offsets, truncations, zeroed
//! pages, appended garbage, files that are not stores at all, and damaged
//! or foreign journals next to an intact file.
//!
//! Each case runs in a child process (a re-exec of this test binary, so a
//! panic, an abort or a hang is observable): it opens the store, reads
//! every table of both accounts, writes a little, checkpoints, closes, runs
//! `check_file`, reopens and checks that every acknowledged write is still
//! there, printing one line per step and a final outcome. The parent kills
//! a child that takes longer than `child_timeout()` and fails on a hang, on
//! any non-zero exit or signal, on an error that does not name the file or
//! say what is wrong, on acknowledged writes lost, and when a damaged
//! journal keeps an intact database from opening with all of its data.
//! Damage redb cannot see (a flip inside an opaque value) may read back as
//! different data: counted as `ok-diff`, not a failure.
//!
//! `WA_REDB_DAMAGE_CASES=<n>`: random cases per random class (default 8).
//! `WA_REDB_DAMAGE_SEED=<n>`: base seed (default fixed).
//! `WA_REDB_DAMAGE_ONLY=<substring>`: run only the cases whose name has it.
//! `WA_REDB_DAMAGE_VERBOSE=1`: print every case's steps.
//! `WA_REDB_DAMAGE_BACKTRACE=1`: backtraces in the children's stderr.
//! `WA_REDB_DAMAGE_TIMEOUT_SECS=<n>`: the hang limit per case (default 30,
//! 120 under an emulator).

#[path = "util/dataset.rs"]
mod dataset;
#[path = "util/process.rs"]
mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dataset::{Check, Rng, blob, chain, variant};
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{IntegrityCheck, RedbStore, RedbStoreConfig};

/// Rows per table per account.
const ROWS: u32 = 60;
/// The accounts of the good store.
const ACCOUNTS: [i32; 2] = [1, -7];
/// Sessions written by the crashed writer, one journal record each.
const EXTRAS: u32 = 12;
/// Natively a case takes well under a second; a child still running after
/// this is hung. Emulation is 10-30x slower.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);
const EMULATED_CHILD_TIMEOUT: Duration = Duration::from_secs(120);

/// The hang limit, or `WA_REDB_DAMAGE_TIMEOUT_SECS`.
fn child_timeout() -> Duration {
    match env_u64("WA_REDB_DAMAGE_TIMEOUT_SECS") {
        Some(secs) => Duration::from_secs(secs),
        None if process::emulated() => EMULATED_CHILD_TIMEOUT,
        None => CHILD_TIMEOUT,
    }
}
const WORKERS: usize = 2;
const MARK: &str = "@@";

fn extra_key(i: u32) -> String {
    format!("extra-{i}@c.us.0")
}
fn extra_value(i: u32) -> Vec<u8> {
    blob(99, "extra", i)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

// ---------------------------------------------------------------------------
// The child: exercises a (possibly damaged) store and reports
// ---------------------------------------------------------------------------

fn say(line: String) {
    let line = line.replace(['\n', '\r'], " ");
    println!("{MARK}{line}");
    std::io::stdout().flush().unwrap();
}

/// Reports the errors of a step; returns the variant of the first.
fn report(stage: &str, check: &Check) -> Option<String> {
    for (what, e) in check.errors.iter().take(5) {
        say(format!(
            "STEP {stage} ERR {} {what}: {}",
            variant(e),
            chain(e)
        ));
    }
    if check.errors.len() > 5 {
        say(format!(
            "STEP {stage} NOTE {} more errors",
            check.errors.len() - 5
        ));
    }
    if !check.diffs.is_empty() {
        say(format!(
            "STEP {stage} DIFF {} {}",
            check.diffs.len(),
            check.diffs[0]
        ));
    }
    check.errors.first().map(|(_, e)| variant(e))
}

/// A write the child made; `Ok` ones must survive close and reopen.
struct Acked {
    what: String,
    verify: fn(&RedbStore) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + '_>>,
}

async fn child_main(path: PathBuf, extras: u32, check_always: bool) {
    let mut first_error: Option<String> = None;
    let mut diffs = 0usize;
    let mut note = |stage: &str, v: Option<String>| {
        if first_error.is_none()
            && let Some(v) = v
        {
            first_error = Some(format!("{stage}:{v}"));
        }
    };

    // Open.
    let mut config = RedbStoreConfig::default();
    if check_always {
        config = config.with_integrity_check(IntegrityCheck::Always);
    }
    let store = match RedbStore::with_config(&path, config).await {
        Ok(s) => s,
        Err(e) => {
            say(format!("STEP open ERR {} {}", variant(&e), chain(&e)));
            say(format!("OUTCOME error@open:{}", variant(&e)));
            return;
        }
    };
    let r = store.recovery_report();
    say(format!(
        "STEP open OK replayed={} stopped={:?} set_aside={}",
        r.records_replayed,
        r.stopped,
        r.set_aside.is_some()
    ));

    // Read every table of every account.
    let mut reads = Check::default();
    for d in ACCOUNTS {
        reads.merge(dataset::check(&store.for_device(d), ROWS, false).await);
    }
    // The crashed writer's sessions: present ones form a prefix.
    let mut present = 0;
    let mut prefix = true;
    for i in 0..extras {
        match store.get_session(&extra_key(i)).await {
            Ok(Some(v)) if v.as_ref() == extra_value(i).as_slice() => {
                prefix &= present == i;
                present += 1;
            }
            Ok(Some(_)) => reads.diffs.push(format!("extra {i}: wrong value")),
            Ok(None) => {}
            Err(e) => reads.errors.push((format!("extra {i}"), e)),
        }
    }
    if !prefix {
        reads
            .diffs
            .push("extras present are not a prefix (a hole)".into());
    }
    say(format!("STEP extras {present}/{extras}"));
    match store.info().await {
        Ok(info) => {
            let rows: u64 = info.tables.iter().map(|t| t.rows).sum();
            say(format!("STEP info OK rows={rows}"));
        }
        Err(e) => reads.errors.push(("info".into(), e)),
    }
    let v = report("read", &reads);
    note("read", v);
    diffs += reads.diffs.len();
    say(format!(
        "STEP read reads={} diffs={} errors={}",
        reads.reads,
        reads.diffs.len(),
        reads.errors.len()
    ));

    // Write a little: every kind of write path (put, batch, delete, take,
    // sweep, range delete), then a checkpoint.
    let mut acked: Vec<Acked> = Vec::new();
    let mut writes = Check::default();
    let s = &store;
    macro_rules! try_write {
        ($what:expr, $call:expr, $verify:expr) => {{
            match $call.await {
                Ok(_) => acked.push(Acked {
                    what: $what.to_string(),
                    verify: $verify,
                }),
                Err(e) => writes.errors.push(($what.to_string(), e)),
            }
        }};
    }
    try_write!(
        "put_session",
        s.put_session("new-0@c.us.0", b"new session"),
        |s| Box::pin(async move {
            matches!(s.get_session("new-0@c.us.0").await, Ok(Some(v)) if v.as_ref() == b"new session")
        })
    );
    try_write!(
        "store_prekeys_batch",
        s.store_prekeys_batch(
            &[
                (70_001, bytes::Bytes::from_static(b"pk-a")),
                (70_002, bytes::Bytes::from_static(b"pk-b")),
            ],
            false
        ),
        |s| Box::pin(async move {
            matches!(s.load_prekey(70_002).await, Ok(Some(v)) if v.as_ref() == b"pk-b")
        })
    );
    try_write!(
        "put_msg_secrets",
        s.put_msg_secrets(vec![MsgSecretEntry {
            chat: "new@s.whatsapp.net".into(),
            sender: "new@s.whatsapp.net".into(),
            msg_id: "NEW1".into(),
            secret: [42; 32],
            expires_at: 0,
            message_ts: 5,
        }]),
        |s| Box::pin(async move {
            matches!(
                s.get_msg_secret("new@s.whatsapp.net", "new@s.whatsapp.net", "NEW1").await,
                Ok(Some(v)) if v == vec![42; 32]
            )
        })
    );
    try_write!("delete_session", s.delete_session(&dataset::addr(1)), |s| {
        Box::pin(async move { matches!(s.get_session(&dataset::addr(1)).await, Ok(None)) })
    });
    for i in 0..3 {
        match s
            .take_sent_message(&dataset::chat(i), &dataset::msg_id(i))
            .await
        {
            Ok(got) => {
                if got != Some(blob(1, "sent", i)) {
                    writes.diffs.push(format!("take sent message {i}"));
                }
            }
            Err(e) => writes.errors.push((format!("take sent message {i}"), e)),
        }
    }
    try_write!(
        "delete_expired_sent_messages",
        s.delete_expired_sent_messages(0),
        |_| Box::pin(async { true })
    );
    try_write!(
        "clear_sender_key_devices",
        s.clear_sender_key_devices(&dataset::group(0)),
        |s| Box::pin(async move {
            matches!(s.get_sender_key_devices(&dataset::group(0)).await, Ok(v) if v.is_empty())
        })
    );
    try_write!(
        "set_sender_key_status",
        s.set_sender_key_status("new@g.us", &[("x:1@lid", true)]),
        |s| Box::pin(async move {
            matches!(s.get_sender_key_devices("new@g.us").await, Ok(v) if v == vec![("x:1@lid".to_string(), true)])
        })
    );
    try_write!(
        "put_session device -7",
        s.for_device(-7).put_session("new-7@c.us.0", b"seven"),
        |s| Box::pin(async move {
            matches!(s.for_device(-7).get_session("new-7@c.us.0").await, Ok(Some(v)) if v.as_ref() == b"seven")
        })
    );
    if let Err(e) = s.checkpoint().await {
        writes.errors.push(("checkpoint".into(), e));
    }
    // Acknowledged writes read back in this process.
    for a in &acked {
        if !(a.verify)(s).await {
            writes
                .diffs
                .push(format!("acknowledged {} does not read back", a.what));
        }
    }
    let v = report("write", &writes);
    note("write", v);
    diffs += writes.diffs.len();
    say(format!(
        "STEP write acked={} errors={}",
        acked.len(),
        writes.errors.len()
    ));

    // Close, check, reopen.
    match store.close().await {
        Ok(_) => say("STEP close OK".into()),
        Err(e) => {
            say(format!("STEP close ERR {} {}", variant(&e), chain(&e)));
            note("close", Some(variant(&e)));
        }
    }
    match RedbStore::check_file(&path) {
        Ok(r) => say(format!(
            "STEP check_file OK pages_ok={} rows={} problems={}",
            r.pages_ok,
            r.rows_checked,
            r.problems.len()
        )),
        Err(e) => {
            say(format!("STEP check_file ERR {} {}", variant(&e), chain(&e)));
            note("check_file", Some(variant(&e)));
        }
    }
    let mut lost = Vec::new();
    match RedbStore::with_config(&path, RedbStoreConfig::default()).await {
        Ok(store) => {
            for a in &acked {
                if !(a.verify)(&store).await {
                    lost.push(a.what.clone());
                }
            }
            say(format!("STEP reopen OK lost={lost:?}"));
            if let Err(e) = store.close().await {
                say(format!("STEP close2 ERR {} {}", variant(&e), chain(&e)));
            }
        }
        Err(e) => {
            say(format!("STEP reopen ERR {} {}", variant(&e), chain(&e)));
            note("reopen", Some(variant(&e)));
        }
    }
    let outcome = if !lost.is_empty() {
        "lost".to_string()
    } else if let Some(e) = first_error {
        format!("error@{e}")
    } else if diffs > 0 {
        "ok-diff".to_string()
    } else {
        "ok".to_string()
    };
    say(format!("OUTCOME {outcome}"));
}

/// Child half of every case: see the module docs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn damage_child() {
    let Some(path) = std::env::var_os("WA_REDB_DAMAGE_FILE") else {
        return;
    };
    let extras = env_u64("WA_REDB_DAMAGE_EXTRAS").unwrap_or(0) as u32;
    let check_always = std::env::var("WA_REDB_DAMAGE_CHECK_ALWAYS").is_ok_and(|v| !v.is_empty());
    child_main(PathBuf::from(path), extras, check_always).await;
}

/// A writer that crashes: writes `EXTRAS` sessions (one journal record
/// each), optionally checkpoints, reports READY and waits to be killed.
#[tokio::test]
#[ignore]
async fn damage_writer_child() {
    let Some(path) = std::env::var_os("WA_REDB_DAMAGE_WRITER") else {
        return;
    };
    let config = RedbStoreConfig::default().with_checkpoint_interval(Duration::from_secs(3600));
    let store = RedbStore::with_config(&path, config).await.unwrap();
    for i in 0..EXTRAS {
        store
            .put_session(&extra_key(i), &extra_value(i))
            .await
            .unwrap();
    }
    if std::env::var_os("WA_REDB_DAMAGE_WRITER_CHECKPOINT").is_some() {
        store.checkpoint().await.unwrap();
    }
    println!("{MARK}READY");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    // Never reached in the intended use: the parent kills us first.
    std::process::abort();
}

// ---------------------------------------------------------------------------
// The parent: fixtures, cases, supervision
// ---------------------------------------------------------------------------

fn journal_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.journal", path.display()))
}

/// Runs the writer child on `path` and SIGKILLs it once it is ready.
fn crash_writer(path: &Path, checkpoint: bool) {
    let mut cmd = process::self_command("damage_writer_child");
    cmd.env("WA_REDB_DAMAGE_WRITER", path)
        .env("RUST_BACKTRACE", "0");
    if checkpoint {
        cmd.env("WA_REDB_DAMAGE_WRITER_CHECKPOINT", "1");
    }
    let (mut child, _out) = process::spawn_until(cmd, &format!("{MARK}READY"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(journal_of(path).exists());
}

/// Journal records (offset, length) up to the end marker.
fn journal_records(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 64usize;
    while pos + 20 <= bytes.len() && bytes[pos..pos + 20] != [0; 20] {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        out.push((pos, 20 + len));
        pos += 20 + len;
    }
    out
}

/// The files every case starts from.
struct Fixtures {
    /// The good store, closed cleanly.
    good: Vec<u8>,
    /// A store whose writer crashed with `EXTRAS` unapplied journal records.
    live_db: Vec<u8>,
    live_journal: Vec<u8>,
    /// A store whose writer crashed right after a checkpoint: the journal's
    /// records are all behind the checkpoint.
    stale_db: Vec<u8>,
    stale_journal: Vec<u8>,
    /// The journal of a different store (another file id).
    other_journal: Vec<u8>,
    sqlite: Vec<u8>,
    foreign_redb: Vec<u8>,
}

fn build_fixtures(dir: &Path) -> Fixtures {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let good = dir.join("good.redb");
    rt.block_on(async {
        let s = RedbStore::new(&good).await.unwrap();
        for d in ACCOUNTS {
            dataset::populate(&s.for_device(d), ROWS).await;
        }
        // The data set checks out before any damage.
        for d in ACCOUNTS {
            let c = dataset::check(&s.for_device(d), ROWS, false).await;
            assert!(
                c.is_clean(),
                "good store: {:?} {:?}",
                c.diffs,
                c.errors.first().map(|(w, e)| format!("{w}: {}", chain(e)))
            );
        }
        s.close().await.unwrap();
    });
    assert!(!journal_of(&good).exists());
    let good_bytes = std::fs::read(&good).unwrap();

    let crashed = |name: &str, checkpoint: bool| {
        let sub = dir.join(name);
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("store.redb");
        std::fs::write(&path, &good_bytes).unwrap();
        crash_writer(&path, checkpoint);
        (
            std::fs::read(&path).unwrap(),
            std::fs::read(journal_of(&path)).unwrap(),
        )
    };
    let (live_db, live_journal) = crashed("live", false);
    assert_eq!(journal_records(&live_journal).len(), EXTRAS as usize);
    let (stale_db, stale_journal) = crashed("stale", true);

    let other = dir.join("other");
    std::fs::create_dir(&other).unwrap();
    let other_path = other.join("store.redb");
    crash_writer(&other_path, false);
    let other_journal = std::fs::read(journal_of(&other_path)).unwrap();

    // The first page of a SQLite database as a sniffer sees it (the magic
    // and a 4 KiB page size): the tests of this crate link no SQLite.
    let mut sqlite = vec![0u8; 4096];
    sqlite[..16].copy_from_slice(b"SQLite format 3\0");
    sqlite[16..18].copy_from_slice(&4096u16.to_be_bytes());
    assert!(sqlite.starts_with(b"SQLite format 3\0"));

    let foreign = dir.join("foreign.redb");
    {
        let db = redb::Database::create(&foreign).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn
                .open_table(redb::TableDefinition::<&str, u64>::new("foo"))
                .unwrap();
            for i in 0..100u64 {
                t.insert(format!("key{i}").as_str(), i).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let foreign_redb = std::fs::read(&foreign).unwrap();

    Fixtures {
        good: good_bytes,
        live_db,
        live_journal,
        stale_db,
        stale_journal,
        other_journal,
        sqlite,
        foreign_redb,
    }
}

/// What a case must end with.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Damage: anything but a crash, a hang, a vague error or lost writes.
    NoCrash,
    /// Not a store: a clear `NotAStore` at open; the file is left alone.
    NotAStore(&'static str),
    /// An intact database beside a damaged journal: opens, all data there,
    /// and between `min` and `max` of the crashed writer's sessions.
    Intact { min: u32, max: u32 },
}

struct Case {
    class: &'static str,
    name: String,
    expect: Expect,
    db: Vec<u8>,
    journal: Option<Vec<u8>>,
    /// Sessions of the crashed writer the child looks for.
    extras: u32,
    /// Open with `IntegrityCheck::Always` (default: the default config,
    /// which trusts a cleanly closed file).
    check_always: bool,
}

fn flip(bytes: &[u8], n: usize, rng: &mut Rng) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for _ in 0..n {
        let at = rng.below(out.len() as u64) as usize;
        out[at] ^= 1 + rng.below(255) as u8;
    }
    out
}

fn zero_page(bytes: &[u8], offset: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let end = (offset + 4096).min(out.len());
    out[offset..end].fill(0);
    out
}

fn build_cases(f: &Fixtures, per_class: u64, base_seed: u64) -> Vec<Case> {
    let mut cases = Vec::new();
    let good = &f.good;
    let len = good.len();
    let pages = len / 4096;
    let mut push = |class: &'static str, name: String, expect: Expect, db: Vec<u8>| {
        cases.push(Case {
            class,
            name,
            expect,
            db,
            journal: None,
            extras: 0,
            check_always: class.ends_with("+check"),
        })
    };
    // The "+check" classes repeat the damage of flip-8 and flip-64 (same
    // seeds), opened with `IntegrityCheck::Always`: the check at open should
    // catch what the default open trusts.
    let flips = [
        ("flip-1", 1),
        ("flip-8", 8),
        ("flip-64", 64),
        ("flip-8+check", 8),
        ("flip-64+check", 64),
    ];
    for (class, n) in flips {
        for k in 0..per_class {
            let seed = base_seed ^ (n as u64 * 1_000_003) ^ k;
            let mut rng = Rng(seed);
            push(
                class,
                format!("{class} seed={seed:#x}"),
                Expect::NoCrash,
                flip(good, n, &mut rng),
            );
        }
    }
    for at in [0, 1, 2, 3, pages / 2, pages - 1] {
        push(
            "zero-page",
            format!("zero-page page={at}"),
            Expect::NoCrash,
            zero_page(good, at * 4096),
        );
    }
    for k in 0..per_class {
        let seed = base_seed ^ 0x2E40 ^ k;
        let at = Rng(seed).below(pages as u64) as usize;
        push(
            "zero-page",
            format!("zero-page page={at} seed={seed:#x}"),
            Expect::NoCrash,
            zero_page(good, at * 4096),
        );
    }
    let mut lengths = vec![1, 512, 4096, 8192, len / 4, len / 2, len - 4096, len - 1];
    lengths.dedup();
    for cut in lengths {
        push(
            "truncate",
            format!("truncate to {cut} of {len}"),
            Expect::NoCrash,
            good[..cut].to_vec(),
        );
    }
    let mut rng = Rng(base_seed ^ 0xA99E);
    for (what, tail) in [
        ("1 zero byte", vec![0u8]),
        ("4 KiB of zeros", vec![0; 4096]),
        ("4 KiB random", rng.bytes(4096)),
        ("1 MiB random", rng.bytes(1 << 20)),
    ] {
        let mut db = good.clone();
        db.extend_from_slice(&tail);
        push("append", format!("append {what}"), Expect::NoCrash, db);
    }
    push(
        "not-a-store",
        "empty file".into(),
        Expect::NotAStore("empty"),
        Vec::new(),
    );
    push(
        "not-a-store",
        "text file".into(),
        Expect::NotAStore("unrecognized"),
        b"Dear diary, today I stored my keys in a text file.\n".to_vec(),
    );
    push(
        "not-a-store",
        "random bytes".into(),
        Expect::NotAStore("unrecognized"),
        Rng(base_seed ^ 0x5EED).bytes(64 * 1024),
    );
    push(
        "not-a-store",
        "SQLite file (SqliteStore)".into(),
        Expect::NotAStore("SQLite"),
        f.sqlite.clone(),
    );
    push(
        "not-a-store",
        "redb file of another program".into(),
        Expect::NotAStore("redb database without"),
        f.foreign_redb.clone(),
    );

    // Damaged journals next to an intact database.
    let mut journal_case = |name: String, db: &Vec<u8>, journal: Vec<u8>, extras: (u32, u32)| {
        cases.push(Case {
            class: "journal",
            name,
            expect: Expect::Intact {
                min: extras.0,
                max: extras.1,
            },
            db: db.clone(),
            journal: Some(journal),
            extras: EXTRAS,
            check_always: false,
        })
    };
    let none = (0, 0);
    let all = (EXTRAS, EXTRAS);
    let any = (0, EXTRAS);
    journal_case("clean db + empty journal".into(), good, Vec::new(), none);
    journal_case(
        "clean db + garbage journal (100 B)".into(),
        good,
        Rng(base_seed ^ 1).bytes(100),
        none,
    );
    journal_case(
        "clean db + garbage journal (64 KiB)".into(),
        good,
        Rng(base_seed ^ 2).bytes(64 * 1024),
        none,
    );
    let mut bad_header = f.live_journal.clone();
    bad_header[40] ^= 0xFF; // in the zero area: the header checksum fails
    journal_case(
        "clean db + journal with a bad header checksum".into(),
        good,
        bad_header,
        none,
    );
    journal_case(
        "clean db + journal of another store".into(),
        good,
        f.other_journal.clone(),
        none,
    );
    journal_case(
        "clean db + this store's crash journal".into(),
        good,
        f.live_journal.clone(),
        // The journal was written by a process that opened this very file:
        // its records follow the file's checkpoint and are replayed.
        all,
    );
    journal_case(
        "stale journal behind the checkpoint".into(),
        &f.stale_db,
        f.stale_journal.clone(),
        all,
    );
    for cut in [10, 63, 64, 100, f.stale_journal.len() / 2] {
        let cut = cut.min(f.stale_journal.len());
        journal_case(
            format!("stale journal truncated to {cut}"),
            &f.stale_db,
            f.stale_journal[..cut].to_vec(),
            all,
        );
    }
    journal_case(
        "live journal (control)".into(),
        &f.live_db,
        f.live_journal.clone(),
        all,
    );
    let records = journal_records(&f.live_journal);
    let (last_at, last_len) = *records.last().unwrap();
    let mut cuts = vec![
        0,
        10,
        64,
        records[0].0 + 5,
        records[EXTRAS as usize / 2].0 + records[EXTRAS as usize / 2].1 / 2,
        last_at + last_len / 2,
        last_at + last_len - 1,
    ];
    cuts.dedup();
    for cut in cuts {
        journal_case(
            format!("live journal truncated to {cut}"),
            &f.live_db,
            f.live_journal[..cut].to_vec(),
            any,
        );
    }
    let records_end = last_at + last_len;
    for k in 0..per_class {
        let seed = base_seed ^ 0x10F1 ^ k;
        let mut rng = Rng(seed);
        let mut j = f.live_journal.clone();
        let n = [1, 8, 64][k as usize % 3];
        for _ in 0..n {
            let at = 64 + rng.below((records_end - 64) as u64) as usize;
            j[at] ^= 1 + rng.below(255) as u8;
        }
        journal_case(
            format!("live journal, {n} flips in records seed={seed:#x}"),
            &f.live_db,
            j,
            any,
        );
    }
    let mut zeroed = f.live_journal.clone();
    zeroed[64..records_end.min(64 + 4096)].fill(0);
    journal_case(
        "live journal, first records zeroed".into(),
        &f.live_db,
        zeroed,
        // Zeros read as the end marker: nothing to replay, nothing lost
        // that the file had.
        none,
    );
    let mut garbage_tail = f.live_journal.clone();
    garbage_tail.truncate(records_end);
    garbage_tail.extend(Rng(base_seed ^ 3).bytes(8192));
    journal_case(
        "live journal, garbage after the last record".into(),
        &f.live_db,
        garbage_tail,
        all,
    );
    cases
}

struct Outcome {
    case: usize,
    outcome: String,
    lines: Vec<String>,
    stderr: String,
    elapsed: Duration,
    /// What is wrong.
    problems: Vec<String>,
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Waits for `child` at most `timeout`; kills it and returns `None` on a
/// hang.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Words an error must contain one of to say what is wrong.
const CLEAR_WORDS: &[&str] = &[
    "damaged",
    "not a whatsapp-rust-redb-storage store",
    "I/O error",
    "storage error",
    "stopped accepting writes",
    "cannot decode",
    "schema version",
];

fn run_case(index: usize, case: &Case, root: &Path) -> Outcome {
    let dir = root.join(format!("case-{index:03}"));
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("store.redb");
    std::fs::write(&path, &case.db).unwrap();
    if let Some(j) = &case.journal {
        std::fs::write(journal_of(&path), j).unwrap();
    }
    let started = Instant::now();
    let mut child = process::self_command("damage_child")
        .env("WA_REDB_DAMAGE_FILE", &path)
        .env("WA_REDB_DAMAGE_EXTRAS", case.extras.to_string())
        .env(
            "WA_REDB_DAMAGE_CHECK_ALWAYS",
            if case.check_always { "1" } else { "" },
        )
        .env(
            "RUST_BACKTRACE",
            if std::env::var_os("WA_REDB_DAMAGE_BACKTRACE").is_some() {
                "1"
            } else {
                "0"
            },
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let status = wait_timeout(&mut child, child_timeout());
    let elapsed = started.elapsed();
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    let lines: Vec<String> = stdout
        .lines()
        .filter_map(|l| l.find(MARK).map(|i| l[i + MARK.len()..].to_string()))
        .collect();
    let outcome = match status {
        None => "HANG".to_string(),
        Some(s) if !s.success() => "CRASH".to_string(),
        Some(_) => lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("OUTCOME "))
            .unwrap_or("none")
            .to_string(),
    };
    let mut problems: Vec<String> = Vec::new();
    match status {
        None => problems.push(format!("HANG: killed after {:?}", child_timeout())),
        Some(s) if !s.success() => problems.push(format!("CRASH: child exited with {s}")),
        Some(_) if outcome == "none" => problems.push("child printed no outcome".into()),
        Some(_) => {}
    }
    // Every error names the file and says what is wrong.
    for l in &lines {
        let Some(rest) = l.split_once(" ERR ").map(|(_, r)| r) else {
            continue;
        };
        if !rest.contains("store.redb") {
            problems.push(format!("error does not name the file: {l}"));
        }
        if !CLEAR_WORDS.iter().any(|w| rest.contains(w)) {
            problems.push(format!("error does not say what is wrong: {l}"));
        }
    }
    if outcome == "lost" {
        problems.push("acknowledged writes lost after a clean close".into());
    }
    match case.expect {
        Expect::NoCrash => {}
        Expect::NotAStore(word) => {
            if outcome != "error@open:NotAStore" {
                problems.push(format!("expected NotAStore at open, got {outcome}"));
            }
            let open = lines.iter().find(|l| l.starts_with("STEP open"));
            if !open.is_some_and(|l| l.contains(word)) {
                problems.push(format!("the error does not say {word:?}: {open:?}"));
            }
            if std::fs::read(&path).unwrap() != case.db {
                problems.push("the file was modified".into());
            }
            if journal_of(&path).exists() {
                problems.push("a journal was left beside a file that is not a store".into());
            }
        }
        Expect::Intact { min, max } => {
            if outcome != "ok" {
                problems.push(format!(
                    "a damaged journal made the intact database unusable: {outcome}"
                ));
            }
            let extras = lines
                .iter()
                .find_map(|l| l.strip_prefix("STEP extras "))
                .and_then(|r| r.split('/').next())
                .and_then(|n| n.parse::<u32>().ok());
            if !extras.is_some_and(|n| (min..=max).contains(&n)) {
                problems.push(format!(
                    "expected {min}..={max} of the crashed writer's sessions, found {extras:?}"
                ));
            }
        }
    }
    if problems.is_empty() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Outcome {
        case: index,
        outcome,
        lines,
        stderr,
        elapsed,
        problems,
    }
}

#[test]
fn damaged_files_never_crash_hang_or_mislead() {
    let started = Instant::now();
    let per_class = env_u64("WA_REDB_DAMAGE_CASES").unwrap_or(8);
    let seed = env_u64("WA_REDB_DAMAGE_SEED").unwrap_or(0xDA_4A6E);
    let only = std::env::var("WA_REDB_DAMAGE_ONLY").ok();
    let root = tempfile::tempdir().unwrap();
    let fixtures = build_fixtures(root.path());
    let mut cases = build_cases(&fixtures, per_class, seed);
    if let Some(only) = &only {
        cases.retain(|c| c.name.contains(only.as_str()));
    }
    eprintln!(
        "damage: good store {} bytes, {} cases (setup {:?})",
        fixtures.good.len(),
        cases.len(),
        started.elapsed()
    );

    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let cases = Arc::new(cases);
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(case) = cases.get(i) else { break };
                    let outcome = run_case(i, case, root.path());
                    results.lock().unwrap().push(outcome);
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|o| o.case);

    // Outcomes per class.
    let mut table: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    let mut contained_panics = 0;
    for o in &results {
        let class = cases[o.case].class;
        *table
            .entry(class)
            .or_default()
            .entry(o.outcome.clone())
            .or_default() += 1;
        if o.stderr.contains("panicked at") {
            contained_panics += 1;
        }
    }
    eprintln!("damage: outcomes by class:");
    for (class, outcomes) in &table {
        let total: usize = outcomes.values().sum();
        let list: Vec<String> = outcomes.iter().map(|(o, n)| format!("{n} {o}")).collect();
        eprintln!("  {class:<12} {total:>3} cases: {}", list.join(", "));
    }
    let slowest = results.iter().max_by_key(|o| o.elapsed).unwrap();
    eprintln!(
        "damage: {} cases in {:?} (slowest {:?}: {}); {contained_panics} children printed a contained panic",
        results.len(),
        started.elapsed(),
        slowest.elapsed,
        cases[slowest.case].name,
    );
    if std::env::var_os("WA_REDB_DAMAGE_VERBOSE").is_some() {
        for o in &results {
            eprintln!("--- {} => {}", cases[o.case].name, o.outcome);
            for l in &o.lines {
                eprintln!("    {l}");
            }
        }
    }

    let failed: Vec<&Outcome> = results.iter().filter(|o| !o.problems.is_empty()).collect();
    for o in &failed {
        eprintln!(
            "FAILED case {} ({}): {}",
            o.case,
            cases[o.case].name,
            o.problems.join("; ")
        );
        for l in &o.lines {
            eprintln!("    {l}");
        }
        let tail: String = o
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(if std::env::var_os("WA_REDB_DAMAGE_BACKTRACE").is_some() {
                400
            } else {
                12
            })
            .collect::<Vec<_>>()
            .join("\n      ");
        if !tail.is_empty() {
            eprintln!("    stderr: {tail}");
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} damage cases failed (see above; the damaged files are kept in {})",
        failed.len(),
        results.len(),
        root.keep().display()
    );
}

// ---------------------------------------------------------------------------
// Targeted cases for failures the sweep once found (regression tests)
// ---------------------------------------------------------------------------

/// Overwrites, at every place `marker` occurs in the file, the byte at
/// `delta` from the marker's start with `byte`. Returns how many places.
fn patch_marker(path: &Path, marker: &[u8], delta: isize, byte: u8) -> usize {
    let mut bytes = std::fs::read(path).unwrap();
    let hits: Vec<usize> = bytes
        .windows(marker.len())
        .enumerate()
        .filter(|(_, w)| *w == marker)
        .map(|(i, _)| i)
        .collect();
    for &at in &hits {
        bytes[(at as isize + delta) as usize] = byte;
    }
    std::fs::write(path, bytes).unwrap();
    hits.len()
}

/// Stores tokens for `peer-00@lid` .. `peer-19@lid` (together one leaf
/// page of the tc-token table) and returns the token they share.
async fn put_peer_tokens(s: &RedbStore) -> TcTokenEntry {
    let token = TcTokenEntry {
        token: b"token".to_vec(),
        token_timestamp: 1,
        sender_timestamp: None,
    };
    for i in 0..20 {
        s.put_tc_token(&format!("peer-{i:02}@lid"), &token)
            .await
            .unwrap();
    }
    token
}

/// A store with a few trusted-contact tokens, one of whose JIDs (a key) is
/// then made invalid UTF-8 in the file: one byte, as a bad sector or a bit
/// flip would.
async fn store_with_damaged_key(dir: &Path) -> PathBuf {
    let path = dir.join("store.redb");
    let s = RedbStore::new(&path).await.unwrap();
    let token = put_peer_tokens(&s).await;
    s.put_tc_token("victim-key@lid", &token).await.unwrap();
    s.close().await.unwrap();
    assert!(patch_marker(&path, b"victim-key@lid", 3, 0xFF) > 0);
    path
}

/// A store error must name the file and not be a validation error.
fn assert_names_the_file(e: &wacore::store::error::StoreError) {
    let text = chain(e);
    assert!(
        text.contains("store.redb"),
        "error does not name the file: {text}"
    );
    assert!(
        !matches!(e, wacore::store::error::StoreError::Validation(_)),
        "file damage reported as a validation error: {text}"
    );
}

#[tokio::test]
async fn damaged_key_read_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with_damaged_key(dir.path()).await;
    let s = RedbStore::new(&path).await.unwrap();
    // The scan decodes every key, and redb's `&str` decoding unwraps
    // `str::from_utf8`; the read runs on the caller's thread.
    let read = tokio::spawn(async move { s.get_all_tc_token_jids().await.map(drop) });
    match read.await {
        Err(join) => panic!("get_all_tc_token_jids panicked in the caller's task: {join}"),
        Ok(Ok(())) => {}
        Ok(Err(e)) => assert_names_the_file(&e),
    }
}

#[tokio::test]
async fn damaged_key_write_halts_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_with_damaged_key(dir.path()).await;
    let s = RedbStore::new(&path).await.unwrap();
    // The sweep decodes every key of the table in the writer's job.
    match s.delete_expired_tc_tokens(0, 0).await.map(drop) {
        Ok(()) => {}
        Err(e) => assert_names_the_file(&e),
    }
}

#[tokio::test]
async fn undecodable_record_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.join_store();
    let s = RedbStore::new(&path).await.unwrap();
    s.store_pending_inbound(
        "c@s.whatsapp.net",
        "s@s.whatsapp.net",
        "ID1",
        b"INBOUND-MARKER-XYZ",
    )
    .await
    .unwrap();
    s.close().await.unwrap();
    // The row is: format byte 1, msgpack [inserted_at (u32), bin8 message].
    // Make the format byte unknown.
    let bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(18)
        .position(|w| w == b"INBOUND-MARKER-XYZ")
        .unwrap();
    assert_eq!(
        &bytes[at - 9..at - 7],
        &[1, 0x92],
        "row layout changed; adjust the repro"
    );
    assert!(patch_marker(&path, b"INBOUND-MARKER-XYZ", -9, 7) > 0);
    let s = RedbStore::new(&path).await.unwrap();
    let e = s
        .get_pending_inbound("c@s.whatsapp.net", "s@s.whatsapp.net", "ID1")
        .await
        .unwrap_err();
    assert_names_the_file(&e);
}

#[tokio::test]
async fn refusing_a_foreign_redb_file_leaves_it_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.join_store();
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, u64>::new("foo"))
            .unwrap()
            .insert("k", 1)
            .unwrap();
        txn.commit().unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let e = RedbStore::new(&path).await.unwrap_err();
    assert!(chain(&e).contains("redb database without"), "{}", chain(&e));
    assert!(
        std::fs::read(&path).unwrap() == before,
        "the other program's file was modified"
    );
}

#[test]
fn damaged_leaf_at_open_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.join_store();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = RedbStore::new(&path).await.unwrap();
        // More than 1 MiB, so a compaction check (at close, or at an open
        // that verified the file) reads the stats of every table.
        for chunk in 0..12 {
            let batch: Vec<(Arc<str>, bytes::Bytes)> = (0..1000)
                .map(|i| {
                    (
                        Arc::from(format!("peer-{chunk:02}-{i:04}@c.us.0")),
                        bytes::Bytes::from(vec![7u8; 80]),
                    )
                })
                .collect();
            s.put_sessions_batch(&batch).await.unwrap();
        }
        s.close().await.unwrap();
    });
    assert!(std::fs::metadata(&path).unwrap().len() >= 1 << 20);
    // Find the leaf page holding one key and give it an absurd pair count.
    let mut bytes = std::fs::read(&path).unwrap();
    let marker = b"peer-06-0500@c.us.0";
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .unwrap();
    let page = at & !4095;
    assert_eq!(bytes[page], 1, "not a leaf page; adjust the repro");
    bytes[page + 2..page + 4].copy_from_slice(&0xFFFFu16.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let opened = std::panic::catch_unwind(|| {
        RedbStore::open_blocking(&path, 1, RedbStoreConfig::default()).map(drop)
    });
    match opened {
        Err(_) => panic!("open_blocking panicked"),
        Ok(Ok(())) => {}
        Ok(Err(e)) => assert_names_the_file(&e),
    }
    let e = rt.block_on(RedbStore::new(&path)).err();
    if let Some(e) = e {
        assert_names_the_file(&e);
    }
}

trait JoinStore {
    fn join_store(&self) -> PathBuf;
}

impl JoinStore for tempfile::TempDir {
    fn join_store(&self) -> PathBuf {
        self.path().join("store.redb")
    }
}

/// Child half of `damaged_leaf_in_a_sweep_never_aborts`.
#[tokio::test]
#[ignore]
async fn sweep_child() {
    let Some(path) = std::env::var_os("WA_REDB_SWEEP_FILE") else {
        return;
    };
    let s = RedbStore::new(&path).await.unwrap();
    let r = s.delete_expired_tc_tokens(0, 0).await;
    println!("{MARK}sweep: {:?}", r.map_err(|e| chain(&e)));
}

#[test]
fn damaged_leaf_in_a_sweep_never_aborts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.join_store();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let s = RedbStore::new(&path).await.unwrap();
        put_peer_tokens(&s).await;
        s.close().await.unwrap();
    });
    // The leaf holding the tokens (and its stale copies from earlier
    // commits): make the end offset of its 15th key point past the page.
    // (Not one the initial seek's binary search reads: the iteration hits
    // it.)
    let mut bytes = std::fs::read(&path).unwrap();
    let pages: BTreeSet<usize> = bytes
        .windows(11)
        .enumerate()
        .filter(|(_, w)| *w == b"peer-00@lid")
        .map(|(at, _)| at & !4095)
        .filter(|&page| bytes[page] == 1)
        .collect();
    assert!(!pages.is_empty(), "no leaf page found; adjust the repro");
    for page in pages {
        let at = page + 4 + 4 * 14;
        bytes[at..at + 4].copy_from_slice(&14_014u32.to_le_bytes());
    }
    std::fs::write(&path, bytes).unwrap();
    let out = process::self_command("sweep_child")
        .env("WA_REDB_SWEEP_FILE", &path)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the process died ({}): {}\n{}",
        out.status,
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("store.redb"), "{stdout}");
}
