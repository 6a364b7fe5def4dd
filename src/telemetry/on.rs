//! The metrics, with the `metrics` feature.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use metrics::{
    Counter, Gauge, Histogram, SharedString, Unit, counter, describe_counter, describe_gauge,
    describe_histogram, gauge, histogram,
};

use super::*;
use crate::error::StorageError;

/// The sampled gauges of a file are refreshed at most this often.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Runs one store operation and records its latency and whether it failed;
/// then `after` (the file's sampled gauges). An operation dropped before it
/// finishes is not recorded.
pub(crate) async fn timed<T, E>(
    op: &'static str,
    fut: impl Future<Output = Result<T, E>>,
    after: impl FnOnce(),
) -> Result<T, E> {
    let started = Instant::now();
    let out = fut.await;
    histogram!(OP_DURATION, "op" => op).record(started.elapsed().as_secs_f64());
    if out.is_err() {
        counter!(OP_ERRORS, "op" => op).increment(1);
    }
    after();
    out
}

/// The process-wide gauges: files open, the cache budget and what open
/// files hold of it. Called when a file opens or closes.
pub(crate) fn files_changed(open: usize, budget: usize, used: usize) {
    gauge!(OPEN_FILES).set(open as f64);
    gauge!(CACHE_BUDGET_BYTES).set(budget as f64);
    gauge!(CACHE_BUDGET_USED_BYTES).set(used as f64);
}

/// One file's metrics: handles registered once, at open.
pub(crate) struct FileMetrics {
    file: SharedString,
    commits: Counter,
    commit_seconds: Histogram,
    batch_writes: Histogram,
    journal_bytes: Gauge,
    checkpoints: Counter,
    checkpoint_seconds: Histogram,
    journal_syncs: Counter,
    read_bytes: Counter,
    written_bytes: Counter,
    file_bytes: Gauge,
    disk_free_bytes: Gauge,
    accounts: Gauge,
    cache_hits: Counter,
    cache_misses: Counter,
    /// When the sampled gauges may next be refreshed, in milliseconds
    /// since [`EPOCH`].
    next_sample: AtomicU64,
}

/// When something measured began: read from the clock only with metrics.
pub(crate) type Started = Instant;

impl FileMetrics {
    pub fn new(path: &Path, cache_bytes: usize) -> Arc<FileMetrics> {
        let file = SharedString::from(path.display().to_string());
        let l = || [("file", file.clone())];
        // Without redb's counters there is nothing to report.
        let cache = |name| match cfg!(feature = "cache-metrics") {
            true => counter!(name, &l()),
            false => Counter::noop(),
        };
        gauge!(CACHE_BYTES, &l()).set(cache_bytes as f64);
        Arc::new(FileMetrics {
            commits: counter!(COMMITS, &l()),
            commit_seconds: histogram!(COMMIT_DURATION, &l()),
            batch_writes: histogram!(BATCH_WRITES, &l()),
            journal_bytes: gauge!(JOURNAL_BYTES, &l()),
            checkpoints: counter!(CHECKPOINTS, &l()),
            checkpoint_seconds: histogram!(CHECKPOINT_DURATION, &l()),
            journal_syncs: counter!(JOURNAL_SYNCS, &l()),
            read_bytes: counter!(READ_BYTES, &l()),
            written_bytes: counter!(WRITTEN_BYTES, &l()),
            file_bytes: gauge!(FILE_BYTES, &l()),
            disk_free_bytes: gauge!(DISK_FREE_BYTES, &l()),
            accounts: gauge!(ACCOUNTS, &l()),
            cache_hits: cache(CACHE_HITS),
            cache_misses: cache(CACHE_MISSES),
            next_sample: AtomicU64::new(0),
            file,
        })
    }

    pub fn start(&self) -> Started {
        Instant::now()
    }

    /// A batch of `writes` committed; the journal now holds `journal_bytes`.
    pub fn committed(&self, started: Started, writes: usize, journal_bytes: Option<u64>) {
        self.commits.increment(1);
        self.commit_seconds.record(started.elapsed().as_secs_f64());
        self.batch_writes.record(writes as f64);
        if let Some(n) = journal_bytes {
            self.journal_bytes.set(n as f64);
        }
    }

