//! Odd keys: empty strings, NUL bytes and odd Unicode are distinct
//! ordinary keys in every table, and keys that are prefixes of each other
//! (or split differently across the parts of a composite key) never bleed
//! into each other.

use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{RedbStore, SkdmTracking};

use crate::fresh;

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
