//! The write-ahead journal (`journal`: records, the effects codec, the
//! streaming reader) and its replay at open (`recovery`).

pub(super) mod journal;
pub(super) mod recovery;
