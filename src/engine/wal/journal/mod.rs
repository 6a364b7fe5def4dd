//! The write-ahead journal.
//!
//! Each batch the writer commits to redb with `Durability::None` (in memory
//! only) is first appended here as one record holding the batch's physical
//! effects: put key=value, delete key, delete key range, per table. The
//! operating system has the record before any caller sees `Ok`, so a killed
//! process loses nothing; with `Synchronous::Full` the record is also
//! fdatasync'ed. A checkpoint (a durable redb commit) makes every record up
//! to its sequence number redundant, and the journal is rewound.
//!
//! File layout (all integers little-endian):
//!
//! ```text
//! header, 64 bytes:
//!   0..8    magic "waredbj\0"
//!   8..12   journal format version (1 plain, 2 encrypted records)
//!   12..16  schema version of the store that wrote it
//!   16..32  file id of the store it belongs to
//!   32..56  zero
//!   56..64  xxh3-64 of bytes 0..56
//! records, from offset 64:
//!   0..4    payload length
//!   4..12   sequence number (lsn)
//!   12..20  xxh3-64 of (file id, lsn, length, payload)
//!   20..    payload: effects, see `EffectLog`; in an encrypted journal
//!           (the store's file is encrypted) the effects encrypted with
//!           the file's data key (XChaCha20-Poly1305, a random nonce per
//!           record, the journal's file id and the lsn as associated
//!           data), followed by the tag (16) and the nonce (24)
//! ```
//!
//! Every record is written together with an all-zero record header after
//! it, which marks the end of the journal until the next record overwrites
//! it. Recovery reads records from offset 64 and applies those whose lsn
//! follows the checkpoint's without a gap, up to the end marker; a record
//! that is torn, fails its checksum or breaks the sequence ends the journal
//! early, and recovery reports it. A record's length is trusted only once
//! its checksum passes: a long one is checked in pieces before it is read
//! whole (see `read`), so a damaged length allocates nothing. The file is
//! preallocated and overwritten in place after a checkpoint (as SQLite does
//! with its WAL), so an fdatasync only flushes data, not file size.

use std::fs::File;
use std::hash::Hasher;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use twox_hash::XxHash3_64;

use crate::engine::files::write_all_at;
use crate::engine::protect::crypt::Cipher;
use crate::engine::storage::IoStats;
use crate::error::{StorageError, StorageResult as Result, WriteError};
use crate::fault::{IoFaults, IoTarget};

const MAGIC: &[u8; 8] = b"waredbj\0";
const FORMAT_PLAIN: u32 = 1;
const FORMAT_ENCRYPTED: u32 = 2;
pub(crate) const HEADER_LEN: u64 = 64;
const RECORD_HEADER_LEN: usize = 20;
/// What a record's checksum covers before its payload: file id, lsn,
/// payload length.
const CHECKSUM_PREFIX: usize = 16 + 8 + 4;
/// The room an [`EffectLog`] keeps in front of its effects: the checksum's
/// prefix, which the record header then overwrites (it is shorter).
const LOG_ROOM: usize = CHECKSUM_PREFIX;
/// Preallocation grows in steps of at least this much (the first step is
/// written at the first write after open: kept small, because every open
/// file pays it).
const MIN_GROWTH: u64 = 64 << 10;
/// Largest preallocation step.
pub(crate) const MAX_GROWTH: u64 = 4 << 20;

/// The journal path of a store file: `<file>.journal`.
pub(crate) fn journal_path(db_path: &Path) -> PathBuf {
    crate::engine::files::with_suffix(db_path, ".journal")
}

mod effects;
mod read;

pub(crate) use effects::{Effect, EffectLog, Effects};
pub(crate) use read::{JournalContents, JournalReader, read_journal};

