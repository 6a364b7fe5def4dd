//! The process-wide page-cache budget.
//!
//! Every open store file has its own redb page cache, sized when the file is
//! opened; the sizes come out of one budget for the whole process. A file
//! gets what its configuration asks for (`cache_size_kib`) while the budget
//! lasts, and at least [`FLOOR`] (a few pages, enough for redb's write
//! buffer) once it is used up: a process with one store file gets the full
//! cache it asks for, a process with a thousand files stays within the
//! budget plus the floors, and a file's share returns to the budget when it
//! closes. The floor is what an idle account in a file of its own costs in
//! cache at most; its reads are then served from the operating system's
//! page cache. A protected file also keeps the tag entries it reads within
//! an eighth of its share, on top of it (`protect::segments`).

use std::sync::Mutex;

/// The least cache a file gets, whatever is left of the budget.
pub(crate) const FLOOR: usize = 16 << 10;

/// Default process-wide budget.
pub(crate) const DEFAULT_BUDGET: usize = 32 << 20;

struct Budget {
    total: usize,
    reserved: usize,
}

static BUDGET: Mutex<Budget> = Mutex::new(Budget {
    total: DEFAULT_BUDGET,
    reserved: 0,
});

fn budget() -> std::sync::MutexGuard<'static, Budget> {
    BUDGET.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets the process-wide budget, for files opened from now on.
pub(crate) fn set_budget(bytes: usize) {
    budget().total = bytes;
}

/// The process-wide budget now.
#[cfg(test)]
pub(crate) fn total_budget() -> usize {
    budget().total
}

/// A file's share of the budget, returned when dropped.
#[derive(Debug)]
pub(crate) struct Share {
    bytes: usize,
}

impl Share {
    /// Takes up to `wanted` bytes from the budget (at least [`FLOOR`]).
    pub fn take(wanted: usize) -> Share {
        let mut b = budget();
        let left = b.total.saturating_sub(b.reserved);
        let bytes = wanted.min(left).max(FLOOR);
        b.reserved += bytes;
        Share { bytes }
    }

    /// The cache size this file may use.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut b = budget();
        b.reserved = b.reserved.saturating_sub(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_stay_within_the_budget_plus_floors() {
        // The budget is process-wide; this test only takes and returns
        // shares, so other tests opening stores see at worst smaller caches.
        let total = total_budget();
        let shares: Vec<Share> = (0..8).map(|_| Share::take(total / 4)).collect();
        let sum: usize = shares.iter().map(Share::bytes).sum();
        assert!(sum <= total + 8 * FLOOR, "{sum} > {total} + floors");
        assert!(shares.iter().all(|s| s.bytes() >= FLOOR));
        drop(shares);
        assert!(Share::take(total / 4).bytes() >= FLOOR);
    }
}
