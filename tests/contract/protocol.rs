//! ProtocolStore.

use wacore::store::traits::{
    DeviceInfo, DeviceListRecord, LidPnMappingEntry, PendingInboundKey, PendingInboundRow,
    ProtocolStore, TcTokenEntry,
};
use whatsapp_rust_redb_storage::SkdmTracking;

use crate::support::Fixture;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn lid(lid: &str, phone: &str, created: i64, updated: i64) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: lid.into(),
        phone_number: phone.into(),
        created_at: created,
        updated_at: updated,
        learning_source: "usync".into(),
    }
}

const G: &str = "120363021033254949@g.us";

#[tokio::test]
async fn sender_key_devices_set_upsert_clear() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert!(s.get_sender_key_devices(G).await.unwrap().is_empty());
    s.set_sender_key_status(G, &[]).await.unwrap();
    s.set_sender_key_status(G, &[("a:1@lid", true), ("b:0@lid", false)])
        .await
        .unwrap();
    s.set_sender_key_status(
        G,
        &[("b:0@lid", true), ("c:0@lid", false), ("c:0@lid", true)],
    )
    .await
    .unwrap();
    assert_eq!(
        sorted(s.get_sender_key_devices(G).await.unwrap()),
        vec![
            ("a:1@lid".to_string(), true),
            ("b:0@lid".to_string(), true),
            ("c:0@lid".to_string(), true)
        ]
    );
    // Other groups and other accounts are separate.
    assert!(
        s.get_sender_key_devices("other@g.us")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.for_device(2)
            .get_sender_key_devices(G)
            .await
            .unwrap()
            .is_empty()
    );
    // A group whose name extends this one is not touched by clearing it.
    s.set_sender_key_status(&format!("{G}x"), &[("a:1@lid", true)])
        .await
        .unwrap();
    s.clear_sender_key_devices(G).await.unwrap();
    assert!(s.get_sender_key_devices(G).await.unwrap().is_empty());
    assert_eq!(
        s.get_sender_key_devices(&format!("{G}x"))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn deleting_device_rows_spans_groups_and_clear_all_spans_the_account() {
    let f = Fixture::new().await;
    let s = &f.store;
    let other = s.for_device(2);
    for g in ["g1@g.us", "g2@g.us"] {
        s.set_sender_key_status(g, &[("x:1@lid", true), ("y:1@lid", true)])
            .await
            .unwrap();
        other
            .set_sender_key_status(g, &[("x:1@lid", true)])
            .await
            .unwrap();
    }
    s.delete_sender_key_device_rows(&[]).await.unwrap();
    s.delete_sender_key_device_rows(&["x:1@lid", "nobody"])
        .await
        .unwrap();
    for g in ["g1@g.us", "g2@g.us"] {
        assert_eq!(
            s.get_sender_key_devices(g).await.unwrap(),
            vec![("y:1@lid".to_string(), true)]
        );
        assert_eq!(other.get_sender_key_devices(g).await.unwrap().len(), 1);
    }
    s.clear_all_sender_key_devices().await.unwrap();
    assert!(
        s.get_sender_key_devices("g1@g.us")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        other.get_sender_key_devices("g2@g.us").await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn legacy_skdm_api_is_a_view_of_the_same_rows() {
    let f = Fixture::new().await;
    let s = &f.store;
    s.add_skdm_recipients(G, &["a:1@lid".into(), "b:1@lid".into()])
        .await
        .unwrap();
    assert_eq!(
        sorted(s.get_skdm_recipients(G).await.unwrap()),
        ["a:1@lid", "b:1@lid"]
    );
    s.mark_forget_sender_key(G, "b:1@lid").await.unwrap();
    s.mark_forget_sender_key(G, "c:1@lid").await.unwrap();
    assert_eq!(s.get_skdm_recipients(G).await.unwrap(), ["a:1@lid"]);
    assert_eq!(
        sorted(s.get_sender_key_devices(G).await.unwrap()),
        vec![
            ("a:1@lid".to_string(), true),
            ("b:1@lid".to_string(), false),
            ("c:1@lid".to_string(), false)
        ]
    );
    // 0.7's own cold mark is a forget mark too.
    s.set_sender_key_status(G, &[("d:1@lid", false)])
        .await
        .unwrap();
    assert_eq!(
        sorted(s.consume_forget_marks(G).await.unwrap()),
        ["b:1@lid", "c:1@lid", "d:1@lid"]
    );
    assert!(s.consume_forget_marks(G).await.unwrap().is_empty());
    assert_eq!(
        s.get_sender_key_devices(G).await.unwrap(),
        vec![("a:1@lid".to_string(), true)]
    );
    s.clear_skdm_recipients(G).await.unwrap();
    assert!(s.get_skdm_recipients(G).await.unwrap().is_empty());
}

#[tokio::test]
async fn lid_mappings_need_the_device_record_like_sqlite_store() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert!(s.put_lid_mapping(&lid("1", "2", 1, 1)).await.is_err());
    // All or nothing.
    assert!(
        s.put_lid_mappings(&[lid("1", "2", 1, 1), lid("3", "4", 1, 1)])
            .await
            .is_err()
    );
    s.put_lid_mappings(&[]).await.unwrap();
    assert!(s.get_lid_mapping("1").await.unwrap().is_none());
    assert!(s.get_all_lid_mappings().await.unwrap().is_empty());
}

#[tokio::test]
async fn lid_mapping_upserts_keep_created_at_and_position() {
    let f = Fixture::with_device().await;
    let s = &f.store;
    s.put_lid_mapping(&lid("L1", "P1", 150, 150)).await.unwrap();
    s.put_lid_mapping(&lid("L2", "P2", 160, 160)).await.unwrap();
    let mut update = lid("L1", "P9", 999, 300);
    update.learning_source = "peer_pn_message".into();
    s.put_lid_mapping(&update).await.unwrap();
    let got = s.get_lid_mapping("L1").await.unwrap().unwrap();
    assert_eq!(
        (
            got.phone_number.as_str(),
            got.created_at,
            got.updated_at,
            got.learning_source.as_str()
        ),
        ("P9", 150, 300, "peer_pn_message")
    );
    // Insertion order, not key order, and an update keeps its place.
    s.put_lid_mapping(&lid("L0", "P0", 1, 1)).await.unwrap();
    let all: Vec<String> = s
        .get_all_lid_mappings()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.lid)
        .collect();
    assert_eq!(all, ["L1", "L2", "L0"]);
    // The phone index followed the update.
    assert!(s.get_pn_mapping("P1").await.unwrap().is_none());
    assert_eq!(s.get_pn_mapping("P9").await.unwrap().unwrap().lid, "L1");
}

#[tokio::test]
async fn pn_mapping_prefers_latest_update_then_first_inserted() {
    let f = Fixture::with_device().await;
    let s = &f.store;
    assert!(s.get_pn_mapping("P").await.unwrap().is_none());
    s.put_lid_mapping(&lid("L1", "P", 1, 200)).await.unwrap();
    s.put_lid_mapping(&lid("L2", "P", 1, 100)).await.unwrap();
    assert_eq!(s.get_pn_mapping("P").await.unwrap().unwrap().lid, "L1");
    // Ties go to the row inserted first, whatever the key order.
    for l in ["Lc", "La", "Le", "Lb", "Ld"] {
        s.put_lid_mapping(&lid(l, "T", 1, 500)).await.unwrap();
    }
    assert_eq!(s.get_pn_mapping("T").await.unwrap().unwrap().lid, "Lc");
    // Re-pointing the winner elsewhere leaves the others (unlike InMemoryBackend).
    s.put_lid_mapping(&lid("Lc", "U", 1, 500)).await.unwrap();
    assert_eq!(s.get_pn_mapping("T").await.unwrap().unwrap().lid, "La");
    s.put_lid_mapping(&lid("L1", "V", 1, 300)).await.unwrap();
    assert_eq!(s.get_pn_mapping("P").await.unwrap().unwrap().lid, "L2");
    // A batch with a duplicate lid: last wins, first created_at kept.
    s.put_lid_mappings(&[lid("N", "Q1", 10, 10), lid("N", "Q2", 20, 20)])
        .await
        .unwrap();
    let n = s.get_lid_mapping("N").await.unwrap().unwrap();
    assert_eq!(
        (n.phone_number.as_str(), n.created_at, n.updated_at),
        ("Q2", 10, 20)
    );
    assert!(s.get_pn_mapping("Q1").await.unwrap().is_none());
}

#[tokio::test]
async fn base_keys() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert!(!s.has_same_base_key("a", "m1", b"k").await.unwrap());
    s.save_base_key("a", "m1", b"k").await.unwrap();
    assert!(s.has_same_base_key("a", "m1", b"k").await.unwrap());
    assert!(!s.has_same_base_key("a", "m1", b"other").await.unwrap());
    assert!(!s.has_same_base_key("a", "m2", b"k").await.unwrap());
    s.save_base_key("a", "m1", b"k2").await.unwrap();
    assert!(s.has_same_base_key("a", "m1", b"k2").await.unwrap());
    s.delete_base_key("a", "m1").await.unwrap();
    s.delete_base_key("a", "m1").await.unwrap();
    assert!(!s.has_same_base_key("a", "m1", b"k2").await.unwrap());
}

