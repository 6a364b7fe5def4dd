//! A halt heals: after a failure that halts writes, once its cause is gone
//! the store reopens its file in place — before the next write, at the next
//! open of the path, or when asked — without the process restarting and
//! without any handle being dropped; nothing acknowledged is lost.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wacore::store::traits::SignalStore;
use whatsapp_rust_redb_storage::fault::{IoFaults, IoTarget};
use whatsapp_rust_redb_storage::{Error, RedbStore, RedbStoreConfig, Synchronous};

use crate::dataset::chain;
use crate::layer::{Faults, config};
use crate::{
    EIO, ENOSPC, assert_halted, assert_halting, bounded, explain, os_text, reopen_and_verify,
    setup, unflushed_writes,
};

/// How the checkpoint fails: a full disk, or a failing fsync.
#[derive(Debug, Clone, Copy)]
enum Cause {
    DiskFull,
    SyncFails,
}

impl Cause {
    fn arm(self, f: &Faults) {
        match self {
            Cause::DiskFull => f.fail_writes(IoTarget::Database, ENOSPC, 0),
            Cause::SyncFails => f.fail_syncs(IoTarget::Database, EIO),
        }
    }

    fn text(self) -> String {
        match self {
            Cause::DiskFull => os_text(ENOSPC),
            Cause::SyncFails => os_text(EIO),
        }
    }
}

const CAUSES: [Cause; 2] = [Cause::DiskFull, Cause::SyncFails];

/// Halts `s` by a checkpoint failing with `cause`; returns what was
/// acknowledged (in the journal only) before.
async fn halt(
    s: &RedbStore,
    faults: &Faults,
    path: &std::path::Path,
    cause: Cause,
) -> Vec<(String, Vec<u8>)> {
    s.checkpoint().await.unwrap();
    let present = unflushed_writes(s, 4, 64 << 10).await;
    cause.arm(faults);
    let e = s.checkpoint().await.unwrap_err();
    assert_halting(&e, path, &cause.text());
    present
}

/// Space is freed: the next write, through any handle, reopens the file by
/// itself and succeeds; every handle of every account writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_write_after_the_cause_is_gone_reopens_the_file() {
    bounded(async {
        for cause in CAUSES {
            let dir = tempfile::tempdir().unwrap();
            let (path, faults, s) = setup(dir.path(), Synchronous::Normal).await;
            let other_account = s.for_device(2);
            let present = halt(&s, &faults, &path, cause).await;
            faults.heal();
            s.put_session("after", b"healed").await.unwrap_or_else(|e| {
                panic!(
                    "{cause:?}: the write after the cause is gone: {}",
                    chain(&e)
                )
            });
            other_account.put_session("other", b"too").await.unwrap();
            assert_eq!(
                s.get_session("after").await.unwrap().as_deref(),
                Some(&b"healed"[..])
            );
            for (key, value) in &present {
                let got = s.get_session(key).await.unwrap();
                assert_eq!(got.as_deref(), Some(value.as_slice()), "{cause:?}: {key}");
            }
            // Checkpoints and the close work again.
            s.checkpoint().await.unwrap();
            drop(other_account);
            s.close().await.unwrap();
            let mut present = present;
            present.push(("after".into(), b"healed".to_vec()));
            reopen_and_verify(&path, &present, &[]).await;
        }
    })
    .await;
}

/// While the cause persists, a reopen fails and says why, writes are
/// refused with the first cause, and nothing is lost; once it is gone,
/// `reopen_if_halted` reopens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopen_while_the_cause_persists_fails_clearly_and_loses_nothing() {
    bounded(async {
        for cause in CAUSES {
            let dir = tempfile::tempdir().unwrap();
            let (path, faults, s) = setup(dir.path(), Synchronous::Normal).await;
            let present = halt(&s, &faults, &path, cause).await;
            let e = s.reopen_if_halted().await.unwrap_err();
            let (_, text) = explain(&e);
            assert!(text.contains(&path.display().to_string()), "{text}");
            // The failed reopen left the journal whole, where it was: not
            // set aside as damaged (its records are acknowledged writes).
            assert!(crate::layer::journal_of(&path).exists(), "{cause:?}");
            let set_aside = std::fs::read_dir(dir.path())
                .unwrap()
                .filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().contains("damaged"));
            assert!(!set_aside, "{cause:?}: the journal was set aside");
            // The failed reopen set a backoff: this write does not try again,
            // and is refused with the failure that halted the store.
            let e = s.put_session("refused", b"x").await.unwrap_err();
            assert_halted(&e, &path, &format!("{cause:?}: write while halted"));
            faults.heal();
            assert!(s.reopen_if_halted().await.unwrap(), "{cause:?}: reopened");
            assert!(!s.reopen_if_halted().await.unwrap(), "nothing left to heal");
            s.put_session("after", b"healed").await.unwrap();
            s.close().await.unwrap();
            let mut present = present;
            present.push(("after".into(), b"healed".to_vec()));
            reopen_and_verify(&path, &present, &["refused".to_string()]).await;
        }
    })
    .await;
}

