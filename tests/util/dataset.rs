//! A deterministic data set with rows in every table of a store, for tests
//! that damage, fault or reopen a store and then check what is left.
//!
//! [`populate`] writes it (and panics on failure: it builds a known-good
//! state); [`check`] reads it back without ever panicking and reports
//! every difference and every error, so a test can classify the outcome.
//! Every value depends on the device id, so the data of two accounts in one
//! file differ.

#![allow(dead_code)]

use std::fmt::Debug;
use std::sync::Arc;

use bytes::Bytes;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::libsignal::protocol::{KeyPair, PrivateKey};
use wacore::store::Device;
use wacore::store::error::StoreError;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::RedbStore;

/// splitmix64: small, deterministic.
#[derive(Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

fn seed(d: i32, tag: &str, i: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in tag.bytes().chain(d.to_le_bytes()).chain(i.to_le_bytes()) {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// An opaque value: mostly small, every 37th one spans several pages.
pub fn blob(d: i32, tag: &str, i: u32) -> Vec<u8> {
    let mut rng = Rng(seed(d, tag, i));
    let len = if i % 37 == 36 {
        5000 + rng.below(3000) as usize
    } else {
        1 + rng.below(600) as usize
    };
    rng.bytes(len)
}

pub fn bytes32(d: i32, tag: &str, i: u32) -> [u8; 32] {
    Rng(seed(d, tag, i)).bytes(32).try_into().unwrap()
}

pub fn addr(i: u32) -> String {
    format!("55{:08}@c.us.{}", i, i % 3)
}
pub fn group(i: u32) -> String {
    format!("1203630{i:05}@g.us")
}
pub fn device_jid(i: u32) -> String {
    format!("55{:08}:{}@s.whatsapp.net", i / 3, i % 3)
}
pub fn lid(i: u32) -> String {
    format!("1000000{i:06}")
}
pub fn phone(i: u32) -> String {
    // Two LIDs per phone number: exercises get_pn_mapping's choice.
    format!("5511{:07}", i / 2)
}
pub fn chat(i: u32) -> String {
    format!("55{:08}@s.whatsapp.net", i % 11)
}
pub fn msg_id(i: u32) -> String {
    format!("3EB0{i:012X}")
}
pub fn sync_key_id(i: u32) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}
pub const COLLECTIONS: [&str; 5] = [
    "regular",
    "regular_low",
    "regular_high",
    "critical_block",
    "critical_unblock_low",
];

fn key_pair(d: i32, k: u32) -> KeyPair {
    // A valid private key: clamp like X25519 does.
    let mut bytes = bytes32(d, "keypair", k);
    bytes[0] &= 248;
    bytes[31] &= 127;
    bytes[31] |= 64;
    KeyPair::try_from(PrivateKey::deserialize(&bytes).unwrap()).unwrap()
}

/// The device record of account `d`, deterministic (so that the file
/// layout, and hence what a seeded damage hits, is the same every run).
pub fn device(d: i32) -> Device {
    let mut dev = Device::new();
    dev.noise_key = key_pair(d, 1);
    dev.identity_key = key_pair(d, 2);
    dev.signed_pre_key = key_pair(d, 3);
    dev.signed_pre_key_signature = [d as u8; 64];
    dev.push_name = format!("push-{d}");
    dev.registration_id = (d as u32).wrapping_mul(7919) % 16380 + 1;
    dev.adv_secret_key = bytes32(d, "adv", 0);
    dev.login_counter = d;
    dev
}

pub fn sync_key(d: i32, i: u32) -> AppStateSyncKey {
    AppStateSyncKey {
        key_data: bytes32(d, "sync", i).to_vec(),
        fingerprint: blob(d, "fp", i % 5),
        timestamp: i as i64 + d as i64,
    }
}

pub fn hash_state(d: i32, k: u32, n: u32) -> HashState {
    let mut s = HashState {
        version: k as u64 + 1 + d.unsigned_abs() as u64,
        hash: [k as u8; 128],
        ..Default::default()
    };
    for i in 0..n.min(40) {
        s.index_value_map.insert(
            format!("idx-{k}-{i}"),
            bytes32(d, "ivm", k * 1000 + i).to_vec(),
        );
    }
    s
}

pub fn lid_entry(d: i32, i: u32) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: lid(i),
        phone_number: phone(i),
        created_at: 1_600_000_000 + i as i64,
        updated_at: 1_700_000_000 + i as i64 + d as i64,
        learning_source: ["usync", "peer_pn_message", "other"][i as usize % 3].into(),
    }
}

