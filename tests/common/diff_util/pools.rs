//! Key pools: small sets of addresses, ids, names and times that the
//! generated ops draw from, so that keys collide.

/// Signal addresses (sessions, identities, base keys).
pub const ADDRS: &[&str] = &[
    "123@c.us.0",
    "123:2@c.us.0",
    "12@lid.0",
    "ABC:3@lid.0",
    "1x3@c.us.0",
    "ñ1@lid.0",
];
/// `has_signal_state_for_user` arguments, including letters and LIKE
/// wildcards (SqliteStore uses SQL `LIKE`; so does RedbStore).
pub const USERS: &[&str] = &[
    "123", "12", "1", "abc", "1_3", "1%", "", "ABC:3", "123:2", "x", "ñ1", "Ñ1", "_1", "ñ_",
];
/// Numeric users only (exact prefix semantics).
pub const NUMERIC_USERS: &[&str] = &["123", "12", "1"];
/// Pre-key ids, all below 2^31 (SqliteStore stores them as i32).
pub const PREKEY_IDS: &[u32] = &[0, 1, 2, 7, 100, 0x00FF_FFFF, i32::MAX as u32];
pub const SIGNED_IDS: &[u32] = &[0, 1, 2, 11, i32::MAX as u32];
pub const SENDER_KEY_ADDRS: &[&str] = &[
    "g1@g.us:123@c.us.0",
    "g1@g.us:12@lid.0",
    "g2@g.us:123@c.us.0",
];
pub const SYNC_KEY_IDS: &[&[u8]] = &[&[], &[1], &[1, 0], &[2], &[0xff, 0xff]];
pub const APP_NAMES: &[&str] = &["reg", "regular", "regular_high", "critical_block", ""];
/// Seeds of 32-byte index MACs (`[seed; 32]`).
pub const MAC_SEEDS: &[u8] = &[0, 1, 2, 3];
/// Index MACs of other lengths (`get_mutation_mac` accepts any length).
pub const ODD_MACS: &[&[u8]] = &[&[], &[1, 2, 3], &[1; 33]];
pub const GROUPS: &[&str] = &["g@g.us", "g@g.us1", "g", "h@g.us", ""];
pub const DEVICE_JIDS: &[&str] = &[
    "1@s.whatsapp.net",
    "1:2@s.whatsapp.net",
    "2@lid",
    "12@s.whatsapp.net",
    "",
];
pub const LIDS: &[&str] = &["100000012345678", "100000012345679", "1000000123456780"];
pub const PHONES: &[&str] = &["559980000001", "559980000002", "55998000000"];
pub const SOURCES: &[&str] = &["usync", "history", ""];
pub const LID_TIMES: &[i64] = &[0, 100, 200, -1, i64::MIN, i64::MAX];
pub const MSG_IDS: &[&str] = &["M1", "M2", "m1", ""];
pub const DL_USERS: &[&str] = &["123", "456", "12", ""];
pub const TC_JIDS: &[&str] = &["t3", "t4", "ta", "tz", ""];
pub const TC_TIMES: &[i64] = &[-5, 0, 999, 1000, 1001, 2000, i64::MIN, i64::MAX];
pub const CHATS: &[&str] = &["a@s.whatsapp.net", "g@g.us"];
pub const SENDERS: &[&str] = &["a@s.whatsapp.net", "b@lid"];
/// Cutoffs of the wall-clock sweeps (sent messages, pending inbound): far in
/// the past or far in the future, so the result does not depend on when
/// the test runs (any time between 2001 and 2096).
pub const WALL_CUTOFFS: &[i64] = &[i64::MIN, 0, 1_000_000_000, 4_000_000_000, i64::MAX];
pub const SECRET_EXPIRY: &[i64] = &[0, 10, 20, 30, -1, i64::MAX];
pub const SECRET_TS: &[i64] = &[0, 5, 7, -1, i64::MIN, i64::MAX];
pub const SECRET_CUTOFFS: &[i64] = &[i64::MIN, -1, 0, 10, 15, 20, 30, 100, i64::MAX];
pub const JIDS_PN: &[&str] = &[
    "5511987650001@s.whatsapp.net",
    "5511987650001:5@s.whatsapp.net",
];
pub const JIDS_LID: &[&str] = &["100000012345678@lid", "100000012345678:3@lid"];
