//! Space: deleting an account does not grow the file (issue 16.4), a
//! deletion cut short by a failure is finished by running it again, and
//! `compact_file` reports the sizes `stat` shows.
//!
//! The large store is `WA_REDB_SPACE_MB` MiB after compaction (default 16;
//! the file was 142 MiB).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use wacore::store::Device;
use wacore::store::traits::*;
use whatsapp_rust_redb_storage::fault::{IoFaults, IoTarget};
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig};

fn len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

fn journal(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".journal");
    s.into()
}

/// The file and its journal, as `stat` shows them.
fn on_disk(p: &Path) -> u64 {
    len(p) + len(&journal(p))
}

fn target_mb() -> u64 {
    std::env::var("WA_REDB_SPACE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

/// No compaction (maintenance): the tests look at what a deletion itself does.
fn manual() -> RedbStoreConfig {
    RedbStoreConfig::default().with_auto_compact(None)
}

/// Fills account `d` with about `mb` MiB (once compacted) of sessions,
/// sender keys and message secrets; contents depend only on `d` and `mb`.
async fn fill(s: &RedbStore, mb: u64) {
    s.save(&Device::new()).await.unwrap();
    let d = s.device_id();
    let n = ((mb << 20) / 2700).max(1);
    for start in (0..n).step_by(2000) {
        let end = (start + 2000).min(n);
        let sessions: Vec<(Arc<str>, Bytes)> = (start..end)
            .map(|i| {
                (
                    Arc::from(format!("55{i:010}@c.us.{d}")),
                    Bytes::from(vec![(i % 251) as u8; 1024]),
                )
            })
            .collect();
        s.put_sessions_batch(&sessions).await.unwrap();
        for i in start..end {
            s.put_sender_key(&format!("g{}@g.us:{i}@c.us.0", i % 97), &[d as u8; 512])
                .await
                .unwrap();
            s.put_msg_secret("c@s.whatsapp.net", "a@lid", &format!("M{i:012}"), &[7; 32])
                .await
                .unwrap();
        }
    }
}

/// A closed, freshly compacted store (no free page: the worst case, where
/// any growth doubles the file) with a large account 1 and a small account 2.
async fn tight_store(dir: &Path) -> PathBuf {
    let path = dir.join("big.redb");
    let s = RedbStore::with_config(&path, manual()).await.unwrap();
    fill(&s, target_mb()).await;
    fill(&s.for_device(2), 1).await;
    s.close().await.unwrap();
    RedbStore::compact_file(&path).unwrap();
    path
}

/// Records the largest length the store gave its file.
#[derive(Default)]
struct Peak(AtomicU64);

impl IoFaults for Peak {
    fn on_set_len(&self, target: IoTarget, len: u64) -> std::io::Result<()> {
        if target == IoTarget::Database {
            self.0.fetch_max(len, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Deletes `device` from `path` as `wa-redb delete-device` does (open with
/// the default configuration, delete, compact if worth it, close) and
/// returns the rows deleted and the peak file length.
async fn delete(path: &Path, device: i32) -> (u64, u64) {
    let peak = Arc::new(Peak::default());
    let config = RedbStoreConfig::default().with_io_faults(peak.clone());
    let s = RedbStore::with_config(path, config).await.unwrap();
    let rows = s.delete_device(device).await.unwrap();
    s.compact_if_worth().await.unwrap();
    s.close().await.unwrap();
    (rows, peak.0.load(Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_account_does_not_grow_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = tight_store(dir.path()).await;
    let before = on_disk(&path);
    assert!(before > target_mb() << 19, "the store is {before} bytes");

    // The small account, then the large one.
    let (small, peak_small) = delete(&path, 2).await;
    let after_small = on_disk(&path);
    let (large, peak_large) = delete(&path, 1).await;
    let after_large = on_disk(&path);
    eprintln!(
        "before {before}; device 2 ({small} rows): {after_small} (peak file {peak_small}); \
         device 1 ({large} rows): {after_large} (peak file {peak_large})"
    );
    assert!(small > 1000 && large > small, "{small} {large}");
    for (what, after) in [("device 2", after_small), ("device 1", after_large)] {
        assert!(
            after as f64 <= before as f64 * 1.05,
            "deleting {what} grew the file: {before} -> {after} bytes"
        );
    }
    assert!(
        !journal(&path).exists(),
        "a clean close removes the journal"
    );

    // Deleting most of the file's rows gave the space back at close.
    assert!(after_large * 4 < before, "{before} -> {after_large}");
    let s = RedbStore::new(&path).await.unwrap();
    assert!(s.accounts().await.unwrap().is_empty());
    s.close().await.unwrap();
    assert!(RedbStore::check_file(&path).unwrap().is_ok());
}

/// Fails every fsync of the store file from the `n`th on (counting from 1,
/// once armed): a checkpoint between two slices fails, the writer halts.
struct FailSyncs {
    armed: std::sync::atomic::AtomicBool,
    seen: AtomicUsize,
    from: usize,
}

impl IoFaults for FailSyncs {
    fn on_sync(&self, target: IoTarget) -> std::io::Result<()> {
        if target == IoTarget::Database
            && self.armed.load(Ordering::Relaxed)
            && self.seen.fetch_add(1, Ordering::Relaxed) + 1 >= self.from
        {
            return Err(std::io::Error::other("injected fsync failure"));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deletion_cut_short_leaves_no_account_and_a_second_run_finishes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.redb");
    {
        let s = RedbStore::with_config(&path, manual()).await.unwrap();
        // 20 000 rows: several slices.
        fill(&s, 20).await;
        fill(&s.for_device(2), 1).await;
        s.close().await.unwrap();
    }
    let rows_of = |accounts: &[whatsapp_rust_redb_storage::AccountInfo], d: i32| {
        accounts.iter().find(|a| a.device_id == d).map(|a| a.rows)
    };
    let (total, other) = {
        let s = RedbStore::new(&path).await.unwrap();
        let accounts = s.accounts().await.unwrap();
        s.close().await.unwrap();
        (
            rows_of(&accounts, 1).unwrap(),
            rows_of(&accounts, 2).unwrap(),
        )
    };
    assert!(total > 3 * 4096, "{total}");
    {
        let faults = Arc::new(FailSyncs {
            armed: false.into(),
            seen: 0.into(),
            from: 2,
        });
        let s = RedbStore::with_config(&path, manual().with_io_faults(faults.clone()))
            .await
            .unwrap();
        faults.armed.store(true, Ordering::Relaxed);
        // The first checkpoint succeeds, the second fails: two slices are
        // in, the rest is not.
        assert!(s.delete_device(1).await.is_err());
        drop(s);
    }
    // Whatever reached the file or the journal is there at the next open;
    // the account is gone as an account (no device record), with rows left.
    let s = RedbStore::new(&path).await.unwrap();
    let one = s.for_device(1);
    assert!(!one.exists().await.unwrap());
    assert!(one.load().await.unwrap().is_none());
    let accounts = s.accounts().await.unwrap();
    let a1 = accounts.iter().find(|a| a.device_id == 1).unwrap();
    assert!(!a1.has_device_record, "{a1:?}");
    assert!(a1.rows > 0 && a1.rows < total, "{a1:?} of {total}");
    // A second run deletes what is left; the other account is untouched.
    let left = s.delete_device(1).await.unwrap();
    assert_eq!(left, a1.rows);
    let accounts = s.accounts().await.unwrap();
    assert_eq!(rows_of(&accounts, 1), None);
    assert_eq!(rows_of(&accounts, 2), Some(other));
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_reports_the_sizes_stat_shows_and_nothing_freed_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.redb");
    {
        let s = RedbStore::with_config(&path, manual()).await.unwrap();
        fill(&s, 4).await;
        fill(&s.for_device(2), 1).await;
        s.close().await.unwrap();
        // Free space spread through the file.
        let s = RedbStore::with_config(&path, manual()).await.unwrap();
        s.delete_device(1).await.unwrap();
        s.close().await.unwrap();
    }
    let before = len(&path);
    let first = RedbStore::compact_file(&path).unwrap();
    assert_eq!(first.bytes_before, before, "{first:?}");
    assert_eq!(first.bytes_after, len(&path), "{first:?}");
    assert!(first.bytes_freed() > 0, "{first:?}");
    for _ in 0..2 {
        let before = len(&path);
        let again = RedbStore::compact_file(&path).unwrap();
        assert_eq!(again.bytes_before, before, "{again:?}");
        assert_eq!(again.bytes_after, len(&path), "{again:?}");
        assert_eq!(again.bytes_freed(), 0, "{again:?}");
    }
}
