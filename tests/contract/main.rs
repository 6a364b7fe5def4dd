//! Behaviour of every trait method, by trait domain, against the contract
//! in store-contract.md (SqliteStore's semantics).

mod api;
mod appstate;
mod device;
mod formats;
mod msg_secret;
mod persistence;
#[path = "../util/process.rs"]
mod process;
mod protocol;
mod signal;
mod support;
