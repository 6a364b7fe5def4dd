//! Many tasks hammering one store at once, every trait domain mixed, with
//! an in-memory model of what the store must hold.
//!
//! 16 tasks on a multi-thread runtime share one file. Tasks 0..8 share
//! device 1 and own disjoint keys (their key strings carry the task
//! number; they never use device-wide operations that could touch another
//! task's rows). Tasks 8..16 each own a whole device (among them i32::MAX
//! and i32::MIN) and also run device-wide operations: sweeps, clears,
//! `delete_device`, `create`. So the final state is well defined whatever
//! the interleaving, and every read a task makes must equal its model at
//! once (read-your-writes). A task occasionally checkpoints, or takes a
//! backup and checks it holds exactly its model. At the end every key of
//! every model is compared with the store (present and absent), then again
//! after a close and reopen. The whole run is bounded by a timeout, so a
//! deadlock fails the test instead of hanging it; nothing sleeps.
//!
//! `WA_REDB_STRESS_SECS=<n>` (default 3): how long the tasks run.
//! `WA_REDB_STRESS_SEED=<n>`: base seed of the tasks' operation streams.

#[path = "util/dataset.rs"]
mod dataset;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dataset::{Rng, chain};
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::Device;
use wacore::store::error::StoreError;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig, SkdmTracking};

const TASKS: u32 = 16;
const SHARED_TASKS: u32 = 8;
const SHARED_DEVICE: i32 = 1;
/// Distinct keys per task and domain: small, so that writes overwrite,
/// deletes hit and takes find.
const KEYS: u64 = 12;

