//! The fixed operation lists: every non-destructive read over the key
//! pools (the full read of a device), the fill of one device with
//! device-specific values, and every destructive operation at its widest.

use crate::diff_util::*;

/// Every non-destructive read over the key pools (plus the ones the fill
/// phase uses).
pub(crate) fn full_reads() -> Vec<Op> {
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

/// Writes every key of every table on device `dev`, with values specific to
/// the device (so a row seen on the wrong device shows).
pub(crate) fn fill_ops(dev: usize) -> Vec<Op> {
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
pub(crate) fn wipe_ops() -> Vec<Op> {
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
