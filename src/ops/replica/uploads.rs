//! The runtime every replicated file of the process uploads on: one
//! worker thread for all of them, however many files replicate, and a
//! pool for blocking work (a directory target's file I/O, DNS lookups)
//! whose threads leave after a second idle.
//!
//! Each file's uploader holds a reference; the runtime shuts down when the
//! last one goes (its uploads finished), and the next `replicate_to` starts
//! another: a process that no longer replicates holds no thread for it.
//! It is a runtime of its own, never the application's: uploads must go on
//! while the application's tasks are busy or starved, and connections
//! belong to the runtime that opened them.
//!
//! The files that replicate to one S3 bucket with the same settings share
//! one client through it: one connection pool and one set of credentials
//! for the fleet, rather than a pool (and its idle connections, sockets
//! and TLS sessions) per file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use object_store::ObjectStore;

use super::target::ReplicaTarget;
use crate::error::FileOpError;

/// Threads that may run blocking uploads at once (a directory target's
/// writes and their fsyncs), for every file of the process. Concurrent
/// fsyncs share the file system's journal commits: with 8, a fleet of 200
/// files replicating to directories wrote 4,000 times a second, against
/// 6,400–8,600 with a thread per file; with 64, as many as with a thread
/// per file (compat/benches/README.md, "Replication").
const BLOCKING_THREADS: usize = 64;

/// The shared runtime; dropping the last reference shuts it down without
/// waiting (it may be dropped by one of its own tasks).
pub(super) struct Uploads {
    runtime: Option<tokio::runtime::Runtime>,
    /// The S3 clients of this runtime, by [`ReplicaTarget::client_key`]:
    /// their connections belong to it, so they go with it.
    clients: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl Uploads {
    /// The process's upload runtime, started if none runs.
    pub fn shared() -> std::io::Result<Arc<Uploads>> {
        static SHARED: Mutex<Weak<Uploads>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = slot.upgrade() {
            return Ok(running);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(BLOCKING_THREADS)
            .thread_keep_alive(Duration::from_secs(1))
            .thread_name("wa-redb-upload")
            .enable_all()
            .build()?;
        let started = Arc::new(Uploads {
            runtime: Some(runtime),
            clients: Mutex::default(),
        });
        *slot = Arc::downgrade(&started);
        Ok(started)
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime.as_ref().expect("taken only in drop").handle()
    }

    /// `target` with the client its uploads use on this runtime: for S3,
    /// the one every file uploading to that bucket with the same settings
    /// shares; for a directory, a store of its own.
    pub fn target_for(&self, target: &ReplicaTarget) -> Result<ReplicaTarget, FileOpError> {
        let Some(key) = target.client_key() else {
            return target.fresh();
        };
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = clients.get(&key) {
            let mut shared = target.clone();
            shared.store = store.clone();
            return Ok(shared);
        }
        let fresh = target.fresh()?;
        clients.insert(key, fresh.store.clone());
        Ok(fresh)
    }
}

impl Drop for Uploads {
    /// The last reference may go in any context: inside the application's
    /// runtime (a replicated store dropped in a task), or in a task of this
    /// runtime (its last upload done), where waiting for it would never end.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn files_share_one_runtime_and_the_last_one_shuts_it_down_from_its_own_task() {
        let a = Uploads::shared().unwrap();
        let b = Uploads::shared().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        drop(b);
        // The last reference (unless another test holds one), dropped by a
        // task of the runtime itself: shut down without a panic (a panic
        // drops `tx` unsent), and the next caller gets a runtime that runs.
        let (tx, rx) = mpsc::channel();
        let handle = a.handle().clone();
        handle.spawn(async move {
            drop(a);
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(60)).unwrap();
        let c = Uploads::shared().unwrap();
        let (tx, rx) = mpsc::channel();
        c.handle().spawn(async move {
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(60)).unwrap();
    }

    fn s3(url: &str, key_id: &str) -> ReplicaTarget {
        let options = [
            ("aws_endpoint", "http://127.0.0.1:9"),
            ("aws_allow_http", "true"),
            ("aws_region", "us-east-1"),
            ("aws_access_key_id", key_id),
            ("aws_secret_access_key", "secret"),
        ];
        ReplicaTarget::with_options(url, options).unwrap()
    }

    #[test]
    fn files_uploading_to_one_bucket_with_the_same_settings_share_its_client() {
        let uploads = Uploads::shared().unwrap();
        let a = uploads.target_for(&s3("s3://bucket/a", "key")).unwrap();
        let b = uploads.target_for(&s3("s3://bucket/b", "key")).unwrap();
        assert!(Arc::ptr_eq(&a.store, &b.store));
        // Each keeps its own prefix and name.
        assert_eq!(a.object("x").as_ref(), "a/x");
        assert_eq!(b.object("x").as_ref(), "b/x");
        assert_eq!(b.shown, "s3://bucket/b");
        // Another bucket, other credentials: a client of its own.
        let c = uploads.target_for(&s3("s3://other/a", "key")).unwrap();
        let d = uploads
            .target_for(&s3("s3://bucket/a", "another key"))
            .unwrap();
        assert!(!Arc::ptr_eq(&a.store, &c.store));
        assert!(!Arc::ptr_eq(&a.store, &d.store));
        // Directories hold no connections: a store each.
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let target = ReplicaTarget::new(&url).unwrap();
        let (e, f) = (
            uploads.target_for(&target).unwrap(),
            uploads.target_for(&target).unwrap(),
        );
        assert!(!Arc::ptr_eq(&e.store, &f.store));
    }
}
