//! Device ids at the extremes (`i32::MIN`, `i32::MAX` and their
//! neighbours): found, isolated from each other, wiped without touching the
//! neighbours, and working again after the wipe and a reopen.

use wacore::store::traits::*;
use whatsapp_rust_redb_storage::RedbStore;

use crate::dataset::{self, chain};
use crate::fresh;

const ROWS: u32 = 6;

/// Every extreme and its neighbours.
const IDS: [i32; 7] = [i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX - 1, i32::MAX];

fn assert_clean(c: &dataset::Check, context: &str) {
    assert!(
        c.is_clean(),
        "{context}: diffs {:?}, errors {:?}",
        c.diffs,
        c.errors
            .iter()
            .map(|(w, e)| format!("{w}: {}", chain(e)))
            .collect::<Vec<_>>()
    );
}

/// Rows of device `d` in the whole file, per `accounts()`.
async fn rows_of(s: &RedbStore, d: i32) -> u64 {
    s.accounts()
        .await
        .unwrap()
        .iter()
        .find(|a| a.device_id == d)
        .map_or(0, |a| a.rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_ids_at_the_extremes_are_found_and_isolated() {
    let (_dir, path, s) = fresh().await;
    for d in IDS {
        let h = s.for_device(d);
        dataset::populate(&h, ROWS).await;
        // Rows that expire, for the sweeps below.
        h.put_msg_secrets(vec![MsgSecretEntry {
            expires_at: 100,
            ..dataset::msg_secret(d, 1000)
        }])
        .await
        .unwrap();
    }
    let per_device = rows_of(&s, i32::MAX).await;
    assert!(per_device > 100, "i32::MAX has {per_device} rows");
    for d in IDS {
        let h = s.for_device(d);
        // Values depend on the device: a row of another device would read
        // as a difference, and extra rows in scans as a length mismatch.
        assert_clean(
            &dataset::check(&h, ROWS, false).await,
            &format!("device {d}"),
        );
        assert_eq!(rows_of(&s, d).await, per_device, "device {d}");
        assert_eq!(h.get_max_prekey_id().await.unwrap(), ROWS);
    }

    // Wipe the two extremes with every destructive operation at its widest;
    // their neighbours keep everything.
    for d in [i32::MAX, i32::MIN] {
        let h = s.for_device(d);
        h.clear_all_sender_key_devices().await.unwrap();
        assert_eq!(
            h.delete_expired_sent_messages(i64::MAX).await.unwrap(),
            ROWS
        );
        assert_eq!(
            h.delete_expired_pending_inbound(i64::MAX).await.unwrap(),
            ROWS
        );
        assert_eq!(
            h.delete_expired_tc_tokens(i64::MAX, i64::MAX)
                .await
                .unwrap(),
            ROWS
        );
        assert_eq!(h.delete_expired_msg_secrets(i64::MAX).await.unwrap(), 1);
        for g in 0..5 {
            assert!(
                h.get_sender_key_devices(&dataset::group(g))
                    .await
                    .unwrap()
                    .is_empty()
            );
        }
        for name in dataset::COLLECTIONS {
            h.clear_mutation_macs(name).await.unwrap();
        }
        let left = s.delete_device(d).await.unwrap();
        assert!(left > 0);
        assert_eq!(rows_of(&s, d).await, 0, "device {d} fully deleted");
        assert!(!h.exists().await.unwrap());
        assert_eq!(h.get_max_prekey_id().await.unwrap(), 0);
        assert!(h.get_all_lid_mappings().await.unwrap().is_empty());
        assert!(h.get_all_tc_token_jids().await.unwrap().is_empty());
        assert_eq!(h.get_latest_sync_key_id().await.unwrap(), None);
    }
    let survivors = [i32::MIN + 1, -1, 0, 1, i32::MAX - 1];
    for d in survivors {
        assert_clean(
            &dataset::check(&s.for_device(d), ROWS, false).await,
            &format!("device {d} after wiping the extremes"),
        );
        assert_eq!(rows_of(&s, d).await, per_device, "device {d}");
    }

    // The extremes work again after the wipe, and everything survives a
    // reopen; separate handles of the file see the same.
    dataset::populate(&s.for_device(i32::MAX), ROWS).await;
    s.close().await.unwrap();
    let s = RedbStore::new_for_device(&path, i32::MAX).await.unwrap();
    assert_clean(
        &dataset::check(&s, ROWS, true).await,
        "i32::MAX after reopen",
    );
    for d in survivors {
        let h = RedbStore::new_for_device(&path, d).await.unwrap();
        assert_clean(
            &dataset::check(&h, ROWS, true).await,
            &format!("device {d} after reopen"),
        );
    }
    assert_eq!(rows_of(&s, i32::MIN).await, 0);
}
