//! SQLite import and export (feature `sqlite`).
//!
//! A real SqliteStore file is filled through its trait API with two
//! accounts and rows in every table (including what the trait cannot read
//! back: pre-key `uploaded` flags, mutation-MAC versions, message times,
//! LID insertion order with `get_pn_mapping` ties). It is imported; every
//! read through RedbStore must equal the same read through SqliteStore
//! (unordered lists as sets). The store is exported back to a fresh
//! SqliteStore file, which must equal the original: every read, and every
//! column of every table (SQL) except the times the trait cannot set.

mod compare;
#[path = "../../../tests/common/diff_util.rs"]
mod diff_util;
mod fixture;

use std::sync::Arc;

use compare::{age_messages, assert_same, reads, sql_rows, sweeps};
use fixture::{DEVICES, N, addr, fill};
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{
    ExportOptions, ImportOptions, RedbStore, export_sqlite, import_sqlite,
};
use whatsapp_rust_sqlite_storage::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_import_and_export_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let a_path = dir.path().join("a.db");
    let a_url = a_path.to_str().unwrap();
    let mut sources = Vec::new();
    for d in DEVICES {
        let a = SqliteStore::new_for_device(a_url, d).await.unwrap();
        fill(&a, d).await;
        sources.push(a);
    }
    age_messages(&sources[0]).await;

    // Import into a new file.
    let r_path = dir.path().join("r.redb");
    let seen = Arc::new(std::sync::Mutex::new((0u64, 0u64)));
    let s2 = seen.clone();
    let options = ImportOptions::default().with_progress(Arc::new(move |p| {
        let mut s = s2.lock().unwrap();
        assert!(p.done >= s.0 && p.done <= p.total, "{p:?}");
        *s = (p.done, p.total);
    }));
    let report = import_sqlite(&a_path, &r_path, &options).await.unwrap();
    assert!(report.created_file);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("r.redb."))
        .collect();
    assert!(leftovers.is_empty(), "temporaries left: {leftovers:?}");
    assert_eq!(
        report
            .accounts
            .iter()
            .map(|a| a.device_id)
            .collect::<Vec<_>>(),
        DEVICES
    );
    let (done, total) = *seen.lock().unwrap();
    assert_eq!(done, total, "progress ends at the total");
    for account in &report.accounts {
        assert!(!account.replaced);
        assert_eq!(account.skipped.len(), 1, "{:?}", account.skipped);
        assert!(account.skipped[0].starts_with("app_state_keys"));
        assert_eq!(account.rows["sessions"], N as u64);
        assert_eq!(account.rows["devices"], 1);
    }

    // Every read agrees.
    let redb = RedbStore::new(&r_path).await.unwrap();
    for (a, d) in sources.iter().zip(DEVICES) {
        let want = reads(a).await;
        let got = reads(&redb.for_device(d)).await;
        assert_same(&format!("import, device {d}"), &want, &got);
    }

    // Export back to a fresh SqliteStore file: the same reads, and the same
    // rows, hidden columns included.
    let b_path = dir.path().join("b.db");
    drop(redb);
    let seen = Arc::new(std::sync::Mutex::new((0u64, 0u64)));
    let s2 = seen.clone();
    let options = ExportOptions::default().with_progress(Arc::new(move |p| {
        let mut s = s2.lock().unwrap();
        assert!(p.done >= s.0 && p.done <= p.total, "{p:?}");
        *s = (p.done, p.total);
    }));
    let exported = export_sqlite(&r_path, &b_path, None, &options)
        .await
        .unwrap();
    assert_eq!(exported.len(), 2);
    let (done, total) = *seen.lock().unwrap();
    assert_eq!(done, total, "export progress ends at the total");
    assert_eq!(done, exported.iter().map(|r| r.total_rows).sum::<u64>());
    let redb = RedbStore::new(&r_path).await.unwrap();
    for (a, d) in sources.iter().zip(DEVICES) {
        let b = SqliteStore::new_for_device(b_path.to_str().unwrap(), d)
            .await
            .unwrap();
        assert_same(
            &format!("export, device {d}"),
            &reads(a).await,
            &reads(&b).await,
        );
        let (want, got) = (sql_rows(a, d).await, sql_rows(&b, d).await);
        for (table, rows) in &want {
            assert!(
                !rows.is_empty(),
                "{table} is empty: the test fills every table"
            );
            assert_eq!(rows, &got[table], "export, device {d}, table {table}");
        }
    }

    // The message times survived the import: sweeps agree.
    for (a, d) in sources.iter().zip(DEVICES) {
        assert_eq!(
            sweeps(a).await,
            sweeps(&redb.for_device(d)).await,
            "device {d}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_refuses_existing_accounts_unless_overwrite_and_keeps_others() {
    let dir = tempfile::tempdir().unwrap();
    let a_path = dir.path().join("a.db");
    let a = SqliteStore::new_for_device(a_path.to_str().unwrap(), 1)
        .await
        .unwrap();
    fill(&a, 1).await;
    drop(a);

    // An existing store holding device 1 (other data) and device 9.
    let r_path = dir.path().join("r.redb");
    {
        let r = RedbStore::new(&r_path).await.unwrap();
        r.put_session("old@c.us.0", b"old").await.unwrap();
        r.for_device(9)
            .put_session("nine@c.us.0", b"nine")
            .await
            .unwrap();
        r.close().await.unwrap();
    }
    let err = import_sqlite(&a_path, &r_path, &ImportOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("device id(s) 1"), "{err}");
    // Nothing changed.
    let r = RedbStore::new(&r_path).await.unwrap();
    assert_eq!(
        r.get_session("old@c.us.0").await.unwrap().unwrap(),
        &b"old"[..]
    );
    drop(r);

    let report = import_sqlite(
        &a_path,
        &r_path,
        &ImportOptions::default().with_overwrite(true),
    )
    .await
    .unwrap();
    assert!(!report.created_file);
    assert!(report.accounts[0].replaced);
    let r = RedbStore::new(&r_path).await.unwrap();
    assert_eq!(r.get_session("old@c.us.0").await.unwrap(), None, "replaced");
    assert!(r.get_session(&addr(0)).await.unwrap().is_some());
    assert_eq!(
        r.for_device(9)
            .get_session("nine@c.us.0")
            .await
            .unwrap()
            .unwrap(),
        &b"nine"[..],
        "other accounts are kept"
    );
    let ids: Vec<i32> = r
        .accounts()
        .await
        .unwrap()
        .iter()
        .map(|a| a.device_id)
        .collect();
    assert_eq!(ids, [1, 9]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_rejects_what_is_not_a_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let r_path = dir.path().join("r.redb");
    let missing = import_sqlite(
        dir.path().join("none.db"),
        &r_path,
        &ImportOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(missing.to_string().contains("no such file"), "{missing}");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"definitely not sqlite").unwrap();
    let err = import_sqlite(&junk, &r_path, &ImportOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a SQLite database"), "{err}");
    assert!(!r_path.exists(), "no store file is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_refuses_a_sqlite_file_that_has_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let r_path = dir.path().join("r.redb");
    {
        let r = RedbStore::new(&r_path).await.unwrap();
        fill(&r, 1).await;
        r.close().await.unwrap();
    }
    let b_path = dir.path().join("b.db");
    export_sqlite(&r_path, &b_path, Some(1), &ExportOptions::default())
        .await
        .unwrap();
    let err = export_sqlite(&r_path, &b_path, Some(1), &ExportOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already holds"), "{err}");
    let err = export_sqlite(&r_path, &b_path, Some(5), &ExportOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no account with device id 5"),
        "{err}"
    );
}

/// `export_to_backend` moves an account to any backend: here to another
/// device id of another store file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_to_another_redb_store_and_device_id() {
    let dir = tempfile::tempdir().unwrap();
    let src = RedbStore::new(dir.path().join("src.redb")).await.unwrap();
    fill(&src, 1).await;
    let dst = RedbStore::new_for_device(dir.path().join("dst.redb"), 5)
        .await
        .unwrap();
    let report = src
        .export_to_backend(&dst, &ExportOptions::default())
        .await
        .unwrap();
    assert_eq!(report.device_id, 1);
    assert_eq!(report.rows["lid_mappings"], N as u64 + 3);
    assert_same("redb to redb", &reads(&src).await, &reads(&dst).await);
    // A second export into the now existing account is refused...
    let err = src
        .export_to_backend(&dst, &ExportOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("already has a device record"),
        "{err}"
    );
    // ...unless merging is asked for; it is then idempotent.
    src.export_to_backend(
        &dst,
        &ExportOptions::default().with_merge_into_existing(true),
    )
    .await
    .unwrap();
    assert_same("merged", &reads(&src).await, &reads(&dst).await);
    // Through `dyn Backend` too.
    let dyn_target: &dyn Backend = &dst.for_device(6);
    src.export_to_backend(dyn_target, &ExportOptions::default())
        .await
        .unwrap();
    assert_same("dyn", &reads(&src).await, &reads(dyn_target).await);
}

/// Not a test: writes the SqliteStore database the README's examples were
/// made from, at `$WA_REDB_DEMO_DB` (two accounts, every table).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn readme_demo_database() {
    let Some(path) = std::env::var_os("WA_REDB_DEMO_DB") else {
        return;
    };
    for d in DEVICES {
        let s = SqliteStore::new_for_device(path.to_str().unwrap(), d)
            .await
            .unwrap();
        fill(&s, d).await;
    }
}
