//! Encryption at rest (protection mode 2): the key envelope and the AEAD
//! every encrypted block and journal record goes through.
//!
//! - **AEAD**: XChaCha20-Poly1305 with a new 192-bit nonce for every block
//!   write and every journal record (a random 128-bit prefix per open and a
//!   counter, see `Nonces`), so nonces do not repeat over the file's life
//!   however often a page is rewritten (a nonce derived from the page's
//!   offset, as one redb fork did, repeats at the first rewrite). The
//!   associated data binds a block to its position and to its file, and a
//!   record to its journal position.
//! - **Envelope**: a random 256-bit data key encrypts everything; it is
//!   stored wrapped (XChaCha20-Poly1305) by a key-encryption key, which is
//!   the user's raw key or Argon2id of the user's passphrase with a random
//!   salt kept in the superblock. A passphrase change rewraps the data key
//!   (two superblock writes); the wrapped key doubles as the key check, so a
//!   wrong key fails at open, before anything is read or written.
//! - Key material lives in [`Zeroizing`] buffers and the cipher zeroizes
//!   its key when dropped.

use std::fmt;
use std::io;

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::config::{EncryptionKey, KeyMaterial};
use crate::error::KeyProblem;

/// Bytes of a nonce.
pub(crate) const NONCE_LEN: usize = 24;
/// Bytes of an AEAD tag.
pub(crate) const TAG_LEN: usize = 16;
/// What an encrypted block's entry in its tag slot holds: nonce, tag.
pub(crate) const ENTRY_LEN: usize = NONCE_LEN + TAG_LEN;
/// Bytes of a wrapped data key: nonce, encrypted key, tag.
pub(crate) const WRAPPED_LEN: usize = NONCE_LEN + 32 + TAG_LEN;
/// What [`Cipher::seal`] appends to a record: tag, nonce.
pub(crate) const SEAL_OVERHEAD: usize = TAG_LEN + NONCE_LEN;

/// Argon2id cost of a passphrase: OWASP's recommended minimum (19 MiB,
/// two passes, one lane). About 30 ms on a desktop core, a second or two
/// on a Raspberry Pi Zero, once per open.
const ARGON2_M_KIB: u32 = 19 * 1024;
const ARGON2_T: u32 = 2;
const ARGON2_P: u32 = 1;
/// Bounds on the costs a file may ask for: a damaged or hostile superblock
/// must not make an open allocate gigabytes or spin for hours.
const ARGON2_MAX_M_KIB: u32 = 1 << 20;
const ARGON2_MAX_T: u32 = 64;

/// How the key-encryption key comes from what the user gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kdf {
    /// The user's 32-byte key is the key-encryption key.
    Raw,
    /// Argon2id of the passphrase.
    Argon2id {
        m_kib: u32,
        t: u32,
        p: u32,
        salt: [u8; 16],
    },
}

/// Bytes of an encoded [`Kdf`].
pub(crate) const KDF_LEN: usize = 32;
const KDF_RAW: u32 = 1;
const KDF_ARGON2ID: u32 = 2;

