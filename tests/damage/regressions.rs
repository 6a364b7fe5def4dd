//! Targeted cases for failures the sweep once found (regression tests):
//! damaged keys, undecodable records, foreign redb files, damaged leaf
//! pages at open and in a sweep.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig};

use crate::MARK;
use crate::dataset::chain;
use crate::process;

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
    let out = process::self_command("regressions::sweep_child")
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
