//! The metrics a fleet scrapes (feature `metrics`): each named series of
//! README "Metrics" exists with its labels and moves when what it measures
//! happens. One recorder for the test binary (the facade has one global);
//! each test works on files of its own, so file-labelled series are its
//! own, and per-operation series are compared before and after.

#[path = "../examples/metrics/recorder.rs"]
mod recorder;
#[cfg(feature = "tracing")]
#[path = "../examples/metrics/spans.rs"]
mod spans;

use std::path::Path;
use std::sync::OnceLock;

use wacore::store::traits::{DeviceStore, LidPnMappingEntry, ProtocolStore, SignalStore};
use whatsapp_rust_redb_storage::RedbStore;
use whatsapp_rust_redb_storage::telemetry::*;

fn recorder() -> &'static recorder::Recorder {
    static RECORDER: OnceLock<recorder::Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let r = recorder::Recorder::default();
        metrics::set_global_recorder(r.clone()).unwrap();
        describe();
        r
    })
}

fn of_file(name: &str, path: &Path) -> String {
    format!("{name}{{file=\"{}\"}}", path.display())
}

fn of_op(name: &str, op: &str) -> String {
    format!("{name}{{op=\"{op}\"}}")
}

fn ops(op: &str) -> usize {
    let h = recorder().histogram(&of_op(OP_DURATION, op));
    h.map_or(0, |h| h.count())
}

