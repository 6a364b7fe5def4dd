//! Replicated durability: every journal record is also stored in a replica
//! (an object store, feature `replica`) before its callers get `Ok`.
//!
//! The writer hands each committed batch's journal record, exactly as it
//! was written (checksummed, sealed when the store is encrypted, bound to
//! the file id), to the shipper, and hands it the batch's jobs instead of
//! answering them. The shipper uploads what has gathered since its last
//! upload as one object (group commit: every batch of every account of
//! the file that arrived meanwhile shares it), in order, and answers the
//! jobs of every batch that object completes. The lane does not wait: the
//! next batches commit while an upload is under way, so the writer's
//! throughput does not fall to one batch per round trip.
//!
//! Bounds, so that a network that is down never hangs a caller:
//! - a job whose record is not stored within `timeout` gets
//!   [`WriteError::NotReplicated`] (its batch is in the local store, and
//!   reaches the replica once the network is back: records are kept, in
//!   order, until stored);
//! - a batch is refused before it changes anything while more than
//!   `max_backlog` bytes of records wait for the replica;
//! - a replica that holds a different record under the same number (the
//!   local store lost writes the replica has, or another host writes it)
//!   stops replication for good: every later write is refused, saying so.
//!
//! In asynchronous mode (`ShipBounds::max_lag`), a job is answered at once
//! while no record has waited for the replica longer than the bound, and
//! waits for its own record otherwise: the replica trails the answered
//! writes by about the bound at most while it answers.
//!
//! Until the replica holds a base (a snapshot the records apply to), the
//! gate is closed: records are uploaded, but no job is answered `Ok` for
//! them, since a restore could not use them yet.
//!
//! The shipper has no thread: it is driven by events (a record, a job, an
//! upload's outcome, a wake-up it asked the sink for), and the sink runs
//! the uploads and the wake-ups (the replica's: on one runtime for every
//! replicated file of the process), so a fleet of replicated files holds
//! no thread per file, busy or idle. It owns nothing of the file: a store
//! closed or dropped while records are still waiting lets the uploads go
//! on (for at most `timeout` once they make no more progress) without
//! holding up the close.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::engine::writer::Job;
use crate::error::WriteError;

/// Where a replicated store's records go (the replica target implements
/// it). Called from whichever thread an event came on (a writer, an
/// upload's outcome, a wake-up): one upload at a time, in order; the
/// calls return at once, and their answers come later.
pub(crate) trait RecordSink: std::any::Any + Send + Sync {
    /// The target, as errors show it (a URL without credentials).
    fn target(&self) -> String;
    /// Starts storing `object` (a journal header followed by records
    /// `first..=last`) durably, create-only, under a name that says
    /// `first`, and calls `done` once with the outcome: by `deadline` at
    /// the latest (a [`SinkError::Transient`] then), from another thread or
    /// task, never inside this call. Storing the same object again must
    /// succeed (a retry after an answer that was lost).
    fn put(
        self: Arc<Self>,
        first: u64,
        last: u64,
        object: Arc<[u8]>,
        deadline: Instant,
        done: UploadDone,
    );
    /// Calls `wake` once, at `at` or soon after, from another thread or
    /// task, never inside this call.
    fn wake_at(&self, at: Instant, wake: Box<dyn FnOnce() + Send>);
}

/// What a sink calls, once, with an upload's outcome.
pub(crate) type UploadDone = Box<dyn FnOnce(Result<(), SinkError>) + Send>;

/// Why a sink did not store an object.
#[derive(Debug, Clone)]
pub(crate) enum SinkError {
    /// Worth retrying: the network, a timeout, the server's 5xx.
    Transient(String),
    /// Never worth retrying: the replica holds something else under that
    /// name, or refuses this store.
    Refused(String),
}

/// The bounds of a shipper (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShipBounds {
    pub timeout: Duration,
    pub max_backlog: usize,
    /// Asynchronous mode: a job is answered at once while no record has
    /// waited for the replica longer than this (and waits for its own
    /// record otherwise); `None`: synchronous, every job waits.
    pub max_lag: Option<Duration>,
}

/// What the replica holds of this store, for status and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ShipStatus {
    /// Every record up to this one is stored in the replica.
    pub stored_lsn: u64,
    /// Bytes of records not yet stored.
    pub backlog: usize,
    /// The last upload's failure, if it has not succeeded since.
    pub last_error: Option<String>,
    /// Replication stopped for good, and why.
    pub refused: Option<String>,
    /// How long the oldest record not yet stored has waited.
    pub lag: Duration,
}

type Answer = (Box<dyn Job>, Option<WriteError>);