pub fn device_list(d: i32, i: u32) -> DeviceListRecord {
    DeviceListRecord {
        user: format!("55{i:08}"),
        devices: (0..(i % 4 + 1))
            .map(|k| DeviceInfo::new(k, Some(k + d.unsigned_abs() % 7)).with_hosting(k == 3))
            .collect(),
        timestamp: 1_700_000_000 + i as i64,
        phash: i.is_multiple_of(2).then(|| format!("2:{i}")),
        raw_id: (!i.is_multiple_of(3)).then_some(i),
    }
}

pub fn tc_token(d: i32, i: u32) -> TcTokenEntry {
    TcTokenEntry {
        token: blob(d, "tc", i),
        token_timestamp: 1_700_000_000 + i as i64,
        sender_timestamp: i.is_multiple_of(2).then_some(1_700_000_100 + i as i64),
    }
}

pub fn msg_secret(d: i32, i: u32) -> MsgSecretEntry {
    MsgSecretEntry {
        chat: Arc::from(chat(i)),
        sender: Arc::from(addr(i)),
        msg_id: Arc::from(msg_id(i)),
        secret: bytes32(d, "secret", i),
        expires_at: 0,
        message_ts: 1_700_000_000 + i as i64,
    }
}

/// Rows per table, given the scale `n`.
pub struct Sizes {
    pub n: u32,
    pub signed: u32,
    pub sync_keys: u32,
    pub groups: u32,
}

pub fn sizes(n: u32) -> Sizes {
    Sizes {
        n,
        signed: n.min(16),
        sync_keys: n.min(20),
        groups: 5,
    }
}

/// Writes the data set of account `s.device_id()` at scale `n`.
pub async fn populate(s: &RedbStore, n: u32) {
    let d = s.device_id();
    let z = sizes(n);
    s.save(&device(d)).await.unwrap();
    let ids: Vec<(Arc<str>, [u8; 32])> = (0..n)
        .map(|i| (Arc::from(addr(i)), bytes32(d, "identity", i)))
        .collect();
    s.put_identities_batch(&ids).await.unwrap();
    let sessions: Vec<(Arc<str>, Bytes)> = (0..n)
        .map(|i| (Arc::from(addr(i)), Bytes::from(blob(d, "session", i))))
        .collect();
    s.put_sessions_batch(&sessions).await.unwrap();
    for uploaded in [true, false] {
        let keys: Vec<(u32, Bytes)> = (0..n)
            .filter(|i| (i % 2 == 0) == uploaded)
            .map(|i| (i + 1, Bytes::from(blob(d, "prekey", i))))
            .collect();
        s.store_prekeys_batch(&keys, uploaded).await.unwrap();
    }
    for i in 0..z.signed {
        s.store_signed_prekey(i + 1, &blob(d, "signed", i))
            .await
            .unwrap();
    }
    let sks: Vec<(Arc<str>, Bytes)> = (0..n)
        .map(|i| {
            (
                Arc::from(sender_key_name(i)),
                Bytes::from(blob(d, "senderkey", i)),
            )
        })
        .collect();
    s.put_sender_keys_batch(&sks).await.unwrap();
    for i in 0..z.sync_keys {
        s.set_sync_key(&sync_key_id(i), sync_key(d, i))
            .await
            .unwrap();
    }
    for (k, name) in COLLECTIONS.iter().enumerate() {
        s.set_version(name, hash_state(d, k as u32, n))
            .await
            .unwrap();
        let macs: Vec<AppStateMutationMAC> = (0..n)
            .map(|i| AppStateMutationMAC {
                index_mac: mac_index(k as u32, i).to_vec(),
                value_mac: bytes32(d, "valuemac", k as u32 * 100_000 + i).to_vec(),
            })
            .collect();
        s.put_mutation_macs(name, k as u64 + 1, &macs)
            .await
            .unwrap();
    }
    for g in 0..z.groups {
        let jids: Vec<String> = (0..n / z.groups)
            .map(|j| device_jid(g * 1000 + j))
            .collect();
        let entries: Vec<(&str, bool)> = jids
            .iter()
            .enumerate()
            .map(|(j, jid)| (jid.as_str(), j % 2 == 0))
            .collect();
        s.set_sender_key_status(&group(g), &entries).await.unwrap();
    }
    let lids: Vec<LidPnMappingEntry> = (0..n).map(|i| lid_entry(d, i)).collect();
    s.put_lid_mappings(&lids).await.unwrap();
    for i in 0..n {
        s.save_base_key(&addr(i), &msg_id(i), &blob(d, "basekey", i))
            .await
            .unwrap();
    }
    s.update_device_lists((0..n).map(|i| device_list(d, i)).collect())
        .await
        .unwrap();
    for i in 0..n {
        s.put_group_metadata(&group(i), &blob(d, "groupmeta", i))
            .await
            .unwrap();
        s.put_tc_token(&tc_jid(i), &tc_token(d, i)).await.unwrap();
        s.store_sent_message(&chat(i), &msg_id(i), &blob(d, "sent", i))
            .await
            .unwrap();
    }
    let inbound: Vec<(String, String, String, Vec<u8>)> = (0..n)
        .map(|i| (chat(i), addr(i), msg_id(i), blob(d, "inbound", i)))
        .collect();
    let rows: Vec<PendingInboundRow<'_>> = inbound
        .iter()
        .map(|(c, s, id, m)| PendingInboundRow {
            chat: c,
            sender: s,
            id,
            message: m,
        })
        .collect();
    s.store_pending_inbound_batch(&rows).await.unwrap();
    let secrets: Vec<MsgSecretEntry> = (0..n).map(|i| msg_secret(d, i)).collect();
    assert_eq!(s.put_msg_secrets(secrets).await.unwrap(), n as usize);
}

