//! Device isolation: several accounts (device ids, including the extremes
//! i32::MIN, -1, 0 and i32::MAX and their neighbours) in one RedbStore file
//! never see each other's rows.
//!
//! Random operations (the differential test's generator) go to random
//! devices; each device has its own in-memory model of SqliteStore's
//! semantics. Every result is compared with the acting device's model, and
//! after every operation that removes rows (deletes, clears, sweeps, takes)
//! every *other* device is read completely and compared with its model, so
//! a delete, clear or sweep on one account that touched another is caught.
//! A fixed phase then fills every device with device-specific values, wipes
//! one device with every destructive operation at its widest, and checks
//! the others; finally the file is closed, reopened and checked again.
//!
//! Handles are made both ways: `store.for_device(id)` and a second
//! `RedbStore::new_for_device(path, id)` on the same file.
//!
//! Knobs: `WA_REDB_ISO_CASES` (default 6), `WA_REDB_ISO_OPS` (default 600),
//! `WA_REDB_ISO_SEED`.

#[path = "common/diff_util.rs"]
mod diff_util;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use diff_util::*;
use wacore::appstate::hash::HashState;
use wacore::store::Device;
use wacore::store::traits::{AppStateSyncKey, DeviceListRecord, LidPnMappingEntry, TcTokenEntry};
use whatsapp_rust_redb_storage::RedbStore;

const DEFAULT_CASES: u64 = 6;
const DEFAULT_OPS: usize = 600;
const DEFAULT_SEED: u64 = 0x150_1A7E;

/// Device ids the cases draw from: the extremes and their neighbours.
const ID_POOL: &[i32] = &[
    i32::MIN,
    i32::MIN + 1,
    -2,
    -1,
    0,
    1,
    2,
    i32::MAX - 1,
    i32::MAX,
];

/// The first cases use these (adjacent ids: off-by-one range bugs); later
/// cases draw three distinct ids from `ID_POOL`.
const FIXED_ID_SETS: &[&[i32]] = &[
    &[i32::MIN, i32::MIN + 1, i32::MAX],
    &[-1, 0, 1],
    &[i32::MAX - 1, i32::MAX, -1],
    &[0, i32::MIN, i32::MAX, -1],
];

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

// ---------------------------------------------------------------------------
// The model: one account, SqliteStore's semantics (store-contract.md)
// ---------------------------------------------------------------------------

type Key3 = (String, String, String);

#[derive(Default)]
struct Model {
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
    fn new(device_id: i32) -> Model {
        Model {
            device_id,
            ..Model::default()
        }
    }

