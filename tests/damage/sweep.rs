//! The sweep: every case in a child process, supervised (hangs, crashes,
//! vague errors, lost writes, a damaged journal keeping intact data from
//! opening), with the outcomes per class.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cases::{build_cases, build_fixtures};
use crate::process;
use crate::{Case, Expect, MARK, Mode, WORKERS, child_timeout, env_u64, journal_of};

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

/// Writes the case's store file (and journal, if it has one) into the new
/// directory `dir`; returns the store's path.
fn write_case(case: &Case, dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir(dir).unwrap();
    let path = dir.join("store.redb");
    std::fs::write(&path, &case.db).unwrap();
    if let Some(j) = &case.journal {
        std::fs::write(journal_of(&path), j).unwrap();
    }
    path
}

/// Runs the `panic = "abort"` probe (`examples/damage_probe.rs`) on a fresh
/// copy of the case's files: a problem unless it exits normally (a panic
/// there, caught by the store or not, is an abort).
fn run_probe(probe: &Path, case: &Case, dir: &Path, mode: Mode) -> Option<String> {
    let path = write_case(case, &dir.join("probe"));
    let mut child = std::process::Command::new(probe)
        .arg(&path)
        .envs(mode.child_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = drain(child.stdout.take().unwrap());
    let err = drain(child.stderr.take().unwrap());
    let status = wait_timeout(&mut child, child_timeout());
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    match status {
        Some(s) if s.success() => None,
        other => Some(format!(
            "the panic=abort probe did not exit normally ({other:?}): {} {}",
            stdout.trim(),
            stderr.lines().take(6).collect::<Vec<_>>().join(" | ")
        )),
    }
}

fn run_case(index: usize, case: &Case, root: &Path, probe: Option<&Path>, mode: Mode) -> Outcome {
    // A case run again (see `sweep`) gets fresh files: the first run's
    // child may have changed them.
    let mut dir = root.join(format!("case-{index:03}"));
    if dir.exists() {
        dir = root.join(format!("case-{index:03}-again"));
    }
    let path = write_case(case, &dir);
    let started = Instant::now();
    let mut child = process::self_command("child::damage_child")
        .env("WA_REDB_DAMAGE_FILE", &path)
        .env("WA_REDB_DAMAGE_EXTRAS", case.extras.to_string())
        .envs(mode.child_env())
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
        None => problems.push(format!(
            "HANG: killed after {:?}, its last steps: {}",
            child_timeout(),
            lines
                .iter()
                .rev()
                .take(3)
                .rev()
                .cloned()
                .collect::<Vec<_>>()
                .join(" | ")
        )),
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
    if let Some(probe) = probe {
        problems.extend(run_probe(probe, case, &dir, mode));
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

/// Protected files (format v2, the default): every page is verified before
/// redb parses it, so no damage may make anything panic — a panic counts
/// as a failure even when the store contained it (the children's panic
/// hook prints every panic, caught or not; under `panic = "abort"` each
/// would have been a crash).
#[test]
fn damaged_files_never_crash_hang_or_mislead() {
    sweep(Mode::Verified);
}

/// Encrypted files (format v2, mode 2): every block is authenticated and
/// decrypted before redb parses it; as for verified files, no damage may
/// make anything panic.
#[test]
fn damaged_encrypted_files_never_crash_hang_or_mislead() {
    sweep(Mode::Encrypted);
}

/// Plain files (format v1): damage reaches redb's parser, whose panics the
/// store contains (counted, not failed: only protection prevents them).
#[test]
fn damaged_plain_files_never_crash_hang_or_mislead() {
    sweep(Mode::Plain);
}

/// One sweep at a time: each runs `WORKERS` children, and two at once
/// doubled the load, which under qemu pushed the slowest plain case (redb
/// allocating for a damaged page reference) past the hang limit.
static ONE_SWEEP_AT_A_TIME: Mutex<()> = Mutex::new(());

fn sweep(mode: Mode) {
    let _alone = ONE_SWEEP_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let per_class = env_u64("WA_REDB_DAMAGE_CASES").unwrap_or(8);
    let seed = env_u64("WA_REDB_DAMAGE_SEED").unwrap_or(0xDA_4A6E);
    let only = std::env::var("WA_REDB_DAMAGE_ONLY").ok();
    let root = tempfile::tempdir().unwrap();
    let fixtures = build_fixtures(root.path(), mode);
    // `WA_REDB_ABORT_PROBE`: the damage probe built with `panic = "abort"`
    // (`.ci/run` builds it), run on every protected case too.
    let probe = std::env::var_os("WA_REDB_ABORT_PROBE")
        .filter(|_| mode.protected())
        .map(std::path::PathBuf::from);
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
                    let mut outcome = run_case(i, case, root.path(), probe.as_deref(), mode);
                    // Under qemu-user a child has twice hung before its first
                    // step on a file that opens at once when run again, natively
                    // and under qemu alike: such a case runs once more, and a
                    // second hang fails it. Natively a hang fails at once.
                    if outcome.outcome == "HANG" && crate::process::emulated() {
                        let first = outcome.problems.join("; ");
                        outcome = run_case(i, case, root.path(), probe.as_deref(), mode);
                        eprintln!(
                            "case {i} hung under the emulator ({first}); run again: {}",
                            outcome.outcome
                        );
                    }
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
    if mode.protected() {
        for o in results.iter_mut() {
            if o.stderr.contains("panicked at") {
                o.problems
                    .push("something panicked on a protected file (see stderr)".into());
            }
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
        "damage ({mode:?}): {} cases in {:?} (slowest {:?}: {}); {contained_panics} children printed a contained panic",
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
