//! Rows as JSON: [`RedbStore::dump`] (feature `cli`), behind `wa-redb dump`.
//! The format is documented on that method.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::ops::ControlFlow;

use redb::{Key, Value};
use serde_json::{Value as Json, json};
use wacore::appstate::hash::HashState;
use wacore::libsignal::protocol::KeyPair;
use wacore::store::Device;
use wacore::store::error::StoreError;
use wacore::store::traits::{AppStateSyncKey, DeviceListRecord};

use crate::engine::{META_CHECKPOINT_LSN, META_CHECKPOINTED_AT, META_SCHEMA_VERSION, Snapshot};
use crate::error::{FileOpError, StorageError, StorageResult};

type Result<T, E = FileOpError> = std::result::Result<T, E>;
use crate::handle::RedbStore;
use crate::ops::export::hex;
use crate::tables::codec::{
    self, BaseKeyRow, LidMappingRow, MsgSecretRow, MutationMacRow, PrekeyRow, SentMessageRow,
    TcTokenRow, decode, decode_device, decode_u32, decode_u64,
};
use crate::tables::every_row;
use crate::tables::{self, META_LID_SEQ, StoreKey};
use crate::tables::{Table, TableId, TableVisitor};

/// What [`RedbStore::dump`] emits.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DumpOptions {
    /// Only this table (a name from [`crate::ops::inspect::table_names`]); all if `None`.
    pub table: Option<String>,
    /// Only this account; every account (and the `meta` table) if `None`.
    pub device: Option<i32>,
    /// Show secrets instead of redacting them.
    pub reveal: bool,
}

impl DumpOptions {
    /// Only the table named `table` (see [`crate::ops::inspect::table_names`]).
    pub fn with_table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    /// Only the account `device`.
    pub fn with_device(mut self, device: i32) -> Self {
        self.device = Some(device);
        self
    }

    /// Secrets shown (`true`) or redacted.
    pub fn with_reveal(mut self, reveal: bool) -> Self {
        self.reveal = reveal;
        self
    }
}

/// One row, as [`RedbStore::dump`] emits it. Serializes (with serde_json)
/// to `{"table": .., "device": .., "key": [..], "value": ..}`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DumpRow {
    /// The table's name.
    pub table: &'static str,
    /// The account; `None` in the `meta` table.
    pub device: Option<i32>,
    /// The key's elements after the device id.
    pub key: Vec<Json>,
    /// The value, decoded (bytes as lowercase hex, secrets redacted
    /// unless revealed).
    pub value: Json,
}

impl RedbStore {
    /// Calls `sink` with every row selected by `options`, in table order and
    /// key order within a table, all from one snapshot, until `sink`
    /// breaks. Returns the number of rows emitted. Runs on the calling
    /// thread: a tool's operation, not for async hot paths.
    ///
    /// Every row is one [`DumpRow`], which serializes to
    /// `{"table": .., "device": .., "key": [..], "value": ..}`:
    ///
    /// - `device` is the account (device id) of the row, `null` in `meta`;
    /// - `key` holds the key's elements after the device id (strings as JSON
    ///   strings, ids as numbers, byte strings as hex);
    /// - `value` is the decoded record for structured tables (an object with
    ///   the record's fields, in alphabetical order), a hex string for opaque bytes, `{"has_key": b}`
    ///   in `sender_key_devices` and `null` in the index `lid_mappings_by_pn`.
    ///   A record that does not decode is
    ///   `{"undecodable": "<error>", "raw": "<hex>"}`.
    ///
    /// **Bytes are lowercase hex** throughout (keys and values).
    ///
    /// **Secrets are redacted** unless [`DumpOptions::reveal`]: a redacted
    /// value is the string `"<redacted N bytes>"` (never valid hex, so a script
    /// can tell). Redacted: the private halves of the device key pairs,
    /// `adv_secret_key` and `nct_salt` of the device record, session records,
    /// sender keys, pre-key and signed pre-key records, app-state sync
    /// `key_data`, message secrets, tc tokens, and message contents
    /// (`sent_messages.payload`, `pending_inbound.message`). Public keys,
    /// MACs, JIDs and timestamps are shown.
    pub fn dump(
        &self,
        options: &DumpOptions,
        sink: &mut dyn FnMut(DumpRow) -> ControlFlow<()>,
    ) -> Result<u64, StoreError> {
        let table = match &options.table {
            None => None,
            Some(name) => {
                Some(
                    TableId::from_name(name).ok_or_else(|| FileOpError::UnknownTable {
                        name: name.clone(),
                        known: crate::ops::inspect::table_names(),
                    })?,
                )
            }
        };
        self.read(|s| {
            let mut visitor = Dump {
                snapshot: s,
                device: options.device,
                reveal: options.reveal,
                sink,
                rows: 0,
                stopped: false,
            };
            match table {
                Some(t) => t.visit(&mut visitor)?,
                None => tables::visit_all(&mut visitor)?,
            }
            Ok(visitor.rows)
        })
    }
}