    fn created(&self) -> bool {
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

    fn apply(&mut self, op: &Op) -> Out {
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

// ---------------------------------------------------------------------------
// Full reads
// ---------------------------------------------------------------------------

/// Every non-destructive read over the key pools (plus the ones the fill
/// phase uses).
fn full_reads() -> Vec<Op> {
    let mut ops = vec![
        Op::GetMaxPrekeyId,
        Op::LoadAllSignedPrekeys,
        Op::GetLatestSyncKeyId,
        Op::GetAllLidMappings,
        Op::GetAllTcTokenJids,
        Op::Load,
        Op::Exists,
        Op::LoadPrekeysBatch {
            ids: PREKEY_IDS.to_vec(),
        },
    ];
    for &addr in ADDRS {
        ops.push(Op::LoadIdentity { addr });
        ops.push(Op::GetSession { addr });
        ops.push(Op::HasSession { addr });
    }
    for &user in USERS {
        ops.push(Op::HasSignalStateForUser { user });
    }
    for &id in PREKEY_IDS {
        ops.push(Op::LoadPrekey { id });
    }
    for &id in SIGNED_IDS {
        ops.push(Op::LoadSignedPrekey { id });
    }
    for &addr in SENDER_KEY_ADDRS {
        ops.push(Op::GetSenderKey { addr });
    }
    for &key_id in SYNC_KEY_IDS {
        ops.push(Op::GetSyncKey { key_id });
    }
    for &name in APP_NAMES {
        ops.push(Op::GetVersion { name });
        ops.push(Op::GetMutationMacs {
            name,
            seeds: MAC_SEEDS.to_vec(),
        });
        for &odd in ODD_MACS {
            ops.push(Op::GetMutationMac {
                name,
                index: odd.to_vec(),
            });
        }
    }
    for &group in GROUPS {
        ops.push(Op::GetSenderKeyDevices { group });
        ops.push(Op::GetGroupMetadata { group });
    }
    for &lid in LIDS {
        ops.push(Op::GetLidMapping { lid });
    }
    for &phone in PHONES {
        ops.push(Op::GetPnMapping { phone });
    }
    for &addr in &ADDRS[..3] {
        for &msg_id in MSG_IDS {
            for key in [vec![], vec![1], vec![2], vec![1, 2], vec![9]] {
                ops.push(Op::HasSameBaseKey { addr, msg_id, key });
            }
        }
    }
    for &user in DL_USERS {
        ops.push(Op::GetDevices { user });
    }
    for &jid in TC_JIDS {
        ops.push(Op::GetTcToken { jid });
    }
    for &chat in CHATS {
        for &sender in SENDERS {
            for &id in MSG_IDS {
                ops.push(Op::GetPendingInbound { chat, sender, id });
                ops.push(Op::GetMsgSecretWithTs { chat, sender, id });
            }
        }
    }
    ops
}

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

struct World {
    path: PathBuf,
    ids: Vec<i32>,
    handles: Vec<RedbStore>,
    models: Vec<Model>,
    /// Context for failure messages.
    label: String,
    log: Vec<String>,
}

/// Handles for `ids` on the file at `path`: even positions via
/// `for_device` on the first handle, odd ones via their own
/// `new_for_device`.
async fn open_handles(path: &Path, ids: &[i32]) -> Vec<RedbStore> {
    let first = RedbStore::new_for_device(path, ids[0])
        .await
        .expect("open store");
    let mut handles = vec![first];
    for (i, &id) in ids.iter().enumerate().skip(1) {
        let h = if i % 2 == 0 {
            handles[0].for_device(id)
        } else {
            RedbStore::new_for_device(path, id)
                .await
                .expect("open second handle")
        };
        handles.push(h);
    }
    handles
}

impl World {
    fn fail(&self, what: &str, dev: usize, op: &Op, store: &Out, model: &Out) -> ! {
        let tail: Vec<&String> = self.log.iter().rev().take(25).collect();
        let tail: String = tail
            .into_iter()
            .rev()
            .map(|l| format!("    {l}\n"))
            .collect();
        panic!(
            "{}: {what}\n  device #{dev} (id {}), op: {op:?}\n  RedbStore: {store:?}\n  model:     {model:?}\n  last ops:\n{tail}",
            self.label, self.ids[dev]
        );
    }

    /// Runs `op` on device `dev` and compares with its model.
    async fn step(&mut self, dev: usize, op: &Op) {
        self.log.push(format!(
            "#{} dev {dev} (id {}): {op:?}",
            self.log.len(),
            self.ids[dev]
        ));
        if let Op::Reopen = op {
            self.reopen().await;
            return;
        }
        let h = &self.handles[dev];
        let store = apply(h, Some(h), self.models[dev].created(), op).await;
        let model = self.models[dev].apply(op);
        if let Some(kind) = difference(&store, &model) {
            self.fail(kind, dev, op, &store, &model);
        }
    }

    /// Reads everything of device `dev` and compares with its model.
    async fn check_device(&mut self, dev: usize, after: &str) {
        let h = &self.handles[dev];
        let created = self.models[dev].created();
        for op in full_reads() {
            let store = apply(h, Some(h), created, &op).await;
            let model = self.models[dev].apply(&op);
            if let Some(kind) = difference(&store, &model) {
                self.fail(
                    &format!("full read after {after}: {kind}"),
                    dev,
                    &op,
                    &store,
                    &model,
                );
            }
        }
        // Sent messages have no plain read: take each, then put it back.
        for &chat in CHATS {
            for &id in MSG_IDS {
                let op = Op::TakeSentMessage { chat, id };
                let store = apply(h, Some(h), created, &op).await;
                let model = self.models[dev].apply(&op);
                if let Some(kind) = difference(&store, &model) {
                    self.fail(
                        &format!("full read after {after}: {kind}"),
                        dev,
                        &op,
                        &store,
                        &model,
                    );
                }
                if let Ok(s) = &store.res
                    && s != "None"
                {
                    // Re-store the payload the model had.
                    let payload: Vec<u8> = parse_some_bytes(s);
                    let restore = Op::StoreSentMessage { chat, id, payload };
                    apply(h, Some(h), created, &restore).await;
                    self.models[dev].apply(&restore);
                }
            }
        }
    }

    async fn check_all_but(&mut self, skip: Option<usize>, after: &str) {
        for dev in 0..self.ids.len() {
            if Some(dev) != skip {
                self.check_device(dev, after).await;
            }
        }
    }

    async fn reopen(&mut self) {
        let mut handles = std::mem::take(&mut self.handles);
        let last = handles.pop().expect("handles");
        drop(handles);
        last.close().await.expect("close");
        self.handles = open_handles(&self.path, &self.ids).await;
    }
}

/// Parses `Some([1, 2])` (the rendering of an `Option<Vec<u8>>`).
fn parse_some_bytes(s: &str) -> Vec<u8> {
    let inner = s
        .strip_prefix("Some([")
        .and_then(|r| r.strip_suffix("])"))
        .unwrap_or_else(|| panic!("not Some([..]): {s}"));
    inner
        .split(", ")
        .filter(|x| !x.is_empty())
        .map(|x| x.parse().expect("byte"))
        .collect()
}

fn case_ids(case_no: u64, rng: &mut Rng) -> Vec<i32> {
    if let Some(ids) = FIXED_ID_SETS.get(case_no as usize) {
        return ids.to_vec();
    }
    let mut ids: Vec<i32> = Vec::new();
    while ids.len() < 3 {
        let id = rng.pick(ID_POOL);
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// Writes every key of every table on device `dev`, with values specific to
/// the device (so a row seen on the wrong device shows).
fn fill_ops(dev: usize) -> Vec<Op> {
    let v = |n: usize| vec![dev as u8 + 100, n as u8];
    let tag = dev as u8 + 100;
    let mut ops = vec![
        Op::Save {
            device: Box::new(DeviceSpec::generate(&mut Rng::new(dev as u64))),
        },
        Op::PutIdentitiesBatch {
            items: ADDRS.iter().map(|a| (*a, tag)).collect(),
        },
        Op::PutSessionsBatch {
            items: ADDRS.iter().enumerate().map(|(i, a)| (*a, v(i))).collect(),
        },
        Op::StorePrekeysBatch {
            keys: PREKEY_IDS
                .iter()
                .enumerate()
                .map(|(i, id)| (*id, v(i)))
                .collect(),
            uploaded: false,
        },
        Op::PutSenderKeysBatch {
            items: SENDER_KEY_ADDRS
                .iter()
                .enumerate()
                .map(|(i, a)| (*a, v(i)))
                .collect(),
        },
        Op::PutLidMappings {
            entries: LIDS
                .iter()
                .zip(PHONES)
                .map(|(l, p)| LidSpec {
                    lid: l.to_string(),
                    phone: p.to_string(),
                    created_at: dev as i64,
                    updated_at: dev as i64,
                    source: format!("dev{dev}"),
                })
                .collect(),
        },
        Op::StorePendingInboundBatch {
            rows: CHATS
                .iter()
                .flat_map(|c| {
                    SENDERS
                        .iter()
                        .flat_map(move |s| MSG_IDS.iter().map(move |i| (*c, *s, *i, vec![tag])))
                })
                .collect(),
        },
        Op::PutMsgSecrets {
            entries: CHATS
                .iter()
                .flat_map(|c| {
                    SENDERS.iter().flat_map(move |s| {
                        MSG_IDS.iter().map(move |i| SecretSpec {
                            chat: c.to_string(),
                            sender: s.to_string(),
                            id: i.to_string(),
                            secret: tag,
                            expires_at: 1 + dev as i64,
                            message_ts: dev as i64,
                        })
                    })
                })
                .collect(),
        },
    ];
    for (i, &id) in SIGNED_IDS.iter().enumerate() {
        ops.push(Op::StoreSignedPrekey { id, record: v(i) });
    }
    for (i, &key_id) in SYNC_KEY_IDS.iter().enumerate() {
        ops.push(Op::SetSyncKey {
            key_id,
            key_data: vec![tag; 32],
            fingerprint: v(i),
            timestamp: dev as i64,
        });
    }
    for &name in APP_NAMES {
        ops.push(Op::SetVersion {
            name,
            version: dev as u64,
            hash_seed: tag,
            map: vec![],
            fatal: false,
        });
        let mut macs: Vec<(Vec<u8>, Vec<u8>)> = MAC_SEEDS
            .iter()
            .map(|s| (vec![*s; 32], vec![tag]))
            .collect();
        macs.extend(ODD_MACS.iter().map(|m| (m.to_vec(), vec![tag])));
        ops.push(Op::PutMutationMacs {
            name,
            version: 1,
            macs,
        });
    }
    for &group in GROUPS {
        ops.push(Op::SetSenderKeyStatus {
            group,
            entries: DEVICE_JIDS
                .iter()
                .map(|j| (*j, dev.is_multiple_of(2)))
                .collect(),
        });
        ops.push(Op::PutGroupMetadata {
            group,
            blob: vec![tag],
        });
    }
    for &addr in &ADDRS[..3] {
        for &msg_id in MSG_IDS {
            ops.push(Op::SaveBaseKey {
                addr,
                msg_id,
                key: vec![9],
            });
        }
    }
    for &user in DL_USERS {
        ops.push(Op::UpdateDeviceList {
            record: DevListSpec {
                user: user.to_string(),
                devices: vec![(dev as u32, Some(dev as u32), false)],
                timestamp: dev as i64,
                phash: Some(format!("dev{dev}")),
                raw_id: Some(dev as u32),
            },
        });
    }
    for &jid in TC_JIDS {
        ops.push(Op::PutTcToken {
            jid,
            token: vec![tag],
            token_ts: 1000,
            sender_ts: Some(1000),
        });
    }
    for &chat in CHATS {
        for &id in MSG_IDS {
            ops.push(Op::StoreSentMessage {
                chat,
                id,
                payload: vec![tag],
            });
        }
    }
    ops
}

/// Every destructive operation at its widest, on one device.
fn wipe_ops() -> Vec<Op> {
    let mut ops = vec![
        Op::ClearAllSenderKeyDevices,
        Op::DeleteExpiredTcTokens {
            token_cutoff: i64::MAX,
            sender_cutoff: i64::MAX,
        },
        Op::DeleteExpiredSentMessages { cutoff: i64::MAX },
        Op::DeleteExpiredPendingInbound { cutoff: i64::MAX },
        Op::DeleteExpiredMsgSecrets { cutoff: i64::MAX },
        Op::DeleteSenderKeyDeviceRows {
            jids: DEVICE_JIDS.to_vec(),
        },
    ];
    for &name in APP_NAMES {
        ops.push(Op::ClearMutationMacs { name });
    }
    for &addr in ADDRS {
        ops.push(Op::DeleteIdentity { addr });
        ops.push(Op::DeleteSession { addr });
    }
    for &id in PREKEY_IDS {
        ops.push(Op::RemovePrekey { id });
    }
    for &id in SIGNED_IDS {
        ops.push(Op::RemoveSignedPrekey { id });
    }
    for &addr in SENDER_KEY_ADDRS {
        ops.push(Op::DeleteSenderKey { addr });
    }
    for &group in GROUPS {
        ops.push(Op::ClearSenderKeyDevices { group });
        ops.push(Op::DeleteGroupMetadata { group });
        ops.push(Op::SkdmConsume { group });
    }
    for &addr in &ADDRS[..3] {
        for &msg_id in MSG_IDS {
            ops.push(Op::DeleteBaseKey { addr, msg_id });
        }
    }
    for &user in DL_USERS {
        ops.push(Op::DeleteDevices { user });
    }
    for &jid in TC_JIDS {
        ops.push(Op::DeleteTcToken { jid });
    }
    for &chat in CHATS {
        for &id in MSG_IDS {
            ops.push(Op::TakeSentMessage { chat, id });
        }
    }
    ops
}

async fn run_case(case_no: u64, seed: u64, n_ops: usize) {
    let mut rng = Rng::new(seed);
    let ids = case_ids(case_no, &mut rng);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.redb");
    let handles = open_handles(&path, &ids).await;
    let mut world = World {
        path,
        models: ids.iter().map(|&id| Model::new(id)).collect(),
        ids: ids.clone(),
        handles,
        label: format!("isolation: seed {seed:#x} (case {case_no}), device ids {ids:?}"),
        log: Vec::new(),
    };
    let n = ids.len();

    // Random phase.
    let mut uniq = 0;
    for i in 0..n_ops {
        let dev = rng.below(n);
        let op = Op::generate(&mut rng, USERS, &mut uniq);
        world.step(dev, &op).await;
        if op.is_destructive() || matches!(op, Op::Reopen) {
            world
                .check_all_but(Some(dev), &format!("{op:?} on device #{dev}"))
                .await;
        }
        if i % 100 == 99 {
            world.check_all_but(None, "a round of random ops").await;
        }
    }
    world.check_all_but(None, "the random phase").await;

    // Fill every device, wipe the first, check everyone.
    for dev in 0..n {
        for op in fill_ops(dev) {
            world.step(dev, &op).await;
        }
    }
    world.check_all_but(None, "filling every device").await;
    let victim = (seed % n as u64) as usize;
    for op in wipe_ops() {
        world.step(victim, &op).await;
    }
    world
        .check_all_but(None, &format!("wiping device #{victim}"))
        .await;

    // Everything survives closing and reopening the file.
    world.reopen().await;
    world.check_all_but(None, "reopening").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_in_one_file_never_see_each_other() {
    let cases = env_u64("WA_REDB_ISO_CASES").unwrap_or(DEFAULT_CASES);
    let n_ops = env_u64("WA_REDB_ISO_OPS").map_or(DEFAULT_OPS, |n| n as usize);
    let base = env_u64("WA_REDB_ISO_SEED").unwrap_or(DEFAULT_SEED);
    for case_no in 0..cases {
        run_case(case_no, base.wrapping_add(case_no), n_ops).await;
    }
}

/// The check can fail: a row written on one device and looked for on
/// another is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leak_would_be_detected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let handles = open_handles(&dir.path().join("s.redb"), &[-1, 0]).await;
    let mut model_b = Model::new(0);
    let write = Op::PutSession {
        addr: "123@c.us.0",
        data: vec![1],
    };
    // Written on device -1 but modelled on device 0: the read on device 0
    // must disagree with the model.
    apply(&handles[0], None, false, &write).await;
    model_b.apply(&write);
    let read = Op::GetSession { addr: "123@c.us.0" };
    let store = apply(&handles[1], None, false, &read).await;
    assert_eq!(store.res, Ok("None".to_string()));
    assert!(difference(&store, &model_b.apply(&read)).is_some());
}
