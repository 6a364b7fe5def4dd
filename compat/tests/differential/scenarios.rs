//! The directed scenarios: hand-written step sequences for the contract's
//! probed corner cases (LID mappings, sync keys, tc tokens, message
//! secrets, pre-keys, the device record, sender-key devices and `LIKE`).

use crate::diff_util::{self, Op, Rng};
use crate::harness::Step;

fn on(dev: usize, op: Op) -> Step {
    Step { dev, op }
}

fn lid(lid: &str, phone: &str, created_at: i64, updated_at: i64) -> diff_util::LidSpec {
    diff_util::LidSpec {
        lid: lid.to_string(),
        phone: phone.to_string(),
        created_at,
        updated_at,
        source: "usync".to_string(),
    }
}

fn secret(id: &str, secret: u8, expires_at: i64, message_ts: i64) -> diff_util::SecretSpec {
    diff_util::SecretSpec {
        chat: "c@g.us".to_string(),
        sender: "s@lid".to_string(),
        id: id.to_string(),
        secret,
        expires_at,
        message_ts,
    }
}

/// Hand-written sequences for the contract's probed corner cases, so they
/// are compared whatever the random generator draws.
pub fn directed_scenarios() -> Vec<(&'static str, Vec<Step>)> {
    use Op::*;
    let get_pn = |phone| GetPnMapping { phone };
    vec![
        (
            "LID mappings: FK on the device row, created_at kept, get_pn_mapping ties",
            vec![
                on(
                    0,
                    PutLidMapping {
                        entry: lid("L1", "P", 150, 200),
                    },
                ),
                on(
                    0,
                    PutLidMappings {
                        entries: vec![lid("L1", "P", 150, 200)],
                    },
                ),
                on(0, PutLidMappings { entries: vec![] }),
                on(0, Create),
                on(
                    0,
                    PutLidMapping {
                        entry: lid("L1", "P", 150, 200),
                    },
                ),
                on(
                    0,
                    PutLidMapping {
                        entry: lid("L2", "P", 150, 100),
                    },
                ),
                on(0, get_pn("P")),
                on(
                    0,
                    PutLidMapping {
                        entry: lid("L1", "P", 999, 200),
                    },
                ),
                on(0, GetLidMapping { lid: "L1" }),
                on(
                    1,
                    PutLidMapping {
                        entry: lid("L1", "P", 1, 1),
                    },
                ),
                on(
                    1,
                    Save {
                        device: Box::new(device_spec()),
                    },
                ),
                on(
                    1,
                    PutLidMappings {
                        entries: vec![lid("Lc", "Q", 0, 100), lid("La", "Q", 0, 100)],
                    },
                ),
                on(
                    1,
                    PutLidMappings {
                        entries: vec![
                            lid("Le", "Q", 0, 100),
                            lid("Lb", "Q", 0, 100),
                            lid("Ld", "Q", 0, 100),
                        ],
                    },
                ),
                on(1, get_pn("Q")),
                on(
                    1,
                    PutLidMapping {
                        entry: lid("Lc", "R", 0, 100),
                    },
                ),
                on(1, get_pn("Q")),
                on(1, get_pn("R")),
                on(
                    1,
                    PutLidMapping {
                        entry: lid("Lb", "Q", 0, 300),
                    },
                ),
                on(1, get_pn("Q")),
                on(
                    1,
                    PutLidMapping {
                        entry: lid("Lb", "Q", 0, 50),
                    },
                ),
                on(1, get_pn("Q")),
                on(
                    1,
                    PutLidMappings {
                        entries: vec![lid("Lz", "Q", 1, 100), lid("Lz", "R", 2, 500)],
                    },
                ),
                on(1, get_pn("Q")),
                on(1, get_pn("R")),
                on(1, GetAllLidMappings),
                on(0, GetAllLidMappings),
                on(0, Reopen),
                on(
                    1,
                    PutLidMapping {
                        entry: lid("Ly", "R", 0, 500),
                    },
                ),
                on(1, get_pn("R")),
                on(1, GetAllLidMappings),
            ],
        ),
        (
            "sync keys: greatest usable key id, not the latest stored",
            vec![
                on(
                    0,
                    SetSyncKey {
                        key_id: &[0, 0, 2],
                        key_data: vec![1; 32],
                        fingerprint: vec![],
                        timestamp: 1,
                    },
                ),
                on(
                    0,
                    SetSyncKey {
                        key_id: &[0, 0, 1],
                        key_data: vec![2; 32],
                        fingerprint: vec![7],
                        timestamp: 2,
                    },
                ),
                on(0, GetLatestSyncKeyId),
                on(
                    0,
                    SetSyncKey {
                        key_id: &[0, 0, 2, 0],
                        key_data: vec![1; 16],
                        fingerprint: vec![],
                        timestamp: 3,
                    },
                ),
                on(0, GetLatestSyncKeyId),
                on(
                    0,
                    GetSyncKey {
                        key_id: &[0, 0, 2, 0],
                    },
                ),
                on(
                    0,
                    SetSyncKey {
                        key_id: &[0, 0, 2],
                        key_data: vec![],
                        fingerprint: vec![],
                        timestamp: 0,
                    },
                ),
                on(0, GetLatestSyncKeyId),
                on(0, GetSyncKey { key_id: &[0, 0, 2] }),
                on(1, GetLatestSyncKeyId),
                on(
                    0,
                    SetSyncKey {
                        key_id: &[],
                        key_data: vec![3; 32],
                        fingerprint: vec![],
                        timestamp: 0,
                    },
                ),
                on(0, GetSyncKey { key_id: &[] }),
                on(0, GetLatestSyncKeyId),
            ],
        ),
        (
            "tc tokens: touch and receive merge, two-window expiry",
            vec![
                on(0, TouchTcToken { jid: "t", ts: 5000 }),
                on(
                    0,
                    StoreReceivedTcToken {
                        jid: "t",
                        token: vec![1],
                        ts: 4000,
                    },
                ),
                on(0, GetTcToken { jid: "t" }),
                on(0, TouchTcToken { jid: "t", ts: 6000 }),
                on(0, TouchTcToken { jid: "t", ts: 1000 }),
                on(
                    0,
                    StoreReceivedTcToken {
                        jid: "t",
                        token: vec![2],
                        ts: 3000,
                    },
                ),
                on(0, GetTcToken { jid: "t" }),
                on(
                    0,
                    StoreReceivedTcToken {
                        jid: "t",
                        token: vec![3],
                        ts: 4000,
                    },
                ),
                on(0, GetTcToken { jid: "t" }),
                on(
                    0,
                    StoreReceivedTcToken {
                        jid: "t",
                        token: vec![],
                        ts: 7000,
                    },
                ),
                on(
                    0,
                    StoreReceivedTcToken {
                        jid: "t",
                        token: vec![4],
                        ts: 10,
                    },
                ),
                on(0, GetTcToken { jid: "t" }),
                on(
                    0,
                    PutTcToken {
                        jid: "t",
                        token: vec![5],
                        token_ts: 1,
                        sender_ts: None,
                    },
                ),
                on(0, GetTcToken { jid: "t" }),
                on(
                    1,
                    TouchTcToken {
                        jid: "recent",
                        ts: 3000,
                    },
                ),
                on(
                    1,
                    TouchTcToken {
                        jid: "stale",
                        ts: 500,
                    },
                ),
                on(
                    1,
                    PutTcToken {
                        jid: "live",
                        token: vec![1],
                        token_ts: 500,
                        sender_ts: Some(2500),
                    },
                ),
                on(
                    1,
                    PutTcToken {
                        jid: "dead",
                        token: vec![1],
                        token_ts: 500,
                        sender_ts: None,
                    },
                ),
                on(
                    1,
                    PutTcToken {
                        jid: "edge",
                        token: vec![1],
                        token_ts: 1000,
                        sender_ts: None,
                    },
                ),
                on(
                    1,
                    PutTcToken {
                        jid: "edge2",
                        token: vec![],
                        token_ts: 5000,
                        sender_ts: Some(2000),
                    },
                ),
                on(
                    1,
                    DeleteExpiredTcTokens {
                        token_cutoff: 1000,
                        sender_cutoff: 2000,
                    },
                ),
                on(1, GetAllTcTokenJids),
                on(0, GetAllTcTokenJids),
            ],
        ),
        (
            "message secrets: merge rules, inclusive expiry",
            vec![
                on(
                    0,
                    PutMsgSecrets {
                        entries: vec![
                            secret("a", 1, 10, 5),
                            secret("a", 2, 20, 0),
                            secret("b", 3, 30, 0),
                        ],
                    },
                ),
                on(
                    0,
                    GetMsgSecretWithTs {
                        chat: "c@g.us",
                        sender: "s@lid",
                        id: "a",
                    },
                ),
                on(0, DeleteExpiredMsgSecrets { cutoff: 19 }),
                on(0, DeleteExpiredMsgSecrets { cutoff: 20 }),
                on(
                    0,
                    GetMsgSecret {
                        chat: "c@g.us",
                        sender: "s@lid",
                        id: "a",
                    },
                ),
                on(
                    0,
                    PutMsgSecret {
                        chat: "c@g.us",
                        sender: "s@lid",
                        id: "b",
                        secret: 9,
                    },
                ),
                on(0, DeleteExpiredMsgSecrets { cutoff: i64::MAX }),
                on(
                    0,
                    GetMsgSecretWithTs {
                        chat: "c@g.us",
                        sender: "s@lid",
                        id: "b",
                    },
                ),
                on(0, PutMsgSecrets { entries: vec![] }),
                on(
                    1,
                    GetMsgSecret {
                        chat: "c@g.us",
                        sender: "s@lid",
                        id: "b",
                    },
                ),
            ],
        ),
        (
            "pre-keys: batch load dedups and skips, marking never inserts",
            vec![
                on(
                    0,
                    StorePrekeysBatch {
                        keys: vec![(9, vec![9]), (5, vec![5]), (3, vec![3]), (5, vec![6])],
                        uploaded: false,
                    },
                ),
                on(
                    0,
                    LoadPrekeysBatch {
                        ids: vec![9, 5, 3, 5, 42],
                    },
                ),
                on(0, RemovePrekey { id: 5 }),
                on(0, MarkPrekeysUploaded { ids: vec![5, 9] }),
                on(0, LoadPrekey { id: 5 }),
                on(0, GetMaxPrekeyId),
                on(1, GetMaxPrekeyId),
                on(
                    0,
                    StoreSignedPrekey {
                        id: 7,
                        record: vec![],
                    },
                ),
                on(
                    0,
                    StoreSignedPrekey {
                        id: 2,
                        record: vec![2],
                    },
                ),
                on(
                    0,
                    StoreSignedPrekey {
                        id: 11,
                        record: vec![11],
                    },
                ),
                on(0, LoadAllSignedPrekeys),
            ],
        ),
        (
            "device record: save without create, create twice, other account",
            vec![
                on(0, Exists),
                on(0, Load),
                on(
                    0,
                    Save {
                        device: Box::new(device_spec()),
                    },
                ),
                on(0, Create),
                on(0, Load),
                on(1, Create),
                on(1, Create),
                on(1, Load),
                on(1, Exists),
                on(0, Reopen),
                on(0, Load),
                on(1, Load),
            ],
        ),
        (
            "sender-key devices, empty values, LIKE matching",
            vec![
                on(
                    0,
                    SetSenderKeyStatus {
                        group: "g",
                        entries: vec![("a", false), ("a", true), ("b", false)],
                    },
                ),
                on(
                    0,
                    SetSenderKeyStatus {
                        group: "g2",
                        entries: vec![("a", false)],
                    },
                ),
                on(0, DeleteSenderKeyDeviceRows { jids: vec!["a"] }),
                on(0, GetSenderKeyDevices { group: "g" }),
                on(0, GetSenderKeyDevices { group: "g2" }),
                on(
                    0,
                    PutSession {
                        addr: "5511x0@c.us.0",
                        data: vec![],
                    },
                ),
                on(
                    0,
                    GetSession {
                        addr: "5511x0@c.us.0",
                    },
                ),
                on(0, HasSignalStateForUser { user: "5511_0" }),
                on(0, HasSignalStateForUser { user: "5511x" }),
                on(
                    0,
                    PutIdentity {
                        addr: "ABC:3@lid",
                        key: 1,
                    },
                ),
                on(0, HasSignalStateForUser { user: "abc" }),
                on(1, HasSignalStateForUser { user: "abc" }),
                on(
                    0,
                    PutGroupMetadata {
                        group: "g",
                        blob: vec![],
                    },
                ),
                on(0, GetGroupMetadata { group: "g" }),
            ],
        ),
    ]
}

fn device_spec() -> diff_util::DeviceSpec {
    diff_util::DeviceSpec::generate(&mut Rng::new(42))
}