fn device_list(user: &str, devices: &[u32], ts: i64) -> DeviceListRecord {
    DeviceListRecord {
        user: user.into(),
        devices: devices
            .iter()
            .map(|&d| DeviceInfo::new(d, Some(d + 100)).with_hosting(d == 99))
            .collect(),
        timestamp: ts,
        phash: Some("2:abcd".into()),
        raw_id: Some(u32::MAX),
    }
}

#[tokio::test]
async fn device_lists_roundtrip_with_full_width_timestamps() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert!(s.get_devices("u").await.unwrap().is_none());
    s.update_device_list(device_list("u", &[0, 3, 99], 5_000_000_000))
        .await
        .unwrap();
    let got = s.get_devices("u").await.unwrap().unwrap();
    // SqliteStore would return 705032704 (truncated to i32); see schema.md.
    assert_eq!(got.timestamp, 5_000_000_000);
    assert_eq!(got.raw_id, Some(u32::MAX));
    assert_eq!(got.phash.as_deref(), Some("2:abcd"));
    let ids: Vec<(u32, Option<u32>, bool)> = got
        .devices
        .iter()
        .map(|d| (d.device_id, d.key_index, d.is_hosted))
        .collect();
    assert_eq!(
        ids,
        [
            (0, Some(100), false),
            (3, Some(103), false),
            (99, Some(199), true)
        ]
    );

    s.update_device_lists(vec![]).await.unwrap();
    s.update_device_lists(vec![
        device_list("u", &[1], 1),
        device_list("v", &[2], 2),
        device_list("u", &[5], 3),
    ])
    .await
    .unwrap();
    let u = s.get_devices("u").await.unwrap().unwrap();
    assert_eq!(
        (u.devices.len(), u.devices[0].device_id, u.timestamp),
        (1, 5, 3)
    );
    let mut v = device_list("v", &[], 4);
    v.phash = None;
    v.raw_id = None;
    s.update_device_list(v).await.unwrap();
    let v = s.get_devices("v").await.unwrap().unwrap();
    assert_eq!((v.devices.len(), v.phash, v.raw_id), (0, None, None));
    s.delete_devices("u").await.unwrap();
    s.delete_devices("u").await.unwrap();
    assert!(s.get_devices("u").await.unwrap().is_none());
}

