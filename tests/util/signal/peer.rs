//! A device on any store, driven the way whatsapp-rust drives it: its
//! persistence manager, Signal cache and background saver; X3DH, pairwise
//! and group messages; the wire between two devices.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use wacore::libsignal::protocol::{
    CiphertextMessage, CiphertextMessageType, GenericSignedPreKey, IdentityKey, IdentityKeyPair,
    KeyPair, PreKeyBundle, PreKeyRecord, PreKeySignalMessage, ProtocolAddress,
    SenderKeyDistributionMessage, SignalMessage, SignedPreKeyRecord, Timestamp, UsePQRatchet,
    create_sender_key_distribution_message, group_decrypt, group_encrypt, message_decrypt,
    message_encrypt, process_prekey_bundle, process_sender_key_distribution_message,
};
use wacore::libsignal::store::record_helpers;
use wacore::libsignal::store::sender_key_name::SenderKeyName;
use wacore::store::commands::DeviceCommand;
use wacore::store::traits::Backend;
use wacore::store::{Device, PersistenceManager, SignalStoreCache};
use wacore::types::jid::{JidExt, make_sender_key_name};

use super::adapters::{Adapters, DeviceSaver, Shared};
use super::{CLOCK_MS, GROUP, PRE_KEYS, Profile};

// The wire.

/// What a device hands the "server" for another device.
pub enum Envelope {
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
    pub fn is_group(&self) -> bool {
        matches!(self, Envelope::Group { .. })
    }
}

#[derive(Default, Debug)]
pub struct Stats {
    pub direct_sent: usize,
    pub direct_received: usize,
    pub prekey_messages_received: usize,
    pub distributions_sent: usize,
    pub distributions_received: usize,
    pub group_sent: usize,
    pub group_received: usize,
    pub flushes: usize,
}

// ---------------------------------------------------------------------------
// A device: its store handle, persistence manager and Signal cache.

/// What must survive a close: the device record's fields.
#[derive(Debug, PartialEq)]
pub struct DeviceRecord {
    pub push_name: String,
    pub pn: Option<String>,
    pub lid: Option<String>,
    pub lid_migrated: bool,
    pub registration_id: u32,
    pub identity_key: (Vec<u8>, Vec<u8>),
    pub noise_key: Vec<u8>,
    pub adv_secret_key: [u8; 32],
    pub signed_pre_key_id: u32,
    pub signed_pre_key: (Vec<u8>, Vec<u8>),
    pub signed_pre_key_signature: Vec<u8>,
    pub last_signed_pre_key_rotation_ms: i64,
    pub next_pre_key_id: u32,
    pub first_unupload_pre_key_id: u32,
    pub server_has_prekeys: bool,
}

pub fn key_bytes(key: &KeyPair) -> (Vec<u8>, Vec<u8>) {
    (
        key.public_key.public_key_bytes().to_vec(),
        key.private_key.serialize().to_vec(),
    )
}

