//! Value encodings.
//!
//! Opaque blobs (sessions, sender keys, payloads...) are stored as the
//! caller's bytes, unchanged. Everything structured is an *envelope*: one
//! format byte followed by MessagePack.
//!
//! - Rows we own (the `*Row` structs below) are MessagePack arrays, fields in
//!   declaration order. A field added later goes at the end with
//!   `#[serde(default)]`, so records written before it still decode.
//! - wacore's own structs (`Device`, `HashState`, `AppStateSyncKey`,
//!   `DeviceListRecord`) are MessagePack maps keyed by field name, because
//!   wacore, not us, decides their field order; it marks new fields
//!   `#[serde(default)]`, and unknown names are skipped on decode.
//!
//! Decoding never panics: a malformed record is a [`StorageError::Decode`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use wacore::store::Device;

use crate::error::{StorageError, StorageResult as Result};

/// Format byte of a MessagePack envelope.
const FORMAT_MSGPACK: u8 = 1;

/// Encodes one of our rows (positional MessagePack).
pub(crate) fn encode_row<T: Serialize>(row: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_MSGPACK];
    // Writing into a Vec cannot fail, and our rows contain no maps with
    // non-string keys; an error here is a programming error.
    rmp_serde::encode::write(&mut out, row).expect("encoding a row into memory cannot fail");
    out
}

/// Encodes one of wacore's structs (MessagePack map, named fields).
pub(crate) fn encode_named<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut out = vec![FORMAT_MSGPACK];
    rmp_serde::encode::write_named(&mut out, value)
        .map_err(|e| StorageError::decode(std::any::type_name::<T>(), e))?;
    Ok(out)
}

/// Decodes an envelope written by [`encode_row`] or [`encode_named`].
pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&FORMAT_MSGPACK, body)) => {
            rmp_serde::from_slice(body).map_err(|e| StorageError::decode(what, e))
        }
        Some((format, _)) => Err(StorageError::decode(
            what,
            format!("unknown encoding format {format}"),
        )),
        None => Err(StorageError::decode(what, "empty record")),
    }
}

/// A one-time pre-key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PrekeyRow {
    pub uploaded: bool,
    #[serde(with = "serde_bytes")]
    pub record: Vec<u8>,
}

/// An app-state mutation MAC. `version` is kept (SqliteStore keeps it too)
/// although the trait never returns it: exporting back needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MutationMacRow {
    pub version: u64,
    #[serde(with = "serde_bytes")]
    pub value_mac: Vec<u8>,
}

/// A LID -> phone mapping. `seq` is the insertion order, kept across
/// updates, which decides `get_pn_mapping` ties like SQLite's rowid does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LidMappingRow {
    pub seq: u64,
    pub phone_number: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub learning_source: String,
}

/// A trusted-contact token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TcTokenRow {
    #[serde(with = "serde_bytes")]
    pub token: Vec<u8>,
    pub token_timestamp: i64,
    pub sender_timestamp: Option<i64>,
}

/// A sent message kept for retries. `created_at` is unix seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SentMessageRow {
    pub created_at: i64,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// A base key (retry collision detection). `saved_at` is unix seconds:
/// when it was last saved, or, for rows of schema version 1 (which kept the
/// bare key), when the file was migrated to version 2.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BaseKeyRow {
    pub saved_at: i64,
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
}

/// A buffered inbound message. `inserted_at` is unix seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingInboundRow {
    pub inserted_at: i64,
    #[serde(with = "serde_bytes")]
    pub message: Vec<u8>,
}

/// A message secret. `expires_at == 0` never expires; `message_ts == 0` is
/// unknown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MsgSecretRow {
    pub secret: serde_bytes::ByteArray<32>,
    pub expires_at: i64,
    pub message_ts: i64,
}

impl MsgSecretRow {
    /// The longest encoding of a row (both numbers at their widest), which
    /// bounds any merge of two rows.
    pub fn largest_encoding() -> usize {
        static LEN: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *LEN.get_or_init(|| {
            encode_row(&MsgSecretRow {
                secret: [0xff; 32].into(),
                expires_at: i64::MIN,
                message_ts: i64::MIN,
            })
            .len()
        })
    }
}

