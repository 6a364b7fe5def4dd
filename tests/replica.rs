//! Snapshots in a replica target and restores on another "host" (another
//! directory): a directory target, and a real S3 server (moto's, started
//! on 127.0.0.1 by `s3_server`). `.ci/run` installs moto and sets
//! `WA_REDB_REQUIRE_S3=1`, which turns a missing `moto_server` into a
//! failure; elsewhere the S3 test says loudly that it did not run.

#[path = "util/s3.rs"]
mod s3;

use std::path::Path;
#[cfg(feature = "cli")]
use std::process::{Command, Stdio};

use s3::{S3Server, free_port, s3_options, walk};

use wacore::store::traits::{DeviceStore, SignalStore};
use whatsapp_rust_redb_storage::{
    Error, RedbStore, RedbStoreConfig, ReplicaRestoreOptions, ReplicaTarget,
};

fn accept() -> ReplicaRestoreOptions {
    ReplicaRestoreOptions::accepting_stale_state()
}

const MARKER: &[u8] = b"plaintext-marker-0123456789";

/// A store with a device record and a few sessions, one holding `MARKER`.
async fn store_with_data(path: &Path, config: RedbStoreConfig) -> RedbStore {
    let s = RedbStore::with_config(path, config).await.unwrap();
    let mut device = wacore::store::Device::new();
    device.push_name = "replicated".into();
    s.save(&device).await.unwrap();
    for i in 0..20 {
        s.put_session(&format!("55{i:08}@c.us.0"), MARKER)
            .await
            .unwrap();
    }
    s
}

async fn assert_restored(path: &Path, config: RedbStoreConfig) {
    let s = RedbStore::with_config(path, config).await.unwrap();
    let device = s
        .load()
        .await
        .unwrap()
        .expect("the device record: the pairing");
    assert_eq!(device.push_name, "replicated");
    for i in 0..20 {
        let got = s.get_session(&format!("55{i:08}@c.us.0")).await.unwrap();
        assert_eq!(got.as_deref(), Some(MARKER));
    }
    s.close().await.unwrap();
}

