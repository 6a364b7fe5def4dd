//! `wa-redb` as a careful Unix tool (issue 16.5), driven as a user does:
//! quiet on a closed pipe, no destructive command without a yes, a restore
//! keeps what it replaces, `--device N` everywhere (negative ids too),
//! failures as JSON with `--json`, help for every argument, sizes as `stat`
//! shows them.

#[path = "util/cli.rs"]
mod cli;

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use cli::{Run, command, dump, fixture, fixture_with, json, run, wa};
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::RedbStore;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// Runs `wa-redb ARGS` with stdout a pipe whose reader is already gone, as
/// in `wa-redb ARGS | true` once `true` has exited: every write to stdout
/// fails with EPIPE.
fn into_closed_pipe(args: &[&str]) -> Run {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = command(args);
    cmd.stdout(writer);
    run(cmd)
}

#[tokio::test]
async fn every_printing_command_exits_quietly_into_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture(dir.path()).await;
    let f = s(&file);
    let backup = dir.path().join("backup.redb");
    assert_eq!(wa(["backup", f, s(&backup)]).code, 0);
    let other = dir.path().join("other.redb");
    std::fs::copy(&file, &other).unwrap();
    let fresh = dir.path().join("fresh.redb");
    #[cfg_attr(not(feature = "sqlite"), allow(unused_mut))]
    let mut commands: Vec<Vec<&str>> = vec![
        vec!["--help"],
        vec!["--version"],
        vec!["dump", "--help"],
        vec!["info", f],
        vec!["info", f, "--json"],
        vec!["dump", f],
        vec!["dump", f, "--device", "2", "--table", "sessions"],
        vec!["check", f],
        vec!["check", f, "--json"],
        vec!["compact", f],
        vec!["compact", f, "--json"],
        vec!["backup", f, s(&fresh)],
        vec!["restore", s(&backup), s(&other), "--yes"],
        vec!["delete-device", s(&other), "--device", "2", "--yes"],
    ];
    #[cfg(feature = "sqlite")]
    let (db, imported) = (dir.path().join("out.db"), dir.path().join("imported.redb"));
    #[cfg(feature = "sqlite")]
    {
        commands.push(vec!["export-sqlite", f, s(&db)]);
        commands.push(vec!["import-sqlite", s(&db), s(&imported)]);
    }
    for args in &commands {
        let r = into_closed_pipe(args);
        assert_eq!((r.code, r.stderr.as_str()), (0, ""), "{args:?}: {r:?}");
    }
    // The work was done all the same; only its report had nowhere to go.
    assert!(fresh.exists());
    let v = json(&wa(["info", s(&other), "--json"]).stdout);
    assert_eq!(v["accounts"].as_array().unwrap().len(), 1);
    // A failure reported as JSON into a closed pipe keeps its status.
    let missing = dir.path().join("missing.redb");
    let r = into_closed_pipe(&["info", s(&missing), "--json"]);
    assert_eq!((r.code, r.stderr.as_str()), (1, ""), "{r:?}");
}

