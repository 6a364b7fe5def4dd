//! The physical layout of a protected (format v2) store file, and the
//! encodings of its superblock and tag slots.
//!
//! ```text
//! physical offset   content
//! 0                 redb's page 0 (its header and commit slots), raw; the
//!                   first 9 bytes hold V2_MAGIC instead of redb's magic
//! 4096              superblock, copy 0
//! 8192              superblock, copy 1 (identical)
//! 12288             segment 0: tag slot 0, tag slot 1, N data blocks
//! 12288 + segment   segment 1: ...
//! ```
//!
//! Logical block `i >= 1` (redb's bytes `i * 4096 ..`) is data block
//! `j = i - 1`: block `j % N` of segment `j / N`. N depends on the mode's
//! [`Geometry`]: 253 verified, 101 encrypted. A tag slot holds the entries
//! (tags, or nonces and tags) of its segment's N blocks, the segment's number, the file's identity and
//! a generation; the two slots of a segment are written alternately, so a
//! torn slot write leaves the other, older slot intact (see `mod.rs`).

use twox_hash::{XxHash3_64, XxHash3_128};

use super::crypt::{Envelope, KDF_LEN, Kdf, WRAPPED_LEN};

/// The unit of protection: redb's page size.
pub(crate) const BLOCK: u64 = 4096;
const BLOCK_USIZE: usize = BLOCK as usize;

/// The first bytes of a protected file, where redb keeps its magic number:
/// redb itself (and builds of this crate before format v2) refuse the file
/// instead of reading tag slots as pages.
pub(crate) const V2_MAGIC: [u8; 9] = [b'w', b'a', b'r', b'd', b'b', 0x1A, 0x02, 0x0D, 0x0A];
/// redb's magic number, which redb reads and writes at offset 0.
pub(crate) const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// Where the superblock's two copies are.
pub(crate) const SUPERBLOCK_AT: [u64; 2] = [BLOCK, 2 * BLOCK];
/// Where segment 0 starts.
pub(crate) const DATA_BASE: u64 = 3 * BLOCK;

/// A tag slot: generation (8), segment (8), file id (16), one entry per
/// data block, and a checksum of everything before it (16) at the end.
const SLOT_HEAD: usize = 32;
const SLOT_ROOM: usize = BLOCK_USIZE - SLOT_HEAD - 16;

/// How a protection mode lays out its segments: the bytes of a block's
/// entry in its tag slot, and so how many blocks one slot covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Bytes of one entry: a 16-byte tag (verified), or nonce and AEAD tag
    /// (encrypted).
    pub entry: usize,
    /// Data blocks per segment.
    pub per_segment: u64,
}

/// Mode 1: a 128-bit keyless tag per block, 253 blocks per segment.
pub(crate) const VERIFIED: Geometry = Geometry::with_entry(16);
/// Mode 2: nonce (24) and Poly1305 tag (16) per block, 101 per segment.
pub(crate) const ENCRYPTED: Geometry = Geometry::with_entry(super::crypt::ENTRY_LEN);

/// A verified block's tag: 128 bits; all zeros means "never written".
pub(crate) type Tag = [u8; 16];

impl Geometry {
    const fn with_entry(entry: usize) -> Geometry {
        Geometry {
            entry,
            per_segment: (SLOT_ROOM / entry) as u64,
        }
    }

    /// Physical bytes of one segment.
    pub fn segment_len(self) -> u64 {
        (2 + self.per_segment) * BLOCK
    }

    /// Where data block `j` lives: its segment, its index there, its offset.
    pub fn locate(self, j: u64) -> (u64, usize, u64) {
        let (s, k) = (j / self.per_segment, j % self.per_segment);
        (
            s,
            k as usize,
            DATA_BASE + s * self.segment_len() + (2 + k) * BLOCK,
        )
    }

    /// Physical offset of slot `which` of segment `s`.
    pub fn slot_at(self, s: u64, which: usize) -> u64 {
        DATA_BASE + s * self.segment_len() + which as u64 * BLOCK
    }

