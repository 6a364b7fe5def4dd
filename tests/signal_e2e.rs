//! Drop-in proof: real Signal protocol traffic through wacore's store stack
//! on `RedbStore`, across closes and reopens.
//!
//! Two devices, Alice and Bob, use the store the way whatsapp-rust 0.7 does:
//! - device state through wacore's `PersistenceManager` (`exists` /
//!   `create` / `load` at startup, `DeviceCommand`s and `modify_device`, the
//!   background saver calling `save`);
//! - Signal state through wacore's `SignalStoreCache` (write-back, flushed
//!   to the backend before a raised counter lease goes on the wire and after
//!   every received batch, like the client's coalescer), behind adapters
//!   implementing libsignal's store traits. The client's adapters
//!   (`whatsapp_rust::store::signal_adapter`) live in whatsapp-rust, which
//!   these tests do not depend on, so the minimal copies below follow them:
//!   sessions, remote identities and sender keys go through the cache; the
//!   local identity key pair, registration id and current signed pre-key come
//!   from the `Device` record; one-time and retired signed pre-keys come from
//!   the backend.
//!
//! The scenario runs with each device in its own file, and with both devices
//! in one file (`for_device`). Run 1 provisions the devices (keys, JIDs, push
//! names, pre-keys), Alice installs Bob's pre-key bundle (X3DH) and sends
//! pre-key messages, Bob rotates his signed pre-key, and everything is closed.
//! Each later run reopens the files with fresh managers and caches, checks
//! that the device records and Signal rows read back as they were written,
//! delivers what was in flight when the stores closed
//! (the first pre-key messages name Bob's retired signed pre-key and a
//! one-time pre-key that exist only in his store), then exchanges direct
//! messages, sender-key distribution messages and group messages both ways,
//! delivered out of order and sometimes late, and leaves some in flight for
//! the next run. Every message must decrypt to what was sent.
//!
//! Deterministic: every RNG the APIs accept is seeded, and key material that
//! `Device::new()` draws from the OS is replaced by seeded keys. No sleeps.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use wacore::libsignal::protocol::error::Result as SignalResult;
use wacore::libsignal::protocol::{
    CiphertextMessage, CiphertextMessageType, Direction, GenericSignedPreKey, IdentityChange,
    IdentityKey, IdentityKeyPair, IdentityKeyStore, KeyPair, PreKeyBundle, PreKeyId, PreKeyRecord,
    PreKeySignalMessage, PreKeyStore, ProtocolAddress, PublicKey, SenderKeyDistributionMessage,
    SenderKeyRecord, SenderKeyStore, SessionCheckoutKey, SessionCheckoutStoreResult, SessionRecord,
    SessionStore, SignalMessage, SignalProtocolError, SignedPreKeyId, SignedPreKeyRecord,
    SignedPreKeyStore, Timestamp, UsePQRatchet, create_sender_key_distribution_message,
    group_decrypt, group_encrypt, message_decrypt, message_encrypt, process_prekey_bundle,
    process_sender_key_distribution_message,
};
use wacore::libsignal::store::record_helpers;
use wacore::libsignal::store::sender_key_name::SenderKeyName;
use wacore::runtime::{AbortHandle, Runtime, ShutdownNotifier};
use wacore::store::commands::DeviceCommand;
use wacore::store::traits::{Backend, DeviceStore, SignalStore};
use wacore::store::{Device, PersistenceManager, SignalStoreCache};
use wacore::types::jid::{JidExt, make_sender_key_name};
use whatsapp_rust_redb_storage::RedbStore;

// ---------------------------------------------------------------------------
// The scenario's parameters.

struct Profile {
    name: &'static str,
    push_name: &'static str,
    /// The device's own JIDs (device 3 of each account).
    pn: &'static str,
    lid: &'static str,
    seed: u64,
}

const ALICE: Profile = Profile {
    name: "alice",
    push_name: "Alice",
    pn: "15550001001:3@s.whatsapp.net",
    lid: "100000000000001:3@lid",
    seed: 0xA11C_E000_0000_0001,
};

const BOB: Profile = Profile {
    name: "bob",
    push_name: "Bob",
    pn: "15550001002:3@s.whatsapp.net",
    lid: "100000000000002:3@lid",
    seed: 0xB0B0_0000_0000_0002,
};

const GROUP: &str = "120363000000000042@g.us";
const SCENARIO_SEED: u64 = 0x5EED_0E2E_0000_0007;
/// One-time pre-keys each device generates (ids 1..=PRE_KEYS).
const PRE_KEYS: u32 = 64;
/// The one-time pre-key in the bundle Alice fetches for Bob.
const BUNDLE_PRE_KEY: u32 = 23;
/// Pre-key messages Alice sends before anything is delivered.
const FIRST_MESSAGES: usize = 3;
/// Runs after the first (each reopens the stores).
const RUNS: u32 = 4;
/// Exchange rounds per run.
const ROUNDS: usize = 40;
/// A fixed wall clock for signed pre-key records and rotation stamps.
const CLOCK_MS: u64 = 1_750_000_000_000;

// ---------------------------------------------------------------------------
// A Tokio `Runtime` for the persistence manager's background saver that
// keeps the tasks it spawns, so a test can wait for them to finish.

#[derive(Default)]
struct TestRuntime {
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

#[async_trait]
impl Runtime for TestRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send + 'static>>) -> AbortHandle {
        let task = tokio::spawn(future);
        let abort = task.abort_handle();
        self.tasks.lock().unwrap().push(task);
        AbortHandle::new(move || abort.abort())
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }

    fn spawn_blocking(
        &self,
        f: Box<dyn FnOnce() + Send + 'static>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            tokio::task::spawn_blocking(f).await.expect("blocking task");
        })
    }

    fn yield_now(&self) -> Option<Pin<Box<dyn Future<Output = ()> + Send>>> {
        None
    }
}

