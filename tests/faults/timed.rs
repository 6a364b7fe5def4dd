//! What time does to acknowledged writes. While writes keep coming,
//! `Normal` makes them durable within `checkpoint_interval` by one fsync of
//! the journal (a journal sync) and leaves the file alone; once no write
//! came for an interval, a checkpoint puts them in the file and rewinds the
//! journal, in every mode. A journal sync that fails halts the writer, as a
//! failed checkpoint does, and loses nothing acknowledged.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wacore::store::traits::SignalStore;
use whatsapp_rust_redb_storage::fault::{IoFaults, IoTarget};
use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig, Synchronous};

use crate::layer::{Faults, config, journal_of};
use crate::{EIO, assert_still_failing, bounded, reopen_and_verify};

/// Long enough that a tight loop of writes never leaves the file idle for
/// one, short enough for a test.
const INTERVAL: Duration = Duration::from_millis(500);

/// Counts fsyncs per file.
#[derive(Default)]
struct Syncs {
    journal: AtomicU64,
    database: AtomicU64,
}

impl IoFaults for Syncs {
    fn on_sync(&self, target: IoTarget) -> io::Result<()> {
        match target {
            IoTarget::Journal => self.journal.fetch_add(1, Ordering::SeqCst),
            IoTarget::Database => self.database.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
        Ok(())
    }
}

async fn pending(s: &RedbStore) -> u64 {
    s.info().await.unwrap().pending_journal_records
}

/// Waits (bounded by the test's limit) until a checkpoint has covered every
/// write: the file is idle.
async fn until_checkpointed(s: &RedbStore) {
    while pending(s).await > 0 {
        tokio::time::sleep(INTERVAL / 10).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_syncs_the_journal_while_writes_keep_coming_and_checkpoints_once_idle() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let syncs = Arc::new(Syncs::default());
        let config = RedbStoreConfig::default()
            .with_checkpoint_interval(INTERVAL)
            .with_io_faults(syncs.clone());
        let s = RedbStore::with_config(&path, config).await.unwrap();
        let file_syncs = syncs.database.load(Ordering::SeqCst);
        let mut writes = 0u64;
        while syncs.journal.load(Ordering::SeqCst) < 3 {
            s.put_session(&format!("a{}", writes % 64), &writes.to_le_bytes())
                .await
                .unwrap();
            writes += 1;
        }
        // Three intervals of writes, made durable by journal syncs: the
        // file was not written back, every record is still in the journal.
        assert_eq!(pending(&s).await, writes, "a checkpoint ran mid-stream");
        assert_eq!(syncs.database.load(Ordering::SeqCst), file_syncs);
        eprintln!("{writes} writes over three journal syncs, no checkpoint");

        // Idle now: a checkpoint follows within about an interval.
        until_checkpointed(&s).await;
        assert!(syncs.database.load(Ordering::SeqCst) > file_syncs);
        s.close().await.unwrap();
        let s = RedbStore::new(&path).await.unwrap();
        for k in writes.saturating_sub(64)..writes {
            let v = s.get_session(&format!("a{}", k % 64)).await.unwrap();
            assert_eq!(v.as_deref(), Some(&k.to_le_bytes()[..]));
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_checkpoints_a_file_that_went_idle() {
    bounded(async {
        for mode in [Synchronous::Off, Synchronous::Normal, Synchronous::Full] {
            let dir = tempfile::tempdir().unwrap();
            let config = RedbStoreConfig::default()
                .with_synchronous(mode)
                .with_checkpoint_interval(INTERVAL);
            let s = RedbStore::with_config(dir.path().join("s.redb"), config)
                .await
                .unwrap();
            for i in 0..20u8 {
                s.put_session(&format!("a{i}"), &[i]).await.unwrap();
            }
            assert!(pending(&s).await > 0, "{mode:?}");
            until_checkpointed(&s).await;
            s.close().await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_sync_that_fails_halts_and_loses_nothing_acknowledged() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let faults = Faults::new(&path);
        let config = config(Synchronous::Normal, &faults).with_checkpoint_interval(INTERVAL);
        let s = RedbStore::with_config(&path, config).await.unwrap();
        crate::dataset::populate(&s, crate::ROWS).await;
        faults.fail_syncs(IoTarget::Journal, EIO);
        // Writes keep coming until the timed journal sync fails: from then
        // on every write is refused.
        let mut acked = Vec::new();
        let e = loop {
            let key = format!("k{}", acked.len());
            match s.put_session(&key, key.as_bytes()).await {
                Ok(()) => acked.push((key.clone(), key.into_bytes())),
                Err(e) => break e,
            }
        };
        assert!(!acked.is_empty());
        assert_still_failing(
            &e,
            &path,
            &journal_of(&path),
            EIO,
            "write after the failed sync",
        );
        faults.heal();
        let _ = s.close().await;
        reopen_and_verify(&path, &acked, &[]).await;
    })
    .await;
}