/// A batch's jobs, answered once record `lsn` is stored.
struct Waiter {
    lsn: u64,
    deadline: Instant,
    jobs: Vec<Answer>,
}

/// One object: the header and records `first..=last`. Kept as it is
/// until stored, so that a retry sends the same bytes under the same name.
struct Upload {
    first: u64,
    last: u64,
    object: Arc<[u8]>,
}

#[derive(Default)]
struct State {
    /// Records not yet in an upload, in order.
    pending: Vec<u8>,
    pending_first: u64,
    pending_last: u64,
    /// When the first record still pending, and the first of the upload
    /// under way, were queued (the replica's lag).
    pending_since: Option<Instant>,
    inflight_since: Option<Instant>,
    /// The upload under way, or failed and waiting for its retry.
    upload: Option<Upload>,
    /// The sink has the upload and has not answered yet.
    sent: bool,
    /// A failed upload is sent again from then on.
    retry_at: Option<Instant>,
    /// Failed attempts of the upload in a row.
    attempts: u32,
    /// Once closed, how long a failing upload may still be retried.
    give_up: Option<Instant>,
    /// The earliest wake-up asked of the sink that has not come yet.
    timer: Option<Instant>,
    /// Every record up to here is stored.
    stored: u64,
    /// Whether `Ok` may be given for stored records (the base is in place).
    gate_open: bool,
    waiters: VecDeque<Waiter>,
    last_error: Option<String>,
    refused: Option<String>,
    /// No more records come: upload what is left, then stop.
    closing: bool,
}

struct Shared {
    path: PathBuf,
    sink: Arc<dyn RecordSink>,
    /// The journal header every uploaded object starts with, so that the
    /// objects after a snapshot, concatenated, are a journal.
    header: Vec<u8>,
    bounds: ShipBounds,
    state: Mutex<State>,
    /// Wakes whoever waits for uploads ([`ShipWatch::drain`]).
    wake: Condvar,
}

/// The writer's end of a shipper; dropping it (the store closed) lets the
/// uploads finish.
pub(crate) struct Shipper(Arc<Shared>);

/// Another handle on the same shipper, for status and draining.
#[derive(Clone)]
pub(crate) struct ShipWatch(Arc<Shared>);

impl Shipper {
    /// Starts shipping the records after `lsn`: every record up to it is
    /// taken to be in the replica's base already.
    pub fn start(
        path: PathBuf,
        sink: Arc<dyn RecordSink>,
        header: Vec<u8>,
        bounds: ShipBounds,
        lsn: u64,
    ) -> (Shipper, ShipWatch) {
        let shared = Arc::new(Shared {
            path,
            sink,
            header,
            bounds,
            state: Mutex::new(State {
                stored: lsn,
                ..State::default()
            }),
            wake: Condvar::new(),
        });
        (Shipper(shared.clone()), ShipWatch(shared))
    }

    /// Refuses a batch before it changes anything, when replication
    /// stopped or too much waits for the replica.
    pub fn admit(&self) -> Result<(), WriteError> {
        let s = self.0.state();
        if let Some(why) = &s.refused {
            return Err(self.0.error(why.clone()));
        }
        let backlog = s.backlog();
        if backlog > self.0.bounds.max_backlog {
            let why = format!(
                "{} KiB of writes wait for the replica (the bound is {} KiB){}",
                backlog >> 10,
                self.0.bounds.max_backlog >> 10,
                s.last_error
                    .as_ref()
                    .map(|e| format!("; the last upload failed: {e}"))
                    .unwrap_or_default()
            );
            return Err(self.0.error(why));
        }
        Ok(())
    }

    /// Queues record `lsn` (its exact journal bytes) for the replica.
    pub fn push(&self, lsn: u64, record: &[u8]) {
        let mut s = self.0.state();
        if s.pending.is_empty() {
            s.pending_first = lsn;
            s.pending_since = Some(Instant::now());
        }
        s.pending_last = lsn;
        s.pending.extend_from_slice(record);
        drop(s);
        self.0.pump();
    }

    /// Answers `jobs` once record `lsn` is stored (at once if it is, or
    /// in asynchronous mode while the replica's lag is within its bound),
    /// or with an error once `timeout` has passed.
    pub fn defer(&self, lsn: u64, jobs: Vec<Answer>) {
        let mut s = self.0.state();
        let lagging = |max: Duration| s.lag().is_some_and(|lag| lag >= max);
        let within_lag = self.0.bounds.max_lag.is_some_and(|max| !lagging(max));
        if s.gate_open && s.refused.is_none() && (s.stored >= lsn || within_lag) {
            drop(s);
            finish(jobs, None);
            return;
        }
        if let Some(why) = s.refused.clone() {
            drop(s);
            finish(jobs, Some(self.0.error(why)));
            return;
        }
        let deadline = Instant::now() + self.0.bounds.timeout;
        s.waiters.push_back(Waiter {
            lsn,
            deadline,
            jobs,
        });
        drop(s);
        self.0.pump();
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.0.state().closing = true;
        self.0.pump();
    }
}

