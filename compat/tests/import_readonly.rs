//! `import_sqlite` only reads the SQLite file: it never writes it, its
//! `-wal` or its `-shm`, and creates nothing beside it. It imports what a
//! killed SqliteStore process left in its write-ahead log, refuses a SQLite
//! file that is not a SqliteStore and a SqliteStore written by a newer
//! whatsapp-rust-sqlite-storage (before touching the destination), and
//! migrates an older SqliteStore on its private copy only.

#[path = "../../tests/common/diff_util.rs"]
mod diff_util;
/// The import test's data set, for its device records.
#[path = "import/fixture.rs"]
#[allow(dead_code)]
mod fixture;
#[path = "../../tests/util/process.rs"]
mod process;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use diesel::{Connection, RunQueryDsl, SqliteConnection};
use diff_util::{canon_device, dbg};
use fixture::device_spec;
use wacore::store::error::StoreError;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{Error, ImportOptions, RedbStore, import_sqlite};
use whatsapp_rust_sqlite_storage::SqliteStore;

const DEVICES: [i32; 2] = [1, 7];
const N: u32 = 40;
/// Where the child of the killed-writer test writes its SqliteStore.
const CHILD_DB: &str = "WA_REDB_TEST_KILLED_SQLITE";

fn addr(i: u32) -> String {
    format!("55{i:08}:{}@c.us.0", i % 3)
}
fn blob(d: i32, tag: &str, i: u32) -> Vec<u8> {
    let len = 1 + (i as usize * 5 + tag.len()) % 40;
    (0..len)
        .map(|k| (k as u32 ^ i ^ (d as u32) << 3).wrapping_add(tag.len() as u32) as u8)
        .collect()
}
fn key32(d: i32, i: u32) -> [u8; 32] {
    let mut k = [d as u8; 32];
    k[..4].copy_from_slice(&i.to_be_bytes());
    k
}
fn lid_entry(i: u32) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: format!("1000{i:06}"),
        phone_number: format!("5521{:06}", i / 2),
        created_at: 1_600_000_000 + i as i64,
        updated_at: 1_700_000_000 + i as i64,
        learning_source: "usync".into(),
    }
}
/// Writes account `d` through the trait API.
async fn fill(s: &dyn Backend, d: i32) {
    s.save(&device_spec(d).build()).await.unwrap();
    let sessions: Vec<(Arc<str>, Bytes)> = (0..N)
        .map(|i| (Arc::from(addr(i)), Bytes::from(blob(d, "session", i))))
        .collect();
    s.put_sessions_batch(&sessions).await.unwrap();
    for i in 0..N {
        s.put_identity(&addr(i), key32(d, i)).await.unwrap();
        s.store_prekey(i + 1, &blob(d, "prekey", i), i % 2 == 0)
            .await
            .unwrap();
        s.put_sender_key(&addr(i), &blob(d, "senderkey", i))
            .await
            .unwrap();
        s.store_sent_message("c@s.whatsapp.net", &format!("M{i}"), &blob(d, "sent", i))
            .await
            .unwrap();
    }
    let lids: Vec<LidPnMappingEntry> = (0..N).map(lid_entry).collect();
    s.put_lid_mappings(&lids).await.unwrap();
}

/// What `fill` wrote, as [`reads`] renders it.
fn written(d: i32) -> Vec<String> {
    let mut out = vec![canon_device(&device_spec(d).build(), false)];
    for i in 0..N {
        out.push(dbg(Some(Bytes::from(blob(d, "session", i)))));
        out.push(dbg(Some(key32(d, i))));
        out.push(dbg(Some(Bytes::from(blob(d, "prekey", i)))));
        out.push(dbg(Some(blob(d, "senderkey", i))));
        out.push(dbg(Some(lid_entry(i))));
        out.push(dbg(Some(blob(d, "sent", i))));
    }
    out
}

