//! The `wa-redb` binary (feature `cli`; the SQLite commands also need
//! `sqlite`): output, JSON output and exit status of every command, on good
//! files, missing files, damaged files, bad arguments, and a file another
//! process holds open.

#[path = "util/cli.rs"]
mod cli;
#[path = "util/process.rs"]
mod process;

use std::ffi::OsStr;
use std::io::BufReader;
use std::path::Path;
use std::process::Child;

use cli::{dump, fixture, json, wa};
use serde_json::Value;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::RedbStore;

#[test]
fn bad_arguments_are_usage_errors() {
    let none = wa::<_, &str>([]);
    assert_eq!(none.code, 2, "{none:?}");
    assert!(none.stderr.contains("Usage"), "{none:?}");
    for args in [
        &["frobnicate"][..],
        &["info"],
        &["dump", "x.redb", "--device", "one"],
        &["delete-device", "x.redb"],
        &["delete-device", "x.redb", "two"],
        &["delete-device", "x.redb", "--device", "two"],
        &["export", "x.redb"],
        &["export-sqlite", "x.redb"],
        &["info", "a.redb", "b.redb"],
    ] {
        let r = wa(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains("error"), "{args:?}: {r:?}");
    }
    let help = wa(["--help"]);
    assert_eq!(help.code, 0);
    for command in [
        "info",
        "dump",
        "check",
        "compact",
        "backup",
        "restore",
        "import-sqlite",
        "export-sqlite",
        "delete-device",
    ] {
        assert!(help.stdout.contains(command), "{command}: {}", help.stdout);
    }
    assert!(help.stdout.contains("Exit status"));
    assert_eq!(wa(["--version"]).code, 0);
}

#[test]
fn a_missing_file_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.redb");
    let m = missing.to_str().unwrap();
    let dest = dir.path().join("dest.redb");
    let d = dest.to_str().unwrap();
    for args in [
        vec!["info", m],
        vec!["dump", m],
        vec!["check", m],
        vec!["compact", m],
        vec!["backup", m, d],
        vec!["restore", m, d],
        vec!["delete-device", m, "--device", "1", "--yes"],
    ] {
        let r = wa(&args);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert!(r.stderr.contains("missing.redb"), "{args:?}: {r:?}");
        assert!(r.stderr.contains("no such file"), "{args:?}: {r:?}");
        assert!(!missing.exists(), "{args:?} created the file");
        assert!(!dest.exists(), "{args:?} created the destination");
    }
}

#[tokio::test]
async fn info_lists_accounts_and_tables() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture(dir.path()).await;
    let r = wa([OsStr::new("info"), file.as_os_str()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("accounts   2"), "{}", r.stdout);
    assert!(r.stdout.contains("user-2"), "{}", r.stdout);
    assert!(r.stdout.contains("sessions"), "{}", r.stdout);
    let r = wa([OsStr::new("info"), file.as_os_str(), OsStr::new("--json")]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r.stdout);
    let ids: Vec<i64> = v["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["device_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2]);
    assert_eq!(v["accounts"][0]["push_name"], "user-1");
    assert_eq!(v["schema_version"], 2);
    let sessions = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "sessions")
        .unwrap();
    assert_eq!(sessions["rows"], 60);
    // `--json` is global: before the command too.
    let before = wa([OsStr::new("--json"), OsStr::new("info"), file.as_os_str()]);
    assert_eq!(json(&before.stdout)["accounts"], v["accounts"]);
}

