//! SignalStore.

use std::sync::Arc;

use bytes::Bytes;
use wacore::store::traits::SignalStore;

use crate::support::Fixture;

#[tokio::test]
async fn identities_upsert_load_delete() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert_eq!(s.load_identity("a@c.us.0").await.unwrap(), None);
    s.put_identity("a@c.us.0", [1; 32]).await.unwrap();
    assert_eq!(s.load_identity("a@c.us.0").await.unwrap(), Some([1; 32]));
    s.put_identity("a@c.us.0", [2; 32]).await.unwrap();
    assert_eq!(s.load_identity("a@c.us.0").await.unwrap(), Some([2; 32]));
    s.delete_identity("a@c.us.0").await.unwrap();
    assert_eq!(s.load_identity("a@c.us.0").await.unwrap(), None);
    // Deleting what is not there is fine.
    s.delete_identity("a@c.us.0").await.unwrap();
}

#[tokio::test]
async fn identity_batches_are_upserts_with_last_wins() {
    let f = Fixture::new().await;
    let s = &f.store;
    s.put_identities_batch(&[]).await.unwrap();
    let batch: Vec<(Arc<str>, [u8; 32])> = vec![
        ("a".into(), [1; 32]),
        ("b".into(), [2; 32]),
        ("a".into(), [3; 32]),
    ];
    s.put_identities_batch(&batch).await.unwrap();
    assert_eq!(s.load_identity("a").await.unwrap(), Some([3; 32]));
    assert_eq!(s.load_identity("b").await.unwrap(), Some([2; 32]));
}

#[tokio::test]
async fn sessions_roundtrip_including_empty_values() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert_eq!(s.get_session("x").await.unwrap(), None);
    assert!(!s.has_session("x").await.unwrap());
    s.put_session("x", b"").await.unwrap();
    assert_eq!(s.get_session("x").await.unwrap(), Some(Bytes::new()));
    assert!(s.has_session("x").await.unwrap());
    s.put_session("x", &[7; 1200]).await.unwrap();
    assert_eq!(
        s.get_session("x").await.unwrap().unwrap().as_ref(),
        &[7; 1200]
    );
    s.delete_session("x").await.unwrap();
    assert!(!s.has_session("x").await.unwrap());
    s.delete_session("x").await.unwrap();
}

#[tokio::test]
async fn session_batches_are_upserts_with_last_wins() {
    let f = Fixture::new().await;
    let s = &f.store;
    s.put_sessions_batch(&[]).await.unwrap();
    s.put_session("a", b"old").await.unwrap();
    let batch: Vec<(Arc<str>, Bytes)> = vec![
        ("a".into(), Bytes::from_static(b"1")),
        ("b".into(), Bytes::from_static(b"2")),
        ("b".into(), Bytes::from_static(b"3")),
    ];
    s.put_sessions_batch(&batch).await.unwrap();
    assert_eq!(s.get_session("a").await.unwrap().unwrap().as_ref(), b"1");
    assert_eq!(s.get_session("b").await.unwrap().unwrap().as_ref(), b"3");
}

#[tokio::test]
async fn signal_state_for_user_follows_sqlite_like_rules() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert!(!s.has_signal_state_for_user("5511").await.unwrap());
    s.put_session("5511:3@c.us.0", b"s").await.unwrap();
    assert!(s.has_signal_state_for_user("5511").await.unwrap());
    // A longer or shorter user is a different user.
    assert!(!s.has_signal_state_for_user("551").await.unwrap());
    assert!(!s.has_signal_state_for_user("55111").await.unwrap());
    // `user@server` form, and identity-only state counts.
    s.put_identity("100000012345678@lid.0", [0; 32])
        .await
        .unwrap();
    assert!(
        s.has_signal_state_for_user("100000012345678")
            .await
            .unwrap()
    );
    // SQL LIKE: ASCII case-insensitive, `_` is a wildcard.
    s.put_identity("ABC:3@lid", [0; 32]).await.unwrap();
    assert!(s.has_signal_state_for_user("abc").await.unwrap());
    s.put_session("5599x0@c.us", b"s").await.unwrap();
    assert!(s.has_signal_state_for_user("5599_0").await.unwrap());
    assert!(!s.has_signal_state_for_user("5599__0").await.unwrap());
    // Another account in the same file sees none of it.
    let other = s.for_device(2);
    assert!(!other.has_signal_state_for_user("5511").await.unwrap());
    assert!(!other.has_signal_state_for_user("abc").await.unwrap());
}

#[tokio::test]
async fn prekeys_store_load_remove() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert_eq!(s.get_max_prekey_id().await.unwrap(), 0);
    assert_eq!(s.load_prekey(1).await.unwrap(), None);
    s.store_prekey(1, b"one", false).await.unwrap();
    s.store_prekey(1, b"uno", true).await.unwrap();
    assert_eq!(s.load_prekey(1).await.unwrap().unwrap().as_ref(), b"uno");
    s.store_prekey(7, b"", false).await.unwrap();
    assert_eq!(s.load_prekey(7).await.unwrap(), Some(Bytes::new()));
    assert_eq!(s.get_max_prekey_id().await.unwrap(), 7);
    s.remove_prekey(7).await.unwrap();
    s.remove_prekey(7).await.unwrap();
    assert_eq!(s.get_max_prekey_id().await.unwrap(), 1);
}