/// Encodes the device record.
pub(crate) fn encode_device(device: &Device) -> Result<Vec<u8>> {
    encode_named(device)
}

/// Decodes the device record, normalising the fields wacore does not
/// serialize exactly as SqliteStore returns them: `device_props` is the
/// library default `DEVICE_PROPS` (serde's skip would leave an empty one),
/// `client_profile` is `ClientProfile::web()`, `nct_salt_sync_seen` false.
pub(crate) fn decode_device(bytes: &[u8]) -> Result<Device> {
    let mut device: Device = decode("device record", bytes)?;
    device.device_props = std::sync::Arc::new(wacore::store::device::DEVICE_PROPS.clone());
    device.client_profile = wacore::client_profile::ClientProfile::web();
    device.nct_salt_sync_seen = false;
    Ok(device)
}

/// Little-endian u64 stored in the meta table.
pub(crate) fn decode_u64(what: &'static str, bytes: &[u8]) -> Result<u64> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| {
        StorageError::decode(what, format!("expected 8 bytes, found {}", bytes.len()))
    })?;
    Ok(u64::from_le_bytes(arr))
}

/// Little-endian u32 stored in the meta table.
#[cfg(feature = "cli")]
pub(crate) fn decode_u32(what: &'static str, bytes: &[u8]) -> Result<u32> {
    let arr: [u8; 4] = bytes.try_into().map_err(|_| {
        StorageError::decode(what, format!("expected 4 bytes, found {}", bytes.len()))
    })?;
    Ok(u32::from_le_bytes(arr))
}

/// The decoded old row of a key about to be overwritten. A row that no
/// longer decodes (bit rot, a bug of an old version) counts as absent, with
/// a warning naming `table` and `key`: the upsert replaces it, as
/// SqliteStore overwrites its columns, rather than failing every later
/// write of that key. Reads of it still report the damage.
pub(crate) fn replaceable<T>(
    table: &str,
    key: impl std::fmt::Display,
    old: Option<Result<T>>,
) -> Result<Option<T>> {
    match old {
        Some(Err(StorageError::Decode { detail, .. })) => {
            log::warn!("{table}: replacing the row of {key}, which no longer decodes ({detail})");
            Ok(None)
        }
        other => other.transpose(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound a message-secret merge is checked against holds for every
    /// width of its numbers.
    #[test]
    fn no_msg_secret_row_is_longer_than_its_largest_encoding() {
        for n in [0, 1, -1, 127, 128, -33, i32::MAX as i64, i64::MAX, i64::MIN] {
            let row = MsgSecretRow {
                secret: [0xff; 32].into(),
                expires_at: n,
                message_ts: n.wrapping_neg(),
            };
            assert!(
                encode_row(&row).len() <= MsgSecretRow::largest_encoding(),
                "{n}"
            );
        }
    }

    #[derive(Serialize, Deserialize)]
    struct V1 {
        a: i64,
        #[serde(with = "serde_bytes")]
        b: Vec<u8>,
    }

    #[derive(Serialize, Deserialize)]
    struct V2 {
        a: i64,
        #[serde(with = "serde_bytes")]
        b: Vec<u8>,
        #[serde(default)]
        c: Option<String>,
    }

    #[test]
    fn rows_written_before_a_field_was_added_still_decode() {
        let old = encode_row(&V1 {
            a: -7,
            b: vec![1, 2, 3],
        });
        let new: V2 = decode("v2", &old).unwrap();
        assert_eq!((new.a, new.b, new.c), (-7, vec![1, 2, 3], None));
    }

    #[test]
    fn byte_fields_are_stored_compactly() {
        let row = SentMessageRow {
            created_at: 1_700_000_000,
            payload: vec![0xAB; 1000],
        };
        let encoded = encode_row(&row);
        // format byte + array header + i64 + bin16 header + payload
        assert!(encoded.len() <= 1000 + 16, "{}", encoded.len());
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        for bad in [
            &[][..],
            &[9, 1, 2][..],
            &[1][..],
            &[1, 0xc1][..],
            &[1, 0x92, 0x01][..],
        ] {
            assert!(decode::<SentMessageRow>("sent message", bad).is_err());
        }
    }
}
