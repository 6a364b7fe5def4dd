//! The Signal lease contract through the client's own machinery, as
//! whatsapp-rust tests it against SqliteStore
//! (`tests/signal_durability_sqlite.rs`): wacore's `SignalStoreCache` over
//! `RedbStore` advances a session chain and a sender-key chain past a lease,
//! flushes (the lease is now durable), hands out more counters without
//! flushing, and the process is SIGKILLed. A new process reloads: the
//! stored reservation must cover every counter that was handed out, so no
//! message key is ever reused.

#[path = "util/lease.rs"]
mod lease;
#[path = "util/process.rs"]
mod process;

use lease::{CachedSenderKeyStore, fresh_session, spend_dm};
use rand::SeedableRng;
use wacore::libsignal::protocol::consts::SENDER_CHAIN_RESERVATION_BATCH;
use wacore::libsignal::protocol::{create_sender_key_distribution_message, group_encrypt};
use wacore::libsignal::store::sender_key_name::SenderKeyName;
use wacore::store::SignalStoreCache;
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig, Synchronous};

const FIXTURE_SEED: u64 = 0x51A6_5A17_EC4A_5E01;

fn dm_address() -> wacore::libsignal::protocol::ProtocolAddress {
    wacore::libsignal::protocol::ProtocolAddress::new("15550008001", 1.into())
}

fn group_name() -> SenderKeyName {
    SenderKeyName::from_parts("120363000000080001@g.us", "15550008002@s.whatsapp.net:0")
}

fn config(mode: &str) -> RedbStoreConfig {
    let synchronous = if mode == "full" {
        Synchronous::Full
    } else {
        Synchronous::Normal
    };
    RedbStoreConfig::default().with_synchronous(synchronous)
}

/// The child: leases, flushes, hands out unflushed counters, then waits to
/// be killed.
#[tokio::test]
#[ignore]
async fn lease_child() {
    let (Some(path), Ok(mode)) = (
        std::env::var_os("WA_REDB_LEASE_FILE"),
        std::env::var("WA_REDB_LEASE_MODE"),
    ) else {
        return;
    };
    let store = RedbStore::with_config(&path, config(&mode))
        .await
        .expect("store");
    let cache = SignalStoreCache::new();
    let address = dm_address();
    let name = group_name();
    let mut rng = rand::rngs::StdRng::seed_from_u64(FIXTURE_SEED);

    let mut dm = fresh_session(&mut rng);
    assert_eq!(spend_dm(&mut dm).0, 0);
    cache.put_session(&address, dm).await;

    let mut sender = CachedSenderKeyStore {
        cache: &cache,
        backend: &store,
    };
    create_sender_key_distribution_message(&name, &mut sender, &mut rng)
        .await
        .expect("sender-key setup");
    let first = group_encrypt(&mut sender, &name, b"first", &mut rng)
        .await
        .expect("first group encrypt");
    assert_eq!(first.iteration(), 0);

    // The lease reaches the store before any ciphertext would be sent.
    cache.flush(&store).await.expect("durable lease flush");
    assert!(!cache.needs_pre_wire_flush().await);

    let mut dm = cache
        .get_session(&address, &store)
        .await
        .expect("session load")
        .expect("session");
    for expected in 1..=5 {
        assert_eq!(spend_dm(&mut dm).0, expected);
    }
    cache.put_session(&address, dm).await;
    for expected in 1..=5 {
        let message = group_encrypt(&mut sender, &name, b"unflushed", &mut rng)
            .await
            .expect("group encrypt");
        assert_eq!(message.iteration(), expected);
    }
    println!("LEASED");
    // Wait for the SIGKILL.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    panic!("the parent was to kill this process");
}

async fn verify_recovery(path: &std::path::Path, mode: &str) {
    let store = RedbStore::with_config(path, config(mode))
        .await
        .expect("reopen");
    let cache = SignalStoreCache::new();
    let address = dm_address();
    let name = group_name();
    let mut rng = rand::rngs::StdRng::seed_from_u64(FIXTURE_SEED ^ 0xFFFF);

    // The counters the killed process handed out.
    let mut child_record = fresh_session(&mut rand::rngs::StdRng::seed_from_u64(FIXTURE_SEED));
    let mut child_fingerprints = Vec::with_capacity(6);
    for _ in 0..6 {
        child_fingerprints.push(spend_dm(&mut child_record).1);
    }

    let mut recovered = cache
        .get_session(&address, &store)
        .await
        .expect("recovery load")
        .expect("durable session");
    let (counter, fingerprint) = spend_dm(&mut recovered);
    assert_eq!(counter, SENDER_CHAIN_RESERVATION_BATCH);
    assert!(
        !child_fingerprints.contains(&fingerprint),
        "a message key was reused"
    );
    cache.put_session(&address, recovered).await;

    let mut sender = CachedSenderKeyStore {
        cache: &cache,
        backend: &store,
    };
    let recovered_group = group_encrypt(&mut sender, &name, b"recovered", &mut rng)
        .await
        .expect("group recovery encrypt");
    assert_eq!(recovered_group.iteration(), SENDER_CHAIN_RESERVATION_BATCH);
    assert!(cache.needs_pre_wire_flush().await);
    cache.flush(&store).await.expect("recovery lease flush");
    assert!(!cache.needs_pre_wire_flush().await);

    cache.clear_after_flush().await;
    let mut exact = cache
        .get_session(&address, &store)
        .await
        .expect("clean reload")
        .expect("durable session");
    assert_eq!(spend_dm(&mut exact).0, SENDER_CHAIN_RESERVATION_BATCH + 1);
    cache.put_session(&address, exact).await;
    let exact_group = group_encrypt(&mut sender, &name, b"exact", &mut rng)
        .await
        .expect("clean group reload");
    assert_eq!(exact_group.iteration(), SENDER_CHAIN_RESERVATION_BATCH + 1);
    assert!(!cache.needs_pre_wire_flush().await);
}

async fn lease_survives_sigkill(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lease.redb");
    let mut cmd = process::self_command("lease_child");
    cmd.env("WA_REDB_LEASE_FILE", &path)
        .env("WA_REDB_LEASE_MODE", mode);
    let (mut child, _out) = process::spawn_until(cmd, "LEASED");
    child.kill().unwrap(); // SIGKILL: no exit hooks, no clean close
    child.wait().unwrap();
    assert!(
        dir.path().join("lease.redb.journal").exists(),
        "the kill must leave the store uncleanly closed"
    );
    verify_recovery(&path, mode).await;
}

#[tokio::test]
async fn signal_lease_survives_sigkill_normal() {
    lease_survives_sigkill("normal").await;
}

#[tokio::test]
async fn signal_lease_survives_sigkill_full() {
    lease_survives_sigkill("full").await;
}