#[tokio::test]
async fn dump_prints_json_lines_with_secrets_redacted_unless_revealed() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture(dir.path()).await;
    let (r, rows) = dump(&file, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(rows.len() > 60, "{}", rows.len());
    for row in &rows {
        let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "{row}");
        for k in ["table", "device", "key", "value"] {
            assert!(row.get(k).is_some(), "{row}");
        }
    }
    let first = r.stdout.lines().next().unwrap();
    assert!(
        first.starts_with(r#"{"table":"meta","device":null,"key":["#),
        "{first}"
    );
    let session = rows.iter().find(|r| r["table"] == "sessions").unwrap();
    assert_eq!(session["value"], "<redacted 64 bytes>");
    let device = rows.iter().find(|r| r["table"] == "devices").unwrap();
    assert_eq!(device["value"]["adv_secret_key"], "<redacted 32 bytes>");
    assert_eq!(
        device["value"]["noise_key"]["private"],
        "<redacted 32 bytes>"
    );
    assert_eq!(
        device["value"]["noise_key"]["public"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    let secret = rows.iter().find(|r| r["table"] == "msg_secrets").unwrap();
    assert_eq!(secret["value"]["secret"], "<redacted 32 bytes>");
    assert_eq!(
        secret["key"],
        serde_json::json!(["c@s.whatsapp.net", "a@lid", "M1"])
    );
    let prekeys: Vec<&Value> = rows.iter().filter(|r| r["table"] == "prekeys").collect();
    assert_eq!(prekeys[0]["key"], serde_json::json!([1]));
    assert_eq!(prekeys[0]["value"]["uploaded"], true);
    assert_eq!(prekeys[1]["value"]["uploaded"], false);
    let identity = rows.iter().find(|r| r["table"] == "identities").unwrap();
    assert_eq!(identity["value"], "07".repeat(32), "public keys are shown");
    assert!(
        !r.stdout.contains(&"ee".repeat(32)),
        "the message secret leaked"
    );

    // --reveal shows them (and warns).
    let (r, rows) = dump(&file, &["--reveal", "--table", "msg_secrets"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("warning"), "{r:?}");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["value"]["secret"], "ee".repeat(32));

    // --device and --table select.
    let (r, rows) = dump(&file, &["--device", "2"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(rows.iter().all(|r| r["device"] == 2), "{}", r.stdout);
    let (_, sessions) = dump(&file, &["--device", "2", "--table", "sessions"]);
    assert_eq!(sessions.len(), 30);
    assert!(sessions.iter().all(|r| r["table"] == "sessions"));
    // An account the store does not have is an error, not an empty dump.
    let (r, rows) = dump(&file, &["--device", "9"]);
    assert_eq!((r.code, rows.len()), (1, 0), "{r:?}");
    assert!(r.stderr.contains("no account with device id 9"), "{r:?}");
    let (r, _) = dump(&file, &["--table", "nope"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("unknown table \"nope\""), "{r:?}");
    assert!(r.stderr.contains("sessions"), "{r:?}");
}

#[tokio::test]
async fn check_says_by_its_exit_status_whether_a_file_is_sound() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture(dir.path()).await;
    let r = wa([OsStr::new("check"), file.as_os_str()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("ok: "), "{r:?}");
    let r = wa([OsStr::new("check"), file.as_os_str(), OsStr::new("--json")]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r.stdout);
    assert_eq!(
        (v["ok"].clone(), v["pages_ok"].clone()),
        (true.into(), true.into())
    );
    assert!(v["rows_checked"].as_u64().unwrap() > 60);

    let bytes = std::fs::read(&file).unwrap();
    let mut garbage = bytes.clone();
    for (i, b) in garbage.iter_mut().enumerate().skip(4096) {
        *b = (i as u8).wrapping_mul(31) ^ 0x5A;
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.redb", bytes[..bytes.len() / 3].to_vec()),
        ("garbage.redb", garbage),
        ("text.redb", b"just some text, not a store\n".to_vec()),
        ("empty.redb", Vec::new()),
    ];
    for (name, data) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        let r = wa([OsStr::new("check"), path.as_os_str()]);
        assert_eq!(r.code, 1, "{name}: {r:?}");
        assert!(!r.stderr.contains("panicked"), "{name}: {r:?}");
        let r_json = wa([OsStr::new("check"), path.as_os_str(), OsStr::new("--json")]);
        assert_eq!(r_json.code, 1, "{name}: {r_json:?}");
        if name == "text.redb" || name == "empty.redb" {
            // No store at all: an error, as `info` says, not damage.
            assert!(r.stdout.is_empty(), "{name}: {r:?}");
            assert!(
                r.stderr.contains("not a whatsapp-rust-redb-storage store"),
                "{name}: {r:?}"
            );
            assert!(json(&r_json.stdout)["error"].is_string(), "{name}");
        } else {
            assert!(r.stdout.starts_with("DAMAGED"), "{name}: {r:?}");
            assert_eq!(json(&r_json.stdout)["ok"], false, "{name}");
        }
        // Other commands refuse it clearly, too.
        let r = wa([OsStr::new("info"), path.as_os_str()]);
        assert_eq!(r.code, 1, "{name}: {r:?}");
        assert!(r.stderr.starts_with("wa-redb: error: "), "{name}: {r:?}");
        assert!(!r.stderr.contains("panicked"), "{name}: {r:?}");
    }
}

#[tokio::test]
async fn compact_backup_restore_and_delete_device() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture(dir.path()).await;
    let f = file.to_str().unwrap();

    // Backup, and the backup is a sound store with the same accounts.
    let backup = dir.path().join("backup.redb");
    let b = backup.to_str().unwrap();
    // The source is only read: byte for byte the same afterwards.
    assert_eq!(wa(["compact", f]).code, 0);
    let source = std::fs::read(&file).unwrap();
    let r = wa(["backup", f, b]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("backup of"), "{r:?}");
    assert!(
        std::fs::read(&file).unwrap() == source,
        "backup changed its source"
    );
    assert_eq!(wa(["check", b]).code, 0);
    let r = wa(["backup", f, b]);
    assert_eq!(r.code, 1, "an existing destination is refused: {r:?}");
    assert!(r.stderr.contains("already exists"), "{r:?}");

    // Delete an account; then compact.
    let r = wa(["delete-device", f, "--device", "2", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("deleted device 2"), "{r:?}");
    let r = wa(["delete-device", f, "--device", "2", "--yes"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("no account with device id 2 (accounts: 1)"),
        "{r:?}"
    );
    let v = json(&wa(["info", f, "--json"]).stdout);
    assert_eq!(v["accounts"].as_array().unwrap().len(), 1);
    let r = wa(["compact", f, "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r.stdout);
    assert!(v["bytes_after"].as_u64().unwrap() <= v["bytes_before"].as_u64().unwrap());
    let r = wa(["compact", f]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("compacted "), "{r:?}");
    assert!(
        r.stdout.contains("nothing to free"),
        "a second compact: {r:?}"
    );
    // Packed full: never larger.
    let r = wa(["compact", f, "--maximum", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r.stdout);
    assert!(v["bytes_after"].as_u64().unwrap() <= v["bytes_before"].as_u64().unwrap());
    assert_eq!(wa(["check", f]).code, 0, "sound after --maximum");

    // Restore brings account 2 back.
    let r = wa(["restore", b, f, "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("restored"), "{r:?}");
    let v = json(&wa(["info", f, "--json"]).stdout);
    assert_eq!(v["accounts"].as_array().unwrap().len(), 2);
    // Restoring from something that is not a backup is refused.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    let r = wa([
        OsStr::new("restore"),
        text.as_os_str(),
        file.as_os_str(),
        OsStr::new("--yes"),
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("not a whatsapp-rust-redb-storage store"),
        "{r:?}"
    );
    assert!(!r.stderr.contains("magic number"), "{r:?}");
    assert_eq!(wa(["check", f]).code, 0, "the target is untouched");
    // A dump of an account the store does not have is an error.
    let r = wa(["dump", f, "--device", "99"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no account with device id 99"), "{r:?}");
}

/// Child half of `a_file_held_open_by_another_process_gives_a_clear_error`.
#[tokio::test]
#[ignore]
async fn child_holds_store_open() {
    let Some(path) = std::env::var_os("WA_REDB_HOLD") else {
        return;
    };
    let store = RedbStore::new(&path).await.unwrap();
    store.put_session("held@c.us.0", b"x").await.unwrap();
    process::report_and_wait("READY");
    drop(store);
}

/// Starts a child process holding `path` open; returns once it does. Keep
/// the reader (the child's stdout) until the child has exited.
fn hold(path: &Path) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut cmd = process::self_command("child_holds_store_open");
    cmd.env("WA_REDB_HOLD", path);
    process::spawn_until(cmd, "READY")
}

#[tokio::test]
async fn a_file_held_open_by_another_process_gives_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = fixture(dir.path()).await;
    let f = file.to_str().unwrap();
    let other = dir.path().join("other.redb");
    let o = other.to_str().unwrap();
    std::fs::copy(&file, &other).unwrap();
    let (mut child, mut child_out) = hold(&file);
    #[cfg_attr(not(feature = "sqlite"), allow(unused_mut))]
    // Commands that change the store (looking works: tests/looking.rs).
    let mut commands: Vec<Vec<String>> = [
        &["compact", f][..],
        &["restore", o, f, "--yes"],
        &["delete-device", f, "--device", "1", "--yes"],
    ]
    .iter()
    .map(|args| args.iter().map(|a| a.to_string()).collect())
    .collect();
    #[cfg(feature = "sqlite")]
    {
        // A valid (empty) SqliteStore file, so that the import gets as far
        // as opening the store file.
        let empty = dir.path().join("empty.db").to_str().unwrap().to_string();
        whatsapp_rust_sqlite_storage::SqliteStore::new(&empty)
            .await
            .unwrap();
        commands.push(vec!["import-sqlite".into(), empty, f.into()]);
    }
    for args in &commands {
        // Waits the default busy timeout (5 s) for the other process, then
        // says why (a wait without end fails the test: `cli::run`).
        let r = wa(args);
        assert_eq!(r.code, 3, "{args:?}: {r:?}");
        assert!(
            r.stderr.contains("is open in another process"),
            "{args:?}: {r:?}"
        );
        assert!(r.stderr.contains("store.redb"), "{args:?}: {r:?}");
        // Once, in the command line's terms.
        assert_eq!(r.stderr.matches("stop the application").count(), 1, "{r:?}");
        assert!(r.stderr.contains("wa-redb backup"), "{args:?}: {r:?}");
        assert!(!r.stderr.contains("RedbStore"), "{args:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{args:?}: {r:?}");
    }
    // With --json, the same as a JSON object on stdout.
    let r = wa(["compact", f, "--json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let v = json(&r.stdout);
    assert_eq!(v["exit_code"], 3, "{v}");
    assert!(
        v["hint"].as_str().unwrap().contains("wa-redb backup"),
        "{v}"
    );
    // A backup of the store in use works, and holds what the other process
    // wrote (as of its last checkpoint plus its complete journal records).
    let copy = dir.path().join("copy.redb");
    let r = wa([OsStr::new("backup"), file.as_os_str(), copy.as_os_str()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("open in another process"),
        "a note says so: {r:?}"
    );
    let (_, rows) = dump(&copy, &["--table", "sessions", "--device", "1"]);
    assert!(rows.iter().any(|r| r["key"][0] == "held@c.us.0"));
    drop(child.stdin.take());
    std::io::Read::read_to_end(&mut child_out, &mut Vec::new()).unwrap();
    assert!(child.wait().unwrap().success());
    // Once the other process is gone, everything works, and the file holds
    // what the other process wrote.
    assert_eq!(wa(["check", f]).code, 0);
    let (_, rows) = dump(&file, &["--table", "sessions", "--device", "1"]);
    assert!(rows.iter().any(|r| r["key"][0] == "held@c.us.0"));
    assert!(!dir.path().join("unused.redb").exists());
}

#[tokio::test]
async fn a_sqlite_file_is_not_taken_for_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.resize(4096, 0);
    std::fs::write(&db, bytes).unwrap();
    let r = wa([OsStr::new("info"), db.as_os_str()]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("wa-redb import-sqlite"), "{r:?}");
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_sqlite_and_export_to_sqlite() {
    use whatsapp_rust_sqlite_storage::SqliteStore;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let url = db.to_str().unwrap();
    for d in [1, 2] {
        let s = SqliteStore::new_for_device(url, d).await.unwrap();
        let mut dev = wacore::store::Device::new();
        dev.push_name = format!("sqlite-{d}");
        s.save(&dev).await.unwrap();
        s.put_session("a@c.us.0", &[d as u8; 10]).await.unwrap();
        s.store_prekeys_batch(&[(1, bytes::Bytes::from_static(b"k"))], true)
            .await
            .unwrap();
        s.put_lid_mapping(&cli::lid_mapping()).await.unwrap();
    }
    let file = dir.path().join("store.redb");
    let f = file.to_str().unwrap();
    let r = wa(["import-sqlite", url, f]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("imported 2 account(s)"), "{r:?}");
    assert!(r.stdout.contains("(new file)"), "{r:?}");
    assert!(r.stdout.contains("row counts verified"), "{r:?}");
    let v = json(&wa(["info", f, "--json"]).stdout);
    assert_eq!(v["accounts"][1]["push_name"], "sqlite-2");
    let (_, rows) = dump(&file, &["--table", "prekeys", "--device", "2"]);
    assert_eq!(rows[0]["value"]["uploaded"], true);

    // Again: refused, then replaced with --overwrite.
    let r = wa(["import-sqlite", url, f]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("already holds device id(s) 1, 2"),
        "{r:?}"
    );
    let r = wa(["import-sqlite", url, f, "--overwrite", "--yes", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let v = json(&r.stdout);
    assert_eq!(v["accounts"][0]["replaced"], true);
    assert_eq!(v["accounts"][0]["rows"]["sessions"], 1);
    assert_eq!(v["created_file"], false);

    // Not a SQLite file.
    let r = wa(["import-sqlite", f, "other.redb"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("not a SQLite database"), "{r:?}");

    // Export one account to a new SqliteStore file.
    let out = dir.path().join("out.db");
    let o = out.to_str().unwrap();
    let r = wa(["export-sqlite", f, o, "--device", "2"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("exported device 2"), "{r:?}");
    let s = SqliteStore::new_for_device(o, 2).await.unwrap();
    assert_eq!(s.load().await.unwrap().unwrap().push_name, "sqlite-2");
    assert_eq!(
        s.get_session("a@c.us.0").await.unwrap().unwrap(),
        &[2u8; 10][..]
    );
    assert!(
        !SqliteStore::new_for_device(o, 1)
            .await
            .unwrap()
            .exists()
            .await
            .unwrap()
    );
    let r = wa(["export-sqlite", f, o, "--device", "2"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("already holds device id(s) 2"), "{r:?}");
    assert!(r.stderr.contains("--overwrite"), "{r:?}");
    // The old spelling still works.
    let r = wa(["export", f, "--to-sqlite", o, "--device", "1", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(json(&r.stdout)[0]["device_id"], 1);
    assert_eq!(json(&r.stdout)[0]["replaced"], false);
    // --overwrite replaces the account the SQLite file holds.
    let r = wa([
        "export-sqlite",
        f,
        o,
        "--device",
        "2",
        "--overwrite",
        "--yes",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(json(&r.stdout)[0]["replaced"], true);
    let s = SqliteStore::new_for_device(o, 2).await.unwrap();
    assert_eq!(s.load().await.unwrap().unwrap().push_name, "sqlite-2");
}

#[cfg(not(feature = "sqlite"))]
#[test]
fn sqlite_commands_explain_the_missing_feature() {
    let r = wa(["import-sqlite", "a.db", "b.redb"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("--features cli,sqlite"), "{r:?}");
}

/// `import-sqlite` refuses a SQLite file that is not a SqliteStore, and a
/// SqliteStore of a newer whatsapp-rust-sqlite-storage, without writing to
/// it or creating anything.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_sqlite_refuses_what_it_cannot_import_and_writes_nothing() {
    use diesel::{Connection, RunQueryDsl, SqliteConnection};
    let execute = |path: &Path, sql: &[&str]| {
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        for s in sql {
            diesel::sql_query(*s).execute(&mut conn).unwrap();
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.db");
    execute(&plain, &["CREATE TABLE t(x)", "INSERT INTO t VALUES (1)"]);
    let newer = dir.path().join("newer.db");
    let s = whatsapp_rust_sqlite_storage::SqliteStore::new(newer.to_str().unwrap())
        .await
        .unwrap();
    s.put_session("a@c.us.0", b"s").await.unwrap();
    drop(s);
    execute(
        &newer,
        &["INSERT INTO __diesel_schema_migrations (version) VALUES ('20990101000000')"],
    );
    let files = || {
        let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read(e.path()).unwrap())
            })
            .collect();
        all.sort();
        all
    };
    let before = files();
    let store = dir.path().join("store.redb");
    let r = wa([
        OsStr::new("import-sqlite"),
        plain.as_os_str(),
        store.as_os_str(),
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    assert!(r.stderr.contains(plain.to_str().unwrap()), "{r:?}");
    assert!(
        r.stderr
            .contains("not a whatsapp-rust SqliteStore database"),
        "{r:?}"
    );
    let r = wa([
        OsStr::new("import-sqlite"),
        newer.as_os_str(),
        store.as_os_str(),
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    assert!(r.stderr.contains(newer.to_str().unwrap()), "{r:?}");
    assert!(
        r.stderr
            .contains("newer whatsapp-rust-sqlite-storage (unknown migrations: 20990101000000)"),
        "{r:?}"
    );
    assert!(r.stderr.contains("upgrade wa-redb"), "{r:?}");
    assert!(files() == before, "the directory changed");
}
