//! Replicated durability (`RedbStore::replicate_to`): every write answered
//! `Ok` is in the replica, so a restore on another "host" (another
//! directory) has it, even with the first host's files gone; a replica
//! that does not answer fails writes within the bound and catches up when
//! it is back; a second host with a copy of the store cannot write over
//! the first's records. Against a directory target and moto's S3 server
//! (see `tests/replica.rs` for how it is started or skipped).

#[path = "util/process.rs"]
mod process;
#[path = "util/proxy.rs"]
mod proxy;
#[path = "util/replicas.rs"]
mod replicas;
#[path = "util/s3.rs"]
mod s3;

use std::time::Duration;

use replicas::{
    BOUND, assert_sessions, paired, restore_and_check, session, url_of, write_sessions,
};
use s3::{S3Server, s3_options, walk};

use wacore::store::traits::SignalStore;
use whatsapp_rust_redb_storage::{
    EncryptionKey, Error, RedbStore, RedbStoreConfig, ReplicaRestoreOptions, ReplicaTarget,
    ReplicationOptions,
};

/// Host A replicates and writes; its files are then lost (the store is
/// never closed: its journal and file are simply gone) and host B restores
/// from the replica alone, with no flag: every acknowledged write is there.
/// With `idle`, host A writes half, stays idle that long, then writes the
/// rest.
async fn host_loss(
    target: &ReplicaTarget,
    config: RedbStoreConfig,
    n: usize,
    idle: Option<Duration>,
) {
    let host_a = tempfile::tempdir().unwrap();
    let host_b = tempfile::tempdir().unwrap();
    let s = paired(&host_a.path().join("bot.redb"), config.clone()).await;
    s.replicate_to(target, &ReplicationOptions::default())
        .await
        .unwrap();
    // The device record above was written before replication: the base
    // snapshot holds it. Everything below is in records only.
    match idle {
        None => write_sessions(&s, 0, n).await,
        Some(idle) => {
            write_sessions(&s, 0, n / 2).await;
            tokio::time::sleep(idle).await;
            write_sessions(&s, n / 2, n - n / 2).await;
        }
    }
    let status = s.replication_status().expect("replicating");
    assert_eq!(status.stored_lsn, status.local_lsn, "{status:?}");
    assert!(status.last_error.is_none() && status.stopped.is_none());
    // Host A is gone: nothing of it is used from here on.
    std::mem::forget(s);
    drop(host_a);
    let restored = host_b.path().join("bot.redb");
    RedbStore::restore_from_replica(
        target,
        &restored,
        &config,
        &ReplicaRestoreOptions::default(),
    )
    .await
    .unwrap();
    assert_sessions(&restored, config, n).await;
}

#[tokio::test]
async fn every_acknowledged_write_restores_from_a_directory_replica() {
    let replica = tempfile::tempdir().unwrap();
    let target = ReplicaTarget::new(&url_of(replica.path())).unwrap();
    host_loss(&target, RedbStoreConfig::default(), 400, None).await;
}

#[tokio::test]
async fn every_acknowledged_write_restores_from_s3() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let target = server.target("s3://replicas/bot-1");
    host_loss(&target, RedbStoreConfig::default(), 300, None).await;
}

/// Writes after a pause longer than the upload runtime's keep-alive (its
/// blocking threads gone, every wake-up the shipper asked for come) reach
/// the replica through the same client.
#[tokio::test]
async fn writes_after_the_uploader_went_idle_reach_the_replica() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let target = server.target("s3://replicas/bot-idle");
    let idle = Some(Duration::from_millis(1500));
    host_loss(&target, RedbStoreConfig::default(), 200, idle).await;
}

/// The threads of this process (Linux).
fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line["Threads:".len()..].trim().parse().unwrap()
}

/// A fleet in one process: `FLEET_FILES` replicated files, a write to each
/// in turn; the threads counted before the first file is opened and right
/// after the last write (printed).
const FLEET_FILES: usize = 40;

