//! Writes that fail part-way: a commit that fails after its journal record
//! was written, rows stored earlier that no longer decode, and journal
//! records that cannot be applied at recovery. What a caller was told (`Ok`
//! or `Err`) is what the store holds after a reopen, and one bad row never
//! blocks the writes that follow.
//!
//! Deterministic: faults are injected through the store's I/O hooks.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wacore::store::traits::{
    DeviceStore, LidPnMappingEntry, MsgSecretStore, ProtocolStore, SignalStore, TcTokenEntry,
};
use whatsapp_rust_redb_storage::fault::IoFaults;
use whatsapp_rust_redb_storage::{PageProtection, RedbStore, RedbStoreConfig, Synchronous};

/// Fails the next redb commit (after its journal record is written) once
/// armed.
#[derive(Default)]
struct FailNextCommit(AtomicBool);

impl IoFaults for FailNextCommit {
    fn before_commit(&self) -> io::Result<()> {
        if self.0.swap(false, Ordering::SeqCst) {
            return Err(io::Error::other("injected commit failure"));
        }
        Ok(())
    }
}

async fn failed_take_leaves_the_message(sync: Synchronous) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let fault = Arc::new(FailNextCommit::default());
    let config = RedbStoreConfig::default()
        .with_synchronous(sync)
        .with_io_faults(fault.clone());
    let s = RedbStore::with_config(&path, config).await.unwrap();
    s.store_sent_message("chat", "m1", b"payload")
        .await
        .unwrap();
    s.store_sent_message("chat", "m2", b"second").await.unwrap();
    fault.0.store(true, Ordering::SeqCst);
    let err = s.take_sent_message("chat", "m1").await;
    assert!(
        err.is_err(),
        "{sync:?}: the injected failure reaches the caller"
    );
    // The process goes on to exit without a clean close (the store halted
    // its writes after the failure).
    let _ = s.close().await;

    let s = RedbStore::new(&path).await.unwrap();
    assert_eq!(
        s.take_sent_message("chat", "m1").await.unwrap().as_deref(),
        Some(&b"payload"[..]),
        "{sync:?}: a take that failed did not consume the message"
    );
    assert_eq!(
        s.take_sent_message("chat", "m2").await.unwrap().as_deref(),
        Some(&b"second"[..]),
        "{sync:?}: what was acknowledged before is kept"
    );
    s.close().await.unwrap();
}

#[tokio::test]
async fn a_commit_that_fails_after_its_journal_record_does_not_come_back() {
    for sync in [Synchronous::Normal, Synchronous::Full] {
        failed_take_leaves_the_message(sync).await;
    }
}

/// Overwrites the value of one row, in a closed store, with bytes no
/// version of the store encodes (format byte 9).
fn damage_row<K: redb::Key + 'static>(
    path: &std::path::Path,
    table: &str,
    key: impl std::borrow::Borrow<K::SelfType<'static>>,
) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let def = redb::TableDefinition::<K, &[u8]>::new(table);
        let mut t = txn.open_table(def).unwrap();
        assert!(t.insert(key.borrow(), &[9u8, 9, 9][..]).unwrap().is_some());
    }
    txn.commit().unwrap();
}

fn lid(lid: &str, phone: &str, at: i64) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: lid.into(),
        phone_number: phone.into(),
        created_at: at,
        updated_at: at,
        learning_source: "usync".into(),
    }
}

#[tokio::test]
async fn an_undecodable_row_is_replaced_by_the_next_upsert_and_reported_by_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    // A plain file (format v1), so that `damage_row` can write to it with
    // redb alone.
    let plain = RedbStoreConfig::default().with_page_protection(PageProtection::Off);
    let s = RedbStore::with_config(&path, plain).await.unwrap();
    s.create().await.unwrap();
    let d = s.device_id();
    let token = |t: &[u8], at| TcTokenEntry {
        token: t.to_vec(),
        token_timestamp: at,
        sender_timestamp: None,
    };
    s.put_tc_token("a@c.us", &token(b"A", 10)).await.unwrap();
    s.put_tc_token("b@c.us", &token(b"B", 10)).await.unwrap();
    s.put_lid_mapping(&lid("100", "555", 10)).await.unwrap();
    s.put_msg_secret("chat", "sender", "m1", &[1; 32])
        .await
        .unwrap();
    s.store_prekey(7, b"prekey", false).await.unwrap();
    s.store_prekey(8, b"other", false).await.unwrap();
    s.close().await.unwrap();
    damage_row::<(i32, &str)>(&path, "tc_tokens", (d, "a@c.us"));
    damage_row::<(i32, &str)>(&path, "tc_tokens", (d, "b@c.us"));
    damage_row::<(i32, &str)>(&path, "lid_mappings", (d, "100"));
    damage_row::<(i32, &str, &str, &str)>(&path, "msg_secrets", (d, "chat", "sender", "m1"));
    damage_row::<(i32, u32)>(&path, "prekeys", (d, 7));

    let s = RedbStore::new(&path).await.unwrap();
    // Reads report the damage.
    assert!(s.get_tc_token("a@c.us").await.is_err());
    assert!(s.get_lid_mapping("100").await.is_err());
    assert!(s.get_msg_secret("chat", "sender", "m1").await.is_err());

    // Every read-modify-write of those keys succeeds and replaces the row.
    s.touch_tc_token_sender_timestamp("a@c.us", 20)
        .await
        .unwrap();
    let a = s.get_tc_token("a@c.us").await.unwrap().unwrap();
    assert_eq!((a.token.len(), a.sender_timestamp), (0, Some(20)));
    s.store_received_tc_token("b@c.us", b"B2", 5).await.unwrap();
    let b = s.get_tc_token("b@c.us").await.unwrap().unwrap();
    assert_eq!((b.token, b.token_timestamp), (b"B2".to_vec(), 5));

    s.put_lid_mapping(&lid("100", "777", 30)).await.unwrap();
    let m = s.get_lid_mapping("100").await.unwrap().unwrap();
    assert_eq!((m.phone_number.as_str(), m.updated_at), ("777", 30));
    assert_eq!(s.get_pn_mapping("777").await.unwrap().unwrap().lid, "100");
    // The old phone's index entry could not be found from the damaged row;
    // it no longer answers for the LID.
    assert!(s.get_pn_mapping("555").await.unwrap().is_none());

    s.put_msg_secret("chat", "sender", "m1", &[2; 32])
        .await
        .unwrap();
    assert_eq!(
        s.get_msg_secret("chat", "sender", "m1").await.unwrap(),
        Some(vec![2; 32])
    );

    // A damaged prekey cannot be marked (it cannot be re-encoded) and does
    // not keep the others from being marked.
    s.mark_prekeys_uploaded(&[7, 8]).await.unwrap();
    s.close().await.unwrap();
    let report = RedbStore::check_file(&path).unwrap();
    assert_eq!(report.problems.len(), 1, "only the prekey: {report:?}");
}
