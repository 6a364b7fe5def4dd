//! Without the `metrics` feature: nothing, at no cost.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use super::Sample;
use crate::error::StorageError;

#[inline(always)]
pub(crate) fn timed<F: Future>(_op: &'static str, fut: F, _after: impl FnOnce()) -> F {
    fut
}

#[inline(always)]
pub(crate) fn files_changed(_open: usize, _budget: usize, _used: usize) {}

pub(crate) struct FileMetrics;

/// Nothing: no clock is read.
#[derive(Clone, Copy)]
pub(crate) struct Started;

#[allow(clippy::unused_self)]
impl FileMetrics {
    #[inline(always)]
    pub fn new(_path: &Path, _cache_bytes: usize) -> Arc<FileMetrics> {
        Arc::new(FileMetrics)
    }
    #[inline(always)]
    pub fn start(&self) -> Started {
        Started
    }
    #[inline(always)]
    pub fn committed(&self, _started: Started, _writes: usize, _journal_bytes: Option<u64>) {}
    #[inline(always)]
    pub fn checkpointed(&self, _started: Started, _journal_bytes: Option<u64>) {}
    #[inline(always)]
    pub fn journal_synced(&self) {}
    #[inline(always)]
    pub fn halted(&self, _err: &StorageError) {}
    #[inline(always)]
    pub fn sample_due(&self) -> bool {
        false
    }
    #[inline(always)]
    pub fn publish(&self, _s: Sample) {}
}

/// Registers metric descriptions: without the `metrics` feature there are
/// none.
pub fn describe() {}
