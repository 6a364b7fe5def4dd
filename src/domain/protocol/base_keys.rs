//! Base keys seen per address and message (`base_keys`), for the retry receipts check.

use wacore::store::error::Result;

use crate::clock::now_secs;
use crate::handle::RedbStore;
use crate::tables::BASE_KEYS;
use crate::tables::codec::{BaseKeyRow, decode, encode_row};

pub(crate) fn base_key_row(bytes: &[u8]) -> crate::error::StorageResult<BaseKeyRow> {
    decode("base key", bytes)
}

/// Upserts the key with the time it was saved, which
/// [`RedbStore::delete_expired_base_keys`] goes by.
pub(super) async fn save_base_key(
    store: &RedbStore,
    address: &str,
    message_id: &str,
    base_key: &[u8],
) -> Result<()> {
    let row = encode_row(&BaseKeyRow {
        saved_at: now_secs(),
        key: base_key.to_vec(),
    });
    store
        .put_paired(BASE_KEYS, (address, message_id), row)
        .await
}

pub(super) async fn has_same_base_key(
    store: &RedbStore,
    address: &str,
    message_id: &str,
    current_base_key: &[u8],
) -> Result<bool> {
    let same = store.read(|s| {
        s.get(BASE_KEYS, (store.device_id, address, message_id), |v| {
            base_key_row(v).map(|row| row.key == current_base_key)
        })?
        .transpose()
    })?;
    Ok(same == Some(true))
}

pub(super) async fn delete_base_key(
    store: &RedbStore,
    address: &str,
    message_id: &str,
) -> Result<()> {
    let d = store.device_id;
    let (address, id) = (address.to_owned(), message_id.to_owned());
    store
        .write(address.len() + id.len(), move |tx| {
            tx.remove(BASE_KEYS, (d, address.as_str(), id.as_str()))
                .map(drop)
        })
        .await
}
