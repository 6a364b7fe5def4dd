//! The model: one account, SqliteStore's semantics (store-contract.md).

use std::collections::{BTreeMap, HashMap};

use wacore::appstate::hash::HashState;
use wacore::store::Device;
use wacore::store::traits::{AppStateSyncKey, DeviceListRecord, LidPnMappingEntry, TcTokenEntry};

use crate::diff_util::*;

type Key3 = (String, String, String);

#[derive(Default)]
pub(crate) struct Model {
    device_id: i32,
    identities: BTreeMap<String, [u8; 32]>,
    sessions: BTreeMap<String, Vec<u8>>,
    prekeys: BTreeMap<u32, Vec<u8>>,
    signed_prekeys: BTreeMap<u32, Vec<u8>>,
    sender_keys: BTreeMap<String, Vec<u8>>,
    sync_keys: BTreeMap<Vec<u8>, AppStateSyncKey>,
    versions: BTreeMap<String, HashState>,
    macs: BTreeMap<(String, Vec<u8>), Vec<u8>>,
    /// (group, device jid) -> has key
    sender_key_devices: BTreeMap<(String, String), bool>,
    /// lid -> (insertion sequence, entry)
    lids: BTreeMap<String, (u64, LidPnMappingEntry)>,
    lid_seq: u64,
    base_keys: BTreeMap<(String, String), Vec<u8>>,
    device_lists: BTreeMap<String, DeviceListRecord>,
    group_metadata: BTreeMap<String, Vec<u8>>,
    tc_tokens: BTreeMap<String, TcTokenEntry>,
    /// (chat, id) -> (stored at, payload)
    sent: BTreeMap<(String, String), (i64, Vec<u8>)>,
    pending: BTreeMap<Key3, (i64, Vec<u8>)>,
    /// -> (secret, expires_at, message_ts)
    secrets: BTreeMap<Key3, ([u8; 32], i64, i64)>,
    /// The record, and whether it came from create() (random fields).
    device: Option<(Device, bool)>,
}