impl State {
    /// How long the oldest record not yet stored has waited.
    fn lag(&self) -> Option<Duration> {
        self.inflight_since
            .or(self.pending_since)
            .map(|t| t.elapsed())
    }

    /// Nothing more will be uploaded: replication stopped, or the store
    /// closed with every record stored.
    fn done(&self) -> bool {
        self.refused.is_some() || (self.closing && self.upload.is_none() && self.pending.is_empty())
    }

    /// Bytes of records not yet stored.
    fn backlog(&self) -> usize {
        self.pending.len() + self.upload.as_ref().map_or(0, |u| u.object.len())
    }
}

impl ShipWatch {
    /// Where the records go (for the layer above, which made it).
    pub fn sink(&self) -> Arc<dyn RecordSink> {
        self.0.sink.clone()
    }

    /// The base is in the replica: stored records may be acknowledged.
    pub fn open_gate(&self) {
        self.0.state().gate_open = true;
        self.0.pump();
    }

    /// Stops replication for good (the base could not be stored): every
    /// job waiting and every later batch gets `why`.
    pub fn refuse(&self, why: String) {
        self.0.state().refused = Some(why);
        self.0.pump();
    }

    pub fn status(&self) -> ShipStatus {
        let s = self.0.state();
        ShipStatus {
            stored_lsn: s.stored,
            backlog: s.backlog(),
            last_error: s.last_error.clone(),
            refused: s.refused.clone(),
            lag: s.lag().unwrap_or_default(),
        }
    }

