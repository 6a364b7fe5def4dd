//! `ProtocolStore`: sender-key device tracking, LID↔PN mappings, base keys,
//! device lists, group metadata, trusted-contact tokens, sent messages and
//! the pending-inbound buffer.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use wacore::store::error::Result;
use wacore::store::traits::{
    DeviceListRecord, LidPnMappingEntry, PendingInboundKey, PendingInboundRow, ProtocolStore,
    TcTokenEntry,
};

use crate::clock::now_secs;
use crate::engine::{NameRange, Tx};
use crate::error::Error;
use crate::handle::RedbStore;
use crate::tables::codec::{
    BaseKeyRow, LidMappingRow, PendingInboundRow as InboundRow, SentMessageRow, TcTokenRow, decode,
    decode_u64, encode_named, encode_row, replaceable,
};
use crate::tables::{
    BASE_KEYS, DEVICE_LISTS, DEVICES, GROUP_METADATA, LID_MAPPINGS, META, META_LID_SEQ,
    PENDING_INBOUND, PN_INDEX, SENDER_KEY_DEVICES, SENT_MESSAGES, TC_TOKENS,
};

fn lid_row(bytes: &[u8]) -> crate::error::Result<LidMappingRow> {
    decode("lid mapping", bytes)
}

fn lid_entry(lid: &str, row: LidMappingRow) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: lid.to_owned(),
        phone_number: row.phone_number,
        created_at: row.created_at,
        updated_at: row.updated_at,
        learning_source: row.learning_source,
    }
}

pub(crate) fn base_key_row(bytes: &[u8]) -> crate::error::Result<BaseKeyRow> {
    decode("base key", bytes)
}

fn tc_row(bytes: &[u8]) -> crate::error::Result<TcTokenRow> {
    decode("tc token", bytes)
}

/// Upserts LID mappings in `tx`, with SqliteStore's rules: the device record
/// must exist (SqliteStore's foreign key), an update keeps the row's
/// `created_at` and insertion position, and the phone index follows the
/// mapping. Everything is read and checked before the first write; an entry
/// sees the earlier entries of the same call for its LID.
fn put_lid_rows(
    tx: &mut Tx<'_>,
    d: i32,
    entries: &[LidPnMappingEntry],
) -> crate::error::Result<()> {
    if tx.get(DEVICES, d, |_| ())?.is_none() {
        return Err(Error::DeviceMissing { device_id: d });
    }
    let stored_seq = tx
        .get(META, META_LID_SEQ, |v| decode_u64("lid sequence", v))?
        .transpose()?
        .unwrap_or(0);
    let mut seq = stored_seq;
    // The rows as this call leaves them, in first-seen order, and the phone
    // index entries to remove (`false`) and add (`true`), in order.
    let mut rows: Vec<(&str, LidMappingRow)> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    let mut index: Vec<(bool, String, &str)> = Vec::new();
    for e in entries {
        let lid = e.lid.as_str();
        let existing = match at.get(lid) {
            Some(&i) => Some(rows[i].1.clone()),
            None => replaceable(
                LID_MAPPINGS.name,
                format_args!("device {d} lid {lid}"),
                tx.get(LID_MAPPINGS, (d, lid), lid_row)?,
            )?,
        };
        let (row_seq, created_at) = match &existing {
            Some(old) => (old.seq, old.created_at),
            None => {
                seq += 1;
                (seq, e.created_at)
            }
        };
        let old_phone = existing.map(|old| old.phone_number);
        if old_phone.as_deref() != Some(e.phone_number.as_str()) {
            if let Some(old) = old_phone {
                index.push((false, old, lid));
            }
            index.push((true, e.phone_number.clone(), lid));
        }
        let row = LidMappingRow {
            seq: row_seq,
            phone_number: e.phone_number.clone(),
            created_at,
            updated_at: e.updated_at,
            learning_source: e.learning_source.clone(),
        };
        match at.get(lid) {
            Some(&i) => rows[i].1 = row,
            None => {
                at.insert(lid, rows.len());
                rows.push((lid, row));
            }
        }
    }
    let rows: Vec<(&str, Vec<u8>)> = rows
        .into_iter()
        .map(|(lid, row)| (lid, encode_row(&row)))
        .collect();
    for (add, phone, lid) in &index {
        if *add {
            tx.check(PN_INDEX, (d, phone.as_str(), *lid), ())?;
        }
    }
    for (lid, row) in &rows {
        tx.check(LID_MAPPINGS, (d, *lid), row.as_slice())?;
    }
    let seq_bytes = seq.to_le_bytes();
    tx.check(META, META_LID_SEQ, &seq_bytes[..])?;
    // From here on only a storage failure can stop it.
    let mut t = tx.table(PN_INDEX)?;
    for (add, phone, lid) in &index {
        let key = (d, phone.as_str(), *lid);
        if *add {
            t.put(key, ())?;
        } else {
            t.remove(key)?;
        }
    }
    drop(t);
    tx.table(LID_MAPPINGS)?
        .put_all(rows.iter().map(|(lid, row)| ((d, *lid), row.as_slice())))?;
    if seq != stored_seq {
        tx.put(META, META_LID_SEQ, &seq_bytes[..])?;
    }
    Ok(())
}

