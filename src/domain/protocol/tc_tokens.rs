//! Trusted-contact tokens (`tc_tokens`).

use wacore::store::error::Result;
use wacore::store::traits::TcTokenEntry;

use crate::handle::RedbStore;
use crate::tables::TC_TOKENS;
use crate::tables::codec::{TcTokenRow, decode, encode_row, replaceable};

fn tc_row(bytes: &[u8]) -> crate::error::StorageResult<TcTokenRow> {
    decode("tc token", bytes)
}

pub(super) async fn get_tc_token(store: &RedbStore, jid: &str) -> Result<Option<TcTokenEntry>> {
    let row = store.read(|s| {
        s.get(TC_TOKENS, (store.device_id, jid), tc_row)?
            .transpose()
    })?;
    Ok(row.map(|r| TcTokenEntry {
        token: r.token,
        token_timestamp: r.token_timestamp,
        sender_timestamp: r.sender_timestamp,
    }))
}

pub(super) async fn put_tc_token(store: &RedbStore, jid: &str, entry: &TcTokenEntry) -> Result<()> {
    let (d, jid) = (store.device_id, jid.to_owned());
    let row = encode_row(&TcTokenRow {
        token: entry.token.clone(),
        token_timestamp: entry.token_timestamp,
        sender_timestamp: entry.sender_timestamp,
    });
    store
        .write(jid.len() + row.len(), move |tx| {
            tx.put(TC_TOKENS, (d, jid.as_str()), row.as_slice())
        })
        .await
}

pub(super) async fn delete_tc_token(store: &RedbStore, jid: &str) -> Result<()> {
    store.delete_named(TC_TOKENS, jid).await
}

/// In ascending jid order (SqliteStore's observed order).
/// A scan of every token of the account, so it runs on a pool worker
/// rather than the runtime thread.
pub(super) async fn get_all_tc_token_jids(store: &RedbStore) -> Result<Vec<String>> {
    let d = store.device_id;
    store
        .read_blocking(move |s| {
            let mut out = Vec::new();
            s.visit(TC_TOKENS, TC_TOKENS.device(d), |(_, jid), _| {
                out.push(jid.to_owned());
                Ok(true)
            })?;
            Ok(out)
        })
        .await
}

/// Deletes a row when both windows have passed: its token is empty or
/// older than `token_cutoff`, and its sender timestamp is absent or older
/// than `sender_cutoff` (both strict).
pub(super) async fn delete_expired_tc_tokens(
    store: &RedbStore,
    token_cutoff: i64,
    sender_cutoff: i64,
) -> Result<u32> {
    let d = store.device_id;
    store
        .write_scan(move |tx| {
            tx.delete_where(TC_TOKENS, TC_TOKENS.device(d), |_, v| {
                let Ok(row) = tc_row(v) else {
                    return false; // keep what cannot be judged
                };
                (row.token.is_empty() || row.token_timestamp < token_cutoff)
                    && row.sender_timestamp.is_none_or(|s| s < sender_cutoff)
            })
        })
        .await
}

/// Moves the sender timestamp forward (never back) without touching the
/// token; creates a placeholder row if there is none. Atomic.
pub(super) async fn touch_tc_token_sender_timestamp(
    store: &RedbStore,
    jid: &str,
    sender_timestamp: i64,
) -> Result<()> {
    let (d, jid) = (store.device_id, jid.to_owned());
    store
        .write(jid.len(), move |tx| {
            let key = (d, jid.as_str());
            let old = tx.get(TC_TOKENS, key, tc_row)?;
            let row = match replaceable(TC_TOKENS.name, format_args!("device {d} jid {jid}"), old)?
            {
                Some(mut row) => {
                    row.sender_timestamp = Some(
                        row.sender_timestamp
                            .map_or(sender_timestamp, |s| s.max(sender_timestamp)),
                    );
                    row
                }
                None => TcTokenRow {
                    token: Vec::new(),
                    token_timestamp: sender_timestamp,
                    sender_timestamp: Some(sender_timestamp),
                },
            };
            tx.put(TC_TOKENS, key, encode_row(&row).as_slice())
        })
        .await
}

/// Newer (or equal) wins; an empty stored token never blocks; the
/// sender timestamp is kept. Atomic.
pub(super) async fn store_received_tc_token(
    store: &RedbStore,
    jid: &str,
    token: &[u8],
    token_timestamp: i64,
) -> Result<()> {
    let (d, jid, token) = (store.device_id, jid.to_owned(), token.to_vec());
    store
        .write(jid.len() + token.len(), move |tx| {
            let key = (d, jid.as_str());
            let old = tx.get(TC_TOKENS, key, tc_row)?;
            let existing = replaceable(TC_TOKENS.name, format_args!("device {d} jid {jid}"), old)?;
            if let Some(old) = &existing
                && !old.token.is_empty()
                && token_timestamp < old.token_timestamp
            {
                return Ok(());
            }
            let row = TcTokenRow {
                token: token.clone(),
                token_timestamp,
                sender_timestamp: existing.and_then(|old| old.sender_timestamp),
            };
            tx.put(TC_TOKENS, key, encode_row(&row).as_slice())
        })
        .await
}
