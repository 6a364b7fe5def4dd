//! The store's one clock: the engine (checkpoint and key stamps, names of
//! set-aside files) and the trait domains (sent and pending messages) read
//! it, so it lives below both.

/// Wall-clock unix seconds, the clock SqliteStore stamps sent and pending
/// messages with (SQLite's `strftime('%s','now')`).
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