/// The persistence manager's background saver, as the client runs it: every
/// device change wakes it to `save()`; on shutdown it saves a last time.
struct DeviceSaver {
    runtime: Arc<TestRuntime>,
    shutdown: ShutdownNotifier,
    _task: AbortHandle,
}

impl DeviceSaver {
    fn start(manager: &Arc<PersistenceManager>) -> Self {
        let runtime = Arc::new(TestRuntime::default());
        let shutdown = ShutdownNotifier::new();
        // A long interval: saves are driven by changes and by the shutdown.
        let task = manager.clone().run_background_saver(
            runtime.clone(),
            Duration::from_secs(3600),
            shutdown.subscribe(),
        );
        Self {
            runtime,
            shutdown,
            _task: task,
        }
    }

    /// Shuts the saver down and waits for its final save.
    async fn stop(self) {
        self.shutdown.notify();
        let tasks = std::mem::take(&mut *self.runtime.tasks.lock().unwrap());
        for task in tasks {
            task.await.expect("device saver task");
        }
    }
}

// ---------------------------------------------------------------------------
// libsignal store adapters over SignalStoreCache + Backend + Device, after
// whatsapp-rust's `store::signal_adapter`.

#[derive(Clone)]
struct Shared {
    manager: Arc<PersistenceManager>,
    backend: Arc<dyn Backend>,
    cache: Arc<SignalStoreCache>,
}

impl Shared {
    fn signal(&self) -> &dyn SignalStore {
        &*self.backend
    }
}

fn backend_error<E>(context: &'static str) -> impl FnOnce(E) -> SignalProtocolError
where
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    move |e| SignalProtocolError::BackendError(context, e.into())
}

struct SessionAdapter(Shared);
struct IdentityAdapter(Shared);
struct PreKeyAdapter(Shared);
struct SignedPreKeyAdapter(Shared);
struct SenderKeyAdapter(Shared);

struct Adapters {
    session: SessionAdapter,
    identity: IdentityAdapter,
    pre_key: PreKeyAdapter,
    signed_pre_key: SignedPreKeyAdapter,
    sender_key: SenderKeyAdapter,
}

impl Adapters {
    fn new(shared: Shared) -> Self {
        Self {
            session: SessionAdapter(shared.clone()),
            identity: IdentityAdapter(shared.clone()),
            pre_key: PreKeyAdapter(shared.clone()),
            signed_pre_key: SignedPreKeyAdapter(shared.clone()),
            sender_key: SenderKeyAdapter(shared),
        }
    }
}

#[async_trait]
impl SessionStore for SessionAdapter {
    async fn load_session(&self, address: &ProtocolAddress) -> SignalResult<Option<SessionRecord>> {
        self.0
            .cache
            .peek_session(address, self.0.signal())
            .await
            .map(|record| record.map(|record| (*record).clone()))
            .map_err(backend_error("peek_session"))
    }

    async fn load_session_for_update(
        &self,
        address: &ProtocolAddress,
    ) -> SignalResult<(Option<SessionRecord>, Option<SessionCheckoutKey>)> {
        self.0
            .cache
            .checkout_session(address, self.0.signal())
            .await
            .map(|(record, checkout)| (record, Some(checkout)))
            .map_err(backend_error("checkout_session"))
    }

    fn try_load_session_for_update(
        &self,
        address: &ProtocolAddress,
    ) -> Option<SignalResult<(Option<SessionRecord>, Option<SessionCheckoutKey>)>> {
        self.0.cache.try_checkout_session(address).map(|result| {
            result
                .map(|(record, checkout)| (record, Some(checkout)))
                .map_err(backend_error("try_checkout_session"))
        })
    }

    async fn has_session(&self, address: &ProtocolAddress) -> SignalResult<bool> {
        self.0
            .cache
            .has_session(address, self.0.signal())
            .await
            .map_err(backend_error("has_session"))
    }

    fn try_has_session(&self, address: &ProtocolAddress) -> Option<SignalResult<bool>> {
        self.0.cache.try_has_session(address).map(Ok)
    }

    async fn store_session(
        &mut self,
        address: &ProtocolAddress,
        record: SessionRecord,
    ) -> SignalResult<()> {
        self.0.cache.put_session(address, record).await;
        Ok(())
    }

    fn try_store_session_from_checkout(
        &mut self,
        address: &ProtocolAddress,
        record: SessionRecord,
        checkout: Option<SessionCheckoutKey>,
        had_session: bool,
    ) -> SessionCheckoutStoreResult {
        match checkout {
            Some(checkout) => {
                self.0
                    .cache
                    .restore_session_from_checkout(address, record, checkout, had_session)
            }
            None => SessionCheckoutStoreResult::Unhandled(record),
        }
    }

    fn cancel_session_checkout(
        &mut self,
        address: &ProtocolAddress,
        checkout: Option<SessionCheckoutKey>,
    ) {
        if let Some(checkout) = checkout {
            self.0.cache.cancel_session_checkout(address, checkout);
        }
    }

    async fn complete_session_checkout(&mut self) {
        self.0.cache.complete_session_checkout().await;
    }
}

fn parse_identity(bytes: Option<Arc<[u8]>>) -> SignalResult<Option<IdentityKey>> {
    match bytes {
        Some(bytes) if !bytes.is_empty() => Ok(Some(IdentityKey::new(
            PublicKey::from_djb_public_key_bytes(&bytes)?,
        ))),
        _ => Ok(None),
    }
}

