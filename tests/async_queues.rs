//! Commits never queue behind long work: backups, opens, closes and scans
//! run on a pool of their own, so that however many of them hold every
//! worker of it, an fsynced (`Full`) write still commits at once.
//!
//! Deterministic: a fault hook holds each backup inside its copy until the
//! test opens a gate; no sleeps, every wait bounded.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use wacore::store::traits::SignalStore;
use whatsapp_rust_redb_storage::fault::{IoFaults, IoTarget};
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig, Synchronous};

/// The most workers a pool of the store runs (twice the CPUs, 4 to 8):
/// this many backups hold every long-work worker on any machine.
const BACKUPS: usize = 8;

/// How long any single wait of the test may take before it fails.
const BOUND: Duration = Duration::from_secs(60);

/// Once armed, holds every write of the stores it is installed in (here:
/// only their backups write) until the gate opens, and reports each one
/// held.
struct Gate {
    armed: AtomicBool,
    held: UnboundedSender<()>,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

impl IoFaults for Gate {
    fn on_write(&self, target: IoTarget, _offset: u64, _data: &[u8]) -> io::Result<()> {
        if target != IoTarget::Database || !self.armed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let mut open = self.open.lock().unwrap();
        if !*open {
            let _ = self.held.send(());
            // Bounded: a failed test opens no gate, and must still end.
            open = self
                .opened
                .wait_timeout_while(open, BOUND, |open| !*open)
                .unwrap()
                .0;
        }
        drop(open);
        Ok(())
    }
}

async fn bounded<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(BOUND, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {BOUND:?}"))
}

/// Runs `f`, reporting on `polled` once it was polled the first time (a
/// store operation queues its work on that first poll).
async fn report_first_poll<F: Future>(f: F, polled: UnboundedSender<()>) -> F::Output {
    let mut f = pin!(f);
    let mut polled = Some(polled);
    std::future::poll_fn(|cx| {
        let out = f.as_mut().poll(cx);
        if let Some(tx) = polled.take() {
            let _ = tx.send(());
        }
        out
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_write_commits_while_backups_hold_every_long_worker() {
    let dir = tempfile::tempdir().unwrap();
    let (held_tx, mut held) = unbounded_channel();
    let gate = Arc::new(Gate {
        armed: AtomicBool::new(false),
        held: held_tx,
        open: Mutex::new(false),
        opened: Condvar::new(),
    });
    let mut sources = Vec::new();
    for i in 0..BACKUPS {
        let config = RedbStoreConfig::default().with_io_faults(gate.clone());
        let s = bounded(
            "open",
            RedbStore::with_config(dir.path().join(format!("src{i}.redb")), config),
        )
        .await
        .unwrap();
        bounded("write", s.put_session("a@c.us.0", &[i as u8; 1000]))
            .await
            .unwrap();
        // Everything in the file: the source itself writes nothing more.
        bounded("checkpoint", s.checkpoint()).await.unwrap();
        sources.push(s);
    }
    let full = RedbStoreConfig::default().with_synchronous(Synchronous::Full);
    let writer = bounded(
        "open",
        RedbStore::with_config(dir.path().join("writer.redb"), full),
    )
    .await
    .unwrap();

    gate.armed.store(true, Ordering::SeqCst);
    let (polled_tx, mut polled) = unbounded_channel();
    let backups: Vec<_> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (s, target) = (s.clone(), dir.path().join(format!("backup{i}.redb")));
            tokio::spawn(report_first_poll(
                async move { s.backup_to(&target).await },
                polled_tx.clone(),
            ))
        })
        .collect();
    // Every backup queued, and at least four (the fewest workers a pool
    // has) held inside their copy: every long worker is taken, and with one
    // shared pool every worker and the queue ahead of the write would be.
    for _ in 0..BACKUPS {
        bounded("a backup queued", polled.recv()).await.unwrap();
    }
    for _ in 0..4 {
        bounded("a backup held", held.recv()).await.unwrap();
    }

    for i in 0..10u8 {
        bounded(
            "a Full write while the backups are held",
            writer.put_session(&format!("{i}@c.us.0"), &[i; 100]),
        )
        .await
        .unwrap();
    }
    assert!(
        backups.iter().all(|b| !b.is_finished()),
        "the backups were still held"
    );

    gate.open();
    for (i, b) in backups.into_iter().enumerate() {
        bounded("a backup", b).await.unwrap().unwrap();
        let copy = bounded(
            "open a backup",
            RedbStore::new(dir.path().join(format!("backup{i}.redb"))),
        )
        .await
        .unwrap();
        let got = bounded("read", copy.get_session("a@c.us.0")).await.unwrap();
        assert_eq!(got.as_deref(), Some(&[i as u8; 1000][..]));
        bounded("close", copy.close()).await.unwrap();
    }
    for s in sources {
        bounded("close", s.close()).await.unwrap();
    }
    bounded("close", writer.close()).await.unwrap();
}
