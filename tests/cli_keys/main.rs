//! `wa-redb` and encrypted stores, driven as a user does: the key from
//! `--key-file`, `WA_REDB_KEY_FILE` or `WA_REDB_PASSPHRASE` (in that order),
//! a 64-hex-digit key file as a raw key, refusals that say what to do and
//! change nothing (exit status 4); `rekey`, `encrypt` and `decrypt` in
//! `conversions.rs`.
//!
//! Unix only: key files are judged by their mode bits.
#![cfg(unix)]

#[path = "../util/cli.rs"]
mod cli;

use std::ffi::OsStr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cli::{Run, command, json, run};
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig};

/// `rekey`, `encrypt` and `decrypt`.
mod conversions;

const PASSPHRASE: &str = "correct horse battery staple";
const ADDRESS: &str = "5511999999999@c.us.0";
const SESSION: &[u8] = b"the session record of an encrypted store";
const RAW: [u8; 32] = [0x5A; 32];
/// Exit status of a key problem.
const EXIT_KEY: i32 = 4;

/// Every variable wa-redb takes a key from.
const KEY_VARS: [&str; 4] = [
    "WA_REDB_KEY_FILE",
    "WA_REDB_PASSPHRASE",
    "WA_REDB_NEW_KEY_FILE",
    "WA_REDB_NEW_PASSPHRASE",
];

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `wa-redb ARGS` with no key variable set, after `setup`.
fn keyless(args: &[&str], setup: impl FnOnce(&mut std::process::Command)) -> Run {
    let mut cmd = command(args);
    for var in KEY_VARS {
        cmd.env_remove(var);
    }
    setup(&mut cmd);
    run(cmd)
}

/// `wa-redb ARGS` with only the key variables in `env` set.
fn wa_env(args: &[&str], env: &[(&str, &OsStr)]) -> Run {
    keyless(args, |cmd| {
        cmd.envs(env.iter().copied());
    })
}

/// `wa-redb ARGS` with no key in the environment.
fn wa(args: &[&str]) -> Run {
    wa_env(args, &[])
}

/// A key file holding `contents`, owner-only.
fn key_file(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, contents).unwrap();
    path
}

fn passphrase_config() -> RedbStoreConfig {
    RedbStoreConfig::default().with_passphrase(PASSPHRASE)
}

/// A closed store `name` in `dir` holding one session, made with `config`.
async fn store_with(dir: &Path, name: &str, config: RedbStoreConfig) -> PathBuf {
    let path = dir.join(name);
    let store = RedbStore::with_config(&path, config).await.unwrap();
    store.put_session(ADDRESS, SESSION).await.unwrap();
    store.close().await.unwrap();
    path
}