#[tokio::test(flavor = "current_thread")]
#[ignore]
async fn fleet_child() {
    let Some(dir) = std::env::var_os("WA_REDB_FLEET_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let before = threads();
    let mut stores = Vec::new();
    for i in 0..FLEET_FILES {
        let s = paired(
            &dir.join(format!("bot-{i}.redb")),
            RedbStoreConfig::default(),
        )
        .await;
        let replica = dir.join(format!("replica-{i}"));
        std::fs::create_dir_all(&replica).unwrap();
        let target = ReplicaTarget::new(&url_of(&replica)).unwrap();
        s.replicate_to(&target, &ReplicationOptions::default())
            .await
            .unwrap();
        stores.push(s);
    }
    for (i, s) in stores.iter().enumerate() {
        write_sessions(s, i, 1).await;
    }
    let after = threads();
    println!("FLEET\nTHREADS {before} {after}");
}

/// Every replicated file of a process uploads on one shared runtime: a
/// fleet of files written one after another holds no thread per file (each
/// held one while it uploaded, and for a second after).
#[cfg(target_os = "linux")]
#[test]
fn a_fleet_of_replicated_files_holds_no_thread_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = process::self_command("fleet_child");
    cmd.env("WA_REDB_FLEET_DIR", dir.path());
    let (mut child, mut out) = process::spawn_until(cmd, "FLEET");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert!(child.wait().unwrap().success());
    let counts: Vec<usize> = line
        .trim()
        .strip_prefix("THREADS ")
        .unwrap_or_else(|| panic!("the child printed {line:?}"))
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    // The upload runtime's worker and its blocking threads (a directory
    // target's file I/O, one upload at a time here), and the test
    // runtime's blocking pool (the stores' calls, snapshots): 11 seen
    // here, and a margin (a thread per file, as before this runtime was
    // shared, was 85 more).
    assert!(
        counts[1] <= counts[0] + 20,
        "{FLEET_FILES} files written: {} threads before, {} after",
        counts[0],
        counts[1]
    );
}

/// A restore downloads record objects several at a time and replays them
/// in order; a replica that lacks one in the middle is refused, saying
/// so, rather than restored in part.
#[tokio::test]
async fn a_replica_missing_a_record_object_is_refused_not_restored_in_part() {
    let (host_a, host_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let replica = tempfile::tempdir().unwrap();
    let target = ReplicaTarget::new(&url_of(replica.path())).unwrap();
    let config = RedbStoreConfig::default();
    let s = paired(&host_a.path().join("bot.redb"), config.clone()).await;
    s.replicate_to(&target, &ReplicationOptions::default())
        .await
        .unwrap();
    // One write at a time: an object each, more than a restore fetches at
    // once.
    let n = 60;
    for i in 0..n {
        s.put_session(&format!("55{i:08}@c.us.0"), &session(i))
            .await
            .unwrap();
    }
    s.close().await.unwrap();
    restore_and_check(
        &target,
        &host_b.path().join("whole.redb"),
        config.clone(),
        n,
    )
    .await;
    let mut objects: Vec<_> = walk(replica.path())
        .into_iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("records")))
        .collect();
    objects.sort();
    assert!(objects.len() >= n, "{} record objects", objects.len());
    std::fs::remove_file(&objects[objects.len() / 2]).unwrap();
    let out = host_b.path().join("part.redb");
    let err = RedbStore::restore_from_replica(&target, &out, &config, &Default::default())
        .await
        .unwrap_err();
    let why = Error::find_in(&err).unwrap().to_string();
    let after = objects[objects.len() / 2 + 1].file_name().unwrap();
    assert!(
        why.contains("the replica is incomplete") && why.contains(&*after.to_string_lossy()),
        "{why}"
    );
    assert!(!out.exists());
}