struct Dump<'a, 'b> {
    snapshot: &'a Snapshot<'b>,
    device: Option<i32>,
    reveal: bool,
    sink: &'a mut dyn FnMut(DumpRow) -> ControlFlow<()>,
    rows: u64,
    stopped: bool,
}

impl TableVisitor for Dump<'_, '_> {
    type Error = StorageError;

    fn visit<K: StoreKey, V: Value + 'static>(
        &mut self,
        id: TableId,
        table: Table<K, V>,
    ) -> StorageResult<()> {
        if self.stopped {
            return Ok(());
        }
        let bounds = match self.device {
            Some(d) => match K::device_range(d) {
                Some(bounds) => bounds,
                None => return Ok(()), // meta: no account
            },
            None => every_row::<K>(),
        };
        let reveal = self.reveal;
        self.snapshot.visit(table, bounds, |k, v| {
            let device = K::device_of(&k);
            let key = key_json::<K>(K::as_bytes(&k).as_ref());
            let value = value_json::<V>(id, &key, V::as_bytes(&v).as_ref(), reveal);
            self.rows += 1;
            let row = DumpRow {
                table: id.name(),
                device,
                key,
                value,
            };
            if (self.sink)(row).is_break() {
                self.stopped = true;
                return Ok(false);
            }
            Ok(true)
        })
    }
}

fn secret(bytes: &[u8], reveal: bool) -> Json {
    if reveal {
        Json::String(hex(bytes))
    } else {
        Json::String(format!("<redacted {} bytes>", bytes.len()))
    }
}

/// The elements of a key after its device id. Keys are decoded by their
/// type, not by table, so a new table with a known key type needs nothing
/// here; an unknown key type falls back to the hex of its encoding.
fn key_json<K: Key + 'static>(bytes: &[u8]) -> Vec<Json> {
    type S = &'static str;
    type B = &'static [u8];
    fn is<K: 'static, T: 'static>() -> bool {
        TypeId::of::<K>() == TypeId::of::<T>()
    }
    let s = |x: &str| Json::String(x.to_owned());
    let b = |x: &[u8]| Json::String(hex(x));
    if is::<K, S>() {
        vec![s(<S as Value>::from_bytes(bytes))]
    } else if is::<K, i32>() {
        vec![]
    } else if is::<K, (i32, S)>() {
        let (_, a) = <(i32, S) as Value>::from_bytes(bytes);
        vec![s(a)]
    } else if is::<K, (i32, u32)>() {
        let (_, a) = <(i32, u32) as Value>::from_bytes(bytes);
        vec![json!(a)]
    } else if is::<K, (i32, B)>() {
        let (_, a) = <(i32, B) as Value>::from_bytes(bytes);
        vec![b(a)]
    } else if is::<K, (i32, S, S)>() {
        let (_, x, y) = <(i32, S, S) as Value>::from_bytes(bytes);
        vec![s(x), s(y)]
    } else if is::<K, (i32, S, B)>() {
        let (_, x, y) = <(i32, S, B) as Value>::from_bytes(bytes);
        vec![s(x), b(y)]
    } else if is::<K, (i32, S, S, S)>() {
        let (_, x, y, z) = <(i32, S, S, S) as Value>::from_bytes(bytes);
        vec![s(x), s(y), s(z)]
    } else {
        vec![json!({ "encoded": hex(bytes) })]
    }
}

/// A row's value. `key` is the already rendered key (the meta table's
/// values depend on it).
fn value_json<V: Value + 'static>(
    table: TableId,
    key: &[Json],
    bytes: &[u8],
    reveal: bool,
) -> Json {
    if TypeId::of::<V>() == TypeId::of::<()>() {
        return Json::Null;
    }
    if TypeId::of::<V>() == TypeId::of::<bool>() {
        return json!({ "has_key": <bool as Value>::from_bytes(bytes) });
    }
    match record_json(table, key, bytes, reveal) {
        Ok(v) => v,
        Err(e) => json!({
            "undecodable": e.to_string(),
            "raw": if is_secret_table(table) { secret(bytes, reveal) } else { Json::String(hex(bytes)) },
        }),
    }
}