pub fn sender_key_name(i: u32) -> String {
    format!("{}::{}", group(i % 7), addr(i))
}
pub fn tc_jid(i: u32) -> String {
    format!("{}@lid", lid(i))
}
pub fn mac_index(k: u32, i: u32) -> [u8; 32] {
    bytes32(0, "indexmac", k * 100_000 + i)
}

/// What [`check`] found.
#[derive(Default)]
pub struct Check {
    /// Read calls made.
    pub reads: usize,
    /// Reads that returned something other than the data set.
    pub diffs: Vec<String>,
    /// Calls that failed: (what, error).
    pub errors: Vec<(String, StoreError)>,
}

impl Check {
    pub fn is_clean(&self) -> bool {
        self.diffs.is_empty() && self.errors.is_empty()
    }

    /// Records one read: its result is compared with `want`.
    pub fn read<T: PartialEq + Debug>(
        &mut self,
        what: impl FnOnce() -> String,
        got: Result<T, StoreError>,
        want: T,
    ) {
        self.reads += 1;
        match got {
            Ok(v) if v == want => {}
            Ok(v) => {
                if self.diffs.len() < 50 {
                    let mut shown = format!("{v:?}");
                    shown.truncate(120);
                    self.diffs.push(format!("{}: got {shown}", what()));
                } else {
                    self.diffs.push(String::new());
                }
            }
            Err(e) => self.errors.push((what(), e)),
        }
    }

    /// Records one read whose result is checked by `ok`.
    pub fn read_with<T>(
        &mut self,
        what: impl FnOnce() -> String,
        got: Result<T, StoreError>,
        ok: impl FnOnce(&T) -> bool,
    ) {
        self.reads += 1;
        match got {
            Ok(v) if ok(&v) => {}
            Ok(_) => self.diffs.push(what()),
            Err(e) => self.errors.push((what(), e)),
        }
    }

    pub fn merge(&mut self, other: Check) {
        self.reads += other.reads;
        self.diffs.extend(other.diffs);
        self.errors.extend(other.errors);
    }
}

fn device_fields(dev: &Device) -> (String, u32, [u8; 32], i32) {
    (
        dev.push_name.clone(),
        dev.registration_id,
        dev.adv_secret_key,
        dev.login_counter,
    )
}

