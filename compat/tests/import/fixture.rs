//! The data set: two accounts written through the trait API with rows in
//! every table (including what the trait cannot read back), and the key,
//! value and name helpers that make every row distinct.

use std::sync::Arc;

use bytes::Bytes;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::traits::*;

use crate::diff_util::{self, DeviceSpec};

pub const DEVICES: [i32; 2] = [1, 42];
/// Rows per table (mutation MACs: more, to cross the write chunks).
pub const N: u32 = 40;
pub const MACS: u32 = 2100;

pub fn addr(i: u32) -> String {
    format!("55{:08}:{}@c.us.0", i, i % 3)
}
pub fn blob(d: i32, tag: &str, i: u32) -> Vec<u8> {
    let len = 1 + (i as usize * 7 + tag.len()) % 50;
    (0..len)
        .map(|k| (k as u32 ^ i ^ d as u32).wrapping_add(tag.len() as u32) as u8)
        .collect()
}
/// Distinct for every (d, tag, i).
pub fn key32(d: i32, tag: &str, i: u32) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..4].copy_from_slice(&i.to_be_bytes());
    k[4..8].copy_from_slice(&d.to_be_bytes());
    for (j, b) in k.iter_mut().enumerate().skip(8) {
        *b = (j as u32 * 31 + i * 7) as u8 ^ tag.as_bytes()[j % tag.len()];
    }
    k
}
pub fn group(i: u32) -> String {
    format!("120363{i:05}@g.us")
}
pub fn chat(i: u32) -> String {
    format!("55{:08}@s.whatsapp.net", i % 7)
}
pub fn msg_id(i: u32) -> String {
    format!("3EB0{i:08X}")
}
pub fn lid(i: u32) -> String {
    format!("1000000{i:08}")
}
pub const COLLECTIONS: [&str; 3] = ["regular", "critical_block", "regular_high"];
pub const BAD_SYNC_KEY: &[u8] = b"key-bad";

/// The device record of account `d` (also used by `import_readonly`).
pub fn device_spec(d: i32) -> DeviceSpec {
    DeviceSpec {
        pn: Some(if d == 1 {
            "5511987650001@s.whatsapp.net"
        } else {
            "5511987650042@s.whatsapp.net"
        }),
        lid: Some(if d == 1 {
            "100000012345601@lid"
        } else {
            "100000012345642@lid"
        }),
        registration_id: 1000 + d as u32,
        key_seed: d as u8,
        signed_pre_key_id: 7,
        account: Some(d as u8),
        push_name: if d == 1 { "Alice" } else { "ñandú" },
        app_version: (2, 3000, 1_042_742_319, 1_700_000_000_000),
        edge_routing_info: Some(vec![1, 2, 3]),
        props_hash: Some("h1"),
        next_pre_key_id: 913,
        first_unupload_pre_key_id: 101,
        server_has_prekeys: true,
        nct_salt: Some(vec![9, 9]),
        cert_chain: Some(5),
        login_counter: -5,
        lid_migrated: true,
        last_signed_pre_key_rotation_ms: 1_700_000_000_000,
        read_receipts_disabled: true,
        runtime_fields_set: false,
    }
}

