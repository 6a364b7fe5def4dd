//! Every table survives close and reopen; a file written by this version
//! (a checked-in fixture) still opens and decodes.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::RedbStore;

use crate::device::{assert_same_device, sample_device};
use crate::support::{Fixture, mac};

/// Writes one or more rows to every table, for device `store.device_id()`.
pub async fn populate(s: &RedbStore) {
    s.save(&sample_device()).await.unwrap();
    s.put_identity("a@c.us.0", [1; 32]).await.unwrap();
    s.put_sessions_batch(&[("a@c.us.0".into(), Bytes::from_static(b"session"))])
        .await
        .unwrap();
    s.store_prekeys_batch(&[(5, Bytes::from_static(b"pk5")), (6, Bytes::new())], true)
        .await
        .unwrap();
    s.store_signed_prekey(3, b"spk3").await.unwrap();
    s.put_sender_key("g@g.us:a@c.us.0", b"sk").await.unwrap();
    s.set_sync_key(
        b"key-1",
        AppStateSyncKey {
            key_data: vec![3; 32],
            fingerprint: vec![4],
            timestamp: 5,
        },
    )
    .await
    .unwrap();
    let mut state = HashState {
        version: 9,
        ..Default::default()
    };
    state.index_value_map.insert("i".into(), vec![7]);
    s.set_version("regular", state).await.unwrap();
    s.put_mutation_macs(
        "regular",
        9,
        &[AppStateMutationMAC {
            index_mac: mac(1).to_vec(),
            value_mac: vec![2; 32],
        }],
    )
    .await
    .unwrap();
    s.set_sender_key_status("g@g.us", &[("a:1@lid", true), ("b:1@lid", false)])
        .await
        .unwrap();
    s.put_lid_mappings(&[
        LidPnMappingEntry {
            lid: "100".into(),
            phone_number: "55".into(),
            created_at: 1,
            updated_at: 2,
            learning_source: "usync".into(),
        },
        LidPnMappingEntry {
            lid: "099".into(),
            phone_number: "56".into(),
            created_at: 3,
            updated_at: 4,
            learning_source: "other".into(),
        },
    ])
    .await
    .unwrap();
    s.save_base_key("a@c.us.0", "m1", b"bk").await.unwrap();
    s.update_device_list(DeviceListRecord {
        user: "55".into(),
        devices: vec![
            DeviceInfo::new(0, None),
            DeviceInfo::new(3, Some(4)).with_hosting(true),
        ],
        timestamp: 1_700_000_000,
        phash: Some("2:x".into()),
        raw_id: Some(7),
    })
    .await
    .unwrap();
    s.put_group_metadata("g@g.us", b"meta").await.unwrap();
    s.put_tc_token(
        "55",
        &TcTokenEntry {
            token: b"tok".to_vec(),
            token_timestamp: 10,
            sender_timestamp: Some(11),
        },
    )
    .await
    .unwrap();
    s.store_sent_message("c@s.whatsapp.net", "M1", b"payload")
        .await
        .unwrap();
    s.store_pending_inbound("c@s.whatsapp.net", "s@s.whatsapp.net", "S1", b"inbound")
        .await
        .unwrap();
    s.put_msg_secrets(vec![MsgSecretEntry {
        chat: Arc::from("c@s.whatsapp.net"),
        sender: Arc::from("s@s.whatsapp.net"),
        msg_id: Arc::from("M1"),
        secret: [8; 32],
        expires_at: 4_000_000_000,
        message_ts: 1_700_000_001,
    }])
    .await
    .unwrap();
}