impl Kdf {
    /// kind (4), Argon2 m, t, p (4 each), salt (16); little-endian.
    pub fn encode(&self) -> [u8; KDF_LEN] {
        let (kind, m, t, p, salt) = match *self {
            Kdf::Raw => (KDF_RAW, 0, 0, 0, [0; 16]),
            Kdf::Argon2id { m_kib, t, p, salt } => (KDF_ARGON2ID, m_kib, t, p, salt),
        };
        let mut b = [0u8; KDF_LEN];
        for (i, v) in [kind, m, t, p].into_iter().enumerate() {
            b[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
        b[16..].copy_from_slice(&salt);
        b
    }

    /// `None` for a kind this build does not know.
    pub fn decode(b: &[u8]) -> Option<Kdf> {
        let u = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        match u(0) {
            KDF_RAW => Some(Kdf::Raw),
            KDF_ARGON2ID => Some(Kdf::Argon2id {
                m_kib: u(4),
                t: u(8),
                p: u(12),
                salt: b[16..32].try_into().expect("16 bytes"),
            }),
            _ => None,
        }
    }
}

/// The start of a small file sealed on its own ([`Cipher::seal_file`]):
/// a snapshot's sidecar.
const SEALED_MAGIC: &[u8; 16] = b"wa-redb-sealed\x1a\x01";

/// The wrapped data key and how to unwrap it, as stored in the superblock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub kdf: Kdf,
    pub wrapped: [u8; WRAPPED_LEN],
}

/// Why an envelope does not open.
#[derive(Debug)]
pub(crate) enum UnlockError {
    /// The key (or passphrase) is not the one the file was encrypted with.
    WrongKey,
    /// The passphrase is given as a raw key or the other way round.
    WrongKind { file_uses: &'static str },
    /// The stored KDF parameters are out of bounds.
    BadParameters(String),
}

impl UnlockError {
    /// In the crate's vocabulary, for an opener who gave `given`.
    pub fn into_problem(self, given: &EncryptionKey) -> KeyProblem {
        match self {
            UnlockError::WrongKey => KeyProblem::Wrong,
            UnlockError::WrongKind { file_uses } => KeyProblem::WrongKind {
                file_uses,
                given: given.kind(),
            },
            UnlockError::BadParameters(why) => KeyProblem::BadParameters(why),
        }
    }
}

/// A raw key given for a file encrypted with a passphrase.
const WRONG_KIND_PASSPHRASE: UnlockError = UnlockError::WrongKind {
    file_uses: "a passphrase",
};
/// A passphrase given for a file encrypted with a raw key.
const WRONG_KIND_RAW: UnlockError = UnlockError::WrongKind {
    file_uses: "a raw 32-byte key",
};

/// A file's data key, ready to seal and open, with the key-encryption key
/// that wraps it (for copies of the file and for rewraps).
pub(crate) struct Cipher {
    /// The file whose data key this is.
    file_id: [u8; 16],
    aead: XChaCha20Poly1305,
    nonces: Nonces,
    /// Kept to rewrap it under a new key ([`Cipher::rewrap`]).
    data_key: Zeroizing<[u8; 32]>,
    kek: Zeroizing<[u8; 32]>,
    kdf: Kdf,
    /// What the opener gave, to tell whether a later opener gives the same.
    source: EncryptionKey,
}

/// The nonces of one cipher: a random 128-bit prefix drawn when the cipher
/// is made (each open of a file makes its own) and a 64-bit counter. They
/// never repeat within one cipher; two ciphers of one data key (two opens,
/// over the years) share a prefix with probability 2^-128 per pair. As
/// unpredictable across opens as fully random nonces, without a
/// `getrandom` system call per block and per journal record (it was a
/// sixth of the cost of sealing a small record).
struct Nonces {
    prefix: [u8; 16],
    counter: std::sync::atomic::AtomicU64,
}

impl Nonces {
    fn new() -> io::Result<Nonces> {
        Ok(Nonces {
            prefix: random()?,
            counter: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn next(&self) -> XNonce {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..16].copy_from_slice(&self.prefix);
        nonce[16..].copy_from_slice(&n.to_le_bytes());
        XNonce::from(nonce)
    }
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cipher").finish_non_exhaustive()
    }
}

fn random<const N: usize>() -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| io::Error::other(format!("no randomness: {e}")))?;
    Ok(b)
}

fn derive(source: &EncryptionKey, kdf: &Kdf) -> Result<Zeroizing<[u8; 32]>, UnlockError> {
    match (source.material(), kdf) {
        (KeyMaterial::Raw(key), Kdf::Raw) => Ok(Zeroizing::new(**key)),
        (KeyMaterial::Passphrase(pass), &Kdf::Argon2id { m_kib, t, p, salt }) => {
            argon2id(pass, m_kib, t, p, &salt)
        }
        (KeyMaterial::Raw(_), Kdf::Argon2id { .. }) => Err(WRONG_KIND_PASSPHRASE),
        (KeyMaterial::Passphrase(_), Kdf::Raw) => Err(WRONG_KIND_RAW),
    }
}

fn argon2id(
    pass: &[u8],
    m_kib: u32,
    t: u32,
    p: u32,
    salt: &[u8; 16],
) -> Result<Zeroizing<[u8; 32]>, UnlockError> {
    if m_kib > ARGON2_MAX_M_KIB || t > ARGON2_MAX_T || p != ARGON2_P {
        return Err(UnlockError::BadParameters(format!(
            "Argon2id m={m_kib} KiB, t={t}, p={p} is outside what this build accepts"
        )));
    }
    let bad = |e: argon2::Error| UnlockError::BadParameters(e.to_string());
    let params = argon2::Params::new(m_kib, t, p, Some(32)).map_err(bad)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(pass, salt, out.as_mut())
        .map_err(bad)?;
    Ok(out)
}

fn aead(key: &[u8; 32]) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(&(*key).into())
}

