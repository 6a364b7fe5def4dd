//! Every legal way of driving the store's async API makes progress: a write
//! future that is polled and then parked, cancelled at any point, buffered
//! by a stream, or driven from another runtime never holds up anyone else's
//! write, and dropping it leaves the file fully usable.
//!
//! The cancellation rule these tests hold the store to (README, "How writes
//! work"): a write whose future was polled once is committed, whether or
//! not the future is dropped afterwards; a future dropped before its first
//! poll writes nothing.
//!
//! Deterministic: futures are polled by hand, a fixed number of times, with
//! fixed seeds; every wait is bounded by a timeout that fails the test.
//! `WA_REDB_HAZARD_ROUNDS` runs the randomized test longer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use wacore::store::traits::SignalStore;
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig, Synchronous};

/// Long enough for any of these tests on a loaded one-CPU machine under
/// qemu; a wedged lane never finishes at all.
const BOUND: Duration = Duration::from_secs(120);

type Write<'a> = Pin<Box<dyn Future<Output = Outcome> + 'a>>;

fn put<'a>(s: &'a RedbStore, name: String, value: Vec<u8>) -> Write<'a> {
    Box::pin(async move { s.put_session(&name, &value).await })
}

/// Polls `f` once with a waker that does nothing.
fn poll_once<F: Future + ?Sized>(f: Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

type Outcome = Result<(), wacore::store::error::StoreError>;

/// A write polled by hand, as a combinator holding it would: never polled
/// again once it finished.
struct Held<'a> {
    f: Write<'a>,
    out: Option<Outcome>,
}

impl<'a> Held<'a> {
    fn new(f: Write<'a>) -> Self {
        Held { f, out: None }
    }

    /// Polls it once unless it finished; whether it has.
    fn poke(&mut self) -> bool {
        if self.out.is_none()
            && let Poll::Ready(out) = poll_once(self.f.as_mut())
        {
            self.out = Some(out);
        }
        self.out.is_some()
    }

    async fn finish(self) -> Outcome {
        match self.out {
            Some(out) => out,
            None => bounded("a held write", self.f).await,
        }
    }
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(BOUND, f).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: not done after {BOUND:?} (a wedged write lane?)"),
    }
}

async fn stored(s: &RedbStore, name: &str) -> Option<Vec<u8>> {
    s.get_session(name).await.unwrap().map(|b| b.to_vec())
}

/// Runs `n` writes of `prefix{i}` concurrently and checks each landed.
async fn many_writes(s: &RedbStore, prefix: &str, n: usize) {
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..n {
        let (s, name) = (s.clone(), format!("{prefix}{i}@c.us.0"));
        writes.spawn(async move { s.put_session(&name, &[i as u8; 48]).await });
    }
    bounded("concurrent writes", async {
        while let Some(done) = writes.join_next().await {
            done.unwrap().unwrap();
        }
    })
    .await;
    for i in 0..n {
        let got = stored(s, &format!("{prefix}{i}@c.us.0")).await;
        assert_eq!(got.as_deref(), Some(&[i as u8; 48][..]), "{prefix}{i}");
    }
}

/// The shape of the issue that found the wedge: a write polled once (so
/// that it may have queued, led, or waited for its turn) and then kept
/// alive without being polled, while 63 other writes run on the same file.
#[test]
fn a_write_polled_once_and_parked_holds_up_nobody() {
    for runtime in [current_thread(), multi_thread()] {
        let dir = tempfile::tempdir().unwrap();
        runtime.block_on(async {
            let s = RedbStore::new(dir.path().join("s.redb")).await.unwrap();
            let mut parked = Held::new(put(&s, "parked@c.us.0".into(), b"p".to_vec()));
            assert!(!parked.poke(), "the write finished without yielding");
            many_writes(&s, "other", 63).await;
            // The parked write was queued at its first poll: someone else's
            // batch committed it.
            assert_eq!(
                stored(&s, "parked@c.us.0").await.as_deref(),
                Some(&b"p"[..])
            );
            parked.finish().await.unwrap();
            s.close().await.unwrap();
        });
    }
}

