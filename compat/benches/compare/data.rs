//! Deterministic data: a seeded PRNG, blobs, keys and records as the client makes them.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use wacore::store::traits::{DeviceInfo, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry};

/// splitmix64.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }

    pub(crate) fn arr32(&mut self) -> [u8; 32] {
        let mut a = [0u8; 32];
        self.fill(&mut a);
        a
    }
}

pub(crate) const SESSION_LEN: usize = 1200;
pub(crate) const SENDER_KEY_LEN: usize = 600;
pub(crate) const SENT_PAYLOAD_LEN: usize = 320;

/// Blobs reused across writes (content does not matter to either engine,
/// but every blob is incompressible).
pub(crate) struct Blobs {
    pub(crate) sessions: Vec<Bytes>,
    pub(crate) sender_keys: Vec<Bytes>,
    pub(crate) payloads: Vec<Vec<u8>>,
}

impl Blobs {
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        Blobs {
            sessions: (0..256)
                .map(|_| Bytes::from(rng.bytes(SESSION_LEN)))
                .collect(),
            sender_keys: (0..64)
                .map(|_| Bytes::from(rng.bytes(SENDER_KEY_LEN)))
                .collect(),
            payloads: (0..64).map(|_| rng.bytes(SENT_PAYLOAD_LEN)).collect(),
        }
    }

    pub(crate) fn session(&self, i: usize) -> &Bytes {
        &self.sessions[i % self.sessions.len()]
    }
}

/// A Signal address as the client renders it: `"{user}:{device}@c.us.0"`.
pub(crate) fn session_address(space: u64, i: u64) -> String {
    format!("55119{:08}:{}@c.us.0", space * 10_000_000 + i / 8, i % 8)
}

pub(crate) fn sender_key_name(i: u64) -> String {
    format!("1203630{:011}@g.us:5511987650001:{}@c.us.0", i / 4, i % 4)
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn device_list_record(rng: &mut Rng, i: u64, ts: i64) -> DeviceListRecord {
    let n = 1 + rng.below(4) as u32;
    let mut devices = vec![DeviceInfo::new(0, None)];
    for d in 1..n {
        devices.push(DeviceInfo::new(d, Some(d + rng.below(8) as u32)));
    }
    DeviceListRecord {
        user: format!("5511{:09}", 100_000_000 + i),
        devices,
        timestamp: ts,
        phash: Some(format!("2:{:08x}", rng.next_u64() as u32)),
        raw_id: Some(rng.next_u64() as u32),
    }
}

pub(crate) fn msg_secret_entry(rng: &mut Rng, i: u64, now: i64) -> MsgSecretEntry {
    let chat: Arc<str> = Arc::from(format!("5511{:09}@s.whatsapp.net", 200_000_000 + i / 64));
    let sender = if i.is_multiple_of(2) {
        chat.clone()
    } else {
        Arc::from("5511987650001@s.whatsapp.net")
    };
    MsgSecretEntry {
        chat,
        sender,
        msg_id: Arc::from(format!("3EB0{:016X}{:04X}", rng.next_u64(), i & 0xffff)),
        secret: rng.arr32(),
        expires_at: now + 30 * 86_400,
        message_ts: now - (i as i64),
    }
}

pub(crate) fn lid_entry(i: u64, now: i64) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: format!("1{:014}", 10_000_000_000_000 + i * 7),
        phone_number: format!("5511{:09}", 300_000_000 + i),
        created_at: now - 86_400,
        updated_at: now,
        learning_source: "usync".to_string(),
    }
}
