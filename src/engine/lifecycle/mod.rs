//! An engine's life in a process: one engine per file (`registry`), the
//! last handle's close (`closing`), and a halted engine reopening its file
//! in place (`heal`).

pub(super) mod closing;
pub(super) mod heal;
pub(super) mod registry;
