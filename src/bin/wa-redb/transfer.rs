//! `import` and `export`: accounts from and to SqliteStore files.

use std::path::Path;

use whatsapp_rust_redb_storage::RedbStoreConfig;

use crate::args::ExportArgs;
#[cfg(not(feature = "sqlite"))]
use crate::failure::Failure;
use crate::failure::Outcome;
use crate::output::Out;
#[cfg(feature = "sqlite")]
use {
    crate::output::{outln, print_json},
    crate::support::{ask, must_ask, runtime},
    std::io::Write,
    std::process::ExitCode,
};

#[cfg(feature = "sqlite")]
pub fn import(
    out: &mut Out,
    src: &Path,
    dst: &Path,
    overwrite: bool,
    yes: bool,
    config: &RedbStoreConfig,
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
    let mut options = ImportOptions::default()
        .with_overwrite(overwrite)
        .with_progress(progress);
    // A new store is created encrypted with it; an existing one opens with it.
    options.key = config.encryption.clone();
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
        match (report.created_file, config.encryption.is_some()) {
            (true, true) => " (new file, encrypted)",
            (true, false) => " (new file)",
            _ => "",
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
pub fn export(
    out: &mut Out,
    file: &Path,
    to_sqlite: &Path,
    args: &ExportArgs,
    config: &RedbStoreConfig,
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
    let mut options = ExportOptions::default()
        .with_overwrite(args.overwrite)
        .with_progress(progress);
    options.key = config.encryption.clone();
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
pub fn import(
    _: &mut Out,
    _: &Path,
    _: &Path,
    _: bool,
    _: bool,
    _: &RedbStoreConfig,
    _: bool,
) -> Outcome {
    no_sqlite()
}

#[cfg(not(feature = "sqlite"))]
pub fn export(
    _: &mut Out,
    _: &Path,
    _: &Path,
    _: &ExportArgs,
    _: &RedbStoreConfig,
    _: bool,
) -> Outcome {
    no_sqlite()
}