#[async_trait]
impl IdentityKeyStore for IdentityAdapter {
    /// The local identity: the `Device` record's `identity_key`.
    async fn get_identity_key_pair(&self) -> SignalResult<IdentityKeyPair> {
        let device = self.0.manager.device_arc();
        let device = device.read().await;
        Ok(device.identity_key.clone().into())
    }

    /// The `Device` record's `registration_id`.
    async fn get_local_registration_id(&self) -> SignalResult<u32> {
        Ok(self.0.manager.device_arc().read().await.registration_id)
    }

    /// Remote identities go to the cache, and from there to
    /// `put_identities_batch` on flush.
    async fn save_identity(
        &mut self,
        address: &ProtocolAddress,
        identity: &IdentityKey,
    ) -> SignalResult<IdentityChange> {
        let existing = self.get_identity(address).await?;
        self.0
            .cache
            .put_identity(address, identity.public_key().public_key_bytes())
            .await;
        Ok(match existing {
            Some(existing) if &existing != identity => IdentityChange::ReplacedExisting,
            _ => IdentityChange::NewOrUnchanged,
        })
    }

    /// WhatsApp trusts every identity (changes surface via `save_identity`).
    async fn is_trusted_identity(
        &self,
        _address: &ProtocolAddress,
        _identity: &IdentityKey,
        _direction: Direction,
    ) -> SignalResult<bool> {
        Ok(true)
    }

    async fn get_identity(&self, address: &ProtocolAddress) -> SignalResult<Option<IdentityKey>> {
        let bytes = self
            .0
            .cache
            .get_identity(address, self.0.signal())
            .await
            .map_err(backend_error("get_identity"))?;
        parse_identity(bytes)
    }
}

#[async_trait]
impl PreKeyStore for PreKeyAdapter {
    async fn get_pre_key(&self, id: PreKeyId) -> SignalResult<PreKeyRecord> {
        let bytes = self
            .0
            .backend
            .load_prekey(id.into())
            .await
            .map_err(backend_error("load_prekey"))?
            .ok_or(SignalProtocolError::InvalidPreKeyId)?;
        PreKeyRecord::deserialize(&bytes)
    }

    async fn save_pre_key(&mut self, id: PreKeyId, record: &PreKeyRecord) -> SignalResult<()> {
        self.0
            .backend
            .store_prekey(id.into(), &record.serialize()?, false)
            .await
            .map_err(backend_error("store_prekey"))
    }

    async fn remove_pre_key(&mut self, id: PreKeyId) -> SignalResult<()> {
        self.0
            .backend
            .remove_prekey(id.into())
            .await
            .map_err(backend_error("remove_prekey"))
    }
}

#[async_trait]
impl SignedPreKeyStore for SignedPreKeyAdapter {
    /// The current signed pre-key is the `Device` record's; retired ones
    /// (still named by pre-key messages in flight) are in the backend.
    async fn get_signed_pre_key(&self, id: SignedPreKeyId) -> SignalResult<SignedPreKeyRecord> {
        let current = {
            let device = self.0.manager.device_arc();
            let device = device.read().await;
            (u32::from(id) == device.signed_pre_key_id).then(|| {
                record_helpers::new_signed_pre_key_record(
                    device.signed_pre_key_id,
                    &device.signed_pre_key,
                    device.signed_pre_key_signature,
                    wacore::time::now_utc(),
                )
            })
        };
        if let Some(structure) = current {
            return record_helpers::signed_prekey_structure_to_record(structure);
        }
        let bytes = self
            .0
            .backend
            .load_signed_prekey(id.into())
            .await
            .map_err(backend_error("load_signed_prekey"))?
            .ok_or(SignalProtocolError::InvalidSignedPreKeyId)?;
        SignedPreKeyRecord::deserialize(&bytes)
    }

    async fn save_signed_pre_key(
        &mut self,
        _id: SignedPreKeyId,
        _record: &SignedPreKeyRecord,
    ) -> SignalResult<()> {
        Ok(())
    }
}

#[async_trait]
impl SenderKeyStore for SenderKeyAdapter {
    async fn store_sender_key(
        &mut self,
        name: &SenderKeyName,
        record: SenderKeyRecord,
    ) -> SignalResult<()> {
        self.0.cache.put_sender_key(name, record).await;
        Ok(())
    }

    async fn load_sender_key(&self, name: &SenderKeyName) -> SignalResult<Option<SenderKeyRecord>> {
        self.0
            .cache
            .get_sender_key(name, self.0.signal())
            .await
            .map(|record| record.map(Arc::unwrap_or_clone))
            .map_err(backend_error("get_sender_key"))
    }
}

// ---------------------------------------------------------------------------
// The wire.

/// What a device hands the "server" for another device.
enum Envelope {
    /// A pairwise Signal message (pkmsg or msg). The plaintext is a text
    /// (`T:…`) or a sender-key distribution message (`K:…`).
    Pairwise {
        from: ProtocolAddress,
        /// The sender's group chain, for a distribution message.
        chain: SenderKeyName,
        kind: CiphertextMessageType,
        bytes: Vec<u8>,
        expected: Vec<u8>,
    },
    /// A group message (skmsg) on the sender's chain.
    Group {
        chain: SenderKeyName,
        bytes: Vec<u8>,
        expected: Vec<u8>,
    },
}

impl Envelope {
    fn is_group(&self) -> bool {
        matches!(self, Envelope::Group { .. })
    }
}

#[derive(Default, Debug)]
struct Stats {
    direct_sent: usize,
    direct_received: usize,
    prekey_messages_received: usize,
    distributions_sent: usize,
    distributions_received: usize,
    group_sent: usize,
    group_received: usize,
    flushes: usize,
}

// ---------------------------------------------------------------------------
// A device: its store handle, persistence manager and Signal cache.