/// Reads back every row [`populate`] wrote for `s.device_id()`, without
/// consuming anything and without panicking. With `take_sent`, the sent
/// messages are also taken (the only way to read them), which removes them.
pub async fn check(s: &RedbStore, n: u32, take_sent: bool) -> Check {
    let d = s.device_id();
    let z = sizes(n);
    let mut c = Check::default();
    c.read_with(
        || "load device".into(),
        s.load().await,
        |dev: &Option<Device>| dev.as_ref().map(device_fields) == Some(device_fields(&device(d))),
    );
    for i in 0..n {
        c.read(
            || format!("identity {i}"),
            s.load_identity(&addr(i)).await,
            Some(bytes32(d, "identity", i)),
        );
        c.read(
            || format!("session {i}"),
            s.get_session(&addr(i)).await.map(|v| v.map(|b| b.to_vec())),
            Some(blob(d, "session", i)),
        );
        c.read(
            || format!("prekey {}", i + 1),
            s.load_prekey(i + 1).await.map(|v| v.map(|b| b.to_vec())),
            Some(blob(d, "prekey", i)),
        );
        c.read(
            || format!("sender key {i}"),
            s.get_sender_key(&sender_key_name(i)).await,
            Some(blob(d, "senderkey", i)),
        );
        c.read(
            || format!("base key {i}"),
            s.has_same_base_key(&addr(i), &msg_id(i), &blob(d, "basekey", i))
                .await,
            true,
        );
        c.read_with(
            || format!("device list {i}"),
            s.get_devices(&format!("55{i:08}")).await,
            |got: &Option<DeviceListRecord>| {
                let want = device_list(d, i);
                got.as_ref().is_some_and(|r| {
                    format!(
                        "{:?}",
                        (&r.user, &r.devices, r.timestamp, &r.phash, r.raw_id)
                    ) == format!(
                        "{:?}",
                        (
                            &want.user,
                            &want.devices,
                            want.timestamp,
                            &want.phash,
                            want.raw_id
                        )
                    )
                })
            },
        );
        c.read(
            || format!("group metadata {i}"),
            s.get_group_metadata(&group(i)).await,
            Some(blob(d, "groupmeta", i)),
        );
        c.read(
            || format!("tc token {i}"),
            s.get_tc_token(&tc_jid(i))
                .await
                .map(|t| t.map(|t| (t.token, t.token_timestamp, t.sender_timestamp))),
            {
                let t = tc_token(d, i);
                Some((t.token, t.token_timestamp, t.sender_timestamp))
            },
        );
        c.read(
            || format!("pending inbound {i}"),
            s.get_pending_inbound(&chat(i), &addr(i), &msg_id(i)).await,
            Some(blob(d, "inbound", i)),
        );
        let e = msg_secret(d, i);
        c.read(
            || format!("msg secret {i}"),
            s.get_msg_secret_with_ts(&e.chat, &e.sender, &e.msg_id)
                .await,
            Some((e.secret.to_vec(), e.message_ts)),
        );
        let l = lid_entry(d, i);
        c.read(
            || format!("lid mapping {i}"),
            s.get_lid_mapping(&l.lid).await.map(|e| {
                e.map(|e| {
                    (
                        e.phone_number,
                        e.created_at,
                        e.updated_at,
                        e.learning_source,
                    )
                })
            }),
            Some((
                l.phone_number,
                l.created_at,
                l.updated_at,
                l.learning_source,
            )),
        );
    }
    if n > 0 {
        c.read(
            || "has_signal_state_for_user".into(),
            s.has_signal_state_for_user(&addr(0)[..10]).await,
            true,
        );
        c.read(|| "max prekey id".into(), s.get_max_prekey_id().await, n);
        let ids: Vec<u32> = (1..=n).collect();
        c.read(
            || "prekeys batch".into(),
            s.load_prekeys_batch(&ids).await.map(|v| v.len()),
            n as usize,
        );
        // LIDs 2k and 2k+1 share a phone; the later updated_at (the
        // greater index) wins, so the last LID wins for its phone.
        let last = n - 1;
        c.read(
            || "pn mapping".into(),
            s.get_pn_mapping(&phone(last))
                .await
                .map(|e| e.map(|e| e.lid)),
            Some(lid(last)),
        );
        c.read(
            || "all lid mappings".into(),
            s.get_all_lid_mappings()
                .await
                .map(|v| v.into_iter().map(|e| e.lid).collect::<Vec<_>>()),
            (0..n).map(lid).collect(),
        );
        let mut jids: Vec<String> = (0..n).map(tc_jid).collect();
        jids.sort();
        c.read(
            || "all tc token jids".into(),
            s.get_all_tc_token_jids().await,
            jids,
        );
    }
    c.read(
        || "all signed prekeys".into(),
        s.load_all_signed_prekeys().await.map(|mut v| {
            v.sort();
            v
        }),
        (0..z.signed)
            .map(|i| (i + 1, blob(d, "signed", i)))
            .collect(),
    );
    for i in 0..z.signed {
        c.read(
            || format!("signed prekey {i}"),
            s.load_signed_prekey(i + 1).await,
            Some(blob(d, "signed", i)),
        );
    }
    for i in 0..z.sync_keys {
        c.read(
            || format!("sync key {i}"),
            s.get_sync_key(&sync_key_id(i))
                .await
                .map(|k| k.map(|k| (k.key_data, k.fingerprint, k.timestamp))),
            {
                let k = sync_key(d, i);
                Some((k.key_data, k.fingerprint, k.timestamp))
            },
        );
    }
    if z.sync_keys > 0 {
        c.read(
            || "latest sync key id".into(),
            s.get_latest_sync_key_id().await,
            Some(sync_key_id(z.sync_keys - 1)),
        );
    }
    for (k, name) in COLLECTIONS.iter().enumerate() {
        let want = hash_state(d, k as u32, n);
        c.read(
            || format!("version {name}"),
            s.get_version(name).await.map(|v| {
                let mut m: Vec<_> = v.index_value_map.into_iter().collect();
                m.sort();
                (v.version, v.hash.to_vec(), m)
            }),
            {
                let mut m: Vec<_> = want.index_value_map.into_iter().collect();
                m.sort();
                (want.version, want.hash.to_vec(), m)
            },
        );
        for i in 0..n {
            c.read(
                || format!("mutation mac {name} {i}"),
                s.get_mutation_mac(name, &mac_index(k as u32, i)).await,
                Some(bytes32(d, "valuemac", k as u32 * 100_000 + i).to_vec()),
            );
        }
        let idx: Vec<[u8; 32]> = (0..n).map(|i| mac_index(k as u32, i)).collect();
        c.read(
            || format!("mutation macs batch {name}"),
            s.get_mutation_macs(name, &idx).await.map(|m| m.len()),
            n as usize,
        );
    }
    for g in 0..z.groups {
        let mut want: Vec<(String, bool)> = (0..n / z.groups)
            .map(|j| (device_jid(g * 1000 + j), j % 2 == 0))
            .collect();
        want.sort();
        c.read(
            || format!("sender key devices {g}"),
            s.get_sender_key_devices(&group(g)).await.map(|mut v| {
                v.sort();
                v
            }),
            want,
        );
    }
    if take_sent {
        for i in 0..n {
            c.read(
                || format!("take sent message {i}"),
                s.take_sent_message(&chat(i), &msg_id(i)).await,
                Some(blob(d, "sent", i)),
            );
        }
    }
    c
}

/// The chain of an error's messages, outermost first.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(inner) = next {
        out.push_str(": ");
        out.push_str(&inner.to_string());
        next = inner.source();
    }
    out
}

/// The store's own error inside a `StoreError`, if there is one.
pub fn inner(e: &StoreError) -> Option<&whatsapp_rust_redb_storage::Error> {
    std::error::Error::source(e)?.downcast_ref()
}

/// The name of the store error variant inside `e` ("NoSpace", "Halted"...),
/// or the `StoreError` variant when the store's error is not inside.
pub fn variant(e: &StoreError) -> String {
    match inner(e) {
        Some(inner) => {
            let dbg = format!("{inner:?}");
            dbg.split([' ', '(', '{']).next().unwrap_or("").to_string()
        }
        None => {
            let dbg = format!("{e:?}");
            format!(
                "StoreError::{}",
                dbg.split([' ', '(', '{']).next().unwrap_or("")
            )
        }
    }
}
