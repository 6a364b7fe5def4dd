//! One function per command: a library call or two, and the printing.

use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::process::ExitCode;

use serde_json::json;
use whatsapp_rust_redb_storage::{
    CheckReport, DumpOptions, Error, RedbStore, RedbStoreConfig, StoreInfo,
};

use crate::args::{Cli, Command};
use crate::failure::{EXIT_FAILED, EXIT_IN_USE, EXIT_KEY, Failure, Outcome, store_error};
use crate::key_source::{self, Key};
use crate::look_note::look_note;
use crate::output::{Out, file_len, human_bytes, note, outln, print_json};
use crate::progress::spinner;
use crate::support::{
    ask, close, fresh_destination, look, must_ask, open_to_change, require_file, runtime,
};
use crate::transfer;

/// Runs the command with the store's key (see `keys`), if one is given.
pub fn run(cli: &Cli) -> Outcome {
    let key = key_source::load(&key_source::CURRENT, cli.key_file.as_deref())?;
    let out = &mut std::io::stdout().lock();
    let code = dispatch(out, cli, key.as_ref()).map_err(|f| key_source::advise(f, key.as_ref()))?;
    out.flush().map_err(Failure::output)?;
    Ok(code)
}

fn dispatch(out: &mut Out, cli: &Cli, key: Option<&Key>) -> Outcome {
    let json = cli.json;
    // What every store is opened with: the default configuration and the key.
    let c = &key_source::config(key);
    match &cli.command {
        Command::Info { file } => info(out, file, c, json),
        Command::Dump {
            file,
            device,
            table,
            reveal,
        } => dump(out, file, c, *device, table.clone(), *reveal),
        Command::Check { file } => check(out, file, c, json),
        Command::Compact { file, maximum } => compact(out, file, *maximum, c, json),
        Command::Backup { file, dest } => backup(out, file, dest, c, json),
        Command::Restore { backup, file, yes } => restore(out, backup, file, *yes, c, json),
        Command::ImportSqlite {
            src,
            dst,
            overwrite,
            yes,
        } => transfer::import(out, src, dst, *overwrite, *yes, c, json),
        Command::ExportSqlite {
            src,
            dst,
            export: e,
        } => transfer::export(out, src, dst, e, c, json),
        Command::Export {
            file,
            to_sqlite,
            export: e,
        } => transfer::export(out, file, to_sqlite, e, c, json),
        Command::DeleteDevice { file, device, yes } => {
            delete_device(out, file, *device, *yes, c, json)
        }
        Command::Rekey {
            file,
            new_key_file,
            new_data_key,
        } => crate::rekey::rekey(out, file, c, new_key_file.as_deref(), *new_data_key, json),
        Command::Encrypt { input, output } => crate::rekey::encrypt(out, input, output, key, json),
        Command::Decrypt { input, output } => crate::rekey::decrypt(out, input, output, c, json),
        Command::Salvage { damaged, output } => {
            crate::salvage::salvage(out, damaged, output, c, json)
        }
        #[cfg(feature = "replica")]
        Command::Replica { action } => crate::replica::run(out, action, c, json),
    }
}

