//! The process-wide page-cache budget.
//!
//! Every open store file has its own redb page cache, sized when the file is
//! opened; the sizes come out of one budget for the whole process. A file
//! gets what its configuration asks for (`cache_size_kib`) while the budget
//! lasts, and at least [`FLOOR`] once it is used up: a process with one
//! store file gets the full cache it asks for, a process with a thousand
//! files stays within the budget plus the floors, and a file's share
//! returns to the budget when it closes. The floor is what an idle account
//! in a file of its own costs in cache at most; its other reads are served
//! from the operating system's page cache. A protected file's share is
//! split: an eighth for the tag entries it reads (`protect::segments`), the
//! rest for redb's page cache.

use std::sync::Mutex;

/// The least cache a file gets, whatever is left of the budget: 16 pages,
/// about what one account's writes touch (the table tree, the tables of a
/// message, redb's allocator pages). Below it each commit's pages no longer
/// fit: redb writes them out early and reads them back, and each miss walks
/// all 131 of its cache stripes to find pages to evict. A fleet of 1,000
/// files, one per account, ran twice as fast on one CPU with 64 KiB as with
/// 16 KiB (compat/benches/README.md), for about 12 KiB more per idle
/// account (the pages redb reads at open stay cached).
pub(crate) const FLOOR: usize = 64 << 10;

/// Default process-wide budget.
pub(crate) const DEFAULT_BUDGET: usize = 32 << 20;

struct Budget {
    total: usize,
    reserved: usize,
    /// Shares held: files open in this process.
    shares: usize,
}

impl Budget {
    /// Reports the budget and the files open to the metrics, if any.
    fn changed(&self) {
        crate::telemetry::files_changed(self.shares, self.total, self.reserved);
    }
}

static BUDGET: Mutex<Budget> = Mutex::new(Budget {
    total: DEFAULT_BUDGET,
    reserved: 0,
    shares: 0,
});

fn budget() -> std::sync::MutexGuard<'static, Budget> {
    BUDGET.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets the process-wide budget, for files opened from now on.
pub(crate) fn set_budget(bytes: usize) {
    let mut b = budget();
    b.total = bytes;
    b.changed();
}

/// The process-wide budget now.
#[cfg(test)]
pub(crate) fn total_budget() -> usize {
    budget().total
}

/// Files opened with less cache than they asked for, since the process
/// started.
static SHRUNK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Says that a file got a smaller cache than asked for: at the 1st, 2nd,
/// 4th, 8th… such file, so that a fleet of a thousand files logs ten
/// lines, not a thousand. `resource_report`'s `memory_bytes` gives each
/// file's actual share.
fn shrunk(path: &std::path::Path, bytes: usize, wanted: usize, total: usize) {
    let n = SHRUNK.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        log::warn!(
            "{}: page cache of {} KiB instead of the {} KiB asked for: the process-wide \
             budget of {} KiB (`cache_budget_kib`) is spent by other open files, so this \
             file's reads go to the operating system's page cache ({n} files so far); \
             raise `cache_budget_kib` or lower `cache_size_kib`",
            path.display(),
            bytes >> 10,
            wanted >> 10,
            total >> 10
        );
    }
}

/// A file's share of the budget, returned when dropped.
#[derive(Debug)]
pub(crate) struct Share {
    bytes: usize,
}

impl Share {
    /// Takes up to `wanted` bytes from the budget (at least [`FLOOR`]) for
    /// the file at `path`, and warns when it gets less than it asked for.
    pub fn take(wanted: usize, path: &std::path::Path) -> Share {
        let mut b = budget();
        let left = b.total.saturating_sub(b.reserved);
        let bytes = wanted.min(left).max(FLOOR);
        b.reserved = b.reserved.saturating_add(bytes);
        b.shares += 1;
        b.changed();
        let total = b.total;
        drop(b);
        if bytes < wanted {
            shrunk(path, bytes, wanted, total);
        }
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
        b.shares = b.shares.saturating_sub(1);
        b.changed();
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
        let path = std::path::Path::new("test");
        let shares: Vec<Share> = (0..8).map(|_| Share::take(total / 4, path)).collect();
        let sum: usize = shares.iter().map(Share::bytes).sum();
        assert!(sum <= total + 8 * FLOOR, "{sum} > {total} + floors");
        assert!(shares.iter().all(|s| s.bytes() >= FLOOR));
        drop(shares);
        assert!(Share::take(total / 4, path).bytes() >= FLOOR);
    }

    #[test]
    fn a_share_smaller_than_asked_for_is_counted_and_warned_about() {
        use std::sync::atomic::Ordering;
        let before = SHRUNK.load(Ordering::Relaxed);
        let share = Share::take(total_budget().saturating_mul(2), std::path::Path::new("t"));
        assert!(share.bytes() <= total_budget().max(FLOOR));
        assert!(SHRUNK.load(Ordering::Relaxed) > before);
    }
}
