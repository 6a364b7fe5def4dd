//! The wacore traits, one module per trait (and per concern of the large
//! `ProtocolStore`): each method says only what to read and write, through
//! the handle's `read`/`write` helpers and the tables of the catalog.

pub(crate) mod appstate;
pub(crate) mod device;
pub(crate) mod legacy;
pub(crate) mod msg_secret;
pub(crate) mod protocol;
pub(crate) mod signal;