impl EffectLog {
    /// Fills in the record header and returns the whole record, followed by
    /// an all-zero record header: written together, it marks the end of the
    /// journal, so what follows (records of an older generation, or nothing)
    /// is never mistaken for a torn record. The next record overwrites it.
    fn seal(
        &mut self,
        file_id: &[u8; 16],
        lsn: u64,
        cipher: Option<&Cipher>,
        path: &Path,
    ) -> Result<&[u8]> {
        if let Some(cipher) = cipher {
            cipher
                .seal(&record_aad(file_id, lsn), &mut self.buf, LOG_ROOM)
                .map_err(|e| StorageError::Encryption {
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                })?;
        }
        // `append` refuses payloads that do not fit a u32.
        let len = (self.buf.len() - LOG_ROOM) as u32;
        // The checksum of `file id, lsn, len, payload` (see
        // `record_checksum`), over the buffer in one pass.
        self.buf[0..16].copy_from_slice(file_id);
        self.buf[16..24].copy_from_slice(&lsn.to_le_bytes());
        self.buf[24..28].copy_from_slice(&len.to_le_bytes());
        let sum = XxHash3_64::oneshot(&self.buf);
        // The header just in front of the payload.
        let start = LOG_ROOM - RECORD_HEADER_LEN;
        let header = &mut self.buf[start..LOG_ROOM];
        header[0..4].copy_from_slice(&len.to_le_bytes());
        header[4..12].copy_from_slice(&lsn.to_le_bytes());
        header[12..20].copy_from_slice(&sum.to_le_bytes());
        self.buf.extend_from_slice(&[0; RECORD_HEADER_LEN]);
        Ok(&self.buf[start..])
    }
}

#[cfg_attr(not(feature = "replica"), allow(dead_code))]
impl EffectLog {
    /// The record the last [`Journal::append`] wrote, as written (header
    /// and payload, without the end marker after it): what a replica
    /// stores.
    pub fn sealed_record(&self) -> &[u8] {
        &self.buf[LOG_ROOM - RECORD_HEADER_LEN..self.buf.len() - RECORD_HEADER_LEN]
    }
}

#[cfg_attr(not(feature = "replica"), allow(dead_code))]
impl JournalSpec {
    /// The header of this store's journal: what a replica's record objects
    /// start with, so that those after a snapshot make a journal again.
    pub fn header(&self) -> Vec<u8> {
        encode_header(self.schema_version, &self.file_id, self.cipher.is_some()).to_vec()
    }
}

/// The end marker a journal's last record is followed by.
#[cfg(feature = "replica")]
pub(crate) const END_MARKER: [u8; RECORD_HEADER_LEN] = [0; RECORD_HEADER_LEN];

/// One record of a replica's object: its lsn and its bytes.
#[cfg(feature = "replica")]
pub(crate) type RecordBytes<'a> = (u64, &'a [u8]);

/// Splits a replica's record object (a journal header, then records) into
/// its header and records, checking the records' framing: `(header,
/// [(lsn, record)])`. Checksums and decryption are recovery's, when the
/// records are replayed.
#[cfg(feature = "replica")]
pub(crate) fn split_object(object: &[u8]) -> Option<(&[u8], Vec<RecordBytes<'_>>)> {
    let header = object.get(..HEADER_LEN as usize)?;
    if &header[0..8] != MAGIC {
        return None;
    }
    let mut rest = &object[HEADER_LEN as usize..];
    let mut records = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest.get(0..4)?.try_into().ok()?) as usize;
        let lsn = u64::from_le_bytes(rest.get(4..12)?.try_into().ok()?);
        let whole = RECORD_HEADER_LEN.checked_add(len)?;
        records.push((lsn, rest.get(..whole)?));
        rest = &rest[whole..];
    }
    Some((header, records))
}

fn record_checksum(file_id: &[u8; 16], lsn: u64, len: u32, payload: &[u8]) -> u64 {
    let mut h = record_hasher(file_id, lsn, len);
    h.write(payload);
    h.finish()
}

/// The checksum of a record, before its payload is written into it.
fn record_hasher(file_id: &[u8; 16], lsn: u64, len: u32) -> XxHash3_64 {
    let mut h = XxHash3_64::new();
    h.write(file_id);
    h.write(&lsn.to_le_bytes());
    h.write(&len.to_le_bytes());
    h
}

