//! The command line: every command, flag and argument, with its help.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "wa-redb",
    version,
    about = "Inspect and operate whatsapp-rust redb store files",
    after_help = "Exit status: 0 success (for `check`: the file is sound); 1 failure \
                  (for `check`: the file is damaged or not a store); 2 bad usage \
                  (including a destructive command without --yes off a terminal); \
                  3 the store file is open in another process; 4 a key problem (an encrypted \
                  store without its key, a wrong key, a key for a store that is not encrypted, \
                  a key file that cannot be used).\n\
                  A device id is always given as --device N (negative ids too: --device -5).\n\
                  The key of an encrypted store comes from --key-file PATH, else the file \
                  WA_REDB_KEY_FILE names, else the passphrase WA_REDB_PASSPHRASE holds (never \
                  from the command line itself: arguments show in process listings). A key \
                  file holding exactly 64 hex digits is a raw 256-bit key; anything else is a \
                  passphrase, the file's text with one trailing newline removed. A pipe is \
                  read too: --key-file /dev/stdin."
)]
pub struct Cli {
    /// Print JSON on stdout, failures too: {"error", "hint", "exit_code"}.
    #[arg(long, global = true)]
    pub json: bool,
    /// The key of an encrypted store: a file holding its passphrase, or 64
    /// hex digits for a raw key (keep it owner-only). Without it:
    /// WA_REDB_KEY_FILE (a path), else WA_REDB_PASSPHRASE.
    #[arg(long, global = true, value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Accounts, tables, sizes and schema of a store file.
    Info {
        /// The store file.
        file: PathBuf,
    },
    /// Rows as JSON lines; secrets redacted unless --reveal.
    ///
    /// Always JSON lines, one row each: --json changes only how a failure is
    /// reported.
    Dump {
        /// The store file.
        file: PathBuf,
        /// Only this account (device id).
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        device: Option<i32>,
        /// Only this table (see `wa-redb info`).
        #[arg(long)]
        table: Option<String>,
        /// Print private keys, session and sender-key records, message
        /// secrets and message contents instead of a "redacted" placeholder.
        #[arg(long)]
        reveal: bool,
    },
    /// Verify every page and record; the exit status says if the file is sound.
    Check {
        /// The store file to verify.
        file: PathBuf,
    },
    /// Give free space back to the file system.
    ///
    /// Prints the file's size (as `stat` shows it) before and after.
    Compact {
        /// The store file (no process may have it open).
        file: PathBuf,
        /// Pack the B-tree pages full too: the smallest file, for one that
        /// will mostly be read or archived (later inserts split full pages
        /// until they settle). The store's own compaction never does this.
        #[arg(long)]
        maximum: bool,
    },
    /// Write a consistent, compact copy of a store file to DEST.
    Backup {
        /// The store file to copy.
        file: PathBuf,
        /// Where to write the copy: must not exist; its directory must.
        dest: PathBuf,
    },
    /// Replace FILE with a copy of BACKUP, keeping the replaced file.
    ///
    /// The replaced file stays beside it as FILE.replaced-SECS (unix seconds),
    /// owner-only. Refuses if FILE is in use; asks first on a terminal.
    Restore {
        /// A backup written by `wa-redb backup` (or `RedbStore::backup_to`).
        backup: PathBuf,
        /// The store file to replace (or create).
        file: PathBuf,
        /// Replace FILE without asking (required when stdin is not a
        /// terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Copy every account of a SqliteStore database into a store file.
    ImportSqlite {
        /// The SqliteStore database to read.
        #[arg(value_name = "SRC")]
        src: PathBuf,
        /// The store file to write (created if missing).
        #[arg(value_name = "DST")]
        dst: PathBuf,
        /// Replace the accounts DST already holds with those of SRC.
        #[arg(long)]
        overwrite: bool,
        /// With --overwrite: replace without asking (required when stdin is
        /// not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Copy accounts of a store file into a SqliteStore database.
    ExportSqlite {
        /// The store file to read.
        #[arg(value_name = "SRC")]
        src: PathBuf,
        /// The SqliteStore database to write (created if missing).
        #[arg(value_name = "DST")]
        dst: PathBuf,
        #[command(flatten)]
        export: ExportArgs,
    },
    /// Old spelling of `export-sqlite FILE DB`.
    #[command(hide = true)]
    Export {
        /// The store file to read.
        file: PathBuf,
        /// The SqliteStore database to write (created if missing).
        #[arg(long = "to-sqlite", value_name = "DB")]
        to_sqlite: PathBuf,
        #[command(flatten)]
        export: ExportArgs,
    },
    /// Delete one account: every row of a device id.
    ///
    /// Asks first on a terminal. Compacts the file when much of it is free
    /// afterwards. Run it again if it was interrupted: the account
    /// is gone from the first moment (no device record), the rest of its
    /// rows with the second run.
    DeleteDevice {
        /// The store file.
        file: PathBuf,
        /// The account to delete (device id).
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        device: i32,
        /// Delete without asking (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Change the key of an encrypted store.
    ///
    /// The current key is given as for every command (--key-file,
    /// WA_REDB_KEY_FILE, WA_REDB_PASSPHRASE); the new one with
    /// --new-key-file PATH, else WA_REDB_NEW_KEY_FILE (a path), else
    /// WA_REDB_NEW_PASSPHRASE. By default the data key is rewrapped under the
    /// new key in place (fast, whatever the size). Backups written before
    /// still open with the old key.
    Rekey {
        /// The encrypted store file (no process may have it open).
        file: PathBuf,
        /// The new key: a file holding the new passphrase, or 64 hex digits
        /// for a raw key.
        #[arg(long, value_name = "PATH")]
        new_key_file: Option<PathBuf>,
        /// Rewrite the whole file under a new data key, so that the old key
        /// opens nothing of it any more (not even with a copy of the old
        /// file's header).
        #[arg(long)]
        new_data_key: bool,
    },
    /// Write an encrypted copy of an unencrypted store to OUT.
    ///
    /// OUT is encrypted with the key given as for every command
    /// (--key-file, WA_REDB_KEY_FILE, WA_REDB_PASSPHRASE); IN is left as it
    /// is.
    Encrypt {
        /// The unencrypted store file to copy (only read: it may be in use).
        #[arg(value_name = "IN")]
        input: PathBuf,
        /// Where to write the encrypted copy: must not exist; its directory
        /// must.
        #[arg(value_name = "OUT")]
        output: PathBuf,
    },
    /// Copy what a damaged store still holds into a new store OUT.
    ///
    /// Every row that still verifies and decodes is copied, device records
    /// and identity keys first; the report says per table what came back
    /// and what was lost. DAMAGED is only read (it may be read-only or in
    /// use). OUT is keyed like DAMAGED: encrypted with the same key if
    /// DAMAGED is encrypted.
    Salvage {
        /// The damaged store file.
        #[arg(value_name = "DAMAGED")]
        damaged: PathBuf,
        /// Where to write the new store: must not exist; its directory must.
        #[arg(value_name = "OUT")]
        output: PathBuf,
    },
    /// Snapshots in S3-compatible object storage or a directory.
    ///
    /// URL is s3://BUCKET/PREFIX (endpoint, region and credentials from
    /// AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY; AWS_ALLOW_HTTP=true for plain http) or
    /// file:///DIRECTORY.
    #[cfg(feature = "replica")]
    Replica {
        #[command(subcommand)]
        action: ReplicaCommand,
    },
    /// Write an unencrypted copy of an encrypted store to OUT.
    ///
    /// IN opens with the key given as for every command (--key-file,
    /// WA_REDB_KEY_FILE, WA_REDB_PASSPHRASE); IN is left as it is. Anyone
    /// who can read OUT can read the store.
    Decrypt {
        /// The encrypted store file to copy (only read: it may be in use).
        #[arg(value_name = "IN")]
        input: PathBuf,
        /// Where to write the unencrypted copy: must not exist; its
        /// directory must.
        #[arg(value_name = "OUT")]
        output: PathBuf,
    },
}

/// What `wa-redb replica` does.
#[cfg(feature = "replica")]
#[derive(clap::Subcommand)]
pub enum ReplicaCommand {
    /// Upload a snapshot of FILE (every account, as of now) to URL.
    ///
    /// FILE is only read (it may be in use: the snapshot then holds its
    /// last checkpoint plus the journal records complete at that moment).
    /// An encrypted store's snapshot stays encrypted.
    Push {
        /// The store file.
        file: PathBuf,
        /// Where the snapshots live.
        url: String,
        /// How many snapshots to keep there (the oldest go first).
        #[arg(long, default_value_t = 24)]
        keep: usize,
    },
    /// Restore the newest state in URL as a new store file OUT.
    ///
    /// The newest snapshot, with the records written after it replayed;
    /// every page and record is checked before OUT gets its name; OUT must
    /// not exist. From a replica a store replicates to, that is every
    /// acknowledged write. A replica of snapshots alone lacks the writes
    /// made after the newest: a client resumed from it may reuse Signal
    /// message keys its contacts have seen, so that needs
    /// --accept-stale-state.
    ///
    /// With --at, the state the replica held at that moment instead: the
    /// newest snapshot stored by then and the records stored by then
    /// after it (the object store's clock). A past state is stale too, so
    /// --at needs --accept-stale-state.
    Restore {
        /// Where the snapshots live.
        url: String,
        /// The store file to create.
        #[arg(value_name = "OUT")]
        output: PathBuf,
        /// Restore a replica of snapshots alone, although the newest lacks
        /// the writes made after it (or a past state, with --at).
        #[arg(long)]
        accept_stale_state: bool,
        /// The moment to restore: RFC 3339 (2026-12-07T10:42:07Z, or with
        /// an offset such as +01:00) or Unix seconds.
        #[arg(long, value_name = "TIME", value_parser = crate::when::parse_time)]
        at: Option<std::time::SystemTime>,
    },
    /// List the snapshots in URL, oldest first.
    Status {
        /// Where the snapshots live.
        url: String,
    },
}

/// What `export-sqlite` (and its old spelling) takes besides the files.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// Only this account (device id); all accounts if absent.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub device: Option<i32>,
    /// Replace the accounts DST already holds rows of.
    #[arg(long)]
    pub overwrite: bool,
    /// With --overwrite: replace without asking (required when stdin is not
    /// a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}
