//! Store configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::OpenError;
use crate::fault::IoFaults;

/// How much of a write must be on stable storage before the call returns
/// `Ok`. Named after SqliteStore's `Synchronous` so configurations translate
/// one to one.
///
/// | mode | survives kill -9 / abort / panic | survives power loss / OS crash |
/// |---|---|---|
/// | `Off` | all but the last `checkpoint_interval` of writes | same; never corrupts |
/// | `Normal` (default) | every `Ok` | all but the writes of the last `checkpoint_interval`; never corrupts |
/// | `Full` | every `Ok` | every `Ok` |
/// Ordered by strength: `Off < Normal < Full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Synchronous {
    /// Writes live in memory until the next checkpoint. Fastest; a crash
    /// loses the writes since the last checkpoint. The file never corrupts.
    Off,
    /// Every acknowledged write is in the operating system (the journal)
    /// before `Ok`; no fsync per call. Power loss may drop the tail written
    /// in the last `checkpoint_interval` (the journal is fsynced that often
    /// while writes keep coming).
    #[default]
    Normal,
    /// Every acknowledged write is fsynced before `Ok`; concurrent callers
    /// share each fsync (group commit).
    Full,
}

impl Synchronous {
    pub(crate) fn uses_journal(self) -> bool {
        !matches!(self, Synchronous::Off)
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Synchronous::Off => "off",
            Synchronous::Normal => "normal",
            Synchronous::Full => "full",
        }
    }
}

impl fmt::Display for Synchronous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When to verify every page checksum of the file at open (redb's
/// integrity check; reads the whole file). redb's ordinary open trusts the
/// file; the check turns damage made outside redb into a clear error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntegrityCheck {
    /// Never (fastest open).
    Never,
    /// When the previous process did not close the store cleanly (crash,
    /// kill, power loss): the moment damage is most likely.
    #[default]
    AfterUncleanShutdown,
    /// On every open.
    Always,
}

/// The format a new store file is created in. An existing file keeps its
/// own, whatever the opener asks for; [`crate::RedbStore::config`] reports
/// the file's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageProtection {
    /// Format v2: every page the store writes carries a tag bound to its
    /// position and to the file, and every page read from disk is verified
    /// before redb parses it: damage is a `Corrupted` error naming the
    /// offset, never a panic. Costs 8 KiB per MiB of file and a second
    /// fsync per checkpoint.
    #[default]
    Verified,
    /// Format v1: a plain redb file, which redb's own tools can open; damage
    /// reaches redb's parser, which may panic on it (contained by the store
    /// unless the program is built with `panic = "abort"`).
    Off,
}

/// The key of an encrypted store: a raw 32-byte key (from a keyring or a
/// KMS) or a passphrase (stretched with Argon2id, its salt kept in the
/// file). Cheap to clone (shared); zeroized when the last clone is dropped;
/// its `Debug` output never shows it.
#[derive(Clone)]
pub struct EncryptionKey(Arc<KeyMaterial>);

pub(crate) enum KeyMaterial {
    Raw(Zeroizing<[u8; 32]>),
    Passphrase(Zeroizing<Vec<u8>>),
}

impl EncryptionKey {
    /// A raw 256-bit key. The array passed in is the caller's to zeroize.
    pub fn raw(key: [u8; 32]) -> Self {
        Self(Arc::new(KeyMaterial::Raw(Zeroizing::new(key))))
    }

    /// A passphrase (its UTF-8 bytes, exactly as given).
    pub fn passphrase(passphrase: impl Into<String>) -> Self {
        let bytes = Zeroizing::new(passphrase.into().into_bytes());
        Self(Arc::new(KeyMaterial::Passphrase(bytes)))
    }

    pub(crate) fn material(&self) -> &KeyMaterial {
        &self.0
    }

    /// "a raw key" or "a passphrase", for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match *self.0 {
            KeyMaterial::Raw(_) => "a raw key",
            KeyMaterial::Passphrase(_) => "a passphrase",
        }
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncryptionKey({}, redacted)", self.kind())
    }
}