/// The next open of the path in this process gets a store that writes,
/// and the old handles write again too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_open_of_the_path_reopens_a_halted_file() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        let (path, faults, s) = setup(dir.path(), Synchronous::Normal).await;
        let present = halt(&s, &faults, &path, Cause::DiskFull).await;
        faults.heal();
        let fresh = RedbStore::with_config(&path, config(Synchronous::Normal, &faults))
            .await
            .unwrap();
        fresh.put_session("fresh", b"1").await.unwrap();
        s.put_session("old handle", b"2").await.unwrap();
        drop(fresh);
        s.close().await.unwrap();
        let mut present = present;
        present.push(("fresh".into(), b"1".to_vec()));
        present.push(("old handle".into(), b"2".to_vec()));
        reopen_and_verify(&path, &present, &[]).await;
    })
    .await;
}

/// Panics in redb's commit, once (as redb does on damage it meets late).
#[derive(Default)]
struct PanicInCommit {
    armed: AtomicBool,
}

impl IoFaults for PanicInCommit {
    fn before_commit(&self) -> io::Result<()> {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("injected panic inside the commit");
        }
        Ok(())
    }
}

/// 16 writes of `prefix{i}` started at once, each on a task of its own.
fn concurrent_writes(
    s: &RedbStore,
    prefix: &str,
) -> Vec<tokio::task::JoinHandle<Result<(), wacore::store::error::StoreError>>> {
    (0..16)
        .map(|i| {
            let (s, name) = (s.clone(), format!("{prefix}{i}"));
            tokio::spawn(async move { s.put_session(&name, b"v").await })
        })
        .collect()
}

/// A panic inside the commit fails its batch with an error naming the file
/// (never a hang, never a wedged lane). It stands for damage, so writes are
/// refused (`Halted`) rather than the file reopened by itself; asked to,
/// the store reopens it, writes succeed, and everything acknowledged is
/// there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_the_commit_halts_then_heals() {
    bounded(async {
        for mode in [Synchronous::Normal, Synchronous::Full] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.redb");
            let faults = Arc::new(PanicInCommit::default());
            let config = RedbStoreConfig::default()
                .with_synchronous(mode)
                .with_io_faults(faults.clone());
            let s = RedbStore::with_config(&path, config).await.unwrap();
            s.put_session("before", b"acknowledged").await.unwrap();
            faults.armed.store(true, Ordering::SeqCst);
            let e = s.put_session("panicked", b"x").await.unwrap_err();
            let (inner, text) = explain(&e);
            assert!(
                matches!(inner, Error::Corrupted { .. } | Error::Halted { .. }),
                "{mode:?}: {text}"
            );
            assert!(text.contains(&path.display().to_string()), "{text}");
            // Concurrent writers after the panic: each refused at once.
            for w in concurrent_writes(&s, "r") {
                let e = w.await.unwrap().unwrap_err();
                assert_halted(&e, &path, &format!("{mode:?}: a write after the panic"));
            }
            assert!(s.reopen_if_halted().await.unwrap(), "{mode:?}: reopened");
            for w in concurrent_writes(&s, "w") {
                w.await.unwrap().unwrap();
            }
            assert_eq!(
                s.get_session("before").await.unwrap().as_deref(),
                Some(&b"acknowledged"[..])
            );
            assert_eq!(s.get_session("panicked").await.unwrap(), None);
            s.close().await.unwrap();
        }
    })
    .await;
}
