//! Replicas beyond one machine (feature `replica`): snapshots of a whole
//! store file in S3-compatible object storage or a directory, and restores
//! from them on any host.

pub(crate) mod keep;
pub(crate) mod options;
pub(crate) mod restore;
pub(crate) mod snapshot;
pub(crate) mod stream;
pub(crate) mod target;
mod uploads;