    /// Waits until every record up to `lsn` is stored, for at most the
    /// shipper's timeout. Blocking.
    pub fn drain(&self, lsn: u64) -> Result<(), WriteError> {
        let deadline = Instant::now() + self.0.bounds.timeout;
        let mut s = self.0.state();
        loop {
            if let Some(why) = &s.refused {
                return Err(self.0.error(why.clone()));
            }
            if s.stored >= lsn {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || s.done() {
                return Err(self.0.error(self.0.late(&s)));
            }
            s = self
                .0
                .wake
                .wait_timeout(s, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

fn finish(jobs: Vec<Answer>, err: Option<WriteError>) {
    for (job, failure) in jobs {
        job.finish(match (failure, &err) {
            (Some(own), _) => Err(own),
            (None, Some(e)) => Err(e.clone()),
            (None, None) => Ok(()),
        });
    }
}

/// The least time an upload attempt gets, however close the oldest
/// caller's deadline is.
const MIN_ATTEMPT: Duration = Duration::from_millis(200);

/// Waits between retries of a failed upload: short at first (a blip),
/// then at most a second apart.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50u64 << attempt.min(4)).min(Duration::from_secs(1))
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn error(&self, reason: String) -> WriteError {
        WriteError::NotReplicated {
            path: self.path.clone(),
            target: self.sink.target(),
            reason,
        }
    }

    /// Why a job's record is not stored by its deadline.
    fn late(&self, s: &State) -> String {
        match &s.last_error {
            Some(e) => format!(
                "not stored within {:?}: {e}; the write is in the local store and is uploaded \
                 once the replica answers",
                self.bounds.timeout
            ),
            None if !s.gate_open => format!(
                "not stored within {:?}: the replica's base snapshot is not in place yet",
                self.bounds.timeout
            ),
            None => format!(
                "no answer from the replica within {:?}; the write is in the local store and is \
                 uploaded once the replica answers",
                self.bounds.timeout
            ),
        }
    }

    /// Takes the waiters that can be answered now: stored ones (if the
    /// gate is open), all of them after a refusal, late ones.
    fn ready(&self, s: &mut State, now: Instant) -> Vec<(Vec<Answer>, Option<WriteError>)> {
        let mut out = Vec::new();
        if let Some(why) = &s.refused {
            let err = self.error(why.clone());
            out.extend(s.waiters.drain(..).map(|w| (w.jobs, Some(err.clone()))));
            return out;
        }
        while let Some(w) = s.waiters.front() {
            if s.gate_open && w.lsn <= s.stored {
                let w = s.waiters.pop_front().expect("just seen");
                out.push((w.jobs, None));
            } else if w.deadline <= now {
                let err = self.error(self.late(s));
                let w = s.waiters.pop_front().expect("just seen");
                out.push((w.jobs, Some(err)));
            } else {
                break;
            }
        }
        out
    }

    fn answer(&self, ready: Vec<(Vec<Answer>, Option<WriteError>)>) {
        for (jobs, err) in ready {
            finish(jobs, err);
        }
    }

    /// Does what can be done now: answers the jobs that can be
    /// answered, sends the next upload when none is under way, and asks
    /// the sink to wake it for the next deadline. Called on every event
    /// (a record, a job, an upload's outcome, a wake-up); never blocks.
    fn pump(self: &Arc<Self>) {
        loop {
            let mut s = self.state();
            let now = Instant::now();
            let ready = self.ready(&mut s, now);
            if !ready.is_empty() {
                drop(s);
                self.answer(ready);
                continue;
            }
            if s.refused.is_some() {
                // Every waiter was answered above, and no more come.
                s.pending.clear();
                (s.pending_since, s.retry_at) = (None, None);
                if !s.sent {
                    s.upload = None;
                    s.inflight_since = None;
                }
            }
            let mut send = None;
            if !s.done() && !s.sent && s.retry_at.is_none_or(|t| t <= now) {
                if s.upload.is_none() && !s.pending.is_empty() {
                    // One object: everything pending now.
                    let mut object = Vec::with_capacity(self.header.len() + s.pending.len());
                    object.extend_from_slice(&self.header);
                    object.append(&mut s.pending);
                    s.inflight_since = s.pending_since.take();
                    s.upload = Some(Upload {
                        first: s.pending_first,
                        last: s.pending_last,
                        object: object.into(),
                    });
                }
                if let Some(u) = &s.upload {
                    // Bounded by the oldest caller's deadline, so that it
                    // is answered in time even if the request hangs.
                    let deadline = s
                        .waiters
                        .front()
                        .map(|w| w.deadline)
                        .unwrap_or(now + self.bounds.timeout)
                        .max(now + MIN_ATTEMPT);
                    send = Some((u.first, u.last, u.object.clone(), deadline));
                    (s.sent, s.retry_at) = (true, None);
                }
            }
            // The next moment something is due: a caller's deadline, a
            // retry. One wake-up asked at a time, the earliest.
            let due = [s.waiters.front().map(|w| w.deadline), s.retry_at];
            let due = due.into_iter().flatten().min();
            let wake = due.filter(|t| s.timer.is_none_or(|asked| *t < asked));
            if wake.is_some() {
                s.timer = wake;
            }
            drop(s);
            self.wake.notify_all();
            if let Some((first, last, object, deadline)) = send {
                let shared = self.clone();
                let done = Box::new(move |outcome| shared.uploaded(outcome));
                self.sink.clone().put(first, last, object, deadline, done);
            }
            if let Some(at) = wake {
                let shared = self.clone();
                let woken = Box::new(move || shared.woken(at));
                self.sink.wake_at(at, woken);
            }
            return;
        }
    }

    /// A wake-up asked for `at` came.
    fn woken(self: &Arc<Self>, at: Instant) {
        let mut s = self.state();
        if s.timer == Some(at) {
            s.timer = None;
        }
        drop(s);
        self.pump();
    }

    /// The sink's outcome of the upload under way.
    fn uploaded(self: &Arc<Self>, outcome: Result<(), SinkError>) {
        let mut s = self.state();
        s.sent = false;
        let Some(Upload { first, last, .. }) = s.upload else {
            return;
        };
        match outcome {
            Ok(()) => {
                s.stored = last;
                s.upload = None;
                s.inflight_since = None;
                s.last_error = None;
                s.attempts = 0;
            }
            Err(SinkError::Refused(why)) => {
                log::error!(
                    "{}: replication to {} stopped: {why}",
                    self.path.display(),
                    self.sink.target()
                );
                s.refused = Some(why);
            }
            Err(SinkError::Transient(why)) => {
                if s.attempts == 0 {
                    log::warn!(
                        "{}: upload to {} failed, retrying: {why}",
                        self.path.display(),
                        self.sink.target()
                    );
                }
                s.last_error = Some(why);
                let now = Instant::now();
                if s.closing && s.give_up.is_none() {
                    s.give_up = Some(now + self.bounds.timeout);
                }
                if s.give_up.is_some_and(|t| now >= t) {
                    log::error!(
                        "{}: records {first}..={last} did not reach {} before the store closed; \
                         the local store has them",
                        self.path.display(),
                        self.sink.target()
                    );
                    s.refused = Some("the store closed before its records were stored".into());
                } else {
                    s.retry_at = Some(now + backoff(s.attempts));
                    s.attempts += 1;
                }
            }
        }
        drop(s);
        self.pump();
    }
}

#[cfg(test)]
mod tests;
