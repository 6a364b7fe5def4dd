//! Nothing to build: this package holds the tests and the benchmark that
//! run `RedbStore` next to `SqliteStore` (`tests/differential/`,
//! `tests/import/`, `benches/compare`). They link C SQLite, so they live
//! here rather than in `whatsapp-rust-redb-storage` itself, whose demo and
//! core tests then compile no C. `cargo test --workspace` runs them.
