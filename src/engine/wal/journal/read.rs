//! Reading a journal at open: its header, then its records one at a time
//! (see the module docs of `journal` for the layout and what ends it).

use std::fs::File;
use std::hash::Hasher;
use std::io;
use std::path::{Path, PathBuf};

use twox_hash::XxHash3_64;

use super::{
    FORMAT_ENCRYPTED, FORMAT_PLAIN, HEADER_LEN, MAGIC, RECORD_HEADER_LEN, record_aad,
    record_checksum, record_hasher,
};
use crate::engine::files::read_exact_at;
use crate::engine::protect::crypt::Cipher;
use crate::error::{StorageError, StorageResult as Result};

/// What an existing journal file holds.
pub(crate) enum JournalContents<'c> {
    /// No journal file.
    Missing,
    /// A journal that does not belong to this store (another file id, an
    /// unknown format, a damaged header). Nothing in it may be applied.
    Foreign { reason: String },
    /// A journal of this store, to be read record by record.
    Records(JournalReader<'c>),
}

/// Opens the journal `path` of the store `file_id`, whose records that
/// follow `checkpoint_lsn` are then read one at a time (decrypted with
/// `cipher`, the store's, if the store is encrypted).
pub(crate) fn read_journal<'c>(
    path: &Path,
    file_id: &[u8; 16],
    checkpoint_lsn: u64,
    cipher: Option<&'c Cipher>,
) -> Result<JournalContents<'c>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(JournalContents::Missing),
        Err(e) => return Err(StorageError::io(path, e)),
    };
    let file_len = file
        .metadata()
        .map_err(|e| StorageError::io(path, e))?
        .len();
    if file_len < HEADER_LEN {
        return Ok(JournalContents::Foreign {
            reason: format!("file of {file_len} bytes is shorter than a journal header"),
        });
    }
    let mut header = [0u8; HEADER_LEN as usize];
    read_exact_at(&file, &mut header, 0).map_err(|e| StorageError::io(path, e))?;
    let sum = u64::from_le_bytes(header[56..64].try_into().expect("8 bytes"));
    if &header[0..8] != MAGIC || XxHash3_64::oneshot(&header[0..56]) != sum {
        return Ok(JournalContents::Foreign {
            reason: "not a journal header (bad magic or checksum)".into(),
        });
    }
    let format = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    let wanted = if cipher.is_some() {
        FORMAT_ENCRYPTED
    } else {
        FORMAT_PLAIN
    };
    if format != wanted {
        let reason = match format {
            FORMAT_PLAIN => "the journal is not encrypted and the store is".into(),
            FORMAT_ENCRYPTED => "the journal is encrypted and the store is not".into(),
            _ => format!("journal format {format} is not supported"),
        };
        return Ok(JournalContents::Foreign { reason });
    }
    if &header[16..32] != file_id {
        return Ok(JournalContents::Foreign {
            reason: "journal belongs to another store file (file id differs)".into(),
        });
    }
    let schema_version = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
    Ok(JournalContents::Records(JournalReader {
        file,
        path: path.to_path_buf(),
        file_len,
        file_id: *file_id,
        cipher,
        schema_version,
        checkpoint_lsn,
        pos: HEADER_LEN,
        read: 0,
        stopped: None,
        ended: false,
        buf: Vec::new(),
    }))
}

/// Records up to this long are read whole; a longer one is first checked
/// against its checksum in pieces of this size, so that a length read from
/// a damaged header (up to 4 GiB, the field's range and so the largest
/// record a writer may write) sizes no allocation. A record that passes
/// its checksum was written whole by a writer, which held it in memory.
const READ_WHOLE: usize = 1 << 20;

/// The records of a journal of this store with lsn greater than the
/// checkpoint's, in order, without gaps, read one at a time into one
/// buffer: replaying a journal holds one record in memory, not all of
/// them.
pub(crate) struct JournalReader<'c> {
    file: File,
    path: PathBuf,
    file_len: u64,
    file_id: [u8; 16],
    cipher: Option<&'c Cipher>,
    /// Schema version of the store that wrote the journal.
    pub schema_version: u32,
    checkpoint_lsn: u64,
    /// Offset of the next record.
    pos: u64,
    /// Records returned since the start.
    read: u64,
    /// Why reading stopped before the end of the file, if it did.
    stopped: Option<String>,
    ended: bool,
    /// The last record's payload (decrypted).
    buf: Vec<u8>,
}

