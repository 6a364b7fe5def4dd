//! Many tasks racing on one store give the same result as running the same
//! operations one at a time; a failing operation coalesced with others
//! fails alone.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Barrier;
use wacore::store::traits::{
    LidPnMappingEntry, MsgSecretEntry, MsgSecretStore, ProtocolStore, SignalStore,
};
use whatsapp_rust_redb_storage::RedbStore;

async fn store() -> (tempfile::TempDir, RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = RedbStore::new(dir.path().join("c.redb")).await.unwrap();
    (dir, s)
}

/// Runs `n` copies of `f` at once (released together by a barrier).
async fn race<F, Fut, T>(n: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let mut handles = Vec::new();
    for i in 0..n {
        let fut = f(i);
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            fut.await
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_concurrent_take_gets_the_message() {
    let (_dir, s) = store().await;
    for m in 0..40 {
        let id = format!("m{m}");
        s.store_sent_message("chat", &id, b"payload").await.unwrap();
        let got = race(16, |_| {
            let (s, id) = (s.clone(), id.clone());
            async move { s.take_sent_message("chat", &id).await.unwrap() }
        })
        .await;
        let winners = got.iter().filter(|g| g.is_some()).count();
        assert_eq!(winners, 1, "message {m}: {winners} takers got it");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tc_token_merges_race_to_the_serial_result() {
    let (_dir, s) = store().await;
    // Distinct timestamps: the merge result does not depend on order.
    let ops: Vec<(bool, i64)> = (0..64)
        .map(|i| (i % 3 == 0, 1000 + (i * 37 % 64)))
        .collect();
    for round in 0..5 {
        let jid = format!("j{round}");
        let ops2 = ops.clone();
        race(ops.len(), |i| {
            let (s, jid, (touch, ts)) = (s.clone(), jid.clone(), ops2[i]);
            async move {
                if touch {
                    s.touch_tc_token_sender_timestamp(&jid, ts).await.unwrap();
                } else {
                    s.store_received_tc_token(&jid, format!("t{ts}").as_bytes(), ts)
                        .await
                        .unwrap();
                }
            }
        })
        .await;
        // The same operations one at a time, on another key.
        let serial = format!("serial{round}");
        for &(touch, ts) in &ops {
            if touch {
                s.touch_tc_token_sender_timestamp(&serial, ts)
                    .await
                    .unwrap();
            } else {
                s.store_received_tc_token(&serial, format!("t{ts}").as_bytes(), ts)
                    .await
                    .unwrap();
            }
        }
        let a = s.get_tc_token(&jid).await.unwrap().unwrap();
        let b = s.get_tc_token(&serial).await.unwrap().unwrap();
        assert_eq!(
            (a.token, a.token_timestamp, a.sender_timestamp),
            (b.token, b.token_timestamp, b.sender_timestamp)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn msg_secret_merges_race_to_the_serial_result() {
    let (_dir, s) = store().await;
    let entry = |i: i64| MsgSecretEntry {
        chat: "c".into(),
        sender: "s".into(),
        msg_id: "m".into(),
        secret: [i as u8; 32],
        expires_at: if i == 17 { 0 } else { 100 + i },
        message_ts: i * 3 % 50,
    };
    let results = race(48, |i| {
        let s = s.clone();
        async move { s.put_msg_secrets(vec![entry(i as i64)]).await.unwrap() }
    })
    .await;
    assert!(results.iter().all(|&n| n == 1));
    let (secret, ts) = s
        .get_msg_secret_with_ts("c", "s", "m")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ts, (0..48).map(|i| i * 3 % 50).max().unwrap());
    assert!(secret.iter().all(|&b| b == secret[0]) && secret[0] < 48);
    // Entry 17 never expires, and 0 wins the deadline merge in any order.
    assert_eq!(s.delete_expired_msg_secrets(i64::MAX).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_are_atomic_and_serialized() {
    let (_dir, s) = store().await;
    let keys: Vec<Arc<str>> = (0..8).map(|k| Arc::from(format!("k{k}"))).collect();
    race(32, |i| {
        let (s, keys) = (s.clone(), keys.clone());
        async move {
            for round in 0..10 {
                let tag = Bytes::from(format!("{i}-{round}"));
                let batch: Vec<(Arc<str>, Bytes)> =
                    keys.iter().map(|k| (k.clone(), tag.clone())).collect();
                s.put_sessions_batch(&batch).await.unwrap();
                // Read-your-writes: right after Ok, every key holds a value
                // of one whole batch.
                let first = s.get_session(&keys[0]).await.unwrap().unwrap();
                assert!(!first.is_empty());
            }
        }
    })
    .await;
    let mut values = HashSet::new();
    for k in &keys {
        values.insert(s.get_session(k).await.unwrap().unwrap());
    }
    assert_eq!(
        values.len(),
        1,
        "keys come from different batches: {values:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_operation_in_a_coalesced_batch_fails_alone() {
    let (_dir, s) = store().await;
    let limit = s.config().max_value_size;
    for round in 0..5 {
        let outcomes = race(48, |i| {
            let s = s.clone();
            async move {
                let key = |k: usize| format!("r{round}-t{i}-k{k}");
                match i % 4 {
                    // A batch whose last value is too large: must fail whole.
                    0 => {
                        let mut batch: Vec<(Arc<str>, Bytes)> = (0..3)
                            .map(|k| (Arc::from(key(k)), Bytes::from_static(b"ok")))
                            .collect();
                        batch.push((Arc::from(key(3)), Bytes::from(vec![0u8; limit + 1])));
                        s.put_sessions_batch(&batch).await.is_err()
                    }
                    // LID mappings without a device record: refused.
                    1 => {
                        let e = LidPnMappingEntry {
                            lid: key(0),
                            phone_number: "p".into(),
                            created_at: 1,
                            updated_at: 1,
                            learning_source: "x".into(),
                        };
                        s.put_lid_mapping(&e).await.is_err()
                    }
                    // Valid writes next to them succeed.
                    _ => {
                        s.put_session(&key(0), b"v").await.unwrap();
                        s.get_session(&key(0)).await.unwrap().as_deref() == Some(&b"v"[..])
                    }
                }
            }
        })
        .await;
        assert!(outcomes.iter().all(|ok| *ok), "round {round}: {outcomes:?}");
        for i in (0..48).step_by(4) {
            for k in 0..4 {
                let key = format!("r{round}-t{i}-k{k}");
                assert!(!s.has_session(&key).await.unwrap(), "partial batch {key}");
            }
            assert!(
                s.get_lid_mapping(&format!("r{round}-t{}-k0", i + 1))
                    .await
                    .unwrap()
                    .is_none()
            );
        }
    }
}

/// Hundreds of accounts of one file writing at once, as a bot fleet does:
/// every write completes. Most writers get their reply from another
/// caller's batch just as the lane is let go; with the earlier lane, which
/// was handed from caller to caller, a handover lost in that moment left
/// the lane owned by nobody and every later write of the file waited
/// forever (seen in the fleet benchmark, 1,000 accounts, about one run in
/// three). The deadline only turns such a hang into a failure: a healthy
/// run needs a few seconds of it.
#[test]
fn a_fleet_of_writers_on_one_file_never_stalls() {
    let rounds: usize = std::env::var("WA_REDB_FLEET_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (_dir, store) = store().await;
        let accounts: Vec<Arc<RedbStore>> = (1..=400)
            .map(|device| Arc::new(store.for_device(device)))
            .collect();
        let work = async {
            for round in 0..rounds {
                let tasks: Vec<_> = accounts
                    .iter()
                    .map(|s| {
                        let s = s.clone();
                        tokio::spawn(async move {
                            let addr = format!("{round}.0");
                            s.put_session(&addr, &[round as u8; 64]).await.unwrap();
                            let id = format!("3EB0{round:08X}");
                            s.store_sent_message("c@s.whatsapp.net", &id, b"payload")
                                .await
                                .unwrap();
                            assert!(
                                s.take_sent_message("c@s.whatsapp.net", &id)
                                    .await
                                    .unwrap()
                                    .is_some()
                            );
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(600), work)
            .await
            .expect("writes stopped completing: the write lane was lost");
        for s in &accounts {
            let got = s.get_session(&format!("{}.0", rounds - 1)).await.unwrap();
            assert_eq!(got.as_deref(), Some(&[(rounds - 1) as u8; 64][..]));
        }
    });
}
