//! Opens a store file, creates an account, touches every trait domain and
//! prints what it stored.
//!
//! ```text
//! cargo run --release --example quickstart [-- path/to/store.redb]
//! ```

use std::sync::Arc;

use bytes::Bytes;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::RedbStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "quickstart.redb".into());
    // The one line that replaces `SqliteStore::new("whatsapp.db")`.
    let store = RedbStore::new(&path).await?;
    println!(
        "store: {} (account {})",
        store.path().display(),
        store.device_id()
    );

    // DeviceStore: the account record.
    if !store.exists().await? {
        store.create().await?;
    }
    let mut device = store.load().await?.expect("created above");
    device.push_name = "quickstart".into();
    store.save(&device).await?;
    println!(
        "device: registration id {}, push name {:?}",
        device.registration_id, device.push_name
    );

    // SignalStore: identities, sessions, pre-keys, sender keys.
    let address = "5511987650001:1@c.us.0";
    store.put_identity(address, [7; 32]).await?;
    store
        .put_sessions_batch(&[(Arc::from(address), Bytes::from_static(b"session record"))])
        .await?;
    let prekeys: Vec<(u32, Bytes)> = (1..=5)
        .map(|id| (id, Bytes::from(vec![id as u8; 33])))
        .collect();
    store.store_prekeys_batch(&prekeys, false).await?;
    store.mark_prekeys_uploaded(&[1, 2, 3, 4, 5]).await?;
    store
        .store_signed_prekey(1, b"signed pre-key record")
        .await?;
    store
        .put_sender_key("120363021033254949@g.us:5511987650001:1", b"sender key")
        .await?;
    println!(
        "signal: session {} bytes, identity stored: {}, max pre-key id {}, signed pre-keys {}",
        store.get_session(address).await?.map_or(0, |s| s.len()),
        store.load_identity(address).await?.is_some(),
        store.get_max_prekey_id().await?,
        store.load_all_signed_prekeys().await?.len()
    );

    // AppSyncStore: sync keys, versions, mutation MACs.
    store
        .set_sync_key(
            b"key-1",
            AppStateSyncKey {
                key_data: vec![1; 32],
                fingerprint: vec![2],
                timestamp: 1_700_000_000,
            },
        )
        .await?;
    store
        .set_version(
            "regular",
            HashState {
                version: 3,
                ..Default::default()
            },
        )
        .await?;
    let macs: Vec<AppStateMutationMAC> = (0..100u8)
        .map(|i| AppStateMutationMAC {
            index_mac: vec![i; 32],
            value_mac: vec![i ^ 0xFF; 32],
        })
        .collect();
    store.put_mutation_macs("regular", 3, &macs).await?;
    println!(
        "app state: latest key {:?}, 'regular' at version {}, {} MACs found",
        store.get_latest_sync_key_id().await?.map(String::from_utf8),
        store.get_version("regular").await?.version,
        store
            .get_mutation_macs("regular", &[[0; 32], [99; 32]])
            .await?
            .len()
    );

    // ProtocolStore: LID mappings, device lists, tokens, sent messages,
    // the pending-inbound buffer.
    store
        .put_lid_mapping(&LidPnMappingEntry {
            lid: "100000012345678".into(),
            phone_number: "5511987650001".into(),
            created_at: 1_700_000_000,
            updated_at: 1_700_000_000,
            learning_source: "usync".into(),
        })
        .await?;
    store
        .update_device_lists(vec![DeviceListRecord {
            user: "5511987650001".into(),
            devices: vec![DeviceInfo::new(0, None), DeviceInfo::new(1, Some(1))],
            timestamp: 1_700_000_000,
            phash: None,
            raw_id: None,
        }])
        .await?;
    store
        .store_received_tc_token("100000012345678", b"token", 1_700_000_000)
        .await?;
    store
        .store_sent_message("5511987650001@s.whatsapp.net", "3EB0A1", b"payload")
        .await?;
    store
        .store_pending_inbound_batch(&[PendingInboundRow {
            chat: "5511987650001@s.whatsapp.net",
            sender: "5511987650001@s.whatsapp.net",
            id: "3EB0B2",
            message: b"inbound",
        }])
        .await?;
    println!(
        "protocol: {} LID mappings, {} devices for 5511987650001, tc token for {:?}, \
         sent message taken: {}",
        store.get_all_lid_mappings().await?.len(),
        store
            .get_devices("5511987650001")
            .await?
            .map_or(0, |d| d.devices.len()),
        store.get_all_tc_token_jids().await?,
        store
            .take_sent_message("5511987650001@s.whatsapp.net", "3EB0A1")
            .await?
            .is_some()
    );

    // MsgSecretStore.
    store
        .put_msg_secrets(vec![MsgSecretEntry {
            chat: "5511987650001@s.whatsapp.net".into(),
            sender: "5511987650001@s.whatsapp.net".into(),
            msg_id: "3EB0C3".into(),
            secret: [9; 32],
            expires_at: 0,
            message_ts: 1_700_000_000,
        }])
        .await?;
    println!(
        "msg secrets: {:?}",
        store
            .get_msg_secret_with_ts(
                "5511987650001@s.whatsapp.net",
                "5511987650001@s.whatsapp.net",
                "3EB0C3"
            )
            .await?
            .map(|(s, ts)| (s.len(), ts))
    );

    let report = store.resource_report().await;
    println!(
        "file: {} pages, {} bytes written this run",
        report.pages.unwrap_or(0),
        report.io_write_bytes.unwrap_or(0)
    );
    store.close().await?;
    println!("closed cleanly; run again to see the data survive");
    Ok(())
}