impl JournalReader<'_> {
    /// Starts over from the first record (for a second pass).
    pub fn rewind(&mut self) {
        self.pos = HEADER_LEN;
        self.read = 0;
        self.stopped = None;
        self.ended = false;
    }

    /// Why reading stopped before the end of the file, once it has.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.as_deref()
    }

    /// The next record, `(lsn, payload)`, or `None` at the end of the
    /// records (then see [`JournalReader::stopped`]).
    pub fn next_record(&mut self) -> Result<Option<(u64, &[u8])>> {
        if self.ended {
            return Ok(None);
        }
        match self.advance() {
            Ok(Some(lsn)) => Ok(Some((lsn, &self.buf))),
            Ok(None) => {
                self.ended = true;
                Ok(None)
            }
            Err(e) => {
                self.ended = true;
                Err(StorageError::io(&self.path, e))
            }
        }
    }

    fn stop(&mut self, why: String) -> io::Result<Option<u64>> {
        self.stopped = Some(why);
        Ok(None)
    }

    /// Reads the record at `pos` into `buf`; its lsn, or `None` at the end.
    fn advance(&mut self) -> io::Result<Option<u64>> {
        let pos = self.pos;
        if pos + RECORD_HEADER_LEN as u64 > self.file_len {
            return Ok(None);
        }
        let mut rh = [0u8; RECORD_HEADER_LEN];
        read_exact_at(&self.file, &mut rh, pos)?;
        let len = u32::from_le_bytes(rh[0..4].try_into().expect("4 bytes"));
        let lsn = u64::from_le_bytes(rh[4..12].try_into().expect("8 bytes"));
        let sum = u64::from_le_bytes(rh[12..20].try_into().expect("8 bytes"));
        if len == 0 && lsn == 0 && sum == 0 {
            return Ok(None); // the end marker (or preallocated zeros): a clean end
        }
        let end = pos + RECORD_HEADER_LEN as u64 + u64::from(len);
        if end > self.file_len {
            return self.stop(format!(
                "the record at offset {pos} is torn or damaged (its length, {len} bytes, \
                 runs past the end of the journal)"
            ));
        }
        // More than this platform can hold in memory (over 2 GiB on a
        // 32-bit target): no writer here produced it, it could not be
        // applied here even if intact, and hashing it would overflow the
        // hasher's byte count.
        if u64::from(len) > isize::MAX as u64 - RECORD_HEADER_LEN as u64 {
            return self.stop(format!(
                "the record at offset {pos} is torn or damaged (its length, {len} bytes, \
                 is more than this platform can hold)"
            ));
        }
        if !self.read_payload(pos, len, lsn, sum)? {
            return self.stop(format!(
                "the record at offset {pos} is torn or damaged (it fails its checksum)"
            ));
        }
        if let Some(cipher) = self.cipher {
            let Some(plain) = cipher.open(&record_aad(&self.file_id, lsn), &mut self.buf) else {
                return self.stop(format!(
                    "the record at offset {pos} fails authentication (damaged, or not written \
                     with this store's key)"
                ));
            };
            let n = plain.len();
            self.buf.truncate(n);
        }
        let expected = self.checkpoint_lsn + self.read + 1;
        if lsn < expected && self.read == 0 {
            // A record from before the checkpoint, in the first slot: the
            // journal was rewound and nothing was written since.
            return Ok(None);
        }
        if lsn != expected {
            return self.stop(format!(
                "record {lsn} at offset {pos} does not follow record {}",
                expected - 1
            ));
        }
        self.read += 1;
        self.pos = end;
        Ok(Some(lsn))
    }

    /// Reads the payload of the record at `pos` (within the file) into
    /// `buf`; whether it passes its checksum. A long one is checked before
    /// it is read whole (see [`READ_WHOLE`]).
    fn read_payload(&mut self, pos: u64, len: u32, lsn: u64, sum: u64) -> io::Result<bool> {
        let at = pos + RECORD_HEADER_LEN as u64;
        let len = len as usize;
        if len > READ_WHOLE {
            let mut h = record_hasher(&self.file_id, lsn, len as u32);
            self.buf.resize(READ_WHOLE, 0);
            let end = at + len as u64;
            let mut off = at;
            while off < end {
                // A hole reads as zeros: hashed without reading it, so that
                // a length read from a damaged header in a sparse journal
                // costs no I/O either (4 GiB of holes read at 350 MB/s).
                if let Some(hole) = hole_at(&self.file, off, end) {
                    let mut left = hole;
                    while left > 0 {
                        let n = left.min(ZEROS.len() as u64) as usize;
                        h.write(&ZEROS[..n]);
                        left -= n as u64;
                    }
                    off += hole;
                    continue;
                }
                let n = (end - off).min(READ_WHOLE as u64) as usize;
                read_exact_at(&self.file, &mut self.buf[..n], off)?;
                h.write(&self.buf[..n]);
                off += n as u64;
            }
            if h.finish() != sum {
                return Ok(false);
            }
        }
        self.buf.resize(len, 0);
        read_exact_at(&self.file, &mut self.buf, at)?;
        Ok(record_checksum(&self.file_id, lsn, len as u32, &self.buf) == sum)
    }
}

