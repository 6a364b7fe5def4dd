//! Which devices of a group have our sender key (`sender_key_devices`).

use std::collections::HashSet;

use wacore::store::error::Result;

use crate::engine::NameRange;
use crate::handle::RedbStore;
use crate::tables::SENDER_KEY_DEVICES;

/// In device-jid order (unspecified by the trait).
pub(super) async fn get_sender_key_devices(
    store: &RedbStore,
    group_jid: &str,
) -> Result<Vec<(String, bool)>> {
    let under = NameRange::new(store.device_id, group_jid);
    let bounds = under.str_keys();
    let mut out = Vec::new();
    store.read(|s| {
        s.visit(SENDER_KEY_DEVICES, bounds, |(_, _, device), has_key| {
            out.push((device.to_owned(), has_key));
            Ok(true)
        })
    })?;
    Ok(out)
}

pub(super) async fn set_sender_key_status(
    store: &RedbStore,
    group_jid: &str,
    entries: &[(&str, bool)],
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let (d, group) = (store.device_id, group_jid.to_owned());
    let entries: Vec<(String, bool)> = entries.iter().map(|(j, k)| ((*j).to_owned(), *k)).collect();
    let weight = entries.iter().map(|(j, _)| j.len() + 1).sum();
    store
        .write(weight, move |tx| {
            tx.table(SENDER_KEY_DEVICES)?.put_all(
                entries
                    .iter()
                    .map(|(device, has_key)| ((d, group.as_str(), device.as_str()), has_key)),
            )
        })
        .await
}

pub(super) async fn clear_sender_key_devices(store: &RedbStore, group_jid: &str) -> Result<()> {
    store.clear_sender_key_group(group_jid).await.map(drop)
}

pub(super) async fn delete_sender_key_device_rows(
    store: &RedbStore,
    device_jids: &[&str],
) -> Result<()> {
    if device_jids.is_empty() {
        return Ok(());
    }
    let d = store.device_id;
    let jids: HashSet<String> = device_jids.iter().map(|j| (*j).to_owned()).collect();
    store
        .write_scan(move |tx| {
            tx.delete_where(
                SENDER_KEY_DEVICES,
                SENDER_KEY_DEVICES.device(d),
                |(_, _, device), _| jids.contains(device),
            )
            .map(drop)
        })
        .await
}

pub(super) async fn clear_all_sender_key_devices(store: &RedbStore) -> Result<()> {
    let d = store.device_id;
    store
        .write_scan(move |tx| {
            tx.delete_range(SENDER_KEY_DEVICES, SENDER_KEY_DEVICES.device(d))
                .map(drop)
        })
        .await
}

impl RedbStore {
    /// Deletes the sender-key device rows of a group, returning them.
    pub(crate) async fn clear_sender_key_group(&self, group_jid: &str) -> Result<u64> {
        let d = self.device_id;
        let group = NameRange::new(d, group_jid);
        self.write_scan(move |tx| tx.delete_range(SENDER_KEY_DEVICES, group.str_keys()))
            .await
    }
}
