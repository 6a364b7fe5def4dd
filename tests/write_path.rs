//! The write path: callers commit their own writes (one batch per poll,
//! the others riding along), blocking work runs on bounded process-wide
//! pools, and nothing a runtime thread does waits for the disk.
//!
//! Deterministic: the single-threaded runtime fixes the interleaving, and a
//! fault hook that parks an fsync until the test lets it go stands in for a
//! slow disk. No sleeps.

#[path = "util/process.rs"]
mod process;

use std::future::Future;
use std::io;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use wacore::store::traits::{ProtocolStore, SignalStore};
use whatsapp_rust_redb_storage::fault::{IoFaults, IoTarget};
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig};

/// Parks every fsync of the database file until the test sends a token.
struct ParkedSyncs {
    parked: Mutex<Option<Sender<()>>>,
    release: Mutex<Receiver<()>>,
}

impl IoFaults for ParkedSyncs {
    fn on_sync(&self, target: IoTarget) -> io::Result<()> {
        let parked = self.parked.lock().unwrap().clone();
        if target == IoTarget::Database
            && let Some(parked) = parked
        {
            let _ = parked.send(());
            let _ = self.release.lock().unwrap().recv();
        }
        Ok(())
    }
}

/// Polls `f` once and drops it.
async fn poll_once<F: Future>(f: F) -> Poll<F::Output> {
    let mut f = std::pin::pin!(f);
    std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_write_waiting_for_a_checkpoint_never_blocks_the_runtime_thread() {
    let dir = tempfile::tempdir().unwrap();
    let (parked_tx, parked_rx) = channel();
    let (release_tx, release_rx) = channel();
    let faults = Arc::new(ParkedSyncs {
        parked: Mutex::new(None),
        release: Mutex::new(release_rx),
    });
    let config = RedbStoreConfig::default().with_io_faults(faults.clone());
    let rt = current_thread();
    rt.block_on(async {
        let s = RedbStore::with_config(dir.path().join("s.redb"), config)
            .await
            .unwrap();
        s.put_session("a@c.us.0", b"before").await.unwrap();
        // From now on the checkpoint's fsync waits for the test.
        *faults.parked.lock().unwrap() = Some(parked_tx);
        let checkpoint = tokio::spawn({
            let s = s.clone();
            async move { s.checkpoint().await }
        });
        // The checkpoint runs on a pool worker and parks in its fsync.
        tokio::task::spawn_blocking(move || parked_rx.recv().unwrap())
            .await
            .unwrap();
        // A write now waits for the lane; its task must yield the runtime
        // thread, so the other task below runs while it waits.
        let write = tokio::spawn({
            let s = s.clone();
            async move { s.put_session("b@c.us.0", b"during").await }
        });
        let other = tokio::spawn(async { "the runtime is free" });
        assert_eq!(other.await.unwrap(), "the runtime is free");
        assert!(!write.is_finished(), "the write waited for the checkpoint");
        *faults.parked.lock().unwrap() = None;
        release_tx.send(()).unwrap();
        checkpoint.await.unwrap().unwrap();
        write.await.unwrap().unwrap();
        assert_eq!(
            s.get_session("b@c.us.0").await.unwrap().as_deref(),
            Some(&b"during"[..])
        );
        s.close().await.unwrap();
    });
}

#[test]
fn concurrent_writers_on_one_runtime_thread_share_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let rt = current_thread();
    rt.block_on(async {
        let s = RedbStore::new(dir.path().join("s.redb")).await.unwrap();
        let before = s.info().await.unwrap().pending_journal_records;
        let tasks: Vec<_> = (0..32)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.put_session(&format!("{i}@c.us.0"), &[i as u8; 64])
                        .await
                        .unwrap()
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // Every writer queues its job and yields once; the first polled
        // again finds the 31 others queued and commits up to 8 jobs in one
        // batch on its thread, the next whose job is left the next 8: 4
        // batches, 4 journal records, instead of 32.
        let batches = s.info().await.unwrap().pending_journal_records - before;
        assert!(batches <= 4, "32 concurrent writes took {batches} batches");
        for i in 0..32u8 {
            let got = s.get_session(&format!("{i}@c.us.0")).await.unwrap();
            assert_eq!(got.as_deref(), Some(&[i; 64][..]));
        }
        s.close().await.unwrap();
    });
}

#[test]
fn a_write_whose_caller_gives_up_after_its_first_poll_still_happens() {
    let dir = tempfile::tempdir().unwrap();
    let rt = current_thread();
    rt.block_on(async {
        let s = RedbStore::new(dir.path().join("s.redb")).await.unwrap();
        // Polled once: the write queues its job, yields, and is dropped.
        let first = poll_once(s.store_sent_message("c@s.whatsapp.net", "m1", b"abandoned")).await;
        assert!(first.is_pending(), "the write finished without yielding");
        // Dropping it asked a pool worker to commit the queued job (or a
        // later write committed it): later writes complete, after it.
        s.store_sent_message("c@s.whatsapp.net", "m2", b"later")
            .await
            .unwrap();
        let taken = s.take_sent_message("c@s.whatsapp.net", "m1").await.unwrap();
        assert_eq!(taken.as_deref(), Some(&b"abandoned"[..]));
        s.close().await.unwrap();
    });
}

/// In a child process: 120 store files open at once, each written to and
/// read; prints the number of OS threads of the process.
#[test]
#[ignore = "child process of threads_stay_bounded_with_many_store_files"]
fn many_files_child() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let most = rt.block_on(async {
        let opens: Vec<_> = (0..120)
            .map(|i| {
                let path = dir.path().join(format!("{i}.redb"));
                tokio::spawn(async move { RedbStore::new(path).await.unwrap() })
            })
            .collect();
        let mut stores = Vec::new();
        for o in opens {
            stores.push(o.await.unwrap());
        }
        let mut most = 0;
        for round in 0..3u8 {
            let writes: Vec<_> = stores
                .iter()
                .cloned()
                .map(|s| {
                    tokio::spawn(async move {
                        s.put_session("a@c.us.0", &[round; 1200]).await.unwrap();
                        s.put_identities_batch(&[(Arc::from("a@c.us.0"), [round; 32])])
                            .await
                            .unwrap();
                        assert!(s.get_session("a@c.us.0").await.unwrap().is_some());
                    })
                })
                .collect();
            for w in writes {
                w.await.unwrap();
            }
            most = most.max(threads());
        }
        // The sweeps run on the pool too.
        for s in &stores {
            s.delete_expired_sent_messages(0).await.unwrap();
        }
        most = most.max(threads());
        for s in stores {
            s.close().await.unwrap();
        }
        most.max(threads())
    });
    println!("THREADS {most}");
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

#[test]
#[cfg(target_os = "linux")]
fn threads_stay_bounded_with_many_store_files() {
    let out = process::self_command("many_files_child").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let most: usize = stdout
        .lines()
        .find_map(|l| l.split_once("THREADS ").map(|(_, n)| n))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no thread count in {stdout}"));
    // The test's own thread, the runtime's two workers, the two pools' (one
    // for commits, one for opens and closes) at most eight each, and the
    // process's main thread: never one per file.
    assert!(most <= 20, "{most} threads for 120 open store files");
}
