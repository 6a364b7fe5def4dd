//! Failures that travel inside redb's I/O errors from the protected-page
//! layer: a key that does not fit the store (`KeyProblem`), a damaged
//! block (`Damaged`).

/// Why an encrypted store and a key do not go together. Nothing on disk
/// was changed when one of these is reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyProblem {
    /// The file is encrypted and no key was given.
    #[error(
        "the store is encrypted and no key was given: pass its key with \
         `RedbStoreConfig::with_encryption_key` or `with_passphrase` (for `wa-redb`: \
         `--key-file PATH`, or WA_REDB_KEY_FILE / WA_REDB_PASSPHRASE)"
    )]
    Required,
    /// The key does not open the file.
    #[error(
        "the key does not open this encrypted store (wrong key or passphrase); nothing was \
         changed: give the key it was created with"
    )]
    Wrong,
    /// The file was encrypted with the other kind of key.
    #[error(
        "the store is encrypted with {file_uses}, and {given} was given: give the key the \
         way it was created"
    )]
    WrongKind {
        /// What the file needs.
        file_uses: &'static str,
        /// What was given.
        given: &'static str,
    },
    /// A key was given for a file that is not encrypted.
    #[error(
        "a key was given but the store is not encrypted, so it would stay readable without \
         one; open it without a key, or write an encrypted copy with `wa-redb encrypt`"
    )]
    NotEncrypted,
    /// The key's parameters in the file are not usable.
    #[error("the store's key parameters are not usable: {0}")]
    BadParameters(String),
}

/// A block of a protected file that failed verification: the payload of
/// the `InvalidData` I/O error the storage layer returns to redb, found in
/// it again by [`StorageError::storage`](super::StorageError::storage).
#[derive(Debug)]
pub(crate) struct Damaged {
    /// redb's offset of the block, for a page (not for the superblock).
    pub offset: Option<u64>,
    /// Where it is in the file.
    pub physical: u64,
    pub why: &'static str,
}

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the block at byte {} of the file", self.physical)?;
        if let Some(offset) = self.offset {
            write!(f, " (redb page offset {offset})")?;
        }
        write!(f, " {}", self.why)
    }
}

impl std::error::Error for Damaged {}
