//! What the commands share: opening and closing store files (with the
//! key, if one is given), checking the paths they are given, and asking
//! before a destructive change.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use whatsapp_rust_redb_storage::{RedbStore, RedbStoreConfig};

use crate::failure::Failure;
use crate::look_note::look_note;
use crate::output::note;

pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the async runtime: {e}")))
}

pub fn require_file(path: &Path) -> Result<(), Failure> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Failure::new(format!(
            "{}: not a file (a directory?); name the store file itself",
            path.display()
        ))),
        // In the same words on every system (Windows says "File not found").
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::new(format!(
            "{}: no such file",
            path.display()
        ))
        .with_hint("check the path; wa-redb never creates a store file it was asked to read")),
        Err(e) => Err(Failure::new(format!("{}: {e}", path.display()))
            .with_hint("check the path; wa-redb never creates a store file it was asked to read")),
    }
}

/// Opens an existing store file to look at it (with the key in `config`,
/// if any): never writes to it, works on a read-only file and on a store
/// another process has open.
pub fn look(path: &Path, config: &RedbStoreConfig) -> Result<RedbStore, Failure> {
    require_file(path)?;
    let store = RedbStore::open_to_look_with(path, config)?;
    if let Some(text) = store.look_report().and_then(look_note) {
        note(&format!("note: {text}"));
    }
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
/// default configuration (and the key in `config`).
pub fn open_to_change(path: &Path, config: &RedbStoreConfig) -> Result<RedbStore, Failure> {
    require_file(path)?;
    let store = RedbStore::open_blocking(path, 1, config.clone())?;
    note_replayed(&store);
    Ok(store)
}

pub fn close(rt: &tokio::runtime::Runtime, store: RedbStore) -> Result<(), Failure> {
    rt.block_on(store.close()).map(drop).map_err(Failure::from)
}

/// Whether to ask before doing `what`: not with `--yes`; off a terminal,
/// nobody can answer, so the command is refused (a usage error).
pub fn must_ask(yes: bool, what: &str) -> Result<bool, Failure> {
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
pub fn ask(question: &str) -> Result<(), Failure> {
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

/// `input` exists and `output` does not, as a command that writes a copy
/// (the `what`) of a store needs them.
pub fn copy_paths(input: &Path, output: &Path, what: &str) -> Result<(), Failure> {
    require_file(input)?;
    fresh_destination(output, what)
}

/// Refuses a destination `what` (a backup, a copy) cannot be written to,
/// naming what is wrong: one that exists, or whose directory does not.
pub fn fresh_destination(dest: &Path, what: &str) -> Result<(), Failure> {
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Failure::new(format!(
            "{} does not exist (the directory to write the {what} {} in); create it first, \
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
    Ok(())
}