#[tokio::test]
async fn an_encrypted_stores_records_hold_no_plaintext() {
    let replica = tempfile::tempdir().unwrap();
    let target = ReplicaTarget::new(&url_of(replica.path())).unwrap();
    let config = RedbStoreConfig::default().with_encryption(EncryptionKey::raw([7; 32]));
    host_loss(&target, config, 100, None).await;
    let mut records = 0;
    for entry in walk(replica.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        records += usize::from(entry.to_string_lossy().contains("records"));
        assert!(
            !bytes
                .windows(b"plaintext-marker".len())
                .any(|w| w == b"plaintext-marker"),
            "{} holds plaintext",
            entry.display()
        );
    }
    assert!(records > 0, "no record objects were written");
}

/// moto's S3 server behind a proxy that a test can take down, and the
/// target `url` through it; `None` if moto is not installed.
fn behind_a_proxy(url: &str) -> Option<(S3Server, proxy::Proxy, ReplicaTarget)> {
    let server = S3Server::start()?;
    server.create_bucket("replicas");
    let proxy = proxy::Proxy::start(server.port);
    let target = ReplicaTarget::with_options(url, s3_options(proxy.port)).unwrap();
    Some((server, proxy, target))
}

#[tokio::test]
async fn a_replica_that_does_not_answer_fails_writes_in_time_and_catches_up() {
    let Some((_server, proxy, target)) = behind_a_proxy("s3://replicas/bot-2") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bot.redb");
    let s = paired(&path, RedbStoreConfig::default()).await;
    // Above the shipper's longest backoff (1 s) with room for a retry
    // that fails once more after the proxy is back.
    let options = ReplicationOptions::default().with_timeout(Duration::from_secs(5));
    s.replicate_to(&target, &options).await.unwrap();
    write_sessions(&s, 0, 20).await;
    // The network goes down: a write fails within the bound, saying so,
    // and the store goes on reading.
    proxy.down();
    let failed = tokio::time::timeout(BOUND, s.put_session("5500000020@c.us.0", &session(20)))
        .await
        .expect("a write must not hang while the replica is unreachable")
        .unwrap_err();
    let ours = Error::find_in(&failed).expect("our error");
    assert!(
        matches!(ours, Error::NotReplicated { .. }),
        "{ours:?}: {ours}"
    );
    assert!(ours.to_string().contains("s3://replicas/bot-2"), "{ours}");
    assert!(s.get_session("5500000001@c.us.0").await.unwrap().is_some());
    let behind = s.replication_status().unwrap();
    assert!(behind.stored_lsn < behind.local_lsn, "{behind:?}");
    // Back: the write that failed is uploaded (records go in order), and
    // new writes are answered again.
    proxy.up();
    tokio::time::timeout(BOUND, write_sessions(&s, 21, 10))
        .await
        .unwrap();
    let status = s.replication_status().unwrap();
    assert_eq!(status.stored_lsn, status.local_lsn, "{status:?}");
    s.close().await.unwrap();
    let restored = dir.path().join("restored.redb");
    restore_and_check(&target, &restored, RedbStoreConfig::default(), 31).await;
}

/// Two hosts of one store: A replicates to a directory and has written
/// sessions `0..10`; B has restored the replica at `b_path` (not opened).
struct TwoHosts {
    target: ReplicaTarget,
    a: RedbStore,
    b_path: std::path::PathBuf,
    host_b: tempfile::TempDir,
    _dirs: [tempfile::TempDir; 2],
}

async fn two_hosts() -> TwoHosts {
    let replica = tempfile::tempdir().unwrap();
    let target = ReplicaTarget::new(&url_of(replica.path())).unwrap();
    let host_a = tempfile::tempdir().unwrap();
    let host_b = tempfile::tempdir().unwrap();
    let a = paired(&host_a.path().join("bot.redb"), RedbStoreConfig::default()).await;
    a.replicate_to(&target, &ReplicationOptions::default())
        .await
        .unwrap();
    write_sessions(&a, 0, 10).await;
    let b_path = host_b.path().join("bot.redb");
    RedbStore::restore_from_replica(
        &target,
        &b_path,
        &RedbStoreConfig::default(),
        &ReplicaRestoreOptions::default(),
    )
    .await
    .unwrap();
    TwoHosts {
        target,
        a,
        b_path,
        host_b,
        _dirs: [replica, host_a],
    }
}

