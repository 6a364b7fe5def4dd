//! The client's side of the store: a background device saver and
//! libsignal's store traits over wacore's `SignalStoreCache`, the `Device`
//! record and any `Backend` (after whatsapp-rust's `store::signal_adapter`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use wacore::libsignal::protocol::error::Result as SignalResult;
use wacore::libsignal::protocol::{
    Direction, GenericSignedPreKey, IdentityChange, IdentityKey, IdentityKeyPair, IdentityKeyStore,
    PreKeyId, PreKeyRecord, PreKeyStore, ProtocolAddress, PublicKey, SenderKeyRecord,
    SenderKeyStore, SessionCheckoutKey, SessionCheckoutStoreResult, SessionRecord, SessionStore,
    SignalProtocolError, SignedPreKeyId, SignedPreKeyRecord, SignedPreKeyStore,
};
use wacore::libsignal::store::record_helpers;
use wacore::libsignal::store::sender_key_name::SenderKeyName;
use wacore::runtime::{AbortHandle, Runtime, ShutdownNotifier};
use wacore::store::traits::{Backend, SignalStore};
use wacore::store::{PersistenceManager, SignalStoreCache};

// A Tokio `Runtime` for the persistence manager's background saver that
// keeps the tasks it spawns, so a test can wait for them to finish.

#[derive(Default)]
pub struct TestRuntime {
    pub tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
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
pub struct DeviceSaver {
    pub runtime: Arc<TestRuntime>,
    pub shutdown: ShutdownNotifier,
    pub _task: AbortHandle,
}

impl DeviceSaver {
    pub fn start(manager: &Arc<PersistenceManager>) -> Self {
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
    pub async fn stop(self) {
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
pub struct Shared {
    pub manager: Arc<PersistenceManager>,
    pub backend: Arc<dyn Backend>,
    pub cache: Arc<SignalStoreCache>,
}

impl Shared {
    pub fn signal(&self) -> &dyn SignalStore {
        &*self.backend
    }
}

pub fn backend_error<E>(context: &'static str) -> impl FnOnce(E) -> SignalProtocolError
where
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    move |e| SignalProtocolError::BackendError(context, e.into())
}

pub struct SessionAdapter(Shared);
pub struct IdentityAdapter(Shared);
pub struct PreKeyAdapter(Shared);
pub struct SignedPreKeyAdapter(Shared);
pub struct SenderKeyAdapter(Shared);

pub struct Adapters {
    pub session: SessionAdapter,
    pub identity: IdentityAdapter,
    pub pre_key: PreKeyAdapter,
    pub signed_pre_key: SignedPreKeyAdapter,
    pub sender_key: SenderKeyAdapter,
}

impl Adapters {
    pub fn new(shared: Shared) -> Self {
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

pub fn parse_identity(bytes: Option<Arc<[u8]>>) -> SignalResult<Option<IdentityKey>> {
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
