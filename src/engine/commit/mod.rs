//! Committing writes: who runs the writer right now (`lane`: the caller
//! inline, or a pool worker), the writer itself (`writer`: batches, write
//! transactions, durability, checkpoints) and the process-wide worker
//! threads (`pool`) for work that must not run on a runtime thread.

pub(super) mod lane;
pub(super) mod pool;
pub(super) mod writer;
