//! One function per command: a library call or two, and the printing.

use std::io::{BufRead, BufWriter, IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::process::ExitCode;

use serde_json::json;
use whatsapp_rust_redb_storage::{
    CheckReport, DumpOptions, Error, RedbStore, RedbStoreConfig, StoreInfo,
};

use crate::args::{Cli, Command, ExportArgs};
use crate::failure::{EXIT_FAILED, EXIT_IN_USE, Failure, store_error};
use crate::look_note::look_note;
use crate::output::{Out, file_len, human_bytes, note, outln, print_json};
use crate::progress::spinner;

type Outcome = Result<ExitCode, Failure>;

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the async runtime: {e}")))
}

fn require_file(path: &Path) -> Result<(), Failure> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Failure::new(format!(
            "{}: not a file (a directory?); name the store file itself",
            path.display()
        ))),
        Err(e) => Err(Failure::new(format!("{}: {e}", path.display()))
            .with_hint("check the path; wa-redb never creates a store file it was asked to read")),
    }
}

/// Opens an existing store file to look at it: never writes to it, works
/// on a read-only file and on a store another process has open.
fn look(path: &Path) -> Result<RedbStore, Failure> {
    require_file(path)?;
    let store = RedbStore::open_to_look(path)?;
    if let Some(text) = store.look_report().and_then(look_note) {
        note(&format!("note: {text}"));
    }
    Ok(store)
}

/// Opens an existing store file as its owner, without compaction at
/// close: for `backup`, which needs every acknowledged write and the file
/// to itself.
fn open(path: &Path) -> Result<RedbStore, Failure> {
    require_file(path)?;
    let config = RedbStoreConfig::default().with_auto_compact(None);
    let store = RedbStore::open_blocking(path, 1, config)?;
    note_replayed(&store);
    Ok(store)
}

fn note_replayed(store: &RedbStore) {
    let replayed = store.recovery_report().records_replayed;
    if replayed > 0 {
        note(&format!(
            "note: applied {replayed} journal record(s) left by a process that did not close the store"
        ));
    }
}

/// Opens an existing store file for a command that changes it, with the
/// default configuration: its close compacts the file when a large part of
/// it is free.
fn open_to_change(path: &Path) -> Result<RedbStore, Failure> {
    require_file(path)?;
    let store = RedbStore::open_blocking(path, 1, RedbStoreConfig::default())?;
    note_replayed(&store);
    Ok(store)
}

fn close(rt: &tokio::runtime::Runtime, store: RedbStore) -> Result<(), Failure> {
    rt.block_on(store.close()).map(drop).map_err(Failure::from)
}

/// Whether to ask before doing `what`: not with `--yes`; off a terminal,
/// nobody can answer, so the command is refused (a usage error).
fn must_ask(yes: bool, what: &str) -> Result<bool, Failure> {
    if yes {
        return Ok(false);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(format!(
            "refusing to {what} without --yes (stdin is not a terminal)"
        ))
        .with_hint("add --yes to do it without asking"));
    }
    Ok(true)
}

/// Asks `question` on the terminal; anything but "y" or "yes" cancels.
fn ask(question: &str) -> Result<(), Failure> {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "wa-redb: {question} [y/N] ").and_then(|()| err.flush());
    drop(err);
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::new(format!("cannot read the answer: {e}")))?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Failure::new("cancelled; nothing was changed")),
    }
}

pub fn run(cli: &Cli) -> Outcome {
    let out = &mut std::io::stdout().lock();
    let json = cli.json;
    let code = match &cli.command {
        Command::Info { file } => info(out, file, json),
        Command::Dump {
            file,
            device,
            table,
            reveal,
        } => dump(out, file, *device, table.clone(), *reveal),
        Command::Check { file } => check(out, file, json),
        Command::Compact { file } => compact(out, file, json),
        Command::Backup { file, dest } => backup(out, file, dest, json),
        Command::Restore { backup, file, yes } => restore(out, backup, file, *yes, json),
        Command::ImportSqlite {
            src,
            dst,
            overwrite,
            yes,
        } => import(out, src, dst, *overwrite, *yes, json),
        Command::ExportSqlite {
            src,
            dst,
            export: e,
        } => export(out, src, dst, e, json),
        Command::Export {
            file,
            to_sqlite,
            export: e,
        } => export(out, file, to_sqlite, e, json),
        Command::DeleteDevice { file, device, yes } => {
            delete_device(out, file, *device, *yes, json)
        }
    }?;
    out.flush().map_err(Failure::output)?;
    Ok(code)
}

