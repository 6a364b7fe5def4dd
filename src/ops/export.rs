//! Moving an account out of a store: [`RedbStore::export_to_backend`]
//! writes one account through any [`Backend`]'s own trait methods. The
//! user-facing documentation (what is kept, what the trait cannot carry) is
//! on that method.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::Device;
use wacore::store::error::StoreError;
use wacore::store::traits::{
    AppStateSyncKey, Backend, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry,
    PendingInboundRow as InboundEntry, TcTokenEntry,
};

use crate::engine::Snapshot;
use crate::error::{FileOpError, StorageError, StorageResult};

type Result<T, E = FileOpError> = std::result::Result<T, E>;
use crate::handle::RedbStore;
use crate::tables::codec::{
    BaseKeyRow, LidMappingRow, MsgSecretRow, MutationMacRow, PendingInboundRow, PrekeyRow,
    SentMessageRow, TcTokenRow, decode, decode_device,
};
use crate::tables::{
    APP_STATE_VERSIONS, BASE_KEYS, DEVICE_LISTS, DEVICES, GROUP_METADATA, IDENTITIES, LID_MAPPINGS,
    MSG_SECRETS, MUTATION_MACS, PENDING_INBOUND, PREKEYS, SENDER_KEY_DEVICES, SENDER_KEYS,
    SENT_MESSAGES, SESSIONS, SIGNED_PREKEYS, SYNC_KEYS, StoreKey, TC_TOKENS, Table, TableId,
};

/// Where a long operation (import, export) is.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// What is being done now, e.g. `"device 1: sessions"`.
    pub stage: &'a str,
    /// Rows done so far (bytes, for a replica's transfers).
    pub done: u64,
    /// Rows in all (an estimate until the work is done; bytes, for a
    /// replica's transfers).
    pub total: u64,
}