/// Reads back every row `fill` writes (the sent messages are taken).
async fn reads(s: &dyn Backend) -> Vec<String> {
    let device = s.load().await.unwrap().expect("the device record");
    let mut out = vec![canon_device(&device, false)];
    for i in 0..N {
        out.push(dbg(s.get_session(&addr(i)).await.unwrap()));
        out.push(dbg(s.load_identity(&addr(i)).await.unwrap()));
        out.push(dbg(s.load_prekey(i + 1).await.unwrap()));
        out.push(dbg(s.get_sender_key(&addr(i)).await.unwrap()));
        out.push(dbg(s.get_lid_mapping(&lid_entry(i).lid).await.unwrap()));
        out.push(dbg(s
            .take_sent_message("c@s.whatsapp.net", &format!("M{i}"))
            .await
            .unwrap()));
    }
    out
}

/// Every file in `dir`, name -> bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// The files of `dir` are `before` plus, if given, `added` (and nothing
/// else); those of `before` are byte-identical.
fn assert_untouched(dir: &Path, before: &BTreeMap<String, Vec<u8>>, added: Option<&str>) {
    let mut after = files(dir);
    if let Some(added) = added {
        assert!(after.remove(added).is_some(), "{added} was not created");
    }
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&after), names(before), "the files in the directory");
    for (name, bytes) in before {
        assert!(after[name] == *bytes, "{name} changed");
    }
}

/// The error and its sources, as `wa-redb` prints them (a `StoreError`
/// keeps ours as its source).
fn chain(e: &StoreError) -> String {
    let mut text = e.to_string();
    let mut layer = std::error::Error::source(e);
    while let Some(l) = layer {
        text.push_str(": ");
        text.push_str(&l.to_string());
        layer = l.source();
    }
    text
}

/// Our error in a `StoreError`'s chain.
fn ours(e: &StoreError) -> &Error {
    let mut layer: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(l) = layer {
        if let Some(ours) = l.downcast_ref::<Error>() {
            return ours;
        }
        layer = l.source();
    }
    panic!("not an error of the store: {e:?}")
}