#[tokio::test]
async fn destructive_commands_need_yes_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture(dir.path()).await;
    let f = s(&file);
    let backup = dir.path().join("backup.redb");
    assert_eq!(wa(["backup", f, s(&backup)]).code, 0);
    let before = std::fs::read(&file).unwrap();
    let refused = |r: &Run, what: &str| {
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains(&format!("refusing to {what}")), "{r:?}");
        assert!(
            r.stderr.contains("without --yes (stdin is not a terminal)"),
            "{r:?}"
        );
        assert!(r.stdout.is_empty(), "{r:?}");
    };
    refused(&wa(["restore", s(&backup), f]), "replace");
    refused(
        &wa(["delete-device", f, "--device", "1"]),
        "delete device 1",
    );
    assert!(std::fs::read(&file).unwrap() == before, "the store changed");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".replaced-")), "{names:?}");
    // With --json the refusal is JSON, with its status.
    let r = wa(["delete-device", f, "--device", "1", "--json"]);
    assert_eq!(r.code, 2, "{r:?}");
    let v = json(&r.stdout);
    assert_eq!(v["exit_code"], 2);
    assert!(
        v["error"].as_str().unwrap().contains("without --yes"),
        "{v}"
    );
    // Restoring into a new file replaces nothing: no question.
    let new = dir.path().join("new.redb");
    let r = wa(["restore", s(&backup), s(&new)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("kept as"), "{r:?}");

    #[cfg(feature = "sqlite")]
    {
        let db = dir.path().join("app.db");
        assert_eq!(wa(["export-sqlite", f, s(&db)]).code, 0);
        // (Reading a store, the export closes it: its bytes may change.)
        let before = std::fs::read(&file).unwrap();
        let sqlite_before = std::fs::read(&db).unwrap();
        refused(
            &wa(["import-sqlite", s(&db), f, "--overwrite"]),
            "replace the accounts",
        );
        refused(
            &wa(["export-sqlite", f, s(&db), "--overwrite"]),
            "replace the accounts",
        );
        assert!(std::fs::read(&file).unwrap() == before, "the store changed");
        assert!(
            std::fs::read(&db).unwrap() == sqlite_before,
            "the SQLite file changed"
        );
        let r = wa(["import-sqlite", s(&db), f, "--overwrite", "--yes"]);
        assert_eq!(r.code, 0, "{r:?}");
    }
}

