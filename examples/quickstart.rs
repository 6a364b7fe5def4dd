//! Opens a store file, creates an account, touches every trait domain and
//! prints what it stored. Run it twice: the second run first prints what
//! the first one left in the file.
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

const RUN_PREFIX: &str = "quickstart run ";

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
    let address = "5511987650001:1@c.us.0";

    // What an earlier run left: the proof that the data survived.
    let run = match store.load().await? {
        None => {
            println!("first run: the file holds no account yet");
            1
        }
        Some(device) => {
            let last: u32 = device
                .push_name
                .strip_prefix(RUN_PREFIX)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let session = store.get_session(address).await?;
            println!(
                "found what run {last} stored: push name \"{}\", registration id {}, session \"{}\"",
                device.push_name,
                device.registration_id,
                session.map_or_else(
                    || "none".into(),
                    |s| String::from_utf8_lossy(&s).into_owned()
                ),
            );
            last + 1
        }
    };

    // DeviceStore: the account record.
    if !store.exists().await? {
        store.create().await?;
    }
    let mut device = store.load().await?.expect("created above");
    device.push_name = format!("{RUN_PREFIX}{run}");
    store.save(&device).await?;
    println!(
        "device: registration id {}, push name \"{}\"",
        device.registration_id, device.push_name
    );

    // SignalStore: identities, sessions, pre-keys, sender keys.
    store.put_identity(address, [7; 32]).await?;
    let session = format!("session record of run {run}");
    store
        .put_sessions_batch(&[(Arc::from(address), Bytes::from(session))])
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
        "app state: latest key \"{}\", 'regular' at version {}, {} MACs found",
        store.get_latest_sync_key_id().await?.map_or_else(
            || "none".into(),
            |k| String::from_utf8_lossy(&k).into_owned()
        ),
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
        "protocol: {} LID mappings, {} devices for 5511987650001, tc token for {}, \
         sent message taken: {}",
        store.get_all_lid_mappings().await?.len(),
        store
            .get_devices("5511987650001")
            .await?
            .map_or(0, |d| d.devices.len()),
        store.get_all_tc_token_jids().await?.join(", "),
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
    let secret = store
        .get_msg_secret_with_ts(
            "5511987650001@s.whatsapp.net",
            "5511987650001@s.whatsapp.net",
            "3EB0C3",
        )
        .await?;
    match secret {
        Some((secret, ts)) => println!(
            "msg secrets: a secret of {} bytes for a message sent at {ts}",
            secret.len()
        ),
        None => println!("msg secrets: none found"),
    }

    let report = store.resource_report().await;
    println!(
        "file: {} pages, {} bytes written this run",
        report.pages.unwrap_or(0),
        report.io_write_bytes.unwrap_or(0)
    );
    store.close().await?;
    println!("closed cleanly; run again: the next run starts by printing what run {run} stored");
    Ok(())
}