/// What must survive a close: the device record's fields.
#[derive(Debug, PartialEq)]
struct DeviceRecord {
    push_name: String,
    pn: Option<String>,
    lid: Option<String>,
    lid_migrated: bool,
    registration_id: u32,
    identity_key: (Vec<u8>, Vec<u8>),
    noise_key: Vec<u8>,
    adv_secret_key: [u8; 32],
    signed_pre_key_id: u32,
    signed_pre_key: (Vec<u8>, Vec<u8>),
    signed_pre_key_signature: Vec<u8>,
    last_signed_pre_key_rotation_ms: i64,
    next_pre_key_id: u32,
    first_unupload_pre_key_id: u32,
    server_has_prekeys: bool,
}

fn key_bytes(key: &KeyPair) -> (Vec<u8>, Vec<u8>) {
    (
        key.public_key.public_key_bytes().to_vec(),
        key.private_key.serialize().to_vec(),
    )
}

impl DeviceRecord {
    fn of(device: &Device) -> Self {
        Self {
            push_name: device.push_name.clone(),
            pn: device.pn.as_ref().map(ToString::to_string),
            lid: device.lid.as_ref().map(ToString::to_string),
            lid_migrated: device.lid_migrated,
            registration_id: device.registration_id,
            identity_key: key_bytes(&device.identity_key),
            noise_key: device.noise_key.public_key.public_key_bytes().to_vec(),
            adv_secret_key: device.adv_secret_key,
            signed_pre_key_id: device.signed_pre_key_id,
            signed_pre_key: key_bytes(&device.signed_pre_key),
            signed_pre_key_signature: device.signed_pre_key_signature.to_vec(),
            last_signed_pre_key_rotation_ms: device.last_signed_pre_key_rotation_ms,
            next_pre_key_id: device.next_pre_key_id,
            first_unupload_pre_key_id: device.first_unupload_pre_key_id,
            server_has_prekeys: device.server_has_prekeys,
        }
    }
}

/// How a device is known to the other: its address and its group chain.
#[derive(Clone)]
struct Contact {
    address: ProtocolAddress,
    chain: SenderKeyName,
}

/// The Signal rows one device's traffic with the other writes, read
/// straight from the store: the cache flushes them, a reopen must return
/// them byte for byte.
struct SignalRows {
    session: Option<Bytes>,
    identity: Option<[u8; 32]>,
    own_sender_key: Option<Vec<u8>>,
    their_sender_key: Option<Vec<u8>>,
    sender_key_devices: Vec<(String, bool)>,
    pre_keys: Vec<(u32, Bytes)>,
    signed_pre_keys: Vec<(u32, Vec<u8>)>,
}

impl SignalRows {
    /// Field by field, so that a failure names the row instead of dumping
    /// kilobytes of record bytes.
    fn assert_same(&self, before: &SignalRows, context: &str) {
        macro_rules! same {
            ($($field:ident),*) => {$(
                assert!(
                    self.$field == before.$field,
                    "{context}: `{}` differs from what was in the store at the close",
                    stringify!($field)
                );
            )*};
        }
        same!(
            session,
            identity,
            own_sender_key,
            their_sender_key,
            sender_key_devices,
            pre_keys,
            signed_pre_keys
        );
    }
}

/// What a closed device leaves in its store.
struct Closed {
    device: DeviceRecord,
    rows: SignalRows,
}

struct Peer {
    profile: &'static Profile,
    run: u32,
    store: RedbStore,
    manager: Arc<PersistenceManager>,
    cache: Arc<SignalStoreCache>,
    saver: DeviceSaver,
    rng: StdRng,
    /// This device's Signal address (from its LID).
    address: ProtocolAddress,
    /// This device's own sender-key chain in the group.
    chain: SenderKeyName,
    sent: usize,
}

impl Peer {
    /// Starts a device on `store` the way the client does at startup:
    /// `PersistenceManager::new` (exists / create / load), a fresh Signal
    /// cache, the background saver.
    async fn open(store: RedbStore, profile: &'static Profile, run: u32) -> Peer {
        let backend: Arc<dyn Backend> = Arc::new(store.clone());
        let manager = Arc::new(
            PersistenceManager::new(backend)
                .await
                .expect("persistence manager"),
        );
        let saver = DeviceSaver::start(&manager);
        let mut peer = Peer {
            profile,
            run,
            store,
            manager,
            cache: Arc::new(SignalStoreCache::new()),
            saver,
            rng: StdRng::seed_from_u64(profile.seed ^ u64::from(run)),
            address: ProtocolAddress::new("unprovisioned", 0.into()),
            chain: SenderKeyName::from_parts(GROUP, "unprovisioned"),
            sent: 0,
        };
        peer.load_addresses().await;
        peer
    }

    async fn load_addresses(&mut self) {
        let device = self.manager.get_device_snapshot().await;
        if let Some(lid) = &device.lid {
            self.address = lid.to_protocol_address();
            // Sender keys are named by the bare sender, like the client does.
            self.chain = make_sender_key_name(
                &GROUP.parse().expect("group JID"),
                &lid.to_non_ad().to_protocol_address(),
            );
        }
    }

    fn contact(&self) -> Contact {
        Contact {
            address: self.address.clone(),
            chain: self.chain.clone(),
        }
    }

    async fn rows(&self, other: &Contact) -> SignalRows {
        let backend = self.backend();
        let pre_key_ids: Vec<u32> = (1..=PRE_KEYS).collect();
        let mut signed_pre_keys = backend.load_all_signed_prekeys().await.unwrap();
        signed_pre_keys.sort();
        SignalRows {
            session: backend.get_session(other.address.as_str()).await.unwrap(),
            identity: backend.load_identity(other.address.as_str()).await.unwrap(),
            own_sender_key: backend
                .get_sender_key(self.chain.cache_key())
                .await
                .unwrap(),
            their_sender_key: backend
                .get_sender_key(other.chain.cache_key())
                .await
                .unwrap(),
            sender_key_devices: backend.get_sender_key_devices(GROUP).await.unwrap(),
            pre_keys: backend.load_prekeys_batch(&pre_key_ids).await.unwrap(),
            signed_pre_keys,
        }
    }