fn url_of(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// What a progress callback was told: (stage, done, total) in order.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, u64, u64)>>>;

fn watching(target: ReplicaTarget) -> (ReplicaTarget, Seen) {
    let seen = Seen::default();
    let into = seen.clone();
    let target = target.with_progress(std::sync::Arc::new(move |p| {
        let mut seen = into.lock().unwrap();
        seen.push((p.stage.to_string(), p.done, p.total));
    }));
    (target, seen)
}

/// The reports of one stage: from 0, never backwards, ending at `bytes`.
fn assert_transfer(seen: &Seen, stage: &str, bytes: u64) {
    let seen = seen.lock().unwrap();
    let ours: Vec<_> = seen.iter().filter(|(s, ..)| s == stage).collect();
    assert!(ours.len() >= 2, "{stage}: {seen:?}");
    assert_eq!(ours[0].1, 0, "{stage}");
    assert!(ours.windows(2).all(|w| w[0].1 <= w[1].1), "{stage}");
    assert_eq!(ours.last().map(|r| (r.1, r.2)), Some((bytes, bytes)));
}

#[tokio::test]
async fn a_push_and_a_restore_report_their_progress_in_bytes() {
    let (host, replica) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (target, seen) = watching(ReplicaTarget::new(&url_of(replica.path())).unwrap());
    let s = store_with_data(&host.path().join("bot.redb"), RedbStoreConfig::default()).await;
    let pushed = s.push_snapshot(&target, 1).await.unwrap();
    s.close().await.unwrap();
    assert_transfer(&seen, &format!("uploading {}", pushed.name), pushed.bytes);
    let restored = host.path().join("restored.redb");
    let config = RedbStoreConfig::default();
    RedbStore::restore_from_replica(&target, &restored, &config, &accept())
        .await
        .unwrap();
    assert_transfer(&seen, &format!("downloading {}", pushed.name), pushed.bytes);
    assert_restored(&restored, config).await;
}

#[tokio::test]
async fn a_snapshot_in_a_directory_restores_on_another_host() {
    let host_a = tempfile::tempdir().unwrap();
    let host_b = tempfile::tempdir().unwrap();
    let replica = tempfile::tempdir().unwrap();
    let target = ReplicaTarget::new(&url_of(replica.path())).unwrap();
    let path = host_a.path().join("bot.redb");
    let s = store_with_data(&path, RedbStoreConfig::default()).await;
    let pushed = s.push_snapshot(&target, 3).await.unwrap();
    assert!(pushed.bytes > 0);
    assert_eq!(target.snapshots().await.unwrap(), vec![pushed.clone()]);
    // Host A is lost.
    drop(s);
    drop(host_a);
    let restored = host_b.path().join("bot.redb");
    // Not without saying that the snapshot's state is accepted.
    let refused = RedbStore::restore_from_replica(
        &target,
        &restored,
        &RedbStoreConfig::default(),
        &ReplicaRestoreOptions::default(),
    )
    .await
    .unwrap_err();
    let why = Error::find_in(&refused).unwrap().to_string();
    assert!(why.contains("reuse Signal message keys"), "{why}");
    assert!(!restored.exists());
    let got =
        RedbStore::restore_from_replica(&target, &restored, &RedbStoreConfig::default(), &accept())
            .await
            .unwrap();
    assert_eq!(got.snapshot, pushed);
    assert_eq!((got.records, got.lsn), (0, pushed.lsn));
    assert_restored(&restored, RedbStoreConfig::default()).await;
    // Never over an existing file.
    let again =
        RedbStore::restore_from_replica(&target, &restored, &RedbStoreConfig::default(), &accept())
            .await
            .unwrap_err();
    // (A path error: wacore's `InvalidConfig`, which carries the text.)
    assert!(again.to_string().contains("already exists"), "{again}");
}

/// A target holds one store's snapshots: another store's push is refused
/// (it would prune them), a store restored from it goes on pushing there,
/// with the same identity and later sequence numbers.
#[tokio::test]
async fn a_replica_belongs_to_one_store_wherever_it_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let replica = tempfile::tempdir().unwrap();
    let target = ReplicaTarget::new(&url_of(replica.path())).unwrap();
    let a = store_with_data(&dir.path().join("a.redb"), RedbStoreConfig::default()).await;
    let first = a.push_snapshot(&target, 1).await.unwrap();
    let b = store_with_data(&dir.path().join("b.redb"), RedbStoreConfig::default()).await;
    let err = b.push_snapshot(&target, 1).await.unwrap_err();
    let why = Error::find_in(&err).unwrap().to_string();
    assert!(why.contains("another store"), "{why}");
    assert_eq!(target.snapshots().await.unwrap(), vec![first.clone()]);
    b.close().await.unwrap();
    let id = a.info().await.unwrap().file_id;
    a.close().await.unwrap();
    // The other host.
    let restored = dir.path().join("restored.redb");
    RedbStore::restore_from_replica(&target, &restored, &RedbStoreConfig::default(), &accept())
        .await
        .unwrap();
    let r = RedbStore::new(&restored).await.unwrap();
    assert_eq!(r.info().await.unwrap().file_id, id);
    r.put_session("on-the-new-host@c.us.0", b"new")
        .await
        .unwrap();
    let next = r.push_snapshot(&target, 1).await.unwrap();
    assert!(next.lsn > first.lsn, "{next:?} after {first:?}");
    assert_eq!(target.snapshots().await.unwrap(), vec![next]);
    r.close().await.unwrap();
}