/// Tables whose whole value is a secret.
fn is_secret_table(table: TableId) -> bool {
    matches!(
        table,
        TableId::SESSIONS
            | TableId::SENDER_KEYS
            | TableId::PREKEYS
            | TableId::SIGNED_PREKEYS
            | TableId::SYNC_KEYS
            | TableId::MSG_SECRETS
            | TableId::TC_TOKENS
            | TableId::DEVICES
            | TableId::SENT_MESSAGES
            | TableId::PENDING_INBOUND
    )
}

/// Decodes a bytes value by its table's encoding (see `codec.rs`).
fn record_json(table: TableId, key: &[Json], bytes: &[u8], reveal: bool) -> Result<Json> {
    let what = table.name();
    Ok(match table {
        TableId::META => meta_json(key.first().and_then(Json::as_str), bytes)?,
        TableId::DEVICES => device_json(&decode_device(bytes)?, reveal),
        TableId::SESSIONS
        | TableId::SENDER_KEYS
        | TableId::SIGNED_PREKEYS
        | TableId::IDENTITIES
        | TableId::GROUP_METADATA => {
            if is_secret_table(table) {
                secret(bytes, reveal)
            } else {
                Json::String(hex(bytes))
            }
        }
        TableId::BASE_KEYS => {
            let row: BaseKeyRow = decode(what, bytes)?;
            json!({ "saved_at": row.saved_at, "key": hex(&row.key) })
        }
        TableId::PREKEYS => {
            let row: PrekeyRow = decode(what, bytes)?;
            json!({ "uploaded": row.uploaded, "record": secret(&row.record, reveal) })
        }
        TableId::SYNC_KEYS => {
            let k: AppStateSyncKey = decode(what, bytes)?;
            json!({
                "key_data": secret(&k.key_data, reveal),
                "fingerprint": hex(&k.fingerprint),
                "timestamp": k.timestamp,
            })
        }
        TableId::APP_STATE_VERSIONS => {
            let h: HashState = decode(what, bytes)?;
            let map: BTreeMap<&String, String> =
                h.index_value_map.iter().map(|(k, v)| (k, hex(v))).collect();
            json!({
                "version": h.version,
                "hash": hex(&h.hash),
                "index_value_map": map,
                "mac_mismatch_fatal": h.mac_mismatch_fatal,
            })
        }
        TableId::MUTATION_MACS => {
            let row: MutationMacRow = decode(what, bytes)?;
            json!({ "version": row.version, "value_mac": hex(&row.value_mac) })
        }
        TableId::LID_MAPPINGS => {
            let row: LidMappingRow = decode(what, bytes)?;
            json!({
                "seq": row.seq,
                "phone_number": row.phone_number,
                "created_at": row.created_at,
                "updated_at": row.updated_at,
                "learning_source": row.learning_source,
            })
        }
        TableId::DEVICE_LISTS => {
            let r: DeviceListRecord = decode(what, bytes)?;
            serde_json::to_value(&r).map_err(|e| StorageError::decode(what, e))?
        }
        TableId::TC_TOKENS => {
            let row: TcTokenRow = decode(what, bytes)?;
            json!({
                "token": secret(&row.token, reveal),
                "token_timestamp": row.token_timestamp,
                "sender_timestamp": row.sender_timestamp,
            })
        }
        TableId::SENT_MESSAGES => {
            let row: SentMessageRow = decode(what, bytes)?;
            json!({ "created_at": row.created_at, "payload": secret(&row.payload, reveal) })
        }
        TableId::PENDING_INBOUND => {
            let row: codec::PendingInboundRow = decode(what, bytes)?;
            json!({ "inserted_at": row.inserted_at, "message": secret(&row.message, reveal) })
        }
        TableId::MSG_SECRETS => {
            let row: MsgSecretRow = decode(what, bytes)?;
            json!({
                "secret": secret(&row.secret[..], reveal),
                "expires_at": row.expires_at,
                "message_ts": row.message_ts,
            })
        }
        // Values that are not bytes are rendered by `value_json`.
        TableId::SENDER_KEY_DEVICES | TableId::PN_INDEX => Json::String(hex(bytes)),
    })
}

