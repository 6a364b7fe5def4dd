//! The buffer of inbound messages waiting to be decrypted (`pending_inbound`).

use wacore::store::error::Result;
use wacore::store::traits::{PendingInboundKey, PendingInboundRow, ProtocolStore};

use crate::clock::now_secs;
use crate::handle::RedbStore;
use crate::tables::PENDING_INBOUND;
use crate::tables::codec::{PendingInboundRow as InboundRow, decode, encode_row};

pub(super) async fn store_pending_inbound(
    store: &RedbStore,
    chat: &str,
    sender: &str,
    id: &str,
    message: &[u8],
) -> Result<()> {
    store
        .store_pending_inbound_batch(&[PendingInboundRow {
            chat,
            sender,
            id,
            message,
        }])
        .await
}

pub(super) async fn get_pending_inbound(
    store: &RedbStore,
    chat: &str,
    sender: &str,
    id: &str,
) -> Result<Option<Vec<u8>>> {
    let row = store.read(|s| {
        s.get(PENDING_INBOUND, (store.device_id, chat, sender, id), |v| {
            decode::<InboundRow>("pending inbound message", v)
        })?
        .transpose()
    })?;
    Ok(row.map(|r| r.message))
}

pub(super) async fn delete_pending_inbound(
    store: &RedbStore,
    chat: &str,
    sender: &str,
    id: &str,
) -> Result<()> {
    store
        .delete_pending_inbound_batch(&[PendingInboundKey { chat, sender, id }])
        .await
}

/// Deletes rows stored strictly before `cutoff_timestamp`.
pub(super) async fn delete_expired_pending_inbound(
    store: &RedbStore,
    cutoff_timestamp: i64,
) -> Result<u32> {
    let d = store.device_id;
    store
        .write_scan(move |tx| {
            tx.delete_where(PENDING_INBOUND, PENDING_INBOUND.device(d), |_, v| {
                decode::<InboundRow>("pending inbound message", v)
                    .is_ok_and(|r| r.inserted_at < cutoff_timestamp)
            })
        })
        .await
}

pub(super) async fn store_pending_inbound_batch(
    store: &RedbStore,
    rows: &[PendingInboundRow<'_>],
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let (d, now) = (store.device_id, now_secs());
    let rows: Vec<([String; 3], Vec<u8>)> = rows
        .iter()
        .map(|r| {
            let row = InboundRow {
                inserted_at: now,
                message: r.message.to_vec(),
            };
            (
                [r.chat.into(), r.sender.into(), r.id.into()],
                encode_row(&row),
            )
        })
        .collect();
    let weight = rows
        .iter()
        .map(|(k, v)| k.iter().map(String::len).sum::<usize>() + v.len())
        .sum();
    store
        .write(weight, move |tx| {
            tx.table(PENDING_INBOUND)?
                .put_all(rows.iter().map(|([chat, sender, id], row)| {
                    (
                        (d, chat.as_str(), sender.as_str(), id.as_str()),
                        row.as_slice(),
                    )
                }))
        })
        .await
}

pub(super) async fn delete_pending_inbound_batch(
    store: &RedbStore,
    keys: &[PendingInboundKey<'_>],
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let d = store.device_id;
    let keys: Vec<[String; 3]> = keys
        .iter()
        .map(|k| [k.chat.into(), k.sender.into(), k.id.into()])
        .collect();
    let weight = keys.iter().flatten().map(String::len).sum();
    store
        .write(weight, move |tx| {
            let mut t = tx.table(PENDING_INBOUND)?;
            for [chat, sender, id] in &keys {
                t.remove((d, chat.as_str(), sender.as_str(), id.as_str()))?;
            }
            Ok(())
        })
        .await
}