/// Configuration of a [`crate::RedbStore`]. Every field has a sensible
/// default; the `with_*` methods change one field each.
///
/// All handles of one file in one process share one engine (page cache,
/// journal, write lane). When a handle joins a file another handle of the
/// process has open, the two configurations are merged (see
/// [`RedbStoreConfig::merged_with`]'s rules: the stronger durability wins,
/// the more frequent checkpoints and compaction win, each handle keeps its
/// own `max_value_size`), and [`crate::RedbStore::config`] returns what is in
/// effect.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), wacore::store::error::StoreError> {
/// use std::time::Duration;
/// use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig, Synchronous};
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("whatsapp.redb");
/// // Every acknowledged write survives a power loss, not only a crash.
/// let config = RedbStoreConfig::default()
///     .with_synchronous(Synchronous::Full)
///     .with_checkpoint_interval(Duration::from_secs(10))
///     .with_base_key_retention(Some(Duration::from_secs(7 * 24 * 3600)));
/// let store = RedbStore::with_config(&path, config).await?;
/// assert_eq!(store.config().synchronous, Synchronous::Full);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedbStoreConfig {
    /// The most page cache this file may use, in KiB (reads and
    /// not-yet-checkpointed writes), shared by every account of the file.
    /// It comes out of the process-wide budget ([`Self::cache_budget_kib`]):
    /// a file gets this much while the budget lasts, and 64 KiB once it is
    /// used up (its reads then come from the operating system's page cache).
    /// Default 6 MiB: the working set of one account; raise it for many
    /// accounts in one file.
    pub cache_size_kib: u32,
    /// Sets the process-wide page-cache budget, in KiB, that every store
    /// file opened from then on takes its cache from (see
    /// [`Self::cache_size_kib`]). `None` (the default) leaves it as it is:
    /// 32 MiB unless an earlier open set it.
    pub cache_budget_kib: Option<u32>,
    /// Durability of an acknowledged write. Default [`Synchronous::Normal`].
    pub synchronous: Synchronous,
    /// Longest time an acknowledged write waits for stable storage (in
    /// `Full`, none: each is fsynced before `Ok`). In `Normal` mode, while
    /// writes keep coming, the journal is fsynced this often (one fsync of
    /// what was appended, not a checkpoint); once no write came for this
    /// long, a checkpoint puts the journal's writes in the redb file and
    /// rewinds it, in every mode. In `Off` mode (no journal) a checkpoint
    /// every interval. Default 2 s; more than zero; `Duration::MAX` means
    /// nothing by time (the journal's size still triggers checkpoints, and
    /// in `Off` mode only the close does).
    pub checkpoint_interval: Duration,
    /// Journal size that triggers a checkpoint while writes keep coming,
    /// and so the most a crash leaves to replay at the next open. Default
    /// 16 MiB: each checkpoint writes every page changed since the last and
    /// costs two fsyncs, so not too often; the journal is rewound, not
    /// grown, after each. At least 64 KiB; `u64::MAX` means none by size.
    pub checkpoint_journal_bytes: u64,
    /// Largest single value (session, payload, blob) accepted. Default 64 MiB;
    /// 1 byte to 1 GiB (256 MiB on 32-bit targets).
    pub max_value_size: usize,
    /// Compact the file in [`crate::RedbStore::maintenance`], and at an
    /// open that verified every page (after an unclean shutdown, or
    /// [`IntegrityCheck::Always`]), when at least this fraction of it is
    /// free space (and the file is larger than 1 MiB), giving the space
    /// back to the file system. Never at close: a close does only what
    /// durability needs. `None` disables it. Default `Some(0.25)`.
    pub auto_compact: Option<f64>,
    /// When to verify the whole file at open. Default
    /// [`IntegrityCheck::AfterUncleanShutdown`].
    pub integrity_check: IntegrityCheck,
    /// How long [`crate::RedbStore::maintenance`] keeps a base key after it
    /// was saved (the client stores one per received pre-key message, to
    /// detect a retry reusing it, and never deletes them). `None` keeps
    /// them forever, as does `Some(Duration::MAX)`. Default 30 days: retries
    /// come within minutes to days.
    pub base_key_retention: Option<Duration>,
    /// The format of a file this handle creates. Default
    /// [`PageProtection::Verified`].
    pub page_protection: PageProtection,
    /// How long an open waits for a file that another process (or a
    /// store of this process opened without this crate's registry, such
    /// as `wa-redb`) has open, before it fails with "already open": the
    /// time a process that just dropped its store needs to let go of it,
    /// as SQLite's `busy_timeout`. Default 5 s; `Duration::ZERO` fails at
    /// once; any length up to `Duration::MAX` (wait as long as it takes).
    pub busy_timeout: Duration,
    /// The key of an encrypted store. A file this handle creates is
    /// encrypted with it (which needs [`PageProtection::Verified`]); an
    /// encrypted file needs it to open, and refuses another; a plain file
    /// given a key refuses to open rather than stay unencrypted unnoticed.
    /// Default `None`.
    pub encryption: Option<EncryptionKey>,
    /// Test hook: I/O failures to inject (feature `fault-injection`).
    pub(crate) io_faults: Option<Arc<dyn IoFaults>>,
}