#[async_trait]
impl ProtocolStore for RedbStore {
    /// In device-jid order (unspecified by the trait).
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        self.timed("get_sender_key_devices", async move {
            let under = NameRange::new(self.device_id, group_jid);
            let bounds = under.str_keys();
            let mut out = Vec::new();
            self.read(|s| {
                s.visit(SENDER_KEY_DEVICES, bounds, |(_, _, device), has_key| {
                    out.push((device.to_owned(), has_key));
                    Ok(true)
                })
            })?;
            Ok(out)
        })
        .await
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        self.timed("set_sender_key_status", async move {
            if entries.is_empty() {
                return Ok(());
            }
            let (d, group) = (self.device_id, group_jid.to_owned());
            let entries: Vec<(String, bool)> =
                entries.iter().map(|(j, k)| ((*j).to_owned(), *k)).collect();
            let weight = entries.iter().map(|(j, _)| j.len() + 1).sum();
            self.write(weight, move |tx| {
                tx.table(SENDER_KEY_DEVICES)?.put_all(
                    entries
                        .iter()
                        .map(|(device, has_key)| ((d, group.as_str(), device.as_str()), has_key)),
                )
            })
            .await
        })
        .await
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        self.timed("clear_sender_key_devices", async move {
            self.clear_sender_key_group(group_jid).await.map(drop)
        })
        .await
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        self.timed("delete_sender_key_device_rows", async move {
            if device_jids.is_empty() {
                return Ok(());
            }
            let d = self.device_id;
            let jids: HashSet<String> = device_jids.iter().map(|j| (*j).to_owned()).collect();
            self.write_scan(move |tx| {
                tx.delete_where(
                    SENDER_KEY_DEVICES,
                    SENDER_KEY_DEVICES.device(d),
                    |(_, _, device), _| jids.contains(device),
                )
                .map(drop)
            })
            .await
        })
        .await
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        self.timed("clear_all_sender_key_devices", async move {
            let d = self.device_id;
            self.write_scan(move |tx| {
                tx.delete_range(SENDER_KEY_DEVICES, SENDER_KEY_DEVICES.device(d))
                    .map(drop)
            })
            .await
        })
        .await
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        self.timed("get_lid_mapping", async move {
            let row = self.read(|s| {
                s.get(LID_MAPPINGS, (self.device_id, lid), lid_row)?
                    .transpose()
            })?;
            Ok(row.map(|row| lid_entry(lid, row)))
        })
        .await
    }

    /// The mapping with the greatest `updated_at`; on a tie, the LID whose
    /// row was inserted first (SqliteStore's rowid order).
    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        self.timed("get_pn_mapping", async move {
            let d = self.device_id;
            let under = NameRange::new(d, phone);
            let bounds = under.str_keys();
            self.read(|s| {
                let mut lids = Vec::new();
                s.visit(PN_INDEX, bounds, |(_, _, lid), ()| {
                    lids.push(lid.to_owned());
                    Ok(true)
                })?;
                let mut best: Option<(String, LidMappingRow)> = None;
                for lid in lids {
                    let Some(row) = s
                        .get(LID_MAPPINGS, (d, lid.as_str()), lid_row)?
                        .transpose()?
                    else {
                        continue;
                    };
                    if row.phone_number != phone {
                        // Left by a mapping whose old row did not decode when it
                        // was replaced (its old phone was unknown).
                        continue;
                    }
                    let better = best.as_ref().is_none_or(|(_, b)| {
                        (row.updated_at, std::cmp::Reverse(row.seq))
                            > (b.updated_at, std::cmp::Reverse(b.seq))
                    });
                    if better {
                        best = Some((lid, row));
                    }
                }
                Ok(best.map(|(lid, row)| lid_entry(&lid, row)))
            })
        })
        .await
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        self.timed("put_lid_mappings", async move {
            if entries.is_empty() {
                return Ok(());
            }
            let (d, entries) = (self.device_id, entries.to_vec());
            let weight = entries
                .iter()
                .map(|e| e.lid.len() + e.phone_number.len() + e.learning_source.len() + 16)
                .sum();
            self.write(weight, move |tx| put_lid_rows(tx, d, &entries))
                .await
        })
        .await
    }

    /// In insertion order, like SqliteStore (the client's cache warm-up
    /// resolves `created_at` ties by iteration order).
    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        self.timed("get_all_lid_mappings", async move {
            let d = self.device_id;
            self.read_blocking(move |s| {
                let mut rows = Vec::new();
                s.visit(LID_MAPPINGS, LID_MAPPINGS.device(d), |(_, lid), v| {
                    let row = lid_row(v)?;
                    rows.push((row.seq, lid_entry(lid, row)));
                    Ok(true)
                })?;
                // Insertion order, like SqliteStore's rowid order. `seq` is
                // unique, so an unstable sort gives the same order without a
                // scratch copy of the whole list (this runs on every start), and
                // dropping it collects in place.
                rows.sort_unstable_by_key(|(seq, _)| *seq);
                Ok(rows.into_iter().map(|(_, entry)| entry).collect())
            })
            .await
        })
        .await
    }

    /// Upserts the key with the time it was saved, which
    /// [`RedbStore::delete_expired_base_keys`] goes by.
    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.timed("save_base_key", async move {
            let row = encode_row(&BaseKeyRow {
                saved_at: now_secs(),
                key: base_key.to_vec(),
            });
            self.put_paired(BASE_KEYS, (address, message_id), row).await
        })
        .await
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        self.timed("has_same_base_key", async move {
            let same = self.read(|s| {
                s.get(BASE_KEYS, (self.device_id, address, message_id), |v| {
                    base_key_row(v).map(|row| row.key == current_base_key)
                })?
                .transpose()
            })?;
            Ok(same == Some(true))
        })
        .await
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.timed("delete_base_key", async move {
            let d = self.device_id;
            let (address, id) = (address.to_owned(), message_id.to_owned());
            self.write(address.len() + id.len(), move |tx| {
                tx.remove(BASE_KEYS, (d, address.as_str(), id.as_str()))
                    .map(drop)
            })
            .await
        })
        .await
    }

    /// Stores the record whole, including a `timestamp` beyond i32 (which
    /// SqliteStore truncates).
    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.update_device_lists(vec![record]).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        self.timed("update_device_lists", async move {
            if records.is_empty() {
                return Ok(());
            }
            let d = self.device_id;
            let rows = records
                .iter()
                .map(|r| Ok((r.user.clone(), encode_named(r)?)))
                .collect::<crate::error::Result<Vec<_>>>()?;
            let weight = rows.iter().map(|(u, r)| u.len() + r.len()).sum();
            self.write(weight, move |tx| {
                tx.table(DEVICE_LISTS)?.put_all(
                    rows.iter()
                        .map(|(user, row)| ((d, user.as_str()), row.as_slice())),
                )
            })
            .await
        })
        .await
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        self.timed("get_devices", async move {
            self.read(|s| {
                s.get(DEVICE_LISTS, (self.device_id, user), |v| {
                    decode::<DeviceListRecord>("device list", v)
                })?
                .transpose()
            })
        })
        .await
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.timed("delete_devices", async move {
            self.delete_named(DEVICE_LISTS, user).await
        })
        .await
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        self.timed("get_group_metadata", async move {
            self.read(|s| s.get(GROUP_METADATA, (self.device_id, group_jid), <[u8]>::to_vec))
        })
        .await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.timed("put_group_metadata", async move {
            self.put_named(GROUP_METADATA, group_jid, blob).await
        })
        .await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.timed("delete_group_metadata", async move {
            self.delete_named(GROUP_METADATA, group_jid).await
        })
        .await
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        self.timed("get_tc_token", async move {
            let row =
                self.read(|s| s.get(TC_TOKENS, (self.device_id, jid), tc_row)?.transpose())?;
            Ok(row.map(|r| TcTokenEntry {
                token: r.token,
                token_timestamp: r.token_timestamp,
                sender_timestamp: r.sender_timestamp,
            }))
        })
        .await
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        self.timed("put_tc_token", async move {
            let (d, jid) = (self.device_id, jid.to_owned());
            let row = encode_row(&TcTokenRow {
                token: entry.token.clone(),
                token_timestamp: entry.token_timestamp,
                sender_timestamp: entry.sender_timestamp,
            });
            self.write(jid.len() + row.len(), move |tx| {
                tx.put(TC_TOKENS, (d, jid.as_str()), row.as_slice())
            })
            .await
        })
        .await
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        self.timed("delete_tc_token", async move {
            self.delete_named(TC_TOKENS, jid).await
        })
        .await
    }

    /// In ascending jid order (SqliteStore's observed order).
    /// A scan of every token of the account, so it runs on a pool worker
    /// rather than the runtime thread.
    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        self.timed("get_all_tc_token_jids", async move {
            let d = self.device_id;
            self.read_blocking(move |s| {
                let mut out = Vec::new();
                s.visit(TC_TOKENS, TC_TOKENS.device(d), |(_, jid), _| {
                    out.push(jid.to_owned());
                    Ok(true)
                })?;
                Ok(out)
            })
            .await
        })
        .await
    }

    /// Deletes a row when both windows have passed: its token is empty or
    /// older than `token_cutoff`, and its sender timestamp is absent or older
    /// than `sender_cutoff` (both strict).
    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        self.timed("delete_expired_tc_tokens", async move {
            let d = self.device_id;
            self.write_scan(move |tx| {
                tx.delete_where(TC_TOKENS, TC_TOKENS.device(d), |_, v| {
                    let Ok(row) = tc_row(v) else {
                        return false; // keep what cannot be judged
                    };
                    (row.token.is_empty() || row.token_timestamp < token_cutoff)
                        && row.sender_timestamp.is_none_or(|s| s < sender_cutoff)
                })
            })
            .await
        })
        .await
    }

    /// Moves the sender timestamp forward (never back) without touching the
    /// token; creates a placeholder row if there is none. Atomic.
    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> Result<()> {
        self.timed("touch_tc_token_sender_timestamp", async move {
            let (d, jid) = (self.device_id, jid.to_owned());
            self.write(jid.len(), move |tx| {
                let key = (d, jid.as_str());
                let old = tx.get(TC_TOKENS, key, tc_row)?;
                let row =
                    match replaceable(TC_TOKENS.name, format_args!("device {d} jid {jid}"), old)? {
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
        })
        .await
    }

    /// Newer (or equal) wins; an empty stored token never blocks; the
    /// sender timestamp is kept. Atomic.
    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> Result<()> {
        self.timed("store_received_tc_token", async move {
            let (d, jid, token) = (self.device_id, jid.to_owned(), token.to_vec());
            self.write(jid.len() + token.len(), move |tx| {
                let key = (d, jid.as_str());
                let old = tx.get(TC_TOKENS, key, tc_row)?;
                let existing =
                    replaceable(TC_TOKENS.name, format_args!("device {d} jid {jid}"), old)?;
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
        })
        .await
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<()> {
        self.timed("store_sent_message", async move {
            let row = encode_row(&SentMessageRow {
                created_at: now_secs(),
                payload: payload.to_vec(),
            });
            self.put_paired(SENT_MESSAGES, (chat_jid, message_id), row)
                .await
        })
        .await
    }

    /// Returns the payload and deletes it, atomically: of concurrent takes,
    /// exactly one gets it.
    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        self.timed("take_sent_message", async move {
            let d = self.device_id;
            let (chat, id) = (chat_jid.to_owned(), message_id.to_owned());
            let row = self
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
        })
        .await
    }

    /// Deletes messages stored strictly before `cutoff_timestamp`.
    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.timed("delete_expired_sent_messages", async move {
            let d = self.device_id;
            self.write_scan(move |tx| {
                tx.delete_where(SENT_MESSAGES, SENT_MESSAGES.device(d), |_, v| {
                    decode::<SentMessageRow>("sent message", v)
                        .is_ok_and(|r| r.created_at < cutoff_timestamp)
                })
            })
            .await
        })
        .await
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> Result<()> {
        self.store_pending_inbound_batch(&[PendingInboundRow {
            chat,
            sender,
            id,
            message,
        }])
        .await
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.timed("get_pending_inbound", async move {
            let row = self.read(|s| {
                s.get(PENDING_INBOUND, (self.device_id, chat, sender, id), |v| {
                    decode::<InboundRow>("pending inbound message", v)
                })?
                .transpose()
            })?;
            Ok(row.map(|r| r.message))
        })
        .await
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.delete_pending_inbound_batch(&[PendingInboundKey { chat, sender, id }])
            .await
    }

    /// Deletes rows stored strictly before `cutoff_timestamp`.
    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.timed("delete_expired_pending_inbound", async move {
            let d = self.device_id;
            self.write_scan(move |tx| {
                tx.delete_where(PENDING_INBOUND, PENDING_INBOUND.device(d), |_, v| {
                    decode::<InboundRow>("pending inbound message", v)
                        .is_ok_and(|r| r.inserted_at < cutoff_timestamp)
                })
            })
            .await
        })
        .await
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        self.timed("store_pending_inbound_batch", async move {
            if rows.is_empty() {
                return Ok(());
            }
            let (d, now) = (self.device_id, now_secs());
            let rows: Vec<([String; 3], Vec<u8>)> = rows
                .iter()
                .map(|r| {
                    let row = InboundRow {
                        inserted_at: now,
                        message: r.message.to_vec(),
                    };
                    (
                        [r.chat.into(), r.sender.into(), r.id.into()],
                        encode_row(&row),
                    )
                })
                .collect();
            let weight = rows
                .iter()
                .map(|(k, v)| k.iter().map(String::len).sum::<usize>() + v.len())
                .sum();
            self.write(weight, move |tx| {
                tx.table(PENDING_INBOUND)?
                    .put_all(rows.iter().map(|([chat, sender, id], row)| {
                        (
                            (d, chat.as_str(), sender.as_str(), id.as_str()),
                            row.as_slice(),
                        )
                    }))
            })
            .await
        })
        .await
    }

    async fn delete_pending_inbound_batch(&self, keys: &[PendingInboundKey<'_>]) -> Result<()> {
        self.timed("delete_pending_inbound_batch", async move {
            if keys.is_empty() {
                return Ok(());
            }
            let d = self.device_id;
            let keys: Vec<[String; 3]> = keys
                .iter()
                .map(|k| [k.chat.into(), k.sender.into(), k.id.into()])
                .collect();
            let weight = keys.iter().flatten().map(String::len).sum();
            self.write(weight, move |tx| {
                let mut t = tx.table(PENDING_INBOUND)?;
                for [chat, sender, id] in &keys {
                    t.remove((d, chat.as_str(), sender.as_str(), id.as_str()))?;
                }
                Ok(())
            })
            .await
        })
        .await
    }
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
