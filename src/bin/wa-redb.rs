//! `wa-redb`: inspect and operate whatsapp-rust redb store files.
//!
//! A thin layer over the library's operations API: every command is one or
//! two library calls plus printing. See "Operating a store" in the README.

use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::ProgressBar;
use serde_json::json;
use wacore::store::error::StoreError;
use whatsapp_rust_redb_storage::{
    CheckReport, DumpOptions, Error, LookReport, RedbStore, RedbStoreConfig, StoreInfo,
};

/// Exit status: the operation failed, or `check` found the file unsound.
const EXIT_FAILED: u8 = 1;
/// Exit status: another process has the store file open.
const EXIT_IN_USE: u8 = 3;

#[derive(Parser)]
#[command(
    name = "wa-redb",
    version,
    about = "Inspect and operate whatsapp-rust redb store files",
    after_help = "Exit status: 0 success (for `check`: the file is sound); 1 failure \
                  (for `check`: the file is damaged or not a store); 2 bad usage; \
                  3 the store file is open in another process.",
    allow_negative_numbers = true
)]
struct Cli {
    /// Print machine-readable JSON on stdout (`dump` always prints JSON lines).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Accounts, tables, sizes and schema of a store file.
    Info { file: PathBuf },
    /// Rows as JSON lines; secrets redacted unless --reveal.
    Dump {
        file: PathBuf,
        /// Only this account (device id).
        #[arg(long)]
        device: Option<i32>,
        /// Only this table (see `wa-redb info`).
        #[arg(long)]
        table: Option<String>,
        /// Print private keys, session and sender-key records, message
        /// secrets and message contents instead of a "redacted" placeholder.
        #[arg(long)]
        reveal: bool,
    },
    /// Verify every page checksum and decode every record; the exit status
    /// says whether the file is sound.
    Check { file: PathBuf },
    /// Give free space back to the file system; prints the sizes before and
    /// after.
    Compact { file: PathBuf },
    /// Write a consistent, compact copy of a store file to DEST (which must
    /// not exist).
    Backup { file: PathBuf, dest: PathBuf },
    /// Replace FILE with a copy of BACKUP. Refuses if FILE is in use.
    Restore { backup: PathBuf, file: PathBuf },
    /// Copy every account of a SqliteStore database into FILE (created if
    /// missing).
    ImportSqlite {
        sqlite_db: PathBuf,
        file: PathBuf,
        /// Replace accounts FILE already holds.
        #[arg(long)]
        overwrite: bool,
    },
    /// Copy accounts of FILE into a SqliteStore database (created if
    /// missing).
    Export {
        file: PathBuf,
        /// The SqliteStore database to write.
        #[arg(long = "to-sqlite", value_name = "DB")]
        to_sqlite: PathBuf,
        /// Only this account (device id); all accounts if absent.
        #[arg(long)]
        device: Option<i32>,
    },
    /// Delete one account (every row of a device id).
    DeleteDevice { file: PathBuf, device: i32 },
}

/// Why a command failed, as the user should read it.
struct Failure {
    message: String,
    hint: Option<&'static str>,
    code: u8,
}

impl Failure {
    fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            hint: None,
            code: EXIT_FAILED,
        }
    }
}

const IN_USE_HINT: &str = "\
hint: only `info`, `dump`, `check` and `export` work on a store an application
      has open. Stop the application first, or have it write a consistent
      copy with `RedbStore::backup_to(path)` and run wa-redb on the copy.";

/// The library's own error in a `StoreError`'s chain, if any.
fn store_error(e: &StoreError) -> Option<&Error> {
    let mut layer: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(l) = layer {
        if let Some(ours) = l.downcast_ref::<Error>() {
            return Some(ours);
        }
        layer = l.source();
    }
    None
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match store_error(&e) {
            Some(ours @ Error::AlreadyOpen { .. }) => {
                return Failure {
                    message: ours.to_string(),
                    hint: Some(IN_USE_HINT),
                    code: EXIT_IN_USE,
                };
            }
            // Our messages name the file and say what happened.
            Some(ours) => return Failure::new(ours.to_string()),
            None => {}
        }
        match e {
            StoreError::Validation(m) | StoreError::InvalidConfig(m) => Failure::new(m),
            e => {
                let mut text = e.to_string();
                let mut layer = std::error::Error::source(&e);
                while let Some(l) = layer {
                    text.push_str(": ");
                    text.push_str(&l.to_string());
                    layer = l.source();
                }
                Failure::new(text)
            }
        }
    }
}

type Outcome = Result<ExitCode, Failure>;