fn info(out: &mut Out, file: &Path, as_json: bool) -> Outcome {
    let rt = runtime()?;
    let store = look(file)?;
    let info = rt.block_on(store.info())?;
    close(&rt, store)?;
    if as_json {
        print_json(out, &info)?;
    } else {
        print_info(out, &info)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_info(out: &mut Out, info: &StoreInfo) -> Result<(), Failure> {
    outln!(out, "store      {}", info.path.display());
    outln!(out, "size       {}", human_bytes(info.file_bytes));
    outln!(out, "file id    {}", info.file_id);
    outln!(out, "schema     version {}", info.schema_version);
    if let Some(cause) = &info.halted {
        outln!(out, "halted     {cause}");
    }
    if let Some(look) = &info.look {
        let state = match (look.in_use, look.crashed) {
            (true, _) => "open in another process (showing its last checkpoint)",
            (false, true) => "not closed by the last process (journal applied in memory)",
            (false, false) => "closed",
        };
        outln!(out, "state      {state}");
        if let Some(bytes) = info.journal_bytes {
            outln!(
                out,
                "journal    {} ({} record(s) shown)",
                human_bytes(bytes),
                look.journal_records
            );
        }
    }
    outln!(out, "accounts   {}", info.accounts.len());
    if !info.accounts.is_empty() {
        outln!(
            out,
            "  {:>6}  {:<30} {:<26} {:<16} {:>8}",
            "device",
            "phone",
            "lid",
            "push name",
            "rows"
        );
        for a in &info.accounts {
            let or_dash = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
            let name = if a.has_device_record {
                or_dash(&a.push_name)
            } else {
                "(no device record)".into()
            };
            outln!(
                out,
                "  {:>6}  {:<30} {:<26} {:<16} {:>8}",
                a.device_id,
                or_dash(&a.phone),
                or_dash(&a.lid),
                name,
                a.rows
            );
        }
    }
    outln!(out, "tables");
    outln!(out, "  {:<26} {:>8} {:>12}", "name", "rows", "stored");
    for t in &info.tables {
        outln!(
            out,
            "  {:<26} {:>8} {:>12}",
            t.name,
            t.rows,
            human_bytes(t.stored_bytes)
        );
    }
    Ok(())
}

/// `dump` prints JSON lines whether or not `--json` is given.
fn dump(
    out: &mut Out,
    file: &Path,
    device: Option<i32>,
    table: Option<String>,
    reveal: bool,
) -> Outcome {
    let store = look(file)?;
    if reveal {
        note(
            "warning: --reveal prints private keys, session records and message contents; keep the output secret",
        );
    }
    let mut options = DumpOptions::default().with_reveal(reveal);
    options.device = device;
    options.table = table;
    let mut lines = BufWriter::new(out);
    let mut write_error = None;
    let rows = store.dump(&options, &mut |row| {
        let written = serde_json::to_writer(&mut lines, &row)
            .map_err(std::io::Error::from)
            .and_then(|()| lines.write_all(b"\n"));
        match written {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                write_error = Some(e);
                ControlFlow::Break(())
            }
        }
    })?;
    let flushed = lines.flush();
    drop(lines);
    let rt = runtime()?;
    close(&rt, store)?;
    // The reader went away (`| head`): a quiet success.
    write_error.map_or(flushed, Err).map_err(Failure::output)?;
    if rows == 0 {
        note("no rows matched");
    }
    Ok(ExitCode::SUCCESS)
}

fn check(out: &mut Out, file: &Path, as_json: bool) -> Outcome {
    require_file(file)?;
    let bar = spinner(format!("checking {}", file.display()));
    let result = RedbStore::check_file(file);
    bar.finish_and_clear();
    let report: CheckReport = match result {
        Ok(report) => {
            if let Some(text) = look_note(&report.look) {
                note(&format!("note: {text}"));
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
                print_json(
                    out,
                    &json!({
                        "path": file,
                        "ok": false,
                        "error": failure.message,
                    }),
                )?;
            } else {
                outln!(out, "DAMAGED: {}", failure.message);
            }
            return Ok(ExitCode::from(EXIT_FAILED));
        }
    };
    let ok = report.is_ok();
    if as_json {
        let mut value = serde_json::to_value(&report)
            .map_err(|e| Failure::new(format!("cannot render JSON: {e}")))?;
        value["ok"] = json!(ok);
        print_json(out, &value)?;
    } else if ok {
        outln!(
            out,
            "ok: {} — page checksums verified, {} records decoded",
            report.path.display(),
            report.rows_checked
        );
    } else {
        outln!(out, "DAMAGED: {}", report.path.display());
        if !report.pages_ok {
            outln!(
                out,
                "  page checksums: FAILED (redb repaired its allocator state)"
            );
        }
        for p in &report.problems {
            outln!(out, "  {p}");
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    })
}

fn compact(out: &mut Out, file: &Path, as_json: bool) -> Outcome {
    require_file(file)?;
    let bar = spinner(format!("compacting {}", file.display()));
    let result = RedbStore::compact_file(file);
    bar.finish_and_clear();
    let report = result?;
    let freed = report.bytes_freed();
    if as_json {
        print_json(
            out,
            &json!({
                "path": file,
                "bytes_before": report.bytes_before,
                "bytes_after": report.bytes_after,
                "bytes_freed": freed,
            }),
        )?;
    } else if freed == 0 {
        outln!(
            out,
            "compacted {}: {}, nothing to free (0 B freed)",
            file.display(),
            human_bytes(report.bytes_after)
        );
    } else {
        outln!(
            out,
            "compacted {}: {} -> {} ({} freed)",
            file.display(),
            human_bytes(report.bytes_before),
            human_bytes(report.bytes_after),
            human_bytes(freed)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn backup(out: &mut Out, file: &Path, dest: &Path, as_json: bool) -> Outcome {
    // Refused before the store is opened, naming what is wrong.
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Failure::new(format!(
            "{} does not exist (the directory to write the backup {} in); create it first, \
             or choose another destination",
            dir.display(),
            dest.display()
        )));
    }
    if dest.exists() {
        return Err(Failure::new(format!(
            "{}: a file already exists there; wa-redb never overwrites one, choose a new name",
            dest.display()
        )));
    }
    let rt = runtime()?;
    let store = open(file)?;
    let bar = spinner(format!("backing up {}", file.display()));
    let result = rt.block_on(store.backup_to(dest));
    bar.finish_and_clear();
    close(&rt, store)?;
    result?;
    let bytes = file_len(dest);
    if as_json {
        print_json(
            out,
            &json!({ "source": file, "backup": dest, "bytes": bytes }),
        )?;
    } else {
        outln!(
            out,
            "backup of {} written to {} ({})",
            file.display(),
            dest.display(),
            human_bytes(bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn restore(out: &mut Out, backup: &Path, file: &Path, yes: bool, as_json: bool) -> Outcome {
    require_file(backup)?;
    if file.exists() {
        let what = format!("replace {} with {}", file.display(), backup.display());
        if must_ask(yes, &what)? {
            ask(&format!(
                "{what}? The replaced file ({}) is kept beside it",
                human_bytes(file_len(file))
            ))?;
        }
    }
    let report = RedbStore::restore_file(backup, file)?;
    if as_json {
        print_json(
            out,
            &json!({ "backup": backup, "restored": file, "replaced": report.replaced }),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(out, "restored {} from {}", file.display(), backup.display());
    if let Some(kept) = &report.replaced {
        outln!(
            out,
            "the file it replaced is kept as {} (remove it once you no longer need it)",
            kept.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "sqlite")]
fn import(
    out: &mut Out,
    src: &Path,
    dst: &Path,
    overwrite: bool,
    yes: bool,
    as_json: bool,
) -> Outcome {
    use whatsapp_rust_redb_storage::{ImportOptions, import_sqlite};
    if overwrite && dst.exists() {
        let what = format!(
            "replace the accounts of {} with those of {}",
            dst.display(),
            src.display()
        );
        if must_ask(yes, &what)? {
            ask(&format!("{what} (any device id both hold)?"))?;
        }
    }
    let rt = runtime()?;
    let (bar, progress) = crate::progress::progress_bar();
    let options = ImportOptions::default()
        .with_overwrite(overwrite)
        .with_progress(progress);
    let result = rt.block_on(import_sqlite(src, dst, &options));
    bar.finish_and_clear();
    let report = result?;
    if as_json {
        print_json(out, &report)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        out,
        "imported {} account(s), {} rows, from {} into {}{}",
        report.accounts.len(),
        report.total_rows,
        src.display(),
        dst.display(),
        if report.created_file {
            " (new file)"
        } else {
            ""
        }
    );
    for a in &report.accounts {
        let rows: u64 = a.rows.values().sum();
        outln!(
            out,
            "  device {}: {rows} rows{}",
            a.device_id,
            if a.replaced {
                " (replaced the account the file held)"
            } else {
                ""
            }
        );
        for s in &a.skipped {
            outln!(out, "    skipped {s}");
        }
    }
    outln!(out, "row counts verified against the SQLite file");
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "sqlite")]
fn export(
    out: &mut Out,
    file: &Path,
    to_sqlite: &Path,
    args: &ExportArgs,
    as_json: bool,
) -> Outcome {
    use whatsapp_rust_redb_storage::{ExportOptions, export_sqlite};
    if args.overwrite && to_sqlite.exists() {
        let what = format!(
            "replace the accounts of {} with those of {}",
            to_sqlite.display(),
            file.display()
        );
        if must_ask(args.yes, &what)? {
            ask(&format!("{what} (any device id both hold)?"))?;
        }
    }
    let rt = runtime()?;
    let (bar, progress) = crate::progress::progress_bar();
    let options = ExportOptions::default()
        .with_overwrite(args.overwrite)
        .with_progress(progress);
    let result = rt.block_on(export_sqlite(file, to_sqlite, args.device, &options));
    bar.finish_and_clear();
    let reports = result?;
    if as_json {
        print_json(out, &reports)?;
        return Ok(ExitCode::SUCCESS);
    }
    for r in &reports {
        outln!(
            out,
            "exported device {} ({} rows) to {}{}",
            r.device_id,
            r.total_rows,
            to_sqlite.display(),
            if r.replaced {
                " (replaced the account it held)"
            } else {
                ""
            }
        );
    }
    outln!(
        out,
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
fn import(_: &mut Out, _: &Path, _: &Path, _: bool, _: bool, _: bool) -> Outcome {
    no_sqlite()
}

#[cfg(not(feature = "sqlite"))]
fn export(_: &mut Out, _: &Path, _: &Path, _: &ExportArgs, _: bool) -> Outcome {
    no_sqlite()
}

fn delete_device(out: &mut Out, file: &Path, device: i32, yes: bool, as_json: bool) -> Outcome {
    let asking = must_ask(
        yes,
        &format!("delete device {device} from {}", file.display()),
    )?;
    let bytes_before = file_len(file);
    let rt = runtime()?;
    let store = open_to_change(file)?;
    let accounts = rt.block_on(store.accounts())?;
    let Some(account) = accounts.iter().find(|a| a.device_id == device) else {
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
        ))
        .with_hint(format!(
            "`wa-redb info {}` lists the accounts",
            file.display()
        )));
    };
    if asking {
        let who = account
            .push_name
            .as_deref()
            .or(account.phone.as_deref())
            .map(|n| format!(", {n}"))
            .unwrap_or_default();
        if let Err(cancelled) = ask(&format!(
            "delete device {device} ({} rows{who}) from {}? This cannot be undone",
            account.rows,
            file.display()
        )) {
            close(&rt, store)?;
            return Err(cancelled);
        }
    }
    let bar = spinner(format!("deleting device {device} from {}", file.display()));
    let result = rt.block_on(store.delete_device(device));
    bar.finish_and_clear();
    // Closing compacts the file if much of it is free now.
    let closed = close(&rt, store);
    let rows = result?;
    closed?;
    let bytes_after = file_len(file);
    if as_json {
        print_json(
            out,
            &json!({
                "device_id": device,
                "rows_deleted": rows,
                "bytes_before": bytes_before,
                "bytes_after": bytes_after,
            }),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        out,
        "deleted device {device} from {}: {rows} rows; the file is {} (was {})",
        file.display(),
        human_bytes(bytes_after),
        human_bytes(bytes_before)
    );
    if bytes_after >= bytes_before {
        outln!(
            out,
            "later writes reuse the space; `wa-redb compact {}` gives it back now",
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