/// Associated data of the wrapped data key.
fn wrap_aad(file_id: &[u8; 16]) -> [u8; 24] {
    let mut aad = [0u8; 24];
    aad[..8].copy_from_slice(b"wa-dkey\0");
    aad[8..].copy_from_slice(file_id);
    aad
}

fn wrap(kek: &[u8; 32], data_key: &[u8; 32], file_id: &[u8; 16]) -> io::Result<[u8; WRAPPED_LEN]> {
    let nonce: [u8; NONCE_LEN] = random()?;
    let mut out = [0u8; WRAPPED_LEN];
    out[..NONCE_LEN].copy_from_slice(&nonce);
    out[NONCE_LEN..NONCE_LEN + 32].copy_from_slice(data_key);
    let tag = aead(kek)
        .encrypt_inout_detached(
            &XNonce::from(nonce),
            &wrap_aad(file_id),
            (&mut out[NONCE_LEN..NONCE_LEN + 32]).into(),
        )
        .map_err(|_| io::Error::other("cannot wrap the data key"))?;
    out[NONCE_LEN + 32..].copy_from_slice(&tag);
    Ok(out)
}

impl Cipher {
    /// A new data key for the new file `file_id`, under `source` (a new
    /// salt for a passphrase).
    pub fn create(source: &EncryptionKey, file_id: &[u8; 16]) -> io::Result<(Cipher, Envelope)> {
        let kdf = match source.material() {
            KeyMaterial::Raw(_) => Kdf::Raw,
            KeyMaterial::Passphrase(_) => Kdf::Argon2id {
                m_kib: ARGON2_M_KIB,
                t: ARGON2_T,
                p: ARGON2_P,
                salt: random()?,
            },
        };
        let kek = derive(source, &kdf).map_err(|e| io::Error::other(format!("{e:?}")))?;
        Self::with_kek(kek, kdf, source.clone(), file_id)
    }

    /// A new data key for the new file `file_id` (a copy of this one: a
    /// backup, a snapshot, a compaction), wrapped by the same key-encryption
    /// key, so the copy opens with the same key or passphrase without a
    /// second key derivation.
    pub fn sibling(&self, file_id: &[u8; 16]) -> io::Result<(Cipher, Envelope)> {
        Self::with_kek(self.kek.clone(), self.kdf, self.source.clone(), file_id)
    }

    /// This file's data key for the new file `file_id`, wrapped by the
    /// same key-encryption key: a replica's snapshot, into which records
    /// sealed with this data key are replayed at a restore. Its pages get
    /// nonces of their own, as every page does.
    #[cfg(feature = "replica")]
    pub fn twin(&self, file_id: &[u8; 16]) -> io::Result<(Cipher, Envelope)> {
        let data_key = self.data_key.clone();
        let wrapped = wrap(&self.kek, &data_key, file_id)?;
        let cipher = Cipher {
            file_id: *file_id,
            aead: aead(&data_key),
            nonces: Nonces::new()?,
            data_key,
            kek: self.kek.clone(),
            kdf: self.kdf,
            source: self.source.clone(),
        };
        Ok((
            cipher,
            Envelope {
                kdf: self.kdf,
                wrapped,
            },
        ))
    }

