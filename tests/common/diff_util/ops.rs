//! `Op`: one call of one trait method (or of `SkdmTracking`), with owned
//! arguments; its name and whether it can remove rows.

use super::canon::dbg;
use super::specs::{DevListSpec, DeviceSpec, LidSpec, SecretSpec};

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

impl Op {
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