/// Checks everything [`populate`] wrote.
pub async fn verify(s: &RedbStore) {
    assert_same_device(&s.load().await.unwrap().unwrap(), &sample_device());
    assert_eq!(s.load_identity("a@c.us.0").await.unwrap(), Some([1; 32]));
    assert_eq!(
        s.get_session("a@c.us.0").await.unwrap().unwrap().as_ref(),
        b"session"
    );
    assert_eq!(s.load_prekey(5).await.unwrap().unwrap().as_ref(), b"pk5");
    assert_eq!(s.load_prekey(6).await.unwrap().unwrap().as_ref(), b"");
    assert_eq!(s.get_max_prekey_id().await.unwrap(), 6);
    assert_eq!(s.load_signed_prekey(3).await.unwrap().unwrap(), b"spk3");
    assert_eq!(
        s.get_sender_key("g@g.us:a@c.us.0").await.unwrap().unwrap(),
        b"sk"
    );
    let key = s.get_sync_key(b"key-1").await.unwrap().unwrap();
    assert_eq!(
        (key.key_data, key.fingerprint, key.timestamp),
        (vec![3; 32], vec![4], 5)
    );
    assert_eq!(
        s.get_latest_sync_key_id().await.unwrap(),
        Some(b"key-1".to_vec())
    );
    let v = s.get_version("regular").await.unwrap();
    assert_eq!((v.version, v.index_value_map.get("i")), (9, Some(&vec![7])));
    assert_eq!(
        s.get_mutation_mac("regular", &mac(1)).await.unwrap(),
        Some(vec![2; 32])
    );
    let mut devices = s.get_sender_key_devices("g@g.us").await.unwrap();
    devices.sort();
    assert_eq!(
        devices,
        vec![("a:1@lid".into(), true), ("b:1@lid".into(), false)]
    );
    let lids: Vec<String> = s
        .get_all_lid_mappings()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.lid)
        .collect();
    assert_eq!(lids, ["100", "099"]);
    assert_eq!(s.get_pn_mapping("56").await.unwrap().unwrap().lid, "099");
    assert_eq!(
        s.get_lid_mapping("100").await.unwrap().unwrap().created_at,
        1
    );
    assert!(s.has_same_base_key("a@c.us.0", "m1", b"bk").await.unwrap());
    let dl = s.get_devices("55").await.unwrap().unwrap();
    assert_eq!(
        (dl.devices.len(), dl.timestamp, dl.raw_id),
        (2, 1_700_000_000, Some(7))
    );
    assert!(dl.devices[1].is_hosted);
    assert_eq!(
        s.get_group_metadata("g@g.us").await.unwrap().unwrap(),
        b"meta"
    );
    let tc = s.get_tc_token("55").await.unwrap().unwrap();
    assert_eq!(
        (tc.token, tc.token_timestamp, tc.sender_timestamp),
        (b"tok".to_vec(), 10, Some(11))
    );
    assert_eq!(
        s.get_pending_inbound("c@s.whatsapp.net", "s@s.whatsapp.net", "S1")
            .await
            .unwrap()
            .unwrap(),
        b"inbound"
    );
    assert_eq!(
        s.get_msg_secret_with_ts("c@s.whatsapp.net", "s@s.whatsapp.net", "M1")
            .await
            .unwrap(),
        Some((vec![8; 32], 1_700_000_001))
    );
    // Last: taking the sent message consumes it.
    assert_eq!(
        s.take_sent_message("c@s.whatsapp.net", "M1")
            .await
            .unwrap()
            .unwrap(),
        b"payload"
    );
}

#[tokio::test]
async fn every_table_survives_a_clean_reopen() {
    let f = Fixture::new().await;
    populate(&f.store).await;
    let second = f.store.for_device(-7);
    populate(&second).await;
    drop(second);
    let f = f.reopen().await;
    verify(&f.store).await;
    verify(&f.store.for_device(-7)).await;
}

const GOLDEN: &str = "tests/fixtures/golden-v1.redb";

/// Regenerates the golden fixture: `WA_REDB_WRITE_GOLDEN=1 cargo test
/// --test contract write_golden_fixture -- --ignored`. Only do this when
/// the file format changes on purpose (a new schema version).
#[tokio::test]
#[ignore]
async fn write_golden_fixture() {
    if std::env::var_os("WA_REDB_WRITE_GOLDEN").is_none() {
        return;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    let _ = std::fs::remove_file(&path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let store = RedbStore::new(&path).await.unwrap();
    populate(&store).await;
    populate(&store.for_device(2)).await;
    store.close().await.unwrap();
}

/// A store written by version 1 of the format (checked in) still opens,
/// and every record decodes, including the device record: wacore adds
/// device fields with `#[serde(default)]`, and the encoding must keep
/// decoding records written before them.
#[tokio::test]
async fn golden_v1_file_still_decodes() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("golden.redb");
    std::fs::copy(&src, &path).expect("tests/fixtures/golden-v1.redb is checked in");
    let store = RedbStore::new(&path).await.unwrap();
    verify(&store).await;
    verify(&store.for_device(2)).await;
}