    fn with_kek(
        kek: Zeroizing<[u8; 32]>,
        kdf: Kdf,
        source: EncryptionKey,
        file_id: &[u8; 16],
    ) -> io::Result<(Cipher, Envelope)> {
        let data_key = Zeroizing::new(random::<32>()?);
        let wrapped = wrap(&kek, &data_key, file_id)?;
        let cipher = Cipher {
            file_id: *file_id,
            aead: aead(&data_key),
            nonces: Nonces::new()?,
            data_key,
            kek,
            kdf,
            source,
        };
        Ok((cipher, Envelope { kdf, wrapped }))
    }

    /// Opens the envelope of file `file_id` with `source`.
    pub fn unlock(
        source: &EncryptionKey,
        envelope: &Envelope,
        file_id: &[u8; 16],
    ) -> Result<Cipher, UnlockError> {
        let kek = derive(source, &envelope.kdf)?;
        let w = &envelope.wrapped;
        let mut data_key = Zeroizing::new([0u8; 32]);
        data_key.copy_from_slice(&w[NONCE_LEN..NONCE_LEN + 32]);
        let tag = Tag::try_from(&w[NONCE_LEN + 32..]).expect("16 bytes");
        aead(&kek)
            .decrypt_inout_detached(
                &XNonce::try_from(&w[..NONCE_LEN]).expect("24 bytes"),
                &wrap_aad(file_id),
                data_key.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| UnlockError::WrongKey)?;
        Ok(Cipher {
            file_id: *file_id,
            aead: aead(&data_key),
            nonces: Nonces::new().map_err(|e| UnlockError::BadParameters(e.to_string()))?,
            data_key,
            kek,
            kdf: envelope.kdf,
            source: source.clone(),
        })
    }

    /// The envelope of this file's data key under another key (a new salt
    /// for a passphrase): the file then opens with `new` alone.
    pub fn rewrap(&self, new: &EncryptionKey, file_id: &[u8; 16]) -> io::Result<Envelope> {
        let (fresh, _) = Cipher::create(new, file_id)?;
        let wrapped = wrap(&fresh.kek, &self.data_key, file_id)?;
        Ok(Envelope {
            kdf: fresh.kdf,
            wrapped,
        })
    }

    /// The file whose data key this is.
    pub fn file_id(&self) -> &[u8; 16] {
        &self.file_id
    }

    /// The key this cipher was created or unlocked with.
    pub fn source(&self) -> &EncryptionKey {
        &self.source
    }

    /// Why `other` is not the key this cipher was unlocked with, if it is
    /// not.
    pub fn mismatch(&self, other: &EncryptionKey) -> Option<KeyProblem> {
        let same: bool = match (self.source.material(), other.material()) {
            (KeyMaterial::Raw(a), KeyMaterial::Raw(b)) => a.ct_eq(&**b).into(),
            (KeyMaterial::Passphrase(a), KeyMaterial::Passphrase(b)) => a.ct_eq(b).into(),
            (_, KeyMaterial::Raw(_)) => return Some(WRONG_KIND_PASSPHRASE.into_problem(other)),
            (_, KeyMaterial::Passphrase(_)) => return Some(WRONG_KIND_RAW.into_problem(other)),
        };
        (!same).then_some(KeyProblem::Wrong)
    }

    /// `plain` as a file of its own that opens with this cipher's key or
    /// passphrase alone ([`open_file`]): magic, the KDF (with its salt),
    /// then `plain` sealed under the key-encryption key.
    pub fn seal_file(&self, plain: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(16 + KDF_LEN + plain.len() + SEAL_OVERHEAD);
        out.extend_from_slice(SEALED_MAGIC);
        out.extend_from_slice(&self.kdf.encode());
        let head = out.clone();
        out.extend_from_slice(plain);
        let nonce = XNonce::from(random::<NONCE_LEN>()?);
        seal_with(&aead(&self.kek), nonce, &head, &mut out, head.len())?;
        Ok(out)
    }