impl Default for RedbStoreConfig {
    fn default() -> Self {
        Self {
            cache_size_kib: 6 * 1024,
            cache_budget_kib: None,
            synchronous: Synchronous::Normal,
            checkpoint_interval: Duration::from_secs(2),
            checkpoint_journal_bytes: 16 << 20,
            max_value_size: 64 << 20,
            auto_compact: Some(0.25),
            integrity_check: IntegrityCheck::AfterUncleanShutdown,
            base_key_retention: Some(Duration::from_secs(30 * 24 * 3600)),
            page_protection: PageProtection::Verified,
            busy_timeout: Duration::from_secs(5),
            encryption: None,
            io_faults: None,
        }
    }
}

impl fmt::Debug for RedbStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStoreConfig")
            .field("cache_size_kib", &self.cache_size_kib)
            .field("cache_budget_kib", &self.cache_budget_kib)
            .field("synchronous", &self.synchronous)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("checkpoint_journal_bytes", &self.checkpoint_journal_bytes)
            .field("max_value_size", &self.max_value_size)
            .field("auto_compact", &self.auto_compact)
            .field("integrity_check", &self.integrity_check)
            .field("base_key_retention", &self.base_key_retention)
            .field("page_protection", &self.page_protection)
            .field("busy_timeout", &self.busy_timeout)
            .field("encryption", &self.encryption)
            .field("io_faults", &self.io_faults.is_some())
            .finish()
    }
}

impl RedbStoreConfig {
    /// Sets the page-cache budget in KiB.
    pub fn with_cache_size_kib(mut self, kib: u32) -> Self {
        self.cache_size_kib = kib;
        self
    }

    /// Sets the process-wide page-cache budget in KiB (see
    /// [`RedbStoreConfig::cache_budget_kib`]).
    pub fn with_cache_budget_kib(mut self, kib: u32) -> Self {
        self.cache_budget_kib = Some(kib);
        self
    }