    fn name(&self) -> &'static str {
        self.profile.name
    }

    fn backend(&self) -> Arc<dyn Backend> {
        self.manager.backend()
    }

    fn adapters(&self) -> Adapters {
        Adapters::new(Shared {
            manager: self.manager.clone(),
            backend: self.backend(),
            cache: self.cache.clone(),
        })
    }

    async fn device(&self) -> Device {
        self.manager.get_device_snapshot().await
    }

    /// First start: what pairing and the first pre-key upload leave in the
    /// store. `Device::new()` (run by `create()`) drew its keys from the OS;
    /// they are replaced by seeded ones so that runs are reproducible.
    async fn provision(&mut self) {
        let identity = IdentityKeyPair::generate(&mut self.rng);
        let registration_id = self.rng.random_range(1..=16380);
        self.manager
            .modify_device(|device| {
                device.identity_key =
                    KeyPair::new(*identity.public_key(), identity.private_key().clone());
                device.registration_id = registration_id;
            })
            .await;
        let signed_pre_key = KeyPair::generate(&mut self.rng);
        let signature = identity
            .private_key()
            .calculate_signature(&signed_pre_key.public_key.serialize(), &mut self.rng)
            .expect("sign pre-key");
        let p = self.profile;
        for command in [
            DeviceCommand::SetSignedPreKey {
                key_pair: signed_pre_key,
                id: 1,
                signature,
                rotation_ms: CLOCK_MS as i64,
            },
            DeviceCommand::SetId(Some(p.pn.parse().expect("PN JID"))),
            DeviceCommand::SetLid(Some(p.lid.parse().expect("LID JID"))),
            DeviceCommand::SetPushName(p.push_name.to_owned()),
            DeviceCommand::SetLidMigrated(true),
        ] {
            self.manager.process_command(command).await;
        }

        // Pre-keys as the client's upload pass handles them: stored before
        // the upload, watermarks advanced, marked uploaded.
        let ids: Vec<u32> = (1..=PRE_KEYS).collect();
        let batch: Vec<(u32, Bytes)> = ids
            .iter()
            .map(|&id| {
                let mut record = Vec::new();
                record_helpers::encode_pre_key_record_to(
                    id,
                    &KeyPair::generate(&mut self.rng),
                    &mut record,
                );
                (id, Bytes::from(record))
            })
            .collect();
        let backend = self.backend();
        backend
            .store_prekeys_batch(&batch, false)
            .await
            .expect("store pre-keys");
        self.manager
            .process_command(DeviceCommand::SetPreKeyWatermarks {
                next_pre_key_id: PRE_KEYS + 1,
                first_unupload_pre_key_id: 1,
            })
            .await;
        backend
            .mark_prekeys_uploaded(&ids)
            .await
            .expect("mark pre-keys uploaded");
        self.manager
            .process_command(DeviceCommand::SetPreKeyWatermarks {
                next_pre_key_id: PRE_KEYS + 1,
                first_unupload_pre_key_id: PRE_KEYS + 1,
            })
            .await;
        self.manager
            .modify_device(|device| device.server_has_prekeys = true)
            .await;
        self.load_addresses().await;
    }

    /// The bundle the server would hand out for this device.
    async fn bundle(&self, pre_key_id: u32) -> PreKeyBundle {
        let device = self.device().await;
        let pre_key = self
            .backend()
            .load_prekey(pre_key_id)
            .await
            .expect("load pre-key")
            .expect("bundle pre-key exists");
        let pre_key = PreKeyRecord::deserialize(&pre_key).expect("pre-key record");
        PreKeyBundle::new(
            device.registration_id,
            0.into(),
            Some((pre_key_id.into(), pre_key.public_key().expect("pre-key"))),
            device.signed_pre_key_id.into(),
            device.signed_pre_key.public_key,
            device.signed_pre_key_signature.to_vec(),
            IdentityKey::new(device.identity_key.public_key),
        )
        .expect("bundle")
    }

    /// X3DH from a fetched bundle; the client flushes the new session right
    /// away.
    async fn install_bundle(&mut self, to: &ProtocolAddress, bundle: &PreKeyBundle) {
        let mut stores = self.adapters();
        process_prekey_bundle(
            to,
            &mut stores.session,
            &mut stores.identity,
            bundle,
            &mut self.rng,
            UsePQRatchet::No,
        )
        .await
        .expect("process pre-key bundle");
        self.flush().await;
    }

    /// Rotates the signed pre-key like the client: the outgoing key is kept
    /// in the backend (pre-key messages in flight still name it), the new one
    /// goes into the device record.
    async fn rotate_signed_pre_key(&mut self) {
        let device = self.device().await;
        let old = <SignedPreKeyRecord as GenericSignedPreKey>::new(
            device.signed_pre_key_id.into(),
            Timestamp::from_epoch_millis(CLOCK_MS),
            &device.signed_pre_key,
            &device.signed_pre_key_signature,
        );
        self.backend()
            .store_signed_prekey(device.signed_pre_key_id, &old.serialize().expect("record"))
            .await
            .expect("retain old signed pre-key");
        let key_pair = KeyPair::generate(&mut self.rng);
        let signature = device
            .identity_key
            .private_key
            .calculate_signature(&key_pair.public_key.serialize(), &mut self.rng)
            .expect("sign pre-key");
        self.manager
            .process_command(DeviceCommand::SetSignedPreKey {
                key_pair,
                id: device.signed_pre_key_id + 1,
                signature,
                rotation_ms: CLOCK_MS as i64 + 1,
            })
            .await;
    }

    async fn flush(&self) {
        self.cache
            .flush(self.backend().as_ref())
            .await
            .unwrap_or_else(|e| panic!("{} run {}: flush: {e:#}", self.name(), self.run));
    }

    /// The client's pre-wire gate: flush before the wire only when a send
    /// raised a counter lease (otherwise the coalescer would flush later).
    async fn pre_wire(&self, stats: &mut Stats) {
        if self.cache.needs_pre_wire_flush().await {
            self.flush().await;
            stats.flushes += 1;
        }
    }

    async fn send_pairwise(
        &mut self,
        to: &ProtocolAddress,
        plaintext: Vec<u8>,
        stats: &mut Stats,
    ) -> Envelope {
        let mut stores = self.adapters();
        let message = message_encrypt(&plaintext, to, &mut stores.session, &mut stores.identity)
            .await
            .unwrap_or_else(|e| panic!("{} run {}: encrypt: {e}", self.name(), self.run));
        self.pre_wire(stats).await;
        Envelope::Pairwise {
            from: self.address.clone(),
            chain: self.chain.clone(),
            kind: message.message_type(),
            bytes: message.serialize().to_vec(),
            expected: plaintext,
        }
    }

    async fn send_text(&mut self, to: &Peer, stats: &mut Stats) -> Envelope {
        self.sent += 1;
        let text = format!(
            "T:{} -> {}, run {}, message {}",
            self.name(),
            to.name(),
            self.run,
            self.sent
        );
        stats.direct_sent += 1;
        self.send_pairwise(&to.address, text.into_bytes(), stats)
            .await
    }

    /// Sends this device's sender key to `to` unless the store records that
    /// `to` has it (the client's `get_sender_key_devices` /
    /// `set_sender_key_status` bookkeeping).
    async fn distribute_sender_key(&mut self, to: &Peer, stats: &mut Stats) -> Option<Envelope> {
        let backend = self.backend();
        let has_key = backend
            .get_sender_key_devices(GROUP)
            .await
            .expect("sender-key devices")
            .contains(&(to.profile.lid.to_owned(), true));
        if has_key {
            return None;
        }
        let mut stores = self.adapters();
        let distribution = create_sender_key_distribution_message(
            &self.chain,
            &mut stores.sender_key,
            &mut self.rng,
        )
        .await
        .expect("create sender-key distribution");
        let mut plaintext = b"K:".to_vec();
        plaintext.extend_from_slice(distribution.serialized());
        let envelope = self.send_pairwise(&to.address, plaintext, stats).await;
        backend
            .set_sender_key_status(GROUP, &[(to.profile.lid, true)])
            .await
            .expect("sender-key status");
        stats.distributions_sent += 1;
        Some(envelope)
    }

    async fn send_group(&mut self, stats: &mut Stats) -> Envelope {
        self.sent += 1;
        let text = format!(
            "{} -> group, run {}, message {}",
            self.name(),
            self.run,
            self.sent
        );
        let mut stores = self.adapters();
        let message = group_encrypt(
            &mut stores.sender_key,
            &self.chain,
            text.as_bytes(),
            &mut self.rng,
        )
        .await
        .unwrap_or_else(|e| panic!("{} run {}: group encrypt: {e}", self.name(), self.run));
        self.pre_wire(stats).await;
        stats.group_sent += 1;
        Envelope::Group {
            chain: self.chain.clone(),
            bytes: message.serialized().to_vec(),
            expected: text.into_bytes(),
        }
    }

    /// Decrypts one envelope and checks it against what was sent.
    async fn receive(&mut self, envelope: Envelope, stats: &mut Stats) {
        let mut stores = self.adapters();
        match envelope {
            Envelope::Pairwise {
                from,
                chain,
                kind,
                bytes,
                expected,
            } => {
                let message = match kind {
                    CiphertextMessageType::PreKey => CiphertextMessage::PreKeySignalMessage(
                        PreKeySignalMessage::try_from(&bytes[..]).expect("pkmsg"),
                    ),
                    CiphertextMessageType::Whisper => CiphertextMessage::SignalMessage(
                        SignalMessage::try_from(&bytes[..]).expect("msg"),
                    ),
                    other => panic!("unexpected pairwise message type {other:?}"),
                };
                let result = message_decrypt(
                    &message,
                    &from,
                    &mut stores.session,
                    &mut stores.identity,
                    &mut stores.pre_key,
                    &stores.signed_pre_key,
                    &mut self.rng,
                    UsePQRatchet::No,
                )
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "{} run {}: decrypt {kind:?} from {from} ({}): {e}",
                        self.name(),
                        self.run,
                        String::from_utf8_lossy(&expected)
                    )
                });
                assert_eq!(
                    result.plaintext,
                    expected,
                    "{} run {}",
                    self.name(),
                    self.run
                );
                // As the client does: the consumed one-time pre-key is
                // deleted by the flush that makes the new session durable.
                if let Some(pre_key) = result.consumed_prekey_id {
                    self.cache
                        .remove_prekey(pre_key.into(), from.as_str())
                        .await;
                }
                if kind == CiphertextMessageType::PreKey {
                    stats.prekey_messages_received += 1;
                }
                match expected.strip_prefix(b"K:") {
                    Some(distribution) => {
                        let distribution = SenderKeyDistributionMessage::try_from(distribution)
                            .expect("sender-key distribution");
                        process_sender_key_distribution_message(
                            &chain,
                            &distribution,
                            &mut stores.sender_key,
                        )
                        .await
                        .expect("process sender-key distribution");
                        stats.distributions_received += 1;
                    }
                    None => stats.direct_received += 1,
                }
            }
            Envelope::Group {
                chain,
                bytes,
                expected,
            } => {
                let plaintext = group_decrypt(&bytes, &mut stores.sender_key, &chain)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "{} run {}: group decrypt ({}): {e}",
                            self.name(),
                            self.run,
                            String::from_utf8_lossy(&expected)
                        )
                    });
                assert_eq!(plaintext, expected, "{} run {}", self.name(), self.run);
                stats.group_received += 1;
            }
        }
    }

    /// Delivers everything queued for this device: pairwise messages first
    /// (they carry the distribution messages), then group messages, each in
    /// a random order; then the flush the client's coalescer would do.
    async fn deliver(&mut self, inbox: &mut Vec<Envelope>, rng: &mut StdRng, stats: &mut Stats) {
        let (mut pairwise, mut group): (Vec<_>, Vec<_>) = std::mem::take(inbox)
            .into_iter()
            .partition(|e| !e.is_group());
        pairwise.shuffle(rng);
        group.shuffle(rng);
        for envelope in pairwise.into_iter().chain(group) {
            self.receive(envelope, stats).await;
        }
        self.flush().await;
        stats.flushes += 1;
    }

    /// Closes the device like a client shutdown: final cache flush, final
    /// device save, then the store handle. Returns what it left in the store.
    async fn close(self, other: &Contact) -> Closed {
        self.flush().await;
        let rows = self.rows(other).await;
        let Peer {
            store,
            manager,
            cache,
            saver,
            ..
        } = self;
        saver.stop().await;
        let record = DeviceRecord::of(&manager.get_device_snapshot().await);
        let saved = store
            .load()
            .await
            .expect("load device")
            .expect("device record");
        assert_eq!(DeviceRecord::of(&saved), record, "the saver's final save");
        drop((manager, cache));
        store.close().await.expect("close store");
        Closed {
            device: record,
            rows,
        }
    }
}

