//! `wa-redb`: inspect and operate whatsapp-rust redb store files.
//!
//! A thin layer over the library's operations API: every command is one or
//! two library calls plus printing. See "Operating a store" in the README.
//!
//! - `args`: the command line (clap).
//! - `commands`: one function per command; `rekey`: those that change how
//!   a store is keyed (`rekey`, `encrypt`, `decrypt`).
//! - `keys`: where a store's key comes from, how a key file is read, what
//!   a user is told when a key does not fit the store.
//! - `support`: opening and closing stores, checking paths, asking.
//! - `failure`: why a command failed, reported on stderr or as JSON.
//! - `output`: printing that survives a closed pipe; `progress`: bars.
//! - `replica`: snapshots in object storage (feature `replica`).

mod args;
mod commands;
mod failure;
mod key_source;
mod look_note;
mod output;
mod progress;
mod rekey;
#[cfg(feature = "replica")]
mod replica;
mod salvage;
mod support;
mod transfer;
#[cfg(feature = "replica")]
mod when;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use args::Cli;
use failure::{EXIT_USAGE, Failure};

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

/// A command line clap refused (or help asked for). With `--json` anywhere
/// on it, a refusal is reported as JSON like any other failure.
fn bad_usage(e: clap::Error, args: &[OsString]) -> ExitCode {
    let json = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json");
    let shown = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    if shown || !json {
        // clap ignores a closed stdout or stderr here.
        let _ = e.print();
        let _ = std::io::stdout().flush();
        return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_USAGE));
    }
    let rendered = e.render().to_string();
    let message = rendered
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned();
    let usage = rendered
        .lines()
        .find(|l| l.starts_with("Usage: "))
        .map(|u| format!("{u} (see `wa-redb --help`)"))
        .unwrap_or_else(|| "see `wa-redb --help`".into());
    Failure::usage(message).with_hint(usage).report(true)
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return bad_usage(e, &args),
    };
    quiet_redb_panics();
    match commands::run(&cli) {
        Ok(code) => code,
        Err(f) => f.report(cli.json),
    }
}
