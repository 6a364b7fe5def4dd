//! Signal pieces the lease tests share: a sender-key store over wacore's
//! `SignalStoreCache`, a fresh session, and spending a message key as
//! libsignal's encrypt does (reserving counters past the lease).

#![allow(dead_code)]

use wacore::libsignal::protocol::{
    ChainKey, IdentityKey, KeyPair, RootKey, SenderKeyRecord, SenderKeyStore, SessionRecord,
    SessionState,
};
use wacore::libsignal::store::sender_key_name::SenderKeyName;
use wacore::store::SignalStoreCache;
use whatsapp_rust_redb_storage::RedbStore;

pub type DmFingerprint = ([u8; 32], [u8; 16]);

pub struct CachedSenderKeyStore<'a> {
    pub cache: &'a SignalStoreCache,
    pub backend: &'a RedbStore,
}

#[async_trait::async_trait]
impl SenderKeyStore for CachedSenderKeyStore<'_> {
    async fn store_sender_key(
        &mut self,
        name: &SenderKeyName,
        record: SenderKeyRecord,
    ) -> wacore::libsignal::protocol::error::Result<()> {
        self.cache.put_sender_key(name, record).await;
        Ok(())
    }

    async fn load_sender_key(
        &self,
        name: &SenderKeyName,
    ) -> wacore::libsignal::protocol::error::Result<Option<SenderKeyRecord>> {
        Ok(self
            .cache
            .get_sender_key(name, self.backend)
            .await
            .map_err(|error| {
                wacore::libsignal::protocol::SignalProtocolError::BackendError(
                    "redb durability test",
                    error.into(),
                )
            })?
            .map(|record| (*record).clone()))
    }
}

pub fn fresh_session(rng: &mut rand::rngs::StdRng) -> SessionRecord {
    let local = IdentityKey::new(KeyPair::generate(rng).public_key);
    let remote = IdentityKey::new(KeyPair::generate(rng).public_key);
    let base_key = KeyPair::generate(rng).public_key;
    let mut state = SessionState::new(3, &local, &remote, &RootKey::new([7; 32]), &base_key);
    state.set_sender_chain(&KeyPair::generate(rng), &ChainKey::new([11; 32], 0));
    SessionRecord::new(state)
}

/// Hands out the next DM counter the way the client's encrypt path does,
/// raising the lease when the counter reaches it.
pub fn spend_dm(record: &mut SessionRecord) -> (u32, DmFingerprint) {
    let chain = record
        .session_state()
        .expect("session state")
        .get_sender_chain_key()
        .expect("sender chain");
    let keys = chain.message_keys().generate_keys();
    let fingerprint = (*keys.cipher_key(), *keys.iv());
    let next = chain.next_chain_key().expect("next chain key");
    record
        .session_state_mut()
        .expect("session state")
        .set_sender_chain_key(&next)
        .expect("sender chain update");
    if chain.index() >= record.reserved_sender_chain_index() {
        record.reserve_sender_chain_counters(chain.index());
    }
    (chain.index(), fingerprint)
}
