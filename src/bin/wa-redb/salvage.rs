//! `salvage DAMAGED OUT`: what a damaged store still holds, copied into a
//! new store, with a per-table account of what came back and what was lost.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig};

use crate::failure::Outcome;
use crate::output::{Out, file_len, human_bytes, outln, print_json};
use crate::progress::spinner;
use crate::support::copy_paths;

pub fn salvage(
    out: &mut Out,
    damaged: &Path,
    output: &Path,
    config: &RedbStoreConfig,
    as_json: bool,
) -> Outcome {
    copy_paths(damaged, output, "salvaged store")?;
    let bar = spinner(format!("salvaging {}", damaged.display()));
    // The new store is keyed like the damaged one.
    let result = RedbStore::salvage_file(damaged, config, output, config);
    bar.finish_and_clear();
    let report = result?;
    if as_json {
        print_json(out, &report)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        out,
        "salvaged {} into {} ({})",
        damaged.display(),
        output.display(),
        human_bytes(file_len(output))
    );
    let accounts: Vec<String> = report.accounts.iter().map(i32::to_string).collect();
    outln!(
        out,
        "device records recovered: {}",
        if accounts.is_empty() {
            "none (the account must be paired again)".to_string()
        } else {
            accounts.join(", ")
        }
    );
    for t in &report.tables {
        let state = match (&t.unreadable, t.undecodable) {
            (None, 0) => "complete".to_string(),
            (None, n) => format!("{n} row(s) did not decode and were left out"),
            (Some(why), 0) => format!("rows lost where it could not be read: {why}"),
            (Some(why), n) => {
                format!("{n} row(s) did not decode; rows lost where it could not be read: {why}")
            }
        };
        outln!(out, "  {:<26} {:>8} rows  {state}", t.table, t.recovered);
    }
    if let Some(why) = &report.journal_stopped {
        outln!(out, "the journal was not applied in full: {why}");
    }
    if report.complete() {
        outln!(out, "nothing was lost");
    } else {
        outln!(
            out,
            "keep {} until the new store is known to work; open the new one instead",
            damaged.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
