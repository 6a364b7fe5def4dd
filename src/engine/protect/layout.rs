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
//! 12288 + SEGMENT   segment 1: ...
//! ```
//!
//! Logical block `i >= 1` (redb's bytes `i * 4096 ..`) is data block
//! `j = i - 1`: block `j % N` of segment `j / N`. A tag slot holds the tags
//! of its segment's N blocks, the segment's number, the file's identity and
//! a generation; the two slots of a segment are written alternately, so a
//! torn slot write leaves the other, older slot intact (see `mod.rs`).

use xxhash_rust::xxh3::{xxh3_64, xxh3_128, xxh3_128_with_seed};

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

/// Bytes of one tag.
pub(crate) const TAG_LEN: usize = 16;
/// A tag slot: generation (8), segment (8), file id (16), the tags, and a
/// checksum of everything before it (16) at the end.
const SLOT_HEAD: usize = 32;
/// Data blocks per segment.
pub(crate) const PER_SEGMENT: u64 = ((BLOCK_USIZE - SLOT_HEAD - 16) / TAG_LEN) as u64;
/// Physical bytes of one segment.
pub(crate) const SEGMENT: u64 = (2 + PER_SEGMENT) * BLOCK;

/// A tag: 128 bits; all zeros means "never written".
pub(crate) type Tag = [u8; TAG_LEN];
pub(crate) const UNWRITTEN: Tag = [0; TAG_LEN];

/// Where data block `j` lives: its segment, its index there, its offset.
pub(crate) fn locate(j: u64) -> (u64, usize, u64) {
    let (s, k) = (j / PER_SEGMENT, j % PER_SEGMENT);
    (s, k as usize, DATA_BASE + s * SEGMENT + (2 + k) * BLOCK)
}

/// Physical offset of slot `which` of segment `s`.
pub(crate) fn slot_at(s: u64, which: usize) -> u64 {
    DATA_BASE + s * SEGMENT + which as u64 * BLOCK
}

/// The physical length that holds logical length `len` (a multiple of
/// [`BLOCK`]; 0 for a file redb has not initialized).
pub(crate) fn physical_len(len: u64) -> u64 {
    if len <= BLOCK {
        return DATA_BASE;
    }
    let blocks = len / BLOCK - 1;
    let (full, rest) = (blocks / PER_SEGMENT, blocks % PER_SEGMENT);
    let tail = if rest == 0 { 0 } else { (2 + rest) * BLOCK };
    DATA_BASE + full * SEGMENT + tail
}

/// The logical length held by a physical length (a torn growth counts only
/// whole blocks with their slots before them).
pub(crate) fn logical_len(physical: u64) -> u64 {
    if physical <= DATA_BASE {
        return BLOCK;
    }
    let d = physical - DATA_BASE;
    let (full, rest) = (d / SEGMENT, d % SEGMENT);
    let tail = (rest / BLOCK).saturating_sub(2);
    BLOCK + (full * PER_SEGMENT + tail) * BLOCK
}

/// The tag of data block `j` holding `data`, for the file whose identity
/// hashes to `seed`: a block moved to another position or another file no
/// longer verifies. Never [`UNWRITTEN`].
pub(crate) fn tag(seed: u64, j: u64, data: &[u8]) -> Tag {
    let mut t =
        xxh3_128_with_seed(data, seed ^ j.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes();
    if t == UNWRITTEN {
        t[0] = 1;
    }
    t
}

/// The seed of a file's tags.
pub(crate) fn seed_of(file_id: &[u8; 16]) -> u64 {
    xxh3_64(file_id)
}

/// What the superblock says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Superblock {
    /// Random at creation; binds every tag to this file.
    pub file_id: [u8; 16],
}

const SUPER_MAGIC: &[u8; 16] = b"wa-redb-protect\0";
/// Protection modes; 1 = verified (tags, no encryption).
const MODE_VERIFIED: u32 = 1;
const FORMAT_VERSION: u32 = 2;