#[tokio::test]
async fn prekey_batches_dedupe_and_sort_like_sqlite() {
    let f = Fixture::new().await;
    let s = &f.store;
    s.store_prekeys_batch(&[], false).await.unwrap();
    let keys: Vec<(u32, Bytes)> = [9u32, 5, 3, 5]
        .iter()
        .map(|&id| (id, Bytes::from(format!("k{id}"))))
        .collect();
    s.store_prekeys_batch(&keys, false).await.unwrap();
    let got = s.load_prekeys_batch(&[9, 5, 3, 5, 42]).await.unwrap();
    let ids: Vec<u32> = got.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [3, 5, 9]);
    assert_eq!(got[1].1.as_ref(), b"k5");
    assert!(s.load_prekeys_batch(&[]).await.unwrap().is_empty());
    // A large window (read on a blocking thread) gives the same answer.
    let window: Vec<u32> = (0..2000).collect();
    assert_eq!(s.load_prekeys_batch(&window).await.unwrap().len(), 3);
}

#[tokio::test]
async fn max_prekey_id_is_unsigned() {
    // SqliteStore compares ids as i32 and would answer i32::MAX here; we
    // store and compare the real u32 (see schema.md).
    let f = Fixture::new().await;
    let s = &f.store;
    s.store_prekey(i32::MAX as u32, b"a", false).await.unwrap();
    s.store_prekey(u32::MAX, b"b", false).await.unwrap();
    assert_eq!(s.get_max_prekey_id().await.unwrap(), u32::MAX);
}

#[tokio::test]
async fn marking_uploaded_never_resurrects_removed_keys() {
    let f = Fixture::new().await;
    let s = &f.store;
    s.mark_prekeys_uploaded(&[]).await.unwrap();
    s.store_prekey(1, b"1", false).await.unwrap();
    s.store_prekey(2, b"2", false).await.unwrap();
    s.remove_prekey(1).await.unwrap();
    s.mark_prekeys_uploaded(&[1, 2, 3]).await.unwrap();
    assert_eq!(s.load_prekey(1).await.unwrap(), None);
    assert_eq!(s.load_prekey(3).await.unwrap(), None);
    assert_eq!(s.load_prekey(2).await.unwrap().unwrap().as_ref(), b"2");
}

#[tokio::test]
async fn signed_prekeys() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert!(s.load_all_signed_prekeys().await.unwrap().is_empty());
    for id in [7u32, 2, 11] {
        s.store_signed_prekey(id, format!("s{id}").as_bytes())
            .await
            .unwrap();
    }
    s.store_signed_prekey(2, b"two").await.unwrap();
    assert_eq!(s.load_signed_prekey(2).await.unwrap().unwrap(), b"two");
    let mut all = s.load_all_signed_prekeys().await.unwrap();
    all.sort();
    assert_eq!(
        all,
        vec![
            (2, b"two".to_vec()),
            (7, b"s7".to_vec()),
            (11, b"s11".to_vec())
        ]
    );
    s.remove_signed_prekey(7).await.unwrap();
    s.remove_signed_prekey(7).await.unwrap();
    assert_eq!(s.load_signed_prekey(7).await.unwrap(), None);
    assert_eq!(s.load_all_signed_prekeys().await.unwrap().len(), 2);
}

#[tokio::test]
async fn sender_keys() {
    let f = Fixture::new().await;
    let s = &f.store;
    let name = "120363021033254949@g.us:5511987650001:2@c.us.0";
    assert_eq!(s.get_sender_key(name).await.unwrap(), None);
    s.put_sender_key(name, b"r1").await.unwrap();
    s.put_sender_key(name, b"r2").await.unwrap();
    assert_eq!(s.get_sender_key(name).await.unwrap().unwrap(), b"r2");
    s.put_sender_keys_batch(&[]).await.unwrap();
    let batch: Vec<(Arc<str>, Bytes)> = vec![
        (name.into(), Bytes::from_static(b"r3")),
        ("other".into(), Bytes::new()),
    ];
    s.put_sender_keys_batch(&batch).await.unwrap();
    assert_eq!(s.get_sender_key(name).await.unwrap().unwrap(), b"r3");
    assert_eq!(s.get_sender_key("other").await.unwrap().unwrap(), b"");
    s.delete_sender_key(name).await.unwrap();
    s.delete_sender_key(name).await.unwrap();
    assert_eq!(s.get_sender_key(name).await.unwrap(), None);
}

#[tokio::test]
async fn oversized_values_and_keys_are_clear_errors() {
    let f = Fixture::new().await;
    let s = &f.store;
    let limit = s.config().max_value_size;
    let err = s.put_session("big", &vec![0; limit + 1]).await.unwrap_err();
    assert!(err.to_string().contains("maximum value size"), "{err}");
    let long_key = "k".repeat(70_000);
    let err = s.put_session(&long_key, b"v").await.unwrap_err();
    assert!(err.to_string().contains("key"), "{err}");
    // Nothing of either was stored, and the store still works.
    assert_eq!(s.get_session("big").await.unwrap(), None);
    s.put_session("small", b"v").await.unwrap();
    assert!(s.has_session("small").await.unwrap());
}
