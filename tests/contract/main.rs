//! Behaviour of every trait method, by trait domain, against the contract
//! in store-contract.md (SqliteStore's semantics).

mod api;
mod appstate;
mod device;
mod msg_secret;
mod persistence;
mod protocol;
mod signal;
mod support;
#[path = "../util/process.rs"]
mod process;
