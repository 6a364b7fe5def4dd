//! Real Signal state through host losses: a client process (wacore's
//! `SignalStoreCache` over a `RedbStore` that replicates to a directory)
//! sends direct and group messages, flushing before the wire whenever the
//! cache says its counter lease needs it, and says which message key it
//! published; it is SIGKILLed at a random point, its host's files are
//! deleted, and the next "host" restores the store from the replica and
//! goes on. No message key may be published twice, across every loss
//! (`WA_REDB_HOST_LOSSES`, default 32).

#[path = "util/lease.rs"]
mod lease;
#[path = "util/process.rs"]
mod process;

use std::collections::HashSet;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use lease::{CachedSenderKeyStore, fresh_session, spend_dm};
use rand::{RngExt, SeedableRng};
use wacore::libsignal::protocol::{
    ProtocolAddress, create_sender_key_distribution_message, group_encrypt,
};
use wacore::libsignal::store::sender_key_name::SenderKeyName;
use wacore::store::SignalStoreCache;
use whatsapp_rust_redb_storage::{
    RedbStore, RedbStoreConfig, ReplicaRestoreOptions, ReplicaTarget, ReplicationOptions,
};

const SEED: u64 = 0x0517_1055_5EED_0001;

fn address() -> ProtocolAddress {
    ProtocolAddress::new("15550009001", 1.into())
}

fn group() -> SenderKeyName {
    SenderKeyName::from_parts("120363000000090001@g.us", "15550009002@s.whatsapp.net:0")
}

fn target(dir: &std::path::Path) -> ReplicaTarget {
    ReplicaTarget::new(&format!("file://{}", dir.display())).expect("target")
}

/// One host's client: runs until it is killed.
#[tokio::test]
#[ignore]
async fn host_child() {
    let (Some(path), Some(replica), Ok(round)) = (
        std::env::var_os("WA_REDB_HOST_FILE"),
        std::env::var_os("WA_REDB_HOST_REPLICA"),
        std::env::var("WA_REDB_HOST_ROUND"),
    ) else {
        return;
    };
    let round: u64 = round.parse().unwrap();
    let store = RedbStore::with_config(&path, RedbStoreConfig::default())
        .await
        .expect("store");
    let options = ReplicationOptions::default().with_timeout(Duration::from_secs(60));
    store
        .replicate_to(&target(std::path::Path::new(&replica)), &options)
        .await
        .expect("replicate");
    let cache = SignalStoreCache::new();
    let mut sender = CachedSenderKeyStore {
        cache: &cache,
        backend: &store,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(SEED ^ round);
    if round == 0 {
        cache.put_session(&address(), fresh_session(&mut rng)).await;
        create_sender_key_distribution_message(&group(), &mut sender, &mut rng)
            .await
            .expect("sender key");
        cache.flush(&store).await.expect("first flush");
    }
    println!("READY");
    loop {
        let published = if rng.random_bool(0.5) {
            let mut session = cache
                .get_session(&address(), &store)
                .await
                .expect("load")
                .expect("the session");
            let (counter, _) = spend_dm(&mut session);
            cache.put_session(&address(), session).await;
            format!("dm {counter}")
        } else {
            let message = group_encrypt(&mut sender, &group(), b"hello", &mut rng)
                .await
                .expect("group encrypt");
            format!("group {}", message.iteration())
        };
        // Before the wire: what the lease says must be durable is made so
        // (here: stored in the replica) or nothing is sent.
        if cache.needs_pre_wire_flush().await {
            cache.flush(&store).await.expect("pre-wire flush");
        }
        println!("PUBLISHED {published}");
    }
}

#[test]
fn no_message_key_is_published_twice_across_host_losses() {
    let losses: usize = std::env::var("WA_REDB_HOST_LOSSES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(32);
    let replica = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(SEED);
    let mut published: HashSet<String> = HashSet::new();
    let mut host = tempfile::tempdir().unwrap();
    let mut path: PathBuf = host.path().join("bot.redb");
    for round in 0..losses {
        let mut cmd = process::self_command("host_child");
        cmd.env("WA_REDB_HOST_FILE", &path)
            .env("WA_REDB_HOST_REPLICA", replica.path())
            .env("WA_REDB_HOST_ROUND", round.to_string());
        let (mut child, mut out) = process::spawn_until(cmd, "READY");
        // Killed after a random number of messages (some rounds none).
        let before_kill = rng.random_range(0..60);
        let mut line = String::new();
        let record = |line: &str, published: &mut HashSet<String>| {
            if let Some(key) = line.trim_end().strip_prefix("PUBLISHED ") {
                assert!(
                    published.insert(key.to_string()),
                    "round {round}: the message key of {key} was published twice"
                );
            }
        };
        for _ in 0..before_kill {
            line.clear();
            assert_ne!(out.read_line(&mut line).unwrap(), 0, "the child ended");
            record(&line, &mut published);
        }
        child.kill().unwrap(); // SIGKILL: the host is gone
        child.wait().unwrap();
        // What it printed before it died was published too.
        loop {
            line.clear();
            if out.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            record(&line, &mut published);
        }
        // The host's disk is gone; a new host restores from the replica.
        let next = tempfile::tempdir().unwrap();
        let restored = next.path().join("bot.redb");
        rt.block_on(RedbStore::restore_from_replica(
            &target(replica.path()),
            &restored,
            &RedbStoreConfig::default(),
            &ReplicaRestoreOptions::default(),
        ))
        .unwrap_or_else(|e| panic!("round {round}: restore: {e:?}"));
        drop(std::mem::replace(&mut host, next));
        path = restored;
    }
    let dms = published.iter().filter(|k| k.starts_with("dm")).count();
    assert!(
        dms > losses && published.len() - dms > losses,
        "too few messages to mean anything: {dms} direct, {} group",
        published.len() - dms
    );
}