/// Writes account `d` through the trait API.
pub async fn fill(s: &dyn Backend, d: i32) {
    s.save(&device_spec(d).build()).await.unwrap();
    let ids: Vec<(Arc<str>, [u8; 32])> = (0..N)
        .map(|i| (Arc::from(addr(i)), key32(d, "identity", i)))
        .collect();
    s.put_identities_batch(&ids).await.unwrap();
    let sessions: Vec<(Arc<str>, Bytes)> = (0..N)
        .map(|i| (Arc::from(addr(i)), Bytes::from(blob(d, "session", i))))
        .collect();
    s.put_sessions_batch(&sessions).await.unwrap();
    let prekeys: Vec<(u32, Bytes)> = (1..=N)
        .map(|i| (i, Bytes::from(blob(d, "prekey", i))))
        .collect();
    s.store_prekeys_batch(&prekeys, false).await.unwrap();
    let marked: Vec<u32> = (1..=N).filter(|i| i % 3 == 0).collect();
    s.mark_prekeys_uploaded(&marked).await.unwrap();
    s.store_prekey(0x7FFF_FFF0, &blob(d, "prekey", 0), true)
        .await
        .unwrap();
    for id in [7u32, 2, 11, 5] {
        s.store_signed_prekey(id, &blob(d, "signed", id))
            .await
            .unwrap();
    }
    let sks: Vec<(Arc<str>, Bytes)> = (0..N)
        .map(|i| {
            let name = format!("{}:{}", group(i % 5), addr(i));
            (Arc::from(name), Bytes::from(blob(d, "senderkey", i)))
        })
        .collect();
    s.put_sender_keys_batch(&sks).await.unwrap();
    for i in 0..5u32 {
        let key = AppStateSyncKey {
            key_data: key32(d, "sync", i).to_vec(),
            fingerprint: blob(d, "fp", i),
            timestamp: 1_700_000_000 + i as i64,
        };
        s.set_sync_key(format!("key-{i}").as_bytes(), key)
            .await
            .unwrap();
    }
    // Unusable in SqliteStore (key_data not 32 bytes): reads as absent
    // there, so it cannot be imported; the report lists it.
    let bad = AppStateSyncKey {
        key_data: vec![1; 16],
        fingerprint: vec![],
        timestamp: 1,
    };
    s.set_sync_key(BAD_SYNC_KEY, bad).await.unwrap();
    for (k, name) in COLLECTIONS.iter().enumerate() {
        let mut state = diff_util::hash_state_of(k as u64 + 10, k as u8, &[], k == 1);
        for i in 0..5u32 {
            state
                .index_value_map
                .insert(format!("idx-{k}-{i}"), blob(d, "ivm", i));
        }
        s.set_version(name, state).await.unwrap();
        let count = if k == 0 && d == DEVICES[0] { MACS } else { N };
        let macs: Vec<AppStateMutationMAC> = (0..count)
            .map(|i| AppStateMutationMAC {
                index_mac: key32(0, name, i).to_vec(),
                value_mac: key32(d, "valuemac", i).to_vec(),
            })
            .collect();
        // Two versions per collection: the version is a hidden column.
        let (first, second) = macs.split_at(macs.len() / 2);
        s.put_mutation_macs(name, k as u64 + 1, first)
            .await
            .unwrap();
        s.put_mutation_macs(name, k as u64 + 7, second)
            .await
            .unwrap();
    }
    for g in 0..3u32 {
        let jids: Vec<String> = (0..6u32)
            .map(|j| format!("55{:08}:{}@s.whatsapp.net", j + g, j % 2))
            .collect();
        let entries: Vec<(&str, bool)> = jids
            .iter()
            .enumerate()
            .map(|(j, jid)| (jid.as_str(), j % 2 == 0))
            .collect();
        s.set_sender_key_status(&group(g), &entries).await.unwrap();
    }
    // LID mappings: inserted against key order, with get_pn_mapping ties
    // that only insertion order decides, and an update that keeps the
    // first created_at and the row's position.
    let entry = |lid: &str, phone: &str, created: i64, updated: i64| LidPnMappingEntry {
        lid: lid.into(),
        phone_number: phone.into(),
        created_at: created,
        updated_at: updated,
        learning_source: "usync".into(),
    };
    s.put_lid_mapping(&entry("300", "5511", 10, 100))
        .await
        .unwrap();
    s.put_lid_mapping(&entry("100", "5511", 20, 100))
        .await
        .unwrap();
    s.put_lid_mapping(&entry("200", "5511", 30, 50))
        .await
        .unwrap();
    s.put_lid_mapping(&entry("100", "5511", 999, 100))
        .await
        .unwrap();
    let many: Vec<LidPnMappingEntry> = (0..N)
        .rev()
        .map(|i| LidPnMappingEntry {
            lid: lid(i),
            phone_number: format!("5521{:07}", i / 3),
            created_at: 1_600_000_000 + i as i64,
            updated_at: 1_700_000_000 + (i / 2) as i64 + d as i64,
            learning_source: ["usync", "peer_pn_message", "other"][i as usize % 3].into(),
        })
        .collect();
    s.put_lid_mappings(&many).await.unwrap();
    for i in 0..N {
        s.save_base_key(&addr(i), &msg_id(i), &blob(d, "basekey", i))
            .await
            .unwrap();
    }
    let lists: Vec<DeviceListRecord> = (0..N)
        .map(|i| DeviceListRecord {
            user: format!("55{i:08}"),
            devices: (0..(i % 4 + 1))
                .map(|k| DeviceInfo::new(k, Some(k + d as u32)).with_hosting(k == 3))
                .collect(),
            timestamp: 1_700_000_000 + i as i64,
            phash: (i % 2 == 0).then(|| format!("2:{i}")),
            raw_id: (i % 3 != 0).then_some(i),
        })
        .collect();
    s.update_device_lists(lists).await.unwrap();
    for i in 0..N {
        s.put_group_metadata(&group(i), &blob(d, "groupmeta", i))
            .await
            .unwrap();
        let tc = TcTokenEntry {
            token: blob(d, "tc", i),
            token_timestamp: 1_000 + i as i64,
            sender_timestamp: (i % 2 == 0).then_some(2_000 + i as i64),
        };
        s.put_tc_token(&lid(i), &tc).await.unwrap();
        s.store_sent_message(&chat(i), &msg_id(i), &blob(d, "sent", i))
            .await
            .unwrap();
    }
    let inbound: Vec<(String, String, String, Vec<u8>)> = (0..N)
        .map(|i| (chat(i), addr(i), msg_id(i), blob(d, "inbound", i)))
        .collect();
    let rows: Vec<PendingInboundRow<'_>> = inbound
        .iter()
        .map(|(c, s, id, m)| PendingInboundRow {
            chat: c,
            sender: s,
            id,
            message: m,
        })
        .collect();
    s.store_pending_inbound_batch(&rows).await.unwrap();
    let secrets: Vec<MsgSecretEntry> = (0..N)
        .map(|i| MsgSecretEntry {
            chat: Arc::from(chat(i)),
            sender: Arc::from(addr(i)),
            msg_id: Arc::from(msg_id(i)),
            secret: key32(d, "secret", i),
            expires_at: [0, 5_000, 10_000][i as usize % 3] + i as i64,
            message_ts: 1_700_000_000 + i as i64,
        })
        .collect();
    s.put_msg_secrets(secrets).await.unwrap();
}