    /// The physical length that holds logical length `len` (a multiple of
    /// [`BLOCK`]; 0 for a file redb has not initialized).
    pub fn physical_len(self, len: u64) -> u64 {
        if len <= BLOCK {
            return DATA_BASE;
        }
        let blocks = len / BLOCK - 1;
        let (full, rest) = (blocks / self.per_segment, blocks % self.per_segment);
        let tail = if rest == 0 { 0 } else { (2 + rest) * BLOCK };
        DATA_BASE + full * self.segment_len() + tail
    }

    /// The logical length held by a physical length (a torn growth counts
    /// only whole blocks with their slots before them).
    pub fn logical_len(self, physical: u64) -> u64 {
        if physical <= DATA_BASE {
            return BLOCK;
        }
        let d = physical - DATA_BASE;
        let (full, rest) = (d / self.segment_len(), d % self.segment_len());
        let tail = (rest / BLOCK).saturating_sub(2);
        BLOCK + (full * self.per_segment + tail) * BLOCK
    }

    /// Bytes of a segment's entries.
    pub fn entries_len(self) -> usize {
        self.per_segment as usize * self.entry
    }
}

/// The tag of data block `j` holding `data`, for the file whose identity
/// hashes to `seed`: a block moved to another position or another file no
/// longer verifies. Never all zeros.
pub(crate) fn tag(seed: u64, j: u64, data: &[u8]) -> Tag {
    let mut t = XxHash3_128::oneshot_with_seed(seed ^ j.wrapping_mul(0x9E37_79B9_7F4A_7C15), data)
        .to_le_bytes();
    if t == [0; 16] {
        t[0] = 1;
    }
    t
}

/// The seed of a file's tags.
pub(crate) fn seed_of(file_id: &[u8; 16]) -> u64 {
    XxHash3_64::oneshot(file_id)
}

/// What the superblock says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Superblock {
    /// Random at creation; binds every tag to this file.
    pub file_id: [u8; 16],
    /// Bumped by every rewrite (a rekey), so that of two intact copies that
    /// differ, the newer is tried first.
    pub generation: u64,
    /// The wrapped data key: the file is encrypted (mode 2).
    pub envelope: Option<Envelope>,
}

const SUPER_MAGIC: &[u8; 16] = b"wa-redb-protect\0";
/// Protection modes: 1 = verified (tags, no encryption), 2 = encrypted.
const MODE_VERIFIED: u32 = 1;
const MODE_ENCRYPTED: u32 = 2;
const FORMAT_VERSION: u32 = 2;

/// Why a superblock cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SuperblockError {
    /// Neither copy is intact.
    Damaged,
    /// Intact, but written by a newer build (another mode or layout).
    Unsupported { version: u32, mode: u32 },
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"))
}

