//! Shared helpers of `tests/differential.rs` and `tests/isolation.rs`: a
//! seeded PRNG, small key pools (so keys collide), one `Op` per trait
//! method, a generator of random ops, and `apply`, which runs an op against
//! any `Backend` and renders the result canonically (unordered lists
//! sorted, structs without `PartialEq` rendered field by field) so that two
//! stores, or a store and a model, can be compared as strings.

#![allow(dead_code)] // each test binary uses a different subset

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::Arc;

use bytes::Bytes;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::libsignal::protocol::{KeyPair, PrivateKey};
use wacore::store::error::StoreError;
use wacore::store::traits::{
    AppStateSyncKey, Backend, DeviceInfo, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry,
    PendingInboundKey, PendingInboundRow, TcTokenEntry,
};
use wacore::store::{CachedNoiseCert, CachedServerCertChain, Device};
use wacore_binary::Jid;
use waproto::whatsapp as wa;
use whatsapp_rust_redb_storage::{RedbStore, SkdmTracking};

// ---------------------------------------------------------------------------
// PRNG
// ---------------------------------------------------------------------------

/// SplitMix64: tiny, seedable, identical on every platform.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    pub fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }

    pub fn bool(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    /// A small byte string (often empty, values from a tiny alphabet so that
    /// equal values occur).
    pub fn blob(&mut self) -> Vec<u8> {
        let len = self.pick(&[0usize, 0, 1, 1, 2, 3, 5]);
        (0..len).map(|_| self.pick(&[0u8, 1, 2, 255])).collect()
    }

    /// Length of a generated batch: usually 0..=4, rarely large (crossing
    /// SqliteStore's chunk sizes of 100/190/500/900 rows, with duplicates).
    pub fn batch_len(&mut self) -> usize {
        if self.chance(1, 40) {
            self.pick(&[101usize, 191, 250, 950])
        } else {
            self.below(5)
        }
    }
}

// ---------------------------------------------------------------------------
// Key pools
// ---------------------------------------------------------------------------

/// Signal addresses (sessions, identities, base keys).
pub const ADDRS: &[&str] = &[
    "123@c.us.0",
    "123:2@c.us.0",
    "12@lid.0",
    "ABC:3@lid.0",
    "1x3@c.us.0",
    "ñ1@lid.0",
];
/// `has_signal_state_for_user` arguments, including letters and LIKE
/// wildcards (SqliteStore uses SQL `LIKE`; so does RedbStore).
pub const USERS: &[&str] = &[
    "123", "12", "1", "abc", "1_3", "1%", "", "ABC:3", "123:2", "x", "ñ1", "Ñ1", "_1", "ñ_",
];
/// Numeric users only (exact prefix semantics).
pub const NUMERIC_USERS: &[&str] = &["123", "12", "1"];
/// Pre-key ids, all below 2^31 (SqliteStore stores them as i32).
pub const PREKEY_IDS: &[u32] = &[0, 1, 2, 7, 100, 0x00FF_FFFF, i32::MAX as u32];
pub const SIGNED_IDS: &[u32] = &[0, 1, 2, 11, i32::MAX as u32];
pub const SENDER_KEY_ADDRS: &[&str] = &[
    "g1@g.us:123@c.us.0",
    "g1@g.us:12@lid.0",
    "g2@g.us:123@c.us.0",
];
pub const SYNC_KEY_IDS: &[&[u8]] = &[&[], &[1], &[1, 0], &[2], &[0xff, 0xff]];
pub const APP_NAMES: &[&str] = &["reg", "regular", "regular_high", "critical_block", ""];
/// Seeds of 32-byte index MACs (`[seed; 32]`).
pub const MAC_SEEDS: &[u8] = &[0, 1, 2, 3];
/// Index MACs of other lengths (`get_mutation_mac` accepts any length).
pub const ODD_MACS: &[&[u8]] = &[&[], &[1, 2, 3], &[1; 33]];
pub const GROUPS: &[&str] = &["g@g.us", "g@g.us1", "g", "h@g.us", ""];
pub const DEVICE_JIDS: &[&str] = &[
    "1@s.whatsapp.net",
    "1:2@s.whatsapp.net",
    "2@lid",
    "12@s.whatsapp.net",
    "",
];
pub const LIDS: &[&str] = &["100000012345678", "100000012345679", "1000000123456780"];
pub const PHONES: &[&str] = &["559980000001", "559980000002", "55998000000"];
pub const SOURCES: &[&str] = &["usync", "history", ""];
pub const LID_TIMES: &[i64] = &[0, 100, 200, -1, i64::MIN, i64::MAX];
pub const MSG_IDS: &[&str] = &["M1", "M2", "m1", ""];
pub const DL_USERS: &[&str] = &["123", "456", "12", ""];
pub const TC_JIDS: &[&str] = &["t3", "t4", "ta", "tz", ""];
pub const TC_TIMES: &[i64] = &[-5, 0, 999, 1000, 1001, 2000, i64::MIN, i64::MAX];
pub const CHATS: &[&str] = &["a@s.whatsapp.net", "g@g.us"];
pub const SENDERS: &[&str] = &["a@s.whatsapp.net", "b@lid"];
/// Cutoffs of the wall-clock sweeps (sent messages, pending inbound): far in
/// the past or far in the future, so the result does not depend on when
/// the test runs (any time between 2001 and 2096).
pub const WALL_CUTOFFS: &[i64] = &[i64::MIN, 0, 1_000_000_000, 4_000_000_000, i64::MAX];
pub const SECRET_EXPIRY: &[i64] = &[0, 10, 20, 30, -1, i64::MAX];
pub const SECRET_TS: &[i64] = &[0, 5, 7, -1, i64::MIN, i64::MAX];
pub const SECRET_CUTOFFS: &[i64] = &[i64::MIN, -1, 0, 10, 15, 20, 30, 100, i64::MAX];
pub const JIDS_PN: &[&str] = &[
    "5511987650001@s.whatsapp.net",
    "5511987650001:5@s.whatsapp.net",
];
pub const JIDS_LID: &[&str] = &["100000012345678@lid", "100000012345678:3@lid"];