/// A progress callback; called often, from the task doing the work.
pub type ProgressFn = Arc<dyn Fn(&Progress<'_>) + Send + Sync>;

/// Options of [`RedbStore::export_to_backend`].
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct ExportOptions {
    /// Write into a target that already has a device record for its device
    /// id (merging: rows are upserted over what is there). Off by default:
    /// the export refuses, so that an account is not mixed with another by
    /// mistake.
    pub merge_into_existing: bool,
    /// `export_sqlite` (feature `sqlite`): replace the accounts the SQLite
    /// file already holds rows of (they are deleted there first). Without
    /// it, such an export is refused.
    pub overwrite: bool,
    /// Called as rows are written.
    pub progress: Option<ProgressFn>,
    /// The key of an encrypted source store.
    pub key: Option<crate::config::EncryptionKey>,
}

impl ExportOptions {
    /// Sets [`ExportOptions::key`]: the source store is encrypted.
    pub fn with_key(mut self, key: crate::config::EncryptionKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Sets [`ExportOptions::overwrite`].
    pub fn with_overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Sets [`ExportOptions::merge_into_existing`].
    pub fn with_merge_into_existing(mut self, merge: bool) -> Self {
        self.merge_into_existing = merge;
        self
    }

    /// Reports progress to `progress` as rows are written.
    pub fn with_progress(mut self, progress: ProgressFn) -> Self {
        self.progress = Some(progress);
        self
    }
}

/// What [`RedbStore::export_to_backend`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// The account exported (the source handle's device id).
    pub device_id: i32,
    /// Rows written, by source table name (tables without rows omitted).
    pub rows: BTreeMap<&'static str, u64>,
    /// All rows written.
    pub total_rows: u64,
    /// The target held rows of this account, deleted before the export
    /// (`export_sqlite` with `overwrite`).
    pub replaced: bool,
}

/// Lowercase hex (for dumps and import reports).
#[cfg(any(feature = "cli", feature = "sqlite"))]
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Every row of one account, decoded, read in one snapshot.
#[derive(Default)]
struct Account {
    device: Option<Device>,
    identities: Vec<(String, [u8; 32])>,
    sessions: Vec<(String, Vec<u8>)>,
    prekeys: Vec<(u32, PrekeyRow)>,
    signed_prekeys: Vec<(u32, Vec<u8>)>,
    sender_keys: Vec<(String, Vec<u8>)>,
    sync_keys: Vec<(Vec<u8>, AppStateSyncKey)>,
    versions: Vec<(String, HashState)>,
    macs: Vec<(String, Vec<u8>, MutationMacRow)>,
    sender_key_devices: Vec<(String, String, bool)>,
    lids: Vec<(String, LidMappingRow)>,
    base_keys: Vec<(String, String, Vec<u8>)>,
    device_lists: Vec<DeviceListRecord>,
    group_metadata: Vec<(String, Vec<u8>)>,
    tc_tokens: Vec<(String, TcTokenRow)>,
    sent: Vec<(String, String, SentMessageRow)>,
    pending: Vec<(String, String, String, PendingInboundRow)>,
    secrets: Vec<(String, String, String, MsgSecretRow)>,
}

impl Account {
    fn rows(&self) -> u64 {
        (self.device.is_some() as usize
            + self.identities.len()
            + self.sessions.len()
            + self.prekeys.len()
            + self.signed_prekeys.len()
            + self.sender_keys.len()
            + self.sync_keys.len()
            + self.versions.len()
            + self.macs.len()
            + self.sender_key_devices.len()
            + self.lids.len()
            + self.base_keys.len()
            + self.device_lists.len()
            + self.group_metadata.len()
            + self.tc_tokens.len()
            + self.sent.len()
            + self.pending.len()
            + self.secrets.len()) as u64
    }
}

/// Collects `(key, decoded value)` pairs of one table of device `d`.
fn collect<K: StoreKey, T>(
    s: &Snapshot<'_>,
    table: Table<K, &'static [u8]>,
    d: i32,
    mut f: impl FnMut(K::SelfType<'_>, &[u8]) -> StorageResult<T>,
) -> StorageResult<Vec<T>> {
    let mut out = Vec::new();
    s.visit(table, table.device(d), |k, v| {
        out.push(f(k, v)?);
        Ok(true)
    })?;
    Ok(out)
}

fn read_account(s: &Snapshot<'_>, d: i32) -> Result<Account> {
    let mut a = Account {
        device: s.get(DEVICES, d, decode_device)?.transpose()?,
        ..Account::default()
    };
    a.identities = collect(s, IDENTITIES, d, |(_, addr), v| {
        let key: [u8; 32] = v.try_into().map_err(|_| {
            StorageError::decode("identity key", format!("{addr}: {} bytes", v.len()))
        })?;
        Ok((addr.to_owned(), key))
    })?;
    a.sessions = collect(s, SESSIONS, d, |(_, k), v| Ok((k.to_owned(), v.to_vec())))?;
    a.prekeys = collect(s, PREKEYS, d, |(_, id), v| Ok((id, decode("prekey", v)?)))?;
    a.signed_prekeys = collect(s, SIGNED_PREKEYS, d, |(_, id), v| Ok((id, v.to_vec())))?;
    a.sender_keys = collect(s, SENDER_KEYS, d, |(_, k), v| {
        Ok((k.to_owned(), v.to_vec()))
    })?;
    a.sync_keys = collect(s, SYNC_KEYS, d, |(_, id), v| {
        Ok((id.to_vec(), decode("app state sync key", v)?))
    })?;
    a.versions = collect(s, APP_STATE_VERSIONS, d, |(_, name), v| {
        Ok((name.to_owned(), decode("app state version", v)?))
    })?;
    a.macs = collect(s, MUTATION_MACS, d, |(_, name, index), v| {
        Ok((name.to_owned(), index.to_vec(), decode("mutation mac", v)?))
    })?;
    s.visit(
        SENDER_KEY_DEVICES,
        SENDER_KEY_DEVICES.device(d),
        |(_, group, jid), has_key| {
            a.sender_key_devices
                .push((group.to_owned(), jid.to_owned(), has_key));
            Ok(true)
        },
    )?;
    a.lids = collect(s, LID_MAPPINGS, d, |(_, lid), v| {
        Ok((lid.to_owned(), decode::<LidMappingRow>("lid mapping", v)?))
    })?;
    // Insertion order: what decides get_pn_mapping ties in the target.
    a.lids.sort_by_key(|(_, row)| row.seq);
    a.base_keys = collect(s, BASE_KEYS, d, |(_, addr, id), v| {
        let row: BaseKeyRow = decode("base key", v)?;
        Ok((addr.to_owned(), id.to_owned(), row.key))
    })?;
    a.device_lists = collect(s, DEVICE_LISTS, d, |_, v| decode("device list", v))?;
    a.group_metadata = collect(s, GROUP_METADATA, d, |(_, g), v| {
        Ok((g.to_owned(), v.to_vec()))
    })?;
    a.tc_tokens = collect(s, TC_TOKENS, d, |(_, jid), v| {
        Ok((jid.to_owned(), decode("tc token", v)?))
    })?;
    a.sent = collect(s, SENT_MESSAGES, d, |(_, chat, id), v| {
        Ok((chat.to_owned(), id.to_owned(), decode("sent message", v)?))
    })?;
    a.pending = collect(s, PENDING_INBOUND, d, |(_, chat, sender, id), v| {
        Ok((
            chat.to_owned(),
            sender.to_owned(),
            id.to_owned(),
            decode("pending inbound message", v)?,
        ))
    })?;
    a.secrets = collect(s, MSG_SECRETS, d, |(_, chat, sender, id), v| {
        Ok((
            chat.to_owned(),
            sender.to_owned(),
            id.to_owned(),
            decode("message secret", v)?,
        ))
    })?;
    Ok(a)
}

/// Rows per call to the target: bounded transactions, steady progress.
const CHUNK: usize = 500;

/// Counts rows per table and reports progress.
struct Tally<'a> {
    progress: Option<&'a ProgressFn>,
    prefix: String,
    done: u64,
    total: u64,
    rows: BTreeMap<&'static str, u64>,
}

impl Tally<'_> {
    fn add(&mut self, table: TableId, n: usize) {
        if n == 0 {
            return;
        }
        *self.rows.entry(table.name()).or_default() += n as u64;
        self.done += n as u64;
        if let Some(p) = self.progress {
            let stage = format!("{}{}", self.prefix, table.name());
            p(&Progress {
                stage: &stage,
                done: self.done,
                total: self.total,
            });
        }
    }
}

