//! The effects of a write batch as a journal record holds them, and their
//! decoding at replay.

use std::ops::Bound;

use super::LOG_ROOM;
use crate::engine::catalog::{Catalog, TableTag};
use crate::error::{StorageError, StorageResult as Result};

const EFFECT_PUT: u8 = 1;
const EFFECT_DELETE: u8 = 2;
const EFFECT_DELETE_RANGE: u8 = 3;

/// Encoded effects of one batch, with room in front for the record header
/// (so that a record is written with one syscall) and for what its checksum
/// covers besides the effects (so that it is computed in one pass, with no
/// hasher state to allocate).
pub(crate) struct EffectLog {
    /// [`LOG_ROOM`] bytes of room, then the encoded effects (sealed in
    /// place by the journal, which owns the record format).
    pub(super) buf: Vec<u8>,
    /// Rows the recorded effects delete.
    deleted: u64,
}

/// A batch buffer that grew past this is freed after use rather than kept
/// (an idle store should hold no megabytes of buffer).
const KEEP_BUFFER: usize = 64 << 10;

impl EffectLog {
    pub fn new() -> Self {
        Self {
            buf: vec![0; LOG_ROOM],
            deleted: 0,
        }
    }

    pub fn clear(&mut self) {
        self.buf.truncate(LOG_ROOM);
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf.shrink_to(KEEP_BUFFER);
        }
        self.deleted = 0;
    }

    /// Rows deleted by the effects recorded since the last `clear`.
    pub fn deletes(&self) -> u64 {
        self.deleted
    }

    pub fn is_empty(&self) -> bool {
        self.buf.len() == LOG_ROOM
    }

    /// Bytes of effects recorded so far; a cheap "did anything change" mark.
    pub fn len(&self) -> usize {
        self.buf.len() - LOG_ROOM
    }

    fn put_bytes(&mut self, bytes: &[u8]) {
        self.buf
            .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(bytes);
    }

    pub fn put(&mut self, table: TableTag, key: &[u8], value: &[u8]) {
        self.buf.extend_from_slice(&[EFFECT_PUT, table.0]);
        self.put_bytes(key);
        self.put_bytes(value);
    }

    pub fn delete(&mut self, table: TableTag, key: &[u8]) {
        self.deleted += 1;
        self.buf.extend_from_slice(&[EFFECT_DELETE, table.0]);
        self.put_bytes(key);
    }

    /// Records the deletion of the `rows` rows within the bounds.
    pub fn delete_range(
        &mut self,
        table: TableTag,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        rows: u64,
    ) {
        self.deleted += rows;
        self.buf.extend_from_slice(&[EFFECT_DELETE_RANGE, table.0]);
        for bound in [lower, upper] {
            match bound {
                Bound::Unbounded => self.buf.push(0),
                Bound::Included(b) => {
                    self.buf.push(1);
                    self.put_bytes(b);
                }
                Bound::Excluded(b) => {
                    self.buf.push(2);
                    self.put_bytes(b);
                }
            }
        }
    }
}

/// One decoded effect, borrowing from the record payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Effect<'a> {
    Put {
        table: TableTag,
        key: &'a [u8],
        value: &'a [u8],
    },
    Delete {
        table: TableTag,
        key: &'a [u8],
    },
    DeleteRange {
        table: TableTag,
        lower: Bound<&'a [u8]>,
        upper: Bound<&'a [u8]>,
    },
}

impl Effect<'_> {
    /// The table the effect changes.
    pub fn tag(&self) -> TableTag {
        match self {
            Effect::Put { table, .. }
            | Effect::Delete { table, .. }
            | Effect::DeleteRange { table, .. } => *table,
        }
    }

    /// Whether the effect's keys and value are encodings redb can decode
    /// without panicking, as `catalog` knows its tables (a record that
    /// passed its checksum was still written by someone: a bug, or
    /// deliberate damage).
    pub fn well_formed(&self, catalog: &dyn Catalog) -> bool {
        let bound_ok = |table: TableTag, b: &Bound<&[u8]>| match b {
            Bound::Included(k) | Bound::Excluded(k) => catalog.well_formed(table, k, None),
            Bound::Unbounded => true,
        };
        match self {
            Effect::Put { table, key, value } => catalog.well_formed(*table, key, Some(value)),
            Effect::Delete { table, key } => catalog.well_formed(*table, key, None),
            Effect::DeleteRange {
                table,
                lower,
                upper,
            } => bound_ok(*table, lower) && bound_ok(*table, upper),
        }
    }
}

/// Iterates the effects of a payload; a malformed payload yields an error.
pub(crate) struct Effects<'a> {
    rest: &'a [u8],
}

impl<'a> Effects<'a> {
    pub fn new(payload: &'a [u8]) -> Self {
        Self { rest: payload }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(StorageError::decode(
                "journal record",
                "effect runs past the record end",
            ));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize;
        self.take(len)
    }

    fn bound(&mut self) -> Result<Bound<&'a [u8]>> {
        Ok(match self.take(1)?[0] {
            0 => Bound::Unbounded,
            1 => Bound::Included(self.bytes()?),
            2 => Bound::Excluded(self.bytes()?),
            other => {
                return Err(StorageError::decode(
                    "journal record",
                    format!("unknown range bound tag {other}"),
                ));
            }
        })
    }

    fn next_effect(&mut self) -> Result<Effect<'a>> {
        let head = self.take(2)?;
        let table = TableTag(head[1]);
        Ok(match head[0] {
            EFFECT_PUT => Effect::Put {
                table,
                key: self.bytes()?,
                value: self.bytes()?,
            },
            EFFECT_DELETE => Effect::Delete {
                table,
                key: self.bytes()?,
            },
            EFFECT_DELETE_RANGE => Effect::DeleteRange {
                table,
                lower: self.bound()?,
                upper: self.bound()?,
            },
            other => {
                return Err(StorageError::decode(
                    "journal record",
                    format!("unknown effect kind {other}"),
                ));
            }
        })
    }
}

impl<'a> Iterator for Effects<'a> {
    type Item = Result<Effect<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = self.next_effect();
        if item.is_err() {
            self.rest = &[];
        }
        Some(item)
    }
}