// ---------------------------------------------------------------------------
// Ops
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct LidSpec {
    pub lid: String,
    pub phone: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub source: String,
}

impl LidSpec {
    pub fn entry(&self) -> LidPnMappingEntry {
        LidPnMappingEntry {
            lid: self.lid.clone(),
            phone_number: self.phone.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            learning_source: self.source.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DevListSpec {
    pub user: String,
    /// (device_id, key_index, is_hosted)
    pub devices: Vec<(u32, Option<u32>, bool)>,
    pub timestamp: i64,
    pub phash: Option<String>,
    pub raw_id: Option<u32>,
}

impl DevListSpec {
    pub fn record(&self) -> DeviceListRecord {
        DeviceListRecord {
            user: self.user.clone(),
            devices: self
                .devices
                .iter()
                .map(|&(device_id, key_index, is_hosted)| DeviceInfo {
                    device_id,
                    key_index,
                    is_hosted,
                })
                .collect(),
            timestamp: self.timestamp,
            phash: self.phash.clone(),
            raw_id: self.raw_id,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SecretSpec {
    pub chat: String,
    pub sender: String,
    pub id: String,
    pub secret: u8,
    pub expires_at: i64,
    pub message_ts: i64,
}

impl SecretSpec {
    pub fn entry(&self) -> MsgSecretEntry {
        MsgSecretEntry {
            chat: self.chat.as_str().into(),
            sender: self.sender.as_str().into(),
            msg_id: self.id.as_str().into(),
            secret: [self.secret; 32],
            expires_at: self.expires_at,
            message_ts: self.message_ts,
        }
    }
}

/// Every persisted field of a `Device`, plus non-default values of the
/// runtime-only ones (which SqliteStore normalises on load).
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub pn: Option<&'static str>,
    pub lid: Option<&'static str>,
    pub registration_id: u32,
    pub key_seed: u8,
    pub signed_pre_key_id: u32,
    pub account: Option<u8>,
    pub push_name: &'static str,
    pub app_version: (u32, u32, u32, i64),
    pub edge_routing_info: Option<Vec<u8>>,
    pub props_hash: Option<&'static str>,
    pub next_pre_key_id: u32,
    pub first_unupload_pre_key_id: u32,
    pub server_has_prekeys: bool,
    pub nct_salt: Option<Vec<u8>>,
    pub cert_chain: Option<u8>,
    pub login_counter: i32,
    pub lid_migrated: bool,
    pub last_signed_pre_key_rotation_ms: i64,
    pub read_receipts_disabled: bool,
    /// Runtime-only: custom `device_props.os`, Android client profile,
    /// `nct_salt_sync_seen = true`.
    pub runtime_fields_set: bool,
}

fn keypair(seed: u8) -> KeyPair {
    let private = PrivateKey::deserialize(&[seed; 32]).expect("32-byte private key");
    KeyPair::try_from(private).expect("public key derivation")
}

impl DeviceSpec {
    pub fn build(&self) -> Device {
        let mut d = Device::new();
        d.pn = self.pn.map(|s| s.parse::<Jid>().expect("valid jid"));
        d.lid = self.lid.map(|s| s.parse::<Jid>().expect("valid jid"));
        d.registration_id = self.registration_id;
        d.noise_key = keypair(self.key_seed);
        d.identity_key = keypair(self.key_seed.wrapping_add(1));
        d.signed_pre_key = keypair(self.key_seed.wrapping_add(2));
        d.signed_pre_key_id = self.signed_pre_key_id;
        d.signed_pre_key_signature = [self.key_seed; 64];
        d.adv_secret_key = [self.key_seed.wrapping_add(3); 32];
        d.account = self.account.map(|s| {
            Arc::new(wa::ADVSignedDeviceIdentity {
                details: Some(vec![s; 3]),
                account_signature_key: Some(vec![s; 32]),
                account_signature: (s % 2 == 0).then(|| vec![s; 64]),
                device_signature: Some(Vec::new()),
            })
        });
        d.push_name = self.push_name.to_string();
        (
            d.app_version_primary,
            d.app_version_secondary,
            d.app_version_tertiary,
            d.app_version_last_fetched_ms,
        ) = self.app_version;
        d.edge_routing_info = self.edge_routing_info.clone();
        d.props_hash = self.props_hash.map(str::to_string);
        d.next_pre_key_id = self.next_pre_key_id;
        d.first_unupload_pre_key_id = self.first_unupload_pre_key_id;
        d.server_has_prekeys = self.server_has_prekeys;
        d.nct_salt = self.nct_salt.clone();
        d.server_cert_chain = self.cert_chain.map(|s| CachedServerCertChain {
            intermediate: CachedNoiseCert {
                key: [s; 32],
                not_before: -1,
                not_after: i64::MAX,
            },
            leaf: CachedNoiseCert {
                key: [s.wrapping_add(1); 32],
                not_before: 1_700_000_000,
                not_after: 1_800_000_000,
            },
        });
        d.login_counter = self.login_counter;
        d.lid_migrated = self.lid_migrated;
        d.last_signed_pre_key_rotation_ms = self.last_signed_pre_key_rotation_ms;
        d.read_receipts_disabled = self.read_receipts_disabled;
        if self.runtime_fields_set {
            let mut props = (*d.device_props).clone();
            props.os = Some("custom-os".to_string());
            d.device_props = Arc::new(props);
            d.client_profile = wacore::client_profile::ClientProfile::android("14");
            d.nct_salt_sync_seen = true;
        }
        d
    }

    pub fn generate(rng: &mut Rng) -> Self {
        DeviceSpec {
            pn: rng.chance(2, 3).then(|| rng.pick(JIDS_PN)),
            lid: rng.chance(2, 3).then(|| rng.pick(JIDS_LID)),
            registration_id: rng.pick(&[0, 1, 12345, i32::MAX as u32, u32::MAX]),
            key_seed: rng.pick(&[1u8, 7, 42]),
            signed_pre_key_id: rng.pick(&[0, 1, 2, u32::MAX]),
            account: rng.chance(1, 2).then(|| rng.pick(&[1u8, 2])),
            push_name: rng.pick(&["", "Alice", "ñandú 🦀"]),
            app_version: (
                rng.pick(&[0, 2, u32::MAX]),
                rng.pick(&[0, 3000, u32::MAX]),
                rng.pick(&[0, 1_042_742_319, u32::MAX]),
                rng.pick(&[0, -1, 1_700_000_000_000, i64::MAX, i64::MIN]),
            ),
            edge_routing_info: rng.pick(&[None, Some(vec![]), Some(vec![1, 2, 3])]),
            props_hash: rng.pick(&[None, Some(""), Some("h1")]),
            next_pre_key_id: rng.pick(&[0, 1, 913, u32::MAX]),
            first_unupload_pre_key_id: rng.pick(&[0, 101, u32::MAX]),
            server_has_prekeys: rng.bool(),
            nct_salt: rng.pick(&[None, Some(vec![]), Some(vec![9, 9])]),
            cert_chain: rng.chance(1, 2).then(|| rng.pick(&[5u8, 6])),
            login_counter: rng.pick(&[0, -5, i32::MAX, i32::MIN]),
            lid_migrated: rng.bool(),
            last_signed_pre_key_rotation_ms: rng.pick(&[0, 1_700_000_000_000, i64::MIN]),
            read_receipts_disabled: rng.bool(),
            runtime_fields_set: rng.bool(),
        }
    }
}

/// One call of one trait method (or of `SkdmTracking`), with owned
/// arguments.
#[derive(Debug, Clone)]
pub enum Op {
    // SignalStore
    PutIdentity {
        addr: &'static str,
        key: u8,
    },
    PutIdentitiesBatch {
        items: Vec<(&'static str, u8)>,
    },
    LoadIdentity {
        addr: &'static str,
    },
    DeleteIdentity {
        addr: &'static str,
    },
    GetSession {
        addr: &'static str,
    },
    PutSession {
        addr: &'static str,
        data: Vec<u8>,
    },
    PutSessionsBatch {
        items: Vec<(&'static str, Vec<u8>)>,
    },
    DeleteSession {
        addr: &'static str,
    },
    HasSession {
        addr: &'static str,
    },
    HasSignalStateForUser {
        user: &'static str,
    },
    StorePrekey {
        id: u32,
        record: Vec<u8>,
        uploaded: bool,
    },
    StorePrekeysBatch {
        keys: Vec<(u32, Vec<u8>)>,
        uploaded: bool,
    },
    LoadPrekey {
        id: u32,
    },
    LoadPrekeysBatch {
        ids: Vec<u32>,
    },
    MarkPrekeysUploaded {
        ids: Vec<u32>,
    },
    RemovePrekey {
        id: u32,
    },
    GetMaxPrekeyId,
    StoreSignedPrekey {
        id: u32,
        record: Vec<u8>,
    },
    LoadSignedPrekey {
        id: u32,
    },
    LoadAllSignedPrekeys,
    RemoveSignedPrekey {
        id: u32,
    },
    PutSenderKey {
        addr: &'static str,
        record: Vec<u8>,
    },
    PutSenderKeysBatch {
        items: Vec<(&'static str, Vec<u8>)>,
    },
    GetSenderKey {
        addr: &'static str,
    },
    DeleteSenderKey {
        addr: &'static str,
    },
    // AppSyncStore
    GetSyncKey {
        key_id: &'static [u8],
    },
    SetSyncKey {
        key_id: &'static [u8],
        key_data: Vec<u8>,
        fingerprint: Vec<u8>,
        timestamp: i64,
    },
    GetVersion {
        name: &'static str,
    },
    SetVersion {
        name: &'static str,
        version: u64,
        hash_seed: u8,
        map: Vec<(String, Vec<u8>)>,
        fatal: bool,
    },
    PutMutationMacs {
        name: &'static str,
        version: u64,
        macs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    GetMutationMac {
        name: &'static str,
        index: Vec<u8>,
    },
    GetMutationMacs {
        name: &'static str,
        seeds: Vec<u8>,
    },
    DeleteMutationMacs {
        name: &'static str,
        indexes: Vec<Vec<u8>>,
    },
    ClearMutationMacs {
        name: &'static str,
    },
    GetLatestSyncKeyId,
    // ProtocolStore: sender-key devices
    GetSenderKeyDevices {
        group: &'static str,
    },
    SetSenderKeyStatus {
        group: &'static str,
        entries: Vec<(&'static str, bool)>,
    },
    ClearSenderKeyDevices {
        group: &'static str,
    },
    DeleteSenderKeyDeviceRows {
        jids: Vec<&'static str>,
    },
    ClearAllSenderKeyDevices,
    // LID-PN
    GetLidMapping {
        lid: &'static str,
    },
    GetPnMapping {
        phone: &'static str,
    },
    PutLidMapping {
        entry: LidSpec,
    },
    PutLidMappings {
        entries: Vec<LidSpec>,
    },
    GetAllLidMappings,
    // base keys
    SaveBaseKey {
        addr: &'static str,
        msg_id: &'static str,
        key: Vec<u8>,
    },
    HasSameBaseKey {
        addr: &'static str,
        msg_id: &'static str,
        key: Vec<u8>,
    },
    DeleteBaseKey {
        addr: &'static str,
        msg_id: &'static str,
    },
    // device registry
    UpdateDeviceList {
        record: DevListSpec,
    },
    UpdateDeviceLists {
        records: Vec<DevListSpec>,
    },
    GetDevices {
        user: &'static str,
    },
    DeleteDevices {
        user: &'static str,
    },
    // group metadata
    GetGroupMetadata {
        group: &'static str,
    },
    PutGroupMetadata {
        group: &'static str,
        blob: Vec<u8>,
    },
    DeleteGroupMetadata {
        group: &'static str,
    },
    // tc tokens
    GetTcToken {
        jid: &'static str,
    },
    PutTcToken {
        jid: &'static str,
        token: Vec<u8>,
        token_ts: i64,
        sender_ts: Option<i64>,
    },
    DeleteTcToken {
        jid: &'static str,
    },
    GetAllTcTokenJids,
    DeleteExpiredTcTokens {
        token_cutoff: i64,
        sender_cutoff: i64,
    },
    TouchTcToken {
        jid: &'static str,
        ts: i64,
    },
    StoreReceivedTcToken {
        jid: &'static str,
        token: Vec<u8>,
        ts: i64,
    },
    // sent messages
    StoreSentMessage {
        chat: &'static str,
        id: &'static str,
        payload: Vec<u8>,
    },
    TakeSentMessage {
        chat: &'static str,
        id: &'static str,
    },
    DeleteExpiredSentMessages {
        cutoff: i64,
    },
    // pending inbound
    StorePendingInbound {
        chat: &'static str,
        sender: &'static str,
        id: &'static str,
        msg: Vec<u8>,
    },
    GetPendingInbound {
        chat: &'static str,
        sender: &'static str,
        id: &'static str,
    },
    DeletePendingInbound {
        chat: &'static str,
        sender: &'static str,
        id: &'static str,
    },
    DeleteExpiredPendingInbound {
        cutoff: i64,
    },
    StorePendingInboundBatch {
        rows: Vec<(&'static str, &'static str, &'static str, Vec<u8>)>,
    },
    DeletePendingInboundBatch {
        keys: Vec<(&'static str, &'static str, &'static str)>,
    },
    // MsgSecretStore
    PutMsgSecret {
        chat: &'static str,
        sender: &'static str,
        id: &'static str,
        secret: u8,
    },
    PutMsgSecrets {
        entries: Vec<SecretSpec>,
    },
    GetMsgSecret {
        chat: &'static str,
        sender: &'static str,
        id: &'static str,
    },
    GetMsgSecretWithTs {
        chat: &'static str,
        sender: &'static str,
        id: &'static str,
    },
    DeleteExpiredMsgSecrets {
        cutoff: i64,
    },
    // DeviceStore
    Save {
        device: Box<DeviceSpec>,
    },
    Load,
    Exists,
    Create,
    SnapshotDb {
        name: String,
        extra: Option<Vec<u8>>,
    },
    ResourceReport,
    // SkdmTracking (RedbStore's extension trait)
    SkdmGetRecipients {
        group: &'static str,
    },
    SkdmAdd {
        group: &'static str,
        jids: Vec<String>,
    },
    SkdmClear {
        group: &'static str,
    },
    SkdmMarkForget {
        group: &'static str,
        participant: &'static str,
    },
    SkdmConsume {
        group: &'static str,
    },
    /// Not a store method: the harness closes every handle of the file and
    /// opens it again (`apply` treats it as a no-op).
    Reopen,
}

/// Number of variants of `Op` (the differential test checks that its
/// default run covers all of them).
pub const OP_VARIANTS: usize = 88;

/// Number of op kinds `Op::generate` chooses from.
const KINDS: usize = 93;

/// Rare op kinds (expensive or uninteresting) are re-rolled most of the time.
fn is_rare(kind: usize) -> bool {
    matches!(
        kind,
        83 /* snapshot */ | 84 /* resource report */ | 92 /* reopen */
    )
}

impl Op {
    /// A random op. `uniq` makes snapshot names unique within a run (two
    /// snapshots of one name in the same second would collide on disk).
    pub fn generate(rng: &mut Rng, users: &[&'static str], uniq: &mut u64) -> Op {
        let mut kind = rng.below(KINDS);
        while is_rare(kind) && !rng.chance(1, 6) {
            kind = rng.below(KINDS);
        }
        let addr = |rng: &mut Rng| rng.pick(ADDRS);
        let n = |rng: &mut Rng| rng.batch_len();
        match kind {
            0 => Op::PutIdentity {
                addr: addr(rng),
                key: rng.pick(&[0u8, 1, 2]),
            },
            1 => Op::PutIdentitiesBatch {
                items: (0..n(rng))
                    .map(|_| (addr(rng), rng.pick(&[0u8, 1, 2])))
                    .collect(),
            },
            2 | 3 => Op::LoadIdentity { addr: addr(rng) },
            4 => Op::DeleteIdentity { addr: addr(rng) },
            5 | 6 => Op::GetSession { addr: addr(rng) },
            7 => Op::PutSession {
                addr: addr(rng),
                data: rng.blob(),
            },
            8 => Op::PutSessionsBatch {
                items: (0..n(rng)).map(|_| (addr(rng), rng.blob())).collect(),
            },
            9 => Op::DeleteSession { addr: addr(rng) },
            10 => Op::HasSession { addr: addr(rng) },
            11 | 12 => Op::HasSignalStateForUser {
                user: rng.pick(users),
            },
            13 => Op::StorePrekey {
                id: rng.pick(PREKEY_IDS),
                record: rng.blob(),
                uploaded: rng.bool(),
            },
            14 => Op::StorePrekeysBatch {
                keys: (0..n(rng))
                    .map(|_| (rng.pick(PREKEY_IDS), rng.blob()))
                    .collect(),
                uploaded: rng.bool(),
            },
            15 => Op::LoadPrekey {
                id: rng.pick(PREKEY_IDS),
            },
            16 => Op::LoadPrekeysBatch {
                ids: (0..n(rng)).map(|_| rng.pick(PREKEY_IDS)).collect(),
            },
            17 => Op::MarkPrekeysUploaded {
                ids: (0..n(rng)).map(|_| rng.pick(PREKEY_IDS)).collect(),
            },
            18 => Op::RemovePrekey {
                id: rng.pick(PREKEY_IDS),
            },
            19 => Op::GetMaxPrekeyId,
            20 => Op::StoreSignedPrekey {
                id: rng.pick(SIGNED_IDS),
                record: rng.blob(),
            },
            21 => Op::LoadSignedPrekey {
                id: rng.pick(SIGNED_IDS),
            },
            22 => Op::LoadAllSignedPrekeys,
            23 => Op::RemoveSignedPrekey {
                id: rng.pick(SIGNED_IDS),
            },
            24 => Op::PutSenderKey {
                addr: rng.pick(SENDER_KEY_ADDRS),
                record: rng.blob(),
            },
            25 => Op::PutSenderKeysBatch {
                items: (0..n(rng))
                    .map(|_| (rng.pick(SENDER_KEY_ADDRS), rng.blob()))
                    .collect(),
            },
            26 => Op::GetSenderKey {
                addr: rng.pick(SENDER_KEY_ADDRS),
            },
            27 => Op::DeleteSenderKey {
                addr: rng.pick(SENDER_KEY_ADDRS),
            },
            28 => Op::GetSyncKey {
                key_id: rng.pick(SYNC_KEY_IDS),
            },
            29 | 30 => Op::SetSyncKey {
                key_id: rng.pick(SYNC_KEY_IDS),
                key_data: vec![rng.pick(&[1u8, 2]); rng.pick(&[32usize, 32, 32, 16, 0, 33])],
                fingerprint: rng.blob(),
                timestamp: rng.pick(&[0, 1, -1, i64::MAX]),
            },
            31 => Op::GetVersion {
                name: rng.pick(APP_NAMES),
            },
            32 => Op::SetVersion {
                name: rng.pick(APP_NAMES),
                version: rng.pick(&[0, 1, 5, u64::MAX]),
                hash_seed: rng.pick(&[0u8, 7]),
                map: (0..rng.below(3))
                    .map(|_| (rng.pick(&["", "k1", "k2"]).to_string(), rng.blob()))
                    .collect(),
                fatal: rng.bool(),
            },
            33 | 34 => Op::PutMutationMacs {
                name: rng.pick(APP_NAMES),
                version: rng.pick(&[0, 3, u64::MAX]),
                macs: (0..n(rng)).map(|_| (mac_index(rng), rng.blob())).collect(),
            },
            35 => Op::GetMutationMac {
                name: rng.pick(APP_NAMES),
                index: mac_index(rng),
            },
            36 => Op::GetMutationMacs {
                name: rng.pick(APP_NAMES),
                seeds: (0..n(rng)).map(|_| rng.pick(MAC_SEEDS)).collect(),
            },
            37 => Op::DeleteMutationMacs {
                name: rng.pick(APP_NAMES),
                indexes: (0..n(rng)).map(|_| mac_index(rng)).collect(),
            },
            38 => Op::ClearMutationMacs {
                name: rng.pick(APP_NAMES),
            },
            39 => Op::GetLatestSyncKeyId,
            40 | 41 => Op::GetSenderKeyDevices {
                group: rng.pick(GROUPS),
            },
            42 | 43 => Op::SetSenderKeyStatus {
                group: rng.pick(GROUPS),
                entries: (0..n(rng))
                    .map(|_| (rng.pick(DEVICE_JIDS), rng.bool()))
                    .collect(),
            },
            44 => Op::ClearSenderKeyDevices {
                group: rng.pick(GROUPS),
            },
            45 => Op::DeleteSenderKeyDeviceRows {
                jids: (0..n(rng).min(4)).map(|_| rng.pick(DEVICE_JIDS)).collect(),
            },
            46 => {
                if rng.chance(1, 3) {
                    Op::ClearAllSenderKeyDevices
                } else {
                    Op::GetSenderKeyDevices {
                        group: rng.pick(GROUPS),
                    }
                }
            }
            47 => Op::GetLidMapping {
                lid: rng.pick(LIDS),
            },
            48 | 49 => Op::GetPnMapping {
                phone: rng.pick(PHONES),
            },
            50 | 51 => Op::PutLidMapping {
                entry: lid_spec(rng),
            },
            52 => Op::PutLidMappings {
                entries: (0..n(rng).min(6)).map(|_| lid_spec(rng)).collect(),
            },
            53 => Op::GetAllLidMappings,
            54 => Op::SaveBaseKey {
                addr: rng.pick(&ADDRS[..3]),
                msg_id: rng.pick(MSG_IDS),
                key: base_key(rng),
            },
            55 => Op::HasSameBaseKey {
                addr: rng.pick(&ADDRS[..3]),
                msg_id: rng.pick(MSG_IDS),
                key: base_key(rng),
            },
            56 => Op::DeleteBaseKey {
                addr: rng.pick(&ADDRS[..3]),
                msg_id: rng.pick(MSG_IDS),
            },
            57 => Op::UpdateDeviceList {
                record: dev_list(rng),
            },
            58 => Op::UpdateDeviceLists {
                records: (0..n(rng).min(5)).map(|_| dev_list(rng)).collect(),
            },
            59 => Op::GetDevices {
                user: rng.pick(DL_USERS),
            },
            60 => Op::DeleteDevices {
                user: rng.pick(DL_USERS),
            },
            61 => Op::GetGroupMetadata {
                group: rng.pick(GROUPS),
            },
            62 => Op::PutGroupMetadata {
                group: rng.pick(GROUPS),
                blob: rng.blob(),
            },
            63 => Op::DeleteGroupMetadata {
                group: rng.pick(GROUPS),
            },
            64 => Op::GetTcToken {
                jid: rng.pick(TC_JIDS),
            },
            65 => Op::PutTcToken {
                jid: rng.pick(TC_JIDS),
                token: rng.blob(),
                token_ts: rng.pick(TC_TIMES),
                sender_ts: rng.chance(1, 2).then(|| rng.pick(TC_TIMES)),
            },
            66 => Op::DeleteTcToken {
                jid: rng.pick(TC_JIDS),
            },
            67 => Op::GetAllTcTokenJids,
            68 => Op::DeleteExpiredTcTokens {
                token_cutoff: rng.pick(TC_TIMES),
                sender_cutoff: rng.pick(TC_TIMES),
            },
            69 => Op::TouchTcToken {
                jid: rng.pick(TC_JIDS),
                ts: rng.pick(TC_TIMES),
            },
            70 => Op::StoreReceivedTcToken {
                jid: rng.pick(TC_JIDS),
                token: rng.blob(),
                ts: rng.pick(TC_TIMES),
            },
            71 => Op::StoreSentMessage {
                chat: rng.pick(CHATS),
                id: rng.pick(MSG_IDS),
                payload: rng.blob(),
            },
            72 => Op::TakeSentMessage {
                chat: rng.pick(CHATS),
                id: rng.pick(MSG_IDS),
            },
            73 => Op::DeleteExpiredSentMessages {
                cutoff: rng.pick(WALL_CUTOFFS),
            },
            74 => Op::StorePendingInbound {
                chat: rng.pick(CHATS),
                sender: rng.pick(SENDERS),
                id: rng.pick(MSG_IDS),
                msg: rng.blob(),
            },
            75 => Op::GetPendingInbound {
                chat: rng.pick(CHATS),
                sender: rng.pick(SENDERS),
                id: rng.pick(MSG_IDS),
            },
            76 => Op::DeletePendingInbound {
                chat: rng.pick(CHATS),
                sender: rng.pick(SENDERS),
                id: rng.pick(MSG_IDS),
            },
            77 => Op::DeleteExpiredPendingInbound {
                cutoff: rng.pick(WALL_CUTOFFS),
            },
            78 => Op::StorePendingInboundBatch {
                rows: (0..n(rng).min(6))
                    .map(|_| {
                        (
                            rng.pick(CHATS),
                            rng.pick(SENDERS),
                            rng.pick(MSG_IDS),
                            rng.blob(),
                        )
                    })
                    .collect(),
            },
            79 => Op::DeletePendingInboundBatch {
                keys: (0..n(rng).min(6))
                    .map(|_| (rng.pick(CHATS), rng.pick(SENDERS), rng.pick(MSG_IDS)))
                    .collect(),
            },
            80 => {
                if rng.bool() {
                    Op::PutMsgSecret {
                        chat: rng.pick(CHATS),
                        sender: rng.pick(SENDERS),
                        id: rng.pick(MSG_IDS),
                        secret: rng.pick(&[1u8, 2, 3]),
                    }
                } else {
                    Op::PutMsgSecrets {
                        entries: (0..n(rng)).map(|_| secret_spec(rng)).collect(),
                    }
                }
            }
            81 => {
                let (chat, sender, id) = (rng.pick(CHATS), rng.pick(SENDERS), rng.pick(MSG_IDS));
                if rng.bool() {
                    Op::GetMsgSecret { chat, sender, id }
                } else {
                    Op::GetMsgSecretWithTs { chat, sender, id }
                }
            }
            82 => Op::DeleteExpiredMsgSecrets {
                cutoff: rng.pick(SECRET_CUTOFFS),
            },
            83 => {
                *uniq += 1;
                let name = match rng.below(5) {
                    0 => rng.pick(&["", "...", "..", &"a".repeat(101)]).to_string(),
                    _ => format!("snap-{uniq}"),
                };
                Op::SnapshotDb {
                    name,
                    extra: rng.chance(1, 2).then(|| rng.blob()),
                }
            }
            84 => Op::ResourceReport,
            85 | 90 | 91 => match rng.below(4) {
                0 => Op::Save {
                    device: Box::new(DeviceSpec::generate(rng)),
                },
                1 => Op::Create,
                2 => Op::Exists,
                _ => Op::Load,
            },
            86 => Op::SkdmGetRecipients {
                group: rng.pick(GROUPS),
            },
            87 => Op::SkdmAdd {
                group: rng.pick(GROUPS),
                jids: (0..n(rng).min(4))
                    .map(|_| rng.pick(DEVICE_JIDS).to_string())
                    .collect(),
            },
            88 => match rng.below(3) {
                0 => Op::SkdmClear {
                    group: rng.pick(GROUPS),
                },
                _ => Op::SkdmMarkForget {
                    group: rng.pick(GROUPS),
                    participant: rng.pick(DEVICE_JIDS),
                },
            },
            89 => Op::SkdmConsume {
                group: rng.pick(GROUPS),
            },
            92 => Op::Reopen,
            _ => unreachable!("op kind {kind}"),
        }
    }

    /// The variant's name.
    pub fn name(&self) -> String {
        dbg(self)
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect()
    }

    /// Whether the op can remove rows (the isolation test checks the other
    /// devices after each of these).
    pub fn is_destructive(&self) -> bool {
        matches!(
            self,
            Op::DeleteIdentity { .. }
                | Op::DeleteSession { .. }
                | Op::RemovePrekey { .. }
                | Op::RemoveSignedPrekey { .. }
                | Op::DeleteSenderKey { .. }
                | Op::DeleteMutationMacs { .. }
                | Op::ClearMutationMacs { .. }
                | Op::ClearSenderKeyDevices { .. }
                | Op::DeleteSenderKeyDeviceRows { .. }
                | Op::ClearAllSenderKeyDevices
                | Op::DeleteBaseKey { .. }
                | Op::DeleteDevices { .. }
                | Op::DeleteGroupMetadata { .. }
                | Op::DeleteTcToken { .. }
                | Op::DeleteExpiredTcTokens { .. }
                | Op::TakeSentMessage { .. }
                | Op::DeleteExpiredSentMessages { .. }
                | Op::DeletePendingInbound { .. }
                | Op::DeleteExpiredPendingInbound { .. }
                | Op::DeletePendingInboundBatch { .. }
                | Op::DeleteExpiredMsgSecrets { .. }
                | Op::SkdmClear { .. }
                | Op::SkdmConsume { .. }
        )
    }
}

fn mac_index(rng: &mut Rng) -> Vec<u8> {
    if rng.chance(1, 6) {
        rng.pick(ODD_MACS).to_vec()
    } else {
        vec![rng.pick(MAC_SEEDS); 32]
    }
}

fn base_key(rng: &mut Rng) -> Vec<u8> {
    rng.pick(&[vec![], vec![1], vec![2], vec![1, 2]])
}

fn lid_spec(rng: &mut Rng) -> LidSpec {
    LidSpec {
        lid: rng.pick(LIDS).to_string(),
        phone: rng.pick(PHONES).to_string(),
        created_at: rng.pick(LID_TIMES),
        updated_at: rng.pick(LID_TIMES),
        source: rng.pick(SOURCES).to_string(),
    }
}

fn dev_list(rng: &mut Rng) -> DevListSpec {
    DevListSpec {
        user: rng.pick(DL_USERS).to_string(),
        devices: (0..rng.below(4))
            .map(|_| {
                (
                    rng.pick(&[0u32, 1, 5, u32::MAX]),
                    rng.pick(&[None, Some(0u32), Some(7), Some(u32::MAX)]),
                    rng.bool(),
                )
            })
            .collect(),
        // In i32 range: SqliteStore truncates the timestamp to i32 (a
        // documented deliberate difference).
        timestamp: rng.pick(&[0, 1, -1, 1_700_000_000, i32::MAX as i64, i32::MIN as i64]),
        phash: rng.pick(&[None, Some(String::new()), Some("2:abc".to_string())]),
        raw_id: rng.pick(&[None, Some(0u32), Some(42), Some(u32::MAX)]),
    }
}

fn secret_spec(rng: &mut Rng) -> SecretSpec {
    SecretSpec {
        chat: rng.pick(CHATS).to_string(),
        sender: rng.pick(SENDERS).to_string(),
        id: rng.pick(MSG_IDS).to_string(),
        secret: rng.pick(&[1u8, 2, 3]),
        expires_at: rng.pick(SECRET_EXPIRY),
        message_ts: rng.pick(SECRET_TS),
    }
}

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

/// A rendered result. `res`: the canonical form compared for equality
/// (`Err` compares equal to any `Err`). `ordered`: for list reads whose
/// order RedbStore promises to reproduce, the list in returned order.
#[derive(Debug, Clone, PartialEq)]
pub struct Out {
    pub res: Result<String, String>,
    pub ordered: Option<String>,
}

/// SqliteStore's `ID_PARAM_CHUNK`: ids per `IN (...)` query.
pub const SQLITE_ID_CHUNK: usize = 900;

/// Marker for results the model cannot predict.
pub const ANY: &str = "<any>";

impl Out {
    pub fn ok(s: impl Into<String>) -> Out {
        Out {
            res: Ok(s.into()),
            ordered: None,
        }
    }

    pub fn err(s: impl Into<String>) -> Out {
        Out {
            res: Err(s.into()),
            ordered: None,
        }
    }

    pub fn any() -> Out {
        Out::ok(ANY)
    }

    pub fn with_order(mut self, ordered: String) -> Out {
        if self.res.is_ok() {
            self.ordered = Some(ordered);
        }
        self
    }
}

pub fn dbg<T: Debug>(v: T) -> String {
    format!("{v:?}")
}

fn out<T, F: FnOnce(T) -> String>(r: Result<T, StoreError>, f: F) -> Out {
    match r {
        Ok(v) => Out::ok(f(v)),
        Err(e) => Out::err(e.to_string()),
    }
}

/// How two results differ: `None` if they agree.
pub fn difference(a: &Out, b: &Out) -> Option<&'static str> {
    match (&a.res, &b.res) {
        (Ok(x), _) | (_, Ok(x)) if x == ANY => None,
        (Err(_), Err(_)) => None,
        (Ok(x), Ok(y)) if x != y => Some("different results"),
        (Ok(_), Ok(_)) => match (&a.ordered, &b.ordered) {
            (Some(x), Some(y)) if x != y => Some("same set, different order"),
            _ => None,
        },
        _ => Some("one Ok, the other Err"),
    }
}

pub fn canon_hash_state(s: &HashState) -> String {
    let map: BTreeMap<_, _> = s.index_value_map.iter().collect();
    format!(
        "HashState {{ version: {}, hash: {:?}, map: {:?}, fatal: {} }}",
        s.version,
        &s.hash[..],
        map,
        s.mac_mismatch_fatal
    )
}

pub fn canon_sync_key(k: &Option<AppStateSyncKey>) -> String {
    dbg(k)
}

pub fn hash_state_of(
    version: u64,
    hash_seed: u8,
    map: &[(String, Vec<u8>)],
    fatal: bool,
) -> HashState {
    HashState {
        version,
        hash: [hash_seed; 128],
        index_value_map: map.iter().cloned().collect::<HashMap<_, _>>(),
        mac_mismatch_fatal: fatal,
    }
}

fn key_pair_bytes(k: &KeyPair) -> Vec<u8> {
    let mut v = k.private_key.serialize().to_vec();
    v.extend_from_slice(k.public_key.public_key_bytes());
    v
}

/// Every field of a loaded `Device`. With `masked`, the fields `create()`
/// fills randomly (keys, registration id, rotation time) are hidden: two
/// stores each create their own random device.
pub fn canon_device(d: &Device, masked: bool) -> String {
    let secret = |s: String| if masked { "*".to_string() } else { s };
    let fields: Vec<(&str, String)> = vec![
        ("pn", dbg(&d.pn)),
        ("lid", dbg(&d.lid)),
        ("registration_id", secret(d.registration_id.to_string())),
        ("noise_key", secret(dbg(key_pair_bytes(&d.noise_key)))),
        ("identity_key", secret(dbg(key_pair_bytes(&d.identity_key)))),
        (
            "signed_pre_key",
            secret(dbg(key_pair_bytes(&d.signed_pre_key))),
        ),
        ("signed_pre_key_id", d.signed_pre_key_id.to_string()),
        (
            "signed_pre_key_signature",
            secret(dbg(&d.signed_pre_key_signature[..])),
        ),
        ("adv_secret_key", secret(dbg(d.adv_secret_key))),
        ("account", dbg(&d.account)),
        ("push_name", dbg(&d.push_name)),
        ("app_version_primary", d.app_version_primary.to_string()),
        ("app_version_secondary", d.app_version_secondary.to_string()),
        ("app_version_tertiary", d.app_version_tertiary.to_string()),
        (
            "app_version_last_fetched_ms",
            d.app_version_last_fetched_ms.to_string(),
        ),
        ("device_props", dbg(&d.device_props)),
        ("client_profile", dbg(&d.client_profile)),
        ("edge_routing_info", dbg(&d.edge_routing_info)),
        ("props_hash", dbg(&d.props_hash)),
        ("next_pre_key_id", d.next_pre_key_id.to_string()),
        (
            "first_unupload_pre_key_id",
            d.first_unupload_pre_key_id.to_string(),
        ),
        ("server_has_prekeys", d.server_has_prekeys.to_string()),
        ("nct_salt", dbg(&d.nct_salt)),
        ("nct_salt_sync_seen", d.nct_salt_sync_seen.to_string()),
        ("server_cert_chain", dbg(&d.server_cert_chain)),
        ("login_counter", d.login_counter.to_string()),
        ("lid_migrated", d.lid_migrated.to_string()),
        (
            "last_signed_pre_key_rotation_ms",
            secret(d.last_signed_pre_key_rotation_ms.to_string()),
        ),
        (
            "read_receipts_disabled",
            d.read_receipts_disabled.to_string(),
        ),
    ];
    let body: Vec<String> = fields
        .into_iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    format!("Device {{ {} }}", body.join(", "))
}

/// What SqliteStore returns for a saved device: the runtime-only fields
/// reset (contract §4.1).
pub fn normalized(d: &Device) -> Device {
    let mut d = d.clone();
    d.device_props = Arc::new(wacore::store::device::DEVICE_PROPS.clone());
    d.client_profile = wacore::client_profile::ClientProfile::web();
    d.nct_salt_sync_seen = false;
    d
}

pub fn canon_lid(e: &LidPnMappingEntry) -> String {
    dbg(e)
}

pub fn canon_lid_list(v: &[LidPnMappingEntry]) -> (String, String) {
    let ordered: Vec<String> = v.iter().map(canon_lid).collect();
    let mut sorted = ordered.clone();
    sorted.sort();
    (dbg(sorted), dbg(ordered))
}

pub fn canon_tc(e: &Option<TcTokenEntry>) -> String {
    dbg(e)
}

pub fn canon_dev_list(r: &Option<DeviceListRecord>) -> String {
    dbg(r)
}

pub fn canon_macs(m: &HashMap<[u8; 32], Vec<u8>>) -> String {
    let sorted: BTreeMap<_, _> = m.iter().map(|(k, v)| (k.to_vec(), v.clone())).collect();
    dbg(sorted)
}

pub fn sorted<T: Ord + Debug + Clone>(v: &[T]) -> String {
    let mut v = v.to_vec();
    v.sort();
    dbg(v)
}

// ---------------------------------------------------------------------------
// Running an op against a store
// ---------------------------------------------------------------------------

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

/// SQL `LIKE` as SQLite evaluates it (ASCII case-insensitive, `%` and `_`
/// wildcards, no escape), written independently of the crate's own.
pub fn sql_like(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'%', rest)) => (0..=text.len()).any(|i| sql_like(rest, &text[i..])),
        Some((b'_', rest)) => {
            // `_` matches one character (UTF-8 aware).
            if text.is_empty() {
                return false;
            }
            let len = utf8_len(text[0]);
            text.len() >= len && sql_like(rest, &text[len..])
        }
        Some((&c, rest)) => {
            !text.is_empty() && text[0].eq_ignore_ascii_case(&c) && sql_like(rest, &text[1..])
        }
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}