#[tokio::test]
async fn retention_keeps_the_newest_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let replica = tempfile::tempdir().unwrap();
    let target = ReplicaTarget::new(&url_of(replica.path())).unwrap();
    let s = store_with_data(&dir.path().join("s.redb"), RedbStoreConfig::default()).await;
    let mut pushed = Vec::new();
    for round in 0..4 {
        // A write between pushes: each snapshot holds a later lsn.
        s.put_session(&format!("round{round}@c.us.0"), b"r")
            .await
            .unwrap();
        pushed.push(s.push_snapshot(&target, 2).await.unwrap());
    }
    assert_eq!(target.snapshots().await.unwrap(), pushed[2..].to_vec());
    assert!(
        s.push_snapshot(&target, 0).await.is_err(),
        "keep 0 is refused"
    );
    assert_eq!(
        target.snapshots().await.unwrap().len(),
        2,
        "and deletes nothing"
    );
    // The newest is what a restore gives.
    let out = dir.path().join("restored.redb");
    let got =
        RedbStore::restore_from_replica(&target, &out, &RedbStoreConfig::default(), &accept())
            .await
            .unwrap();
    assert_eq!(&got.snapshot, pushed.last().unwrap());
    let r = RedbStore::new(&out).await.unwrap();
    assert!(r.get_session("round3@c.us.0").await.unwrap().is_some());
    r.close().await.unwrap();
    s.close().await.unwrap();
}

#[tokio::test]
async fn an_encrypted_stores_snapshot_holds_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let replica = tempfile::tempdir().unwrap();
    let target = ReplicaTarget::new(&url_of(replica.path())).unwrap();
    let config = RedbStoreConfig::default().with_passphrase("correct horse battery staple");
    let s = store_with_data(&dir.path().join("s.redb"), config.clone()).await;
    s.push_snapshot(&target, 1).await.unwrap();
    s.close().await.unwrap();
    let mut scanned = 0;
    for entry in walk(replica.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        scanned += bytes.len();
        assert!(
            !bytes.windows(MARKER.len()).any(|w| w == MARKER),
            "plaintext in {}",
            entry.display()
        );
    }
    assert!(scanned > 0);
    // Without the key: refused, nothing left behind.
    let out = dir.path().join("restored.redb");
    let err =
        RedbStore::restore_from_replica(&target, &out, &RedbStoreConfig::default(), &accept())
            .await
            .unwrap_err();
    assert!(
        format!("{}", Error::find_in(&err).unwrap()).contains("encrypted"),
        "{err:?}"
    );
    assert!(!out.exists());
    RedbStore::restore_from_replica(&target, &out, &config, &accept())
        .await
        .unwrap();
    assert_restored(&out, config).await;
}

#[tokio::test]
async fn an_unreachable_or_empty_target_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port.
    let port = free_port();
    let target = ReplicaTarget::with_options("s3://bucket/prefix", s3_options(port)).unwrap();
    let s = store_with_data(&dir.path().join("s.redb"), RedbStoreConfig::default()).await;
    let err = s.push_snapshot(&target, 1).await.unwrap_err();
    let ours = Error::find_in(&err).expect("our error").to_string();
    assert!(ours.contains("replica s3://bucket/prefix"), "{ours}");
    s.close().await.unwrap();
    // An empty replica.
    let empty = tempfile::tempdir().unwrap();
    let target = ReplicaTarget::new(&url_of(empty.path())).unwrap();
    let err = RedbStore::restore_from_replica(
        &target,
        dir.path().join("r.redb"),
        &RedbStoreConfig::default(),
        &accept(),
    )
    .await
    .unwrap_err();
    assert!(
        Error::find_in(&err)
            .unwrap()
            .to_string()
            .contains("no snapshot"),
        "{err:?}"
    );
    // Not a URL of ours.
    assert!(ReplicaTarget::new("ftp://host/x").is_err());
    assert!(ReplicaTarget::new("s3:///x").is_err());
}

