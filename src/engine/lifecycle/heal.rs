//! A halted engine reopening its file in place.
//!
//! A failure that nothing more can be promised durable after (an I/O error
//! or a full disk at a checkpoint, a failed journal fsync, damage redb met
//! while committing) halts writes. redb latches such a failure and refuses
//! every later I/O of that `Database`: only a fresh open clears it. So the
//! engine reopens its file itself, keeping its identity — every handle of
//! every account goes on working, none has to be dropped:
//!
//! - after a failure of the disk (I/O, a full disk), before the next write
//!   through any handle: at once after the halt, then at most once per
//!   backoff period (1 s, doubling up to a minute) while reopening keeps
//!   failing (the disk still full, the device gone) — never by itself
//!   after damage, whose reopen would run redb's repair over it;
//! - at the next open of the path in this process, which fails with the
//!   reopen's error if the file still cannot be opened;
//! - when asked ([`crate::RedbStore::reopen_if_halted`]), which says how it went.
//!
//! Reopening takes the lane for itself (no batch runs meanwhile), has the
//! writer let go of the database and the journal, and opens the file as
//! after a crash: recovery replays every journal record the file lacks —
//! everything acknowledged — and the writer resumes on the new database.
//! Until it is in place, reads fail with [`ReadError::Halted`](crate::error::ReadError::Halted); a reopen that
//! fails leaves the engine halted, with its first cause.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::Database;

use crate::engine::format::{Keying, Opened, engine_builder, open_with};
use crate::engine::journal::journal_path;
use crate::engine::recovery::{self, JournalFile};
use crate::engine::writer::Writer;
use crate::engine::{Engine, contain_panic, schema};
use crate::error::OpenError;

type Result<T, E = OpenError> = std::result::Result<T, E>;

/// The wait before the second attempt to reopen; it doubles after each
/// failed one, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long a reopen waits for reads still in flight on the old database
/// to let go of the file (they hold redb's lock on it until they end).
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// When a halted engine may next try to reopen by itself.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    /// The earliest next attempt and the wait that led to it; `None`
    /// until an attempt failed.
    next: Mutex<Option<(Instant, Duration)>>,
    /// A write's reopen is under way: other writes do not start another
    /// (they queue behind its exclusive hold of the lane).
    in_flight: std::sync::atomic::AtomicBool,
}

impl Backoff {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Duration)>> {
        self.next.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn due(&self) -> bool {
        self.slot().is_none_or(|(at, _)| Instant::now() >= at)
    }

    fn failed(&self) {
        let mut slot = self.slot();
        let wait = match *slot {
            None => FIRST_BACKOFF,
            Some((_, wait)) => wait.saturating_mul(2).min(MAX_BACKOFF),
        };
        let now = Instant::now();
        *slot = Some((now.checked_add(wait).unwrap_or(now), wait));
    }

    fn succeeded(&self) {
        *self.slot() = None;
    }
}

impl Engine {
    /// Whether writes are halted: one atomic load.
    pub fn stopped(&self) -> bool {
        self.status
            .stopped
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether a write should start a reopen of the halted file before it
    /// runs (see [`Engine::heal_for_write`]): only after a failure of the
    /// disk, which may pass. After damage (`Corrupted`: a page redb could
    /// not read or commit) the file stays as it is until someone asks —
    /// the next open of the path, `reopen_if_halted` — or checks it: an
    /// automatic reopen would run redb's repair over the damaged pages.
    pub fn heal_due(&self) -> bool {
        self.stopped()
            && self.look.is_none()
            && self.heal.due()
            && self.halted().is_some_and(|cause| cause.is_io())
    }

    /// [`Engine::heal`] for a write that found the store halted, unless
    /// another write's reopen is under way. Its outcome is logged. Blocking.
    pub fn heal_for_write(&self) {
        use std::sync::atomic::Ordering;
        if self.heal.in_flight.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.heal();
        self.heal.in_flight.store(false, Ordering::Release);
    }

    /// Reopens the file in place if writes are halted (see the module
    /// docs): `Ok(true)` if it did, `Ok(false)` if nothing was halted, the
    /// reopen's error if the file still cannot be opened. Blocking.
    pub fn heal(&self) -> Result<bool> {
        if self.look.is_some() || !self.stopped() {
            return Ok(false);
        }
        crate::telemetry::file_span!("wa_redb.heal", self.path);
        let outcome = self
            .lane
            .exclusive(|writer, _| self.reopen_in_place(writer));
        match &outcome {
            Ok(true) => self.heal.succeeded(),
            Ok(false) => {}
            Err(e) => {
                self.heal.failed();
                log::warn!(
                    "{}: reopening after the halt failed: {e}",
                    self.path.display()
                );
            }
        }
        outcome
    }

    fn reopen_in_place(&self, writer: &mut Writer) -> Result<bool> {
        let Some(cause) = writer.halted.clone() else {
            return Ok(false);
        };
        writer.let_go();
        drop(self.db_write().take());
        let (db, lsn, replayed) = contain_panic(&self.path, || self.reopen_file())?;
        let db = Arc::new(db);
        writer.revive(db.clone(), lsn);
        *self.db_write() = Some(db);
        log::warn!(
            "{}: reopened after the failure that halted writes ({cause}); \
             {replayed} journal records replayed",
            self.path.display()
        );
        Ok(true)
    }

    fn db_write(&self) -> std::sync::RwLockWriteGuard<'_, Option<Arc<Database>>> {
        self.db.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens the file as after a crash (its journal replayed); returns it
    /// with the last sequence number it holds and the records replayed.
    fn reopen_file(&self) -> Result<(Database, u64, u64)> {
        let config = self.config();
        let protection = config.page_protection;
        let builder = engine_builder(&self.path, self.cache_bytes, protection, false);
        let opened = crate::engine::registry::while_open_elsewhere(RELEASE_WAIT, || {
            let keying = match &self.cipher {
                Some(cipher) => Keying::Cipher(cipher),
                None => Keying::of(&config),
            };
            let io = self.io.clone();
            let faults = config.io_faults.clone();
            let cache = self.cache_bytes;
            open_with(&builder, cache, &self.path, false, io, faults, keying)
        })?;
        let Opened { db, .. } = opened;
        let mut meta = schema::read_meta(&db, &self.path)?;
        let report = recovery::recover(
            self.catalog,
            &db,
            &self.path,
            &journal_path(&self.path),
            &mut meta,
            JournalFile::Tidy,
            self.cipher.as_deref(),
        )?;
        Ok((db, meta.checkpoint_lsn, report.records_replayed))
    }
}
