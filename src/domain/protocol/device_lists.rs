//! Device lists per user (`device_lists`).

use wacore::store::error::Result;
use wacore::store::traits::DeviceListRecord;

use crate::handle::RedbStore;
use crate::tables::DEVICE_LISTS;
use crate::tables::codec::{decode, encode_named};

/// Stores each record whole, including a `timestamp` beyond i32 (which
/// SqliteStore truncates).
pub(super) async fn update_device_lists(
    store: &RedbStore,
    records: Vec<DeviceListRecord>,
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let d = store.device_id;
    let rows = records
        .iter()
        .map(|r| Ok((r.user.clone(), encode_named(r)?)))
        .collect::<crate::error::StorageResult<Vec<_>>>()?;
    let weight = rows.iter().map(|(u, r)| u.len() + r.len()).sum();
    store
        .write(weight, move |tx| {
            tx.table(DEVICE_LISTS)?.put_all(
                rows.iter()
                    .map(|(user, row)| ((d, user.as_str()), row.as_slice())),
            )
        })
        .await
}

pub(super) async fn get_devices(store: &RedbStore, user: &str) -> Result<Option<DeviceListRecord>> {
    store.read(|s| {
        s.get(DEVICE_LISTS, (store.device_id, user), |v| {
            decode::<DeviceListRecord>("device list", v)
        })?
        .transpose()
    })
}

pub(super) async fn delete_devices(store: &RedbStore, user: &str) -> Result<()> {
    store.delete_named(DEVICE_LISTS, user).await
}
