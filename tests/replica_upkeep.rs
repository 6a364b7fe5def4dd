//! A replica over time: `maintenance()` pushes a new snapshot when one is
//! due and prunes older snapshots (by count and by age) and the records
//! only they needed; a restore at a point in time has exactly the writes
//! the replica held then; a snapshot whose records were not all stored is
//! passed over for an older one. Against directory targets, whose objects'
//! times the test can read from the file system, and a restore at a point
//! in time against a real S3 server (moto's, see `tests/replica.rs`).

#[path = "util/replicas.rs"]
mod replicas;
#[path = "util/s3.rs"]
mod s3;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use replicas::{BOUND, assert_sessions, paired, session, url_of, write_sessions};
use s3::S3Server;
use wacore::store::traits::SignalStore;
use whatsapp_rust_redb_storage::{
    RedbStore, RedbStoreConfig, ReplicaRestoreOptions, ReplicaRestored, ReplicaTarget,
    ReplicationOptions,
};

fn files_under(dir: &Path) -> Vec<std::fs::DirEntry> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(Result::unwrap).collect(),
        Err(_) => Vec::new(),
    }
}

/// The newest modification time of the objects under `dir`, in Unix
/// milliseconds (what the target reports as their stored time).
fn newest_ms(dir: &Path) -> i64 {
    files_under(dir)
        .iter()
        .map(|e| ms_of(e.metadata().unwrap().modified().unwrap()))
        .max()
        .expect("objects")
}

fn ms_of(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Returns once the file system stamps a new file later than `ms` (its
/// clock is coarse: files written within one tick share a time), so that
/// every object stored from now on is stamped after `ms`.
fn wait_for_the_clock_past(ms: i64, beside: &Path) {
    let probe = beside.join("clock-probe");
    let started = Instant::now();
    loop {
        std::fs::write(&probe, b"tick").unwrap();
        if ms_of(std::fs::metadata(&probe).unwrap().modified().unwrap()) > ms {
            return;
        }
        assert!(
            started.elapsed() < BOUND,
            "the file system clock stood still"
        );
        std::thread::yield_now();
    }
}

async fn get(path: &Path, i: usize) -> Option<Vec<u8>> {
    let s = RedbStore::new(path).await.unwrap();
    let got = s.get_session(&format!("55{i:08}@c.us.0")).await.unwrap();
    s.close().await.unwrap();
    got.map(|g| g.to_vec())
}

#[tokio::test]
async fn a_restore_at_a_point_in_time_has_the_writes_the_replica_held_then() {
    let Replicating {
        s,
        target,
        replica,
        other,
        _host,
    } = replicating(&ReplicationOptions::default()).await;
    let before_any = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
    write_sessions(&s, 0, 40).await;
    let then = newest_ms(&replica.path().join("records"));
    wait_for_the_clock_past(then, other.path());
    write_sessions(&s, 40, 40).await;
    s.close().await.unwrap();
    let at = UNIX_EPOCH + Duration::from_millis(then as u64);

    // A past state is stale for Signal: refused without the flag.
    let past = other.path().join("past.redb");
    let options = ReplicaRestoreOptions::default().at(at);
    let e = restore(&target, &past, &options).await.unwrap_err();
    assert!(format!("{e:?}").contains("a state from the past"), "{e:?}");
    assert!(!past.exists());

    let options = ReplicaRestoreOptions::accepting_stale_state().at(at);
    let got = restore(&target, &past, &options).await.unwrap();
    assert!(got.records > 0, "{got:?}");
    for i in [0, 17, 39] {
        assert_eq!(get(&past, i).await.as_deref(), Some(&session(i)[..]), "{i}");
    }
    for i in [40, 61, 79] {
        assert_eq!(get(&past, i).await, None, "{i} was stored after the moment");
    }

    // The newest state has everything; a moment before the first
    // snapshot has nothing to restore, and says how far back it goes.
    let newest = other.path().join("newest.redb");
    let options = ReplicaRestoreOptions::default();
    restore(&target, &newest, &options).await.unwrap();
    assert_sessions(&newest, RedbStoreConfig::default(), 80).await;
    let options = ReplicaRestoreOptions::accepting_stale_state().at(before_any);
    let e = restore(&target, other.path().join("none.redb"), &options)
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("oldest snapshot"), "{e:?}");
}

#[tokio::test]
async fn a_restore_at_a_point_in_time_from_s3_has_the_writes_stored_by_then() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let target = server.target("s3://replicas/pitr/bot");
    let (host, other) = (tempdir(), tempdir());
    let s = paired(&host.path().join("bot.redb"), RedbStoreConfig::default()).await;
    s.replicate_to(&target, &ReplicationOptions::default())
        .await
        .unwrap();
    write_sessions(&s, 0, 40).await;
    let newest = || async { target.records().await.unwrap().newest_stored_at_ms.unwrap() };
    let then = newest().await;
    // The server's clock (S3 times may be whole seconds) decides which
    // writes were stored after `then`: one at a time until one is.
    let started = Instant::now();
    let mut written = 40;
    while newest().await <= then {
        assert!(started.elapsed() < BOUND, "the server's clock stood still");
        write_sessions(&s, written, 1).await;
        written += 1;
    }
    s.close().await.unwrap();

    let past = other.path().join("past.redb");
    let at = UNIX_EPOCH + Duration::from_millis(then as u64);
    let options = ReplicaRestoreOptions::accepting_stale_state().at(at);
    let got = restore(&target, &past, &options).await.unwrap();
    assert!(got.records > 0, "{got:?}");
    for i in [0, 17, 39] {
        assert_eq!(get(&past, i).await.as_deref(), Some(&session(i)[..]), "{i}");
    }
    let last = written - 1;
    assert_eq!(
        get(&past, last).await,
        None,
        "{last} was stored after the moment"
    );
    let newest_path = other.path().join("newest.redb");
    restore(&target, &newest_path, &ReplicaRestoreOptions::default())
        .await
        .unwrap();
    assert_sessions(&newest_path, RedbStoreConfig::default(), written).await;
}