#[tokio::test]
async fn group_metadata() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert_eq!(s.get_group_metadata(G).await.unwrap(), None);
    s.put_group_metadata(G, b"v1").await.unwrap();
    assert_eq!(s.get_group_metadata(G).await.unwrap().unwrap(), b"v1");
    s.put_group_metadata(G, b"").await.unwrap();
    assert_eq!(s.get_group_metadata(G).await.unwrap().unwrap(), b"");
    s.delete_group_metadata(G).await.unwrap();
    s.delete_group_metadata(G).await.unwrap();
    assert_eq!(s.get_group_metadata(G).await.unwrap(), None);
}

fn tc(token: &[u8], ts: i64, sender: Option<i64>) -> TcTokenEntry {
    TcTokenEntry {
        token: token.to_vec(),
        token_timestamp: ts,
        sender_timestamp: sender,
    }
}

async fn tc_fields(s: &impl ProtocolStore, jid: &str) -> Option<(Vec<u8>, i64, Option<i64>)> {
    s.get_tc_token(jid)
        .await
        .unwrap()
        .map(|e| (e.token, e.token_timestamp, e.sender_timestamp))
}

#[tokio::test]
async fn tc_tokens_put_overwrites_all_fields() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert!(s.get_tc_token("j").await.unwrap().is_none());
    s.put_tc_token("j", &tc(b"t1", 10, Some(20))).await.unwrap();
    assert_eq!(
        tc_fields(s, "j").await,
        Some((b"t1".to_vec(), 10, Some(20)))
    );
    s.put_tc_token("j", &tc(b"t2", 5, None)).await.unwrap();
    assert_eq!(tc_fields(s, "j").await, Some((b"t2".to_vec(), 5, None)));
    for j in ["t3", "tz", "ta", "tm"] {
        s.put_tc_token(j, &tc(b"x", 1, None)).await.unwrap();
    }
    assert_eq!(
        s.get_all_tc_token_jids().await.unwrap(),
        ["j", "t3", "ta", "tm", "tz"]
    );
    s.delete_tc_token("j").await.unwrap();
    s.delete_tc_token("j").await.unwrap();
    assert!(s.get_tc_token("j").await.unwrap().is_none());
}