fn unit() -> Out {
    Out::ok(dbg(()))
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

fn k3(a: &str, b: &str, c: &str) -> Key3 {
    (a.to_string(), b.to_string(), c.to_string())
}

impl Model {
    pub(crate) fn new(device_id: i32) -> Model {
        Model {
            device_id,
            ..Model::default()
        }
    }

    pub(crate) fn created(&self) -> bool {
        self.device.as_ref().is_some_and(|(_, c)| *c)
    }

    fn has_user_state(&self, user: &str) -> bool {
        let (at, colon) = (format!("{user}@%"), format!("{user}:%"));
        self.sessions.keys().chain(self.identities.keys()).any(|a| {
            sql_like(at.as_bytes(), a.as_bytes()) || sql_like(colon.as_bytes(), a.as_bytes())
        })
    }

    fn put_lids(&mut self, entries: &[LidPnMappingEntry]) -> Out {
        if entries.is_empty() {
            return unit();
        }
        if self.device.is_none() {
            return Out::err("FOREIGN KEY constraint failed (model)");
        }
        for e in entries {
            match self.lids.get_mut(&e.lid) {
                Some((_, old)) => {
                    old.phone_number = e.phone_number.clone();
                    old.updated_at = e.updated_at;
                    old.learning_source = e.learning_source.clone();
                }
                None => {
                    self.lid_seq += 1;
                    self.lids.insert(e.lid.clone(), (self.lid_seq, e.clone()));
                }
            }
        }
        unit()
    }

    fn skd_group(&self, group: &str) -> Vec<(String, bool)> {
        self.sender_key_devices
            .iter()
            .filter(|((g, _), _)| g == group)
            .map(|((_, j), k)| (j.clone(), *k))
            .collect()
    }

    fn set_skd(&mut self, group: &str, entries: &[(&str, bool)]) -> Out {
        for (j, k) in entries {
            self.sender_key_devices
                .insert((group.to_string(), j.to_string()), *k);
        }
        unit()
    }

    pub(crate) fn apply(&mut self, op: &Op) -> Out {
        match op {
            Op::PutIdentity { addr, key } => {
                self.identities.insert(addr.to_string(), [*key; 32]);
                unit()
            }
            Op::PutIdentitiesBatch { items } => {
                for (a, k) in items {
                    self.identities.insert(a.to_string(), [*k; 32]);
                }
                unit()
            }
            Op::LoadIdentity { addr } => Out::ok(dbg(self.identities.get(*addr))),
            Op::DeleteIdentity { addr } => {
                self.identities.remove(*addr);
                unit()
            }
            Op::GetSession { addr } => Out::ok(dbg(self.sessions.get(*addr))),
            Op::PutSession { addr, data } => {
                self.sessions.insert(addr.to_string(), data.clone());
                unit()
            }
            Op::PutSessionsBatch { items } => {
                for (a, d) in items {
                    self.sessions.insert(a.to_string(), d.clone());
                }
                unit()
            }
            Op::DeleteSession { addr } => {
                self.sessions.remove(*addr);
                unit()
            }
            Op::HasSession { addr } => Out::ok(dbg(self.sessions.contains_key(*addr))),
            Op::HasSignalStateForUser { user } => Out::ok(dbg(self.has_user_state(user))),
            Op::StorePrekey { id, record, .. } => {
                self.prekeys.insert(*id, record.clone());
                unit()
            }
            Op::StorePrekeysBatch { keys, .. } => {
                for (i, r) in keys {
                    self.prekeys.insert(*i, r.clone());
                }
                unit()
            }
            Op::LoadPrekey { id } => Out::ok(dbg(self.prekeys.get(id))),
            Op::LoadPrekeysBatch { ids } => {
                let found: BTreeMap<u32, Vec<u8>> = ids
                    .iter()
                    .filter_map(|i| self.prekeys.get(i).map(|r| (*i, r.clone())))
                    .collect();
                let v: Vec<(u32, Vec<u8>)> = found.into_iter().collect();
                let out = Out::ok(dbg(&v));
                if ids.len() <= SQLITE_ID_CHUNK {
                    out.with_order(dbg(&v))
                } else {
                    out
                }
            }
            Op::MarkPrekeysUploaded { .. } => unit(),
            Op::RemovePrekey { id } => {
                self.prekeys.remove(id);
                unit()
            }
            Op::GetMaxPrekeyId => Out::ok(dbg(self.prekeys.keys().max().copied().unwrap_or(0))),
            Op::StoreSignedPrekey { id, record } => {
                self.signed_prekeys.insert(*id, record.clone());
                unit()
            }
            Op::LoadSignedPrekey { id } => Out::ok(dbg(self.signed_prekeys.get(id))),
            Op::LoadAllSignedPrekeys => {
                let v: Vec<(u32, Vec<u8>)> = self
                    .signed_prekeys
                    .iter()
                    .map(|(i, r)| (*i, r.clone()))
                    .collect();
                Out::ok(sorted(&v))
            }
            Op::RemoveSignedPrekey { id } => {
                self.signed_prekeys.remove(id);
                unit()
            }
            Op::PutSenderKey { addr, record } => {
                self.sender_keys.insert(addr.to_string(), record.clone());
                unit()
            }
            Op::PutSenderKeysBatch { items } => {
                for (a, r) in items {
                    self.sender_keys.insert(a.to_string(), r.clone());
                }
                unit()
            }
            Op::GetSenderKey { addr } => Out::ok(dbg(self.sender_keys.get(*addr))),
            Op::DeleteSenderKey { addr } => {
                self.sender_keys.remove(*addr);
                unit()
            }

            Op::GetSyncKey { key_id } => {
                let k = self
                    .sync_keys
                    .get(*key_id)
                    .filter(|k| k.key_data.len() == 32)
                    .cloned();
                Out::ok(canon_sync_key(&k))
            }
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
                self.sync_keys.insert(key_id.to_vec(), key);
                unit()
            }
            Op::GetVersion { name } => {
                let s = self.versions.get(*name).cloned().unwrap_or_default();
                Out::ok(canon_hash_state(&s))
            }
            Op::SetVersion {
                name,
                version,
                hash_seed,
                map,
                fatal,
            } => {
                self.versions.insert(
                    name.to_string(),
                    hash_state_of(*version, *hash_seed, map, *fatal),
                );
                unit()
            }
            Op::PutMutationMacs { name, macs, .. } => {
                for (i, v) in macs {
                    self.macs.insert((name.to_string(), i.clone()), v.clone());
                }
                unit()
            }
            Op::GetMutationMac { name, index } => {
                Out::ok(dbg(self.macs.get(&(name.to_string(), index.clone()))))
            }
            Op::GetMutationMacs { name, seeds } => {
                let mut m: HashMap<[u8; 32], Vec<u8>> = HashMap::new();
                for s in seeds {
                    if let Some(v) = self.macs.get(&(name.to_string(), vec![*s; 32])) {
                        m.insert([*s; 32], v.clone());
                    }
                }
                Out::ok(canon_macs(&m))
            }
            Op::DeleteMutationMacs { name, indexes } => {
                for i in indexes {
                    self.macs.remove(&(name.to_string(), i.clone()));
                }
                unit()
            }
            Op::ClearMutationMacs { name } => {
                self.macs.retain(|(n, _), _| n != name);
                unit()
            }
            Op::GetLatestSyncKeyId => {
                let latest = self
                    .sync_keys
                    .iter()
                    .rev()
                    .find(|(_, k)| k.key_data.len() == 32)
                    .map(|(id, _)| id.clone());
                Out::ok(dbg(latest))
            }

            Op::GetSenderKeyDevices { group } => Out::ok(sorted(&self.skd_group(group))),
            Op::SetSenderKeyStatus { group, entries } => self.set_skd(group, entries),
            Op::ClearSenderKeyDevices { group } => {
                self.sender_key_devices.retain(|(g, _), _| g != group);
                unit()
            }
            Op::DeleteSenderKeyDeviceRows { jids } => {
                self.sender_key_devices
                    .retain(|(_, j), _| !jids.contains(&j.as_str()));
                unit()
            }
            Op::ClearAllSenderKeyDevices => {
                self.sender_key_devices.clear();
                unit()
            }

            Op::GetLidMapping { lid } => {
                Out::ok(dbg(self.lids.get(*lid).map(|(_, e)| canon_lid(e))))
            }
            Op::GetPnMapping { phone } => {
                let best = self
                    .lids
                    .values()
                    .filter(|(_, e)| e.phone_number == *phone)
                    .max_by_key(|(seq, e)| (e.updated_at, std::cmp::Reverse(*seq)))
                    .map(|(_, e)| canon_lid(e));
                Out::ok(dbg(best))
            }
            Op::PutLidMapping { entry } => self.put_lids(&[entry.entry()]),
            Op::PutLidMappings { entries } => {
                let entries: Vec<LidPnMappingEntry> = entries.iter().map(LidSpec::entry).collect();
                self.put_lids(&entries)
            }
            Op::GetAllLidMappings => {
                let mut v: Vec<&(u64, LidPnMappingEntry)> = self.lids.values().collect();
                v.sort_by_key(|(seq, _)| *seq);
                let v: Vec<LidPnMappingEntry> = v.into_iter().map(|(_, e)| e.clone()).collect();
                let (set, ordered) = canon_lid_list(&v);
                Out::ok(set).with_order(ordered)
            }

            Op::SaveBaseKey { addr, msg_id, key } => {
                self.base_keys
                    .insert((addr.to_string(), msg_id.to_string()), key.clone());
                unit()
            }
            Op::HasSameBaseKey { addr, msg_id, key } => {
                let same = self.base_keys.get(&(addr.to_string(), msg_id.to_string())) == Some(key);
                Out::ok(dbg(same))
            }
            Op::DeleteBaseKey { addr, msg_id } => {
                self.base_keys
                    .remove(&(addr.to_string(), msg_id.to_string()));
                unit()
            }

            Op::UpdateDeviceList { record } => {
                self.device_lists
                    .insert(record.user.clone(), record.record());
                unit()
            }
            Op::UpdateDeviceLists { records } => {
                for r in records {
                    self.device_lists.insert(r.user.clone(), r.record());
                }
                unit()
            }
            Op::GetDevices { user } => {
                Out::ok(canon_dev_list(&self.device_lists.get(*user).cloned()))
            }
            Op::DeleteDevices { user } => {
                self.device_lists.remove(*user);
                unit()
            }

            Op::GetGroupMetadata { group } => Out::ok(dbg(self.group_metadata.get(*group))),
            Op::PutGroupMetadata { group, blob } => {
                self.group_metadata.insert(group.to_string(), blob.clone());
                unit()
            }
            Op::DeleteGroupMetadata { group } => {
                self.group_metadata.remove(*group);
                unit()
            }

            Op::GetTcToken { jid } => Out::ok(canon_tc(&self.tc_tokens.get(*jid).cloned())),
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
                self.tc_tokens.insert(jid.to_string(), entry);
                unit()
            }
            Op::DeleteTcToken { jid } => {
                self.tc_tokens.remove(*jid);
                unit()
            }
            Op::GetAllTcTokenJids => {
                let v: Vec<String> = self.tc_tokens.keys().cloned().collect();
                Out::ok(sorted(&v)).with_order(dbg(&v))
            }
            Op::DeleteExpiredTcTokens {
                token_cutoff,
                sender_cutoff,
            } => {
                let before = self.tc_tokens.len();
                self.tc_tokens.retain(|_, e| {
                    (!e.token.is_empty() && e.token_timestamp >= *token_cutoff)
                        || e.sender_timestamp.is_some_and(|s| s >= *sender_cutoff)
                });
                Out::ok(dbg((before - self.tc_tokens.len()) as u32))
            }
            Op::TouchTcToken { jid, ts } => {
                let e = self
                    .tc_tokens
                    .entry(jid.to_string())
                    .or_insert(TcTokenEntry {
                        token: Vec::new(),
                        token_timestamp: *ts,
                        sender_timestamp: Some(*ts),
                    });
                e.sender_timestamp = Some(e.sender_timestamp.map_or(*ts, |s| s.max(*ts)));
                unit()
            }
            Op::StoreReceivedTcToken { jid, token, ts } => {
                match self.tc_tokens.get_mut(*jid) {
                    Some(e) => {
                        if e.token.is_empty() || *ts >= e.token_timestamp {
                            e.token = token.clone();
                            e.token_timestamp = *ts;
                        }
                    }
                    None => {
                        let entry = TcTokenEntry {
                            token: token.clone(),
                            token_timestamp: *ts,
                            sender_timestamp: None,
                        };
                        self.tc_tokens.insert(jid.to_string(), entry);
                    }
                }
                unit()
            }

            Op::StoreSentMessage { chat, id, payload } => {
                self.sent.insert(
                    (chat.to_string(), id.to_string()),
                    (now_secs(), payload.clone()),
                );
                unit()
            }
            Op::TakeSentMessage { chat, id } => {
                let taken = self
                    .sent
                    .remove(&(chat.to_string(), id.to_string()))
                    .map(|(_, p)| p);
                Out::ok(dbg(taken))
            }
            Op::DeleteExpiredSentMessages { cutoff } => {
                let before = self.sent.len();
                self.sent.retain(|_, (t, _)| *t >= *cutoff);
                Out::ok(dbg((before - self.sent.len()) as u32))
            }
            Op::StorePendingInbound {
                chat,
                sender,
                id,
                msg,
            } => {
                self.pending
                    .insert(k3(chat, sender, id), (now_secs(), msg.clone()));
                unit()
            }
            Op::GetPendingInbound { chat, sender, id } => {
                Out::ok(dbg(self.pending.get(&k3(chat, sender, id)).map(|(_, m)| m)))
            }
            Op::DeletePendingInbound { chat, sender, id } => {
                self.pending.remove(&k3(chat, sender, id));
                unit()
            }
            Op::DeleteExpiredPendingInbound { cutoff } => {
                let before = self.pending.len();
                self.pending.retain(|_, (t, _)| *t >= *cutoff);
                Out::ok(dbg((before - self.pending.len()) as u32))
            }
            Op::StorePendingInboundBatch { rows } => {
                for (c, s, i, m) in rows {
                    self.pending.insert(k3(c, s, i), (now_secs(), m.clone()));
                }
                unit()
            }
            Op::DeletePendingInboundBatch { keys } => {
                for (c, s, i) in keys {
                    self.pending.remove(&k3(c, s, i));
                }
                unit()
            }

            Op::PutMsgSecret {
                chat,
                sender,
                id,
                secret,
            } => {
                self.put_secret(k3(chat, sender, id), [*secret; 32], 0, 0);
                unit()
            }
            Op::PutMsgSecrets { entries } => {
                for e in entries {
                    self.put_secret(
                        k3(&e.chat, &e.sender, &e.id),
                        [e.secret; 32],
                        e.expires_at,
                        e.message_ts,
                    );
                }
                Out::ok(dbg(entries.len()))
            }
            Op::GetMsgSecret { chat, sender, id } => Out::ok(dbg(self
                .secrets
                .get(&k3(chat, sender, id))
                .map(|(s, _, _)| s.to_vec()))),
            Op::GetMsgSecretWithTs { chat, sender, id } => Out::ok(dbg(self
                .secrets
                .get(&k3(chat, sender, id))
                .map(|(s, _, ts)| (s.to_vec(), *ts)))),
            Op::DeleteExpiredMsgSecrets { cutoff } => {
                let before = self.secrets.len();
                self.secrets
                    .retain(|_, (_, exp, _)| *exp == 0 || *exp > *cutoff);
                Out::ok(dbg((before - self.secrets.len()) as u32))
            }

            Op::Save { device } => {
                self.device = Some((device.build(), false));
                unit()
            }
            Op::Load => Out::ok(dbg(self
                .device
                .as_ref()
                .map(|(d, created)| canon_device(&normalized(d), *created)))),
            Op::Exists => Out::ok(dbg(self.device.is_some())),
            Op::Create => {
                if self.device.is_some() {
                    return Out::err("device exists (model)");
                }
                self.device = Some((Device::new(), true));
                Out::ok(dbg(self.device_id))
            }
            Op::SnapshotDb { name, .. } => {
                if name.starts_with("snap-") {
                    unit()
                } else {
                    Out::err("invalid snapshot name (model)")
                }
            }
            Op::ResourceReport => Out::any(),

            Op::SkdmGetRecipients { group } => {
                let v: Vec<String> = self
                    .skd_group(group)
                    .into_iter()
                    .filter(|(_, k)| *k)
                    .map(|(j, _)| j)
                    .collect();
                Out::ok(sorted(&v))
            }
            Op::SkdmAdd { group, jids } => {
                let entries: Vec<(&str, bool)> = jids.iter().map(|j| (j.as_str(), true)).collect();
                self.set_skd(group, &entries)
            }
            Op::SkdmClear { group } => {
                self.sender_key_devices.retain(|(g, _), _| g != group);
                unit()
            }
            Op::SkdmMarkForget { group, participant } => {
                self.set_skd(group, &[(participant, false)])
            }
            Op::SkdmConsume { group } => {
                let marked: Vec<String> = self
                    .skd_group(group)
                    .into_iter()
                    .filter(|(_, k)| !*k)
                    .map(|(j, _)| j)
                    .collect();
                for j in &marked {
                    self.sender_key_devices
                        .remove(&(group.to_string(), j.clone()));
                }
                Out::ok(sorted(&marked))
            }
            Op::Reopen => unit(),
        }
    }

    fn put_secret(&mut self, key: Key3, secret: [u8; 32], expires_at: i64, message_ts: i64) {
        use wacore::store::traits::{merge_msg_secret_expiry, merge_msg_secret_message_ts};
        let row = match self.secrets.get(&key) {
            Some((_, exp, ts)) => (
                secret,
                merge_msg_secret_expiry(*exp, expires_at),
                merge_msg_secret_message_ts(*ts, message_ts),
            ),
            None => (secret, expires_at, message_ts),
        };
        self.secrets.insert(key, row);
    }
}
