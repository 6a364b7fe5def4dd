//! MsgSecretStore.

use std::sync::Arc;

use wacore::store::traits::{MsgSecretEntry, MsgSecretStore};

use crate::support::Fixture;

fn entry(chat: &str, sender: &str, id: &str, secret: u8, exp: i64, ts: i64) -> MsgSecretEntry {
    MsgSecretEntry {
        chat: Arc::from(chat),
        sender: Arc::from(sender),
        msg_id: Arc::from(id),
        secret: [secret; 32],
        expires_at: exp,
        message_ts: ts,
    }
}

#[tokio::test]
async fn roundtrip_and_scoping() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert_eq!(s.get_msg_secret("c", "s", "m").await.unwrap(), None);
    assert_eq!(s.get_msg_secret_with_ts("c", "s", "m").await.unwrap(), None);
    s.put_msg_secret("c", "s", "m", &[1; 32]).await.unwrap();
    assert_eq!(
        s.get_msg_secret("c", "s", "m").await.unwrap(),
        Some(vec![1; 32])
    );
    s.put_msg_secret("c", "s", "m", &[2; 32]).await.unwrap();
    assert_eq!(
        s.get_msg_secret("c", "s", "m").await.unwrap(),
        Some(vec![2; 32])
    );
    for (c, snd, m) in [("c", "s", "m2"), ("c", "s2", "m"), ("c2", "s", "m")] {
        assert_eq!(s.get_msg_secret(c, snd, m).await.unwrap(), None);
    }
    assert_eq!(
        s.for_device(2).get_msg_secret("c", "s", "m").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn batches_merge_in_order_and_return_the_input_length() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert_eq!(s.put_msg_secrets(vec![]).await.unwrap(), 0);
    let n = s
        .put_msg_secrets(vec![
            entry("c", "s", "a", 1, 10, 5),
            entry("c", "s", "a", 2, 20, 0),
            entry("c", "s", "b", 3, 0, 0),
        ])
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        s.get_msg_secret_with_ts("c", "s", "a").await.unwrap(),
        Some((vec![2; 32], 5))
    );
    // 102 entries with a duplicate: all counted, last secret wins.
    let mut many: Vec<MsgSecretEntry> = (0..101)
        .map(|i| entry("c", "s", &format!("M{i}"), 7, 0, 0))
        .collect();
    many.push(entry("c", "s", "M0", 8, 0, 0));
    assert_eq!(s.put_msg_secrets(many).await.unwrap(), 102);
    assert_eq!(
        s.get_msg_secret("c", "s", "M0").await.unwrap(),
        Some(vec![8; 32])
    );
    assert_eq!(
        s.get_msg_secret("c", "s", "M100").await.unwrap(),
        Some(vec![7; 32])
    );
}

#[tokio::test]
async fn deadlines_keep_the_later_one_and_zero_means_never() {
    let f = Fixture::new().await;
    let s = &f.store;
    let day = 86_400;
    let now = 1_700_000_000;
    s.put_msg_secrets(vec![entry("c", "s", "m", 1, now + 90 * day, 0)])
        .await
        .unwrap();
    s.put_msg_secrets(vec![entry("c", "s", "m", 1, now + 30 * day, 0)])
        .await
        .unwrap();
    assert_eq!(
        s.delete_expired_msg_secrets(now + 60 * day).await.unwrap(),
        0
    );
    s.put_msg_secret("c", "s", "m", &[1; 32]).await.unwrap();
    assert_eq!(
        s.delete_expired_msg_secrets(now + 200 * day).await.unwrap(),
        0
    );
    assert!(s.get_msg_secret("c", "s", "m").await.unwrap().is_some());
}

#[tokio::test]
async fn sweep_is_inclusive_and_spares_never_expiring_rows() {
    let f = Fixture::new().await;
    let s = &f.store;
    s.put_msg_secrets(vec![
        entry("c", "s", "never", 1, 0, 0),
        entry("c", "s", "past", 1, 20, 0),
        entry("c", "s", "at", 1, 30, 0),
        entry("c", "s", "future", 1, 31, 0),
    ])
    .await
    .unwrap();
    s.for_device(2)
        .put_msg_secrets(vec![entry("c", "s", "past", 1, 20, 0)])
        .await
        .unwrap();
    assert_eq!(s.delete_expired_msg_secrets(30).await.unwrap(), 2);
    assert!(s.get_msg_secret("c", "s", "never").await.unwrap().is_some());
    assert!(
        s.get_msg_secret("c", "s", "future")
            .await
            .unwrap()
            .is_some()
    );
    assert!(s.get_msg_secret("c", "s", "at").await.unwrap().is_none());
    assert!(
        s.for_device(2)
            .get_msg_secret("c", "s", "past")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn message_ts_roundtrips_and_keeps_the_known_value() {
    let f = Fixture::new().await;
    let s = &f.store;
    s.put_msg_secrets(vec![entry("c", "s", "m", 1, 0, 1234)])
        .await
        .unwrap();
    assert_eq!(
        s.get_msg_secret_with_ts("c", "s", "m").await.unwrap(),
        Some((vec![1; 32], 1234))
    );
    s.put_msg_secrets(vec![entry("c", "s", "m", 2, 0, 0)])
        .await
        .unwrap();
    assert_eq!(
        s.get_msg_secret_with_ts("c", "s", "m").await.unwrap(),
        Some((vec![2; 32], 1234))
    );
}
