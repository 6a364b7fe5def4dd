//! The parent's fixtures (a good store, crashed writers' files, files
//! that are not stores) and the cases built from them: byte flips,
//! truncations, zeroed pages, appended garbage, damaged or foreign
//! journals.

use std::path::Path;

use whatsapp_rust_redb_storage::RedbStore;

use crate::dataset::{self, Rng, chain};
use crate::process;
use crate::{ACCOUNTS, Case, EXTRAS, Expect, Fixtures, MARK, Mode, ROWS, journal_of};

/// Runs the writer child on `path` and SIGKILLs it once it is ready.
fn crash_writer(path: &Path, checkpoint: bool, mode: Mode) {
    let mut cmd = process::self_command("child::damage_writer_child");
    cmd.env("WA_REDB_DAMAGE_WRITER", path)
        .env("RUST_BACKTRACE", "0")
        .envs(mode.child_env());
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

/// The fixtures, their store in the format of `mode`.
pub(crate) fn build_fixtures(dir: &Path, mode: Mode) -> Fixtures {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let good = dir.join("good.redb");
    rt.block_on(async {
        let s = RedbStore::with_config(&good, mode.config()).await.unwrap();
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
        crash_writer(&path, checkpoint, mode);
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
    crash_writer(&other_path, false, mode);
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

pub(crate) fn build_cases(f: &Fixtures, per_class: u64, base_seed: u64) -> Vec<Case> {
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
