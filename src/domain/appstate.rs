//! `AppSyncStore`: app-state sync keys, collection versions (hash states)
//! and mutation MACs.

use std::collections::HashMap;

use async_trait::async_trait;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::error::Result;
use wacore::store::traits::{AppStateSyncKey, AppSyncStore};

use crate::engine::NameRange;
use crate::handle::RedbStore;
use crate::tables::codec::{MutationMacRow, decode, encode_named, encode_row};
use crate::tables::{APP_STATE_VERSIONS, MUTATION_MACS, SYNC_KEYS};

/// A sync key as the client may see it: SqliteStore treats a key whose
/// record does not decode, or whose `key_data` is not 32 bytes, as absent,
/// both when reading it and when choosing the latest one.
fn usable_sync_key(bytes: &[u8]) -> Option<AppStateSyncKey> {
    match decode::<AppStateSyncKey>("app state sync key", bytes) {
        Ok(key) if key.key_data.len() == 32 => Some(key),
        Ok(key) => {
            log::warn!(
                "ignoring app state sync key with {}-byte key_data",
                key.key_data.len()
            );
            None
        }
        Err(e) => {
            log::warn!("ignoring undecodable app state sync key: {e}");
            None
        }
    }
}

fn value_mac(bytes: &[u8]) -> crate::error::StorageResult<Vec<u8>> {
    decode::<MutationMacRow>("mutation mac", bytes).map(|row| row.value_mac)
}

#[async_trait]
impl AppSyncStore for RedbStore {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        self.timed("get_sync_key", async move {
            self.read(|s| {
                Ok(s.get(SYNC_KEYS, (self.device_id, key_id), usable_sync_key)?
                    .flatten())
            })
        })
        .await
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        self.timed("set_sync_key", async move {
            let (d, key_id, value) = (self.device_id, key_id.to_vec(), encode_named(&key)?);
            self.write(key_id.len() + value.len(), move |tx| {
                tx.put(SYNC_KEYS, (d, key_id.as_slice()), value.as_slice())
            })
            .await
        })
        .await
    }

    /// A missing or undecodable state reads as the default (version 0),
    /// which makes the client re-sync the collection, as with SqliteStore.
    async fn get_version(&self, name: &str) -> Result<HashState> {
        self.timed("get_version", async move {
            let state = self.read(|s| {
                s.get(APP_STATE_VERSIONS, (self.device_id, name), |v| {
                    decode::<HashState>("app state version", v)
                })
            })?;
            Ok(match state {
                Some(Ok(state)) => state,
                Some(Err(e)) => {
                    log::warn!("app state version {name:?} unreadable, starting over: {e}");
                    HashState::default()
                }
                None => HashState::default(),
            })
        })
        .await
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        self.timed("set_version", async move {
            let (d, name, value) = (self.device_id, name.to_owned(), encode_named(&state)?);
            self.write(name.len() + value.len(), move |tx| {
                tx.put(APP_STATE_VERSIONS, (d, name.as_str()), value.as_slice())
            })
            .await
        })
        .await
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        self.timed("put_mutation_macs", async move {
            if mutations.is_empty() {
                return Ok(());
            }
            let d = self.device_id;
            let name = name.to_owned();
            let rows: Vec<(Vec<u8>, Vec<u8>)> = mutations
                .iter()
                .map(|m| {
                    let row = MutationMacRow {
                        version,
                        value_mac: m.value_mac.clone(),
                    };
                    (m.index_mac.clone(), encode_row(&row))
                })
                .collect();
            let weight = rows.iter().map(|(k, v)| k.len() + v.len()).sum();
            self.write(weight, move |tx| {
                tx.table(MUTATION_MACS)?.put_all(
                    rows.iter()
                        .map(|(mac, row)| ((d, name.as_str(), mac.as_slice()), row.as_slice())),
                )
            })
            .await
        })
        .await
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        self.timed("get_mutation_mac", async move {
            self.read(|s| {
                s.get(MUTATION_MACS, (self.device_id, name, index_mac), value_mac)?
                    .transpose()
            })
        })
        .await
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        self.timed("get_mutation_macs", async move {
            let (d, name, macs) = (self.device_id, name.to_owned(), index_macs.to_vec());
            self.read_batch(macs.len(), move |s| {
                let mut out = HashMap::with_capacity(macs.len());
                let t = s.table(MUTATION_MACS)?;
                for mac in &macs {
                    if let Some(v) = t.get((d, name.as_str(), &mac[..]), value_mac)? {
                        out.insert(*mac, v?);
                    }
                }
                Ok(out)
            })
            .await
        })
        .await
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        self.timed("delete_mutation_macs", async move {
            if index_macs.is_empty() {
                return Ok(());
            }
            let (d, name, macs) = (self.device_id, name.to_owned(), index_macs.to_vec());
            let weight = macs.iter().map(Vec::len).sum();
            self.write(weight, move |tx| {
                let mut t = tx.table(MUTATION_MACS)?;
                for mac in &macs {
                    t.remove((d, name.as_str(), mac.as_slice()))?;
                }
                Ok(())
            })
            .await
        })
        .await
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        self.timed("clear_mutation_macs", async move {
            let d = self.device_id;
            // (d, name, *) lies between (d, name, []) and (d, name + "\0", []).
            let collection = NameRange::new(d, name);
            self.write_scan(move |tx| {
                tx.delete_range(MUTATION_MACS, collection.byte_keys())
                    .map(drop)
            })
            .await
        })
        .await
    }

    /// The greatest key id (byte order) among usable keys, like
    /// SqliteStore; not the most recently stored one.
    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        self.timed("get_latest_sync_key_id", async move {
            let mut latest = None;
            self.read(|s| {
                s.visit_rev(SYNC_KEYS, SYNC_KEYS.device(self.device_id), |(_, id), v| {
                    if usable_sync_key(v).is_some() {
                        latest = Some(id.to_vec());
                        return Ok(false);
                    }
                    Ok(true)
                })
            })?;
            Ok(latest)
        })
        .await
    }
}