fn meta_json(name: Option<&str>, bytes: &[u8]) -> Result<Json> {
    Ok(match name {
        Some(META_SCHEMA_VERSION) => json!(decode_u32("schema version", bytes)?),
        Some(META_CHECKPOINT_LSN) => json!(decode_u64("checkpoint lsn", bytes)?),
        Some(META_LID_SEQ) => json!(decode_u64("lid sequence", bytes)?),
        Some(META_CHECKPOINTED_AT) => json!(decode_u64("checkpoint time", bytes)? as i64),
        _ => match std::str::from_utf8(bytes) {
            // `created_by` is text; `file_id` and anything else is bytes.
            Ok(text) if !text.is_empty() && !text.chars().any(char::is_control) => json!(text),
            _ => Json::String(hex(bytes)),
        },
    })
}

fn key_pair_json(k: &KeyPair, reveal: bool) -> Json {
    json!({
        "public": hex(k.public_key.public_key_bytes()),
        "private": secret(&k.private_key.serialize()[..], reveal),
    })
}

fn device_json(d: &Device, reveal: bool) -> Json {
    let opt_hex = |b: &Option<Vec<u8>>| b.as_deref().map(hex);
    json!({
        "pn": d.pn.as_ref().map(|j| j.to_string()),
        "lid": d.lid.as_ref().map(|j| j.to_string()),
        "registration_id": d.registration_id,
        "noise_key": key_pair_json(&d.noise_key, reveal),
        "identity_key": key_pair_json(&d.identity_key, reveal),
        "signed_pre_key": key_pair_json(&d.signed_pre_key, reveal),
        "signed_pre_key_id": d.signed_pre_key_id,
        "signed_pre_key_signature": hex(&d.signed_pre_key_signature),
        "adv_secret_key": secret(&d.adv_secret_key, reveal),
        "account": d.account.as_ref().map(|a| json!({
            "details": opt_hex(&a.details),
            "account_signature_key": opt_hex(&a.account_signature_key),
            "account_signature": opt_hex(&a.account_signature),
            "device_signature": opt_hex(&a.device_signature),
        })),
        "push_name": d.push_name,
        "app_version_primary": d.app_version_primary,
        "app_version_secondary": d.app_version_secondary,
        "app_version_tertiary": d.app_version_tertiary,
        "app_version_last_fetched_ms": d.app_version_last_fetched_ms,
        "edge_routing_info": opt_hex(&d.edge_routing_info),
        "props_hash": d.props_hash,
        "next_pre_key_id": d.next_pre_key_id,
        "first_unupload_pre_key_id": d.first_unupload_pre_key_id,
        "server_has_prekeys": d.server_has_prekeys,
        "nct_salt": d.nct_salt.as_deref().map(|s| secret(s, reveal)),
        "server_cert_chain": d.server_cert_chain.as_ref().map(|c| json!({
            "intermediate": {
                "key": hex(&c.intermediate.key),
                "not_before": c.intermediate.not_before,
                "not_after": c.intermediate.not_after,
            },
            "leaf": {
                "key": hex(&c.leaf.key),
                "not_before": c.leaf.not_before,
                "not_after": c.leaf.not_after,
            },
        })),
        "login_counter": d.login_counter,
        "lid_migrated": d.lid_migrated,
        "last_signed_pre_key_rotation_ms": d.last_signed_pre_key_rotation_ms,
        "read_receipts_disabled": d.read_receipts_disabled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table's key type is one `key_json` knows.
    #[test]
    fn every_key_type_is_rendered() {
        struct Probe(Vec<&'static str>);
        impl TableVisitor for Probe {
            type Error = StorageError;

            fn visit<K: StoreKey, V: Value + 'static>(
                &mut self,
                id: TableId,
                _: Table<K, V>,
            ) -> StorageResult<()> {
                let known = [
                    TypeId::of::<&'static str>(),
                    TypeId::of::<i32>(),
                    TypeId::of::<(i32, &'static str)>(),
                    TypeId::of::<(i32, u32)>(),
                    TypeId::of::<(i32, &'static [u8])>(),
                    TypeId::of::<(i32, &'static str, &'static str)>(),
                    TypeId::of::<(i32, &'static str, &'static [u8])>(),
                    TypeId::of::<(i32, &'static str, &'static str, &'static str)>(),
                ];
                if !known.contains(&TypeId::of::<K>()) {
                    self.0.push(id.name());
                }
                Ok(())
            }
        }
        let mut p = Probe(Vec::new());
        tables::visit_all(&mut p).unwrap();
        assert!(p.0.is_empty(), "key types not rendered: {:?}", p.0);
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0xAB, 0x7f]), "00ab7f");
    }
}