/// `text` with every run of white space one blank (hints are wrapped).
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `path`, opened with `config`, holds the session (not if it
/// does not open with it).
async fn holds_session(path: &Path, config: RedbStoreConfig) -> bool {
    let Ok(store) = RedbStore::with_config(path, config).await else {
        return false;
    };
    let session = store.get_session(ADDRESS).await.unwrap();
    store.close().await.unwrap();
    session.as_deref() == Some(SESSION)
}

/// Asserts that `path` holds `before`, byte for byte.
fn unchanged(path: &Path, before: &[u8], what: &str) {
    assert!(std::fs::read(path).unwrap() == before, "{what} changed it");
}

/// Asserts that stderr says each of `texts` (wrapping aside).
fn says(r: &Run, texts: &[&str]) {
    let said = flat(&r.stderr);
    for text in texts {
        assert!(said.contains(text), "{text:?} not said: {r:?}");
    }
}

/// Asserts a refusal for a key problem that says each of `texts`.
fn assert_key_refusal(r: &Run, what: &str, texts: &[&str]) {
    assert_eq!(r.code, EXIT_KEY, "{what}: {r:?}");
    assert!(r.stderr.starts_with("wa-redb: error: "), "{what}: {r:?}");
    assert!(!r.stderr.contains("panicked"), "{what}: {r:?}");
    says(r, texts);
}

#[tokio::test]
async fn without_its_key_an_encrypted_store_is_refused_and_left_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let file = store_with(dir.path(), "store.redb", passphrase_config()).await;
    let before = std::fs::read(&file).unwrap();
    let f = s(&file);
    let out = dir.path().join("out.redb");
    let o = s(&out);
    let new_key = key_file(dir.path(), "new.key", b"another passphrase\n");
    let n = s(&new_key);
    for args in [
        vec!["info", f],
        vec!["info", f, "--json"],
        vec!["dump", f],
        vec!["check", f],
        vec!["compact", f],
        vec!["backup", f, o],
        vec!["delete-device", f, "--device", "1", "--yes"],
        vec!["rekey", f, "--new-key-file", n],
        vec!["decrypt", f, o],
    ] {
        let r = wa(&args);
        assert_eq!(r.code, EXIT_KEY, "{args:?}: {r:?}");
        let text = if args.contains(&"--json") {
            let v = json(&r.stdout);
            assert_eq!(v["exit_code"], EXIT_KEY, "{args:?}: {r:?}");
            assert!(v["error"].as_str().unwrap().contains("encrypted"), "{v}");
            v["hint"].as_str().unwrap().to_string()
        } else {
            says(&r, &["the store is encrypted"]);
            r.stderr.clone()
        };
        for needed in ["--key-file", "WA_REDB_KEY_FILE", "WA_REDB_PASSPHRASE"] {
            assert!(text.contains(needed), "{args:?}: {needed}: {r:?}");
        }
        assert!(!r.stderr.contains("RedbStoreConfig"), "{args:?}: {r:?}");
        unchanged(&file, &before, &format!("{args:?}"));
        assert!(!out.exists(), "{args:?} wrote {o}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != "store.redb" && n != "new.key")
            .collect();
        assert!(leftovers.is_empty(), "{args:?} left {leftovers:?}");
    }
}

#[tokio::test]
async fn a_key_file_opens_info_check_and_dump() {
    let dir = tempfile::tempdir().unwrap();
    let file = store_with(dir.path(), "store.redb", passphrase_config()).await;
    let key = key_file(dir.path(), "pass.key", format!("{PASSPHRASE}\n").as_bytes());
    let (f, k) = (s(&file), s(&key));

    let r = wa(&["--key-file", k, "info", f]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("encrypted  yes"), "{r:?}");
    assert!(r.stdout.contains("sessions"), "{r:?}");
    assert!(r.stderr.is_empty(), "{r:?}");
    // Global: after the command too; JSON says it is encrypted.
    let r = wa(&["info", f, "--key-file", k, "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(json(&r.stdout)["encrypted"], true, "{r:?}");

    let r = wa(&["check", f, "--key-file", k]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("ok: "), "{r:?}");

    let r = wa(&["dump", f, "--key-file", k, "--table", "sessions"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(r#""value":"<redacted"#), "{r:?}");
    let r = wa(&[
        &["dump", f, "--key-file", k, "--reveal"][..],
        &["--table", "sessions"],
    ]
    .concat());
    assert_eq!(r.code, 0, "{r:?}");
    let rows: Vec<_> = r.stdout.lines().map(json).collect();
    assert_eq!(rows.len(), 1, "{r:?}");
    assert_eq!(rows[0]["key"][0], ADDRESS, "{r:?}");
    let hex: String = SESSION.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(rows[0]["value"], hex, "{r:?}");

    // A plain store says it is not encrypted.
    let plain = store_with(dir.path(), "plain.redb", RedbStoreConfig::default()).await;
    let r = wa(&["info", s(&plain)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("encrypted  no"), "{r:?}");
}

#[tokio::test]
async fn the_environment_gives_the_key_after_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let file = store_with(dir.path(), "store.redb", passphrase_config()).await;
    let f = s(&file);
    let good = key_file(dir.path(), "good.key", PASSPHRASE.as_bytes());
    let bad = key_file(dir.path(), "bad.key", b"not the passphrase");
    let info = ["info", f];
    let with_option = ["info", f, "--key-file", s(&good)];
    let (good, bad) = (good.as_os_str(), bad.as_os_str());
    let (right, wrong) = (OsStr::new(PASSPHRASE), OsStr::new("wrong"));
    // --key-file first, then WA_REDB_KEY_FILE, then WA_REDB_PASSPHRASE.
    for (args, env) in [
        (&info[..], vec![("WA_REDB_KEY_FILE", good)]),
        (&info, vec![("WA_REDB_PASSPHRASE", right)]),
        (
            &with_option,
            vec![("WA_REDB_KEY_FILE", bad), ("WA_REDB_PASSPHRASE", wrong)],
        ),
        (
            &info,
            vec![("WA_REDB_KEY_FILE", good), ("WA_REDB_PASSPHRASE", wrong)],
        ),
    ] {
        let r = wa_env(args, &env);
        assert_eq!(r.code, 0, "{args:?} {env:?}: {r:?}");
    }
    let r = wa_env(
        &info,
        &[("WA_REDB_KEY_FILE", bad), ("WA_REDB_PASSPHRASE", right)],
    );
    let texts = ["WA_REDB_KEY_FILE", "bad.key"];
    assert_key_refusal(&r, "WA_REDB_KEY_FILE wins", &texts);

    // A wrong passphrase in the environment is named as its source.
    let r = wa_env(&info, &[("WA_REDB_PASSPHRASE", wrong)]);
    assert_key_refusal(&r, "wrong WA_REDB_PASSPHRASE", &["from WA_REDB_PASSPHRASE"]);
    // A key file WA_REDB_KEY_FILE names that is not there.
    let missing = dir.path().join("missing.key");
    let r = wa_env(&info, &[("WA_REDB_KEY_FILE", missing.as_os_str())]);
    assert_key_refusal(
        &r,
        "missing WA_REDB_KEY_FILE",
        &["missing.key", "WA_REDB_KEY_FILE"],
    );
}

#[tokio::test]
async fn a_wrong_key_is_refused_clearly_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = store_with(dir.path(), "store.redb", passphrase_config()).await;
    let before = std::fs::read(&file).unwrap();
    let f = s(&file);
    let wrong = key_file(dir.path(), "wrong.key", b"not the passphrase\n");
    let hex: String = "5a".repeat(32);
    let raw = key_file(dir.path(), "raw.key", hex.as_bytes());

    for command in [&["info", f][..], &["check", f], &["compact", f]] {
        let mut args = command.to_vec();
        args.extend(["--key-file", s(&wrong)]);
        let r = wa(&args);
        assert_key_refusal(&r, "wrong passphrase", &["does not open", "wrong.key"]);
        assert!(!r.stdout.contains("DAMAGED"), "{r:?}");
        unchanged(&file, &before, "a refusal");
    }
    let r = wa(&["info", f, "--key-file", s(&raw), "--json"]);
    assert_eq!(r.code, EXIT_KEY, "{r:?}");
    let v = json(&r.stdout);
    assert!(v["error"].to_string().contains("with a passphrase"), "{v}");
    assert!(v["hint"].to_string().contains("64 hex digits"), "{v}");
    unchanged(&file, &before, "a refusal");

    // A key for a store that is not encrypted.
    let plain = store_with(dir.path(), "plain.redb", RedbStoreConfig::default()).await;
    let plain_before = std::fs::read(&plain).unwrap();
    let r = wa(&["info", s(&plain), "--key-file", s(&wrong)]);
    assert_key_refusal(
        &r,
        "key for a plain store",
        &["not encrypted", "wa-redb encrypt"],
    );
    unchanged(&plain, &plain_before, "a refusal");
}

#[tokio::test]
async fn a_key_file_can_be_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let file = store_with(dir.path(), "store.redb", passphrase_config()).await;
    let (reader, mut writer) = std::io::pipe().unwrap();
    std::io::Write::write_all(&mut writer, format!("{PASSPHRASE}\n").as_bytes()).unwrap();
    drop(writer);
    let r = keyless(&["info", s(&file), "--key-file", "/dev/stdin"], |cmd| {
        cmd.stdin(reader);
    });
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.is_empty(), "no warning for a pipe: {r:?}");
}

#[tokio::test]
async fn a_key_file_of_64_hex_digits_is_a_raw_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = RedbStoreConfig::default().with_encryption_key(RAW);
    let file = store_with(dir.path(), "store.redb", config).await;
    let f = s(&file);
    // Upper case and white space around the digits are fine.
    let hex = key_file(
        dir.path(),
        "raw.key",
        format!("  {}\r\n", "5A".repeat(32)).as_bytes(),
    );
    let r = wa(&["info", f, "--key-file", s(&hex)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("encrypted  yes"), "{r:?}");
    let r = wa_env(&["check", f], &[("WA_REDB_KEY_FILE", hex.as_os_str())]);
    assert_eq!(r.code, 0, "{r:?}");
    // 63 digits are a passphrase: the other kind of key.
    let short = key_file(dir.path(), "short.key", &"5a".repeat(32).as_bytes()[..63]);
    let r = wa(&["info", f, "--key-file", s(&short)]);
    assert_key_refusal(
        &r,
        "63 hex digits",
        &["encrypted with a raw", "gives a passphrase"],
    );
}

#[tokio::test]
async fn an_unusable_key_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = store_with(dir.path(), "store.redb", passphrase_config()).await;
    let f = s(&file);
    let cases: Vec<(PathBuf, &str)> = vec![
        (key_file(dir.path(), "empty.key", b""), "empty"),
        (key_file(dir.path(), "blank.key", b"\n"), "white space"),
        (key_file(dir.path(), "latin1.key", b"p\xe4ss\n"), "UTF-8"),
        (dir.path().join("missing.key"), "cannot open it"),
        (dir.path().to_path_buf(), "a directory"),
        (
            key_file(dir.path(), "huge.key", &vec![b'x'; 1 << 17]),
            "not a key file",
        ),
    ];
    for (key, what) in &cases {
        let r = wa(&["info", f, "--key-file", s(key)]);
        assert_key_refusal(&r, what, &[s(key), what]);
        let r = wa(&["info", f, "--key-file", s(key), "--json"]);
        let v = json(&r.stdout);
        assert_eq!(v["exit_code"], EXIT_KEY, "{v}");
        assert!(v["error"].to_string().contains(what), "{v}");
    }
    // The same checks for rekey's new key.
    let good = key_file(dir.path(), "good.key", PASSPHRASE.as_bytes());
    let before = std::fs::read(&file).unwrap();
    let r = wa(&[
        "rekey",
        f,
        "--key-file",
        s(&good),
        "--new-key-file",
        s(&cases[0].0),
    ]);
    assert_key_refusal(&r, "an empty new key file", &["empty.key"]);
    unchanged(&file, &before, "a refusal");
}

#[tokio::test]
async fn a_key_file_others_can_read_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let file = store_with(dir.path(), "store.redb", passphrase_config()).await;
    let key = key_file(dir.path(), "pass.key", PASSPHRASE.as_bytes());
    let args = ["info", s(&file), "--key-file", s(&key)];
    let r = wa(&args);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("warning"), "owner-only: {r:?}");
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let r = wa(&args);
        assert_eq!(r.code, 0, "{mode:o}: {r:?}");
        let warnings: Vec<&str> = r.stderr.lines().filter(|l| l.contains("warning")).collect();
        assert_eq!(warnings.len(), 1, "{mode:o}: {r:?}");
        assert!(
            warnings[0].starts_with("wa-redb: warning: key file"),
            "{r:?}"
        );
        assert!(warnings[0].contains("pass.key"), "{r:?}");
        assert!(warnings[0].contains("chmod 600"), "{r:?}");
    }
}

