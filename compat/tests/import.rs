//! SQLite import and export (feature `sqlite`).
//!
//! A real SqliteStore file is filled through its trait API with two
//! accounts and rows in every table (including what the trait cannot read
//! back: pre-key `uploaded` flags, mutation-MAC versions, message times,
//! LID insertion order with `get_pn_mapping` ties). It is imported; every
//! read through RedbStore must equal the same read through SqliteStore
//! (unordered lists as sets). The store is exported back to a fresh
//! SqliteStore file, which must equal the original: every read, and every
//! column of every table (SQL) except the times the trait cannot set.

#[path = "../../tests/common/diff_util.rs"]
mod diff_util;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use diesel::sql_types::{Integer, Text};
use diesel::{QueryableByName, RunQueryDsl};
use diff_util::{DeviceSpec, canon_device, canon_hash_state, canon_macs, dbg, sorted};
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{
    ExportOptions, ImportOptions, RedbStore, export_sqlite, import_sqlite,
};
use whatsapp_rust_sqlite_storage::SqliteStore;

const DEVICES: [i32; 2] = [1, 42];
/// Rows per table (mutation MACs: more, to cross the write chunks).
const N: u32 = 40;
const MACS: u32 = 2100;

fn addr(i: u32) -> String {
    format!("55{:08}:{}@c.us.0", i, i % 3)
}
fn blob(d: i32, tag: &str, i: u32) -> Vec<u8> {
    let len = 1 + (i as usize * 7 + tag.len()) % 50;
    (0..len)
        .map(|k| (k as u32 ^ i ^ d as u32).wrapping_add(tag.len() as u32) as u8)
        .collect()
}
/// Distinct for every (d, tag, i).
fn key32(d: i32, tag: &str, i: u32) -> [u8; 32] {
    let mut k = [0u8; 32];
    k[..4].copy_from_slice(&i.to_be_bytes());
    k[4..8].copy_from_slice(&d.to_be_bytes());
    for (j, b) in k.iter_mut().enumerate().skip(8) {
        *b = (j as u32 * 31 + i * 7) as u8 ^ tag.as_bytes()[j % tag.len()];
    }
    k
}
fn group(i: u32) -> String {
    format!("120363{i:05}@g.us")
}
fn chat(i: u32) -> String {
    format!("55{:08}@s.whatsapp.net", i % 7)
}
fn msg_id(i: u32) -> String {
    format!("3EB0{i:08X}")
}
fn lid(i: u32) -> String {
    format!("1000000{i:08}")
}
const COLLECTIONS: [&str; 3] = ["regular", "critical_block", "regular_high"];
const BAD_SYNC_KEY: &[u8] = b"key-bad";