/// Associated data of an encrypted record: it belongs to this journal, at
/// this place in the sequence.
fn record_aad(file_id: &[u8; 16], lsn: u64) -> [u8; 32] {
    let mut aad = [0u8; 32];
    aad[..8].copy_from_slice(b"wa-jrec\0");
    aad[8..24].copy_from_slice(file_id);
    aad[24..].copy_from_slice(&lsn.to_le_bytes());
    aad
}

fn encode_header(
    schema_version: u32,
    file_id: &[u8; 16],
    encrypted: bool,
) -> [u8; HEADER_LEN as usize] {
    let format = if encrypted {
        FORMAT_ENCRYPTED
    } else {
        FORMAT_PLAIN
    };
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&format.to_le_bytes());
    h[12..16].copy_from_slice(&schema_version.to_le_bytes());
    h[16..32].copy_from_slice(file_id);
    let sum = XxHash3_64::oneshot(&h[0..56]);
    h[56..64].copy_from_slice(&sum.to_le_bytes());
    h
}

/// Everything needed to create a store's journal, which happens at the
/// first write after the store is opened: an open that only reads writes
/// nothing.
#[derive(Clone)]
pub(crate) struct JournalSpec {
    pub path: PathBuf,
    pub schema_version: u32,
    pub file_id: [u8; 16],
    /// fdatasync every record (`Synchronous::Full`).
    pub sync_each: bool,
    /// Size the file is cut back to when rewound.
    pub retain: u64,
    pub stats: Arc<IoStats>,
    pub faults: Option<Arc<dyn IoFaults>>,
    /// The store's cipher, if it is encrypted: so is every record.
    pub cipher: Option<Arc<Cipher>>,
}

/// An open journal, owned by whoever holds the store's write lane.
pub(crate) struct Journal {
    file: File,
    path: PathBuf,
    file_id: [u8; 16],
    /// Offset of the next record.
    write_pos: u64,
    /// Offset of the last record appended, until the next rewind: the one
    /// [`Journal::retract`] takes back.
    last_pos: Option<u64>,
    /// Length of the file (written zeros beyond `write_pos`).
    allocated: u64,
    /// fdatasync every record (`Synchronous::Full`).
    sync_each: bool,
    /// The file and its directory entry are on stable storage: from then
    /// on an fdatasync makes records durable.
    entry_durable: bool,
    /// Size the file is cut back to when rewound.
    retain: u64,
    stats: Arc<IoStats>,
    faults: Option<Arc<dyn IoFaults>>,
    cipher: Option<Arc<Cipher>>,
}

impl Journal {
    /// Creates (or truncates) the journal of a store and writes its header.
    /// With `sync_each` the header is fsynced, and so is the directory
    /// entry, before this returns: every record appended later is fsynced
    /// and must be found after a power loss. Without it, nothing here waits
    /// for the disk: records are not fsynced either, and a journal lost to a
    /// power cut loses only what `Synchronous::Normal` allows to lose. The
    /// file exists from the first write until the store is closed cleanly,
    /// so finding it at open means the last process did not close the store
    /// after writing to it.
    pub fn create(spec: JournalSpec) -> Result<Journal> {
        let file = crate::engine::files::create_private(&spec.path, true)?;
        let mut journal = Journal {
            file,
            path: spec.path,
            file_id: spec.file_id,
            write_pos: HEADER_LEN,
            last_pos: None,
            allocated: 0,
            sync_each: spec.sync_each,
            entry_durable: spec.sync_each,
            retain: spec.retain.max(MIN_GROWTH),
            stats: spec.stats,
            faults: spec.faults,
            cipher: spec.cipher,
        };
        journal.set_len(0)?;
        let header = encode_header(spec.schema_version, &spec.file_id, journal.cipher.is_some());
        journal.write_at(0, &header)?;
        journal.allocated = HEADER_LEN;
        if journal.sync_each {
            journal.sync_all()?;
            crate::engine::files::sync_parent_dir(&journal.path)?;
        }
        Ok(journal)
    }