#[tokio::test]
async fn operations_commits_checkpoints_and_the_file_are_measured() {
    let r = recorder();
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::new(dir.path().join("m.redb")).await.unwrap();
    let path = store.path().to_path_buf();
    let (puts, gets) = (ops("put_session"), ops("get_session"));
    for i in 0..50 {
        let address = format!("{i}@c.us.0");
        store.put_session(&address, &[1; 300]).await.unwrap();
        store.get_session(&address).await.unwrap();
    }
    // Tests run in parallel: other tests' operations add to these.
    assert!(ops("put_session") >= puts + 50);
    assert!(ops("get_session") >= gets + 50);
    let latency = r.histogram(&of_op(OP_DURATION, "put_session")).unwrap();
    let (p50, p99) = (
        latency.quantile(0.5).unwrap(),
        latency.quantile(0.99).unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99, "{p50} {p99}");

    let commits = r.counter(&of_file(COMMITS, &path)).unwrap();
    assert!(commits >= 1, "{commits}");
    let batches = r.histogram(&of_file(BATCH_WRITES, &path)).unwrap();
    assert_eq!(batches.count() as u64, commits);
    assert!(batches.quantile(1.0).unwrap() >= 1.0);
    assert!(
        r.histogram(&of_file(COMMIT_DURATION, &path))
            .unwrap()
            .count() as u64
            == commits
    );
    let journal = r.gauge(&of_file(JOURNAL_BYTES, &path)).unwrap();
    assert!(journal >= 50.0 * 300.0, "{journal}");

    store.checkpoint().await.unwrap();
    assert_eq!(r.counter(&of_file(CHECKPOINTS, &path)), Some(1));
    let took = r.histogram(&of_file(CHECKPOINT_DURATION, &path)).unwrap();
    assert_eq!(took.count(), 1);
    assert_eq!(r.gauge(&of_file(JOURNAL_BYTES, &path)), Some(0.0));

    // The sampled gauges were refreshed by the first operation after the
    // open (at most once a second after that).
    let written = r.counter(&of_file(WRITTEN_BYTES, &path)).unwrap();
    assert!(written > 0);
    assert!(r.counter(&of_file(READ_BYTES, &path)).is_some());
    assert!(r.gauge(&of_file(FILE_BYTES, &path)).unwrap() > 0.0);
    assert!(r.gauge(&of_file(CACHE_BYTES, &path)).unwrap() > 0.0);
    #[cfg(unix)]
    assert!(r.gauge(&of_file(DISK_FREE_BYTES, &path)).unwrap() > 0.0);
    assert!(r.gauge(&of_file(ACCOUNTS, &path)).is_some());
    // redb counts cache hits only with `cache-metrics`; without it the
    // series are absent rather than stuck at zero.
    let hits = r.counter(&of_file(CACHE_HITS, &path));
    match cfg!(feature = "cache-metrics") {
        true => assert!(hits.unwrap() > 0),
        false => assert_eq!(hits, None),
    }
    assert!(r.gauge(CACHE_BUDGET_BYTES).unwrap() > 0.0);
    assert!(r.gauge(OPEN_FILES).unwrap() >= 1.0);
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_failed_operation_is_counted_under_its_name() {
    let r = recorder();
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::new(dir.path().join("e.redb")).await.unwrap();
    // `put_lid_mapping` is `put_lid_mappings` of one entry, and counted as it.
    let before = r
        .counter(&of_op(OP_ERRORS, "put_lid_mappings"))
        .unwrap_or(0);
    let mapping = LidPnMappingEntry {
        lid: "100000012345678".into(),
        phone_number: "559980000001".into(),
        created_at: 0,
        updated_at: 0,
        learning_source: "usync".into(),
    };
    // No such account: refused.
    let refused = store.for_device(42).put_lid_mapping(&mapping).await;
    assert!(refused.is_err());
    let after = r.counter(&of_op(OP_ERRORS, "put_lid_mappings")).unwrap();
    assert!(after > before);
    store.close().await.unwrap();
}

#[tokio::test]
async fn accounts_are_counted_in_the_file() {
    let r = recorder();
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::new(dir.path().join("a.redb")).await.unwrap();
    let path = store.path().to_path_buf();
    for d in [2, 3, 4] {
        store.for_device(d).create().await.unwrap();
    }
    store.close().await.unwrap();
    // The first operation after an open samples the file.
    let store = RedbStore::new(&path).await.unwrap();
    store.get_session("x@c.us.0").await.unwrap();
    assert_eq!(r.gauge(&of_file(ACCOUNTS, &path)), Some(3.0));
    store.close().await.unwrap();
}

#[cfg(feature = "fault-injection")]
#[tokio::test]
async fn a_halt_is_counted_with_its_cause() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use whatsapp_rust_redb_storage::RedbStoreConfig;
    use whatsapp_rust_redb_storage::fault::{IoFaults, IoTarget};

    /// Fails every fsync of the database file once armed.
    #[derive(Default)]
    struct FailSyncs(AtomicBool);
    impl IoFaults for FailSyncs {
        fn on_sync(&self, target: IoTarget) -> std::io::Result<()> {
            match target == IoTarget::Database && self.0.load(Ordering::SeqCst) {
                true => Err(std::io::Error::other("injected fsync failure")),
                false => Ok(()),
            }
        }
    }

    let r = recorder();
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(FailSyncs::default());
    let config = RedbStoreConfig::default().with_io_faults(faults.clone());
    let store = RedbStore::with_config(dir.path().join("h.redb"), config)
        .await
        .unwrap();
    let path = store.path().to_path_buf();
    store.put_session("a@c.us.0", b"s").await.unwrap();
    faults.0.store(true, Ordering::SeqCst);
    assert!(store.checkpoint().await.is_err());
    let series = format!("{HALTS}{{file=\"{}\",cause=\"io\"}}", path.display());
    assert_eq!(r.counter(&series), Some(1), "{}", r.render());
    faults.0.store(false, Ordering::SeqCst);
    let _ = store.close().await;
}

#[cfg(feature = "tracing")]
#[tokio::test]
async fn whole_file_operations_open_spans_named_with_their_file() {
    static PRINTER: OnceLock<std::sync::Arc<spans::Printer>> = OnceLock::new();
    let printer = PRINTER.get_or_init(|| {
        let p = std::sync::Arc::new(spans::Printer::default());
        tracing::subscriber::set_global_default(p.clone()).unwrap();
        p
    });
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::new(dir.path().join("t.redb")).await.unwrap();
    let path = store.path().to_path_buf();
    store.put_session("a@c.us.0", b"s").await.unwrap();
    store.checkpoint().await.unwrap();
    let copy = dir.path().join("copy.redb");
    store.backup_to(&copy).await.unwrap();
    store.close().await.unwrap();
    RedbStore::compact_file(&path).unwrap();
    let closed = printer.closed();
    let of = |name: &str, file: &Path| {
        let head = format!("span {name} file={}", file.display());
        closed.iter().any(|l| l.starts_with(&head))
    };
    for name in ["wa_redb.open", "wa_redb.recovery", "wa_redb.checkpoint"] {
        assert!(of(name, &path), "{name} in {closed:#?}");
    }
    assert!(of("wa_redb.backup", &copy), "{closed:#?}");
    assert!(of("wa_redb.compaction", &path), "{closed:#?}");
}