fn info(out: &mut Out, file: &Path, config: &RedbStoreConfig, as_json: bool) -> Outcome {
    let rt = runtime()?;
    let store = look(file, config)?;
    let info = rt.block_on(store.info())?;
    close(&rt, store)?;
    // A key opens only an encrypted store, and an encrypted one only opens
    // with its key.
    let encrypted = config.encryption.is_some();
    if as_json {
        let mut value = serde_json::to_value(&info)
            .map_err(|e| Failure::new(format!("cannot render JSON: {e}")))?;
        value["encrypted"] = json!(encrypted);
        print_json(out, &value)?;
    } else {
        print_info(out, &info, encrypted)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_info(out: &mut Out, info: &StoreInfo, encrypted: bool) -> Result<(), Failure> {
    outln!(out, "store      {}", info.path.display());
    outln!(out, "size       {}", human_bytes(info.file_bytes));
    outln!(out, "file id    {}", info.file_id);
    outln!(out, "schema     version {}", info.schema_version);
    outln!(out, "encrypted  {}", if encrypted { "yes" } else { "no" });
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
    config: &RedbStoreConfig,
    device: Option<i32>,
    table: Option<String>,
    reveal: bool,
) -> Outcome {
    let store = look(file, config)?;
    let rt = runtime()?;
    if let Some(device) = device {
        let accounts = rt.block_on(store.accounts())?;
        if !accounts.iter().any(|a| a.device_id == device) {
            close(&rt, store)?;
            return Err(no_such_account(file, device, &accounts));
        }
    }
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
    close(&rt, store)?;
    // The reader went away (`| head`): a quiet success.
    write_error.map_or(flushed, Err).map_err(Failure::output)?;
    if rows == 0 {
        note("no rows matched");
    }
    Ok(ExitCode::SUCCESS)
}

fn check(out: &mut Out, file: &Path, config: &RedbStoreConfig, as_json: bool) -> Outcome {
    require_file(file)?;
    let bar = spinner(format!("checking {}", file.display()));
    let result = RedbStore::check_file_with(file, config);
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
            // damaged; one that cannot be read (permissions, I/O), or that
            // is no store at all (a text file, a SQLite database), is an
            // error, as `info` says.
            let unreadable = matches!(
                store_error(&e),
                Some(Error::Io { .. } | Error::InvalidPath { .. } | Error::NotAStore { .. }) | None
            );
            let failure = Failure::from(e);
            // Nor is one its key does not open (or no key was given for).
            if failure.code == EXIT_IN_USE || failure.code == EXIT_KEY || unreadable {
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

fn compact(
    out: &mut Out,
    file: &Path,
    maximum: bool,
    config: &RedbStoreConfig,
    as_json: bool,
) -> Outcome {
    require_file(file)?;
    let bar = spinner(format!("compacting {}", file.display()));
    let packing = match maximum {
        true => whatsapp_rust_redb_storage::Packing::Maximum,
        false => whatsapp_rust_redb_storage::Packing::Balanced,
    };
    let result = RedbStore::compact_file_packing(file, config, packing);
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

fn backup(
    out: &mut Out,
    file: &Path,
    dest: &Path,
    config: &RedbStoreConfig,
    as_json: bool,
) -> Outcome {
    // Refused before the store is opened, naming what is wrong.
    fresh_destination(dest, "backup")?;
    let rt = runtime()?;
    // A look: the source stays byte for byte as it was, and a store an
    // application has open is copied as of its last checkpoint plus the
    // journal records complete at that moment (the note says so).
    let store = look(file, config)?;
    let bar = spinner(format!("backing up {}", file.display()));
    let result = rt.block_on(store.backup_to(dest));
    bar.finish_and_clear();
    close(&rt, store)?;
    result?;
    let bytes = file_len(dest);
    let encrypted = config.encryption.is_some();
    if as_json {
        print_json(
            out,
            &json!({ "source": file, "backup": dest, "bytes": bytes, "encrypted": encrypted }),
        )?;
    } else {
        outln!(
            out,
            "backup of {} written to {} ({}{})",
            file.display(),
            dest.display(),
            human_bytes(bytes),
            if encrypted {
                ", encrypted with the same key"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn restore(
    out: &mut Out,
    backup: &Path,
    file: &Path,
    yes: bool,
    config: &RedbStoreConfig,
    as_json: bool,
) -> Outcome {
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
    let report = RedbStore::restore_file_with(backup, file, config)?;
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

fn delete_device(
    out: &mut Out,
    file: &Path,
    device: i32,
    yes: bool,
    config: &RedbStoreConfig,
    as_json: bool,
) -> Outcome {
    let asking = must_ask(
        yes,
        &format!("delete device {device} from {}", file.display()),
    )?;
    let bytes_before = file_len(file);
    let rt = runtime()?;
    let store = open_to_change(file, config)?;
    let accounts = rt.block_on(store.accounts())?;
    let Some(account) = accounts.iter().find(|a| a.device_id == device) else {
        close(&rt, store)?;
        return Err(no_such_account(file, device, &accounts));
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
    let result = rt.block_on(async {
        let rows = store.delete_device(device).await?;
        // Gives the space back if much of the file is free now.
        store.compact_if_worth().await?;
        Ok::<_, wacore::store::error::StoreError>(rows)
    });
    bar.finish_and_clear();
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

/// The failure of a command given a device id the store has no account
/// for: the accounts it has, and where to see them.
fn no_such_account(
    file: &Path,
    device: i32,
    accounts: &[whatsapp_rust_redb_storage::AccountInfo],
) -> Failure {
    let ids: Vec<String> = accounts.iter().map(|a| a.device_id.to_string()).collect();
    Failure::new(format!(
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
    ))
}