#[tokio::test]
async fn a_second_host_with_an_older_copy_cannot_write_the_replica() {
    // Host B restores while A still runs, then A writes on.
    let TwoHosts {
        target,
        a,
        b_path,
        host_b,
        _dirs,
    } = two_hosts().await;
    write_sessions(&a, 10, 10).await;
    let b = RedbStore::new(&b_path).await.unwrap();
    let err = b
        .replicate_to(&target, &ReplicationOptions::default())
        .await
        .unwrap_err();
    let why = Error::find_in(&err).unwrap().to_string();
    assert!(why.contains("lost writes the replica has"), "{why}");
    // B is refused before anything was uploaded: A goes on.
    write_sessions(&a, 20, 10).await;
    b.close().await.unwrap();
    a.close().await.unwrap();
    let restored = host_b.path().join("again.redb");
    restore_and_check(&target, &restored, RedbStoreConfig::default(), 30).await;
}

#[tokio::test]
async fn a_host_that_takes_the_replica_over_fences_the_one_before() {
    // Host A is presumed dead; host B takes over (restores, replicates)
    // while A in fact runs on.
    let TwoHosts {
        target,
        a,
        b_path,
        host_b,
        _dirs,
    } = two_hosts().await;
    let b = RedbStore::new(&b_path).await.unwrap();
    b.replicate_to(&target, &ReplicationOptions::default())
        .await
        .unwrap();
    // B's takeover took the next record name: A, the older writer, is
    // refused at its next upload, and for good; B writes on.
    for _ in 0..2 {
        let err = tokio::time::timeout(BOUND, a.put_session("55a@c.us.0", b"from a"))
            .await
            .unwrap()
            .unwrap_err();
        let why = Error::find_in(&err).unwrap().to_string();
        assert!(why.contains("another host writes this store"), "{why}");
    }
    assert!(a.replication_status().unwrap().stopped.is_some());
    // Nor may it push a snapshot of its own history.
    let err = a.push_snapshot(&target, 2).await.unwrap_err();
    let why = Error::find_in(&err).unwrap().to_string();
    assert!(why.contains("does not (or was fenced)"), "{why}");
    write_sessions(&b, 10, 10).await;
    a.close().await.unwrap_err();
    b.close().await.unwrap();
    let restored = host_b.path().join("again.redb");
    restore_and_check(&target, &restored, RedbStoreConfig::default(), 20).await;
    let s = RedbStore::new(&restored).await.unwrap();
    assert!(s.get_session("55a@c.us.0").await.unwrap().is_none());
    s.close().await.unwrap();
}