// ---------------------------------------------------------------------------
// The scenario.

#[derive(Clone, Copy, Debug)]
enum Layout {
    /// Alice and Bob each in their own file (device id 1).
    SeparateFiles,
    /// Both in one file: Alice device id 1, Bob `for_device(2)`.
    OneFile,
}

async fn open_stores(dir: &Path, layout: Layout) -> (RedbStore, RedbStore) {
    match layout {
        Layout::SeparateFiles => (
            RedbStore::new(dir.join("alice.redb")).await.expect("open"),
            RedbStore::new(dir.join("bob.redb")).await.expect("open"),
        ),
        Layout::OneFile => {
            let alice = RedbStore::new(dir.join("both.redb")).await.expect("open");
            let bob = alice.for_device(2);
            (alice, bob)
        }
    }
}

/// After the last handle of a file is closed its journal is gone (the
/// store checkpoints and removes it), so the next open reads the file alone.
fn assert_all_closed(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let name = entry.expect("dir entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            !name.ends_with(".journal"),
            "{name} left behind: a store is still open"
        );
    }
}

/// Closes both devices.
async fn close(alice: Peer, bob: Peer, dir: &Path) -> [Closed; 2] {
    let (alice_contact, bob_contact) = (alice.contact(), bob.contact());
    let closed = [
        alice.close(&bob_contact).await,
        bob.close(&alice_contact).await,
    ];
    assert_all_closed(dir);
    closed
}