#[tokio::test]
async fn touch_and_received_preserve_each_others_field() {
    let f = Fixture::new().await;
    let s = &f.store;
    s.touch_tc_token_sender_timestamp("j", 5000).await.unwrap();
    assert_eq!(tc_fields(s, "j").await, Some((vec![], 5000, Some(5000))));
    s.store_received_tc_token("j", b"tok", 4000).await.unwrap();
    assert_eq!(
        tc_fields(s, "j").await,
        Some((b"tok".to_vec(), 4000, Some(5000)))
    );
    s.touch_tc_token_sender_timestamp("j", 6000).await.unwrap();
    assert_eq!(
        tc_fields(s, "j").await,
        Some((b"tok".to_vec(), 4000, Some(6000)))
    );
    s.touch_tc_token_sender_timestamp("j", 1000).await.unwrap();
    assert_eq!(
        tc_fields(s, "j").await,
        Some((b"tok".to_vec(), 4000, Some(6000)))
    );
    // A row put without a sender timestamp gets one from the touch.
    s.put_tc_token("k", &tc(b"t", 7, None)).await.unwrap();
    s.touch_tc_token_sender_timestamp("k", 3).await.unwrap();
    assert_eq!(tc_fields(s, "k").await, Some((b"t".to_vec(), 7, Some(3))));
}

#[tokio::test]
async fn received_tokens_newer_or_equal_wins() {
    let f = Fixture::new().await;
    let s = &f.store;
    s.store_received_tc_token("j", b"t1", 100).await.unwrap();
    assert_eq!(tc_fields(s, "j").await, Some((b"t1".to_vec(), 100, None)));
    s.store_received_tc_token("j", b"old", 99).await.unwrap();
    assert_eq!(tc_fields(s, "j").await.unwrap().0, b"t1");
    s.store_received_tc_token("j", b"tie", 100).await.unwrap();
    assert_eq!(tc_fields(s, "j").await.unwrap().0, b"tie");
    // A placeholder (touch) never blocks the first real token, even an older one.
    s.touch_tc_token_sender_timestamp("p", 9000).await.unwrap();
    s.store_received_tc_token("p", b"real", 6000).await.unwrap();
    assert_eq!(
        tc_fields(s, "p").await,
        Some((b"real".to_vec(), 6000, Some(9000)))
    );
    // An incoming empty token follows the same rule and becomes a placeholder.
    s.store_received_tc_token("p", b"", 7000).await.unwrap();
    s.store_received_tc_token("p", b"older", 1).await.unwrap();
    assert_eq!(
        tc_fields(s, "p").await,
        Some((b"older".to_vec(), 1, Some(9000)))
    );
}

