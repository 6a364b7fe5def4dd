//! Sizes: keys up to the 64 KiB cap work and longer ones are refused
//! cleanly (batches all or nothing); values of tens of megabytes are stored
//! and read back, and values above `max_value_size` (the default and a
//! configured one) are refused cleanly.

use std::sync::Arc;

use bytes::Bytes;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::error::StoreError;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig, SkdmTracking};

use crate::dataset::{self, chain};
use crate::fresh;

/// The error of a write refused because a key is too long.
fn assert_key_too_long(r: Result<(), StoreError>, what: &str) {
    let e = r
        .err()
        .unwrap_or_else(|| panic!("{what}: a 100 KB key was accepted"));
    let text = chain(&e);
    assert!(matches!(e, StoreError::Validation(_)), "{what}: {e:?}");
    assert!(
        text.contains("key of") && text.contains("65536"),
        "{what}: says what is wrong: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_up_to_the_cap_work_and_longer_ones_are_refused_cleanly() {
    let (_dir, path, s) = fresh().await;
    s.create().await.unwrap();
    for len in [10_000, 60_000] {
        let k = "k".repeat(len);
        s.put_session(&k, b"long key").await.unwrap();
        assert_eq!(
            s.get_session(&k).await.unwrap().as_deref(),
            Some(&b"long key"[..])
        );
        s.put_group_metadata(&k, b"g").await.unwrap();
        s.store_sent_message(&k[..len / 2], &k[len / 2..], b"m")
            .await
            .unwrap();
        s.set_sender_key_status(&k[..len / 2], &[(&k[len / 2..], true)])
            .await
            .unwrap();
        assert_eq!(
            s.get_sender_key_devices(&k[..len / 2]).await.unwrap().len(),
            1
        );
        assert_eq!(
            s.take_sent_message(&k[..len / 2], &k[len / 2..])
                .await
                .unwrap(),
            Some(b"m".to_vec())
        );
    }

    let long = "x".repeat(100_000);
    let l = long.as_str();
    let secret = || MsgSecretEntry {
        chat: Arc::from(l),
        sender: "s".into(),
        msg_id: "m".into(),
        secret: [1; 32],
        expires_at: 0,
        message_ts: 0,
    };
    let lid = |lid: &str, phone: &str| LidPnMappingEntry {
        lid: lid.into(),
        phone_number: phone.into(),
        created_at: 1,
        updated_at: 1,
        learning_source: "t".into(),
    };
    assert_key_too_long(s.put_session(l, b"v").await, "put_session");
    assert_key_too_long(s.put_identity(l, [1; 32]).await, "put_identity");
    assert_key_too_long(s.put_sender_key(l, b"v").await, "put_sender_key");
    assert_key_too_long(s.put_group_metadata(l, b"v").await, "put_group_metadata");
    assert_key_too_long(
        s.put_tc_token(
            l,
            &TcTokenEntry {
                token: vec![1],
                token_timestamp: 1,
                sender_timestamp: None,
            },
        )
        .await,
        "put_tc_token",
    );
    assert_key_too_long(
        s.touch_tc_token_sender_timestamp(l, 5).await,
        "touch_tc_token",
    );
    assert_key_too_long(s.save_base_key(l, "m", b"v").await, "save_base_key");
    assert_key_too_long(
        s.store_sent_message("c", l, b"v").await,
        "store_sent_message",
    );
    assert_key_too_long(
        s.store_pending_inbound("c", "s", l, b"v").await,
        "store_pending_inbound",
    );
    assert_key_too_long(
        s.put_msg_secrets(vec![secret()]).await.map(drop),
        "put_msg_secrets",
    );
    assert_key_too_long(
        s.set_sync_key(l.as_bytes(), AppStateSyncKey::default())
            .await,
        "set_sync_key",
    );
    assert_key_too_long(s.set_version(l, HashState::default()).await, "set_version");
    assert_key_too_long(
        s.put_mutation_macs(
            "regular",
            1,
            &[AppStateMutationMAC {
                index_mac: l.as_bytes().to_vec(),
                value_mac: vec![1],
            }],
        )
        .await,
        "put_mutation_macs",
    );
    assert_key_too_long(
        s.set_sender_key_status("g", &[(l, true)]).await,
        "set_sender_key_status",
    );
    assert_key_too_long(
        s.add_skdm_recipients(l, &["d".into()]).await,
        "add_skdm_recipients",
    );
    assert_key_too_long(
        s.update_device_list(DeviceListRecord {
            user: long.clone(),
            devices: vec![],
            timestamp: 1,
            phash: None,
            raw_id: None,
        })
        .await,
        "update_device_list",
    );
    assert_key_too_long(
        s.put_lid_mapping(&lid(l, "55")).await,
        "put_lid_mapping (lid)",
    );
    // The phone only goes into the reverse index's key.
    assert_key_too_long(
        s.put_lid_mapping(&lid("100", l)).await,
        "put_lid_mapping (phone)",
    );

    // Batches are all or nothing: the good entries next to the bad one are
    // not stored either.
    let sessions: Vec<(Arc<str>, Bytes)> = vec![
        ("ok-1".into(), Bytes::from_static(b"1")),
        (long.as_str().into(), Bytes::from_static(b"2")),
        ("ok-3".into(), Bytes::from_static(b"3")),
    ];
    assert_key_too_long(s.put_sessions_batch(&sessions).await, "put_sessions_batch");
    let mut secrets = vec![
        MsgSecretEntry {
            chat: "ok".into(),
            ..secret()
        },
        secret(),
    ];
    secrets.rotate_left(1);
    assert_key_too_long(
        s.put_msg_secrets(secrets).await.map(drop),
        "put_msg_secrets batch",
    );
    assert_key_too_long(
        s.put_lid_mappings(&[lid("200", "56"), lid(l, "57")]).await,
        "put_lid_mappings batch",
    );

    // Nothing of any refused call is stored.
    let none_stored = |s: RedbStore| async move {
        assert_eq!(s.get_session(l).await.unwrap(), None);
        assert_eq!(s.get_session("ok-1").await.unwrap(), None);
        assert_eq!(s.get_session("ok-3").await.unwrap(), None);
        assert_eq!(s.load_identity(l).await.unwrap(), None);
        assert_eq!(s.get_group_metadata(l).await.unwrap(), None);
        assert!(s.get_tc_token(l).await.unwrap().is_none());
        assert_eq!(s.get_msg_secret("ok", "s", "m").await.unwrap(), None);
        assert_eq!(s.get_msg_secret(l, "s", "m").await.unwrap(), None);
        assert!(s.get_lid_mapping("100").await.unwrap().is_none());
        assert!(s.get_lid_mapping("200").await.unwrap().is_none());
        assert!(s.get_pn_mapping("55").await.unwrap().is_none());
        assert!(s.get_sender_key_devices("g").await.unwrap().is_empty());
        assert!(s.get_devices(l).await.unwrap().is_none());
        assert_eq!(s.get_version(l).await.unwrap().version, 0);
        s
    };
    let s = none_stored(s).await;
    // Reads, deletes and takes with a long key are harmless.
    assert!(!s.has_session(l).await.unwrap());
    s.delete_session(l).await.unwrap();
    assert_eq!(s.take_sent_message(l, l).await.unwrap(), None);
    s.clear_sender_key_devices(l).await.unwrap();
    s.clear_mutation_macs(l).await.unwrap();

    // The store still works and reopens.
    s.put_session("after", b"ok").await.unwrap();
    s.close().await.unwrap();
    let s = none_stored(RedbStore::new(&path).await.unwrap()).await;
    assert!(s.has_session("after").await.unwrap());
    assert!(s.has_session(&"k".repeat(60_000)).await.unwrap());
}

fn huge(len: usize, seed: u64) -> Vec<u8> {
    dataset::Rng(seed).bytes(len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_of_tens_of_megabytes_are_stored_and_read_back() {
    // Reopened without compaction at open: compacting the ~160 MB file
    // this leaves takes ~15 s in a debug build (it works, but is slow).
    let reopen = |path: std::path::PathBuf| async move {
        let config = RedbStoreConfig::default().with_auto_compact(None);
        RedbStore::with_config(&path, config).await.unwrap()
    };
    let (_dir, path, s) = fresh().await;
    let ten = huge(10 << 20, 10);
    let forty = huge(40 << 20, 40);
    s.put_session("ten", &ten).await.unwrap();
    s.put_session("forty", &forty).await.unwrap();
    s.put_group_metadata("g", &ten).await.unwrap();
    s.store_sent_message("c", "m", &ten).await.unwrap();
    assert!(s.get_session("ten").await.unwrap().unwrap() == ten);
    assert!(s.get_session("forty").await.unwrap().unwrap() == forty);
    s.close().await.unwrap();
    let s = reopen(path.clone()).await;
    assert!(s.get_session("forty").await.unwrap().unwrap() == forty);
    assert!(s.get_group_metadata("g").await.unwrap().unwrap() == ten);
    assert!(s.take_sent_message("c", "m").await.unwrap().unwrap() == ten);
    // Replacing and deleting them works too.
    s.put_session("forty", b"small now").await.unwrap();
    s.delete_session("ten").await.unwrap();
    s.close().await.unwrap();
    let s = reopen(path.clone()).await;
    assert_eq!(
        s.get_session("forty").await.unwrap().as_deref(),
        Some(&b"small now"[..])
    );
    assert_eq!(s.get_session("ten").await.unwrap(), None);
}

/// The error of a write refused because a value is too large.
fn assert_value_too_large(r: Result<(), StoreError>, limit: usize, what: &str) {
    let e = r
        .err()
        .unwrap_or_else(|| panic!("{what}: an oversized value was accepted"));
    let text = chain(&e);
    assert!(matches!(e, StoreError::Validation(_)), "{what}: {e:?}");
    assert!(
        text.contains("value of") && text.contains(&format!("maximum value size of {limit}")),
        "{what}: says what is wrong: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_above_max_value_size_are_refused_cleanly() {
    // The default limit, 64 MiB.
    let (_dir, path, s) = fresh().await;
    let limit = 64 << 20;
    let over = huge(limit + 1, 65);
    assert_value_too_large(s.put_session("over", &over).await, limit, "put_session");
    assert_value_too_large(
        s.store_sent_message("c", "over", &over).await,
        limit,
        "store_sent_message",
    );
    assert_value_too_large(
        s.put_sessions_batch(&[
            ("ok".into(), Bytes::from_static(b"fine")),
            ("over".into(), Bytes::from(over)),
        ])
        .await,
        limit,
        "put_sessions_batch",
    );
    assert_eq!(s.get_session("over").await.unwrap(), None);
    assert_eq!(
        s.get_session("ok").await.unwrap(),
        None,
        "batch is all or nothing"
    );
    s.put_session("after", b"works").await.unwrap();
    s.close().await.unwrap();
    let s = RedbStore::new(&path).await.unwrap();
    assert_eq!(s.get_session("over").await.unwrap(), None);
    assert!(s.has_session("after").await.unwrap());
    s.close().await.unwrap();

    // A configured limit: exactly the limit passes, one byte more does not.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small-limit.redb");
    let limit = 1 << 20;
    let config = RedbStoreConfig::default().with_max_value_size(limit);
    let s = RedbStore::with_config(&path, config).await.unwrap();
    let exact = huge(limit, 1);
    s.put_session("exact", &exact).await.unwrap();
    assert_value_too_large(
        s.put_session("over", &huge(limit + 1, 2)).await,
        limit,
        "put_session over a configured limit",
    );
    assert_value_too_large(
        s.put_group_metadata("g", &huge(2 * limit, 3)).await,
        limit,
        "put_group_metadata",
    );
    assert_value_too_large(
        s.put_sender_key("sk", &huge(limit + 1, 4)).await,
        limit,
        "put_sender_key",
    );
    assert_eq!(s.get_group_metadata("g").await.unwrap(), None);
    assert_eq!(s.get_session("over").await.unwrap(), None);
    assert!(s.get_session("exact").await.unwrap().unwrap() == exact);
    s.put_session("after", b"works").await.unwrap();
    s.close().await.unwrap();
    let s = RedbStore::new(&path).await.unwrap();
    assert!(s.get_session("exact").await.unwrap().unwrap() == exact);
    assert_eq!(s.get_session("over").await.unwrap(), None);
}
