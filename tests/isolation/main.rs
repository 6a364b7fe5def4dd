//! Device isolation: several accounts (device ids, including the extremes
//! i32::MIN, -1, 0 and i32::MAX and their neighbours) in one RedbStore file
//! never see each other's rows.
//!
//! Random operations (the differential test's generator) go to random
//! devices; each device has its own in-memory model of SqliteStore's
//! semantics. Every result is compared with the acting device's model, and
//! after every operation that removes rows (deletes, clears, sweeps, takes)
//! every *other* device is read completely and compared with its model, so
//! a delete, clear or sweep on one account that touched another is caught.
//! A fixed phase then fills every device with device-specific values, wipes
//! one device with every destructive operation at its widest, and checks
//! the others; finally the file is closed, reopened and checked again.
//!
//! Handles are made both ways: `store.for_device(id)` and a second
//! `RedbStore::new_for_device(path, id)` on the same file.
//!
//! Knobs: `WA_REDB_ISO_CASES` (default 6), `WA_REDB_ISO_OPS` (default 600),
//! `WA_REDB_ISO_SEED`.
//!
//! Layout: `model.rs` is the model of one account, `ops.rs` the fixed
//! operation lists (every read, the fill, the wipe), `harness.rs` the
//! world of handles and models and one case; this file has the knobs and
//! the tests.

#[path = "../common/diff_util.rs"]
mod diff_util;
mod harness;
mod model;
mod ops;

use diff_util::*;
use harness::{open_handles, run_case};
use model::Model;

const DEFAULT_CASES: u64 = 6;
const DEFAULT_OPS: usize = 600;
const DEFAULT_SEED: u64 = 0x150_1A7E;

/// Device ids the cases draw from: the extremes and their neighbours.
const ID_POOL: &[i32] = &[
    i32::MIN,
    i32::MIN + 1,
    -2,
    -1,
    0,
    1,
    2,
    i32::MAX - 1,
    i32::MAX,
];

/// The first cases use these (adjacent ids: off-by-one range bugs); later
/// cases draw three distinct ids from `ID_POOL`.
const FIXED_ID_SETS: &[&[i32]] = &[
    &[i32::MIN, i32::MIN + 1, i32::MAX],
    &[-1, 0, 1],
    &[i32::MAX - 1, i32::MAX, -1],
    &[0, i32::MIN, i32::MAX, -1],
];

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v:?} is not a number")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_in_one_file_never_see_each_other() {
    let cases = env_u64("WA_REDB_ISO_CASES").unwrap_or(DEFAULT_CASES);
    let n_ops = env_u64("WA_REDB_ISO_OPS").map_or(DEFAULT_OPS, |n| n as usize);
    let base = env_u64("WA_REDB_ISO_SEED").unwrap_or(DEFAULT_SEED);
    for case_no in 0..cases {
        run_case(case_no, base.wrapping_add(case_no), n_ops).await;
    }
}

/// The check can fail: a row written on one device and looked for on
/// another is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leak_would_be_detected() {
    let dir = tempfile::tempdir().expect("temp dir");
    let handles = open_handles(&dir.path().join("s.redb"), &[-1, 0]).await;
    let mut model_b = Model::new(0);
    let write = Op::PutSession {
        addr: "123@c.us.0",
        data: vec![1],
    };
    // Written on device -1 but modelled on device 0: the read on device 0
    // must disagree with the model.
    apply(&handles[0], None, false, &write).await;
    model_b.apply(&write);
    let read = Op::GetSession { addr: "123@c.us.0" };
    let store = apply(&handles[1], None, false, &read).await;
    assert_eq!(store.res, Ok("None".to_string()));
    assert!(difference(&store, &model_b.apply(&read)).is_some());
}
