//! What one call costs in allocations, RedbStore against SqliteStore: a
//! counting global allocator around the system one, and one lone caller on
//! a current-thread runtime (no contention, every batch of one job, the
//! default `Normal` mode). Counts include everything the call does: our
//! code, redb's, SQLite's, tokio's.
//!
//! `cargo bench -p wa-redb-compat --bench write_path` prints a table
//! (results in this folder's README, "The path of one write").

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use wacore::store::traits::SignalStore;
use whatsapp_rust_redb_storage::RedbStore;
use whatsapp_rust_sqlite_storage::SqliteStore;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CALLS: u64 = 2_000;

/// Allocations and bytes per call of `op`, after a warm-up of as many calls.
async fn per_call<F, Fut>(mut op: F) -> (f64, f64)
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for i in 0..CALLS {
        op(i).await;
    }
    let (a0, b0) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
    for i in CALLS..2 * CALLS {
        op(i).await;
    }
    let (a1, b1) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
    (
        (a1 - a0) as f64 / CALLS as f64,
        (b1 - b0) as f64 / CALLS as f64,
    )
}

fn main() {
    // Not a criterion bench: `cargo bench` passes `--bench`, nothing to parse.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let session = vec![7u8; 1200];
    let addresses: Vec<String> = (0..2 * CALLS)
        .map(|i| format!("5511{i:09}:1@c.us.0"))
        .collect();
    rt.block_on(async {
        let redb = RedbStore::new(dir.path().join("w.redb")).await.unwrap();
        let sqlite = SqliteStore::new(dir.path().join("w.db").to_str().unwrap())
            .await
            .unwrap();
        let mut rows = Vec::new();
        let put_r = per_call(|i| {
            let (s, a) = (&redb, &addresses[i as usize]);
            let v = &session;
            async move { s.put_session(a, v).await.unwrap() }
        })
        .await;
        let put_s = per_call(|i| {
            let (s, a) = (&sqlite, &addresses[i as usize]);
            let v = &session;
            async move { s.put_session(a, v).await.unwrap() }
        })
        .await;
        rows.push(("put_session (1.2 KB)", put_r, put_s));
        let get_r = per_call(|i| {
            let (s, a) = (&redb, &addresses[i as usize]);
            async move {
                s.get_session(a).await.unwrap();
            }
        })
        .await;
        let get_s = per_call(|i| {
            let (s, a) = (&sqlite, &addresses[i as usize]);
            async move {
                s.get_session(a).await.unwrap();
            }
        })
        .await;
        rows.push(("get_session", get_r, get_s));
        println!("## The path of one write: allocations per call (compat/benches/write_path.rs)\n");
        println!("One caller, current-thread runtime, default modes; {CALLS} calls after as many warm-up calls.\n");
        println!("| call | RedbStore allocations | bytes | SqliteStore allocations | bytes |");
        println!("|---|---|---|---|---|");
        for (name, (ra, rb), (sa, sb)) in rows {
            println!("| {name} | {ra:.1} | {rb:.0} | {sa:.1} | {sb:.0} |");
        }
        redb.close().await.unwrap();
    });
}