fn execute(path: &Path, statements: &[&str]) {
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    for sql in statements {
        diesel::sql_query(*sql).execute(&mut conn).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_file_that_is_not_a_sqlite_store_is_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.db");
    execute(&plain, &["CREATE TABLE t(x)", "INSERT INTO t VALUES (1)"]);
    // Another diesel application's database.
    let other = dir.path().join("other.db");
    execute(
        &other,
        &[
            "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, \
             run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('20200101000000')",
            "CREATE TABLE device (id INTEGER PRIMARY KEY)",
        ],
    );
    let before = files(dir.path());
    let target = dir.path().join("r.redb");
    for (path, why) in [
        (&plain, "no `__diesel_schema_migrations` table"),
        (&other, "its diesel migrations are not SqliteStore's"),
    ] {
        let err = import_sqlite(path, &target, &ImportOptions::default())
            .await
            .unwrap_err();
        let text = chain(&err);
        assert!(text.contains(path.to_str().unwrap()), "{text}");
        assert!(
            text.contains("not a whatsapp-rust SqliteStore database"),
            "{text}"
        );
        assert!(text.contains(why), "{text}");
        assert!(
            matches!(ours(&err), Error::NotSqliteStore { .. }),
            "{err:?}"
        );
    }
    // No SqliteStore table, no migration table, no -wal, -shm or -journal,
    // no store file.
    assert_untouched(dir.path(), &before, None);
}

/// The child of the next test: writes two accounts into a SqliteStore,
/// says so, and waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child by a_killed_sqlite_store_is_imported_whole_from_its_log"]
async fn child_writes_a_sqlite_store_and_waits() {
    let Some(path) = std::env::var_os(CHILD_DB) else {
        return;
    };
    let url = path.to_str().unwrap();
    let mut stores = Vec::new();
    for d in DEVICES {
        let s = SqliteStore::new_for_device(url, d).await.unwrap();
        fill(&s, d).await;
        stores.push(s);
    }
    // Killed here, the stores still open: nothing checkpoints the log.
    process::report_and_wait("ready");
    drop(stores);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sqlite_store_is_imported_whole_from_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let mut cmd = process::self_command("child_writes_a_sqlite_store_and_waits");
    cmd.env(CHILD_DB, &db);
    let (mut child, out) = process::spawn_until(cmd, "ready");
    child.kill().unwrap();
    child.wait().unwrap();
    drop(out);
    let wal = std::fs::metadata(dir.path().join("app.db-wal")).unwrap();
    assert!(wal.len() > 0, "the killed process left its log");
    assert!(dir.path().join("app.db-shm").exists());
    let before = files(dir.path());

    let target = dir.path().join("r.redb");
    let report = import_sqlite(&db, &target, &ImportOptions::default())
        .await
        .unwrap();
    assert_untouched(dir.path(), &before, Some("r.redb"));
    assert_eq!(
        report
            .accounts
            .iter()
            .map(|a| a.device_id)
            .collect::<Vec<_>>(),
        DEVICES
    );
    for a in &report.accounts {
        assert!(a.skipped.is_empty(), "{:?}", a.skipped);
        for table in ["sessions", "identities", "prekeys", "sender_keys"] {
            assert_eq!(a.rows[table], N as u64, "device {}, {table}", a.device_id);
        }
        assert_eq!(a.rows["lid_mappings"], N as u64);
        assert_eq!(a.rows["sent_messages"], N as u64);
        assert_eq!(a.rows["devices"], 1);
    }
    let store = RedbStore::new(&target).await.unwrap();
    for d in DEVICES {
        assert_eq!(reads(&store.for_device(d)).await, written(d), "device {d}");
    }

    // The log mattered: without it, the rows are not all there.
    let alone = tempfile::tempdir().unwrap();
    std::fs::copy(&db, alone.path().join("app.db")).unwrap();
    let without = import_sqlite(
        alone.path().join("app.db"),
        alone.path().join("r.redb"),
        &ImportOptions::default(),
    )
    .await;
    if let Ok(r) = without {
        assert!(r.total_rows < report.total_rows, "{r:?}");
    }
}

/// A SqliteStore file closed by its application (no log left).
async fn sqlite_store(path: &Path) {
    let s = SqliteStore::new_for_device(path.to_str().unwrap(), 1)
        .await
        .unwrap();
    fill(&s, 1).await;
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_store_with_unknown_migrations_is_refused_before_any_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    sqlite_store(&db).await;
    execute(
        &db,
        &["INSERT INTO __diesel_schema_migrations (version) VALUES ('20990101000000')"],
    );
    // An existing store file, which the refused import leaves as it is.
    let existing = dir.path().join("existing.redb");
    {
        let r = RedbStore::new(&existing).await.unwrap();
        r.put_session("old@c.us.0", b"old").await.unwrap();
        r.close().await.unwrap();
    }
    let before = files(dir.path());
    for target in [dir.path().join("new.redb"), existing] {
        let err = import_sqlite(&db, &target, &ImportOptions::default())
            .await
            .unwrap_err();
        let text = chain(&err);
        assert!(text.contains(db.to_str().unwrap()), "{text}");
        assert!(
            text.contains(
                "newer whatsapp-rust-sqlite-storage (unknown migrations: 20990101000000)"
            ),
            "{text}"
        );
        assert!(text.contains("upgrade wa-redb"), "{text}");
        match ours(&err) {
            Error::SqliteSchemaTooNew { unknown, .. } => assert_eq!(unknown, &["20990101000000"]),
            e => panic!("{e:?}"),
        }
        assert_untouched(dir.path(), &before, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_sqlite_store_is_migrated_on_the_copy_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    sqlite_store(&db).await;
    // Undo SqliteStore 0.7's last migration (its down.sql): the file of an
    // older SqliteStore.
    execute(
        &db,
        &[
            "ALTER TABLE device DROP COLUMN read_receipts_disabled",
            "DELETE FROM __diesel_schema_migrations WHERE version = '20260703000001'",
        ],
    );
    let before = files(dir.path());
    let target = dir.path().join("r.redb");
    let report = import_sqlite(&db, &target, &ImportOptions::default())
        .await
        .unwrap();
    assert_eq!(report.accounts.len(), 1);
    assert_untouched(dir.path(), &before, Some("r.redb"));
    let store = RedbStore::new(&target).await.unwrap();
    let got = store.load().await.unwrap().unwrap();
    // The column the older file lacked takes the migration's default.
    assert!(!got.read_receipts_disabled);
    assert_eq!(
        store.get_session(&addr(3)).await.unwrap(),
        Some(Bytes::from(blob(1, "session", 3)))
    );
}