/// Why a superblock cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SuperblockError {
    /// Neither copy is intact.
    Damaged,
    /// Intact, but written by a newer build (another mode or layout).
    Unsupported { version: u32, mode: u32 },
}

impl Superblock {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; BLOCK_USIZE];
        b[..16].copy_from_slice(SUPER_MAGIC);
        b[16..20].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[20..24].copy_from_slice(&MODE_VERIFIED.to_le_bytes());
        b[24..28].copy_from_slice(&(BLOCK as u32).to_le_bytes());
        b[28..32].copy_from_slice(&(PER_SEGMENT as u32).to_le_bytes());
        b[32..36].copy_from_slice(&(TAG_LEN as u32).to_le_bytes());
        b[36..52].copy_from_slice(&self.file_id);
        let sum = xxh3_128(&b[..BLOCK_USIZE - 16]).to_le_bytes();
        b[BLOCK_USIZE - 16..].copy_from_slice(&sum);
        b
    }

    /// Decodes one copy; `None` if it is not intact.
    fn decode_one(b: &[u8]) -> Option<Result<Superblock, SuperblockError>> {
        if b.len() != BLOCK_USIZE || &b[..16] != SUPER_MAGIC {
            return None;
        }
        let sum = xxh3_128(&b[..BLOCK_USIZE - 16]).to_le_bytes();
        if b[BLOCK_USIZE - 16..] != sum {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let (version, mode) = (u32_at(16), u32_at(20));
        let layout = (u32_at(24), u32_at(28), u32_at(32));
        if version != FORMAT_VERSION
            || mode != MODE_VERIFIED
            || layout != (BLOCK as u32, PER_SEGMENT as u32, TAG_LEN as u32)
        {
            return Some(Err(SuperblockError::Unsupported { version, mode }));
        }
        Some(Ok(Superblock {
            file_id: b[36..52].try_into().expect("16 bytes"),
        }))
    }

    /// Decodes the first intact copy of two.
    pub fn decode(copies: [&[u8]; 2]) -> Result<Superblock, SuperblockError> {
        copies
            .into_iter()
            .find_map(Superblock::decode_one)
            .unwrap_or(Err(SuperblockError::Damaged))
    }
}

/// One decoded tag slot.
pub(crate) struct Slot {
    pub generation: u64,
    pub tags: Vec<Tag>,
}

/// Encodes the slot of segment `s` at `generation`.
pub(crate) fn encode_slot(file_id: &[u8; 16], s: u64, generation: u64, tags: &[Tag]) -> Vec<u8> {
    debug_assert_eq!(tags.len() as u64, PER_SEGMENT);
    let mut b = vec![0u8; BLOCK_USIZE];
    b[..8].copy_from_slice(&generation.to_le_bytes());
    b[8..16].copy_from_slice(&s.to_le_bytes());
    b[16..32].copy_from_slice(file_id);
    for (i, t) in tags.iter().enumerate() {
        let at = SLOT_HEAD + i * TAG_LEN;
        b[at..at + TAG_LEN].copy_from_slice(t);
    }
    let sum = xxh3_128(&b[..BLOCK_USIZE - 16]).to_le_bytes();
    b[BLOCK_USIZE - 16..].copy_from_slice(&sum);
    b
}

/// Decodes a slot of segment `s` of the file `file_id`; `None` unless it
/// is intact and belongs there (a never-written slot is all zeros).
pub(crate) fn decode_slot(file_id: &[u8; 16], s: u64, b: &[u8]) -> Option<Slot> {
    if b.len() != BLOCK_USIZE {
        return None;
    }
    let sum = xxh3_128(&b[..BLOCK_USIZE - 16]).to_le_bytes();
    if b[BLOCK_USIZE - 16..] != sum || b[8..16] != s.to_le_bytes() || b[16..32] != file_id[..] {
        return None;
    }
    let generation = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
    let tags = (0..PER_SEGMENT as usize)
        .map(|i| {
            let at = SLOT_HEAD + i * TAG_LEN;
            b[at..at + TAG_LEN].try_into().expect("16 bytes")
        })
        .collect();
    Some(Slot { generation, tags })
}