    fn block_aad(file_id: &[u8; 16], j: u64) -> [u8; 32] {
        let mut aad = [0u8; 32];
        aad[..8].copy_from_slice(b"wa-blk\0\0");
        aad[8..24].copy_from_slice(file_id);
        aad[24..].copy_from_slice(&j.to_le_bytes());
        aad
    }

    /// Encrypts data block `j` of file `file_id` in place; returns its
    /// entry (nonce, tag), never all zeros.
    pub fn seal_block(
        &self,
        file_id: &[u8; 16],
        j: u64,
        block: &mut [u8],
    ) -> io::Result<[u8; ENTRY_LEN]> {
        let mut entry = [0u8; ENTRY_LEN];
        let nonce = self.nonces.next();
        let tag = self
            .aead
            .encrypt_inout_detached(&nonce, &Self::block_aad(file_id, j), block.into())
            .map_err(|_| io::Error::other("cannot encrypt a block"))?;
        entry[..NONCE_LEN].copy_from_slice(&nonce);
        entry[NONCE_LEN..].copy_from_slice(&tag);
        Ok(entry)
    }

    /// Decrypts data block `j` of file `file_id` in place if it is what was
    /// sealed there with `entry`; `false` (the block is garbage) if not.
    pub fn open_block(&self, file_id: &[u8; 16], j: u64, block: &mut [u8], entry: &[u8]) -> bool {
        let (nonce, tag) = entry.split_at(NONCE_LEN);
        self.aead
            .decrypt_inout_detached(
                &XNonce::try_from(nonce).expect("24 bytes"),
                &Self::block_aad(file_id, j),
                block.into(),
                &Tag::try_from(tag).expect("16 bytes"),
            )
            .is_ok()
    }

    /// Encrypts `buf[from..]` in place and appends its tag and nonce.
    pub fn seal(&self, aad: &[u8], buf: &mut Vec<u8>, from: usize) -> io::Result<()> {
        seal_with(&self.aead, self.nonces.next(), aad, buf, from)
    }

    /// Decrypts what [`Cipher::seal`] made of `buf` in place; the plaintext,
    /// or `None` if `buf` is not what was sealed with `aad`.
    pub fn open<'a>(&self, aad: &[u8], buf: &'a mut [u8]) -> Option<&'a [u8]> {
        let n = open_with(&self.aead, aad, buf)?;
        Some(&buf[..n])
    }
}

/// Whether `bytes` is a file made by [`Cipher::seal_file`].
pub(crate) fn is_sealed_file(bytes: &[u8]) -> bool {
    bytes.starts_with(SEALED_MAGIC)
}

/// The contents of a file made by [`Cipher::seal_file`], opened with `key`.
pub(crate) fn open_sealed_file(key: &EncryptionKey, bytes: &[u8]) -> Result<Vec<u8>, UnlockError> {
    let head_len = 16 + KDF_LEN;
    if !is_sealed_file(bytes) || bytes.len() < head_len + SEAL_OVERHEAD {
        return Err(UnlockError::BadParameters("not a sealed file".into()));
    }
    let kdf = Kdf::decode(&bytes[16..head_len])
        .ok_or_else(|| UnlockError::BadParameters("unknown key derivation".into()))?;
    let kek = derive(key, &kdf)?;
    let (head, rest) = bytes.split_at(head_len);
    let mut body = rest.to_vec();
    let n = open_with(&aead(&kek), head, &mut body).ok_or(UnlockError::WrongKey)?;
    body.truncate(n);
    Ok(body)
}

/// Encrypts `buf[from..]` in place under `aead` with `nonce` and appends
/// the tag and the nonce.
fn seal_with(
    aead: &XChaCha20Poly1305,
    nonce: XNonce,
    aad: &[u8],
    buf: &mut Vec<u8>,
    from: usize,
) -> io::Result<()> {
    let tag = aead
        .encrypt_inout_detached(&nonce, aad, (&mut buf[from..]).into())
        .map_err(|_| io::Error::other("cannot encrypt"))?;
    buf.extend_from_slice(&tag);
    buf.extend_from_slice(&nonce);
    Ok(())
}

