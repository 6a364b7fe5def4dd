//! Configuration values at their extremes: every duration and size either
//! means something and works (`Duration::MAX` as "never by time", a cache
//! of `u32::MAX` KiB as "no limit of its own") or is refused at open with an
//! `InvalidConfig` error naming the field and the value. Never a panic.

use std::future::Future;
use std::time::Duration;

use wacore::store::error::StoreError;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig, Synchronous};

/// Fails the test if `f` takes more than a minute.
async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 60 s"))
}

/// Opens `config` on a fresh file, writes, checkpoints, closes, reopens
/// with it and reads the writes back.
async fn round_trip(config: RedbStoreConfig, what: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let s = bounded(what, RedbStore::with_config(&path, config.clone()))
        .await
        .unwrap_or_else(|e| panic!("{what}: open: {e}"));
    for i in 0..20 {
        bounded(what, s.put_session(&format!("{i}@c.us.0"), &[i; 100]))
            .await
            .unwrap_or_else(|e| panic!("{what}: write {i}: {e}"));
    }
    bounded(what, s.checkpoint()).await.unwrap();
    bounded(what, s.put_session("last@c.us.0", b"after the checkpoint"))
        .await
        .unwrap();
    bounded(what, s.close()).await.unwrap();
    let s = bounded(what, RedbStore::with_config(&path, config))
        .await
        .unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
    for i in 0..20 {
        let got = bounded(what, s.get_session(&format!("{i}@c.us.0")))
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Some(&[i; 100][..]), "{what}: row {i}");
    }
    let got = bounded(what, s.get_session("last@c.us.0")).await.unwrap();
    assert_eq!(got.as_deref(), Some(&b"after the checkpoint"[..]), "{what}");
    bounded(what, s.close()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_interval_of_duration_max_means_never_by_time() {
    for mode in [Synchronous::Off, Synchronous::Normal, Synchronous::Full] {
        let config = RedbStoreConfig::default()
            .with_synchronous(mode)
            .with_checkpoint_interval(Duration::MAX);
        round_trip(config, &format!("Duration::MAX, {mode}")).await;
    }
    // Long enough that adding it to now overflows on some platforms and
    // not on others.
    let config = RedbStoreConfig::default().with_checkpoint_interval(Duration::from_secs(u64::MAX));
    round_trip(config, "u64::MAX seconds").await;
    // The shortest: a checkpoint after about every batch.
    let config = RedbStoreConfig::default().with_checkpoint_interval(Duration::from_nanos(1));
    round_trip(config, "1 ns").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_checkpoint_by_time_the_journal_size_still_triggers_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = RedbStoreConfig::default()
        .with_checkpoint_interval(Duration::MAX)
        .with_checkpoint_journal_bytes(64 << 10);
    let s = bounded(
        "open",
        RedbStore::with_config(dir.path().join("s.redb"), config),
    )
    .await
    .unwrap();
    // 40 records of 8 KiB: the 64 KiB journal fills every ~8 of them.
    for i in 0..40u8 {
        bounded(
            "write",
            s.put_session(&format!("{i}@c.us.0"), &[i; 8 << 10]),
        )
        .await
        .unwrap();
    }
    let pending = bounded("info", s.info())
        .await
        .unwrap()
        .pending_journal_records;
    assert!(
        pending < 40,
        "no checkpoint ran: {pending} records still in the journal"
    );
    bounded("close", s.close()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_sizes_and_retentions_work() {
    let config = RedbStoreConfig::default()
        .with_cache_size_kib(u32::MAX)
        .with_checkpoint_journal_bytes(u64::MAX)
        .with_base_key_retention(Some(Duration::MAX));
    round_trip(config, "largest sizes").await;

    // The process-wide budget too, so that redb gets the whole size; put
    // back as the other tests expect it.
    let config = RedbStoreConfig::default()
        .with_cache_size_kib(u32::MAX)
        .with_cache_budget_kib(u32::MAX);
    round_trip(config, "largest cache and budget").await;
    let config = RedbStoreConfig::default().with_cache_budget_kib(32 << 10);
    round_trip(config, "default cache budget").await;

    for keep in [Duration::MAX, Duration::ZERO, Duration::from_nanos(1)] {
        let dir = tempfile::tempdir().unwrap();
        let config = RedbStoreConfig::default().with_base_key_retention(Some(keep));
        let s = bounded(
            "open",
            RedbStore::with_config(dir.path().join("s.redb"), config),
        )
        .await
        .unwrap();
        bounded("save", s.save_base_key("a@c.us.0", "m1", b"k1"))
            .await
            .unwrap();
        let report = bounded("maintenance", s.maintenance())
            .await
            .unwrap_or_else(|e| panic!("retention {keep:?}: {e}"));
        // Saved this second: kept, or (no retention at all) maybe not.
        assert!(report.base_keys_deleted <= 1, "retention {keep:?}");
        if keep == Duration::MAX {
            assert_eq!(report.base_keys_deleted, 0);
        }
        bounded("close", s.close()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_values_are_refused_naming_the_field_and_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let d = RedbStoreConfig::default;
    let cases = [
        (
            d().with_checkpoint_interval(Duration::ZERO),
            "checkpoint_interval",
            "0ns",
        ),
        (d().with_cache_size_kib(0), "cache_size_kib", "got 0"),
        (d().with_cache_budget_kib(0), "cache_budget_kib", "got 0"),
        (
            d().with_checkpoint_journal_bytes(0),
            "checkpoint_journal_bytes",
            "got 0",
        ),
        (d().with_max_value_size(0), "max_value_size", "got 0"),
        (
            d().with_max_value_size(usize::MAX),
            "max_value_size",
            &format!("got {}", usize::MAX),
        ),
        (d().with_auto_compact(Some(f64::NAN)), "auto_compact", "NaN"),
        (
            d().with_auto_compact(Some(f64::INFINITY)),
            "auto_compact",
            "inf",
        ),
        (d().with_auto_compact(Some(0.0)), "auto_compact", "got 0"),
    ];
    for (config, field, value) in cases {
        let err = bounded(field, RedbStore::with_config(&path, config))
            .await
            .err()
            .unwrap_or_else(|| panic!("{field} {value}: accepted"));
        let text = err.to_string();
        assert!(matches!(err, StoreError::InvalidConfig(_)), "{err:?}");
        assert!(
            text.contains(field) && text.contains(value) && text.contains("must be"),
            "names the field, the value and the range: {text}"
        );
    }
    assert!(!path.exists(), "nothing was created");
}