    /// Turns fsyncing every record on (or off). Turning it on fsyncs the
    /// file and its directory entry first, as [`Journal::create`] does for a
    /// journal that fsyncs from the start.
    pub fn set_sync_each(&mut self, on: bool) -> Result<()> {
        if on && !self.sync_each {
            self.sync()?;
        }
        self.sync_each = on;
        Ok(())
    }

    /// Puts every record appended so far on stable storage (`Normal`'s
    /// timed journal sync). The first sync of a journal also makes its
    /// header, size and directory entry durable: a record is found after a
    /// power cut only if its file is.
    pub fn sync(&mut self) -> Result<()> {
        if self.entry_durable {
            return self.sync_data();
        }
        self.sync_all()?;
        crate::engine::files::sync_parent_dir(&self.path)?;
        self.entry_durable = true;
        Ok(())
    }

    /// Bytes of records written since the last rewind.
    pub fn used(&self) -> u64 {
        self.write_pos - HEADER_LEN
    }

    fn hook(&self, f: impl FnOnce(&dyn IoFaults) -> io::Result<()>) -> Result<()> {
        match &self.faults {
            Some(faults) => f(faults.as_ref()).map_err(|e| StorageError::io(&self.path, e)),
            None => Ok(()),
        }
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.hook(|f| f.on_write(IoTarget::Journal, offset, data))?;
        write_all_at(&self.file, data, offset).map_err(|e| StorageError::io(&self.path, e))?;
        self.stats.add_write(data.len());
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<()> {
        self.hook(|f| f.on_set_len(IoTarget::Journal, len))?;
        self.file
            .set_len(len)
            .map_err(|e| StorageError::io(&self.path, e))
    }

    fn sync_data(&self) -> Result<()> {
        self.hook(|f| f.on_sync(IoTarget::Journal))?;
        self.file
            .sync_data()
            .map_err(|e| StorageError::io(&self.path, e))
    }

    fn sync_all(&self) -> Result<()> {
        self.hook(|f| f.on_sync(IoTarget::Journal))?;
        self.file
            .sync_all()
            .map_err(|e| StorageError::io(&self.path, e))
    }

    /// Extends the file with written zeros so that it is at least `end`
    /// bytes long. Zeros, not a sparse extension: a later write into them
    /// changes no file metadata, and a full disk shows up here, before any
    /// record is at stake.
    fn grow(&mut self, end: u64) -> Result<()> {
        if end <= self.allocated {
            return Ok(());
        }
        // Nothing of a record is written before the space is there, so a
        // failure here loses nothing and may be retried.
        self.grow_to(end).map_err(|e| match e {
            StorageError::Io { path, source } => StorageError::NoSpace { path, source },
            other => other,
        })
    }

    fn grow_to(&mut self, end: u64) -> Result<()> {
        let step = self.allocated.clamp(MIN_GROWTH, MAX_GROWTH);
        let target = end.max(self.allocated + step);
        if !self.sync_each && self.reserve(target)? {
            self.allocated = target;
            return Ok(());
        }
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        let mut pos = self.allocated;
        while pos < target {
            // Computed in u64: on 32-bit targets a usize cast could truncate.
            let n = (target - pos).min(ZEROS.len() as u64) as usize;
            self.write_at(pos, &ZEROS[..n])?;
            pos += n as u64;
        }
        if self.sync_each {
            self.sync_all()?;
        }
        self.allocated = target;
        Ok(())
    }

    /// Reserves the disk blocks up to `target` without writing them, where
    /// the platform can (Linux `fallocate`): a full disk shows up now, and
    /// nothing is copied. Returns `false` where it cannot; the caller then
    /// writes zeros. Without an fsync per record (`Normal`), unwritten
    /// blocks cost nothing later; with one (`Full`) the caller writes zeros,
    /// so that an fdatasync never has block allocations to commit.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn reserve(&self, target: u64) -> Result<bool> {
        use std::os::fd::AsRawFd;
        self.hook(|f| f.on_set_len(IoTarget::Journal, target))?;
        let (offset, len) = (self.allocated, target - self.allocated);
        let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len))
        else {
            return Ok(false);
        };
        // SAFETY: fallocate only reads its integer arguments and acts on
        // the descriptor, which `self.file` keeps open for the call.
        let rc = unsafe { libc::fallocate(self.file.as_raw_fd(), 0, offset, len) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // The file system has no fallocate: write zeros instead.
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => Ok(false),
            _ => Err(StorageError::io(&self.path, err)),
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn reserve(&self, _target: u64) -> Result<bool> {
        Ok(false)
    }

    /// Whether the preallocated room left is short (under a quarter of the
    /// file): time to grow it ahead of need, off the caller's thread.
    pub fn room_low(&self) -> bool {
        let free = self.allocated.saturating_sub(self.write_pos);
        free < self.allocated / 4
    }

    /// Grows the preallocated room by one step (see [`Journal::room_low`]).
    pub fn make_room(&mut self) -> Result<()> {
        let end = self.allocated + 1;
        self.grow(end)
    }

    /// Appends one record. When this returns `Ok`, the record is in the
    /// operating system (and on stable storage with `sync_each`).
    pub fn append(&mut self, lsn: u64, effects: &mut EffectLog) -> Result<(), WriteError> {
        if effects.len() > u32::MAX as usize {
            return Err(WriteError::ValueTooLarge {
                what: "write batch",
                len: effects.len(),
                limit: u32::MAX as usize,
            });
        }
        let sealed = (effects.len() + RECORD_HEADER_LEN) as u64
            + match self.cipher {
                Some(_) => crate::engine::protect::crypt::SEAL_OVERHEAD as u64,
                None => 0,
            };
        // Room for the record and the end marker `seal` puts after it.
        self.grow(self.write_pos + sealed + RECORD_HEADER_LEN as u64)?;
        let pos = self.write_pos;
        let record = effects.seal(&self.file_id, lsn, self.cipher.as_deref(), &self.path)?;
        let record_len = record.len() as u64 - RECORD_HEADER_LEN as u64;
        self.write_at(pos, record)?;
        if self.sync_each {
            self.sync_data()?;
        }
        self.write_pos = pos + record_len;
        self.last_pos = Some(pos);
        Ok(())
    }

    /// Takes back the last record appended, whose batch then failed to
    /// commit: its header becomes the end marker (zeros), so recovery stops
    /// before it, and the next record takes its place. Its callers were told
    /// the batch failed; replaying it at the next open would apply it after
    /// all. Fsynced in every mode: in `Normal` the record itself was not,
    /// but the OS may have written it out, and a power cut must not bring
    /// back a batch whose callers were told `Err`. (Failed commits are rare;
    /// the fsync costs nothing in the common path.)
    pub fn retract(&mut self) -> Result<()> {
        let Some(pos) = self.last_pos.take() else {
            return Ok(());
        };
        self.write_at(pos, &[0u8; RECORD_HEADER_LEN])?;
        self.sync_data()?;
        self.write_pos = pos;
        Ok(())
    }

    /// Starts over at the first record slot after a checkpoint made every
    /// record redundant. Old records stay in the file until overwritten; their
    /// sequence numbers are at or below the checkpoint's, so recovery skips
    /// them.
    pub fn rewind(&mut self) -> Result<()> {
        self.write_pos = HEADER_LEN;
        self.last_pos = None;
        if self.allocated > self.retain {
            self.set_len(self.retain)?;
            self.allocated = self.retain;
        }
        Ok(())
    }

    /// Deletes the journal after a clean close (the checkpoint covers it).
    pub fn remove(self) -> Result<()> {
        drop(self.file);
        crate::engine::files::remove_if_present(&self.path)
    }
}
