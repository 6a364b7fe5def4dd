//! The generator of random ops (`Op::generate`) over the key pools, with
//! the rare kinds re-rolled most of the time.

use super::ops::Op;
use super::pools::*;
use super::rng::Rng;
use super::specs::{DevListSpec, DeviceSpec, LidSpec, SecretSpec};

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
