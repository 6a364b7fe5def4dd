//! The commands that change how a store is keyed: `rekey` (a new key for an
//! encrypted store), `encrypt` and `decrypt` (copies with another keying).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use serde_json::json;
use whatsapp_rust_redb_storage::{KeyProblem, RedbStore, RedbStoreConfig, Rekey};

use crate::failure::Failure;
use crate::failure::Outcome;
use crate::key_source::{self, HOW_TO_GIVE, Key, NEW_HOW_TO_GIVE};
use crate::output::{Out, file_len, human_bytes, outln, print_json};
use crate::progress::spinner;
use crate::support::{close, copy_paths, look, require_file, runtime};

/// A command that needs an encrypted store was given a plain one.
fn not_encrypted(file: &Path, instead: &str) -> Failure {
    Failure::key(format!("{}: the store is not encrypted", file.display()))
        .with_hint(instead.to_string())
}

/// `f`, or if it says a key was given for a store that is not encrypted,
/// that the command needs an encrypted one (`instead` says what to do).
fn or_not_encrypted(f: Failure, instead: &str) -> Failure {
    match &f.key {
        Some((path, KeyProblem::NotEncrypted)) => not_encrypted(path, instead),
        _ => f,
    }
}

/// Why a command that needs an encrypted store was given no key: the store
/// is not encrypted (`instead` says what to do then), or it is and its key
/// is missing.
fn no_key_for(file: &Path, instead: &str) -> Failure {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(f) => return f,
    };
    match look(file, &RedbStoreConfig::default()) {
        Ok(store) => {
            let _ = close(&rt, store);
            not_encrypted(file, instead)
        }
        // Most often: it is encrypted and no key was given.
        Err(f) => f,
    }
}

pub fn rekey(
    out: &mut Out,
    file: &Path,
    config: &RedbStoreConfig,
    new_key_file: Option<&Path>,
    new_data_key: bool,
    as_json: bool,
) -> Outcome {
    require_file(file)?;
    let Some(new) = key_source::load(&key_source::NEW, new_key_file)? else {
        return Err(Failure::key("no new key given: refusing to rekey").with_hint(NEW_HOW_TO_GIVE));
    };
    const INSTEAD: &str = "`wa-redb encrypt IN OUT` writes an encrypted copy of it";
    if config.encryption.is_none() {
        return Err(no_key_for(file, INSTEAD));
    }
    let how = if new_data_key {
        Rekey::NewDataKey
    } else {
        Rekey::Rewrap
    };
    let bar = spinner(format!("rekeying {}", file.display()));
    let result = RedbStore::rekey_file(file, config, new.key.clone(), how);
    bar.finish_and_clear();
    result.map_err(|e| or_not_encrypted(e.into(), INSTEAD))?;
    if as_json {
        print_json(
            out,
            &json!({
                "path": file,
                "rekey": if new_data_key { "new-data-key" } else { "rewrap" },
                "new_key": new.kind,
                "new_key_from": new.from,
            }),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let what = if new_data_key {
        "rewritten under a new data key"
    } else {
        "its data key rewrapped"
    };
    outln!(
        out,
        "rekeyed {}: {what}; it opens with the new key ({}, from {}) and no longer with the old one",
        file.display(),
        new.kind,
        new.from
    );
    outln!(
        out,
        "backups and copies written before still open with the old key only"
    );
    Ok(ExitCode::SUCCESS)
}

pub fn encrypt(
    out: &mut Out,
    input: &Path,
    output: &Path,
    key: Option<&Key>,
    as_json: bool,
) -> Outcome {
    copy_paths(input, output, "encrypted copy")?;
    let Some(key) = key else {
        return Err(
            Failure::key("no key given: `encrypt` needs the key to encrypt the copy with")
                .with_hint(format!("to give the copy's key, {HOW_TO_GIVE}")),
        );
    };
    let bar = spinner(format!("encrypting {}", input.display()));
    let result = RedbStore::copy_file(
        input,
        &RedbStoreConfig::default(),
        output,
        &key_source::config(Some(key)),
    );
    bar.finish_and_clear();
    if let Err(e) = result {
        let mut f = Failure::from(e);
        if let Some((path, KeyProblem::Required)) = &f.key {
            // IN opened without a key: the key given is the copy's.
            f = Failure::key(format!(
                "{}: the store is already encrypted",
                path.display()
            ))
            .with_hint(
                "`wa-redb rekey` changes its key; `wa-redb backup` copies it (encrypted \
                     with the same key)",
            );
        }
        return Err(f);
    }
    let bytes = file_len(output);
    if as_json {
        print_json(
            out,
            &json!({
                "source": input,
                "copy": output,
                "bytes": bytes,
                "encrypted": true,
                "key": key.kind,
                "key_from": key.from,
            }),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        out,
        "encrypted copy of {} written to {} ({}; {}, from {})",
        input.display(),
        output.display(),
        human_bytes(bytes),
        key.kind,
        key.from
    );
    outln!(
        out,
        "{} is left as it was, unencrypted: remove it once the copy is in its place",
        input.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn decrypt(
    out: &mut Out,
    input: &Path,
    output: &Path,
    config: &RedbStoreConfig,
    as_json: bool,
) -> Outcome {
    copy_paths(input, output, "unencrypted copy")?;
    const INSTEAD: &str = "there is nothing to decrypt; `wa-redb backup` copies it";
    if config.encryption.is_none() {
        return Err(no_key_for(input, INSTEAD));
    }
    let bar = spinner(format!("decrypting {}", input.display()));
    let result = RedbStore::copy_file(input, config, output, &RedbStoreConfig::default());
    bar.finish_and_clear();
    result.map_err(|e| or_not_encrypted(e.into(), INSTEAD))?;
    let bytes = file_len(output);
    if as_json {
        print_json(
            out,
            &json!({
                "source": input,
                "copy": output,
                "bytes": bytes,
                "encrypted": false,
            }),
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        out,
        "unencrypted copy of {} written to {} ({}); anyone who can read it can read the store",
        input.display(),
        output.display(),
        human_bytes(bytes)
    );
    Ok(ExitCode::SUCCESS)
}