/// Reopens both devices with fresh managers and caches, and checks that
/// their device records and Signal rows survived.
async fn reopen(dir: &Path, layout: Layout, run: u32, closed: &[Closed; 2]) -> (Peer, Peer) {
    let (a, b) = open_stores(dir, layout).await;
    assert!(a.exists().await.unwrap() && b.exists().await.unwrap());
    let alice = Peer::open(a, &ALICE, run).await;
    let bob = Peer::open(b, &BOB, run).await;
    for (peer, other, closed) in [(&alice, &bob, &closed[0]), (&bob, &alice, &closed[1])] {
        let context = format!("{}'s store, run {run}", peer.name());
        let device = DeviceRecord::of(&peer.device().await);
        assert_eq!(device, closed.device, "{context}: device record");
        let rows = peer.rows(&other.contact()).await;
        rows.assert_same(&closed.rows, &context);
    }
    (alice, bob)
}

async fn scenario(layout: Layout) -> Stats {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path();
    let mut rng = StdRng::seed_from_u64(SCENARIO_SEED);
    let mut stats = Stats::default();
    // In-flight messages, by recipient: [to Alice, to Bob].
    let mut inbox: [Vec<Envelope>; 2] = [Vec::new(), Vec::new()];

    // Run 1: a fresh store; the persistence manager creates the records.
    let (a, b) = open_stores(dir, layout).await;
    assert!(!a.exists().await.unwrap() && !b.exists().await.unwrap());
    let mut alice = Peer::open(a, &ALICE, 1).await;
    let mut bob = Peer::open(b, &BOB, 1).await;
    for peer in [&alice, &bob] {
        let device = peer.device().await;
        assert!(device.push_name.is_empty() && device.pn.is_none() && device.lid.is_none());
        assert!(peer.store.exists().await.unwrap(), "create() ran");
    }
    alice.provision().await;
    bob.provision().await;

    // X3DH: Alice fetches Bob's bundle and sends pre-key messages. Before
    // they arrive, Bob rotates his signed pre-key and both shut down.
    let bundle = bob.bundle(BUNDLE_PRE_KEY).await;
    let bundle_signed_pre_key = bob.device().await.signed_pre_key_id;
    alice.install_bundle(&bob.address, &bundle).await;
    for _ in 0..FIRST_MESSAGES {
        let envelope = alice.send_text(&bob, &mut stats).await;
        assert!(matches!(
            envelope,
            Envelope::Pairwise {
                kind: CiphertextMessageType::PreKey,
                ..
            }
        ));
        inbox[1].push(envelope);
    }
    bob.rotate_signed_pre_key().await;
    assert_ne!(bob.device().await.signed_pre_key_id, bundle_signed_pre_key);
    let (alice_address, bob_address) = (alice.address.clone(), bob.address.clone());
    let bob_identity = bob.device().await.identity_key.public_key;
    let mut closed = close(alice, bob, dir).await;

    for run in 2..=RUNS + 1 {
        let (mut alice, mut bob) = reopen(dir, layout, run, &closed).await;
        assert_eq!(
            (&alice.address, &bob.address),
            (&alice_address, &bob_address)
        );

        if run == 2 {
            // Alice's session and Bob's identity reached her store.
            let backend = alice.backend();
            assert!(backend.has_session(bob_address.as_str()).await.unwrap());
            assert_eq!(
                backend.load_identity(bob_address.as_str()).await.unwrap(),
                Some(bob_identity.public_key_bytes().try_into().unwrap()),
                "Bob's identity in Alice's store"
            );
            assert!(
                !bob.backend()
                    .has_session(alice_address.as_str())
                    .await
                    .unwrap()
            );
        }

        // What was in flight at the close, then the exchange.
        bob.deliver(&mut inbox[1], &mut rng, &mut stats).await;
        alice.deliver(&mut inbox[0], &mut rng, &mut stats).await;

        if run == 2 {
            // The pre-key messages promoted a session on Bob's side from
            // his stored one-time pre-key and retired signed pre-key; the
            // flush stored it and deleted that one-time pre-key only.
            let backend = bob.backend();
            assert!(backend.has_session(alice_address.as_str()).await.unwrap());
            assert!(backend.load_prekey(BUNDLE_PRE_KEY).await.unwrap().is_none());
            let ids: Vec<u32> = (1..=PRE_KEYS).collect();
            let left = backend.load_prekeys_batch(&ids).await.unwrap();
            assert_eq!(left.len(), PRE_KEYS as usize - 1);
            assert_eq!(
                stats.prekey_messages_received, FIRST_MESSAGES,
                "Bob received Alice's pre-key messages"
            );
        }

        for _ in 0..ROUNDS {
            exchange(&mut alice, &mut bob, &mut inbox, &mut rng, &mut stats).await;
        }
        if run <= RUNS {
            // Leave some of each kind in flight across the close.
            for _ in 0..2 {
                inbox[1].push(alice.send_text(&bob, &mut stats).await);
                inbox[1].push(alice.send_group(&mut stats).await);
                inbox[0].push(bob.send_text(&alice, &mut stats).await);
                inbox[0].push(bob.send_group(&mut stats).await);
            }
        } else {
            bob.deliver(&mut inbox[1], &mut rng, &mut stats).await;
            alice.deliver(&mut inbox[0], &mut rng, &mut stats).await;
        }
        closed = close(alice, bob, dir).await;
    }

    assert!(inbox.iter().all(Vec::is_empty));
    assert_eq!(stats.direct_received, stats.direct_sent, "{stats:?}");
    assert_eq!(stats.group_received, stats.group_sent, "{stats:?}");
    // One distribution per sender: the status stored at the first survived
    // every reopen.
    assert_eq!(stats.distributions_sent, 2, "{stats:?}");
    assert_eq!(stats.distributions_received, 2, "{stats:?}");
    println!(
        "{layout:?}: {} direct ({} pre-key) + {} group + {} distribution messages \
         decrypted over {} runs, {} cache flushes, in {:.2?}",
        stats.direct_received,
        stats.prekey_messages_received,
        stats.group_received,
        stats.distributions_received,
        RUNS + 1,
        stats.flushes,
        started.elapsed()
    );
    stats
}