/// Restores `target` at `path` with the default configuration.
async fn restore(
    target: &ReplicaTarget,
    path: impl AsRef<Path>,
    options: &ReplicaRestoreOptions,
) -> Result<ReplicaRestored, wacore::store::error::StoreError> {
    RedbStore::restore_from_replica(target, path, &RedbStoreConfig::default(), options).await
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A paired store on one "host" replicating to a directory with
/// `options`, and a second "host" to restore on.
struct Replicating {
    s: RedbStore,
    target: ReplicaTarget,
    replica: tempfile::TempDir,
    other: tempfile::TempDir,
    _host: tempfile::TempDir,
}

async fn replicating(options: &ReplicationOptions) -> Replicating {
    let (host, replica, other) = (tempdir(), tempdir(), tempdir());
    let target = ReplicaTarget::new(&url_of(replica.path())).unwrap();
    let s = paired(&host.path().join("bot.redb"), RedbStoreConfig::default()).await;
    s.replicate_to(&target, options).await.unwrap();
    Replicating {
        s,
        target,
        replica,
        other,
        _host: host,
    }
}

/// Snapshots due after any record stored, `count` kept (and those younger
/// than `max_age`).
fn due_at_once(count: usize, max_age: Duration) -> ReplicationOptions {
    ReplicationOptions::default()
        .snapshot_every(Duration::from_secs(3600), 1)
        .keep_snapshots(count, max_age)
}

#[tokio::test]
async fn maintenance_pushes_a_snapshot_when_due_and_keeps_what_retention_says() {
    // Due after any record: every write below makes the next maintenance
    // push one. Two snapshots kept, whatever their age.
    let Replicating {
        s,
        target,
        replica,
        other,
        _host,
    } = replicating(&due_at_once(2, Duration::ZERO)).await;
    assert_eq!(target.snapshots().await.unwrap().len(), 1);
    // The takeover's own record (see `replicate_to`) makes one due; then
    // nothing is stored since: not due.
    assert!(s.maintenance().await.unwrap().replica_snapshot.is_some());
    assert_eq!(s.maintenance().await.unwrap().replica_snapshot, None);

    let mut pushed = Vec::new();
    for round in 0..3 {
        write_sessions(&s, round * 20, 20).await;
        // Two calls at once: one pushes, the other finds it being pushed
        // (or, after it, not due).
        let (a, b) = tokio::join!(s.maintenance(), s.maintenance());
        let both = [a.unwrap().replica_snapshot, b.unwrap().replica_snapshot];
        let new: Vec<_> = both.into_iter().flatten().collect();
        assert_eq!(new.len(), 1, "round {round}: {new:?}");
        pushed.push(new[0].clone());
    }
    let kept = target.snapshots().await.unwrap();
    assert_eq!(kept, pushed[1..].to_vec(), "the newest two are kept");
    for s in &kept {
        assert!(s.replay_to >= s.lsn, "{s:?}");
    }
    // Records only the deleted snapshots needed are gone: those left start
    // after the first write the oldest kept snapshot may lack.
    let objects: Vec<u64> = files_under(&replica.path().join("records"))
        .iter()
        .map(|e| e.file_name().to_string_lossy().parse().unwrap())
        .collect();
    let oldest = kept[0].lsn;
    assert!(!objects.is_empty());
    let holding_first = objects.iter().filter(|&&first| first <= oldest + 1).count();
    assert!(holding_first <= 1, "{objects:?}, oldest kept {oldest}");

    write_sessions(&s, 60, 5).await;
    drop(s);
    let restored = other.path().join("bot.redb");
    let options = ReplicaRestoreOptions::default();
    let got = restore(&target, &restored, &options).await.unwrap();
    assert_eq!(got.snapshot, kept[1]);
    assert_sessions(&restored, RedbStoreConfig::default(), 65).await;
}

#[tokio::test]
async fn snapshots_younger_than_the_age_bound_are_kept_beyond_the_count() {
    let Replicating {
        s,
        target,
        _host,
        replica: _replica,
        ..
    } = replicating(&due_at_once(1, Duration::from_secs(3600))).await;
    for round in 0..3 {
        write_sessions(&s, round * 5, 5).await;
        assert!(s.maintenance().await.unwrap().replica_snapshot.is_some());
    }
    // The base and three pushed, all taken within the hour (the first
    // push may hold the takeover's record alone).
    assert_eq!(target.snapshots().await.unwrap().len(), 4);
    s.close().await.unwrap();
}

/// A host died after its newest snapshot was stored but before the
/// records of writes made during its copy were: the snapshot may hold
/// writes the records do not reach, and replaying the records it has would
/// mix two states. The restore starts from the snapshot before it.
#[tokio::test]
async fn a_snapshot_its_records_do_not_reach_is_passed_over_for_an_older_one() {
    let Replicating {
        s,
        target,
        replica,
        other,
        _host,
    } = replicating(&due_at_once(3, Duration::ZERO)).await;
    write_sessions(&s, 0, 30).await;
    let good = s.maintenance().await.unwrap().replica_snapshot.unwrap();
    write_sessions(&s, 30, 10).await;
    drop(s);
    // The newest snapshot claims writes up to far beyond the records.
    let snapshots = replica.path().join("snapshots");
    let claimed = format!(
        "{:020}-{:020}-{:020}.redb",
        good.taken_at + 1,
        good.lsn,
        good.lsn + 1_000
    );
    std::fs::copy(replica.path().join(&good.name), snapshots.join(&claimed)).unwrap();
    assert_eq!(target.snapshots().await.unwrap().len(), 3);

    let restored = other.path().join("bot.redb");
    let options = ReplicaRestoreOptions::default();
    let got = restore(&target, &restored, &options).await.unwrap();
    assert_eq!(got.snapshot, good);
    assert_sessions(&restored, RedbStoreConfig::default(), 40).await;

    // With only that snapshot left, there is no consistent state to give.
    for s in files_under(&snapshots) {
        if !s.file_name().to_string_lossy().ends_with(&claimed) {
            std::fs::remove_file(s.path()).unwrap();
        }
    }
    let e = restore(&target, other.path().join("none.redb"), &options)
        .await
        .unwrap_err();
    assert!(
        format!("{e:?}").contains("no snapshot is consistent"),
        "{e:?}"
    );
}

/// The last handle of a replicated store dropped inside a runtime (as an
/// application drops it from a task): no panic (the uploader's own runtime
/// is let go without blocking), the file is handed over at once, and every
/// write is in it and in the replica.
#[test]
fn a_replicated_store_dropped_inside_a_runtime_hands_its_file_over() {
    for threaded in [false, true] {
        let (host, replica, other) = (tempdir(), tempdir(), tempdir());
        let mut builder = match threaded {
            true => tokio::runtime::Builder::new_multi_thread(),
            false => tokio::runtime::Builder::new_current_thread(),
        };
        let rt = builder.enable_all().build().unwrap();
        let path = host.path().join("bot.redb");
        let target = ReplicaTarget::new(&url_of(replica.path())).unwrap();
        rt.block_on(async {
            let s = paired(&path, RedbStoreConfig::default()).await;
            s.replicate_to(&target, &ReplicationOptions::default())
                .await
                .unwrap();
            write_sessions(&s, 0, 10).await;
            drop(s);
            assert_sessions(&path, RedbStoreConfig::default(), 10).await;
            let restored = other.path().join("bot.redb");
            let options = ReplicaRestoreOptions::default();
            restore(&target, &restored, &options).await.unwrap();
            assert_sessions(&restored, RedbStoreConfig::default(), 10).await;
        });
    }
}
