//! DeviceStore, and the device record's encoding.

use std::sync::Arc;

use wacore::libsignal::protocol::{KeyPair, PrivateKey};
use wacore::store::device::DEVICE_PROPS;
use wacore::store::traits::DeviceStore;
use wacore::store::{CachedNoiseCert, CachedServerCertChain, Device};
use wacore_binary::Jid;
use waproto::whatsapp as wa;
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig};

use crate::support::Fixture;

fn key_pair(seed: u8) -> KeyPair {
    KeyPair::try_from(PrivateKey::deserialize(&[seed; 32]).unwrap()).unwrap()
}

/// A device with every persisted field away from its default.
pub fn sample_device() -> Device {
    let mut d = Device::new();
    d.pn = Some("5511987650001:7@s.whatsapp.net".parse::<Jid>().unwrap());
    d.lid = Some("100000012345678:7@lid".parse::<Jid>().unwrap());
    d.registration_id = 123_456;
    d.noise_key = key_pair(1);
    d.identity_key = key_pair(2);
    d.signed_pre_key = key_pair(3);
    d.signed_pre_key_id = 77;
    d.signed_pre_key_signature = [4; 64];
    d.adv_secret_key = [5; 32];
    d.account = Some(Arc::new(wa::ADVSignedDeviceIdentity {
        details: Some(vec![1, 2, 3]),
        account_signature_key: Some(vec![6; 32]),
        account_signature: Some(vec![7; 64]),
        device_signature: Some(vec![8; 64]),
    }));
    d.push_name = "Zoë 🤖".into();
    d.app_version_primary = 2;
    d.app_version_secondary = 3001;
    d.app_version_tertiary = u32::MAX;
    d.app_version_last_fetched_ms = 1_700_000_000_123;
    d.edge_routing_info = Some(vec![]);
    d.props_hash = Some(String::new());
    d.next_pre_key_id = u32::MAX;
    d.first_unupload_pre_key_id = 913;
    d.server_has_prekeys = true;
    d.nct_salt = Some(vec![1, 2]);
    d.server_cert_chain = Some(CachedServerCertChain {
        intermediate: CachedNoiseCert {
            key: [9; 32],
            not_before: 1,
            not_after: 2,
        },
        leaf: CachedNoiseCert {
            key: [10; 32],
            not_before: 3,
            not_after: 4,
        },
    });
    d.login_counter = -5;
    d.lid_migrated = true;
    d.last_signed_pre_key_rotation_ms = 1_700_000_000_000;
    d.read_receipts_disabled = true;
    // Runtime-only fields, which come back as SqliteStore returns them.
    Arc::make_mut(&mut d.device_props).os = Some("custom-os".into());
    d.client_profile = wacore::client_profile::ClientProfile::android("14");
    d.nct_salt_sync_seen = true;
    d
}

fn pair_bytes(k: &KeyPair) -> (Vec<u8>, Vec<u8>) {
    (
        k.private_key.serialize().to_vec(),
        k.public_key.public_key_bytes().to_vec(),
    )
}

/// Asserts `got` equals `want` on every persisted field, and carries the
/// normalised runtime fields.
pub fn assert_same_device(got: &Device, want: &Device) {
    assert_eq!(got.pn, want.pn);
    assert_eq!(got.lid, want.lid);
    assert_eq!(got.registration_id, want.registration_id);
    assert_eq!(pair_bytes(&got.noise_key), pair_bytes(&want.noise_key));
    assert_eq!(
        pair_bytes(&got.identity_key),
        pair_bytes(&want.identity_key)
    );
    assert_eq!(
        pair_bytes(&got.signed_pre_key),
        pair_bytes(&want.signed_pre_key)
    );
    assert_eq!(got.signed_pre_key_id, want.signed_pre_key_id);
    assert_eq!(got.signed_pre_key_signature, want.signed_pre_key_signature);
    assert_eq!(got.adv_secret_key, want.adv_secret_key);
    assert_eq!(
        got.account.as_ref().map(|a| format!("{a:?}")),
        want.account.as_ref().map(|a| format!("{a:?}"))
    );
    assert_eq!(got.push_name, want.push_name);
    assert_eq!(got.app_version_primary, want.app_version_primary);
    assert_eq!(got.app_version_secondary, want.app_version_secondary);
    assert_eq!(got.app_version_tertiary, want.app_version_tertiary);
    assert_eq!(
        got.app_version_last_fetched_ms,
        want.app_version_last_fetched_ms
    );
    assert_eq!(got.edge_routing_info, want.edge_routing_info);
    assert_eq!(got.props_hash, want.props_hash);
    assert_eq!(got.next_pre_key_id, want.next_pre_key_id);
    assert_eq!(
        got.first_unupload_pre_key_id,
        want.first_unupload_pre_key_id
    );
    assert_eq!(got.server_has_prekeys, want.server_has_prekeys);
    assert_eq!(got.nct_salt, want.nct_salt);
    assert_eq!(got.server_cert_chain, want.server_cert_chain);
    assert_eq!(got.login_counter, want.login_counter);
    assert_eq!(got.lid_migrated, want.lid_migrated);
    assert_eq!(
        got.last_signed_pre_key_rotation_ms,
        want.last_signed_pre_key_rotation_ms
    );
    assert_eq!(got.read_receipts_disabled, want.read_receipts_disabled);
    // Not persisted by SqliteStore: the library defaults come back.
    assert_eq!(got.device_props.os.as_deref(), Some("rust"));
    assert_eq!(
        format!("{:?}", got.device_props),
        format!("{:?}", Arc::new(DEVICE_PROPS.clone()))
    );
    assert_eq!(got.client_profile.device, "Desktop");
    assert!(!got.nct_salt_sync_seen);
}

