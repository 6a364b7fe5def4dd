//! Every write that stores several rows checks them all before its first
//! change, so that one bad row fails the call alone: the writes that share
//! its transaction (its batch) are written, and none of its own rows is.
//!
//! The batch is made deterministic: on a current-thread runtime the first of
//! three joined writes leads the lane and yields once, so the other two queue
//! behind it and the three commit together. One journal record for the three
//! proves they shared the batch; a write that failed after a change would
//! have the whole batch dropped and its neighbours fail. (A row whose key is
//! too long makes its write too heavy to commit on the caller's thread: it
//! goes to a pool worker and may get a batch of its own, so for those writes
//! only "fails, writes nothing, neighbours written" is checked.)

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::traits::{
    AppSyncStore, DeviceListRecord, DeviceStore, LidPnMappingEntry, MsgSecretEntry, MsgSecretStore,
    PendingInboundRow, ProtocolStore, SignalStore,
};
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig};

/// Values above this are refused.
const LIMIT: usize = 1024;

/// A key part longer than any key the store accepts (64 KiB).
fn huge_key() -> String {
    "k".repeat(70 * 1024)
}

fn oversized() -> Vec<u8> {
    vec![7u8; LIMIT + 1]
}

/// Whether the failing write is light enough to share the neighbours'
/// batch for certain.
#[derive(PartialEq)]
enum Batch {
    Shared,
    MaybeOwn,
}

/// Runs `failing` between two neighbouring writes (in one batch when
/// `Batch::Shared`) and checks that it fails alone and wrote nothing
/// (`untouched` says whether its first row is absent).
fn fails_alone<F, U>(what: &str, batch: Batch, failing: impl FnOnce(RedbStore) -> F, untouched: U)
where
    F: Future<Output = wacore::store::error::Result<()>>,
    U: AsyncFnOnce(&RedbStore) -> bool,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = RedbStoreConfig::default()
            .with_max_value_size(LIMIT)
            .with_checkpoint_interval(Duration::from_secs(3600));
        let s = RedbStore::with_config(dir.path().join("s.redb"), config)
            .await
            .unwrap();
        s.save(&wacore::store::Device::new()).await.unwrap();
        let before = s.info().await.unwrap().pending_journal_records;
        let (a, failed, b) = tokio::join!(
            s.put_session("before.0", b"a"),
            failing(s.clone()),
            s.put_session("after.0", b"b"),
        );
        assert!(failed.is_err(), "{what}: the bad row was accepted");
        a.unwrap_or_else(|e| panic!("{what}: the neighbour before failed: {e}"));
        b.unwrap_or_else(|e| panic!("{what}: the neighbour after failed: {e}"));
        let after = s.info().await.unwrap().pending_journal_records;
        if batch == Batch::Shared {
            assert_eq!(after, before + 1, "{what}: the three did not share a batch");
        }
        assert!(s.has_session("before.0").await.unwrap());
        assert!(s.has_session("after.0").await.unwrap());
        assert!(untouched(&s).await, "{what}: its first row was written");
    });
}

#[test]
fn sessions_batch() {
    fails_alone(
        "put_sessions_batch",
        Batch::Shared,
        |s| async move {
            let rows: Vec<(Arc<str>, Bytes)> = vec![
                (Arc::from("mine.0"), Bytes::from_static(b"ok")),
                (Arc::from("big.0"), Bytes::from(oversized())),
            ];
            s.put_sessions_batch(&rows).await
        },
        async |s| !s.has_session("mine.0").await.unwrap(),
    );
}

#[test]
fn prekeys_batch() {
    fails_alone(
        "store_prekeys_batch",
        Batch::Shared,
        |s| async move {
            let keys = vec![
                (1u32, Bytes::from_static(b"ok")),
                (2, Bytes::from(oversized())),
            ];
            s.store_prekeys_batch(&keys, false).await
        },
        async |s| s.load_prekey(1).await.unwrap().is_none(),
    );
}

#[test]
fn mutation_macs() {
    fails_alone(
        "put_mutation_macs",
        Batch::Shared,
        |s| async move {
            let macs = vec![
                AppStateMutationMAC {
                    index_mac: vec![1; 32],
                    value_mac: vec![2; 32],
                },
                AppStateMutationMAC {
                    index_mac: vec![3; 32],
                    value_mac: oversized(),
                },
            ];
            s.put_mutation_macs("regular", 1, &macs).await
        },
        async |s| {
            s.get_mutation_mac("regular", &[1; 32])
                .await
                .unwrap()
                .is_none()
        },
    );
}

#[test]
fn sender_key_status() {
    fails_alone(
        "set_sender_key_status",
        Batch::MaybeOwn,
        |s| async move {
            let huge = huge_key();
            s.set_sender_key_status("g@g.us", &[("a@s.whatsapp.net", true), (&huge, true)])
                .await
        },
        async |s| s.get_sender_key_devices("g@g.us").await.unwrap().is_empty(),
    );
}

#[test]
fn device_lists() {
    fails_alone(
        "update_device_lists",
        Batch::MaybeOwn,
        |s| async move {
            let record = |user: String| DeviceListRecord {
                user,
                devices: Vec::new(),
                timestamp: 1,
                phash: None,
                raw_id: None,
            };
            s.update_device_lists(vec![record("u1".into()), record(huge_key())])
                .await
        },
        async |s| s.get_devices("u1").await.unwrap().is_none(),
    );
}

#[test]
fn pending_inbound_batch() {
    fails_alone(
        "store_pending_inbound_batch",
        Batch::Shared,
        |s| async move {
            let big = oversized();
            let rows = [
                PendingInboundRow {
                    chat: "c",
                    sender: "s",
                    id: "1",
                    message: b"ok",
                },
                PendingInboundRow {
                    chat: "c",
                    sender: "s",
                    id: "2",
                    message: &big,
                },
            ];
            s.store_pending_inbound_batch(&rows).await
        },
        async |s| {
            s.get_pending_inbound("c", "s", "1")
                .await
                .unwrap()
                .is_none()
        },
    );
}

#[test]
fn lid_mappings() {
    fails_alone(
        "put_lid_mappings",
        Batch::MaybeOwn,
        |s| async move {
            let entry = |lid: String| LidPnMappingEntry {
                lid,
                phone_number: "15550001".into(),
                created_at: 1,
                updated_at: 1,
                learning_source: "usync".into(),
            };
            s.put_lid_mappings(&[entry("100".into()), entry(huge_key())])
                .await
        },
        async |s| {
            s.get_lid_mapping("100").await.unwrap().is_none()
                && s.get_pn_mapping("15550001").await.unwrap().is_none()
        },
    );
}

#[test]
fn msg_secrets() {
    fails_alone(
        "put_msg_secrets",
        Batch::MaybeOwn,
        |s| async move {
            let entry = |msg_id: String| MsgSecretEntry {
                chat: Arc::from("c"),
                sender: Arc::from("s"),
                msg_id: Arc::from(msg_id),
                secret: [9; 32],
                expires_at: 0,
                message_ts: 1,
            };
            s.put_msg_secrets(vec![entry("m1".into()), entry(huge_key())])
                .await
                .map(drop)
        },
        async |s| s.get_msg_secret("c", "s", "m1").await.unwrap().is_none(),
    );
}
