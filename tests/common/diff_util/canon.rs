//! Results: `Out` (a rendered result), how two results differ, and the
//! canonical renderings (unordered lists sorted, structs without
//! `PartialEq` field by field) that make results comparable as strings.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::Arc;

use wacore::appstate::hash::HashState;
use wacore::libsignal::protocol::KeyPair;
use wacore::store::Device;
use wacore::store::traits::{AppStateSyncKey, DeviceListRecord, LidPnMappingEntry, TcTokenEntry};

/// A rendered result. `res`: the canonical form compared for equality
/// (`Err` compares equal to any `Err`). `ordered`: for list reads whose
/// order RedbStore promises to reproduce, the list in returned order.
#[derive(Debug, Clone, PartialEq)]
pub struct Out {
    pub res: Result<String, String>,
    pub ordered: Option<String>,
}

/// SqliteStore's `ID_PARAM_CHUNK`: ids per `IN (...)` query.
pub const SQLITE_ID_CHUNK: usize = 900;

/// Marker for results the model cannot predict.
pub const ANY: &str = "<any>";

impl Out {
    pub fn ok(s: impl Into<String>) -> Out {
        Out {
            res: Ok(s.into()),
            ordered: None,
        }
    }

    pub fn err(s: impl Into<String>) -> Out {
        Out {
            res: Err(s.into()),
            ordered: None,
        }
    }

    pub fn any() -> Out {
        Out::ok(ANY)
    }

    pub fn with_order(mut self, ordered: String) -> Out {
        if self.res.is_ok() {
            self.ordered = Some(ordered);
        }
        self
    }
}

pub fn dbg<T: Debug>(v: T) -> String {
    format!("{v:?}")
}

/// How two results differ: `None` if they agree.
pub fn difference(a: &Out, b: &Out) -> Option<&'static str> {
    match (&a.res, &b.res) {
        (Ok(x), _) | (_, Ok(x)) if x == ANY => None,
        (Err(_), Err(_)) => None,
        (Ok(x), Ok(y)) if x != y => Some("different results"),
        (Ok(_), Ok(_)) => match (&a.ordered, &b.ordered) {
            (Some(x), Some(y)) if x != y => Some("same set, different order"),
            _ => None,
        },
        _ => Some("one Ok, the other Err"),
    }
}

pub fn canon_hash_state(s: &HashState) -> String {
    let map: BTreeMap<_, _> = s.index_value_map.iter().collect();
    format!(
        "HashState {{ version: {}, hash: {:?}, map: {:?}, fatal: {} }}",
        s.version,
        &s.hash[..],
        map,
        s.mac_mismatch_fatal
    )
}

pub fn canon_sync_key(k: &Option<AppStateSyncKey>) -> String {
    dbg(k)
}

pub fn hash_state_of(
    version: u64,
    hash_seed: u8,
    map: &[(String, Vec<u8>)],
    fatal: bool,
) -> HashState {
    HashState {
        version,
        hash: [hash_seed; 128],
        index_value_map: map.iter().cloned().collect::<HashMap<_, _>>(),
        mac_mismatch_fatal: fatal,
    }
}

fn key_pair_bytes(k: &KeyPair) -> Vec<u8> {
    let mut v = k.private_key.serialize().to_vec();
    v.extend_from_slice(k.public_key.public_key_bytes());
    v
}

/// Every field of a loaded `Device`. With `masked`, the fields `create()`
/// fills randomly (keys, registration id, rotation time) are hidden: two
/// stores each create their own random device.
pub fn canon_device(d: &Device, masked: bool) -> String {
    let secret = |s: String| if masked { "*".to_string() } else { s };
    let fields: Vec<(&str, String)> = vec![
        ("pn", dbg(&d.pn)),
        ("lid", dbg(&d.lid)),
        ("registration_id", secret(d.registration_id.to_string())),
        ("noise_key", secret(dbg(key_pair_bytes(&d.noise_key)))),
        ("identity_key", secret(dbg(key_pair_bytes(&d.identity_key)))),
        (
            "signed_pre_key",
            secret(dbg(key_pair_bytes(&d.signed_pre_key))),
        ),
        ("signed_pre_key_id", d.signed_pre_key_id.to_string()),
        (
            "signed_pre_key_signature",
            secret(dbg(&d.signed_pre_key_signature[..])),
        ),
        ("adv_secret_key", secret(dbg(d.adv_secret_key))),
        ("account", dbg(&d.account)),
        ("push_name", dbg(&d.push_name)),
        ("app_version_primary", d.app_version_primary.to_string()),
        ("app_version_secondary", d.app_version_secondary.to_string()),
        ("app_version_tertiary", d.app_version_tertiary.to_string()),
        (
            "app_version_last_fetched_ms",
            d.app_version_last_fetched_ms.to_string(),
        ),
        ("device_props", dbg(&d.device_props)),
        ("client_profile", dbg(&d.client_profile)),
        ("edge_routing_info", dbg(&d.edge_routing_info)),
        ("props_hash", dbg(&d.props_hash)),
        ("next_pre_key_id", d.next_pre_key_id.to_string()),
        (
            "first_unupload_pre_key_id",
            d.first_unupload_pre_key_id.to_string(),
        ),
        ("server_has_prekeys", d.server_has_prekeys.to_string()),
        ("nct_salt", dbg(&d.nct_salt)),
        ("nct_salt_sync_seen", d.nct_salt_sync_seen.to_string()),
        ("server_cert_chain", dbg(&d.server_cert_chain)),
        ("login_counter", d.login_counter.to_string()),
        ("lid_migrated", d.lid_migrated.to_string()),
        (
            "last_signed_pre_key_rotation_ms",
            secret(d.last_signed_pre_key_rotation_ms.to_string()),
        ),
        (
            "read_receipts_disabled",
            d.read_receipts_disabled.to_string(),
        ),
    ];
    let body: Vec<String> = fields
        .into_iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    format!("Device {{ {} }}", body.join(", "))
}

/// What SqliteStore returns for a saved device: the runtime-only fields
/// reset (contract §4.1).
pub fn normalized(d: &Device) -> Device {
    let mut d = d.clone();
    d.device_props = Arc::new(wacore::store::device::DEVICE_PROPS.clone());
    d.client_profile = wacore::client_profile::ClientProfile::web();
    d.nct_salt_sync_seen = false;
    d
}

pub fn canon_lid(e: &LidPnMappingEntry) -> String {
    dbg(e)
}

pub fn canon_lid_list(v: &[LidPnMappingEntry]) -> (String, String) {
    let ordered: Vec<String> = v.iter().map(canon_lid).collect();
    let mut sorted = ordered.clone();
    sorted.sort();
    (dbg(sorted), dbg(ordered))
}

pub fn canon_tc(e: &Option<TcTokenEntry>) -> String {
    dbg(e)
}

pub fn canon_dev_list(r: &Option<DeviceListRecord>) -> String {
    dbg(r)
}

pub fn canon_macs(m: &HashMap<[u8; 32], Vec<u8>>) -> String {
    let sorted: BTreeMap<_, _> = m.iter().map(|(k, v)| (k.to_vec(), v.clone())).collect();
    dbg(sorted)
}

pub fn sorted<T: Ord + Debug + Clone>(v: &[T]) -> String {
    let mut v = v.to_vec();
    v.sort();
    dbg(v)
}
