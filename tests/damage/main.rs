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
//!
//! Layout: this file has what the parts share (limits, the crashed
//! writer's sessions, the fixtures and the case description);
//! `child.rs` is the child process' side, `cases.rs` builds the fixtures
//! and the cases, `sweep.rs` runs and supervises them, and
//! `regressions.rs` has targeted tests for failures the sweep once found.

mod cases;
mod child;
#[path = "../util/dataset.rs"]
mod dataset;
#[path = "../util/process.rs"]
mod process;
mod regressions;
mod sweep;

use std::path::{Path, PathBuf};
use std::time::Duration;

use dataset::blob;
use whatsapp_rust_redb_storage::{PageProtection, RedbStoreConfig};

/// The file formats a sweep runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Format v1: a plain redb file.
    Plain,
    /// Format v2, verified (the default).
    Verified,
    /// Format v2, encrypted.
    Encrypted,
}

/// The key of the encrypted sweep's stores; its children get it as 64 hex
/// digits in `WA_REDB_DAMAGE_KEY` (so does the `panic = "abort"` probe).
const KEY: [u8; 32] = [0xD4; 32];
const KEY_ENV: &str = "WA_REDB_DAMAGE_KEY";

impl Mode {
    /// How the parent creates its stores.
    fn config(self) -> RedbStoreConfig {
        match self {
            Mode::Plain => RedbStoreConfig::default().with_page_protection(PageProtection::Off),
            Mode::Verified => RedbStoreConfig::default(),
            Mode::Encrypted => RedbStoreConfig::default().with_encryption_key(KEY),
        }
    }

    /// What a child needs in its environment to open the stores.
    fn child_env(self) -> Vec<(&'static str, String)> {
        match self {
            Mode::Encrypted => vec![(KEY_ENV, KEY.iter().map(|b| format!("{b:02x}")).collect())],
            Mode::Plain | Mode::Verified => Vec::new(),
        }
    }

    /// Every page is verified before redb parses it: no damage may make
    /// anything panic.
    fn protected(self) -> bool {
        self != Mode::Plain
    }
}

/// The configuration a child opens its case with: keyed when the parent
/// passed a key.
fn child_config() -> RedbStoreConfig {
    match std::env::var(KEY_ENV) {
        Ok(hex) => {
            let key: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex key"))
                .collect();
            RedbStoreConfig::default().with_encryption_key(key.try_into().expect("32 bytes"))
        }
        Err(_) => RedbStoreConfig::default(),
    }
}

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

fn journal_of(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.journal", path.display()))
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