#[tokio::test]
async fn a_restarted_store_replicates_on_without_a_new_base() {
    let replica = tempfile::tempdir().unwrap();
    let target = ReplicaTarget::new(&url_of(replica.path())).unwrap();
    let host = tempfile::tempdir().unwrap();
    let path = host.path().join("bot.redb");
    let s = paired(&path, RedbStoreConfig::default()).await;
    s.replicate_to(&target, &ReplicationOptions::default())
        .await
        .unwrap();
    write_sessions(&s, 0, 10).await;
    s.close().await.unwrap();
    let before = target.snapshots().await.unwrap();
    assert_eq!(before.len(), 1);
    // Reopened: the replica holds every write, so no snapshot is pushed.
    let s = RedbStore::new(&path).await.unwrap();
    s.replicate_to(&target, &ReplicationOptions::default())
        .await
        .unwrap();
    assert_eq!(target.snapshots().await.unwrap(), before);
    write_sessions(&s, 10, 10).await;
    s.close().await.unwrap();
    // Written without replication in between: the next start pushes a
    // base again, since the records lack that write.
    let s = RedbStore::new(&path).await.unwrap();
    s.put_session("55local@c.us.0", b"local").await.unwrap();
    s.replicate_to(&target, &ReplicationOptions::default())
        .await
        .unwrap();
    assert_eq!(target.snapshots().await.unwrap().len(), 2);
    write_sessions(&s, 20, 10).await;
    let records = target.records().await.unwrap();
    assert!(records.replicated && records.objects > 0, "{records:?}");
    let fresh = records.newest_stored_at_ms.expect("a record's time");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (now - BOUND.as_millis() as i64..=now).contains(&fresh),
        "{records:?}"
    );
    assert_eq!(
        records.newest_lsn,
        s.replication_status().unwrap().local_lsn
    );
    s.close().await.unwrap();
    let restored = host.path().join("restored.redb");
    restore_and_check(&target, &restored, RedbStoreConfig::default(), 30).await;
    let s = RedbStore::new(&restored).await.unwrap();
    assert!(s.get_session("55local@c.us.0").await.unwrap().is_some());
    s.close().await.unwrap();
}

#[tokio::test]
async fn an_asynchronous_replica_lags_within_its_bound_and_a_restore_needs_the_flag() {
    let Some((_server, proxy, target)) = behind_a_proxy("s3://replicas/bot-3") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = paired(&dir.path().join("bot.redb"), RedbStoreConfig::default()).await;
    let options = ReplicationOptions::default()
        .with_timeout(Duration::from_secs(5))
        .asynchronous(Duration::from_millis(200));
    s.replicate_to(&target, &options).await.unwrap();
    write_sessions(&s, 0, 20).await;
    tokio::time::timeout(BOUND, s.wait_for_replica())
        .await
        .unwrap()
        .unwrap();
    // Down: the first write is answered without the replica; once a
    // write has waited past the bound, writes wait for theirs, and fail
    // after the timeout.
    proxy.down();
    s.put_session("5500000020@c.us.0", &session(20))
        .await
        .unwrap();
    let failed = tokio::time::timeout(BOUND, async {
        for i in 21.. {
            if let Err(e) = s
                .put_session(&format!("55{i:08}@c.us.0"), &session(i))
                .await
            {
                return (i, e);
            }
        }
        unreachable!()
    })
    .await
    .expect("a write must wait for the replica once the lag passes its bound");
    let ours = Error::find_in(&failed.1).expect("our error");
    assert!(matches!(ours, Error::NotReplicated { .. }), "{ours}");
    assert!(s.replication_status().unwrap().lag >= Duration::from_millis(200));
    // Back: everything goes up; the close waits for it.
    proxy.up();
    let last = failed.0 + 1;
    s.put_session(&format!("55{last:08}@c.us.0"), &session(last))
        .await
        .unwrap();
    s.close().await.unwrap();
    let records = target.records().await.unwrap();
    assert!(records.asynchronous && !records.replicated, "{records:?}");
    // A restore may miss the newest writes: refused without the flag.
    let restored = dir.path().join("restored.redb");
    let err = RedbStore::restore_from_replica(
        &target,
        &restored,
        &RedbStoreConfig::default(),
        &ReplicaRestoreOptions::default(),
    )
    .await
    .unwrap_err();
    let why = Error::find_in(&err).unwrap().to_string();
    assert!(why.contains("asynchronously"), "{why}");
    RedbStore::restore_from_replica(
        &target,
        &restored,
        &RedbStoreConfig::default(),
        &ReplicaRestoreOptions::accepting_stale_state(),
    )
    .await
    .unwrap();
    // Closed cleanly: every write is there after all.
    assert_sessions(&restored, RedbStoreConfig::default(), last + 1).await;
}