/// Decrypts what [`seal_with`] made of `buf` (from 0) in place; the
/// plaintext's length, or `None` if `buf` is not what was sealed.
fn open_with(aead: &XChaCha20Poly1305, aad: &[u8], buf: &mut [u8]) -> Option<usize> {
    let n = buf.len().checked_sub(SEAL_OVERHEAD)?;
    let (text, trailer) = buf.split_at_mut(n);
    let (tag, nonce) = trailer.split_at(TAG_LEN);
    aead.decrypt_inout_detached(
        &XNonce::try_from(nonce).expect("24 bytes"),
        aad,
        text.into(),
        &Tag::try_from(tag).expect("16 bytes"),
    )
    .ok()?;
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_records_round_trip_and_refuse_tampering() {
        let key = EncryptionKey::raw([7; 32]);
        let id = [1u8; 16];
        let (c, env) = Cipher::create(&key, &id).unwrap();
        let plain = vec![0xABu8; 4096];
        let mut b = plain.clone();
        let entry = c.seal_block(&id, 5, &mut b).unwrap();
        assert_ne!(b, plain);
        let mut moved = b.clone();
        assert!(
            !c.open_block(&id, 6, &mut moved, &entry),
            "position is bound"
        );
        assert!(
            !c.open_block(&[2; 16], 5, &mut b.clone(), &entry),
            "file is bound"
        );
        assert!(c.open_block(&id, 5, &mut b, &entry));
        assert_eq!(b, plain);

        let mut rec = b"hello".to_vec();
        c.seal(b"aad", &mut rec, 0).unwrap();
        assert_eq!(rec.len(), 5 + SEAL_OVERHEAD);
        assert!(c.open(b"other", &mut rec.clone()).is_none());
        assert_eq!(c.open(b"aad", &mut rec).unwrap(), b"hello");

        // The same key unlocks; another does not; a passphrase is not a key.
        assert!(Cipher::unlock(&key, &env, &id).is_ok());
        assert!(matches!(
            Cipher::unlock(&EncryptionKey::raw([8; 32]), &env, &id),
            Err(UnlockError::WrongKey)
        ));
        assert!(matches!(
            Cipher::unlock(&EncryptionKey::passphrase("x"), &env, &id),
            Err(UnlockError::WrongKind { .. })
        ));
    }

    #[test]
    fn a_passphrase_envelope_and_its_siblings_open_with_the_passphrase() {
        let pass = EncryptionKey::passphrase("correct horse");
        let (c, env) = Cipher::create(&pass, &[3; 16]).unwrap();
        assert!(matches!(env.kdf, Kdf::Argon2id { .. }));
        let (_, sib) = c.sibling(&[4; 16]).unwrap();
        assert_eq!(
            sib.kdf, env.kdf,
            "a copy keeps the salt: no second derivation"
        );
        assert!(Cipher::unlock(&pass, &sib, &[4; 16]).is_ok());
        assert!(matches!(
            Cipher::unlock(&EncryptionKey::passphrase("wrong"), &env, &[3; 16]),
            Err(UnlockError::WrongKey)
        ));
        assert_eq!(
            c.mismatch(&EncryptionKey::passphrase("correct horse")),
            None
        );
        let sealed = c.seal_file(b"sidecar json").unwrap();
        assert_eq!(open_sealed_file(&pass, &sealed).unwrap(), b"sidecar json");
        assert!(matches!(
            open_sealed_file(&EncryptionKey::passphrase("nope"), &sealed),
            Err(UnlockError::WrongKey)
        ));
        assert_eq!(
            c.mismatch(&EncryptionKey::passphrase("correct horsE")),
            Some(KeyProblem::Wrong)
        );
        assert!(matches!(
            c.mismatch(&EncryptionKey::raw([0; 32])),
            Some(KeyProblem::WrongKind { .. })
        ));
    }
}