/// Writes parked at every point of the protocol: polled 1, 2, 3 times with
/// other writes polled in between (so that each may be queued, waiting for
/// the lane, or woken to take it), then parked or dropped.
#[test]
fn writes_parked_or_dropped_at_every_point_leave_the_file_usable() {
    for polls in 1..=3 {
        for drop_it in [false, true] {
            for runtime in [current_thread(), multi_thread()] {
                let dir = tempfile::tempdir().unwrap();
                runtime.block_on(async {
                    let s = RedbStore::new(dir.path().join("s.redb")).await.unwrap();
                    let mut held: Vec<Held<'_>> = (0..4)
                        .map(|i| Held::new(put(&s, format!("held{i}@c.us.0"), vec![i; 8])))
                        .collect();
                    for _ in 0..polls {
                        for f in &mut held {
                            f.poke();
                        }
                    }
                    if drop_it {
                        held.clear();
                    }
                    many_writes(&s, "after", 32).await;
                    for f in held {
                        f.finish().await.unwrap();
                    }
                    // Every write polled once is committed (the rule).
                    for i in 0..4u8 {
                        let got = stored(&s, &format!("held{i}@c.us.0")).await;
                        assert_eq!(got.as_deref(), Some(&[i; 8][..]), "polls {polls}");
                    }
                    s.close().await.unwrap();
                });
            }
        }
    }
}

/// A `select!` loop with a pinned write in one arm that the loop stops
/// polling (its guard turns false) after it started, and another write in
/// the other arm.
#[test]
fn a_select_loop_that_stops_polling_a_started_write_makes_progress() {
    for runtime in [current_thread(), multi_thread()] {
        let dir = tempfile::tempdir().unwrap();
        runtime.block_on(async {
            let s = RedbStore::new(dir.path().join("s.redb")).await.unwrap();
            let mut pinned = put(&s, "pinned@c.us.0".into(), b"p".to_vec());
            let mut pinned_done = false;
            let mut polled_pinned = false;
            bounded("the select loop", async {
                for i in 0..64u8 {
                    let name = format!("arm{i}@c.us.0");
                    let value = [i; 4];
                    tokio::select! {
                        biased;
                        // Polled first in round 0 only, then never again
                        // until the loop ends.
                        r = &mut pinned, if !polled_pinned => {
                            r.unwrap();
                            pinned_done = true;
                        }
                        r = s.put_session(&name, &value) => r.unwrap(),
                    }
                    polled_pinned = true;
                }
            })
            .await;
            if !pinned_done {
                bounded("the pinned write", pinned).await.unwrap();
            } else {
                drop(pinned);
            }
            assert_eq!(
                stored(&s, "pinned@c.us.0").await.as_deref(),
                Some(&b"p"[..])
            );
            s.close().await.unwrap();
        });
    }
}

/// What a buffered stream (`buffer_unordered`, `FuturesUnordered`) does:
/// it polls the futures it buffers, and its consumer awaits a write of its
/// own before it polls the buffer again.
#[test]
fn a_stream_consumer_writes_while_buffered_writes_wait() {
    for runtime in [current_thread(), multi_thread()] {
        let dir = tempfile::tempdir().unwrap();
        runtime.block_on(async {
            let s = RedbStore::new(dir.path().join("s.redb")).await.unwrap();
            let mut buffered: Vec<Held<'_>> = Vec::new();
            for item in 0..16u8 {
                buffered.push(Held::new(put(
                    &s,
                    format!("item{item}@c.us.0"),
                    vec![item; 16],
                )));
                for f in &mut buffered {
                    f.poke();
                }
                // The consumer's own write while the buffer holds started
                // writes it does not poll.
                bounded(
                    "the consumer's write",
                    s.put_session(&format!("consumer{item}@c.us.0"), &[item]),
                )
                .await
                .unwrap();
            }
            for f in buffered {
                f.finish().await.unwrap();
            }
            for item in 0..16u8 {
                let got = stored(&s, &format!("item{item}@c.us.0")).await;
                assert_eq!(got.as_deref(), Some(&[item; 16][..]));
            }
            s.close().await.unwrap();
        });
    }
}

