//! Workload 9: real Signal traffic between two devices, each in a store file
//! of its own, through wacore's `SignalStoreCache` and `PersistenceManager`
//! with libsignal doing the crypto (the stack of `tests/signal_e2e.rs`):
//! X3DH from a pre-key bundle, then direct messages both ways and group
//! messages on sender keys, the sender's cache flushed after every encrypt
//! and the receiver's after every decrypt, and both stores dropped and
//! reopened (fresh managers and caches) every 200 to 400 messages. The
//! time per message is reported with the reopens and without.

#[path = "../../../tests/util/signal/mod.rs"]
mod stack;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use stack::{ALICE, BOB, Peer, Profile, Stats, StoreHandle, message};
use wacore::store::traits::Backend;

use crate::measure::{Outcome, Scale, micros, millis};
use crate::report::median;
use crate::stores::{Kind, Store};

/// The one-time pre-key in the bundle Alice fetches for Bob.
const BUNDLE_PRE_KEY: u32 = 7;

/// A device's store of the kind under test.
struct Handle(Store);

impl StoreHandle for Handle {
    fn backend(&self) -> Arc<dyn Backend> {
        self.0.arc()
    }

    async fn close(self) {
        self.0.close().await;
    }
}

async fn open(kind: Kind, dir: &Path, profile: &'static Profile, run: u32) -> Peer<Handle> {
    let path = dir.join(format!("{}.{}", profile.name, kind.file_name()));
    Peer::open(Handle(Store::open_at(kind, &path, 1).await), profile, run).await
}

pub(crate) async fn w_signal(kind: Kind, dir: &Path, sc: Scale) -> Outcome {
    let mut rng = StdRng::seed_from_u64(0x5157_0A11);
    let mut stats = Stats::default();
    let mut alice = open(kind, dir, &ALICE, 1).await;
    let mut bob = open(kind, dir, &BOB, 1).await;
    alice.provision().await;
    bob.provision().await;
    let bundle = bob.bundle(BUNDLE_PRE_KEY).await;
    let bob_address = bob.address.clone();
    alice.install_bundle(&bob_address, &bundle).await;
    // Bob can answer once he has Alice's pre-key message.
    message(&mut alice, &mut bob, false, &mut stats).await;

    let total = sc.n(1500);
    let started = Instant::now();
    let mut traffic = Duration::ZERO;
    let mut reopens = Vec::new();
    let mut next_reopen = rng.random_range(200..=400);
    let mut run = 1;
    for sent in 1..=total {
        let group = rng.random_bool(0.25);
        let t = Instant::now();
        if rng.random_bool(0.5) {
            message(&mut alice, &mut bob, group, &mut stats).await;
        } else {
            message(&mut bob, &mut alice, group, &mut stats).await;
        }
        traffic += t.elapsed();
        if sent == next_reopen && sent < total {
            next_reopen += rng.random_range(200..=400);
            run += 1;
            let t = Instant::now();
            alice.shut_down().await;
            bob.shut_down().await;
            alice = open(kind, dir, &ALICE, run).await;
            bob = open(kind, dir, &BOB, run).await;
            reopens.push(millis(t.elapsed()));
        }
    }
    assert_eq!(stats.direct_received, stats.direct_sent, "{stats:?}");
    assert_eq!(stats.group_received, stats.group_sent, "{stats:?}");
    alice.shut_down().await;
    bob.shut_down().await;
    let whole = started.elapsed();
    Outcome {
        values: vec![
            micros(whole) / total as f64,
            micros(traffic) / total as f64,
            median(reopens),
        ],
        latency: None,
    }
}
