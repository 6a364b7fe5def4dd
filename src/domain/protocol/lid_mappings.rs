//! LID ↔ phone-number mappings (`lid_mappings`, indexed by phone in `lid_mappings_by_pn`).

use std::collections::HashMap;

use wacore::store::error::Result;
use wacore::store::traits::LidPnMappingEntry;

use crate::engine::{NameRange, Tx};
use crate::error::WriteError;
use crate::handle::RedbStore;
use crate::tables::codec::{LidMappingRow, decode, decode_u64, encode_row, replaceable};
use crate::tables::{DEVICES, LID_MAPPINGS, META, META_LID_SEQ, PN_INDEX};

fn lid_row(bytes: &[u8]) -> crate::error::StorageResult<LidMappingRow> {
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

/// Upserts LID mappings in `tx`, with SqliteStore's rules: the device record
/// must exist (SqliteStore's foreign key), an update keeps the row's
/// `created_at` and insertion position, and the phone index follows the
/// mapping. Everything is read and checked before the first write; an entry
/// sees the earlier entries of the same call for its LID.
fn put_lid_rows(
    tx: &mut Tx<'_>,
    d: i32,
    entries: &[LidPnMappingEntry],
) -> std::result::Result<(), WriteError> {
    if tx.get(DEVICES, d, |_| ())?.is_none() {
        return Err(WriteError::DeviceMissing { device_id: d });
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

pub(super) async fn get_lid_mapping(
    store: &RedbStore,
    lid: &str,
) -> Result<Option<LidPnMappingEntry>> {
    let row = store.read(|s| {
        s.get(LID_MAPPINGS, (store.device_id, lid), lid_row)?
            .transpose()
    })?;
    Ok(row.map(|row| lid_entry(lid, row)))
}

/// The mapping with the greatest `updated_at`; on a tie, the LID whose
/// row was inserted first (SqliteStore's rowid order).
pub(super) async fn get_pn_mapping(
    store: &RedbStore,
    phone: &str,
) -> Result<Option<LidPnMappingEntry>> {
    let d = store.device_id;
    let under = NameRange::new(d, phone);
    let bounds = under.str_keys();
    store.read(|s| {
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
}

pub(super) async fn put_lid_mappings(
    store: &RedbStore,
    entries: &[LidPnMappingEntry],
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let (d, entries) = (store.device_id, entries.to_vec());
    let weight = entries
        .iter()
        .map(|e| e.lid.len() + e.phone_number.len() + e.learning_source.len() + 16)
        .sum();
    store
        .write(weight, move |tx| put_lid_rows(tx, d, &entries))
        .await
}

/// In insertion order, like SqliteStore (the client's cache warm-up
/// resolves `created_at` ties by iteration order).
pub(super) async fn get_all_lid_mappings(store: &RedbStore) -> Result<Vec<LidPnMappingEntry>> {
    let d = store.device_id;
    store
        .read_blocking(move |s| {
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
}
