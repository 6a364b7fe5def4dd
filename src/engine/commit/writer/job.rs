//! A write job: what the writer runs in a batch (a closure over a `Tx`),
//! how much it weighs, and the bounds of a batch.

use tokio::sync::oneshot;

use crate::engine::tx::Tx;
use crate::error::WriteError;

type Result<T, E = WriteError> = std::result::Result<T, E>;

/// Most jobs coalesced into one batch.
pub(crate) const MAX_BATCH_JOBS: usize = 1024;
/// Batches stop growing past this much job weight.
pub(crate) const MAX_BATCH_WEIGHT: usize = 16 << 20;
/// Jobs at most this heavy may run on the caller's thread. Measured on 2
/// cores: a signal flush's 32 sessions (~40 KB) commit inline in 12-16 µs
/// at the median, 65-90 µs at p99; heavier jobs go to a pool worker so a
/// runtime thread is never held for long by one caller's work.
pub(crate) const INLINE_MAX_WEIGHT: usize = 64 << 10;
/// A caller commits at most this many jobs per batch on its thread (the
/// front of the queue: its own and those around it), then lets go of the
/// lane: with 32 writers on 2 cores a batch holds the thread 60-90 µs at
/// the median, and group commit keeps the old writer thread's throughput
/// (4 jobs: 61k writes/s, 8: 76k, 16: 86k, the writer thread: 73k).
pub(crate) const INLINE_MAX_JOBS: usize = 8;

/// What a job costs the writer: about the bytes it carries, or a scan of
/// rows nobody can bound up front (expiry sweeps, range deletes), which
/// never runs on the caller's thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Weight(usize);

impl Weight {
    /// A job that walks rows whose number the caller does not know.
    pub const SCAN: Weight = Weight(usize::MAX);

    /// A job that carries about `n` bytes.
    pub fn bytes(n: usize) -> Weight {
        Weight(n.min(usize::MAX - 1))
    }

    /// The weight to sum when bounding a batch.
    pub fn get(self) -> usize {
        if self == Weight::SCAN {
            MAX_BATCH_WEIGHT
        } else {
            self.0
        }
    }

    pub fn inline_ok(self) -> bool {
        self.0 <= INLINE_MAX_WEIGHT
    }
}

/// A unit of work for the writer.
pub(crate) trait Job: Send {
    /// Applies the job (once). It must fail, if at all, before its first
    /// change, except for a storage failure.
    fn apply(&mut self, tx: &mut Tx<'_>) -> Result<()>;
    /// Delivers the outcome to the caller.
    fn finish(self: Box<Self>, outcome: Result<()>);
    /// What the job costs, to bound batches and choose where it runs.
    fn weight(&self) -> Weight;
    /// The largest value the job may store (its handle's limit).
    fn max_value(&self) -> usize;
}

/// A job built from a closure; see [`crate::engine::Engine::write`].
pub(crate) struct FnJob<F, R> {
    /// Taken when the job runs.
    pub f: Option<F>,
    pub out: Option<R>,
    pub reply: oneshot::Sender<Result<R>>,
    pub weight: Weight,
    pub max_value: usize,
}

impl<F, R> Job for FnJob<F, R>
where
    F: FnOnce(&mut Tx<'_>) -> Result<R> + Send,
    R: Send,
{
    fn apply(&mut self, tx: &mut Tx<'_>) -> Result<()> {
        let f = self.f.take().expect("a job runs once");
        self.out = Some(f(tx)?);
        Ok(())
    }

    fn finish(self: Box<Self>, outcome: Result<()>) {
        let FnJob { out, reply, .. } = *self;
        let result = outcome.map(|()| out.expect("a job that succeeded produced its output"));
        // The caller may have stopped waiting (its future was dropped); the
        // write happened regardless, like any committed write.
        let _ = reply.send(result);
    }

    fn weight(&self) -> Weight {
        self.weight
    }

    fn max_value(&self) -> usize {
        self.max_value
    }
}