impl RedbStore {
    /// Writes this handle's account (its device id) into `target` through
    /// `target`'s own trait methods, so that the account can move to any
    /// backend: back to `SqliteStore`, to another `RedbStore` file or device
    /// id, or elsewhere. The target is bound to its own device id, which
    /// need not equal this one.
    ///
    /// The account is read in one snapshot (into memory), then written
    /// table by table, the device record first (SqliteStore's LID table
    /// has a foreign key to it), LID mappings in their insertion order.
    /// Refuses a target that already has a device record unless
    /// [`ExportOptions::merge_into_existing`]. Not atomic on the target
    /// side: a failure leaves what was written so far.
    ///
    /// Everything the trait can express is kept, including values a plain
    /// read-through would lose: the `uploaded` flag of pre-keys (one batch
    /// call per value), the `version` of mutation MACs (one call per
    /// version), message-secret deadlines and timestamps, and the insertion
    /// order of LID mappings (so `get_pn_mapping` ties and the order of
    /// `get_all_lid_mappings` are the same in the target).
    ///
    /// # What the trait cannot carry
    ///
    /// The trait has no way to set some stored values; the target sets them
    /// itself:
    ///
    /// - `sent_messages.created_at` and `pending_inbound.inserted_at` become
    ///   the target's "now" (its clock at the export): the retry window
    ///   (2 h) and the pending-inbound window (7 days) restart.
    /// - SqliteStore's bookkeeping columns (`updated_at` of several tables,
    ///   `base_keys.created_at`, `msg_secrets.created_at`) are the export
    ///   time; the trait never reads them.
    /// - The device fields no store persists (`device_props`,
    ///   `client_profile`, `nct_salt_sync_seen`) are at their defaults, as
    ///   after any reload.
    /// - SqliteStore returns `load_all_signed_prekeys` and
    ///   `get_sender_key_devices` in insertion order, which after an export
    ///   is key order (the trait leaves that order unspecified).
    /// - With `merge_into_existing`, rows are upserted through the trait's
    ///   merge rules (e.g. a LID mapping keeps the target's `created_at`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), wacore::store::error::StoreError> {
    /// use wacore::store::traits::{DeviceStore, SignalStore};
    /// use whatsapp_rust_redb_storage::{ExportOptions, RedbStore};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let source = RedbStore::new(dir.path().join("a.redb")).await?;
    /// source.create().await?;
    /// source.put_session("a@c.us.0", b"record").await?;
    /// // Any `Backend` will do: another RedbStore, a SqliteStore...
    /// let target = RedbStore::new(dir.path().join("b.redb")).await?;
    /// let report = source.export_to_backend(&target, &ExportOptions::default()).await?;
    /// assert_eq!(report.rows["sessions"], 1);
    /// assert!(target.get_session("a@c.us.0").await?.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn export_to_backend<B: Backend + ?Sized>(
        &self,
        target: &B,
        options: &ExportOptions,
    ) -> Result<ExportReport, StoreError> {
        let d = self.device_id;
        if !options.merge_into_existing && target.exists().await? {
            return Err(FileOpError::TargetHasAccount { device_id: d }.into());
        }
        let account = self.read_for_op(move |s| read_account(s, d)).await?;
        let mut t = Tally {
            progress: options.progress.as_ref(),
            prefix: format!("device {d}: "),
            done: 0,
            total: account.rows(),
            rows: BTreeMap::new(),
        };
        write_account(target, account, &mut t).await?;
        Ok(ExportReport {
            device_id: d,
            total_rows: t.done,
            rows: t.rows,
            replaced: false,
        })
    }
}