/// redb trusts the file it reads and may panic on damage; the library
/// contains such panics and reports the file as damaged, so their default
/// report (a backtrace hint from inside redb) would only confuse. Panics
/// anywhere else are reported as usual.
fn quiet_redb_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_redb = info
            .location()
            .is_some_and(|l| l.file().replace('\\', "/").contains("/redb-"));
        if !in_redb {
            default(info);
        }
    }));
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    quiet_redb_panics();
    match run(&cli) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("wa-redb: error: {}", f.message);
            if let Some(hint) = f.hint {
                eprintln!("{hint}");
            }
            ExitCode::from(f.code)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the async runtime: {e}")))
}

fn require_file(path: &Path) -> Result<(), Failure> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Failure::new(format!("{}: not a file", path.display()))),
        Err(e) => Err(Failure::new(format!("{}: {e}", path.display()))),
    }
}

/// Opens an existing store file to look at it: never writes to it, works
/// on a read-only file and on a store another process has open.
fn look(path: &Path) -> Result<RedbStore, Failure> {
    require_file(path)?;
    let store = RedbStore::open_to_look(path)?;
    if let Some(note) = store.look_report().and_then(look_note) {
        eprintln!("wa-redb: note: {note}");
    }
    Ok(store)
}

/// What a user should know about how a look saw the store, if anything.
fn look_note(look: &LookReport) -> Option<String> {
    let records = match look.journal_records {
        0 => String::new(),
        n => format!(" plus {n} journal record(s)"),
    };
    // In use, the journal's tail is being written: stopping there is normal.
    let stopped = match &look.journal_stopped {
        Some(why) if !look.in_use => format!(" (the journal ends early: {why})"),
        _ => String::new(),
    };
    if look.in_use {
        let age = match look.checkpointed_at {
            Some(at) => {
                let ago = now_secs().saturating_sub(at).max(0);
                format!("its last checkpoint ({ago} s ago)")
            }
            None => "its last checkpoint (time not recorded)".to_string(),
        };
        Some(format!(
            "the store is open in another process: showing {age}{records}{stopped}; \
             writes it acknowledged since may not be shown"
        ))
    } else if look.crashed {
        Some(format!(
            "the last process did not close the store: showing its file{records}{stopped}, \
             applied in memory only (the next open by the application applies it for good)"
        ))
    } else {
        None
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Opens an existing store file to change it (never creates one).
fn open(path: &Path) -> Result<RedbStore, Failure> {
    require_file(path)?;
    // No compaction at open: a look must not rewrite the file.
    let config = RedbStoreConfig::default().with_auto_compact(None);
    let store = RedbStore::open_blocking(path, 1, config)?;
    let replayed = store.recovery_report().records_replayed;
    if replayed > 0 {
        eprintln!(
            "wa-redb: note: applied {replayed} journal record(s) left by a process that did not close the store"
        );
    }
    Ok(store)
}

fn close(rt: &tokio::runtime::Runtime, store: RedbStore) -> Result<(), Failure> {
    rt.block_on(store.close()).map(drop).map_err(Failure::from)
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::new(format!("cannot render JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A progress bar on stderr (drawn only on a terminal).
#[cfg(feature = "sqlite")]
fn progress_bar() -> (ProgressBar, whatsapp_rust_redb_storage::ProgressFn) {
    use indicatif::ProgressStyle;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:32} [{bar:30}] {pos}/{len} rows, {eta} left")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let b = bar.clone();
    let f: whatsapp_rust_redb_storage::ProgressFn = std::sync::Arc::new(move |p| {
        b.set_length(p.total);
        b.set_position(p.done);
        b.set_message(p.stage.to_owned());
    });
    (bar, f)
}

/// A spinner on stderr (drawn only on a terminal), for work that does not
/// report progress.
fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn run(cli: &Cli) -> Outcome {
    match &cli.command {
        Command::Info { file } => info(file, cli.json),
        Command::Dump {
            file,
            device,
            table,
            reveal,
        } => dump(file, *device, table.clone(), *reveal),
        Command::Check { file } => check(file, cli.json),
        Command::Compact { file } => compact(file, cli.json),
        Command::Backup { file, dest } => backup(file, dest, cli.json),
        Command::Restore { backup, file } => restore(backup, file, cli.json),
        Command::ImportSqlite {
            sqlite_db,
            file,
            overwrite,
        } => import(sqlite_db, file, *overwrite, cli.json),
        Command::Export {
            file,
            to_sqlite,
            device,
        } => export(file, to_sqlite, *device, cli.json),
        Command::DeleteDevice { file, device } => delete_device(file, *device, cli.json),
    }
}

fn info(file: &Path, as_json: bool) -> Outcome {
    let rt = runtime()?;
    let store = look(file)?;
    let info = rt.block_on(store.info())?;
    close(&rt, store)?;
    if as_json {
        print_json(&info)?;
    } else {
        print_info(&info);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_info(info: &StoreInfo) {
    println!("store      {}", info.path.display());
    println!("size       {}", human_bytes(info.file_bytes));
    println!("file id    {}", info.file_id);
    println!("schema     version {}", info.schema_version);
    if let Some(cause) = &info.halted {
        println!("halted     {cause}");
    }
    if let Some(look) = &info.look {
        let state = match (look.in_use, look.crashed) {
            (true, _) => "open in another process (showing its last checkpoint)",
            (false, true) => "not closed by the last process (journal applied in memory)",
            (false, false) => "closed",
        };
        println!("state      {state}");
        if let Some(bytes) = info.journal_bytes {
            println!(
                "journal    {} ({} record(s) shown)",
                human_bytes(bytes),
                look.journal_records
            );
        }
    }
    println!("accounts   {}", info.accounts.len());
    if !info.accounts.is_empty() {
        println!(
            "  {:>6}  {:<30} {:<26} {:<16} {:>8}",
            "device", "phone", "lid", "push name", "rows"
        );
        for a in &info.accounts {
            let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
            let name = if a.has_device_record {
                or_dash(&a.push_name)
            } else {
                "(no device record)".into()
            };
            println!(
                "  {:>6}  {:<30} {:<26} {:<16} {:>8}",
                a.device_id,
                or_dash(&a.phone),
                or_dash(&a.lid),
                name,
                a.rows
            );
        }
    }
    println!("tables");
    println!("  {:<26} {:>8} {:>12}", "name", "rows", "stored");
    for t in &info.tables {
        println!(
            "  {:<26} {:>8} {:>12}",
            t.name,
            t.rows,
            human_bytes(t.stored_bytes)
        );
    }
}

fn dump(file: &Path, device: Option<i32>, table: Option<String>, reveal: bool) -> Outcome {
    let store = look(file)?;
    if reveal {
        eprintln!(
            "wa-redb: warning: --reveal prints private keys, session records and message contents; keep the output secret"
        );
    }
    let mut options = DumpOptions::default().with_reveal(reveal);
    options.device = device;
    options.table = table;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut write_error = None;
    let rows = store.dump(&options, &mut |row| {
        let written = serde_json::to_writer(&mut out, &row)
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n"));
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                write_error = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    let flushed = out.flush();
    drop(out);
    let rt = runtime()?;
    close(&rt, store)?;
    match write_error.map_or(flushed, Err) {
        Ok(()) => {}
        // The reader went away (`| head`): not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(Failure::new(format!("writing the output: {e}"))),
    }
    if rows == 0 {
        eprintln!("wa-redb: no rows matched");
    }
    Ok(ExitCode::SUCCESS)
}

fn check(file: &Path, as_json: bool) -> Outcome {
    require_file(file)?;
    let bar = spinner(format!("checking {}", file.display()));
    let result = RedbStore::check_file(file);
    bar.finish_and_clear();
    let report: CheckReport = match result {
        Ok(report) => {
            if let Some(note) = look_note(&report.look) {
                eprintln!("wa-redb: note: {note}");
            }
            report
        }
        Err(e) => {
            // Only a file that could be read and is not a sound store is
            // damaged; one that cannot be read (permissions, I/O) is an error.
            let unreadable = matches!(
                store_error(&e),
                Some(Error::Io { .. } | Error::InvalidPath { .. }) | None
            );
            let failure = Failure::from(e);
            if failure.code == EXIT_IN_USE || unreadable {
                return Err(failure);
            }
            // The file could not even be read as a store: not sound.
            if as_json {
                print_json(&json!({
                    "path": file,
                    "ok": false,
                    "error": failure.message,
                }))?;
            } else {
                println!("DAMAGED: {}", failure.message);
            }
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    let ok = report.is_ok();
    if as_json {
        let mut value = serde_json::to_value(&report)
            .map_err(|e| Failure::new(format!("cannot render JSON: {e}")))?;
        value["ok"] = json!(ok);
        print_json(&value)?;
    } else if ok {
        println!(
            "ok: {} — page checksums verified, {} records decoded",
            report.path.display(),
            report.rows_checked
        );
    } else {
        println!("DAMAGED: {}", report.path.display());
        if !report.pages_ok {
            println!("  page checksums: FAILED (redb repaired its allocator state)");
        }
        for p in &report.problems {
            println!("  {p}");
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

fn compact(file: &Path, as_json: bool) -> Outcome {
    require_file(file)?;
    let bar = spinner(format!("compacting {}", file.display()));
    let result = RedbStore::compact_file(file);
    bar.finish_and_clear();
    let report = result?;
    if as_json {
        print_json(&report)?;
    } else {
        println!(
            "compacted {}: {} -> {} ({} freed)",
            file.display(),
            human_bytes(report.bytes_before),
            human_bytes(report.bytes_after),
            human_bytes(report.bytes_before.saturating_sub(report.bytes_after))
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn backup(file: &Path, dest: &Path, as_json: bool) -> Outcome {
    let rt = runtime()?;
    let store = open(file)?;
    let bar = spinner(format!("backing up {}", file.display()));
    let result = rt.block_on(store.backup_to(dest));
    bar.finish_and_clear();
    close(&rt, store)?;
    result?;
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    if as_json {
        print_json(&json!({ "source": file, "backup": dest, "bytes": bytes }))?;
    } else {
        println!(
            "backup of {} written to {} ({})",
            file.display(),
            dest.display(),
            human_bytes(bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn restore(backup: &Path, file: &Path, as_json: bool) -> Outcome {
    require_file(backup)?;
    RedbStore::restore_file(backup, file)?;
    if as_json {
        print_json(&json!({ "backup": backup, "restored": file }))?;
    } else {
        println!("restored {} from {}", file.display(), backup.display());
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "sqlite")]
fn import(sqlite_db: &Path, file: &Path, overwrite: bool, as_json: bool) -> Outcome {
    use whatsapp_rust_redb_storage::{ImportOptions, import_sqlite};
    let rt = runtime()?;
    let (bar, progress) = progress_bar();
    let options = ImportOptions::default()
        .with_overwrite(overwrite)
        .with_progress(progress);
    let result = rt.block_on(import_sqlite(sqlite_db, file, &options));
    bar.finish_and_clear();
    let report = result?;
    if as_json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "imported {} account(s), {} rows, from {} into {}{}",
        report.accounts.len(),
        report.total_rows,
        sqlite_db.display(),
        file.display(),
        if report.created_file {
            " (new file)"
        } else {
            ""
        }
    );
    for a in &report.accounts {
        let rows: u64 = a.rows.values().sum();
        println!(
            "  device {}: {rows} rows{}",
            a.device_id,
            if a.replaced {
                " (replaced the account the file held)"
            } else {
                ""
            }
        );
        for s in &a.skipped {
            println!("    skipped {s}");
        }
    }
    println!("row counts verified against the SQLite file");
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "sqlite")]
fn export(file: &Path, to_sqlite: &Path, device: Option<i32>, as_json: bool) -> Outcome {
    use whatsapp_rust_redb_storage::{ExportOptions, export_sqlite};
    let rt = runtime()?;
    let (bar, progress) = progress_bar();
    let options = ExportOptions::default().with_progress(progress);
    let result = rt.block_on(export_sqlite(file, to_sqlite, device, &options));
    bar.finish_and_clear();
    let reports = result?;
    if as_json {
        print_json(&reports)?;
        return Ok(ExitCode::SUCCESS);
    }
    for r in &reports {
        println!(
            "exported device {} ({} rows) to {}",
            r.device_id,
            r.total_rows,
            to_sqlite.display()
        );
    }
    println!(
        "row counts verified; sent-message and pending-inbound times are the export time \
         (the storage trait cannot set them)"
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "sqlite"))]
fn no_sqlite() -> Outcome {
    Err(Failure::new(
        "this wa-redb was built without SQLite support; build it with `--features cli,sqlite`",
    ))
}

#[cfg(not(feature = "sqlite"))]
fn import(_: &Path, _: &Path, _: bool, _: bool) -> Outcome {
    no_sqlite()
}

#[cfg(not(feature = "sqlite"))]
fn export(_: &Path, _: &Path, _: Option<i32>, _: bool) -> Outcome {
    no_sqlite()
}

fn delete_device(file: &Path, device: i32, as_json: bool) -> Outcome {
    let rt = runtime()?;
    let store = open(file)?;
    let accounts = rt.block_on(store.accounts())?;
    if !accounts.iter().any(|a| a.device_id == device) {
        close(&rt, store)?;
        let ids: Vec<String> = accounts.iter().map(|a| a.device_id.to_string()).collect();
        return Err(Failure::new(format!(
            "{} has no account with device id {device} (accounts: {})",
            file.display(),
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            }
        )));
    }
    let rows = rt.block_on(store.delete_device(device))?;
    close(&rt, store)?;
    if as_json {
        print_json(&json!({ "device_id": device, "rows_deleted": rows }))?;
    } else {
        println!(
            "deleted device {device}: {rows} rows. The file keeps its size until `wa-redb compact {}`.",
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