/// A `current_thread` runtime and a multi-thread one write the same file
/// at once, each with many tasks.
#[test]
fn two_runtimes_write_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let s = RedbStore::open_blocking(&path, 1, RedbStoreConfig::default()).unwrap();
    let other = {
        let s = s.clone();
        std::thread::spawn(move || {
            current_thread().block_on(async { many_writes(&s, "single", 200).await })
        })
    };
    multi_thread().block_on(async { many_writes(&s, "multi", 200).await });
    other.join().unwrap();
    drop(s);
}

/// Writes cancelled after a random number of polls (none included), with
/// other writes in between, in `Normal` and `Full` mode; then the rule is
/// checked on a reopened file: every write polled at least once is there,
/// none polled zero times is. `WA_REDB_HAZARD_ROUNDS` sets the rounds.
#[test]
fn randomized_cancellation_follows_the_rule() {
    let rounds: u64 = std::env::var("WA_REDB_HAZARD_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for round in 0..rounds {
        for mode in [Synchronous::Normal, Synchronous::Full] {
            let mut rng = StdRng::seed_from_u64(0x5eed ^ round);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.redb");
            let config = RedbStoreConfig::default().with_synchronous(mode);
            let runtime = if round % 2 == 0 {
                current_thread()
            } else {
                multi_thread()
            };
            let mut expected = Vec::new();
            runtime.block_on(async {
                let s = RedbStore::with_config(&path, config.clone()).await.unwrap();
                let mut live: Vec<(usize, Held<'_>)> = Vec::new();
                for i in 0..200usize {
                    let name = format!("w{i}@c.us.0");
                    let mut f = Held::new(put(&s, name, vec![(i % 251) as u8; 24]));
                    let polls = rng.random_range(0..4);
                    for _ in 0..polls {
                        if f.poke() {
                            break;
                        }
                    }
                    expected.push(polls > 0);
                    match rng.random_range(0..3) {
                        0 => drop(f),
                        1 => live.push((i, f)),
                        _ if polls == 0 => {
                            // Awaited in full after all.
                            *expected.last_mut().unwrap() = true;
                            f.finish().await.unwrap();
                        }
                        _ => f.finish().await.unwrap(),
                    }
                    if rng.random_range(0..8) == 0 {
                        // Some of the held ones are dropped later.
                        live.retain(|(j, _)| (j + i) % 3 != 0);
                    }
                }
                drop(live);
                bounded("a last write", s.put_session("last@c.us.0", b"l"))
                    .await
                    .unwrap();
                bounded("the close", s.close()).await.unwrap();
            });
            let s = RedbStore::open_blocking(&path, 1, config).unwrap();
            let check = current_thread();
            for (i, polled) in expected.into_iter().enumerate() {
                let got = check.block_on(stored(&s, &format!("w{i}@c.us.0")));
                assert_eq!(got.is_some(), polled, "round {round} {mode:?}: write {i}");
            }
            drop(s);
        }
    }
}

/// Keeps the store handle type `Send + Sync + 'static` behind an `Arc`, as
/// the client holds it for months.
#[test]
fn a_store_behind_an_arc_dyn_backend_serves_many_tasks() {
    let dir = tempfile::tempdir().unwrap();
    multi_thread().block_on(async {
        let s = RedbStore::new(dir.path().join("s.redb")).await.unwrap();
        let backend: Arc<dyn wacore::store::traits::Backend> = Arc::new(s.clone());
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..64u32 {
            let backend = backend.clone();
            tasks.spawn(async move {
                backend
                    .put_session(&format!("{i}@c.us.0"), &i.to_le_bytes())
                    .await
            });
        }
        bounded("the tasks", async {
            while let Some(done) = tasks.join_next().await {
                done.unwrap().unwrap();
            }
        })
        .await;
        drop(backend);
        s.close().await.unwrap();
    });
}
