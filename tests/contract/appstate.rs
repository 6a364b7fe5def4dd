//! AppSyncStore.

use std::collections::HashMap;

use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::traits::{AppStateSyncKey, AppSyncStore};

use crate::support::{Fixture, mac};

fn key(data_len: usize, ts: i64) -> AppStateSyncKey {
    AppStateSyncKey {
        key_data: vec![0xAB; data_len],
        fingerprint: vec![1, 2, 3],
        timestamp: ts,
    }
}

fn m(index: u8, value: u8) -> AppStateMutationMAC {
    AppStateMutationMAC {
        index_mac: mac(index).to_vec(),
        value_mac: vec![value; 32],
    }
}

#[tokio::test]
async fn sync_keys_with_wrong_length_key_data_read_as_absent() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert!(s.get_sync_key(b"k1").await.unwrap().is_none());
    s.set_sync_key(b"k1", key(32, 7)).await.unwrap();
    let got = s.get_sync_key(b"k1").await.unwrap().unwrap();
    assert_eq!(
        (got.key_data.len(), got.fingerprint, got.timestamp),
        (32, vec![1, 2, 3], 7)
    );
    s.set_sync_key(b"k2", key(16, 8)).await.unwrap();
    assert!(s.get_sync_key(b"k2").await.unwrap().is_none());
}

#[tokio::test]
async fn latest_sync_key_is_the_greatest_usable_id_in_byte_order() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert_eq!(s.get_latest_sync_key_id().await.unwrap(), None);
    s.set_sync_key(&[0, 0, 2], key(32, 1)).await.unwrap();
    s.set_sync_key(&[0, 0, 1], key(32, 2)).await.unwrap(); // more recent, smaller
    assert_eq!(
        s.get_latest_sync_key_id().await.unwrap(),
        Some(vec![0, 0, 2])
    );
    // A longer id with the same prefix sorts after it, but is unusable.
    s.set_sync_key(&[0, 0, 2, 0], key(16, 3)).await.unwrap();
    assert_eq!(
        s.get_latest_sync_key_id().await.unwrap(),
        Some(vec![0, 0, 2])
    );
    s.set_sync_key(&[0, 0, 2, 0], key(32, 3)).await.unwrap();
    assert_eq!(
        s.get_latest_sync_key_id().await.unwrap(),
        Some(vec![0, 0, 2, 0])
    );
    // Only this account's keys count.
    assert_eq!(
        s.for_device(9).get_latest_sync_key_id().await.unwrap(),
        None
    );
}

#[tokio::test]
async fn versions_default_and_roundtrip() {
    let f = Fixture::new().await;
    let s = &f.store;
    let v = s.get_version("regular").await.unwrap();
    assert_eq!(
        (v.version, v.hash, v.index_value_map.len()),
        (0, [0; 128], 0)
    );
    let mut state = HashState {
        version: 42,
        hash: [9; 128],
        ..Default::default()
    };
    state.index_value_map.insert("idx".into(), vec![1, 2]);
    state.mac_mismatch_fatal = true;
    s.set_version("regular", state).await.unwrap();
    let got = s.get_version("regular").await.unwrap();
    assert_eq!(got.version, 42);
    assert_eq!(got.hash, [9; 128]);
    assert_eq!(got.index_value_map.get("idx"), Some(&vec![1, 2]));
    assert!(got.mac_mismatch_fatal);
    assert_eq!(s.get_version("critical_block").await.unwrap().version, 0);
}

#[tokio::test]
async fn mutation_macs_put_get_delete() {
    let f = Fixture::new().await;
    let s = &f.store;
    s.put_mutation_macs("regular", 1, &[]).await.unwrap();
    s.put_mutation_macs("regular", 1, &[m(1, 10), m(2, 20), m(1, 11)])
        .await
        .unwrap();
    assert_eq!(
        s.get_mutation_mac("regular", &mac(1)).await.unwrap(),
        Some(vec![11; 32])
    );
    assert_eq!(s.get_mutation_mac("critical", &mac(1)).await.unwrap(), None);
    // Any index length works for the single lookup.
    let odd = AppStateMutationMAC {
        index_mac: vec![5; 7],
        value_mac: vec![1],
    };
    s.put_mutation_macs("regular", 2, &[odd]).await.unwrap();
    assert_eq!(
        s.get_mutation_mac("regular", &[5; 7]).await.unwrap(),
        Some(vec![1])
    );

    let found = s
        .get_mutation_macs("regular", &[mac(1), mac(2), mac(3), mac(1)])
        .await
        .unwrap();
    let expected: HashMap<[u8; 32], Vec<u8>> =
        [(mac(1), vec![11; 32]), (mac(2), vec![20; 32])].into();
    assert_eq!(found, expected);
    assert!(
        s.get_mutation_macs("regular", &[])
            .await
            .unwrap()
            .is_empty()
    );

    s.delete_mutation_macs("regular", &[]).await.unwrap();
    s.delete_mutation_macs("regular", &[mac(1).to_vec(), mac(9).to_vec()])
        .await
        .unwrap();
    assert_eq!(s.get_mutation_mac("regular", &mac(1)).await.unwrap(), None);
    assert!(
        s.get_mutation_mac("regular", &mac(2))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn clearing_a_collection_leaves_the_others() {
    let f = Fixture::new().await;
    let s = &f.store;
    s.put_mutation_macs("regular", 1, &[m(1, 1), m(2, 2)])
        .await
        .unwrap();
    s.put_mutation_macs("regular_low", 1, &[m(1, 3)])
        .await
        .unwrap();
    s.put_mutation_macs("critical", 1, &[m(1, 4)])
        .await
        .unwrap();
    s.for_device(2)
        .put_mutation_macs("regular", 1, &[m(1, 5)])
        .await
        .unwrap();
    s.clear_mutation_macs("regular").await.unwrap();
    s.clear_mutation_macs("regular").await.unwrap();
    assert_eq!(s.get_mutation_mac("regular", &mac(1)).await.unwrap(), None);
    assert_eq!(s.get_mutation_mac("regular", &mac(2)).await.unwrap(), None);
    assert!(
        s.get_mutation_mac("regular_low", &mac(1))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        s.get_mutation_mac("critical", &mac(1))
            .await
            .unwrap()
            .is_some()
    );
    let other = s.for_device(2);
    assert!(
        other
            .get_mutation_mac("regular", &mac(1))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn large_mac_batches() {
    let f = Fixture::new().await;
    let s = &f.store;
    let macs: Vec<AppStateMutationMAC> = (0..5000u32)
        .map(|i| {
            let mut index = [0u8; 32];
            index[..4].copy_from_slice(&i.to_le_bytes());
            AppStateMutationMAC {
                index_mac: index.to_vec(),
                value_mac: i.to_be_bytes().to_vec(),
            }
        })
        .collect();
    s.put_mutation_macs("regular", 3, &macs).await.unwrap();
    let wanted: Vec<[u8; 32]> = macs
        .iter()
        .step_by(3)
        .map(|m| m.index_mac.as_slice().try_into().unwrap())
        .collect();
    let found = s.get_mutation_macs("regular", &wanted).await.unwrap();
    assert_eq!(found.len(), wanted.len());
    for (i, w) in wanted.iter().enumerate() {
        assert_eq!(found[w], ((i * 3) as u32).to_be_bytes().to_vec());
    }
}
