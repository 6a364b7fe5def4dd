//! `DeviceStore`: the account record, debug snapshots, resource report.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use wacore::stats::StorageResourceReport;
use wacore::store::Device;
use wacore::store::error::{Result, StoreError};
use wacore::store::traits::DeviceStore;

use crate::clock::now_secs;
use crate::error::{StorageError, WriteError};
use crate::handle::RedbStore;
use crate::tables::DEVICES;
use crate::tables::codec::{decode_device, encode_device};

/// SqliteStore's snapshot-name rule: characters outside `[A-Za-z0-9_.-]`
/// become `_`, empty and `..` segments between dots go, leading/trailing
/// `/\.` are trimmed; empty or over 100 characters is an error.
pub(crate) fn sanitize_snapshot_name(name: &str) -> Result<String> {
    const MAX_LENGTH: usize = 100;
    let replaced: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let joined = replaced
        .split('.')
        .filter(|part| !part.is_empty() && *part != "..")
        .collect::<Vec<_>>()
        .join(".");
    let trimmed = joined.trim_matches(['/', '\\', '.']);
    if trimmed.is_empty() {
        return Err(StoreError::InvalidConfig(
            "Snapshot name cannot be empty after sanitization".to_string(),
        ));
    }
    if trimmed.len() > MAX_LENGTH {
        return Err(StoreError::InvalidConfig(format!(
            "Snapshot name exceeds maximum length of {MAX_LENGTH} characters"
        )));
    }
    Ok(trimmed.to_string())
}

impl RedbStore {
    /// The contents of a snapshot's sidecar (`<snapshot>.json`, written by
    /// `snapshot_db` with `extra_content`): as written for a plain store;
    /// decrypted with `config`'s key for an encrypted one.
    pub fn read_snapshot_sidecar(
        path: impl AsRef<std::path::Path>,
        config: &crate::config::RedbStoreConfig,
    ) -> Result<Vec<u8>> {
        use crate::error::KeyProblem;
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| StorageError::io(path, e))?;
        if !crate::engine::is_sealed_file(&bytes) {
            return Ok(bytes);
        }
        let key_error = |problem| StorageError::Key {
            path: path.to_path_buf(),
            problem,
        };
        let key = config
            .encryption
            .as_ref()
            .ok_or_else(|| key_error(KeyProblem::Required))?;
        crate::engine::open_sealed_file(key, &bytes)
            .map_err(|e| key_error(e.into_problem(key)).into())
    }
}

#[async_trait]
impl DeviceStore for RedbStore {
    /// Upserts the record; works without a prior `create()`.
    async fn save(&self, device: &Device) -> Result<()> {
        self.timed("save", async move {
            let (d, record) = (self.device_id, encode_device(device)?);
            self.write(record.len(), move |tx| {
                tx.put(DEVICES, d, record.as_slice())
            })
            .await
        })
        .await
    }

    /// The record, with the fields SqliteStore does not persist
    /// (`device_props`, `client_profile`, `nct_salt_sync_seen`) at the values
    /// SqliteStore returns.
    async fn load(&self) -> Result<Option<Device>> {
        self.timed("load", async move {
            self.read(|s| s.get(DEVICES, self.device_id, decode_device)?.transpose())
        })
        .await
    }

    async fn exists(&self) -> Result<bool> {
        self.timed("exists", async move {
            self.read(|s| Ok(s.get(DEVICES, self.device_id, |_| ())?.is_some()))
        })
        .await
    }

    /// Writes a fresh `Device::new()` for this device id and returns the id;
    /// fails if a record exists (also one written by `save()`).
    async fn create(&self) -> Result<i32> {
        self.timed("create", async move {
            let (d, record) = (self.device_id, encode_device(&Device::new())?);
            self.write(record.len(), move |tx| {
                if tx.get(DEVICES, d, |_| ())?.is_some() {
                    return Err(WriteError::DeviceExists { device_id: d });
                }
                tx.put(DEVICES, d, record.as_slice())?;
                Ok(d)
            })
            .await
        })
        .await
    }

    /// Writes a consistent copy of the whole store file to
    /// `<store>.snapshot-<unix secs>-<name>` (a store `wa-redb` opens), and
    /// `extra_content` beside it as `<that>.json`.
    async fn snapshot_db(&self, name: &str, extra_content: Option<&[u8]>) -> Result<()> {
        self.timed("snapshot_db", async move {
            let name = sanitize_snapshot_name(name)?;
            let target = crate::engine::files::with_suffix(
                self.path(),
                format!(".snapshot-{}-{name}", now_secs()),
            );
            self.backup_to(&target).await?;
            if let Some(extra) = extra_content {
                let json = crate::engine::files::with_suffix(&target, ".json");
                // An encrypted store's sidecar is sealed too (it opens with the
                // store's key: `RedbStore::read_snapshot_sidecar`).
                let extra = match &self.engine.cipher {
                    Some(cipher) => cipher
                        .seal_file(extra)
                        .map_err(|e| StorageError::io(&json, e))?,
                    None => extra.to_vec(),
                };
                crate::handle::blocking(move || {
                    crate::engine::files::write_private_file(&json, &extra)
                })
                .await?;
            }
            Ok(())
        })
        .await
    }

    /// `memory_bytes`: the page cache this store may use (its share of the
    /// process-wide budget — less than `cache_size_kib` when the budget was
    /// spent by other files at open, which the open logs as a warning),
    /// bounded by the file size (the cache is shared by every account of
    /// the file);
    /// `pages`: 4 KiB pages in the file; I/O: bytes read and written by this
    /// process since the file was opened.
    async fn resource_report(&self) -> StorageResourceReport {
        let file_len = std::fs::metadata(self.path()).map(|m| m.len()).unwrap_or(0);
        let cache = self.engine.cache_bytes as u64;
        StorageResourceReport {
            memory_bytes: Some(cache.min(file_len)),
            pages: Some(file_len / 4096),
            io_read_bytes: Some(self.engine.io.read_bytes.load(Ordering::Relaxed)),
            io_write_bytes: Some(self.engine.io.write_bytes.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize_snapshot_name;

    #[test]
    fn snapshot_names_are_sanitized_like_sqlite_store() {
        assert_eq!(
            sanitize_snapshot_name("../evil name/..").unwrap(),
            "_evil_name_"
        );
        assert_eq!(sanitize_snapshot_name("///").unwrap(), "___");
        assert_eq!(
            sanitize_snapshot_name("pre.flush-1").unwrap(),
            "pre.flush-1"
        );
        assert!(sanitize_snapshot_name("...").is_err());
        assert!(sanitize_snapshot_name(&"a".repeat(101)).is_err());
    }
}