    /// A checkpoint finished; the journal now holds `journal_bytes`.
    pub fn checkpointed(&self, started: Started, journal_bytes: Option<u64>) {
        self.checkpoints.increment(1);
        self.checkpoint_seconds
            .record(started.elapsed().as_secs_f64());
        if let Some(n) = journal_bytes {
            self.journal_bytes.set(n as f64);
        }
    }

    /// A journal sync finished.
    pub fn journal_synced(&self) {
        self.journal_syncs.increment(1);
    }

    /// The writer halted on `err`.
    pub fn halted(&self, err: &StorageError) {
        counter!(HALTS, "file" => self.file.clone(), "cause" => cause(err)).increment(1);
    }

    /// Whether the sampled gauges are due for a refresh, at most once a
    /// [`SAMPLE_EVERY`] (the caller that sees `true` refreshes them).
    pub fn sample_due(&self) -> bool {
        let now = EPOCH.elapsed().as_millis() as u64;
        let next = self.next_sample.load(Ordering::Relaxed);
        now >= next
            && self
                .next_sample
                .compare_exchange(
                    next,
                    now + SAMPLE_EVERY.as_millis() as u64,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    pub fn publish(&self, s: Sample) {
        self.read_bytes.absolute(s.read_bytes);
        self.written_bytes.absolute(s.written_bytes);
        if let Some(n) = s.file_bytes {
            self.file_bytes.set(n as f64);
        }
        if let Some(n) = s.disk_free_bytes {
            self.disk_free_bytes.set(n as f64);
        }
        if let Some(n) = s.accounts {
            self.accounts.set(n as f64);
        }
        self.cache_hits.absolute(s.cache_hits);
        self.cache_misses.absolute(s.cache_misses);
    }
}

/// Registers the unit and a description of every metric with the
/// installed recorder. Optional; call once, after installing it.
pub fn describe() {
    for (name, unit, what) in [
        (
            OP_ERRORS,
            Unit::Count,
            "Store operations that returned an error, by op",
        ),
        (COMMITS, Unit::Count, "Write transactions committed"),
        (CHECKPOINTS, Unit::Count, "Checkpoints"),
        (
            JOURNAL_SYNCS,
            Unit::Count,
            "Journal syncs between checkpoints",
        ),
        (HALTS, Unit::Count, "Writers halted by a failure, by cause"),
        (READ_BYTES, Unit::Bytes, "Bytes read from the store's files"),
        (
            WRITTEN_BYTES,
            Unit::Bytes,
            "Bytes written to the store's files",
        ),
        (CACHE_HITS, Unit::Count, "Page reads served by the cache"),
        (
            CACHE_MISSES,
            Unit::Count,
            "Page reads that went to the file",
        ),
    ] {
        describe_counter!(name, unit, what);
    }
    for (name, unit, what) in [
        (
            OP_DURATION,
            Unit::Seconds,
            "Latency of store operations, by op",
        ),
        (
            COMMIT_DURATION,
            Unit::Seconds,
            "Time to apply, journal and commit a batch",
        ),
        (BATCH_WRITES, Unit::Count, "Writes per committed batch"),
        (CHECKPOINT_DURATION, Unit::Seconds, "Time of one checkpoint"),
    ] {
        describe_histogram!(name, unit, what);
    }
    for (name, unit, what) in [
        (
            JOURNAL_BYTES,
            Unit::Bytes,
            "Journal bytes written since the last checkpoint",
        ),
        (FILE_BYTES, Unit::Bytes, "Size of the store file"),
        (
            DISK_FREE_BYTES,
            Unit::Bytes,
            "Free space where the store file is",
        ),
        (
            ACCOUNTS,
            Unit::Count,
            "Accounts (device records) in the file",
        ),
        (CACHE_BYTES, Unit::Bytes, "This file's page cache"),
        (
            CACHE_BUDGET_BYTES,
            Unit::Bytes,
            "The process-wide cache budget",
        ),
        (
            CACHE_BUDGET_USED_BYTES,
            Unit::Bytes,
            "Cache budget held by open files",
        ),
        (OPEN_FILES, Unit::Count, "Store files open in this process"),
    ] {
        describe_gauge!(name, unit, what);
    }
}
