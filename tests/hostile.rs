//! Hostile ids, keys and values: device ids at the extremes, empty
//! strings, NUL bytes and odd Unicode, strings that are prefixes of each
//! other in composite keys, keys past the 64 KiB cap, and values of tens of
//! megabytes, at and beyond `max_value_size`.
//!
//! Everything must either work exactly (stored, read back, isolated) or
//! fail with a clear error that stores nothing and leaves the store
//! working.

#[path = "util/dataset.rs"]
mod dataset;

use std::sync::Arc;

use bytes::Bytes;
use dataset::chain;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::error::StoreError;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig, SkdmTracking};

const ROWS: u32 = 6;

/// Every extreme and its neighbours.
const IDS: [i32; 7] = [i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX - 1, i32::MAX];

async fn fresh() -> (tempfile::TempDir, std::path::PathBuf, RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let store = RedbStore::new(&path).await.unwrap();
    (dir, path, store)
}

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

/// Odd strings used as keys everywhere.
fn odd_strings() -> Vec<String> {
    vec![
        String::new(),
        "\0".into(),
        "\0\0".into(),
        "a".into(),
        "a\0".into(),
        "a\0b".into(),
        "ab".into(),
        "e\u{301}".into(),    // e + combining acute
        "\u{e9}".into(),      // precomposed é: a different key
        "\u{202E}lrt".into(), // right-to-left override
        "שלום@c.us.0".into(),
        "🤖".into(),
        "👩‍👩‍👧‍👦".into(),
        "\u{FEFF}".into(),
        "\u{FFFF}".into(),
        "\u{10FFFF}".into(),
        "\u{7F}\u{80}".into(),
        " ".into(),
        "%_".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_nul_and_odd_unicode_keys_are_distinct_ordinary_keys() {
    let (_dir, path, s) = fresh().await;
    s.create().await.unwrap();
    let keys = odd_strings();
    let val = |i: usize, what: &str| format!("{what}-{i}").into_bytes();
    for (i, k) in keys.iter().enumerate() {
        s.put_session(k, &val(i, "session")).await.unwrap();
        s.put_identity(k, [i as u8; 32]).await.unwrap();
        s.put_sender_key(k, &val(i, "senderkey")).await.unwrap();
        s.put_group_metadata(k, &val(i, "meta")).await.unwrap();
        s.put_tc_token(
            k,
            &TcTokenEntry {
                token: val(i, "tc"),
                token_timestamp: i as i64,
                sender_timestamp: None,
            },
        )
        .await
        .unwrap();
        s.save_base_key(k, k, &val(i, "base")).await.unwrap();
        s.store_sent_message(k, k, &val(i, "sent")).await.unwrap();
        s.store_pending_inbound(k, k, k, &val(i, "inbound"))
            .await
            .unwrap();
        s.put_msg_secret(k, k, k, &[i as u8; 32]).await.unwrap();
        s.set_sync_key(
            k.as_bytes(),
            AppStateSyncKey {
                key_data: vec![i as u8; 32],
                fingerprint: vec![],
                timestamp: i as i64,
            },
        )
        .await
        .unwrap();
        s.set_version(
            k,
            HashState {
                version: i as u64 + 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        s.put_mutation_macs(
            k,
            1,
            &[AppStateMutationMAC {
                index_mac: k.as_bytes().to_vec(),
                value_mac: val(i, "mac"),
            }],
        )
        .await
        .unwrap();
        s.set_sender_key_status(k, &[(k.as_str(), i % 2 == 0)])
            .await
            .unwrap();
        s.update_device_list(DeviceListRecord {
            user: k.clone(),
            devices: vec![DeviceInfo::new(i as u32, None)],
            timestamp: i as i64,
            phash: None,
            raw_id: None,
        })
        .await
        .unwrap();
        s.put_lid_mapping(&LidPnMappingEntry {
            lid: k.clone(),
            phone_number: k.clone(),
            created_at: i as i64,
            updated_at: i as i64,
            learning_source: k.clone(),
        })
        .await
        .unwrap();
    }
    let check = |s: RedbStore, keys: Vec<String>| async move {
        for (i, k) in keys.iter().enumerate() {
            let ctx = format!("key {k:?}");
            assert_eq!(
                s.get_session(k).await.unwrap().as_deref(),
                Some(&val(i, "session")[..]),
                "{ctx}"
            );
            assert_eq!(
                s.load_identity(k).await.unwrap(),
                Some([i as u8; 32]),
                "{ctx}"
            );
            assert_eq!(
                s.get_sender_key(k).await.unwrap(),
                Some(val(i, "senderkey")),
                "{ctx}"
            );
            assert_eq!(
                s.get_group_metadata(k).await.unwrap(),
                Some(val(i, "meta")),
                "{ctx}"
            );
            assert_eq!(
                s.get_tc_token(k).await.unwrap().map(|t| t.token),
                Some(val(i, "tc")),
                "{ctx}"
            );
            assert!(
                s.has_same_base_key(k, k, &val(i, "base")).await.unwrap(),
                "{ctx}"
            );
            assert_eq!(
                s.get_pending_inbound(k, k, k).await.unwrap(),
                Some(val(i, "inbound")),
                "{ctx}"
            );
            assert_eq!(
                s.get_msg_secret(k, k, k).await.unwrap(),
                Some(vec![i as u8; 32]),
                "{ctx}"
            );
            assert_eq!(
                s.get_sync_key(k.as_bytes())
                    .await
                    .unwrap()
                    .map(|k| k.timestamp),
                Some(i as i64),
                "{ctx}"
            );
            assert_eq!(
                s.get_version(k).await.unwrap().version,
                i as u64 + 1,
                "{ctx}"
            );
            assert_eq!(
                s.get_mutation_mac(k, k.as_bytes()).await.unwrap(),
                Some(val(i, "mac")),
                "{ctx}"
            );
            assert_eq!(
                s.get_sender_key_devices(k).await.unwrap(),
                vec![(k.clone(), i % 2 == 0)],
                "{ctx}"
            );
            assert_eq!(
                s.get_devices(k)
                    .await
                    .unwrap()
                    .map(|r| r.devices[0].device_id),
                Some(i as u32),
                "{ctx}"
            );
            let lid = s.get_lid_mapping(k).await.unwrap().unwrap();
            assert_eq!((&lid.phone_number, lid.created_at), (k, i as i64), "{ctx}");
            assert_eq!(s.get_pn_mapping(k).await.unwrap().unwrap().lid, *k, "{ctx}");
        }
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(s.get_all_tc_token_jids().await.unwrap(), sorted);
        let lids: Vec<String> = s
            .get_all_lid_mappings()
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.lid)
            .collect();
        assert_eq!(lids, keys, "insertion order");
        s
    };
    let s = check(s, keys.clone()).await;
    s.close().await.unwrap();
    let s = check(RedbStore::new(&path).await.unwrap(), keys.clone()).await;
    // Takes and deletes hit exactly their key.
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            s.take_sent_message(k, k).await.unwrap(),
            Some(val(i, "sent")),
            "{k:?}"
        );
        s.delete_session(k).await.unwrap();
        for (j, other) in keys.iter().enumerate().skip(i + 1) {
            assert!(
                s.has_session(other).await.unwrap(),
                "{other:?} after deleting {k:?}"
            );
            assert_eq!(
                s.take_sent_message(other, k).await.unwrap(),
                None,
                "({other:?}, {k:?}) is not a key"
            );
            let _ = j;
        }
    }
}

/// Writes the same component layout for groups / chats that are prefixes of
/// each other, and checks that every per-group operation touches exactly its
/// group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_keys_never_bleed_into_each_other() {
    let (_dir, _path, s) = fresh().await;
    s.create().await.unwrap();
    let groups: Vec<&str> = vec![
        "",
        "\0",
        "g",
        "g\0",
        "g\0x",
        "g\u{1}",
        "gx",
        "g\u{10FFFF}",
        "h",
    ];
    let dev = |g: &str, k: u32| format!("{g}|dev{k}");
    for g in &groups {
        let devs = [dev(g, 1), dev(g, 2)];
        s.set_sender_key_status(g, &[(devs[0].as_str(), true), (devs[1].as_str(), false)])
            .await
            .unwrap();
        s.put_mutation_macs(
            g,
            1,
            &[AppStateMutationMAC {
                index_mac: vec![1],
                value_mac: g.as_bytes().to_vec(),
            }],
        )
        .await
        .unwrap();
        s.store_sent_message(g, "m", g.as_bytes()).await.unwrap();
        s.put_msg_secret(g, "s", "m", &[7; 32]).await.unwrap();
    }
    let devices_of = |s: RedbStore, g: String| async move {
        let mut v = s.get_sender_key_devices(&g).await.unwrap();
        v.sort();
        v
    };
    for g in &groups {
        assert_eq!(
            devices_of(s.clone(), g.to_string()).await,
            vec![(dev(g, 1), true), (dev(g, 2), false)],
            "{g:?}"
        );
    }
    // Clearing "g" leaves "g\0", "g\0x", "gx"... alone; so does clearing "".
    for cleared in ["g", ""] {
        s.clear_sender_key_devices(cleared).await.unwrap();
        s.clear_mutation_macs(cleared).await.unwrap();
        assert!(devices_of(s.clone(), cleared.to_string()).await.is_empty());
        assert_eq!(s.get_mutation_mac(cleared, &[1]).await.unwrap(), None);
        for g in groups.iter().filter(|g| !["g", ""][..].contains(g)) {
            assert_eq!(
                devices_of(s.clone(), g.to_string()).await.len(),
                2,
                "clearing {cleared:?} touched {g:?}"
            );
            assert_eq!(
                s.get_mutation_mac(g, &[1]).await.unwrap(),
                Some(g.as_bytes().to_vec()),
                "clearing {cleared:?} touched the macs of {g:?}"
            );
        }
    }
    // The legacy API's consume reads and deletes only its group's marks.
    assert_eq!(
        s.consume_forget_marks("g\0").await.unwrap(),
        vec![dev("g\0", 2)]
    );
    assert_eq!(
        s.get_skdm_recipients("g\0x").await.unwrap(),
        vec![dev("g\0x", 1)]
    );
    assert_eq!(
        s.consume_forget_marks("g\0x").await.unwrap(),
        vec![dev("g\0x", 2)]
    );
    // Deleting device rows by jid matches whole jids only.
    s.delete_sender_key_device_rows(&["gx|dev"]).await.unwrap();
    assert_eq!(devices_of(s.clone(), "gx".into()).await.len(), 2);
    s.delete_sender_key_device_rows(&["gx|dev1"]).await.unwrap();
    assert_eq!(
        devices_of(s.clone(), "gx".into()).await,
        vec![(dev("gx", 2), false)]
    );
    for g in &groups {
        assert_eq!(
            s.take_sent_message(g, "m").await.unwrap(),
            Some(g.as_bytes().to_vec()),
            "{g:?}"
        );
        assert_eq!(
            s.get_msg_secret(g, "s", "m").await.unwrap(),
            Some(vec![7; 32])
        );
    }

    // Component boundaries: ("a", "b\0c") and ("a\0b", "c") are different
    // keys in every multi-part table.
    let pairs = [
        ("a", "b\0c"),
        ("a\0b", "c"),
        ("a\0", "b\0c"),
        ("a", "\0b\0c"),
    ];
    for (i, (x, y)) in pairs.iter().enumerate() {
        let v = [i as u8 + 1];
        s.save_base_key(x, y, &v).await.unwrap();
        s.store_sent_message(x, y, &v).await.unwrap();
        s.store_pending_inbound(x, y, "id", &v).await.unwrap();
        s.store_pending_inbound("c", x, y, &v).await.unwrap();
        s.put_msg_secret(x, y, "id", &[i as u8 + 1; 32])
            .await
            .unwrap();
        s.set_sender_key_status(x, &[(y, true)]).await.unwrap();
    }
    for (i, (x, y)) in pairs.iter().enumerate() {
        let v = vec![i as u8 + 1];
        let ctx = format!("({x:?}, {y:?})");
        assert!(s.has_same_base_key(x, y, &v).await.unwrap(), "{ctx}");
        assert_eq!(
            s.get_pending_inbound(x, y, "id").await.unwrap(),
            Some(v.clone()),
            "{ctx}"
        );
        assert_eq!(
            s.get_pending_inbound("c", x, y).await.unwrap(),
            Some(v.clone()),
            "{ctx}"
        );
        assert_eq!(
            s.get_msg_secret(x, y, "id").await.unwrap(),
            Some(vec![i as u8 + 1; 32]),
            "{ctx}"
        );
        assert!(
            s.get_sender_key_devices(x)
                .await
                .unwrap()
                .contains(&(y.to_string(), true)),
            "{ctx}"
        );
        assert_eq!(s.take_sent_message(x, y).await.unwrap(), Some(v), "{ctx}");
    }

    // LID/phone lookups: "55" is neither "550" nor "55\0".
    for (i, phone) in ["55", "550", "55\0", "5"].iter().enumerate() {
        s.put_lid_mapping(&LidPnMappingEntry {
            lid: format!("lid{i}"),
            phone_number: phone.to_string(),
            created_at: 1,
            updated_at: 1,
            learning_source: "t".into(),
        })
        .await
        .unwrap();
    }
    for (i, phone) in ["55", "550", "55\0", "5"].iter().enumerate() {
        assert_eq!(
            s.get_pn_mapping(phone).await.unwrap().map(|e| e.lid),
            Some(format!("lid{i}")),
            "{phone:?}"
        );
    }
    // Signal state of user "55" is not that of "550" or "5".
    s.put_session("550@c.us.0", b"x").await.unwrap();
    s.put_session("5:1@c.us.0", b"x").await.unwrap();
    assert!(!s.has_signal_state_for_user("55").await.unwrap());
    s.put_session("55@c.us.0", b"x").await.unwrap();
    assert!(s.has_signal_state_for_user("55").await.unwrap());
    assert!(s.has_signal_state_for_user("5").await.unwrap());
    assert!(!s.has_signal_state_for_user("").await.unwrap());
}

