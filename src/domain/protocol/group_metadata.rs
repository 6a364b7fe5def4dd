//! Group metadata blobs (`group_metadata`).

use wacore::store::error::Result;

use crate::handle::RedbStore;
use crate::tables::GROUP_METADATA;

pub(super) async fn get_group_metadata(
    store: &RedbStore,
    group_jid: &str,
) -> Result<Option<Vec<u8>>> {
    store.read(|s| s.get(GROUP_METADATA, (store.device_id, group_jid), <[u8]>::to_vec))
}

pub(super) async fn put_group_metadata(
    store: &RedbStore,
    group_jid: &str,
    blob: &[u8],
) -> Result<()> {
    store.put_named(GROUP_METADATA, group_jid, blob).await
}

pub(super) async fn delete_group_metadata(store: &RedbStore, group_jid: &str) -> Result<()> {
    store.delete_named(GROUP_METADATA, group_jid).await
}