#[tokio::test]
async fn backup_compact_restore_and_delete_device_take_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = store_with(dir.path(), "store.redb", passphrase_config()).await;
    let key = key_file(dir.path(), "pass.key", PASSPHRASE.as_bytes());
    let (f, k) = (s(&file), s(&key));
    let backup = dir.path().join("backup.redb");

    let r = wa(&["backup", f, s(&backup), "--key-file", k]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("encrypted with the same key"), "{r:?}");
    assert!(RedbStore::open_to_look(&backup).is_err());
    assert!(holds_session(&backup, passphrase_config()).await);

    let r = wa(&["compact", f, "--key-file", k, "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = wa(&[
        "delete-device",
        f,
        "--device",
        "1",
        "--yes",
        "--key-file",
        k,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!holds_session(&file, passphrase_config()).await);

    let r = wa(&["restore", s(&backup), f, "--yes", "--key-file", k]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(holds_session(&file, passphrase_config()).await);
    let r = wa(&["restore", s(&backup), f, "--yes"]);
    assert_key_refusal(&r, "restore without the key", &[]);
}

#[test]
fn the_key_commands_have_help_for_every_argument() {
    let help = wa(&["--help"]);
    assert_eq!(help.code, 0, "{help:?}");
    for needed in [
        "rekey",
        "encrypt",
        "decrypt",
        "--key-file",
        "4 a key problem",
    ] {
        assert!(help.stdout.contains(needed), "{needed}: {}", help.stdout);
    }
    for (sub, positionals) in [("rekey", 1), ("encrypt", 2), ("decrypt", 2)] {
        // Short help: "  <NAME>  help" on one line each.
        let r = wa(&[sub, "-h"]);
        assert_eq!(r.code, 0, "{sub}: {r:?}");
        let args: Vec<&str> = (r.stdout.lines())
            .skip_while(|l| *l != "Arguments:")
            .skip(1)
            .take_while(|l| l.starts_with("  <"))
            .collect();
        assert_eq!(args.len(), positionals, "{sub}: {}", r.stdout);
        for line in args {
            let help = line.trim_start().split_once("  ").map(|(_, h)| h.trim());
            assert!(help.is_some_and(|h| !h.is_empty()), "{sub}: {line:?}");
        }
    }
    let r = wa(&["rekey", "--help"]);
    for needed in ["--new-key-file", "--new-data-key", "WA_REDB_NEW_PASSPHRASE"] {
        assert!(r.stdout.contains(needed), "{needed}: {}", r.stdout);
    }
}

#[tokio::test]
async fn the_key_commands_exit_quietly_into_a_closed_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let plain = store_with(dir.path(), "plain.redb", RedbStoreConfig::default()).await;
    let key = key_file(dir.path(), "pass.key", PASSPHRASE.as_bytes());
    let new = key_file(dir.path(), "new.key", b"new passphrase");
    let (enc, dec) = (dir.path().join("enc.redb"), dir.path().join("dec.redb"));
    let k = s(&key);
    for args in [
        vec!["encrypt", s(&plain), s(&enc), "--key-file", k],
        vec!["rekey", s(&enc), "--key-file", k, "--new-key-file", s(&new)],
        vec!["decrypt", s(&enc), s(&dec), "--key-file", s(&new), "--json"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let r = keyless(&args, |cmd| {
            cmd.stdout(writer);
        });
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert!(r.stderr.is_empty(), "{args:?}: {r:?}");
    }
    assert!(holds_session(&dec, RedbStoreConfig::default()).await);
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_and_export_sqlite_take_the_key() {
    use whatsapp_rust_sqlite_storage::SqliteStore;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let sqlite = SqliteStore::new_for_device(s(&db), 1).await.unwrap();
    sqlite.save(&wacore::store::Device::new()).await.unwrap();
    sqlite.put_session(ADDRESS, SESSION).await.unwrap();
    drop(sqlite);
    let key = key_file(dir.path(), "pass.key", PASSPHRASE.as_bytes());
    let file = dir.path().join("store.redb");
    let f = s(&file);

    // An import into a new store with a key creates it encrypted.
    let r = wa(&["import-sqlite", s(&db), f, "--key-file", s(&key)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("(new file, encrypted)"), "{r:?}");
    assert!(RedbStore::open_to_look(&file).is_err(), "not encrypted");
    assert!(holds_session(&file, passphrase_config()).await);
    // Into an existing encrypted store: only with its key.
    let r = wa(&["import-sqlite", s(&db), f, "--overwrite", "--yes"]);
    assert_key_refusal(&r, "import into an encrypted store without its key", &[]);

    // The export reads the encrypted store with its key.
    let out = dir.path().join("out.db");
    let r = wa(&["export-sqlite", f, s(&out)]);
    assert_key_refusal(&r, "export without the key", &[]);
    let r = wa_env(
        &["export-sqlite", f, s(&out)],
        &[("WA_REDB_PASSPHRASE", OsStr::new(PASSPHRASE))],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let exported = SqliteStore::new_for_device(s(&out), 1).await.unwrap();
    assert_eq!(
        exported.get_session(ADDRESS).await.unwrap().as_deref(),
        Some(SESSION)
    );
}