fn device_spec(d: i32) -> DeviceSpec {
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
async fn fill(s: &dyn Backend, d: i32) {
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

/// Every non-destructive read of account `d`, rendered canonically.
async fn reads(s: &dyn Backend) -> BTreeMap<String, String> {
    let mut r = BTreeMap::new();
    macro_rules! read {
        ($name:expr, $value:expr) => {
            r.insert($name, format!("{:?}", $value.map_err(|e| e.to_string())));
        };
    }
    read!(
        "load".to_string(),
        s.load().await.map(|d| d.map(|d| canon_device(&d, false)))
    );
    read!("exists".to_string(), s.exists().await);
    for i in 0..N + 1 {
        let a = addr(i);
        read!(format!("identity {a}"), s.load_identity(&a).await);
        read!(format!("session {a}"), s.get_session(&a).await);
        read!(format!("has_session {a}"), s.has_session(&a).await);
        read!(
            format!("base key {a}"),
            s.has_same_base_key(&a, &msg_id(i), &blob(1, "basekey", i))
                .await
        );
        read!(
            format!("base key 42 {a}"),
            s.has_same_base_key(&a, &msg_id(i), &blob(42, "basekey", i))
                .await
        );
        let name = format!("{}:{}", group(i % 5), a);
        read!(format!("sender key {name}"), s.get_sender_key(&name).await);
        let user = format!("55{i:08}");
        read!(
            format!("signal state {user}"),
            s.has_signal_state_for_user(&user).await
        );
        read!(
            format!("devices {user}"),
            s.get_devices(&user).await.map(dbg)
        );
        read!(format!("group {i}"), s.get_group_metadata(&group(i)).await);
        read!(format!("tc {i}"), s.get_tc_token(&lid(i)).await.map(dbg));
        read!(
            format!("pending {i}"),
            s.get_pending_inbound(&chat(i), &addr(i), &msg_id(i)).await
        );
        read!(
            format!("secret {i}"),
            s.get_msg_secret_with_ts(&chat(i), &addr(i), &msg_id(i))
                .await
        );
        read!(
            format!("lid {i}"),
            s.get_lid_mapping(&lid(i)).await.map(dbg)
        );
        let phone = format!("5521{:07}", i / 3);
        read!(
            format!("pn {phone}"),
            s.get_pn_mapping(&phone).await.map(dbg)
        );
    }
    for id in (0..=N + 1).chain([0x7FFF_FFF0]) {
        read!(format!("prekey {id}"), s.load_prekey(id).await);
    }
    let ids: Vec<u32> = (0..=N + 1).chain([0x7FFF_FFF0]).collect();
    read!(
        "prekeys batch".to_string(),
        s.load_prekeys_batch(&ids).await.map(|v| sorted(&v))
    );
    read!("max prekey".to_string(), s.get_max_prekey_id().await);
    for id in 0..12 {
        read!(format!("signed {id}"), s.load_signed_prekey(id).await);
    }
    read!(
        "all signed".to_string(),
        s.load_all_signed_prekeys().await.map(|v| sorted(&v))
    );
    for i in 0..6u32 {
        let id = format!("key-{i}");
        read!(
            format!("sync {id}"),
            s.get_sync_key(id.as_bytes()).await.map(dbg)
        );
    }
    read!(
        "sync bad".to_string(),
        s.get_sync_key(BAD_SYNC_KEY).await.map(dbg)
    );
    read!("latest sync".to_string(), s.get_latest_sync_key_id().await);
    for name in COLLECTIONS.iter().chain(&["missing"]) {
        read!(
            format!("version {name}"),
            s.get_version(name).await.map(|h| canon_hash_state(&h))
        );
        for i in [0, 1, N - 1, N, MACS - 1, MACS] {
            read!(
                format!("mac {name} {i}"),
                s.get_mutation_mac(name, &key32(0, name, i)).await
            );
        }
        let batch: Vec<[u8; 32]> = (0..MACS + 1).map(|i| key32(0, name, i)).collect();
        read!(
            format!("macs {name}"),
            s.get_mutation_macs(name, &batch)
                .await
                .map(|m| canon_macs(&m))
        );
    }
    for g in 0..4 {
        read!(
            format!("skd {g}"),
            s.get_sender_key_devices(&group(g))
                .await
                .map(|v| sorted(&v))
        );
    }
    for phone in ["5511", "9999"] {
        read!(
            format!("pn {phone}"),
            s.get_pn_mapping(phone).await.map(dbg)
        );
    }
    for l in ["100", "200", "300"] {
        read!(format!("lid {l}"), s.get_lid_mapping(l).await.map(dbg));
    }
    // Insertion order, as SqliteStore returns it (both promise it).
    read!(
        "all lids (ordered)".to_string(),
        s.get_all_lid_mappings().await.map(dbg)
    );
    read!(
        "tc jids".to_string(),
        s.get_all_tc_token_jids().await.map(|v| sorted(&v))
    );
    r
}

fn assert_same(what: &str, want: &BTreeMap<String, String>, got: &BTreeMap<String, String>) {
    assert_eq!(want.len(), got.len(), "{what}: different read sets");
    let diffs: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(v))
        .take(5)
        .map(|(k, v)| format!("{k}:\n  want {v:.300}\n  got  {:.300}", got[k]))
        .collect();
    assert!(
        diffs.is_empty(),
        "{what}: reads differ:\n{}",
        diffs.join("\n")
    );
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    r: String,
}

/// Every row of account `d` in a SqliteStore file, table by table, with
/// the columns an import and export must keep (not the times the trait
/// cannot set, nor the protobuf of app-state versions, whose map order is
/// not stable; those are compared through reads).
async fn sql_rows(s: &SqliteStore, d: i32) -> BTreeMap<&'static str, Vec<String>> {
    const QUERIES: &[(&str, &str)] = &[
        (
            "device",
            "SELECT quote(lid)||quote(pn)||quote(registration_id)||quote(noise_key)||\
             quote(identity_key)||quote(signed_pre_key)||quote(signed_pre_key_id)||\
             quote(signed_pre_key_signature)||quote(adv_secret_key)||quote(account)||\
             quote(push_name)||quote(app_version_primary)||quote(app_version_secondary)||\
             quote(app_version_tertiary)||quote(app_version_last_fetched_ms)||\
             quote(edge_routing_info)||quote(props_hash)||quote(next_pre_key_id)||quote(nct_salt)||\
             quote(server_has_prekeys)||quote(server_cert_chain)||quote(login_counter)||\
             quote(first_unupload_pre_key_id)||quote(lid_migrated)||\
             quote(last_signed_pre_key_rotation_ms)||quote(read_receipts_disabled) AS r \
             FROM device WHERE id = ?",
        ),
        (
            "identities",
            "SELECT quote(address)||quote(key) AS r FROM identities WHERE device_id = ? ORDER BY address",
        ),
        (
            "sessions",
            "SELECT quote(address)||quote(record) AS r FROM sessions WHERE device_id = ? ORDER BY address",
        ),
        (
            "prekeys",
            "SELECT quote(id)||quote(key)||quote(uploaded) AS r FROM prekeys WHERE device_id = ? ORDER BY id",
        ),
        (
            "signed_prekeys",
            "SELECT quote(id)||quote(record) AS r FROM signed_prekeys WHERE device_id = ? ORDER BY id",
        ),
        (
            "sender_keys",
            "SELECT quote(address)||quote(record) AS r FROM sender_keys WHERE device_id = ? ORDER BY address",
        ),
        (
            "app_state_keys",
            // Not the unusable key (BAD_SYNC_KEY): it cannot be imported.
            "SELECT quote(key_id)||quote(key_data) AS r FROM app_state_keys \
             WHERE device_id = ? AND key_id != CAST('key-bad' AS BLOB) ORDER BY key_id",
        ),
        (
            "app_state_versions",
            "SELECT quote(name) AS r FROM app_state_versions WHERE device_id = ? ORDER BY name",
        ),
        (
            "app_state_mutation_macs",
            "SELECT quote(name)||quote(index_mac)||quote(version)||quote(value_mac) AS r \
             FROM app_state_mutation_macs WHERE device_id = ? ORDER BY name, index_mac",
        ),
        (
            "sender_key_devices",
            "SELECT quote(group_jid)||quote(device_jid)||quote(has_key) AS r FROM sender_key_devices \
             WHERE device_id = ? ORDER BY group_jid, device_jid",
        ),
        (
            "lid_pn_mapping (rowid order)",
            "SELECT quote(lid)||quote(phone_number)||quote(created_at)||quote(updated_at)||\
             quote(learning_source) AS r FROM lid_pn_mapping WHERE device_id = ? ORDER BY rowid",
        ),
        (
            "base_keys",
            "SELECT quote(address)||quote(message_id)||quote(base_key) AS r FROM base_keys \
             WHERE device_id = ? ORDER BY address, message_id",
        ),
        (
            "device_registry",
            "SELECT quote(user_id)||quote(devices_json)||quote(timestamp)||quote(phash)||quote(raw_id) AS r \
             FROM device_registry WHERE device_id = ? ORDER BY user_id",
        ),
        (
            "group_metadata",
            "SELECT quote(group_jid)||quote(info) AS r FROM group_metadata WHERE device_id = ? ORDER BY group_jid",
        ),
        (
            "tc_tokens",
            "SELECT quote(jid)||quote(token)||quote(token_timestamp)||quote(sender_timestamp) AS r \
             FROM tc_tokens WHERE device_id = ? ORDER BY jid",
        ),
        (
            "sent_messages",
            "SELECT quote(chat_jid)||quote(message_id)||quote(payload) AS r FROM sent_messages \
             WHERE device_id = ? ORDER BY chat_jid, message_id",
        ),
        (
            "pending_inbound_messages",
            "SELECT quote(chat)||quote(sender)||quote(id)||quote(message) AS r \
             FROM pending_inbound_messages WHERE device_id = ? ORDER BY chat, sender, id",
        ),
        (
            "msg_secrets",
            "SELECT quote(chat)||quote(sender)||quote(msg_id)||quote(secret)||quote(expires_at)||\
             quote(message_ts) AS r FROM msg_secrets WHERE device_id = ? ORDER BY chat, sender, msg_id",
        ),
    ];
    let mut out = BTreeMap::new();
    for (table, sql) in QUERIES {
        let rows: Vec<Line> = s
            .shared()
            .read(move |conn| {
                diesel::sql_query(*sql)
                    .bind::<Integer, _>(d)
                    .load(conn)
                    .map_err(|e| wacore::store::error::StoreError::Database(Box::new(e)))
            })
            .await
            .unwrap();
        out.insert(*table, rows.into_iter().map(|l| l.r).collect());
    }
    out
}

