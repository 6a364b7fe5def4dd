//! Sent messages kept for retries (`sent_messages`).

use wacore::store::error::Result;

use crate::clock::now_secs;
use crate::handle::RedbStore;
use crate::tables::SENT_MESSAGES;
use crate::tables::codec::{SentMessageRow, decode, encode_row};

pub(super) async fn store_sent_message(
    store: &RedbStore,
    chat_jid: &str,
    message_id: &str,
    payload: &[u8],
) -> Result<()> {
    let row = encode_row(&SentMessageRow {
        created_at: now_secs(),
        payload: payload.to_vec(),
    });
    store
        .put_paired(SENT_MESSAGES, (chat_jid, message_id), row)
        .await
}

/// Returns the payload and deletes it, atomically: of concurrent takes,
/// exactly one gets it.
pub(super) async fn take_sent_message(
    store: &RedbStore,
    chat_jid: &str,
    message_id: &str,
) -> Result<Option<Vec<u8>>> {
    let d = store.device_id;
    let (chat, id) = (chat_jid.to_owned(), message_id.to_owned());
    let row = store
        .write(chat.len() + id.len(), move |tx| {
            // Decoded before it is removed: a row that does not decode
            // stays (its error is reported), rather than being lost.
            let mut t = tx.table(SENT_MESSAGES)?;
            let key = (d, chat.as_str(), id.as_str());
            let row = t
                .get(key, |v| decode::<SentMessageRow>("sent message", v))?
                .transpose()?;
            if row.is_some() {
                t.remove(key)?;
            }
            Ok(row)
        })
        .await?;
    Ok(row.map(|r| r.payload))
}

/// Deletes messages stored strictly before `cutoff_timestamp`.
pub(super) async fn delete_expired_sent_messages(
    store: &RedbStore,
    cutoff_timestamp: i64,
) -> Result<u32> {
    let d = store.device_id;
    store
        .write_scan(move |tx| {
            tx.delete_where(SENT_MESSAGES, SENT_MESSAGES.device(d), |_, v| {
                decode::<SentMessageRow>("sent message", v)
                    .is_ok_and(|r| r.created_at < cutoff_timestamp)
            })
        })
        .await
}