#[tokio::test]
async fn a_snapshot_in_s3_restores_on_another_host() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let target = server.target("s3://replicas/fleet/bot-1");
    let host_a = tempfile::tempdir().unwrap();
    let host_b = tempfile::tempdir().unwrap();
    let s = store_with_data(&host_a.path().join("bot.redb"), RedbStoreConfig::default()).await;
    let pushed = s.push_snapshot(&target, 2).await.unwrap();
    assert_eq!(target.snapshots().await.unwrap(), vec![pushed.clone()]);
    drop(s);
    drop(host_a);
    let restored = host_b.path().join("bot.redb");
    RedbStore::restore_from_replica(&target, &restored, &RedbStoreConfig::default(), &accept())
        .await
        .unwrap();
    assert_restored(&restored, RedbStoreConfig::default()).await;
    // The server goes away: a push and a restore fail with a clear error,
    // leave nothing behind, and the store goes on working.
    let s = RedbStore::new(&restored).await.unwrap();
    drop(server);
    let err = s.push_snapshot(&target, 2).await.unwrap_err();
    let why = Error::find_in(&err).unwrap().to_string();
    assert!(why.contains("replica s3://replicas/fleet/bot-1"), "{why}");
    s.put_session("after@c.us.0", b"after").await.unwrap();
    assert!(s.get_session("after@c.us.0").await.unwrap().is_some());
    s.close().await.unwrap();
    let again = host_b.path().join("again.redb");
    let err =
        RedbStore::restore_from_replica(&target, &again, &RedbStoreConfig::default(), &accept())
            .await
            .unwrap_err();
    assert!(Error::find_in(&err).is_some(), "{err:?}");
    assert!(!again.exists());
    let leftovers: Vec<_> = std::fs::read_dir(host_b.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "bot.redb")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// `wa-redb replica push/status/restore`, as an operator runs them.
#[cfg(feature = "cli")]
#[tokio::test]
async fn the_command_line_pushes_lists_and_restores() {
    let wa = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wa-redb"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let dir = tempfile::tempdir().unwrap();
    let replica = tempfile::tempdir().unwrap();
    let url = url_of(replica.path());
    let file = dir.path().join("bot.redb");
    store_with_data(&file, RedbStoreConfig::default())
        .await
        .close()
        .await
        .unwrap();
    let file = file.to_str().unwrap();
    let (code, stdout, stderr) = wa(&["replica", "push", file, &url, "--keep", "2"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("written to"), "{stdout}");
    let (code, stdout, _) = wa(&["replica", "status", &url, "--json"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("\"snapshots\""), "{stdout}");
    assert!(stdout.contains("\"replicated\": false"), "{stdout}");
    let out = dir.path().join("restored.redb");
    let out = out.to_str().unwrap();
    let (code, _, stderr) = wa(&["replica", "restore", &url, out]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("--accept-stale-state"), "{stderr}");
    let (code, stdout, stderr) = wa(&["replica", "restore", &url, out, "--accept-stale-state"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("every page and record checked"), "{stdout}");
    assert_restored(Path::new(out), RedbStoreConfig::default()).await;

    // A past state: the moment is checked, and the flag is needed.
    let (code, stdout, _) = wa(&["replica", "status", &url]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("a restore --at reaches back to"),
        "{stdout}"
    );
    let past = dir.path().join("past.redb");
    let past = past.to_str().unwrap();
    let (code, _, stderr) = wa(&["replica", "restore", &url, past, "--at", "yesterday"]);
    assert_ne!(code, Some(0));
    assert!(stderr.contains("RFC 3339"), "{stderr}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let now = format!("{}.{:03}", now.as_secs(), now.subsec_millis());
    let (code, _, stderr) = wa(&["replica", "restore", &url, past, "--at", &now]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("add --accept-stale-state to restore a past state"),
        "{stderr}"
    );
    let at = [
        "replica",
        "restore",
        &url,
        past,
        "--at",
        &now,
        "--accept-stale-state",
    ];
    let (code, _, stderr) = wa(&at);
    assert_eq!(code, Some(0), "{stderr}");
    assert_restored(Path::new(past), RedbStoreConfig::default()).await;
}
