//! whatsapp-rust's Signal stack over any store, shared by
//! `tests/signal_e2e.rs` and the benchmark in `compat/benches/compare`:
//! wacore's `PersistenceManager` and `SignalStoreCache` behind libsignal's
//! store traits, and two devices that talk through them. Deterministic:
//! every RNG is seeded, and key material `Device::new()` draws from the OS
//! is replaced by seeded keys.

#![allow(dead_code)] // each user takes a different subset

mod adapters;
mod peer;

pub use peer::*;

pub struct Profile {
    pub name: &'static str,
    pub push_name: &'static str,
    /// The device's own JIDs (device 3 of each account).
    pub pn: &'static str,
    pub lid: &'static str,
    pub seed: u64,
}

pub const ALICE: Profile = Profile {
    name: "alice",
    push_name: "Alice",
    pn: "15550001001:3@s.whatsapp.net",
    lid: "100000000000001:3@lid",
    seed: 0xA11C_E000_0000_0001,
};

pub const BOB: Profile = Profile {
    name: "bob",
    push_name: "Bob",
    pn: "15550001002:3@s.whatsapp.net",
    lid: "100000000000002:3@lid",
    seed: 0xB0B0_0000_0000_0002,
};

/// The group both devices are in.
pub const GROUP: &str = "120363000000000042@g.us";
/// One-time pre-keys each device generates (ids 1..=PRE_KEYS).
pub const PRE_KEYS: u32 = 64;
/// A fixed wall clock for signed pre-key records and rotation stamps.
pub const CLOCK_MS: u64 = 1_750_000_000_000;