impl DeviceRecord {
    pub fn of(device: &Device) -> Self {
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
pub struct Contact {
    pub address: ProtocolAddress,
    pub chain: SenderKeyName,
}

/// The Signal rows one device's traffic with the other writes, read
/// straight from the store: the cache flushes them, a reopen must return
/// them byte for byte.
pub struct SignalRows {
    pub session: Option<Bytes>,
    pub identity: Option<[u8; 32]>,
    pub own_sender_key: Option<Vec<u8>>,
    pub their_sender_key: Option<Vec<u8>>,
    pub sender_key_devices: Vec<(String, bool)>,
    pub pre_keys: Vec<(u32, Bytes)>,
    pub signed_pre_keys: Vec<(u32, Vec<u8>)>,
}

impl SignalRows {
    /// Field by field, so that a failure names the row instead of dumping
    /// kilobytes of record bytes.
    pub fn assert_same(&self, before: &SignalRows, context: &str) {
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
pub struct Closed {
    pub device: DeviceRecord,
    pub rows: SignalRows,
}

/// A store a [`Peer`] runs on: its handle (what the caller opened) and the
/// `Backend` the client's stack uses.
pub trait StoreHandle: Send + Sync + 'static {
    fn backend(&self) -> Arc<dyn Backend>;
    /// Closes the store (its last handle).
    fn close(self) -> impl Future<Output = ()> + Send;
}

pub struct Peer<S: StoreHandle> {
    pub profile: &'static Profile,
    pub run: u32,
    pub store: S,
    pub manager: Arc<PersistenceManager>,
    pub cache: Arc<SignalStoreCache>,
    pub saver: DeviceSaver,
    pub rng: StdRng,
    /// This device's Signal address (from its LID).
    pub address: ProtocolAddress,
    /// This device's own sender-key chain in the group.
    pub chain: SenderKeyName,
    pub sent: usize,
}

impl<S: StoreHandle> Peer<S> {
    /// Starts a device on `store` the way the client does at startup:
    /// `PersistenceManager::new` (exists / create / load), a fresh Signal
    /// cache, the background saver.
    pub async fn open(store: S, profile: &'static Profile, run: u32) -> Peer<S> {
        let backend = store.backend();
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

    pub async fn load_addresses(&mut self) {
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

    pub fn contact(&self) -> Contact {
        Contact {
            address: self.address.clone(),
            chain: self.chain.clone(),
        }
    }

    pub async fn rows(&self, other: &Contact) -> SignalRows {
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

    pub fn name(&self) -> &'static str {
        self.profile.name
    }

    pub fn backend(&self) -> Arc<dyn Backend> {
        self.manager.backend()
    }

    pub fn adapters(&self) -> Adapters {
        Adapters::new(Shared {
            manager: self.manager.clone(),
            backend: self.backend(),
            cache: self.cache.clone(),
        })
    }

    pub async fn device(&self) -> Device {
        self.manager.get_device_snapshot().await
    }

    /// First start: what pairing and the first pre-key upload leave in the
    /// store. `Device::new()` (run by `create()`) drew its keys from the OS;
    /// they are replaced by seeded ones so that runs are reproducible.
    pub async fn provision(&mut self) {
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
    pub async fn bundle(&self, pre_key_id: u32) -> PreKeyBundle {
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
    pub async fn install_bundle(&mut self, to: &ProtocolAddress, bundle: &PreKeyBundle) {
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
    pub async fn rotate_signed_pre_key(&mut self) {
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

    pub async fn flush(&self) {
        self.cache
            .flush(self.backend().as_ref())
            .await
            .unwrap_or_else(|e| panic!("{} run {}: flush: {e:#}", self.name(), self.run));
    }

    /// The client's pre-wire gate: flush before the wire only when a send
    /// raised a counter lease (otherwise the coalescer would flush later).
    pub async fn pre_wire(&self, stats: &mut Stats) {
        if self.cache.needs_pre_wire_flush().await {
            self.flush().await;
            stats.flushes += 1;
        }
    }

    pub async fn send_pairwise(
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

    pub async fn send_text(&mut self, to: &Peer<S>, stats: &mut Stats) -> Envelope {
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
    pub async fn distribute_sender_key(
        &mut self,
        to: &Peer<S>,
        stats: &mut Stats,
    ) -> Option<Envelope> {
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

    pub async fn send_group(&mut self, stats: &mut Stats) -> Envelope {
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
    pub async fn receive(&mut self, envelope: Envelope, stats: &mut Stats) {
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
    pub async fn deliver(
        &mut self,
        inbox: &mut Vec<Envelope>,
        rng: &mut StdRng,
        stats: &mut Stats,
    ) {
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

    /// Closes the device like a client shutdown and returns what it left
    /// in the store.
    pub async fn close(self, other: &Contact) -> Closed {
        self.flush().await;
        let rows = self.rows(other).await;
        let device = self.shut_down().await;
        Closed { device, rows }
    }

    /// A client shutdown: final cache flush, final device save (checked
    /// against the store), then the store handle.
    pub async fn shut_down(self) -> DeviceRecord {
        self.flush().await;
        let Peer {
            store,
            manager,
            cache,
            saver,
            ..
        } = self;
        saver.stop().await;
        let record = DeviceRecord::of(&manager.get_device_snapshot().await);
        let saved = manager
            .backend()
            .load()
            .await
            .expect("load device")
            .expect("device record");
        assert_eq!(DeviceRecord::of(&saved), record, "the saver's final save");
        drop((manager, cache));
        store.close().await;
        record
    }
}

/// Sends one message from `from` to `to` and delivers it, flushing each
/// side's cache after its half, like the client's send path (pre-wire
/// flush) and receive path (commit of the received batch).
pub async fn message<S: StoreHandle>(
    from: &mut Peer<S>,
    to: &mut Peer<S>,
    group: bool,
    stats: &mut Stats,
) {
    let mut envelopes = Vec::with_capacity(2);
    if group {
        if let Some(distribution) = from.distribute_sender_key(to, stats).await {
            envelopes.push(distribution);
        }
        envelopes.push(from.send_group(stats).await);
    } else {
        envelopes.push(from.send_text(to, stats).await);
    }
    from.flush().await;
    for envelope in envelopes {
        to.receive(envelope, stats).await;
    }
    to.flush().await;
}
