//! What an operator watches, for the recorder the application installs:
//! metrics through the `metrics` facade (feature `metrics`, the facade
//! wacore uses) and spans on whole-file operations through `tracing`
//! (feature `tracing`). Without the features every function here is an
//! empty inline one and `FileMetrics` is zero-sized: no dependency, no
//! clock read, no cost.
//!
//! Labels are few-valued: `op` (a trait method), `file` (a store file as it
//! was opened), `cause` (a halt's kind). An account is not a label: a fleet
//! of a thousand accounts would make a thousand series of every metric.
//! Handles are taken when a file opens: install the recorder before opening
//! stores.

/// Latency of each store operation (a `Backend` trait method), seconds,
/// label `op`.
pub const OP_DURATION: &str = "wa_redb_op_duration_seconds";
/// Operations that returned an error, label `op`.
pub const OP_ERRORS: &str = "wa_redb_op_errors_total";
/// Write transactions committed (a batch of writes each), label `file`.
pub const COMMITS: &str = "wa_redb_commits_total";
/// Time to apply, journal and commit one batch, seconds, label `file`.
pub const COMMIT_DURATION: &str = "wa_redb_commit_duration_seconds";
/// Writes in each committed batch, label `file`.
pub const BATCH_WRITES: &str = "wa_redb_batch_writes";
/// Bytes in the journal, written since the last checkpoint, label `file`.
pub const JOURNAL_BYTES: &str = "wa_redb_journal_bytes";
/// Checkpoints (durable commits that let the journal rewind), label `file`.
pub const CHECKPOINTS: &str = "wa_redb_checkpoints_total";
/// Time of one checkpoint, seconds, label `file`.
pub const CHECKPOINT_DURATION: &str = "wa_redb_checkpoint_duration_seconds";
/// Journal syncs (`Normal`: the fdatasync that makes the records of the
/// last `checkpoint_interval` durable while writes keep coming), label `file`.
pub const JOURNAL_SYNCS: &str = "wa_redb_journal_syncs_total";
/// Writers halted by a failure, labels `file` and `cause` (`no_space`,
/// `io`, `corrupted`, `storage`, `other`).
pub const HALTS: &str = "wa_redb_halts_total";
/// Bytes read from the store's files by this process, label `file`.
pub const READ_BYTES: &str = "wa_redb_read_bytes_total";
/// Bytes written to the store's files by this process, label `file`.
pub const WRITTEN_BYTES: &str = "wa_redb_written_bytes_total";
/// Size of the store file, label `file`.
pub const FILE_BYTES: &str = "wa_redb_file_bytes";
/// Free space on the file system that holds the file, label `file` (Unix).
pub const DISK_FREE_BYTES: &str = "wa_redb_disk_free_bytes";
/// Accounts (device records) in the file, label `file`.
pub const ACCOUNTS: &str = "wa_redb_accounts";
/// This file's page cache: its share of the process-wide budget, label `file`.
pub const CACHE_BYTES: &str = "wa_redb_cache_bytes";
/// Page reads served by the cache, label `file` (feature `cache-metrics`).
pub const CACHE_HITS: &str = "wa_redb_cache_hits_total";
/// Page reads that went to the file, label `file` (feature `cache-metrics`).
pub const CACHE_MISSES: &str = "wa_redb_cache_misses_total";
/// The process-wide cache budget, and how much of it open files hold.
pub const CACHE_BUDGET_BYTES: &str = "wa_redb_cache_budget_bytes";
/// Bytes of the process-wide budget taken by open files.
pub const CACHE_BUDGET_USED_BYTES: &str = "wa_redb_cache_budget_used_bytes";
/// Store files open in this process.
pub const OPEN_FILES: &str = "wa_redb_open_files";

/// Values read from the engine when its sampled gauges are refreshed.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) struct Sample {
    pub read_bytes: u64,
    pub written_bytes: u64,
    pub file_bytes: Option<u64>,
    pub disk_free_bytes: Option<u64>,
    pub accounts: Option<u64>,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

/// The kind of a failure that halted a writer, as the `cause` label.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn cause(err: &crate::error::StorageError) -> &'static str {
    use crate::error::StorageError;
    match err {
        StorageError::NoSpace { .. } => "no_space",
        StorageError::Io { .. } => "io",
        StorageError::Corrupted { .. } => "corrupted",
        StorageError::Redb { .. } => "storage",
        _ => "other",
    }
}

#[cfg(feature = "metrics")]
mod on;
#[cfg(feature = "metrics")]
pub use on::describe;
#[cfg(feature = "metrics")]
pub(crate) use on::{FileMetrics, files_changed, timed};

#[cfg(not(feature = "metrics"))]
mod off;
#[cfg(not(feature = "metrics"))]
pub use off::describe;
#[cfg(not(feature = "metrics"))]
pub(crate) use off::{FileMetrics, files_changed, timed};

/// Enters a `tracing` span named `$name` with the file as a field, for the
/// rest of the enclosing block (feature `tracing`; nothing without it).
/// For synchronous code: a span entered across an `.await` would be
/// attributed to whatever else runs on the thread.
macro_rules! file_span {
    ($name:literal, $path:expr) => {
        #[cfg(feature = "tracing")]
        let _span = ::tracing::info_span!($name, file = %$path.display()).entered();
    };
}
pub(crate) use file_span;

/// `$fut` inside a `tracing` span named `$name` with the file as a field
/// (feature `tracing`); `$fut` itself without it.
#[cfg_attr(not(feature = "sqlite"), allow(unused_macros))]
macro_rules! in_file_span {
    ($name:literal, $path:expr, $fut:expr) => {{
        #[cfg(feature = "tracing")]
        let fut = ::tracing::Instrument::instrument(
            $fut,
            ::tracing::info_span!($name, file = %$path.display()),
        );
        #[cfg(not(feature = "tracing"))]
        let fut = $fut;
        fut
    }};
}
#[cfg_attr(not(feature = "sqlite"), allow(unused_imports))]
pub(crate) use in_file_span;
