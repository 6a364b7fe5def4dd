//! `apply`: runs an op against any `Backend` and renders the result
//! canonically; `SkdmTracking` ops are emulated with the 0.7 trait methods
//! on stores that lack the trait.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::error::StoreError;
use wacore::store::traits::{
    AppStateSyncKey, Backend, LidPnMappingEntry, PendingInboundKey, PendingInboundRow, TcTokenEntry,
};
use whatsapp_rust_redb_storage::{RedbStore, SkdmTracking};

use super::canon::*;
use super::ops::Op;
use super::specs::{DevListSpec, LidSpec, SecretSpec};

fn out<T, F: FnOnce(T) -> String>(r: Result<T, StoreError>, f: F) -> Out {
    match r {
        Ok(v) => Out::ok(f(v)),
        Err(e) => Out::err(e.to_string()),
    }
}

/// Runs `op` against `b`. `skdm`: the `RedbStore` to run `SkdmTracking` ops
/// on; with `None` they are emulated with the 0.7 trait methods (SqliteStore
/// has no such trait). `masked`: the device record came from `create()`,
/// so `Load` hides the fields `create()` fills randomly.
pub async fn apply(b: &dyn Backend, skdm: Option<&RedbStore>, masked: bool, op: &Op) -> Out {
    match op {
        Op::PutIdentity { addr, key } => out(b.put_identity(addr, [*key; 32]).await, dbg),
        Op::PutIdentitiesBatch { items } => {
            let items: Vec<(Arc<str>, [u8; 32])> = items
                .iter()
                .map(|(a, k)| (Arc::from(*a), [*k; 32]))
                .collect();
            out(b.put_identities_batch(&items).await, dbg)
        }
        Op::LoadIdentity { addr } => out(b.load_identity(addr).await, dbg),
        Op::DeleteIdentity { addr } => out(b.delete_identity(addr).await, dbg),
        Op::GetSession { addr } => out(b.get_session(addr).await, |v| dbg(v.map(|b| b.to_vec()))),
        Op::PutSession { addr, data } => out(b.put_session(addr, data).await, dbg),
        Op::PutSessionsBatch { items } => {
            let items: Vec<(Arc<str>, Bytes)> = items
                .iter()
                .map(|(a, d)| (Arc::from(*a), Bytes::from(d.clone())))
                .collect();
            out(b.put_sessions_batch(&items).await, dbg)
        }
        Op::DeleteSession { addr } => out(b.delete_session(addr).await, dbg),
        Op::HasSession { addr } => out(b.has_session(addr).await, dbg),
        Op::HasSignalStateForUser { user } => out(b.has_signal_state_for_user(user).await, dbg),
        Op::StorePrekey {
            id,
            record,
            uploaded,
        } => out(b.store_prekey(*id, record, *uploaded).await, dbg),
        Op::StorePrekeysBatch { keys, uploaded } => {
            let keys: Vec<(u32, Bytes)> = keys
                .iter()
                .map(|(i, r)| (*i, Bytes::from(r.clone())))
                .collect();
            out(b.store_prekeys_batch(&keys, *uploaded).await, dbg)
        }
        Op::LoadPrekey { id } => out(b.load_prekey(*id).await, |v| dbg(v.map(|b| b.to_vec()))),
        // Compared as a set (contract §7). The exact list (each found id
        // once, ascending) is compared too when the input fits in one of
        // SqliteStore's 900-id query chunks: across chunks SqliteStore
        // returns an id once per chunk naming it (a documented artifact,
        // contract §2.1), RedbStore once.
        Op::LoadPrekeysBatch { ids } => match b.load_prekeys_batch(ids).await {
            Ok(v) => {
                let v: Vec<(u32, Vec<u8>)> = v.into_iter().map(|(i, r)| (i, r.to_vec())).collect();
                let set: BTreeMap<u32, Vec<u8>> = v.iter().cloned().collect();
                let set: Vec<(u32, Vec<u8>)> = set.into_iter().collect();
                let out = Out::ok(dbg(set));
                if ids.len() <= SQLITE_ID_CHUNK {
                    out.with_order(dbg(&v))
                } else {
                    out
                }
            }
            Err(e) => Out::err(e.to_string()),
        },
        Op::MarkPrekeysUploaded { ids } => out(b.mark_prekeys_uploaded(ids).await, dbg),
        Op::RemovePrekey { id } => out(b.remove_prekey(*id).await, dbg),
        Op::GetMaxPrekeyId => out(b.get_max_prekey_id().await, dbg),
        Op::StoreSignedPrekey { id, record } => out(b.store_signed_prekey(*id, record).await, dbg),
        Op::LoadSignedPrekey { id } => out(b.load_signed_prekey(*id).await, dbg),
        Op::LoadAllSignedPrekeys => out(b.load_all_signed_prekeys().await, |v| sorted(&v)),
        Op::RemoveSignedPrekey { id } => out(b.remove_signed_prekey(*id).await, dbg),
        Op::PutSenderKey { addr, record } => out(b.put_sender_key(addr, record).await, dbg),
        Op::PutSenderKeysBatch { items } => {
            let items: Vec<(Arc<str>, Bytes)> = items
                .iter()
                .map(|(a, d)| (Arc::from(*a), Bytes::from(d.clone())))
                .collect();
            out(b.put_sender_keys_batch(&items).await, dbg)
        }
        Op::GetSenderKey { addr } => out(b.get_sender_key(addr).await, dbg),
        Op::DeleteSenderKey { addr } => out(b.delete_sender_key(addr).await, dbg),

        Op::GetSyncKey { key_id } => out(b.get_sync_key(key_id).await, |k| canon_sync_key(&k)),
        Op::SetSyncKey {
            key_id,
            key_data,
            fingerprint,
            timestamp,
        } => {
            let key = AppStateSyncKey {
                key_data: key_data.clone(),
                fingerprint: fingerprint.clone(),
                timestamp: *timestamp,
            };
            out(b.set_sync_key(key_id, key).await, dbg)
        }
        Op::GetVersion { name } => out(b.get_version(name).await, |s| canon_hash_state(&s)),
        Op::SetVersion {
            name,
            version,
            hash_seed,
            map,
            fatal,
        } => {
            let state = hash_state_of(*version, *hash_seed, map, *fatal);
            out(b.set_version(name, state).await, dbg)
        }
        Op::PutMutationMacs {
            name,
            version,
            macs,
        } => {
            let macs: Vec<AppStateMutationMAC> = macs
                .iter()
                .map(|(i, v)| AppStateMutationMAC {
                    index_mac: i.clone(),
                    value_mac: v.clone(),
                })
                .collect();
            out(b.put_mutation_macs(name, *version, &macs).await, dbg)
        }
        Op::GetMutationMac { name, index } => out(b.get_mutation_mac(name, index).await, dbg),
        Op::GetMutationMacs { name, seeds } => {
            let macs: Vec<[u8; 32]> = seeds.iter().map(|s| [*s; 32]).collect();
            out(b.get_mutation_macs(name, &macs).await, |m| canon_macs(&m))
        }
        Op::DeleteMutationMacs { name, indexes } => {
            out(b.delete_mutation_macs(name, indexes).await, dbg)
        }
        Op::ClearMutationMacs { name } => out(b.clear_mutation_macs(name).await, dbg),
        Op::GetLatestSyncKeyId => out(b.get_latest_sync_key_id().await, dbg),

        Op::GetSenderKeyDevices { group } => {
            out(b.get_sender_key_devices(group).await, |v| sorted(&v))
        }
        Op::SetSenderKeyStatus { group, entries } => {
            out(b.set_sender_key_status(group, entries).await, dbg)
        }
        Op::ClearSenderKeyDevices { group } => out(b.clear_sender_key_devices(group).await, dbg),
        Op::DeleteSenderKeyDeviceRows { jids } => {
            out(b.delete_sender_key_device_rows(jids).await, dbg)
        }
        Op::ClearAllSenderKeyDevices => out(b.clear_all_sender_key_devices().await, dbg),

        Op::GetLidMapping { lid } => out(b.get_lid_mapping(lid).await, |e| {
            dbg(e.as_ref().map(canon_lid))
        }),
        Op::GetPnMapping { phone } => out(b.get_pn_mapping(phone).await, |e| {
            dbg(e.as_ref().map(canon_lid))
        }),
        Op::PutLidMapping { entry } => out(b.put_lid_mapping(&entry.entry()).await, dbg),
        Op::PutLidMappings { entries } => {
            let entries: Vec<LidPnMappingEntry> = entries.iter().map(LidSpec::entry).collect();
            out(b.put_lid_mappings(&entries).await, dbg)
        }
        Op::GetAllLidMappings => match b.get_all_lid_mappings().await {
            Ok(v) => {
                let (set, ordered) = canon_lid_list(&v);
                Out::ok(set).with_order(ordered)
            }
            Err(e) => Out::err(e.to_string()),
        },

        Op::SaveBaseKey { addr, msg_id, key } => out(b.save_base_key(addr, msg_id, key).await, dbg),
        Op::HasSameBaseKey { addr, msg_id, key } => {
            out(b.has_same_base_key(addr, msg_id, key).await, dbg)
        }
        Op::DeleteBaseKey { addr, msg_id } => out(b.delete_base_key(addr, msg_id).await, dbg),

        Op::UpdateDeviceList { record } => out(b.update_device_list(record.record()).await, dbg),
        Op::UpdateDeviceLists { records } => out(
            b.update_device_lists(records.iter().map(DevListSpec::record).collect())
                .await,
            dbg,
        ),
        Op::GetDevices { user } => out(b.get_devices(user).await, |r| canon_dev_list(&r)),
        Op::DeleteDevices { user } => out(b.delete_devices(user).await, dbg),

        Op::GetGroupMetadata { group } => out(b.get_group_metadata(group).await, dbg),
        Op::PutGroupMetadata { group, blob } => out(b.put_group_metadata(group, blob).await, dbg),
        Op::DeleteGroupMetadata { group } => out(b.delete_group_metadata(group).await, dbg),

        Op::GetTcToken { jid } => out(b.get_tc_token(jid).await, |e| canon_tc(&e)),
        Op::PutTcToken {
            jid,
            token,
            token_ts,
            sender_ts,
        } => {
            let entry = TcTokenEntry {
                token: token.clone(),
                token_timestamp: *token_ts,
                sender_timestamp: *sender_ts,
            };
            out(b.put_tc_token(jid, &entry).await, dbg)
        }
        Op::DeleteTcToken { jid } => out(b.delete_tc_token(jid).await, dbg),
        Op::GetAllTcTokenJids => match b.get_all_tc_token_jids().await {
            Ok(v) => Out::ok(sorted(&v)).with_order(dbg(&v)),
            Err(e) => Out::err(e.to_string()),
        },
        Op::DeleteExpiredTcTokens {
            token_cutoff,
            sender_cutoff,
        } => out(
            b.delete_expired_tc_tokens(*token_cutoff, *sender_cutoff)
                .await,
            dbg,
        ),
        Op::TouchTcToken { jid, ts } => out(b.touch_tc_token_sender_timestamp(jid, *ts).await, dbg),
        Op::StoreReceivedTcToken { jid, token, ts } => {
            out(b.store_received_tc_token(jid, token, *ts).await, dbg)
        }

        Op::StoreSentMessage { chat, id, payload } => {
            out(b.store_sent_message(chat, id, payload).await, dbg)
        }
        Op::TakeSentMessage { chat, id } => out(b.take_sent_message(chat, id).await, dbg),
        Op::DeleteExpiredSentMessages { cutoff } => {
            out(b.delete_expired_sent_messages(*cutoff).await, dbg)
        }

        Op::StorePendingInbound {
            chat,
            sender,
            id,
            msg,
        } => out(b.store_pending_inbound(chat, sender, id, msg).await, dbg),
        Op::GetPendingInbound { chat, sender, id } => {
            out(b.get_pending_inbound(chat, sender, id).await, dbg)
        }
        Op::DeletePendingInbound { chat, sender, id } => {
            out(b.delete_pending_inbound(chat, sender, id).await, dbg)
        }
        Op::DeleteExpiredPendingInbound { cutoff } => {
            out(b.delete_expired_pending_inbound(*cutoff).await, dbg)
        }
        Op::StorePendingInboundBatch { rows } => {
            let rows: Vec<PendingInboundRow<'_>> = rows
                .iter()
                .map(|(chat, sender, id, message)| PendingInboundRow {
                    chat,
                    sender,
                    id,
                    message,
                })
                .collect();
            out(b.store_pending_inbound_batch(&rows).await, dbg)
        }
        Op::DeletePendingInboundBatch { keys } => {
            let keys: Vec<PendingInboundKey<'_>> = keys
                .iter()
                .map(|(chat, sender, id)| PendingInboundKey { chat, sender, id })
                .collect();
            out(b.delete_pending_inbound_batch(&keys).await, dbg)
        }

        Op::PutMsgSecret {
            chat,
            sender,
            id,
            secret,
        } => out(
            b.put_msg_secret(chat, sender, id, &[*secret; 32]).await,
            dbg,
        ),
        Op::PutMsgSecrets { entries } => out(
            b.put_msg_secrets(entries.iter().map(SecretSpec::entry).collect())
                .await,
            dbg,
        ),
        Op::GetMsgSecret { chat, sender, id } => out(b.get_msg_secret(chat, sender, id).await, dbg),
        Op::GetMsgSecretWithTs { chat, sender, id } => {
            out(b.get_msg_secret_with_ts(chat, sender, id).await, dbg)
        }
        Op::DeleteExpiredMsgSecrets { cutoff } => {
            out(b.delete_expired_msg_secrets(*cutoff).await, dbg)
        }

        Op::Save { device } => out(b.save(&device.build()).await, dbg),
        Op::Load => out(b.load().await, |d| {
            dbg(d.as_ref().map(|d| canon_device(d, masked)))
        }),
        Op::Exists => out(b.exists().await, dbg),
        Op::Create => out(b.create().await, dbg),
        Op::SnapshotDb { name, extra } => out(b.snapshot_db(name, extra.as_deref()).await, dbg),
        Op::ResourceReport => {
            let r = b.resource_report().await;
            Out::ok(format!(
                "memory_bytes set: {}, pages set: {}",
                r.memory_bytes.is_some(),
                r.pages.is_some()
            ))
        }

        Op::SkdmGetRecipients { group } => match skdm {
            Some(r) => out(r.get_skdm_recipients(group).await, |v| sorted(&v)),
            None => out(b.get_sender_key_devices(group).await, |v| {
                let v: Vec<String> = v.into_iter().filter(|(_, k)| *k).map(|(j, _)| j).collect();
                sorted(&v)
            }),
        },
        Op::SkdmAdd { group, jids } => match skdm {
            Some(r) => out(r.add_skdm_recipients(group, jids).await, dbg),
            None => {
                let entries: Vec<(&str, bool)> = jids.iter().map(|j| (j.as_str(), true)).collect();
                out(b.set_sender_key_status(group, &entries).await, dbg)
            }
        },
        Op::SkdmClear { group } => match skdm {
            Some(r) => out(r.clear_skdm_recipients(group).await, dbg),
            None => out(b.clear_sender_key_devices(group).await, dbg),
        },
        Op::SkdmMarkForget { group, participant } => match skdm {
            Some(r) => out(r.mark_forget_sender_key(group, participant).await, dbg),
            None => out(
                b.set_sender_key_status(group, &[(participant, false)])
                    .await,
                dbg,
            ),
        },
        Op::SkdmConsume { group } => match skdm {
            Some(r) => out(r.consume_forget_marks(group).await, |v| sorted(&v)),
            None => out(emulated_consume(b, group).await, |v| sorted(&v)),
        },
        Op::Reopen => Out::ok(dbg(())),
    }
}

/// `consume_forget_marks` with 0.7 methods: read the group, clear it, put
/// back the devices that hold the key.
async fn emulated_consume(b: &dyn Backend, group: &str) -> Result<Vec<String>, StoreError> {
    let rows = b.get_sender_key_devices(group).await?;
    let (keep, marked): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, k)| *k);
    if marked.is_empty() {
        return Ok(Vec::new());
    }
    b.clear_sender_key_devices(group).await?;
    let keep: Vec<(&str, bool)> = keep.iter().map(|(j, k)| (j.as_str(), *k)).collect();
    b.set_sender_key_status(group, &keep).await?;
    Ok(marked.into_iter().map(|(j, _)| j).collect())
}
