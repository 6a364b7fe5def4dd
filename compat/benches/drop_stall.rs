//! How long dropping the last handle of a store holds up a current-thread
//! runtime. The drop closes the file on the caller's thread, so that the
//! file is free for another process when it returns (issue 23); its work is
//! redb's close and the removal of the journal, which does not grow with
//! the file (asserted by I/O counts in tests/lifecycle.rs). This bench
//! gives the time: the longest interval a ticker task could not run while
//! the drop happened, on stores of 8 and 100 MiB with a deleted account
//! (half the file free) and one write still only in the journal.
//!
//! `cargo bench -p wa-redb-compat --bench drop_stall` prints a table
//! (results in this folder's README, "Restarts and hand-over"); under
//! `taskset -c 0` for one CPU.

#[path = "../../tests/util/big_store.rs"]
mod big_store;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wacore::store::traits::SignalStore;
use whatsapp_rust_redb_storage::RedbStore;

const ROUNDS: usize = 7;

/// A store of about `mib` MiB with two accounts, the second deleted.
async fn store_with_a_deleted_account(path: &Path, mib: usize) -> RedbStore {
    let s = RedbStore::new(path).await.expect("open");
    big_store::fill_two_accounts(&s, mib).await;
    s.checkpoint().await.expect("checkpoint");
    s.delete_device(2).await.expect("delete");
    s
}

/// The longest time a ticker task could not run while `s` was dropped.
async fn stall_of_drop(s: RedbStore) -> Duration {
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::SeqCst) {
                let t = Instant::now();
                tokio::task::yield_now().await;
                worst = worst.max(t.elapsed());
            }
            worst
        }
    });
    tokio::task::yield_now().await;
    drop(s);
    tokio::task::yield_now().await;
    stop.store(true, Ordering::SeqCst);
    ticker.await.expect("ticker")
}

fn main() {
    // Not a criterion bench: `cargo bench` passes `--bench`, nothing to parse.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    println!("| store | file size | longest stall of {ROUNDS} drops: median | max |");
    println!("|---|---:|---:|---:|");
    for mib in [8usize, 100] {
        let path = dir.path().join(format!("{mib}.redb"));
        let mut stalls = Vec::with_capacity(ROUNDS);
        let mut size = 0;
        rt.block_on(async {
            let mut s = store_with_a_deleted_account(&path, mib).await;
            for round in 0..ROUNDS {
                size = std::fs::metadata(&path).expect("size").len();
                s.put_session(&format!("last-{round}@c.us.0"), b"last")
                    .await
                    .expect("write");
                stalls.push(stall_of_drop(s).await);
                s = RedbStore::new(&path).await.expect("reopen");
            }
            s.close().await.expect("close");
        });
        stalls.sort();
        println!(
            "| {mib} MiB of sessions, half deleted | {:.1} MiB | {:.2} ms | {:.2} ms |",
            size as f64 / (1 << 20) as f64,
            stalls[ROUNDS / 2].as_secs_f64() * 1e3,
            stalls[ROUNDS - 1].as_secs_f64() * 1e3,
        );
    }
}