#[tokio::test]
async fn create_returns_the_configured_id_once() {
    let f = Fixture::new().await;
    let s = f.store.for_device(42);
    assert!(!s.exists().await.unwrap());
    assert!(s.load().await.unwrap().is_none());
    assert_eq!(s.create().await.unwrap(), 42);
    assert!(s.exists().await.unwrap());
    assert!(!f.store.exists().await.unwrap(), "device 1 untouched");
    let fresh = s.load().await.unwrap().unwrap();
    assert_eq!(fresh.next_pre_key_id, 1);
    assert_eq!(fresh.first_unupload_pre_key_id, 0);
    assert!(fresh.pn.is_none());
    let err = s.create().await.unwrap_err();
    assert!(
        err.to_string().contains("already exists") || format!("{err:?}").contains("DeviceExists")
    );
    // The existing record is untouched by the failed create.
    assert_eq!(
        s.load().await.unwrap().unwrap().registration_id,
        fresh.registration_id
    );
}

#[tokio::test]
async fn save_works_without_create_and_blocks_a_later_create() {
    let f = Fixture::new().await;
    let s = &f.store;
    s.save(&sample_device()).await.unwrap();
    assert!(s.exists().await.unwrap());
    assert!(s.create().await.is_err());
}

#[tokio::test]
async fn every_persisted_field_roundtrips_across_reopen() {
    let f = Fixture::new().await;
    let want = sample_device();
    f.store.save(&want).await.unwrap();
    assert_same_device(&f.store.load().await.unwrap().unwrap(), &want);
    let f = f.reopen().await;
    assert_same_device(&f.store.load().await.unwrap().unwrap(), &want);
    // Clearing optional fields persists too.
    let mut cleared = want.clone();
    cleared.server_cert_chain = None;
    cleared.account = None;
    cleared.pn = None;
    cleared.nct_salt = None;
    f.store.save(&cleared).await.unwrap();
    let f = f.reopen().await;
    assert_same_device(&f.store.load().await.unwrap().unwrap(), &cleared);
}

#[tokio::test]
async fn snapshot_db_writes_a_store_that_opens() {
    let f = Fixture::new().await;
    f.store.save(&sample_device()).await.unwrap();
    f.store
        .snapshot_db("../pre flush", Some(b"{\"k\":1}"))
        .await
        .unwrap();
    assert!(f.store.snapshot_db("...", None).await.is_err());
    let mut snapshots: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("store.redb.snapshot-"))
        .collect();
    snapshots.sort();
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    assert!(snapshots[0].ends_with("-_pre_flush"), "{snapshots:?}");
    assert_eq!(snapshots[1], format!("{}.json", snapshots[0]));
    assert_eq!(
        std::fs::read(f.dir.path().join(&snapshots[1])).unwrap(),
        b"{\"k\":1}"
    );
    let snap = RedbStore::new(f.dir.path().join(&snapshots[0]))
        .await
        .unwrap();
    assert_same_device(&snap.load().await.unwrap().unwrap(), &sample_device());
}

#[tokio::test]
async fn resource_report_is_populated() {
    let f = Fixture::with_config(RedbStoreConfig::default().with_cache_size_kib(1024)).await;
    f.store.save(&sample_device()).await.unwrap();
    let r = f.store.resource_report().await;
    let mem = r.memory_bytes.unwrap();
    assert!(mem > 0 && mem <= 1024 * 1024, "{mem}");
    assert!(r.pages.unwrap() > 0);
    assert!(r.io_write_bytes.unwrap() > 0);
    assert_eq!(r.total_bytes(), mem);
}
