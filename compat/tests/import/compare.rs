//! What is compared: every non-destructive read of an account, rendered
//! canonically; every row of a SqliteStore file, hidden columns included;
//! and the destructive reads (sweeps, takes) after the message times are
//! aged.

use std::collections::BTreeMap;

use diesel::sql_types::{Integer, Text};
use diesel::{QueryableByName, RunQueryDsl};
use wacore::store::traits::*;
use whatsapp_rust_sqlite_storage::SqliteStore;

use crate::diff_util::{canon_device, canon_hash_state, canon_macs, dbg, sorted};
use crate::fixture::{
    BAD_SYNC_KEY, COLLECTIONS, MACS, N, addr, blob, chat, group, key32, lid, msg_id,
};

/// Every non-destructive read of account `d`, rendered canonically.
pub async fn reads(s: &dyn Backend) -> BTreeMap<String, String> {
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

pub fn assert_same(what: &str, want: &BTreeMap<String, String>, got: &BTreeMap<String, String>) {
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
pub async fn sql_rows(s: &SqliteStore, d: i32) -> BTreeMap<&'static str, Vec<String>> {
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
pub async fn age_messages(s: &SqliteStore) {
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
pub async fn sweeps(s: &dyn Backend) -> Vec<String> {
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