async fn write_account<B: Backend + ?Sized>(
    target: &B,
    a: Account,
    t: &mut Tally<'_>,
) -> Result<(), StoreError> {
    if let Some(device) = &a.device {
        target.save(device).await?;
        t.add(TableId::DEVICES, 1);
    }
    for chunk in a.identities.chunks(CHUNK) {
        let items: Vec<(Arc<str>, [u8; 32])> = chunk
            .iter()
            .map(|(k, v)| (Arc::from(k.as_str()), *v))
            .collect();
        target.put_identities_batch(&items).await?;
        t.add(TableId::IDENTITIES, chunk.len());
    }
    for chunk in a.sessions.chunks(CHUNK) {
        let items: Vec<(Arc<str>, Bytes)> = chunk
            .iter()
            .map(|(k, v)| (Arc::from(k.as_str()), Bytes::copy_from_slice(v)))
            .collect();
        target.put_sessions_batch(&items).await?;
        t.add(TableId::SESSIONS, chunk.len());
    }
    // The `uploaded` flag rides on the batch call: one batch per value.
    for uploaded in [true, false] {
        let keys: Vec<(u32, Bytes)> = a
            .prekeys
            .iter()
            .filter(|(_, row)| row.uploaded == uploaded)
            .map(|(id, row)| (*id, Bytes::copy_from_slice(&row.record)))
            .collect();
        for chunk in keys.chunks(CHUNK) {
            target.store_prekeys_batch(chunk, uploaded).await?;
            t.add(TableId::PREKEYS, chunk.len());
        }
    }
    for (id, record) in &a.signed_prekeys {
        target.store_signed_prekey(*id, record).await?;
        t.add(TableId::SIGNED_PREKEYS, 1);
    }
    for chunk in a.sender_keys.chunks(CHUNK) {
        let items: Vec<(Arc<str>, Bytes)> = chunk
            .iter()
            .map(|(k, v)| (Arc::from(k.as_str()), Bytes::copy_from_slice(v)))
            .collect();
        target.put_sender_keys_batch(&items).await?;
        t.add(TableId::SENDER_KEYS, chunk.len());
    }
    for (id, key) in a.sync_keys {
        target.set_sync_key(&id, key).await?;
        t.add(TableId::SYNC_KEYS, 1);
    }
    for (name, state) in a.versions {
        target.set_version(&name, state).await?;
        t.add(TableId::APP_STATE_VERSIONS, 1);
    }
    // `version` rides on the call: one call per (collection, version) run.
    let mut runs: BTreeMap<(&str, u64), Vec<AppStateMutationMAC>> = BTreeMap::new();
    for (name, index_mac, row) in &a.macs {
        runs.entry((name.as_str(), row.version))
            .or_default()
            .push(AppStateMutationMAC {
                index_mac: index_mac.clone(),
                value_mac: row.value_mac.clone(),
            });
    }
    for ((name, version), macs) in &runs {
        for chunk in macs.chunks(CHUNK) {
            target.put_mutation_macs(name, *version, chunk).await?;
            t.add(TableId::MUTATION_MACS, chunk.len());
        }
    }
    let mut groups: BTreeMap<&str, Vec<(&str, bool)>> = BTreeMap::new();
    for (group, jid, has_key) in &a.sender_key_devices {
        groups
            .entry(group.as_str())
            .or_default()
            .push((jid.as_str(), *has_key));
    }
    for (group, entries) in &groups {
        for chunk in entries.chunks(CHUNK) {
            target.set_sender_key_status(group, chunk).await?;
            t.add(TableId::SENDER_KEY_DEVICES, chunk.len());
        }
    }
    let lids: Vec<LidPnMappingEntry> = a
        .lids
        .into_iter()
        .map(|(lid, row)| LidPnMappingEntry {
            lid,
            phone_number: row.phone_number,
            created_at: row.created_at,
            updated_at: row.updated_at,
            learning_source: row.learning_source,
        })
        .collect();
    for chunk in lids.chunks(CHUNK) {
        target.put_lid_mappings(chunk).await?;
        t.add(TableId::LID_MAPPINGS, chunk.len());
    }
    for (addr, id, key) in &a.base_keys {
        target.save_base_key(addr, id, key).await?;
        t.add(TableId::BASE_KEYS, 1);
    }
    let mut lists = a.device_lists;
    while !lists.is_empty() {
        let rest = lists.split_off(lists.len().min(CHUNK));
        let n = lists.len();
        target.update_device_lists(lists).await?;
        t.add(TableId::DEVICE_LISTS, n);
        lists = rest;
    }
    for (group, blob) in &a.group_metadata {
        target.put_group_metadata(group, blob).await?;
        t.add(TableId::GROUP_METADATA, 1);
    }
    for (jid, row) in a.tc_tokens {
        let entry = TcTokenEntry {
            token: row.token,
            token_timestamp: row.token_timestamp,
            sender_timestamp: row.sender_timestamp,
        };
        target.put_tc_token(&jid, &entry).await?;
        t.add(TableId::TC_TOKENS, 1);
    }
    // `created_at` cannot be carried: the target stamps "now".
    for (chat, id, row) in &a.sent {
        target.store_sent_message(chat, id, &row.payload).await?;
        t.add(TableId::SENT_MESSAGES, 1);
    }
    // `inserted_at` likewise.
    for chunk in a.pending.chunks(CHUNK) {
        let rows: Vec<InboundEntry<'_>> = chunk
            .iter()
            .map(|(chat, sender, id, row)| InboundEntry {
                chat,
                sender,
                id,
                message: &row.message,
            })
            .collect();
        target.store_pending_inbound_batch(&rows).await?;
        t.add(TableId::PENDING_INBOUND, chunk.len());
    }
    let mut secrets = a.secrets;
    while !secrets.is_empty() {
        let rest = secrets.split_off(secrets.len().min(CHUNK));
        let entries: Vec<MsgSecretEntry> = secrets
            .into_iter()
            .map(|(chat, sender, id, row)| MsgSecretEntry {
                chat: chat.into(),
                sender: sender.into(),
                msg_id: id.into(),
                secret: *row.secret,
                expires_at: row.expires_at,
                message_ts: row.message_ts,
            })
            .collect();
        let n = target.put_msg_secrets(entries).await?;
        t.add(TableId::MSG_SECRETS, n);
        secrets = rest;
    }
    Ok(())
}
