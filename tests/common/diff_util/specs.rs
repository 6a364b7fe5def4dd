//! Owned descriptions of the structured arguments of ops (LID mappings,
//! device lists, message secrets, whole `Device` records), with the
//! conversion to the trait's types and `DeviceSpec::generate`.

use std::sync::Arc;

use wacore::libsignal::protocol::{KeyPair, PrivateKey};
use wacore::store::traits::{DeviceInfo, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry};
use wacore::store::{CachedNoiseCert, CachedServerCertChain, Device};
use wacore_binary::Jid;
use waproto::whatsapp as wa;

use super::pools::{JIDS_LID, JIDS_PN};
use super::rng::Rng;

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
