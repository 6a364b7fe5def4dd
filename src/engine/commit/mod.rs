//! Committing writes: who runs the writer right now (`lane`: the caller
//! inline, or a pool worker), the writer itself (`writer`: batches, write
//! transactions, durability, checkpoints) and the process-wide worker
//! threads (`pool`) for work that must not run on a runtime thread; and
//! the shipper (`ship`), which stores every journal record in a replica
//! before its callers get `Ok`.

pub(super) mod lane;
pub(super) mod pool;
#[cfg(feature = "replica")]
mod replicate;
#[cfg_attr(not(feature = "replica"), allow(dead_code))]
pub(super) mod ship;
pub(super) mod writer;