fn owner_device(t: u32) -> i32 {
    match t {
        8 => i32::MAX,
        9 => i32::MIN,
        10 => 0,
        11 => -1,
        _ => 1000 + t as i32,
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

#[derive(Clone, Debug, PartialEq)]
struct Tc {
    token: Vec<u8>,
    token_ts: i64,
    sender_ts: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
struct Lid {
    phone: String,
    created: i64,
    updated: i64,
    source: String,
    seq: u64,
}

#[derive(Clone, Debug, PartialEq)]
struct Secret {
    secret: [u8; 32],
    expires: i64,
    ts: i64,
}

type K2 = (String, String);
type K3 = (String, String, String);

/// What one task's keys hold.
#[derive(Default, Clone)]
struct Model {
    /// push_name of the device record (owners only).
    device: Option<String>,
    identities: BTreeMap<String, [u8; 32]>,
    sessions: BTreeMap<String, Vec<u8>>,
    prekeys: BTreeMap<u32, Vec<u8>>,
    signed: BTreeMap<u32, Vec<u8>>,
    sender_keys: BTreeMap<String, Vec<u8>>,
    sync_keys: BTreeMap<Vec<u8>, (Vec<u8>, i64)>,
    versions: BTreeMap<String, u64>,
    macs: BTreeMap<(String, [u8; 32]), Vec<u8>>,
    /// (group, device jid) -> has_key.
    skd: BTreeMap<K2, bool>,
    lids: BTreeMap<String, Lid>,
    lid_seq: u64,
    base_keys: BTreeMap<K2, Vec<u8>>,
    device_lists: BTreeMap<String, (u32, i64)>,
    group_meta: BTreeMap<String, Vec<u8>>,
    tc: BTreeMap<String, Tc>,
    sent: BTreeMap<K2, Vec<u8>>,
    inbound: BTreeMap<K3, Vec<u8>>,
    secrets: BTreeMap<K3, Secret>,
}

impl Model {
    /// Rows this model holds, as `delete_device` counts them.
    fn rows(&self) -> u64 {
        (self.device.is_some() as usize
            + self.identities.len()
            + self.sessions.len()
            + self.prekeys.len()
            + self.signed.len()
            + self.sender_keys.len()
            + self.sync_keys.len()
            + self.versions.len()
            + self.macs.len()
            + self.skd.len()
            + 2 * self.lids.len()
            + self.base_keys.len()
            + self.device_lists.len()
            + self.group_meta.len()
            + self.tc.len()
            + self.sent.len()
            + self.inbound.len()
            + self.secrets.len()) as u64
    }

    fn best_lid_for(&self, phone: &str) -> Option<String> {
        self.lids
            .iter()
            .filter(|(_, l)| l.phone == phone)
            .max_by_key(|(_, l)| (l.updated, std::cmp::Reverse(l.seq)))
            .map(|(lid, _)| lid.clone())
    }
}

/// Names of a task's keys: every string carries the task number.
#[derive(Clone, Copy)]
struct Names {
    t: u32,
}

impl Names {
    fn addr(&self, i: u64) -> String {
        format!("t{}-a{i}@c.us.0", self.t)
    }
    fn group(&self, i: u64) -> String {
        format!("t{}-g{i}@g.us", self.t)
    }
    fn jid(&self, i: u64) -> String {
        format!("t{}-d{i}:1@lid", self.t)
    }
    fn coll(&self, i: u64) -> String {
        format!("t{}-coll{i}", self.t)
    }
    fn lid(&self, i: u64) -> String {
        format!("t{}-lid{i}", self.t)
    }
    fn phone(&self, i: u64) -> String {
        format!("t{}-pn{i}", self.t)
    }
    fn chat(&self, i: u64) -> String {
        format!("t{}-c{}@s.whatsapp.net", self.t, i % 3)
    }
    fn id(&self, i: u64) -> String {
        format!("t{}-m{i}", self.t)
    }
    fn sync_key(&self, i: u64) -> Vec<u8> {
        format!("t{}-key{i:02}", self.t).into_bytes()
    }
    fn mac(&self, i: u64) -> [u8; 32] {
        let mut m = [0u8; 32];
        m[0] = self.t as u8;
        m[1] = i as u8;
        m
    }
    /// Pre-key and signed pre-key ids: a range of their own per task.
    fn prekey(&self, i: u64) -> u32 {
        self.t * 1000 + i as u32 + 1
    }
}

struct Task {
    t: u32,
    owner: bool,
    s: RedbStore,
    m: Model,
    rng: Rng,
    n: Names,
    ops: u64,
    stats: Arc<Stats>,
    backup_dir: std::path::PathBuf,
}

#[derive(Default)]
struct Stats {
    ops: AtomicU64,
    writes: AtomicU64,
    device_wide: AtomicU64,
    checkpoints: AtomicU64,
    backups: AtomicU64,
}

macro_rules! ok {
    ($task:expr, $call:expr, $what:expr) => {
        $call.await.unwrap_or_else(|e| {
            panic!("task {} op {} {}: {}", $task.t, $task.ops, $what, chain(&e))
        })
    };
}

macro_rules! same {
    ($task:expr, $got:expr, $want:expr, $what:expr) => {{
        let (got, want) = ($got, $want);
        assert!(
            got == want,
            "task {} op {} {}: store has {:?}, model says {:?}",
            $task.t,
            $task.ops,
            $what,
            got,
            want
        );
    }};
}

impl Task {
    fn r(&mut self, n: u64) -> u64 {
        self.rng.below(n)
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = 1 + self.r(200) as usize;
        self.rng.bytes(len)
    }

    fn bool(&mut self) -> bool {
        self.r(2) == 0
    }

    fn timestamp(&mut self) -> i64 {
        1_700_000_000 + self.r(100) as i64
    }

    /// One random operation, checked against the model.
    async fn step(&mut self) {
        self.ops += 1;
        self.stats.ops.fetch_add(1, Ordering::Relaxed);
        let pick = self.r(1000);
        if pick < 4 {
            return self.device_wide().await;
        }
        if pick < 6 {
            self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
            return ok!(self, self.s.checkpoint(), "checkpoint");
        }
        if pick < 7 && self.stats.backups.load(Ordering::Relaxed) < 6 {
            return self.backup().await;
        }
        match self.r(24) {
            0 => self.identities().await,
            1 => self.sessions().await,
            2 => self.session_batches().await,
            3 => self.prekeys().await,
            4 => self.signed_prekeys().await,
            5 => self.sender_keys().await,
            6 => self.sync_keys().await,
            7 => self.versions().await,
            8 => self.macs().await,
            9 => self.sender_key_devices().await,
            10 => self.legacy_skdm().await,
            11 => self.lids().await,
            12 => self.base_keys().await,
            13 => self.device_lists().await,
            14 => self.group_metadata().await,
            15 | 16 => self.tc_tokens().await,
            17 => self.sent_messages().await,
            18 => self.pending_inbound().await,
            19 => self.msg_secrets().await,
            20 => self.device().await,
            _ => self.read_back_something().await,
        }
    }

    fn wrote(&self) {
        self.stats.writes.fetch_add(1, Ordering::Relaxed);
    }

    async fn identities(&mut self) {
        let n = self.n;
        let k = n.addr(self.r(KEYS));
        match self.r(3) {
            0 => {
                let key: [u8; 32] = self.rng.bytes(32).try_into().unwrap();
                ok!(self, self.s.put_identity(&k, key), "put_identity");
                self.m.identities.insert(k.clone(), key);
                self.wrote();
            }
            1 => {
                ok!(self, self.s.delete_identity(&k), "delete_identity");
                self.m.identities.remove(&k);
                self.wrote();
            }
            _ => {
                let batch: Vec<(Arc<str>, [u8; 32])> = (0..1 + self.r(4))
                    .map(|_| {
                        let k = n.addr(self.r(KEYS));
                        (Arc::from(k), self.rng.bytes(32).try_into().unwrap())
                    })
                    .collect();
                ok!(
                    self,
                    self.s.put_identities_batch(&batch),
                    "put_identities_batch"
                );
                for (k, v) in batch {
                    self.m.identities.insert(k.to_string(), v);
                }
                self.wrote();
            }
        }
        let got = ok!(self, self.s.load_identity(&k), "load_identity");
        same!(self, got, self.m.identities.get(&k).copied(), "identity");
    }

    async fn sessions(&mut self) {
        let n = self.n;
        let k = n.addr(self.r(KEYS));
        if self.bool() {
            let v = self.bytes();
            ok!(self, self.s.put_session(&k, &v), "put_session");
            self.m.sessions.insert(k.clone(), v);
        } else {
            ok!(self, self.s.delete_session(&k), "delete_session");
            self.m.sessions.remove(&k);
        }
        self.wrote();
        let got = ok!(self, self.s.get_session(&k), "get_session");
        same!(
            self,
            got.map(|b| b.to_vec()),
            self.m.sessions.get(&k).cloned(),
            "session"
        );
        let has = ok!(self, self.s.has_session(&k), "has_session");
        same!(self, has, self.m.sessions.contains_key(&k), "has_session");
    }

    async fn session_batches(&mut self) {
        let n = self.n;
        let batch: Vec<(Arc<str>, Bytes)> = (0..1 + self.r(6))
            .map(|_| {
                let k = n.addr(self.r(KEYS));
                (Arc::from(k), Bytes::from(self.bytes()))
            })
            .collect();
        ok!(
            self,
            self.s.put_sessions_batch(&batch),
            "put_sessions_batch"
        );
        for (k, v) in batch {
            self.m.sessions.insert(k.to_string(), v.to_vec());
        }
        self.wrote();
    }

    async fn prekeys(&mut self) {
        let n = self.n;
        let id = n.prekey(self.r(KEYS));
        match self.r(4) {
            0 => {
                let (v, up) = (self.bytes(), self.bool());
                ok!(self, self.s.store_prekey(id, &v, up), "store_prekey");
                self.m.prekeys.insert(id, v);
            }
            1 => {
                let batch: Vec<(u32, Bytes)> = (0..1 + self.r(5))
                    .map(|_| (n.prekey(self.r(KEYS)), Bytes::from(self.bytes())))
                    .collect();
                let up = self.bool();
                ok!(
                    self,
                    self.s.store_prekeys_batch(&batch, up),
                    "store_prekeys_batch"
                );
                for (id, v) in batch {
                    self.m.prekeys.insert(id, v.to_vec());
                }
            }
            2 => {
                ok!(self, self.s.remove_prekey(id), "remove_prekey");
                self.m.prekeys.remove(&id);
            }
            _ => {
                let ids: Vec<u32> = (0..3).map(|_| n.prekey(self.r(KEYS))).collect();
                ok!(
                    self,
                    self.s.mark_prekeys_uploaded(&ids),
                    "mark_prekeys_uploaded"
                );
            }
        }
        self.wrote();
        let got = ok!(self, self.s.load_prekey(id), "load_prekey");
        same!(
            self,
            got.map(|b| b.to_vec()),
            self.m.prekeys.get(&id).cloned(),
            "prekey"
        );
        let ids: Vec<u32> = (0..KEYS).map(|i| n.prekey(i)).collect();
        let mut got = ok!(self, self.s.load_prekeys_batch(&ids), "load_prekeys_batch");
        got.sort_by_key(|(id, _)| *id);
        let want: Vec<(u32, Vec<u8>)> = self
            .m
            .prekeys
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        same!(
            self,
            got.into_iter()
                .map(|(k, v)| (k, v.to_vec()))
                .collect::<Vec<_>>(),
            want,
            "load_prekeys_batch"
        );
        let max = ok!(self, self.s.get_max_prekey_id(), "get_max_prekey_id");
        let own = self.m.prekeys.keys().max().copied().unwrap_or(0);
        if self.owner {
            same!(self, max, own, "get_max_prekey_id");
        } else {
            assert!(
                max >= own,
                "task {}: max prekey id {max} < own {own}",
                self.t
            );
        }
    }

    async fn signed_prekeys(&mut self) {
        let n = self.n;
        let id = n.prekey(self.r(KEYS));
        if self.r(3) > 0 {
            let v = self.bytes();
            ok!(
                self,
                self.s.store_signed_prekey(id, &v),
                "store_signed_prekey"
            );
            self.m.signed.insert(id, v);
        } else {
            ok!(
                self,
                self.s.remove_signed_prekey(id),
                "remove_signed_prekey"
            );
            self.m.signed.remove(&id);
        }
        self.wrote();
        let got = ok!(self, self.s.load_signed_prekey(id), "load_signed_prekey");
        same!(self, got, self.m.signed.get(&id).cloned(), "signed prekey");
        let mut all = ok!(
            self,
            self.s.load_all_signed_prekeys(),
            "load_all_signed_prekeys"
        );
        let range = n.prekey(0)..=n.prekey(KEYS);
        all.retain(|(id, _)| self.owner || range.contains(id));
        all.sort();
        let want: Vec<(u32, Vec<u8>)> =
            self.m.signed.iter().map(|(k, v)| (*k, v.clone())).collect();
        same!(self, all, want, "load_all_signed_prekeys");
    }

    async fn sender_keys(&mut self) {
        let n = self.n;
        let k = format!("{}::{}", n.group(self.r(4)), n.addr(self.r(KEYS)));
        match self.r(3) {
            0 => {
                let v = self.bytes();
                ok!(self, self.s.put_sender_key(&k, &v), "put_sender_key");
                self.m.sender_keys.insert(k.clone(), v);
            }
            1 => {
                ok!(self, self.s.delete_sender_key(&k), "delete_sender_key");
                self.m.sender_keys.remove(&k);
            }
            _ => {
                let batch: Vec<(Arc<str>, Bytes)> = (0..1 + self.r(4))
                    .map(|_| {
                        let k = format!("{}::{}", n.group(self.r(4)), n.addr(self.r(KEYS)));
                        (Arc::from(k), Bytes::from(self.bytes()))
                    })
                    .collect();
                ok!(
                    self,
                    self.s.put_sender_keys_batch(&batch),
                    "put_sender_keys_batch"
                );
                for (k, v) in batch {
                    self.m.sender_keys.insert(k.to_string(), v.to_vec());
                }
            }
        }
        self.wrote();
        let got = ok!(self, self.s.get_sender_key(&k), "get_sender_key");
        same!(self, got, self.m.sender_keys.get(&k).cloned(), "sender key");
    }

    async fn sync_keys(&mut self) {
        let n = self.n;
        let id = n.sync_key(self.r(KEYS));
        let (data, ts) = (self.rng.bytes(32), self.timestamp());
        let key = AppStateSyncKey {
            key_data: data.clone(),
            fingerprint: self.bytes(),
            timestamp: ts,
        };
        ok!(self, self.s.set_sync_key(&id, key), "set_sync_key");
        self.m.sync_keys.insert(id.clone(), (data, ts));
        self.wrote();
        let got = ok!(self, self.s.get_sync_key(&id), "get_sync_key");
        same!(
            self,
            got.map(|k| (k.key_data, k.timestamp)),
            self.m.sync_keys.get(&id).cloned(),
            "sync key"
        );
        if self.owner {
            let latest = ok!(
                self,
                self.s.get_latest_sync_key_id(),
                "get_latest_sync_key_id"
            );
            same!(
                self,
                latest,
                self.m.sync_keys.keys().next_back().cloned(),
                "latest sync key"
            );
        }
    }

    async fn versions(&mut self) {
        let n = self.n;
        let name = n.coll(self.r(4));
        let version = self.r(1 << 20);
        let state = HashState {
            version,
            hash: [version as u8; 128],
            ..Default::default()
        };
        ok!(self, self.s.set_version(&name, state), "set_version");
        self.m.versions.insert(name.clone(), version);
        self.wrote();
        let other = n.coll(self.r(4));
        let got = ok!(self, self.s.get_version(&other), "get_version");
        same!(
            self,
            got.version,
            self.m.versions.get(&other).copied().unwrap_or(0),
            "version"
        );
    }

    async fn macs(&mut self) {
        let n = self.n;
        let name = n.coll(self.r(3));
        match self.r(5) {
            0 | 1 => {
                let macs: Vec<AppStateMutationMAC> = (0..1 + self.r(4))
                    .map(|_| AppStateMutationMAC {
                        index_mac: n.mac(self.r(KEYS)).to_vec(),
                        value_mac: self.rng.bytes(32),
                    })
                    .collect();
                let version = self.r(100);
                ok!(
                    self,
                    self.s.put_mutation_macs(&name, version, &macs),
                    "put_mutation_macs"
                );
                for m in macs {
                    self.m
                        .macs
                        .insert((name.clone(), m.index_mac.try_into().unwrap()), m.value_mac);
                }
            }
            2 => {
                let idx: Vec<Vec<u8>> = (0..1 + self.r(3))
                    .map(|_| n.mac(self.r(KEYS)).to_vec())
                    .collect();
                ok!(
                    self,
                    self.s.delete_mutation_macs(&name, &idx),
                    "delete_mutation_macs"
                );
                for i in idx {
                    self.m.macs.remove(&(name.clone(), i.try_into().unwrap()));
                }
            }
            3 => {
                ok!(
                    self,
                    self.s.clear_mutation_macs(&name),
                    "clear_mutation_macs"
                );
                self.m.macs.retain(|(n, _), _| *n != name);
            }
            _ => {}
        }
        self.wrote();
        let mac = n.mac(self.r(KEYS));
        let got = ok!(
            self,
            self.s.get_mutation_mac(&name, &mac),
            "get_mutation_mac"
        );
        same!(
            self,
            got,
            self.m.macs.get(&(name.clone(), mac)).cloned(),
            "mutation mac"
        );
        let all: Vec<[u8; 32]> = (0..KEYS).map(|i| n.mac(i)).collect();
        let got = ok!(
            self,
            self.s.get_mutation_macs(&name, &all),
            "get_mutation_macs"
        );
        let got: BTreeMap<[u8; 32], Vec<u8>> = got.into_iter().collect();
        let want: BTreeMap<[u8; 32], Vec<u8>> = self
            .m
            .macs
            .iter()
            .filter(|((n, _), _)| *n == name)
            .map(|((_, i), v)| (*i, v.clone()))
            .collect();
        same!(self, got, want, "get_mutation_macs");
    }

    fn skd_of(&self, group: &str) -> Vec<(String, bool)> {
        self.m
            .skd
            .iter()
            .filter(|((g, _), _)| g == group)
            .map(|((_, j), k)| (j.clone(), *k))
            .collect()
    }

    async fn check_skd(&mut self, group: &str) {
        let got = ok!(
            self,
            self.s.get_sender_key_devices(group),
            "get_sender_key_devices"
        );
        same!(self, got, self.skd_of(group), "sender key devices");
    }

    async fn sender_key_devices(&mut self) {
        let n = self.n;
        let group = n.group(self.r(4));
        match self.r(4) {
            0 | 1 => {
                let entries: Vec<(String, bool)> = (0..1 + self.r(4))
                    .map(|_| (n.jid(self.r(KEYS)), self.bool()))
                    .collect();
                let refs: Vec<(&str, bool)> =
                    entries.iter().map(|(j, k)| (j.as_str(), *k)).collect();
                ok!(
                    self,
                    self.s.set_sender_key_status(&group, &refs),
                    "set_sender_key_status"
                );
                for (j, k) in entries {
                    self.m.skd.insert((group.clone(), j), k);
                }
            }
            2 => {
                ok!(
                    self,
                    self.s.clear_sender_key_devices(&group),
                    "clear_sender_key_devices"
                );
                self.m.skd.retain(|(g, _), _| *g != group);
            }
            _ => {
                let jids: Vec<String> = (0..1 + self.r(2)).map(|_| n.jid(self.r(KEYS))).collect();
                let refs: Vec<&str> = jids.iter().map(String::as_str).collect();
                ok!(
                    self,
                    self.s.delete_sender_key_device_rows(&refs),
                    "delete_sender_key_device_rows"
                );
                self.m.skd.retain(|(_, j), _| !jids.contains(j));
            }
        }
        self.wrote();
        self.check_skd(&group).await;
    }

    async fn legacy_skdm(&mut self) {
        let n = self.n;
        let group = n.group(self.r(4));
        match self.r(4) {
            0 => {
                let jids: Vec<String> = (0..1 + self.r(3)).map(|_| n.jid(self.r(KEYS))).collect();
                ok!(
                    self,
                    self.s.add_skdm_recipients(&group, &jids),
                    "add_skdm_recipients"
                );
                for j in jids {
                    self.m.skd.insert((group.clone(), j), true);
                }
            }
            1 => {
                let j = n.jid(self.r(KEYS));
                ok!(
                    self,
                    self.s.mark_forget_sender_key(&group, &j),
                    "mark_forget_sender_key"
                );
                self.m.skd.insert((group.clone(), j), false);
            }
            2 => {
                let got = ok!(
                    self,
                    self.s.consume_forget_marks(&group),
                    "consume_forget_marks"
                );
                let want: Vec<String> = self
                    .skd_of(&group)
                    .into_iter()
                    .filter(|(_, k)| !k)
                    .map(|(j, _)| j)
                    .collect();
                same!(self, got, want.clone(), "consume_forget_marks");
                for j in want {
                    self.m.skd.remove(&(group.clone(), j));
                }
            }
            _ => {
                let got = ok!(
                    self,
                    self.s.get_skdm_recipients(&group),
                    "get_skdm_recipients"
                );
                let want: Vec<String> = self
                    .skd_of(&group)
                    .into_iter()
                    .filter(|(_, k)| *k)
                    .map(|(j, _)| j)
                    .collect();
                same!(self, got, want, "get_skdm_recipients");
            }
        }
        self.wrote();
        self.check_skd(&group).await;
    }

    fn lid_entry(&mut self) -> LidPnMappingEntry {
        let n = self.n;
        LidPnMappingEntry {
            lid: n.lid(self.r(KEYS)),
            phone_number: n.phone(self.r(4)),
            created_at: self.timestamp(),
            updated_at: self.timestamp(),
            learning_source: ["usync", "peer", "other"][self.r(3) as usize].into(),
        }
    }

    fn model_lid(&mut self, e: &LidPnMappingEntry) {
        let seq = &mut self.m.lid_seq;
        let lid = self.m.lids.entry(e.lid.clone()).or_insert_with(|| {
            *seq += 1;
            Lid {
                phone: String::new(),
                created: e.created_at,
                updated: 0,
                source: String::new(),
                seq: *seq,
            }
        });
        lid.phone = e.phone_number.clone();
        lid.updated = e.updated_at;
        lid.source = e.learning_source.clone();
    }

    async fn lids(&mut self) {
        let n = self.n;
        let entries: Vec<LidPnMappingEntry> =
            (0..1 + self.r(3)).map(|_| self.lid_entry()).collect();
        let result = if entries.len() == 1 && self.bool() {
            self.s.put_lid_mapping(&entries[0]).await
        } else {
            self.s.put_lid_mappings(&entries).await
        };
        match (result, self.owner && self.m.device.is_none()) {
            (Ok(()), false) => {
                for e in &entries {
                    self.model_lid(e);
                }
                self.wrote();
            }
            (Err(e), true) => {
                // No device record: refused, like SqliteStore's foreign key.
                assert!(
                    chain(&e).contains("has no device record"),
                    "task {}: {}",
                    self.t,
                    chain(&e)
                );
            }
            (r, _) => panic!(
                "task {} op {} put_lid_mappings without device record = {}: {:?}",
                self.t,
                self.ops,
                self.m.device.is_none(),
                r.map_err(|e| chain(&e))
            ),
        }
        let lid = n.lid(self.r(KEYS));
        let got = ok!(self, self.s.get_lid_mapping(&lid), "get_lid_mapping");
        same!(
            self,
            got.map(|e| (
                e.phone_number,
                e.created_at,
                e.updated_at,
                e.learning_source
            )),
            self.m.lids.get(&lid).map(|l| (
                l.phone.clone(),
                l.created,
                l.updated,
                l.source.clone()
            )),
            "lid mapping"
        );
        let phone = n.phone(self.r(4));
        let got = ok!(self, self.s.get_pn_mapping(&phone), "get_pn_mapping");
        same!(
            self,
            got.map(|e| e.lid),
            self.m.best_lid_for(&phone),
            "pn mapping"
        );
        if self.r(4) == 0 {
            self.check_all_lids().await;
        }
    }

    async fn check_all_lids(&mut self) {
        let mut got = ok!(self, self.s.get_all_lid_mappings(), "get_all_lid_mappings");
        let own = format!("t{}-", self.t);
        got.retain(|e| self.owner || e.lid.starts_with(&own));
        let mut want: Vec<(&String, &Lid)> = self.m.lids.iter().collect();
        want.sort_by_key(|(_, l)| l.seq);
        same!(
            self,
            got.into_iter().map(|e| e.lid).collect::<Vec<_>>(),
            want.into_iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            "get_all_lid_mappings (insertion order)"
        );
    }

    async fn base_keys(&mut self) {
        let n = self.n;
        let (a, id) = (n.addr(self.r(KEYS)), n.id(self.r(4)));
        if self.r(3) > 0 {
            let v = self.bytes();
            ok!(self, self.s.save_base_key(&a, &id, &v), "save_base_key");
            self.m.base_keys.insert((a.clone(), id.clone()), v);
        } else {
            ok!(self, self.s.delete_base_key(&a, &id), "delete_base_key");
            self.m.base_keys.remove(&(a.clone(), id.clone()));
        }
        self.wrote();
        let use_stored = self.bool();
        let probe = match self.m.base_keys.get(&(a.clone(), id.clone())) {
            Some(v) if use_stored => v.clone(),
            _ => b"other".to_vec(),
        };
        let got = ok!(
            self,
            self.s.has_same_base_key(&a, &id, &probe),
            "has_same_base_key"
        );
        same!(
            self,
            got,
            self.m.base_keys.get(&(a, id)) == Some(&probe),
            "has_same_base_key"
        );
    }

    fn device_list(&mut self) -> DeviceListRecord {
        let n = self.n;
        DeviceListRecord {
            user: n.addr(self.r(KEYS)),
            devices: vec![DeviceInfo::new(self.r(5) as u32, None)],
            timestamp: self.timestamp(),
            phash: None,
            raw_id: None,
        }
    }

    async fn device_lists(&mut self) {
        let n = self.n;
        let user = match self.r(3) {
            0 => {
                let r = self.device_list();
                let user = r.user.clone();
                self.m
                    .device_lists
                    .insert(user.clone(), (r.devices[0].device_id, r.timestamp));
                ok!(self, self.s.update_device_list(r), "update_device_list");
                user
            }
            1 => {
                let rs: Vec<DeviceListRecord> =
                    (0..1 + self.r(3)).map(|_| self.device_list()).collect();
                for r in &rs {
                    self.m
                        .device_lists
                        .insert(r.user.clone(), (r.devices[0].device_id, r.timestamp));
                }
                let user = rs[0].user.clone();
                ok!(self, self.s.update_device_lists(rs), "update_device_lists");
                user
            }
            _ => {
                let user = n.addr(self.r(KEYS));
                ok!(self, self.s.delete_devices(&user), "delete_devices");
                self.m.device_lists.remove(&user);
                user
            }
        };
        self.wrote();
        let got = ok!(self, self.s.get_devices(&user), "get_devices");
        same!(
            self,
            got.map(|r| (r.devices[0].device_id, r.timestamp)),
            self.m.device_lists.get(&user).copied(),
            "device list"
        );
    }

    async fn group_metadata(&mut self) {
        let n = self.n;
        let g = n.group(self.r(KEYS));
        if self.r(3) > 0 {
            let v = self.bytes();
            ok!(
                self,
                self.s.put_group_metadata(&g, &v),
                "put_group_metadata"
            );
            self.m.group_meta.insert(g.clone(), v);
        } else {
            ok!(
                self,
                self.s.delete_group_metadata(&g),
                "delete_group_metadata"
            );
            self.m.group_meta.remove(&g);
        }
        self.wrote();
        let got = ok!(self, self.s.get_group_metadata(&g), "get_group_metadata");
        same!(
            self,
            got,
            self.m.group_meta.get(&g).cloned(),
            "group metadata"
        );
    }

    async fn tc_tokens(&mut self) {
        let n = self.n;
        let jid = n.lid(self.r(KEYS));
        match self.r(6) {
            0 => {
                // An empty token without a sender timestamp is expired
                // for every cutoff: only owners, whose sweeps are modeled,
                // write one.
                let empty = self.owner && self.r(4) == 0;
                let tc = Tc {
                    token: if empty { vec![] } else { self.bytes() },
                    token_ts: self.timestamp(),
                    sender_ts: self.bool().then(|| self.timestamp()),
                };
                let entry = TcTokenEntry {
                    token: tc.token.clone(),
                    token_timestamp: tc.token_ts,
                    sender_timestamp: tc.sender_ts,
                };
                ok!(self, self.s.put_tc_token(&jid, &entry), "put_tc_token");
                self.m.tc.insert(jid.clone(), tc);
            }
            1 => {
                ok!(self, self.s.delete_tc_token(&jid), "delete_tc_token");
                self.m.tc.remove(&jid);
            }
            2 => {
                let ts = self.timestamp();
                ok!(
                    self,
                    self.s.touch_tc_token_sender_timestamp(&jid, ts),
                    "touch_tc_token_sender_timestamp"
                );
                let row = self.m.tc.entry(jid.clone()).or_insert(Tc {
                    token: vec![],
                    token_ts: ts,
                    sender_ts: None,
                });
                row.sender_ts = Some(row.sender_ts.map_or(ts, |s| s.max(ts)));
            }
            3 => {
                let (token, ts) = (self.bytes(), self.timestamp());
                ok!(
                    self,
                    self.s.store_received_tc_token(&jid, &token, ts),
                    "store_received_tc_token"
                );
                let old = self.m.tc.get(&jid).cloned();
                let keep = old
                    .as_ref()
                    .is_some_and(|o| !o.token.is_empty() && ts < o.token_ts);
                if !keep {
                    self.m.tc.insert(
                        jid.clone(),
                        Tc {
                            token,
                            token_ts: ts,
                            sender_ts: old.and_then(|o| o.sender_ts),
                        },
                    );
                }
            }
            _ => {
                // Owners sweep with real cutoffs. On the shared device the
                // cutoffs are the lowest possible, and no task writes a row
                // that is expired for every cutoff (an empty token without
                // a sender timestamp), so the sweep touches no other task's
                // rows.
                let (tc, sc) = if self.owner {
                    (
                        1_700_000_000 + self.r(110) as i64,
                        1_700_000_000 + self.r(110) as i64,
                    )
                } else {
                    (i64::MIN, i64::MIN)
                };
                let n = ok!(
                    self,
                    self.s.delete_expired_tc_tokens(tc, sc),
                    "delete_expired_tc_tokens"
                );
                let before = self.m.tc.len();
                self.m.tc.retain(|_, r| {
                    !((r.token.is_empty() || r.token_ts < tc) && r.sender_ts.is_none_or(|s| s < sc))
                });
                same!(
                    self,
                    n as usize,
                    before - self.m.tc.len(),
                    "delete_expired_tc_tokens count"
                );
                let mut all = ok!(
                    self,
                    self.s.get_all_tc_token_jids(),
                    "get_all_tc_token_jids"
                );
                let own = format!("t{}-", self.t);
                all.retain(|j| self.owner || j.starts_with(&own));
                same!(
                    self,
                    all,
                    self.m.tc.keys().cloned().collect::<Vec<_>>(),
                    "get_all_tc_token_jids"
                );
            }
        }
        self.wrote();
        let got = ok!(self, self.s.get_tc_token(&jid), "get_tc_token");
        same!(
            self,
            got.map(|e| Tc {
                token: e.token,
                token_ts: e.token_timestamp,
                sender_ts: e.sender_timestamp,
            }),
            self.m.tc.get(&jid).cloned(),
            "tc token"
        );
    }

    async fn sent_messages(&mut self) {
        let n = self.n;
        let (chat, id) = (n.chat(self.r(KEYS)), n.id(self.r(KEYS)));
        match self.r(5) {
            0 | 1 => {
                let v = self.bytes();
                ok!(
                    self,
                    self.s.store_sent_message(&chat, &id, &v),
                    "store_sent_message"
                );
                self.m.sent.insert((chat, id), v);
            }
            2 | 3 => {
                let got = ok!(
                    self,
                    self.s.take_sent_message(&chat, &id),
                    "take_sent_message"
                );
                same!(
                    self,
                    got,
                    self.m.sent.remove(&(chat, id)),
                    "take_sent_message"
                );
            }
            _ => {
                let all = self.owner && self.bool();
                let cutoff = if all { i64::MAX } else { 0 };
                let n = ok!(
                    self,
                    self.s.delete_expired_sent_messages(cutoff),
                    "delete_expired_sent_messages"
                );
                let want = if all {
                    std::mem::take(&mut self.m.sent).len()
                } else {
                    0
                };
                same!(self, n as usize, want, "delete_expired_sent_messages");
            }
        }
        self.wrote();
    }

    async fn pending_inbound(&mut self) {
        let n = self.n;
        let k = (n.chat(self.r(KEYS)), n.addr(self.r(4)), n.id(self.r(KEYS)));
        match self.r(6) {
            0 => {
                let v = self.bytes();
                ok!(
                    self,
                    self.s.store_pending_inbound(&k.0, &k.1, &k.2, &v),
                    "store_pending_inbound"
                );
                self.m.inbound.insert(k.clone(), v);
            }
            1 => {
                let rows: Vec<(K3, Vec<u8>)> = (0..1 + self.r(4))
                    .map(|_| {
                        (
                            (n.chat(self.r(KEYS)), n.addr(self.r(4)), n.id(self.r(KEYS))),
                            self.bytes(),
                        )
                    })
                    .collect();
                let refs: Vec<PendingInboundRow<'_>> = rows
                    .iter()
                    .map(|((c, s, i), m)| PendingInboundRow {
                        chat: c,
                        sender: s,
                        id: i,
                        message: m,
                    })
                    .collect();
                ok!(
                    self,
                    self.s.store_pending_inbound_batch(&refs),
                    "store_pending_inbound_batch"
                );
                drop(refs);
                for (k, v) in rows {
                    self.m.inbound.insert(k, v);
                }
            }
            2 => {
                ok!(
                    self,
                    self.s.delete_pending_inbound(&k.0, &k.1, &k.2),
                    "delete_pending_inbound"
                );
                self.m.inbound.remove(&k);
            }
            3 => {
                let keys: Vec<K3> = std::iter::once(k.clone())
                    .chain(self.m.inbound.keys().take(2).cloned())
                    .collect();
                let refs: Vec<PendingInboundKey<'_>> = keys
                    .iter()
                    .map(|(c, s, i)| PendingInboundKey {
                        chat: c,
                        sender: s,
                        id: i,
                    })
                    .collect();
                ok!(
                    self,
                    self.s.delete_pending_inbound_batch(&refs),
                    "delete_pending_inbound_batch"
                );
                drop(refs);
                for k in keys {
                    self.m.inbound.remove(&k);
                }
            }
            4 => {
                let all = self.owner && self.r(3) == 0;
                let n = ok!(
                    self,
                    self.s
                        .delete_expired_pending_inbound(if all { i64::MAX } else { 0 }),
                    "delete_expired_pending_inbound"
                );
                let want = if all {
                    std::mem::take(&mut self.m.inbound).len()
                } else {
                    0
                };
                same!(self, n as usize, want, "delete_expired_pending_inbound");
            }
            _ => {}
        }
        self.wrote();
        let got = ok!(
            self,
            self.s.get_pending_inbound(&k.0, &k.1, &k.2),
            "get_pending_inbound"
        );
        same!(
            self,
            got,
            self.m.inbound.get(&k).cloned(),
            "pending inbound"
        );
    }

    async fn msg_secrets(&mut self) {
        let n = self.n;
        let k = (n.chat(self.r(KEYS)), n.addr(self.r(3)), n.id(self.r(KEYS)));
        if self.r(5) > 0 {
            let entries: Vec<MsgSecretEntry> = (0..1 + self.r(4))
                .map(|j| {
                    let key = if j == 0 {
                        k.clone()
                    } else {
                        (n.chat(self.r(KEYS)), n.addr(self.r(3)), n.id(self.r(KEYS)))
                    };
                    // Owners' deadlines are swept below; the shared
                    // device's are far out of reach of its sweeps.
                    let expires = match (self.r(3), self.owner) {
                        (0, _) => 0,
                        (_, true) => 1 + self.r(300) as i64,
                        (_, false) => 5_000 + self.r(300) as i64,
                    };
                    MsgSecretEntry {
                        chat: key.0.into(),
                        sender: key.1.into(),
                        msg_id: key.2.into(),
                        secret: self.rng.bytes(32).try_into().unwrap(),
                        expires_at: expires,
                        message_ts: self.r(3) as i64 * self.timestamp(),
                    }
                })
                .collect();
            let n = entries.len();
            let got = ok!(
                self,
                self.s.put_msg_secrets(entries.clone()),
                "put_msg_secrets"
            );
            same!(self, got, n, "put_msg_secrets count");
            for e in entries {
                let key = (
                    e.chat.to_string(),
                    e.sender.to_string(),
                    e.msg_id.to_string(),
                );
                let row = match self.m.secrets.get(&key) {
                    Some(old) => Secret {
                        secret: e.secret,
                        expires: merge_msg_secret_expiry(old.expires, e.expires_at),
                        ts: merge_msg_secret_message_ts(old.ts, e.message_ts),
                    },
                    None => Secret {
                        secret: e.secret,
                        expires: e.expires_at,
                        ts: e.message_ts,
                    },
                };
                self.m.secrets.insert(key, row);
            }
        } else {
            let cutoff = if self.owner { self.r(300) as i64 } else { 1000 };
            let n = ok!(
                self,
                self.s.delete_expired_msg_secrets(cutoff),
                "delete_expired_msg_secrets"
            );
            let before = self.m.secrets.len();
            self.m
                .secrets
                .retain(|_, r| !(r.expires != 0 && r.expires <= cutoff));
            same!(
                self,
                n as usize,
                before - self.m.secrets.len(),
                "delete_expired_msg_secrets count"
            );
        }
        self.wrote();
        let got = ok!(
            self,
            self.s.get_msg_secret_with_ts(&k.0, &k.1, &k.2),
            "get_msg_secret_with_ts"
        );
        same!(
            self,
            got,
            self.m.secrets.get(&k).map(|r| (r.secret.to_vec(), r.ts)),
            "msg secret"
        );
    }

    async fn device(&mut self) {
        if !self.owner {
            return self.read_back_something().await;
        }
        match self.r(4) {
            0 => {
                let mut d = Device::new();
                d.push_name = format!("t{}-{}", self.t, self.ops);
                ok!(self, self.s.save(&d), "save");
                self.m.device = Some(d.push_name);
                self.wrote();
            }
            1 => {
                let r = self.s.create().await;
                match (&r, &self.m.device) {
                    (Ok(id), None) => {
                        same!(self, *id, self.s.device_id(), "create");
                        self.m.device = Some(Device::new().push_name);
                        self.wrote();
                    }
                    (Err(e), Some(_)) => assert!(
                        chain(e).contains("already exists"),
                        "task {}: {}",
                        self.t,
                        chain(e)
                    ),
                    _ => panic!(
                        "task {} op {}: create with record {:?}: {:?}",
                        self.t,
                        self.ops,
                        self.m.device,
                        r.map_err(|e| chain(&e))
                    ),
                }
            }
            _ => {}
        }
        let got = ok!(self, self.s.load(), "load");
        same!(
            self,
            got.map(|d| d.push_name),
            self.m.device.clone(),
            "device"
        );
        let exists = ok!(self, self.s.exists(), "exists");
        same!(self, exists, self.m.device.is_some(), "exists");
    }

    /// Device-wide operations; on the shared device only the harmless ones.
    async fn device_wide(&mut self) {
        self.stats.device_wide.fetch_add(1, Ordering::Relaxed);
        if !self.owner {
            return self.verify_some().await;
        }
        match self.r(3) {
            0 => {
                let rows = ok!(
                    self,
                    self.s.delete_device(self.s.device_id()),
                    "delete_device"
                );
                same!(self, rows, self.m.rows(), "delete_device row count");
                let seq = self.m.lid_seq;
                self.m = Model {
                    lid_seq: seq,
                    ..Model::default()
                };
            }
            1 => {
                ok!(
                    self,
                    self.s.clear_all_sender_key_devices(),
                    "clear_all_sender_key_devices"
                );
                self.m.skd.clear();
            }
            _ => {
                let rows = self
                    .s
                    .accounts()
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|a| a.device_id == self.s.device_id())
                    .map_or(0, |a| a.rows);
                same!(self, rows, self.m.rows(), "accounts() row count");
            }
        }
        self.wrote();
    }

    async fn read_back_something(&mut self) {
        let n = self.n;
        match self.r(4) {
            0 => self.check_all_lids().await,
            3 => {
                let report = self.s.resource_report().await;
                assert!(
                    report.memory_bytes.is_some() && report.io_write_bytes.is_some(),
                    "task {}: {report:?}",
                    self.t
                );
            }
            1 => {
                let g = n.group(self.r(4));
                self.check_skd(&g).await
            }
            _ => self.verify_some().await,
        }
    }

    /// A cheap slice of the full verification.
    async fn verify_some(&mut self) {
        let m = self.m.clone();
        verify_model(&self.s, &m, &self.n, self.owner, false)
            .await
            .unwrap_or_else(|e| panic!("task {} op {}: {e}", self.t, self.ops));
    }

    /// Backs the store up and checks that the copy holds this task's model.
    async fn backup(&mut self) {
        self.stats.backups.fetch_add(1, Ordering::Relaxed);
        let target = self
            .backup_dir
            .join(format!("backup-{}-{}.redb", self.t, self.ops));
        ok!(self, self.s.backup_to(&target), "backup_to");
        let copy = RedbStore::new_for_device(&target, self.s.device_id())
            .await
            .unwrap();
        let m = self.m.clone();
        verify_model(&copy, &m, &self.n, self.owner, true)
            .await
            .unwrap_or_else(|e| panic!("task {} op {}: backup: {e}", self.t, self.ops));
        copy.close().await.unwrap();
    }
}

/// Compares every key of the task's key space with the model, present and
/// absent. With `scans`, also the device-wide listings.
async fn verify_model(
    s: &RedbStore,
    m: &Model,
    n: &Names,
    owner: bool,
    scans: bool,
) -> Result<(), String> {
    let err = |what: &str, e: StoreError| format!("{what}: {}", chain(&e));
    macro_rules! eq {
        ($got:expr, $want:expr, $what:expr) => {{
            let (got, want) = ($got, $want);
            if got != want {
                return Err(format!(
                    "{}: store has {:?}, model says {:?}",
                    $what, got, want
                ));
            }
        }};
    }
    if owner {
        let d = s.load().await.map_err(|e| err("load", e))?;
        eq!(d.map(|d| d.push_name), m.device.clone(), "device record");
    }
    for i in 0..KEYS {
        let a = n.addr(i);
        let got = s.load_identity(&a).await.map_err(|e| err("identity", e))?;
        eq!(got, m.identities.get(&a).copied(), format!("identity {a}"));
        let got = s.get_session(&a).await.map_err(|e| err("session", e))?;
        eq!(
            got.map(|b| b.to_vec()),
            m.sessions.get(&a).cloned(),
            format!("session {a}")
        );
        let id = n.prekey(i);
        let got = s.load_prekey(id).await.map_err(|e| err("prekey", e))?;
        eq!(
            got.map(|b| b.to_vec()),
            m.prekeys.get(&id).cloned(),
            format!("prekey {id}")
        );
        let got = s
            .load_signed_prekey(id)
            .await
            .map_err(|e| err("signed prekey", e))?;
        eq!(
            got,
            m.signed.get(&id).cloned(),
            format!("signed prekey {id}")
        );
        let key = n.sync_key(i);
        let got = s.get_sync_key(&key).await.map_err(|e| err("sync key", e))?;
        eq!(
            got.map(|k| (k.key_data, k.timestamp)),
            m.sync_keys.get(&key).cloned(),
            format!("sync key {i}")
        );
        let g = n.group(i);
        let got = s
            .get_group_metadata(&g)
            .await
            .map_err(|e| err("group metadata", e))?;
        eq!(
            got,
            m.group_meta.get(&g).cloned(),
            format!("group metadata {g}")
        );
        let got = s.get_devices(&a).await.map_err(|e| err("devices", e))?;
        eq!(
            got.map(|r| (r.devices[0].device_id, r.timestamp)),
            m.device_lists.get(&a).copied(),
            format!("device list {a}")
        );
        let lid = n.lid(i);
        let got = s.get_tc_token(&lid).await.map_err(|e| err("tc", e))?;
        eq!(
            got.map(|e| Tc {
                token: e.token,
                token_ts: e.token_timestamp,
                sender_ts: e.sender_timestamp,
            }),
            m.tc.get(&lid).cloned(),
            format!("tc token {lid}")
        );
        let got = s.get_lid_mapping(&lid).await.map_err(|e| err("lid", e))?;
        eq!(
            got.map(|e| (e.phone_number, e.created_at, e.updated_at)),
            m.lids
                .get(&lid)
                .map(|l| (l.phone.clone(), l.created, l.updated)),
            format!("lid {lid}")
        );
        for j in 0..4 {
            let id = n.id(j);
            let got = s
                .has_same_base_key(
                    &a,
                    &id,
                    m.base_keys
                        .get(&(a.clone(), id.clone()))
                        .map_or(b"-".as_slice(), Vec::as_slice),
                )
                .await
                .map_err(|e| err("base key", e))?;
            eq!(
                got,
                m.base_keys.contains_key(&(a.clone(), id.clone())),
                format!("base key {a} {id}")
            );
            let sk = format!("{}::{a}", n.group(j));
            let got = s
                .get_sender_key(&sk)
                .await
                .map_err(|e| err("sender key", e))?;
            eq!(
                got,
                m.sender_keys.get(&sk).cloned(),
                format!("sender key {sk}")
            );
        }
        if i >= 3 {
            continue; // n.chat() has three distinct chats
        }
        let chat = n.chat(i);
        for j in 0..KEYS {
            let id = n.id(j);
            for x in 0..4 {
                let sender = n.addr(x);
                let k = (chat.clone(), sender.clone(), id.clone());
                let got = s
                    .get_pending_inbound(&chat, &sender, &id)
                    .await
                    .map_err(|e| err("inbound", e))?;
                eq!(got, m.inbound.get(&k).cloned(), format!("inbound {k:?}"));
                if x < 3 {
                    let got = s
                        .get_msg_secret_with_ts(&chat, &sender, &id)
                        .await
                        .map_err(|e| err("secret", e))?;
                    eq!(
                        got,
                        m.secrets.get(&k).map(|r| (r.secret.to_vec(), r.ts)),
                        format!("secret {k:?}")
                    );
                }
            }
        }
    }
    for c in 0..4 {
        let name = n.coll(c);
        let got = s.get_version(&name).await.map_err(|e| err("version", e))?;
        eq!(
            got.version,
            m.versions.get(&name).copied().unwrap_or(0),
            format!("version {name}")
        );
        let all: Vec<[u8; 32]> = (0..KEYS).map(|i| n.mac(i)).collect();
        let got: BTreeMap<[u8; 32], Vec<u8>> = s
            .get_mutation_macs(&name, &all)
            .await
            .map_err(|e| err("macs", e))?
            .into_iter()
            .collect();
        let want: BTreeMap<[u8; 32], Vec<u8>> = m
            .macs
            .iter()
            .filter(|((nm, _), _)| *nm == name)
            .map(|((_, i), v)| (*i, v.clone()))
            .collect();
        eq!(got, want, format!("macs {name}"));
        let g = n.group(c);
        let got = s
            .get_sender_key_devices(&g)
            .await
            .map_err(|e| err("skd", e))?;
        let want: Vec<(String, bool)> = m
            .skd
            .iter()
            .filter(|((gg, _), _)| *gg == g)
            .map(|((_, j), k)| (j.clone(), *k))
            .collect();
        eq!(got, want, format!("sender key devices {g}"));
        let phone = n.phone(c);
        let got = s.get_pn_mapping(&phone).await.map_err(|e| err("pn", e))?;
        eq!(
            got.map(|e| e.lid),
            m.best_lid_for(&phone),
            format!("pn {phone}")
        );
    }
    if scans {
        let own = format!("t{}-", n.t);
        let mut lids = s
            .get_all_lid_mappings()
            .await
            .map_err(|e| err("all lids", e))?;
        lids.retain(|e| owner || e.lid.starts_with(&own));
        let mut want: Vec<(&String, &Lid)> = m.lids.iter().collect();
        want.sort_by_key(|(_, l)| l.seq);
        eq!(
            lids.into_iter().map(|e| e.lid).collect::<Vec<_>>(),
            want.into_iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            "all lid mappings"
        );
        let mut jids = s
            .get_all_tc_token_jids()
            .await
            .map_err(|e| err("tc jids", e))?;
        jids.retain(|j| owner || j.starts_with(&own));
        eq!(
            jids,
            m.tc.keys().cloned().collect::<Vec<_>>(),
            "tc token jids"
        );
        let mut signed = s
            .load_all_signed_prekeys()
            .await
            .map_err(|e| err("signed", e))?;
        let range = n.prekey(0)..=n.prekey(KEYS);
        signed.retain(|(id, _)| owner || range.contains(id));
        signed.sort();
        eq!(
            signed,
            m.signed
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect::<Vec<_>>(),
            "all signed prekeys"
        );
        if owner {
            let max = s.get_max_prekey_id().await.map_err(|e| err("max", e))?;
            eq!(
                max,
                m.prekeys.keys().max().copied().unwrap_or(0),
                "max prekey id"
            );
            let latest = s
                .get_latest_sync_key_id()
                .await
                .map_err(|e| err("latest", e))?;
            eq!(
                latest,
                m.sync_keys.keys().next_back().cloned(),
                "latest sync key"
            );
            let rows = s
                .accounts()
                .await
                .map_err(|e| err("accounts", e))?
                .into_iter()
                .find(|a| a.device_id == s.device_id())
                .map_or(0, |a| a.rows);
            eq!(rows, m.rows(), "rows of the device");
        }
        // Sent messages can only be read by taking them: last.
        for i in 0..3 {
            let chat = n.chat(i);
            for j in 0..KEYS {
                let id = n.id(j);
                let got = s
                    .take_sent_message(&chat, &id)
                    .await
                    .map_err(|e| err("take", e))?;
                eq!(
                    got,
                    m.sent.get(&(chat.clone(), id.clone())).cloned(),
                    format!("sent message {chat} {id}")
                );
            }
        }
    }
    Ok(())
}

async fn run(path: std::path::PathBuf, secs: u64, seed: u64) -> (Vec<(u32, Model)>, Arc<Stats>) {
    let config = RedbStoreConfig::default()
        .with_checkpoint_interval(Duration::from_millis(50))
        .with_checkpoint_journal_bytes(256 << 10);
    let store = RedbStore::with_config_for_device(&path, SHARED_DEVICE, config)
        .await
        .unwrap();
    store.save(&Device::new()).await.unwrap();
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let backup_dir = path.parent().unwrap().join("backups");
    std::fs::create_dir_all(&backup_dir).unwrap();

    // A reader scanning the whole file while the tasks write.
    let scanner = {
        let (s, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut scans = 0u64;
            while !stop.load(Ordering::Relaxed) {
                s.info().await.unwrap();
                scans += 1;
                tokio::task::yield_now().await;
            }
            scans
        })
    };
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let owner = t >= SHARED_TASKS;
        let s = if owner {
            store.for_device(owner_device(t))
        } else {
            store.clone()
        };
        let mut task = Task {
            t,
            owner,
            s,
            m: Model::default(),
            rng: Rng(seed ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            n: Names { t },
            ops: 0,
            stats: stats.clone(),
            backup_dir: backup_dir.clone(),
        };
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                task.step().await;
            }
            (task.t, task.m)
        }));
    }
    let mut models = Vec::new();
    for t in tasks {
        models.push(t.await.unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    let scans = scanner.await.unwrap();
    eprintln!("stress: {scans} whole-file scans ran alongside");

    // Every key of every model, with the store still open.
    for (t, m) in &models {
        let owner = *t >= SHARED_TASKS;
        let s = if owner {
            store.for_device(owner_device(*t))
        } else {
            store.clone()
        };
        verify_model(&s, m, &Names { t: *t }, owner, false)
            .await
            .unwrap_or_else(|e| panic!("task {t} at the end: {e}"));
    }
    store.close().await.unwrap();
    (models, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_mixing_every_operation_agree_with_the_model() {
    let secs = env_u64("WA_REDB_STRESS_SECS").unwrap_or(3);
    let seed = env_u64("WA_REDB_STRESS_SEED").unwrap_or(0x57_2E55);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stress.redb");
    let started = Instant::now();
    // A deadlock anywhere fails here instead of hanging the test.
    let limit = Duration::from_secs(secs * 4 + 120);
    // And if one blocks every runtime worker so that even the timer cannot
    // fire, a plain thread ends the process.
    let (done, watchdog) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            watchdog.recv_timeout(limit * 2 + Duration::from_secs(60))
        {
            eprintln!("stress: the runtime is stuck (deadlock?); aborting");
            std::process::abort();
        }
    });
    let (models, stats) = tokio::time::timeout(limit, run(path.clone(), secs, seed))
        .await
        .unwrap_or_else(|_| panic!("stress run did not finish within {limit:?}: deadlock?"));
    let ran = started.elapsed();

    // After a reopen, including the device-wide listings.
    let verified = tokio::time::timeout(limit, async {
        for (t, m) in &models {
            let owner = *t >= SHARED_TASKS;
            let d = if owner {
                owner_device(*t)
            } else {
                SHARED_DEVICE
            };
            let s = RedbStore::new_for_device(&path, d).await.unwrap();
            verify_model(&s, m, &Names { t: *t }, owner, true)
                .await
                .unwrap_or_else(|e| panic!("task {t} after reopen: {e}"));
        }
    })
    .await;
    assert!(verified.is_ok(), "verification after reopen did not finish");

    let keys: usize = models.iter().map(|(_, m)| m.rows() as usize).sum();
    let devices: BTreeSet<i32> = (SHARED_TASKS..TASKS).map(owner_device).collect();
    eprintln!(
        "stress: {TASKS} tasks for {secs} s: {} ops ({} writes, {} device-wide, {} checkpoints, \
         {} backups verified); {keys} rows in the final models over {} devices; run {ran:?}, total {:?}",
        stats.ops.load(Ordering::Relaxed),
        stats.writes.load(Ordering::Relaxed),
        stats.device_wide.load(Ordering::Relaxed),
        stats.checkpoints.load(Ordering::Relaxed),
        stats.backups.load(Ordering::Relaxed),
        devices.len() + 1,
        started.elapsed()
    );
    assert!(
        stats.ops.load(Ordering::Relaxed) > 1000,
        "too few operations ran"
    );
    drop(done);
}