#[tokio::test]
async fn restore_keeps_the_file_it_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture(dir.path()).await;
    let f = s(&file);
    let backup = dir.path().join("backup.redb");
    assert_eq!(wa(["backup", f, s(&backup)]).code, 0);
    assert_eq!(wa(["delete-device", f, "--device", "2", "--yes"]).code, 0);

    let r = wa(["restore", s(&backup), f, "--yes", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let kept = json(&r.stdout)["replaced"].as_str().unwrap().to_owned();
    let kept = Path::new(&kept);
    let name = kept.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("store.redb.replaced-"), "{name}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(kept).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let accounts = |p: &Path| {
        let v = json(&wa([OsStr::new("info"), p.as_os_str(), OsStr::new("--json")]).stdout);
        v["accounts"].as_array().unwrap().len()
    };
    // The restored file is the backup (two accounts); the kept one is what
    // was there before (one).
    assert_eq!(accounts(&file), 2);
    assert_eq!(accounts(kept), 1);

    // Again, at once: another name, said in the output.
    let r = wa(["restore", s(&backup), f, "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    let line = r.stdout.lines().find(|l| l.contains("kept as")).unwrap();
    let second = line
        .split("kept as ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert_ne!(Path::new(second), kept, "{r:?}");
    assert!(Path::new(second).exists(), "{r:?}");
    assert!(kept.exists());
}

#[tokio::test]
async fn negative_device_ids_work_as_device_n() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture_with(dir.path(), &[-5, 3]).await;
    let f = s(&file);
    let (r, rows) = dump(&file, &["--device", "-5"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(rows.len() > 30, "{r:?}");
    assert!(rows.iter().all(|row| row["device"] == -5), "{r:?}");
    let (_, same) = dump(&file, &["--device=-5"]);
    assert_eq!(same, rows);
    #[cfg(feature = "sqlite")]
    {
        let db = dir.path().join("out.db");
        let r = wa(["export-sqlite", f, s(&db), "--device", "-5"]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains("exported device -5"), "{r:?}");
    }
    let r = wa(["delete-device", f, "--device", "-5", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("deleted device -5"), "{r:?}");
    let (_, rows) = dump(&file, &["--device", "-5"]);
    assert!(rows.is_empty());
    let v = json(&wa(["info", f, "--json"]).stdout);
    assert_eq!(v["accounts"][0]["device_id"], 3);
}

#[tokio::test]
async fn failures_are_json_with_their_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture(dir.path()).await;
    let f = s(&file);
    let missing = dir.path().join("missing.redb");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["info", s(&missing), "--json"], 1, "missing.redb"),
        (vec!["--json", "frobnicate"], 2, "frobnicate"),
        (vec!["dump", f, "--device", "one", "--json"], 2, "one"),
        (
            vec!["dump", f, "--table", "nope", "--json"],
            1,
            "unknown table",
        ),
        (
            vec!["delete-device", f, "--device", "9", "--yes", "--json"],
            1,
            "no account with device id 9",
        ),
    ];
    for (args, code, says) in cases {
        let r = wa(&args);
        assert_eq!(r.code, code, "{args:?}: {r:?}");
        assert!(r.stderr.is_empty(), "{args:?}: {r:?}");
        let v = json(&r.stdout);
        assert_eq!(v["exit_code"], code, "{args:?}: {v}");
        let error = v["error"].as_str().unwrap();
        assert!(error.contains(says), "{args:?}: {v}");
        assert!(!error.contains("operation is not valid"), "{args:?}: {v}");
        assert!(!error.starts_with("error:"), "{args:?}: {v}");
        assert!(v["hint"].is_string() || v["hint"].is_null(), "{v}");
    }
    // Without --json, the same failure is text on stderr, without internal
    // prefixes.
    let r = wa(["dump", f, "--table", "nope"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.starts_with("wa-redb: error: unknown table"),
        "{r:?}"
    );
    let r = wa(["delete-device", f, "--device", "9", "--yes"]);
    assert!(r.stderr.contains("hint: `wa-redb info"), "{r:?}");
}

#[test]
fn every_argument_has_help() {
    for sub in [
        "info",
        "dump",
        "check",
        "compact",
        "backup",
        "restore",
        "import-sqlite",
        "export-sqlite",
        "export",
        "delete-device",
    ] {
        let r = wa([sub, "--help"]);
        assert_eq!(r.code, 0, "{sub}: {r:?}");
        let mut section = "";
        let mut positionals = 0;
        let lines: Vec<&str> = r.stdout.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.ends_with(':') && !line.starts_with(' ') {
                section = line;
                continue;
            }
            let entry = line.trim_start();
            if !line.starts_with("  ") || !entry.starts_with(['<', '-']) {
                continue;
            }
            // "<NAME>  help", or (long help) "<NAME>" with the help on the
            // next line, indented further.
            let help = match entry.split_once("  ") {
                Some((_, h)) => h.trim(),
                None => lines.get(i + 1).map_or("", |next| {
                    let indent = |l: &str| l.len() - l.trim_start().len();
                    if indent(next) > indent(line) {
                        next.trim()
                    } else {
                        ""
                    }
                }),
            };
            assert!(!help.is_empty(), "{sub}: {line:?} has no help");
            if section == "Arguments:" {
                positionals += 1;
            }
        }
        assert!(positionals >= 1, "{sub}: no arguments listed: {}", r.stdout);
    }
}

#[tokio::test]
async fn backup_into_a_missing_directory_names_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture(dir.path()).await;
    let absent = dir.path().join("no-such-dir");
    let dest = absent.join("b.redb");
    let r = wa(["backup", s(&file), s(&dest)]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("{} does not exist", absent.display())),
        "{r:?}"
    );
    // The library says the same, and names no temporary either.
    let store = RedbStore::new(&file).await.unwrap();
    let err = store.backup_to(&dest).await.unwrap_err().to_string();
    store.close().await.unwrap();
    for text in [&r.stderr, &err] {
        // Temporaries are named `b.redb.partial-<pid>-<n>.tmp`.
        assert!(!text.contains("b.redb."), "{text}");
        assert!(!text.contains("I/O error"), "{text}");
    }
    assert!(err.contains("no-such-dir does not exist"), "{err}");
}