    /// Sets the durability mode.
    pub fn with_synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// Sets the longest time an acknowledged write waits for stable
    /// storage, and the idle time after which a checkpoint runs.
    pub fn with_checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// Sets the journal size that forces a checkpoint.
    pub fn with_checkpoint_journal_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_journal_bytes = bytes;
        self
    }

    /// Sets the largest accepted value.
    pub fn with_max_value_size(mut self, bytes: usize) -> Self {
        self.max_value_size = bytes;
        self
    }

    /// Sets (or with `None` disables) automatic compaction (see
    /// [`RedbStoreConfig::auto_compact`]).
    pub fn with_auto_compact(mut self, free_fraction: Option<f64>) -> Self {
        self.auto_compact = free_fraction;
        self
    }

    /// Sets how long an open waits for a file another process has open
    /// (see [`RedbStoreConfig::busy_timeout`]).
    pub fn with_busy_timeout(mut self, wait: Duration) -> Self {
        self.busy_timeout = wait;
        self
    }

    /// Sets the format of a file this handle creates.
    pub fn with_page_protection(mut self, protection: PageProtection) -> Self {
        self.page_protection = protection;
        self
    }

    /// Encrypts the store with `key` (see [`RedbStoreConfig::encryption`]).
    pub fn with_encryption(mut self, key: EncryptionKey) -> Self {
        self.encryption = Some(key);
        self
    }

    /// Encrypts the store with a raw 256-bit key (see
    /// [`RedbStoreConfig::encryption`]).
    pub fn with_encryption_key(mut self, key: [u8; 32]) -> Self {
        self.encryption = Some(EncryptionKey::raw(key));
        self
    }

    /// Encrypts the store with a passphrase, stretched with Argon2id (see
    /// [`RedbStoreConfig::encryption`]). Each open derives the key again
    /// (about 30 ms on a desktop core, a second or more on a Raspberry Pi
    /// Zero); a fleet that opens many files is better served by
    /// [`RedbStoreConfig::with_encryption_key`].
    pub fn with_passphrase(mut self, passphrase: impl Into<String>) -> Self {
        self.encryption = Some(EncryptionKey::passphrase(passphrase));
        self
    }

    /// Sets when the file is verified at open.
    pub fn with_integrity_check(mut self, check: IntegrityCheck) -> Self {
        self.integrity_check = check;
        self
    }

    /// Sets (or with `None` disables) the retention of base keys (see
    /// [`RedbStoreConfig::base_key_retention`]).
    pub fn with_base_key_retention(mut self, keep: Option<Duration>) -> Self {
        self.base_key_retention = keep;
        self
    }

    /// Test hook (feature `fault-injection`): every write, fsync and
    /// length change of the store's files passes `faults` first, which may
    /// fail it as a full disk or a failing disk would.
    #[cfg(feature = "fault-injection")]
    pub fn with_io_faults(mut self, faults: Arc<dyn IoFaults>) -> Self {
        self.io_faults = Some(faults);
        self
    }

    /// What an open file runs with when a handle asking for `self` joins
    /// one asking for `other` (in either order), by these rules:
    ///
    /// - `synchronous`: the stronger of the two (never silently less);
    /// - `checkpoint_interval`, `checkpoint_journal_bytes`: the smaller;
    /// - `auto_compact`: the smaller free fraction, `None` only if both say
    ///   `None`;
    /// - `cache_size_kib`, `cache_budget_kib`, `integrity_check`: as the file
    ///   was opened (they act at open);
    /// - `base_key_retention`: the longer (`None`, forever, if either says
    ///   so): maintenance never deletes what one of the handles keeps;
    /// - `max_value_size`: each handle keeps its own limit for its writes.
    pub fn merged_with(&self, other: &RedbStoreConfig) -> RedbStoreConfig {
        let auto_compact = match (self.auto_compact, other.auto_compact) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let base_key_retention = match (self.base_key_retention, other.base_key_retention) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        RedbStoreConfig {
            synchronous: self.synchronous.max(other.synchronous),
            checkpoint_interval: self.checkpoint_interval.min(other.checkpoint_interval),
            checkpoint_journal_bytes: self
                .checkpoint_journal_bytes
                .min(other.checkpoint_journal_bytes),
            auto_compact,
            base_key_retention,
            ..self.clone()
        }
    }

    pub(crate) fn validate(&self) -> Result<(), OpenError> {
        if self.encryption.is_some() && self.page_protection == PageProtection::Off {
            return Err(OpenError::InvalidConfig(
                "encryption needs page protection: a plain (format v1) file cannot be \
                 encrypted; drop `with_page_protection(PageProtection::Off)`"
                    .into(),
            ));
        }
        // A cache size is a ceiling, never allocated up front, and the
        // process-wide budget bounds what a file gets: any size from 256 KiB
        // up means something (`u32::MAX`: "no limit of its own").
        if self.cache_size_kib < 256 {
            return Err(OpenError::InvalidConfig(format!(
                "cache_size_kib must be at least 256 (KiB), got {}: redb needs room for \
                 its write buffer",
                self.cache_size_kib
            )));
        }
        if let Some(kib) = self.cache_budget_kib
            && kib < 256
        {
            return Err(OpenError::InvalidConfig(format!(
                "cache_budget_kib must be at least 256 (KiB), got {kib}"
            )));
        }
        // Any length from a nanosecond up: `Duration::MAX`, "never by time",
        // sets no timer (the journal's size still triggers checkpoints).
        if self.checkpoint_interval.is_zero() {
            return Err(OpenError::InvalidConfig(format!(
                "checkpoint_interval must be greater than zero, got {:?}; for no \
                 checkpoint by time use Duration::MAX",
                self.checkpoint_interval
            )));
        }
        // Up to `u64::MAX`: no checkpoint by size (the journal then grows
        // until a timed or explicit checkpoint, or the close).
        if self.checkpoint_journal_bytes < 64 * 1024 {
            return Err(OpenError::InvalidConfig(format!(
                "checkpoint_journal_bytes must be at least 65536, got {}",
                self.checkpoint_journal_bytes
            )));
        }
        // A value is held several times over while written (caller, job,
        // journal record): on 32-bit targets keep that within reach of the
        // address space.
        let cap: usize = if cfg!(target_pointer_width = "32") {
            256 << 20
        } else {
            1 << 30
        };
        if self.max_value_size == 0 || self.max_value_size > cap {
            return Err(OpenError::InvalidConfig(format!(
                "max_value_size must be between 1 byte and {} MiB, got {} bytes",
                cap >> 20,
                self.max_value_size
            )));
        }
        if let Some(f) = self.auto_compact
            && !(f > 0.0 && f <= 1.0)
        {
            return Err(OpenError::InvalidConfig(format!(
                "auto_compact must be a fraction in (0, 1], got {f}; None disables it"
            )));
        }
        Ok(())
    }

    pub(crate) fn cache_bytes(&self) -> usize {
        (self.cache_size_kib as usize).saturating_mul(1024)
    }
}