/// One exchange round: each side takes a turn.
async fn exchange(
    alice: &mut Peer,
    bob: &mut Peer,
    inbox: &mut [Vec<Envelope>; 2],
    rng: &mut StdRng,
    stats: &mut Stats,
) {
    let [to_alice, to_bob] = inbox;
    turn(alice, bob, to_bob, rng, stats).await;
    turn(bob, alice, to_alice, rng, stats).await;
}

/// The sender sends a few direct and group messages (distributing its
/// sender key first if the receiver lacks it); the receiver usually gets
/// them right away, sometimes a round late.
async fn turn(
    sender: &mut Peer,
    receiver: &mut Peer,
    inbox: &mut Vec<Envelope>,
    rng: &mut StdRng,
    stats: &mut Stats,
) {
    for _ in 0..rng.random_range(1..=4) {
        inbox.push(sender.send_text(receiver, stats).await);
    }
    let group = rng.random_range(0..=3);
    if group > 0
        && let Some(envelope) = sender.distribute_sender_key(receiver, stats).await
    {
        inbox.push(envelope);
    }
    for _ in 0..group {
        inbox.push(sender.send_group(stats).await);
    }
    if rng.random_bool(0.8) {
        receiver.deliver(inbox, rng, stats).await;
    }
}

#[tokio::test]
async fn signal_traffic_survives_reopen_separate_files() {
    let stats = scenario(Layout::SeparateFiles).await;
    assert!(
        stats.direct_received + stats.group_received >= 600,
        "{stats:?}"
    );
}

#[tokio::test]
async fn signal_traffic_survives_reopen_two_devices_one_file() {
    let stats = scenario(Layout::OneFile).await;
    assert!(
        stats.direct_received + stats.group_received >= 600,
        "{stats:?}"
    );
}