static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// The bytes of the hole at `off` (up to `end`) if the file has one there,
/// where the platform tells (Linux `SEEK_DATA`); `None` for data, or when
/// it cannot tell.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn hole_at(file: &File, off: u64, end: u64) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let at = libc::off_t::try_from(off).ok()?;
    // SAFETY: lseek only reads its integer arguments and acts on the
    // descriptor, which `file` keeps open for the call. It moves the file's
    // position, which nothing here uses (reads are positioned).
    let data = unsafe { libc::lseek(file.as_raw_fd(), at, libc::SEEK_DATA) };
    let data = match u64::try_from(data) {
        Ok(d) => d,
        // No data after `off`: a hole to the end of the file.
        Err(_) if io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) => end,
        Err(_) => return None,
    };
    (data > off).then(|| data.min(end) - off)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn hole_at(_file: &File, _off: u64, _end: u64) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::{JournalContents, JournalReader, READ_WHOLE, read_journal};
    use crate::config::EncryptionKey;
    use crate::engine::catalog::testing::VALUES;
    use crate::engine::journal::{Effect, EffectLog, Effects, Journal, JournalSpec};
    use crate::engine::protect::crypt::Cipher;

    const FILE_ID: [u8; 16] = [7; 16];

    fn value(lsn: u64, len: usize) -> Vec<u8> {
        (0..len).map(|i| (i as u64 ^ lsn) as u8).collect()
    }

    /// Records 1..=3, the second `long` bytes of value; their offsets.
    fn journal(path: &std::path::Path, cipher: Option<Arc<Cipher>>, long: usize) -> Vec<u64> {
        let mut journal = Journal::create(JournalSpec {
            path: path.to_path_buf(),
            schema_version: 1,
            file_id: FILE_ID,
            sync_each: false,
            retain: 1 << 20,
            stats: Arc::default(),
            faults: None,
            cipher,
        })
        .unwrap();
        let mut log = EffectLog::new();
        let mut at = Vec::new();
        for lsn in 1..=3u64 {
            log.clear();
            let len = if lsn == 2 { long } else { 100 };
            log.put(VALUES.tag, b"key", &value(lsn, len));
            at.push(journal.write_pos);
            journal.append(lsn, &mut log).unwrap();
        }
        at
    }

    fn reader<'c>(path: &std::path::Path, cipher: Option<&'c Cipher>) -> JournalReader<'c> {
        match read_journal(path, &FILE_ID, 0, cipher).unwrap() {
            JournalContents::Records(r) => r,
            _ => panic!("not a journal of this store"),
        }
    }

    fn put_value(payload: &[u8]) -> Vec<u8> {
        match Effects::new(payload).next().unwrap().unwrap() {
            Effect::Put { value, .. } => value.to_vec(),
            _ => panic!("not a put"),
        }
    }

    /// A record longer than is read whole in one go (checked in pieces
    /// first) reads back intact, in both journal formats, and reading it
    /// twice (two passes) gives the same records.
    #[test]
    fn a_long_record_reads_back_whole() {
        let key = EncryptionKey::raw([3; 32]);
        let cipher = Arc::new(Cipher::create(&key, &FILE_ID).unwrap().0);
        for cipher in [None, Some(cipher)] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("j");
            let long = 3 * READ_WHOLE + 17;
            journal(&path, cipher.clone(), long);
            let mut r = reader(&path, cipher.as_deref());
            for _ in 0..2 {
                r.rewind();
                for lsn in 1..=3 {
                    let (got, payload) = r.next_record().unwrap().unwrap();
                    assert_eq!(got, lsn);
                    let len = if lsn == 2 { long } else { 100 };
                    assert!(put_value(payload) == value(lsn, len), "record {lsn}");
                }
                assert!(r.next_record().unwrap().is_none());
                assert_eq!(r.stopped(), None);
            }
        }
    }

    /// A record header damaged to claim 4 GiB, in a journal made that long
    /// by a hole: reading stops there as at a torn record, promptly,
    /// without reading the hole or allocating the length.
    #[test]
    fn a_length_from_a_damaged_header_allocates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let at = journal(&path, None, 100);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let claim = u32::MAX;
        crate::engine::files::write_all_at(&file, &claim.to_le_bytes(), at[1]).unwrap();
        // Past the end of the file, then within it (a hole).
        // Within the file, a 32-bit target refuses the length itself.
        let within = match cfg!(target_pointer_width = "32") {
            true => "more than this platform can hold",
            false => "fails its checksum",
        };
        for (grown, why) in [(false, "runs past the end"), (true, within)] {
            if grown {
                file.set_len(at[1] + 20 + u64::from(claim)).unwrap();
            }
            let started = Instant::now();
            let mut r = reader(&path, None);
            assert_eq!(r.next_record().unwrap().unwrap().0, 1);
            assert!(r.next_record().unwrap().is_none());
            let stopped = r.stopped().unwrap();
            let torn = format!("offset {} is torn", at[1]);
            assert!(
                stopped.contains(&torn) && stopped.contains(why),
                "{stopped}"
            );
            assert!(r.buf.capacity() <= READ_WHOLE, "{}", r.buf.capacity());
            eprintln!(
                "4 GiB claimed, grown {grown}: rejected in {:?}",
                started.elapsed()
            );
        }
    }
}