#[tokio::test]
async fn expired_tc_tokens_need_both_windows_stale() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert_eq!(s.delete_expired_tc_tokens(1000, 2000).await.unwrap(), 0);
    s.put_tc_token("recent_placeholder", &tc(b"", 500, Some(2500)))
        .await
        .unwrap();
    s.put_tc_token("stale_placeholder", &tc(b"", 5000, Some(1500)))
        .await
        .unwrap();
    s.put_tc_token("expired_live_sender", &tc(b"t", 500, Some(2500)))
        .await
        .unwrap();
    s.put_tc_token("expired_no_sender", &tc(b"t", 500, None))
        .await
        .unwrap();
    s.put_tc_token("fresh", &tc(b"t", 1500, None))
        .await
        .unwrap();
    // Strict `<`: equal to the cutoff is kept.
    s.put_tc_token("boundary", &tc(b"t", 1000, Some(2000)))
        .await
        .unwrap();
    s.put_tc_token("empty_at_boundary", &tc(b"", 0, Some(2000)))
        .await
        .unwrap();
    s.for_device(2)
        .put_tc_token("expired_no_sender", &tc(b"t", 500, None))
        .await
        .unwrap();
    assert_eq!(s.delete_expired_tc_tokens(1000, 2000).await.unwrap(), 2);
    assert_eq!(
        s.get_all_tc_token_jids().await.unwrap(),
        [
            "boundary",
            "empty_at_boundary",
            "expired_live_sender",
            "fresh",
            "recent_placeholder"
        ]
    );
    assert!(
        s.for_device(2)
            .get_tc_token("expired_no_sender")
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn sent_messages_are_taken_once_and_swept_strictly_before_cutoff() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert_eq!(s.take_sent_message("c", "m").await.unwrap(), None);
    s.store_sent_message("c", "m", b"p1").await.unwrap();
    s.store_sent_message("c", "m", b"p2").await.unwrap();
    s.store_sent_message("c", "e", b"").await.unwrap();
    assert_eq!(s.take_sent_message("c", "m").await.unwrap().unwrap(), b"p2");
    assert_eq!(s.take_sent_message("c", "m").await.unwrap(), None);
    assert_eq!(s.take_sent_message("c", "e").await.unwrap().unwrap(), b"");
    s.store_sent_message("c", "x", b"p").await.unwrap();
    s.for_device(2)
        .store_sent_message("c", "x", b"q")
        .await
        .unwrap();
    let t = now();
    assert_eq!(s.delete_expired_sent_messages(t - 60).await.unwrap(), 0);
    assert_eq!(s.delete_expired_sent_messages(t + 2).await.unwrap(), 1);
    assert_eq!(s.take_sent_message("c", "x").await.unwrap(), None);
    assert_eq!(
        s.for_device(2)
            .take_sent_message("c", "x")
            .await
            .unwrap()
            .unwrap(),
        b"q"
    );
}

#[tokio::test]
async fn pending_inbound_buffer() {
    let f = Fixture::new().await;
    let s = &f.store;
    assert_eq!(s.get_pending_inbound("c", "s", "1").await.unwrap(), None);
    s.store_pending_inbound("c", "s", "1", b"m1").await.unwrap();
    s.store_pending_inbound("c", "s", "1", b"m1b")
        .await
        .unwrap();
    assert_eq!(
        s.get_pending_inbound("c", "s", "1").await.unwrap().unwrap(),
        b"m1b"
    );
    assert_eq!(
        s.get_pending_inbound("c", "other", "1").await.unwrap(),
        None
    );
    s.store_pending_inbound_batch(&[]).await.unwrap();
    let rows = [
        PendingInboundRow {
            chat: "c",
            sender: "s",
            id: "2",
            message: b"a",
        },
        PendingInboundRow {
            chat: "c",
            sender: "s",
            id: "3",
            message: b"",
        },
        PendingInboundRow {
            chat: "c",
            sender: "s",
            id: "2",
            message: b"b",
        },
    ];
    s.store_pending_inbound_batch(&rows).await.unwrap();
    assert_eq!(
        s.get_pending_inbound("c", "s", "2").await.unwrap().unwrap(),
        b"b"
    );
    assert_eq!(
        s.get_pending_inbound("c", "s", "3").await.unwrap().unwrap(),
        b""
    );
    s.delete_pending_inbound_batch(&[]).await.unwrap();
    s.delete_pending_inbound_batch(&[
        PendingInboundKey {
            chat: "c",
            sender: "s",
            id: "2",
        },
        PendingInboundKey {
            chat: "c",
            sender: "s",
            id: "404",
        },
    ])
    .await
    .unwrap();
    assert_eq!(s.get_pending_inbound("c", "s", "2").await.unwrap(), None);
    s.delete_pending_inbound("c", "s", "1").await.unwrap();
    s.delete_pending_inbound("c", "s", "1").await.unwrap();
    assert_eq!(s.get_pending_inbound("c", "s", "1").await.unwrap(), None);
    let t = now();
    assert_eq!(s.delete_expired_pending_inbound(t - 60).await.unwrap(), 0);
    assert_eq!(s.delete_expired_pending_inbound(t + 2).await.unwrap(), 1);
    assert_eq!(s.get_pending_inbound("c", "s", "3").await.unwrap(), None);
}