/// Sets the hidden message times to distinct old values, so that an
/// import that dropped them would show in the sweeps.
async fn age_messages(s: &SqliteStore) {
    s.shared()
        .run(|conn| {
            let err = |e| wacore::store::error::StoreError::Database(Box::new(e));
            diesel::sql_query("UPDATE sent_messages SET created_at = 1000000 + rowid")
                .execute(conn)
                .map_err(err)?;
            diesel::sql_query("UPDATE pending_inbound_messages SET inserted_at = 2000000 + rowid")
                .execute(conn)
                .map_err(err)?;
            Ok(())
        })
        .await
        .unwrap();
}

/// Destructive reads (sweeps, takes): the same on both.
async fn sweeps(s: &dyn Backend) -> Vec<String> {
    let mut out = Vec::new();
    for cutoff in [1_000_010, 1_000_030, 1_000_050] {
        out.push(dbg(s.delete_expired_sent_messages(cutoff).await.unwrap()));
    }
    for cutoff in [2_000_010, 2_000_030, 2_000_050] {
        out.push(dbg(s.delete_expired_pending_inbound(cutoff).await.unwrap()));
    }
    for cutoff in [5_010, 10_020, 20_000] {
        out.push(dbg(s.delete_expired_msg_secrets(cutoff).await.unwrap()));
    }
    out.push(dbg(s.delete_expired_tc_tokens(1_010, 2_020).await.unwrap()));
    for i in 0..N {
        out.push(dbg(s
            .take_sent_message(&chat(i), &msg_id(i))
            .await
            .unwrap()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_import_and_export_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let a_path = dir.path().join("a.db");
    let a_url = a_path.to_str().unwrap();
    let mut sources = Vec::new();
    for d in DEVICES {
        let a = SqliteStore::new_for_device(a_url, d).await.unwrap();
        fill(&a, d).await;
        sources.push(a);
    }
    age_messages(&sources[0]).await;

    // Import into a new file.
    let r_path = dir.path().join("r.redb");
    let seen = Arc::new(std::sync::Mutex::new((0u64, 0u64)));
    let s2 = seen.clone();
    let options = ImportOptions::default().with_progress(Arc::new(move |p| {
        let mut s = s2.lock().unwrap();
        assert!(p.done >= s.0 && p.done <= p.total, "{p:?}");
        *s = (p.done, p.total);
    }));
    let report = import_sqlite(&a_path, &r_path, &options).await.unwrap();
    assert!(report.created_file);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("r.redb."))
        .collect();
    assert!(leftovers.is_empty(), "temporaries left: {leftovers:?}");
    assert_eq!(
        report
            .accounts
            .iter()
            .map(|a| a.device_id)
            .collect::<Vec<_>>(),
        DEVICES
    );
    let (done, total) = *seen.lock().unwrap();
    assert_eq!(done, total, "progress ends at the total");
    for account in &report.accounts {
        assert!(!account.replaced);
        assert_eq!(account.skipped.len(), 1, "{:?}", account.skipped);
        assert!(account.skipped[0].starts_with("app_state_keys"));
        assert_eq!(account.rows["sessions"], N as u64);
        assert_eq!(account.rows["devices"], 1);
    }

    // Every read agrees.
    let redb = RedbStore::new(&r_path).await.unwrap();
    for (a, d) in sources.iter().zip(DEVICES) {
        let want = reads(a).await;
        let got = reads(&redb.for_device(d)).await;
        assert_same(&format!("import, device {d}"), &want, &got);
    }

    // Export back to a fresh SqliteStore file: the same reads, and the same
    // rows, hidden columns included.
    let b_path = dir.path().join("b.db");
    drop(redb);
    let seen = Arc::new(std::sync::Mutex::new((0u64, 0u64)));
    let s2 = seen.clone();
    let options = ExportOptions::default().with_progress(Arc::new(move |p| {
        let mut s = s2.lock().unwrap();
        assert!(p.done >= s.0 && p.done <= p.total, "{p:?}");
        *s = (p.done, p.total);
    }));
    let exported = export_sqlite(&r_path, &b_path, None, &options)
        .await
        .unwrap();
    assert_eq!(exported.len(), 2);
    let (done, total) = *seen.lock().unwrap();
    assert_eq!(done, total, "export progress ends at the total");
    assert_eq!(done, exported.iter().map(|r| r.total_rows).sum::<u64>());
    let redb = RedbStore::new(&r_path).await.unwrap();
    for (a, d) in sources.iter().zip(DEVICES) {
        let b = SqliteStore::new_for_device(b_path.to_str().unwrap(), d)
            .await
            .unwrap();
        assert_same(
            &format!("export, device {d}"),
            &reads(a).await,
            &reads(&b).await,
        );
        let (want, got) = (sql_rows(a, d).await, sql_rows(&b, d).await);
        for (table, rows) in &want {
            assert!(
                !rows.is_empty(),
                "{table} is empty: the test fills every table"
            );
            assert_eq!(rows, &got[table], "export, device {d}, table {table}");
        }
    }

    // The message times survived the import: sweeps agree.
    for (a, d) in sources.iter().zip(DEVICES) {
        assert_eq!(
            sweeps(a).await,
            sweeps(&redb.for_device(d)).await,
            "device {d}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_refuses_existing_accounts_unless_overwrite_and_keeps_others() {
    let dir = tempfile::tempdir().unwrap();
    let a_path = dir.path().join("a.db");
    let a = SqliteStore::new_for_device(a_path.to_str().unwrap(), 1)
        .await
        .unwrap();
    fill(&a, 1).await;
    drop(a);

    // An existing store holding device 1 (other data) and device 9.
    let r_path = dir.path().join("r.redb");
    {
        let r = RedbStore::new(&r_path).await.unwrap();
        r.put_session("old@c.us.0", b"old").await.unwrap();
        r.for_device(9)
            .put_session("nine@c.us.0", b"nine")
            .await
            .unwrap();
        r.close().await.unwrap();
    }
    let err = import_sqlite(&a_path, &r_path, &ImportOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("device id(s) 1"), "{err}");
    // Nothing changed.
    let r = RedbStore::new(&r_path).await.unwrap();
    assert_eq!(
        r.get_session("old@c.us.0").await.unwrap().unwrap(),
        &b"old"[..]
    );
    drop(r);

    let report = import_sqlite(
        &a_path,
        &r_path,
        &ImportOptions::default().with_overwrite(true),
    )
    .await
    .unwrap();
    assert!(!report.created_file);
    assert!(report.accounts[0].replaced);
    let r = RedbStore::new(&r_path).await.unwrap();
    assert_eq!(r.get_session("old@c.us.0").await.unwrap(), None, "replaced");
    assert!(r.get_session(&addr(0)).await.unwrap().is_some());
    assert_eq!(
        r.for_device(9)
            .get_session("nine@c.us.0")
            .await
            .unwrap()
            .unwrap(),
        &b"nine"[..],
        "other accounts are kept"
    );
    let ids: Vec<i32> = r
        .accounts()
        .await
        .unwrap()
        .iter()
        .map(|a| a.device_id)
        .collect();
    assert_eq!(ids, [1, 9]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_rejects_what_is_not_a_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let r_path = dir.path().join("r.redb");
    let missing = import_sqlite(
        dir.path().join("none.db"),
        &r_path,
        &ImportOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(missing.to_string().contains("no such file"), "{missing}");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"definitely not sqlite").unwrap();
    let err = import_sqlite(&junk, &r_path, &ImportOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a SQLite database"), "{err}");
    assert!(!r_path.exists(), "no store file is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_refuses_a_sqlite_file_that_has_the_account() {
    let dir = tempfile::tempdir().unwrap();
    let r_path = dir.path().join("r.redb");
    {
        let r = RedbStore::new(&r_path).await.unwrap();
        fill(&r, 1).await;
        r.close().await.unwrap();
    }
    let b_path = dir.path().join("b.db");
    export_sqlite(&r_path, &b_path, Some(1), &ExportOptions::default())
        .await
        .unwrap();
    let err = export_sqlite(&r_path, &b_path, Some(1), &ExportOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already holds"), "{err}");
    let err = export_sqlite(&r_path, &b_path, Some(5), &ExportOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("no account with device id 5"),
        "{err}"
    );
}

/// `export_to_backend` moves an account to any backend: here to another
/// device id of another store file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_to_another_redb_store_and_device_id() {
    let dir = tempfile::tempdir().unwrap();
    let src = RedbStore::new(dir.path().join("src.redb")).await.unwrap();
    fill(&src, 1).await;
    let dst = RedbStore::new_for_device(dir.path().join("dst.redb"), 5)
        .await
        .unwrap();
    let report = src
        .export_to_backend(&dst, &ExportOptions::default())
        .await
        .unwrap();
    assert_eq!(report.device_id, 1);
    assert_eq!(report.rows["lid_mappings"], N as u64 + 3);
    assert_same("redb to redb", &reads(&src).await, &reads(&dst).await);
    // A second export into the now existing account is refused...
    let err = src
        .export_to_backend(&dst, &ExportOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("already has a device record"),
        "{err}"
    );
    // ...unless merging is asked for; it is then idempotent.
    src.export_to_backend(
        &dst,
        &ExportOptions::default().with_merge_into_existing(true),
    )
    .await
    .unwrap();
    assert_same("merged", &reads(&src).await, &reads(&dst).await);
    // Through `dyn Backend` too.
    let dyn_target: &dyn Backend = &dst.for_device(6);
    src.export_to_backend(dyn_target, &ExportOptions::default())
        .await
        .unwrap();
    assert_same("dyn", &reads(&src).await, &reads(dyn_target).await);
}

/// Not a test: writes the SqliteStore database the README's examples were
/// made from, at `$WA_REDB_DEMO_DB` (two accounts, every table).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn readme_demo_database() {
    let Some(path) = std::env::var_os("WA_REDB_DEMO_DB") else {
        return;
    };
    for d in DEVICES {
        let s = SqliteStore::new_for_device(path.to_str().unwrap(), d)
            .await
            .unwrap();
        fill(&s, d).await;
    }
}