impl Superblock {
    /// The layout of the file's segments.
    pub fn geometry(&self) -> Geometry {
        match self.envelope {
            Some(_) => ENCRYPTED,
            None => VERIFIED,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let geometry = self.geometry();
        let mode = match self.envelope {
            Some(_) => MODE_ENCRYPTED,
            None => MODE_VERIFIED,
        };
        let mut b = vec![0u8; BLOCK_USIZE];
        b[..16].copy_from_slice(SUPER_MAGIC);
        b[16..20].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[20..24].copy_from_slice(&mode.to_le_bytes());
        b[24..28].copy_from_slice(&(BLOCK as u32).to_le_bytes());
        b[28..32].copy_from_slice(&(geometry.per_segment as u32).to_le_bytes());
        b[32..36].copy_from_slice(&(geometry.entry as u32).to_le_bytes());
        b[36..52].copy_from_slice(&self.file_id);
        b[52..60].copy_from_slice(&self.generation.to_le_bytes());
        if let Some(env) = &self.envelope {
            b[60..60 + KDF_LEN].copy_from_slice(&env.kdf.encode());
            b[92..92 + WRAPPED_LEN].copy_from_slice(&env.wrapped);
        }
        let sum = XxHash3_128::oneshot(&b[..BLOCK_USIZE - 16]).to_le_bytes();
        b[BLOCK_USIZE - 16..].copy_from_slice(&sum);
        b
    }

    /// Decodes one copy; `None` if it is not intact.
    fn decode_one(b: &[u8]) -> Option<Result<Superblock, SuperblockError>> {
        if b.len() != BLOCK_USIZE || &b[..16] != SUPER_MAGIC {
            return None;
        }
        let sum = XxHash3_128::oneshot(&b[..BLOCK_USIZE - 16]).to_le_bytes();
        if b[BLOCK_USIZE - 16..] != sum {
            return None;
        }
        let (version, mode) = (u32_at(b, 16), u32_at(b, 20));
        let unsupported = Some(Err(SuperblockError::Unsupported { version, mode }));
        let geometry = match mode {
            MODE_VERIFIED => VERIFIED,
            MODE_ENCRYPTED => ENCRYPTED,
            _ => return unsupported,
        };
        let layout = (u32_at(b, 24), u32_at(b, 28), u32_at(b, 32));
        if version != FORMAT_VERSION
            || layout
                != (
                    BLOCK as u32,
                    geometry.per_segment as u32,
                    geometry.entry as u32,
                )
        {
            return unsupported;
        }
        let envelope = match mode {
            MODE_ENCRYPTED => {
                let Some(kdf) = Kdf::decode(&b[60..60 + KDF_LEN]) else {
                    return unsupported;
                };
                let wrapped = b[92..92 + WRAPPED_LEN].try_into().expect("wrapped key");
                Some(Envelope { kdf, wrapped })
            }
            _ => None,
        };
        Some(Ok(Superblock {
            file_id: b[36..52].try_into().expect("16 bytes"),
            generation: u64::from_le_bytes(b[52..60].try_into().expect("8 bytes")),
            envelope,
        }))
    }

    /// The intact copies of two, newest first (one of them if both are the
    /// same); an unsupported copy fails the whole.
    pub fn decode(copies: [&[u8]; 2]) -> Result<Vec<Superblock>, SuperblockError> {
        let mut intact = Vec::new();
        for copy in copies {
            match Superblock::decode_one(copy) {
                Some(Ok(sb)) if !intact.contains(&sb) => intact.push(sb),
                Some(Ok(_)) | None => {}
                Some(Err(e)) => return Err(e),
            }
        }
        intact.sort_by_key(|sb: &Superblock| std::cmp::Reverse(sb.generation));
        if intact.is_empty() {
            return Err(SuperblockError::Damaged);
        }
        Ok(intact)
    }
}

/// One decoded tag slot.
pub(crate) struct Slot {
    pub generation: u64,
    /// The segment's entries, `geometry.entry` bytes each.
    pub entries: Vec<u8>,
}

/// Encodes the slot of segment `s` at `generation`.
pub(crate) fn encode_slot(file_id: &[u8; 16], s: u64, generation: u64, entries: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK_USIZE];
    b[..8].copy_from_slice(&generation.to_le_bytes());
    b[8..16].copy_from_slice(&s.to_le_bytes());
    b[16..32].copy_from_slice(file_id);
    b[SLOT_HEAD..SLOT_HEAD + entries.len()].copy_from_slice(entries);
    let sum = XxHash3_128::oneshot(&b[..BLOCK_USIZE - 16]).to_le_bytes();
    b[BLOCK_USIZE - 16..].copy_from_slice(&sum);
    b
}

/// Decodes a slot of segment `s` of the file `file_id`; `None` unless it
/// is intact and belongs there (a never-written slot is all zeros).
pub(crate) fn decode_slot(
    geometry: Geometry,
    file_id: &[u8; 16],
    s: u64,
    b: &[u8],
) -> Option<Slot> {
    if b.len() != BLOCK_USIZE {
        return None;
    }
    let sum = XxHash3_128::oneshot(&b[..BLOCK_USIZE - 16]).to_le_bytes();
    if b[BLOCK_USIZE - 16..] != sum || b[8..16] != s.to_le_bytes() || b[16..32] != file_id[..] {
        return None;
    }
    let generation = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
    let entries = b[SLOT_HEAD..SLOT_HEAD + geometry.entries_len()].to_vec();
    Some(Slot {
        generation,
        entries,
    })
}