#[tokio::test]
async fn compact_and_delete_device_report_the_sizes_stat_shows() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store.redb");
    {
        // Account 1 large, account 2 small; a compacted file (no free page:
        // where any growth doubles the file).
        let s = RedbStore::new(&file).await.unwrap();
        for (d, n) in [(1, 4000u32), (2, 300)] {
            let h = s.for_device(d);
            h.save(&wacore::store::Device::new()).await.unwrap();
            let sessions: Vec<(Arc<str>, Bytes)> = (0..n)
                .map(|i| {
                    (
                        Arc::from(format!("{i:06}@c.us.0")),
                        Bytes::from(vec![d as u8; 1024]),
                    )
                })
                .collect();
            h.put_sessions_batch(&sessions).await.unwrap();
        }
        s.close().await.unwrap();
    }
    let f = s(&file);
    let before = len(&file);
    let r = wa(["compact", f, "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r.stdout);
    assert_eq!(v["bytes_before"], before, "{v}");
    assert_eq!(v["bytes_after"], len(&file), "{v}");
    let r = wa(["compact", f]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("nothing to free (0 B freed)"), "{r:?}");
    assert_eq!(json(&wa(["compact", f, "--json"]).stdout)["bytes_freed"], 0);

    let tight = len(&file);
    let r = wa(["delete-device", f, "--device", "2", "--yes", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r.stdout);
    assert_eq!(v["bytes_before"], tight, "{v}");
    assert_eq!(v["bytes_after"], len(&file), "{v}");
    let journal = dir.path().join("store.redb.journal");
    let after = len(&file) + len(&journal);
    assert!(
        after as f64 <= tight as f64 * 1.05,
        "delete-device grew the file: {tight} -> {after}"
    );
    let r = wa(["delete-device", f, "--device", "1", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(len(&file) * 4 < tight, "{tight} -> {}", len(&file));
    assert!(r.stdout.contains("the file is"), "{r:?}");
}

/// `salvage DAMAGED OUT`: a store with a zeroed page of sessions is
/// salvaged into a new store holding the device record and the other
/// sessions; the damaged file is left as it was; `--json` gives the report.
#[tokio::test]
async fn salvage_copies_what_a_damaged_store_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let damaged = dir.path().join("damaged.redb");
    let w = RedbStore::new(&damaged).await.unwrap();
    w.save(&wacore::store::Device::new()).await.unwrap();
    let value = |i: u32| format!("session-record-{i:04}-").repeat(20).into_bytes();
    for i in 0..400 {
        w.put_session(&format!("{i:04}@s.whatsapp.net.0"), &value(i))
            .await
            .unwrap();
    }
    w.close().await.unwrap();
    // Zero a page of sessions from the middle of the key range (a verified
    // file shows its values).
    let mut bytes = std::fs::read(&damaged).unwrap();
    let needle = value(200);
    let page = (1..bytes.len() / 4096)
        .find(|&b| {
            bytes[b * 4096..(b + 1) * 4096]
                .windows(40)
                .any(|w| w == &needle[..40])
        })
        .expect("the page of session 200");
    bytes[page * 4096..(page + 1) * 4096].fill(0);
    std::fs::write(&damaged, &bytes).unwrap();

    let out = dir.path().join("salvaged.redb");
    let r = wa(["salvage", s(&damaged), s(&out)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("device records recovered: 1"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("rows lost where it could not be read"),
        "{}",
        r.stdout
    );
    assert_eq!(
        std::fs::read(&damaged).unwrap(),
        bytes,
        "salvage wrote to DAMAGED"
    );
    let store = RedbStore::new(&out).await.unwrap();
    assert!(store.load().await.unwrap().is_some());
    let last = store.get_session("0399@s.whatsapp.net.0").await.unwrap();
    assert_eq!(last.map(|b| b.to_vec()), Some(value(399)));
    assert!(
        store
            .get_session("0200@s.whatsapp.net.0")
            .await
            .unwrap()
            .is_none()
    );
    store.close().await.unwrap();

    let again = dir.path().join("again.redb");
    let r = wa(["--json", "salvage", s(&damaged), s(&again)]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r.stdout);
    assert_eq!(v["accounts"], serde_json::json!([1]));
    let sessions = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "sessions")
        .unwrap();
    assert!(sessions["unreadable"].is_string(), "{sessions}");
    assert!(sessions["recovered"].as_u64().unwrap() < 400);
    // OUT must not exist.
    let r = wa(["salvage", s(&damaged), s(&out)]);
    assert_ne!(r.code, 0);
}
