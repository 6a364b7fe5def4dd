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

#[path = "util/signal/mod.rs"]
mod signal;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use signal::{ALICE, BOB, Closed, DeviceRecord, Envelope, PRE_KEYS, Peer, Stats, StoreHandle};
use wacore::libsignal::protocol::CiphertextMessageType;
use wacore::store::traits::{Backend, DeviceStore};
use whatsapp_rust_redb_storage::RedbStore;

// ---------------------------------------------------------------------------
// The scenario's parameters.

const SCENARIO_SEED: u64 = 0x5EED_0E2E_0000_0007;
/// The one-time pre-key in the bundle Alice fetches for Bob.
const BUNDLE_PRE_KEY: u32 = 23;
/// Pre-key messages Alice sends before anything is delivered.
const FIRST_MESSAGES: usize = 3;
/// Runs after the first (each reopens the stores).
const RUNS: u32 = 4;
/// Exchange rounds per run.
const ROUNDS: usize = 40;

/// A device's RedbStore handle.
struct Store(RedbStore);

impl StoreHandle for Store {
    fn backend(&self) -> Arc<dyn Backend> {
        Arc::new(self.0.clone())
    }

    async fn close(self) {
        self.0.close().await.expect("close store");
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

async fn open_stores(dir: &Path, layout: Layout) -> (Store, Store) {
    match layout {
        Layout::SeparateFiles => (
            Store(RedbStore::new(dir.join("alice.redb")).await.expect("open")),
            Store(RedbStore::new(dir.join("bob.redb")).await.expect("open")),
        ),
        Layout::OneFile => {
            let alice = RedbStore::new(dir.join("both.redb")).await.expect("open");
            let bob = alice.for_device(2);
            (Store(alice), Store(bob))
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
async fn close(alice: Peer<Store>, bob: Peer<Store>, dir: &Path) -> [Closed; 2] {
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
async fn reopen(
    dir: &Path,
    layout: Layout,
    run: u32,
    closed: &[Closed; 2],
) -> (Peer<Store>, Peer<Store>) {
    let (a, b) = open_stores(dir, layout).await;
    assert!(a.0.exists().await.unwrap() && b.0.exists().await.unwrap());
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
    assert!(!a.0.exists().await.unwrap() && !b.0.exists().await.unwrap());
    let mut alice = Peer::open(a, &ALICE, 1).await;
    let mut bob = Peer::open(b, &BOB, 1).await;
    for peer in [&alice, &bob] {
        let device = peer.device().await;
        assert!(device.push_name.is_empty() && device.pn.is_none() && device.lid.is_none());
        assert!(peer.store.0.exists().await.unwrap(), "create() ran");
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
    alice: &mut Peer<Store>,
    bob: &mut Peer<Store>,
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
    sender: &mut Peer<Store>,
    receiver: &mut Peer<Store>,
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