/// The error of a write refused because a key is too long.
fn assert_key_too_long(r: Result<(), StoreError>, what: &str) {
    let e = r
        .err()
        .unwrap_or_else(|| panic!("{what}: a 100 KB key was accepted"));
    let text = chain(&e);
    assert!(matches!(e, StoreError::Validation(_)), "{what}: {e:?}");
    assert!(
        text.contains("key of") && text.contains("65536"),
        "{what}: says what is wrong: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_up_to_the_cap_work_and_longer_ones_are_refused_cleanly() {
    let (_dir, path, s) = fresh().await;
    s.create().await.unwrap();
    for len in [10_000, 60_000] {
        let k = "k".repeat(len);
        s.put_session(&k, b"long key").await.unwrap();
        assert_eq!(
            s.get_session(&k).await.unwrap().as_deref(),
            Some(&b"long key"[..])
        );
        s.put_group_metadata(&k, b"g").await.unwrap();
        s.store_sent_message(&k[..len / 2], &k[len / 2..], b"m")
            .await
            .unwrap();
        s.set_sender_key_status(&k[..len / 2], &[(&k[len / 2..], true)])
            .await
            .unwrap();
        assert_eq!(
            s.get_sender_key_devices(&k[..len / 2]).await.unwrap().len(),
            1
        );
        assert_eq!(
            s.take_sent_message(&k[..len / 2], &k[len / 2..])
                .await
                .unwrap(),
            Some(b"m".to_vec())
        );
    }

    let long = "x".repeat(100_000);
    let l = long.as_str();
    let secret = || MsgSecretEntry {
        chat: Arc::from(l),
        sender: "s".into(),
        msg_id: "m".into(),
        secret: [1; 32],
        expires_at: 0,
        message_ts: 0,
    };
    let lid = |lid: &str, phone: &str| LidPnMappingEntry {
        lid: lid.into(),
        phone_number: phone.into(),
        created_at: 1,
        updated_at: 1,
        learning_source: "t".into(),
    };
    assert_key_too_long(s.put_session(l, b"v").await, "put_session");
    assert_key_too_long(s.put_identity(l, [1; 32]).await, "put_identity");
    assert_key_too_long(s.put_sender_key(l, b"v").await, "put_sender_key");
    assert_key_too_long(s.put_group_metadata(l, b"v").await, "put_group_metadata");
    assert_key_too_long(
        s.put_tc_token(
            l,
            &TcTokenEntry {
                token: vec![1],
                token_timestamp: 1,
                sender_timestamp: None,
            },
        )
        .await,
        "put_tc_token",
    );
    assert_key_too_long(
        s.touch_tc_token_sender_timestamp(l, 5).await,
        "touch_tc_token",
    );
    assert_key_too_long(s.save_base_key(l, "m", b"v").await, "save_base_key");
    assert_key_too_long(
        s.store_sent_message("c", l, b"v").await,
        "store_sent_message",
    );
    assert_key_too_long(
        s.store_pending_inbound("c", "s", l, b"v").await,
        "store_pending_inbound",
    );
    assert_key_too_long(
        s.put_msg_secrets(vec![secret()]).await.map(drop),
        "put_msg_secrets",
    );
    assert_key_too_long(
        s.set_sync_key(l.as_bytes(), AppStateSyncKey::default())
            .await,
        "set_sync_key",
    );
    assert_key_too_long(s.set_version(l, HashState::default()).await, "set_version");
    assert_key_too_long(
        s.put_mutation_macs(
            "regular",
            1,
            &[AppStateMutationMAC {
                index_mac: l.as_bytes().to_vec(),
                value_mac: vec![1],
            }],
        )
        .await,
        "put_mutation_macs",
    );
    assert_key_too_long(
        s.set_sender_key_status("g", &[(l, true)]).await,
        "set_sender_key_status",
    );
    assert_key_too_long(
        s.add_skdm_recipients(l, &["d".into()]).await,
        "add_skdm_recipients",
    );
    assert_key_too_long(
        s.update_device_list(DeviceListRecord {
            user: long.clone(),
            devices: vec![],
            timestamp: 1,
            phash: None,
            raw_id: None,
        })
        .await,
        "update_device_list",
    );
    assert_key_too_long(
        s.put_lid_mapping(&lid(l, "55")).await,
        "put_lid_mapping (lid)",
    );
    // The phone only goes into the reverse index's key.
    assert_key_too_long(
        s.put_lid_mapping(&lid("100", l)).await,
        "put_lid_mapping (phone)",
    );

    // Batches are all or nothing: the good entries next to the bad one are
    // not stored either.
    let sessions: Vec<(Arc<str>, Bytes)> = vec![
        ("ok-1".into(), Bytes::from_static(b"1")),
        (long.as_str().into(), Bytes::from_static(b"2")),
        ("ok-3".into(), Bytes::from_static(b"3")),
    ];
    assert_key_too_long(s.put_sessions_batch(&sessions).await, "put_sessions_batch");
    let mut secrets = vec![
        MsgSecretEntry {
            chat: "ok".into(),
            ..secret()
        },
        secret(),
    ];
    secrets.rotate_left(1);
    assert_key_too_long(
        s.put_msg_secrets(secrets).await.map(drop),
        "put_msg_secrets batch",
    );
    assert_key_too_long(
        s.put_lid_mappings(&[lid("200", "56"), lid(l, "57")]).await,
        "put_lid_mappings batch",
    );

    // Nothing of any refused call is stored.
    let none_stored = |s: RedbStore| async move {
        assert_eq!(s.get_session(l).await.unwrap(), None);
        assert_eq!(s.get_session("ok-1").await.unwrap(), None);
        assert_eq!(s.get_session("ok-3").await.unwrap(), None);
        assert_eq!(s.load_identity(l).await.unwrap(), None);
        assert_eq!(s.get_group_metadata(l).await.unwrap(), None);
        assert!(s.get_tc_token(l).await.unwrap().is_none());
        assert_eq!(s.get_msg_secret("ok", "s", "m").await.unwrap(), None);
        assert_eq!(s.get_msg_secret(l, "s", "m").await.unwrap(), None);
        assert!(s.get_lid_mapping("100").await.unwrap().is_none());
        assert!(s.get_lid_mapping("200").await.unwrap().is_none());
        assert!(s.get_pn_mapping("55").await.unwrap().is_none());
        assert!(s.get_sender_key_devices("g").await.unwrap().is_empty());
        assert!(s.get_devices(l).await.unwrap().is_none());
        assert_eq!(s.get_version(l).await.unwrap().version, 0);
        s
    };
    let s = none_stored(s).await;
    // Reads, deletes and takes with a long key are harmless.
    assert!(!s.has_session(l).await.unwrap());
    s.delete_session(l).await.unwrap();
    assert_eq!(s.take_sent_message(l, l).await.unwrap(), None);
    s.clear_sender_key_devices(l).await.unwrap();
    s.clear_mutation_macs(l).await.unwrap();

    // The store still works and reopens.
    s.put_session("after", b"ok").await.unwrap();
    s.close().await.unwrap();
    let s = none_stored(RedbStore::new(&path).await.unwrap()).await;
    assert!(s.has_session("after").await.unwrap());
    assert!(s.has_session(&"k".repeat(60_000)).await.unwrap());
}

fn huge(len: usize, seed: u64) -> Vec<u8> {
    dataset::Rng(seed).bytes(len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_of_tens_of_megabytes_are_stored_and_read_back() {
    // Reopened without compaction at open: compacting the ~160 MB file
    // this leaves takes ~15 s in a debug build (it works, but is slow).
    let reopen = |path: std::path::PathBuf| async move {
        let config = RedbStoreConfig::default().with_auto_compact(None);
        RedbStore::with_config(&path, config).await.unwrap()
    };
    let (_dir, path, s) = fresh().await;
    let ten = huge(10 << 20, 10);
    let forty = huge(40 << 20, 40);
    s.put_session("ten", &ten).await.unwrap();
    s.put_session("forty", &forty).await.unwrap();
    s.put_group_metadata("g", &ten).await.unwrap();
    s.store_sent_message("c", "m", &ten).await.unwrap();
    assert!(s.get_session("ten").await.unwrap().unwrap() == ten);
    assert!(s.get_session("forty").await.unwrap().unwrap() == forty);
    s.close().await.unwrap();
    let s = reopen(path.clone()).await;
    assert!(s.get_session("forty").await.unwrap().unwrap() == forty);
    assert!(s.get_group_metadata("g").await.unwrap().unwrap() == ten);
    assert!(s.take_sent_message("c", "m").await.unwrap().unwrap() == ten);
    // Replacing and deleting them works too.
    s.put_session("forty", b"small now").await.unwrap();
    s.delete_session("ten").await.unwrap();
    s.close().await.unwrap();
    let s = reopen(path.clone()).await;
    assert_eq!(
        s.get_session("forty").await.unwrap().as_deref(),
        Some(&b"small now"[..])
    );
    assert_eq!(s.get_session("ten").await.unwrap(), None);
}

/// The error of a write refused because a value is too large.
fn assert_value_too_large(r: Result<(), StoreError>, limit: usize, what: &str) {
    let e = r
        .err()
        .unwrap_or_else(|| panic!("{what}: an oversized value was accepted"));
    let text = chain(&e);
    assert!(matches!(e, StoreError::Validation(_)), "{what}: {e:?}");
    assert!(
        text.contains("value of") && text.contains(&format!("maximum value size of {limit}")),
        "{what}: says what is wrong: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_above_max_value_size_are_refused_cleanly() {
    // The default limit, 64 MiB.
    let (_dir, path, s) = fresh().await;
    let limit = 64 << 20;
    let over = huge(limit + 1, 65);
    assert_value_too_large(s.put_session("over", &over).await, limit, "put_session");
    assert_value_too_large(
        s.store_sent_message("c", "over", &over).await,
        limit,
        "store_sent_message",
    );
    assert_value_too_large(
        s.put_sessions_batch(&[
            ("ok".into(), Bytes::from_static(b"fine")),
            ("over".into(), Bytes::from(over)),
        ])
        .await,
        limit,
        "put_sessions_batch",
    );
    assert_eq!(s.get_session("over").await.unwrap(), None);
    assert_eq!(
        s.get_session("ok").await.unwrap(),
        None,
        "batch is all or nothing"
    );
    s.put_session("after", b"works").await.unwrap();
    s.close().await.unwrap();
    let s = RedbStore::new(&path).await.unwrap();
    assert_eq!(s.get_session("over").await.unwrap(), None);
    assert!(s.has_session("after").await.unwrap());
    s.close().await.unwrap();

    // A configured limit: exactly the limit passes, one byte more does not.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small-limit.redb");
    let limit = 1 << 20;
    let config = RedbStoreConfig::default().with_max_value_size(limit);
    let s = RedbStore::with_config(&path, config).await.unwrap();
    let exact = huge(limit, 1);
    s.put_session("exact", &exact).await.unwrap();
    assert_value_too_large(
        s.put_session("over", &huge(limit + 1, 2)).await,
        limit,
        "put_session over a configured limit",
    );
    assert_value_too_large(
        s.put_group_metadata("g", &huge(2 * limit, 3)).await,
        limit,
        "put_group_metadata",
    );
    assert_value_too_large(
        s.put_sender_key("sk", &huge(limit + 1, 4)).await,
        limit,
        "put_sender_key",
    );
    assert_eq!(s.get_group_metadata("g").await.unwrap(), None);
    assert_eq!(s.get_session("over").await.unwrap(), None);
    assert!(s.get_session("exact").await.unwrap().unwrap() == exact);
    s.put_session("after", b"works").await.unwrap();
    s.close().await.unwrap();
    let s = RedbStore::new(&path).await.unwrap();
    assert!(s.get_session("exact").await.unwrap().unwrap() == exact);
    assert_eq!(s.get_session("over").await.unwrap(), None);
}
