//! The key of an encrypted store: where it comes from (`--key-file PATH`,
//! else `WA_REDB_KEY_FILE`, else `WA_REDB_PASSPHRASE`; for `rekey`'s new
//! key the `--new-key-file` / `WA_REDB_NEW_*` equivalents), how a key file
//! is read, and what a user is told when a key does not fit the store.
//!
//! A key is never taken as a command-line argument: arguments show in
//! process listings. A key file holding exactly 64 hex digits (surrounding
//! white space ignored) is a raw 256-bit key; anything else is a
//! passphrase: the file's contents with one trailing "\n" or "\r\n" removed.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use whatsapp_rust_redb_storage::{EncryptionKey, KeyProblem, RedbStoreConfig};
use zeroize::Zeroizing;

use crate::failure::Failure;

/// Where one key is looked for, in order.
pub struct Source {
    /// The option naming a key file.
    pub flag: &'static str,
    /// The environment variable naming a key file.
    pub file_env: &'static str,
    /// The environment variable holding the passphrase itself.
    pub pass_env: &'static str,
}

/// The store's key, for every command.
pub const CURRENT: Source = Source {
    flag: "--key-file",
    file_env: "WA_REDB_KEY_FILE",
    pass_env: "WA_REDB_PASSPHRASE",
};

/// The key `rekey` changes to.
pub const NEW: Source = Source {
    flag: "--new-key-file",
    file_env: "WA_REDB_NEW_KEY_FILE",
    pass_env: "WA_REDB_NEW_PASSPHRASE",
};

/// The largest key file read: a raw key is 64 hex digits, a passphrase a
/// line of text; anything larger is not a key file.
const MAX_KEY_FILE: usize = 64 * 1024;

/// A key, and where it came from (for messages; never the key itself).
pub struct Key {
    pub key: EncryptionKey,
    /// "a passphrase" or "a raw key".
    pub kind: &'static str,
    /// "--key-file k.txt", "WA_REDB_KEY_FILE (k.txt)", "WA_REDB_PASSPHRASE".
    pub from: String,
}

/// The configuration a command opens (or writes) a store with: the
/// default one, with `key` if there is one.
pub fn config(key: Option<&Key>) -> RedbStoreConfig {
    match key {
        Some(k) => RedbStoreConfig::default().with_encryption(k.key.clone()),
        None => RedbStoreConfig::default(),
    }
}

/// An environment variable, an empty one counting as unset.
fn env(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// The key `source` gives: from the file `flag` names (the option's value),
/// else the file its file variable names, else its passphrase variable;
/// `None` if none is set.
pub fn load(source: &Source, flag: Option<&Path>) -> Result<Option<Key>, Failure> {
    if let Some(path) = flag {
        let (key, kind) = read_key_file(path)?;
        let from = format!("{} {}", source.flag, path.display());
        return Ok(Some(Key { key, kind, from }));
    }
    if let Some(path) = env(source.file_env) {
        let path = PathBuf::from(path);
        let (key, kind) = read_key_file(&path).map_err(|f| {
            let hint = format!("{} names the key file; fix it or unset it", source.file_env);
            f.with_hint(hint)
        })?;
        let from = format!("{} ({})", source.file_env, path.display());
        return Ok(Some(Key { key, kind, from }));
    }
    if let Some(pass) = env(source.pass_env) {
        let pass = pass.into_string().map_err(|_| {
            Failure::key(format!("{} is not valid UTF-8", source.pass_env)).with_hint(
                "a passphrase is UTF-8 text; put it in a key file and pass --key-file PATH",
            )
        })?;
        let key = EncryptionKey::passphrase(pass);
        let from = source.pass_env.to_string();
        return Ok(Some(Key {
            key,
            kind: PASSPHRASE,
            from,
        }));
    }
    Ok(None)
}

/// Reads a key file into a buffer zeroized afterwards, warning if others
/// may read it. A pipe is read too (`--key-file <(pass show store)`,
/// `--key-file /dev/stdin`).
fn read_key_file(path: &Path) -> Result<(EncryptionKey, &'static str), Failure> {
    let fail = |what: String| Failure::key(format!("key file {}: {what}", path.display()));
    let mut file = std::fs::File::open(path).map_err(|e| fail(format!("cannot open it: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot read it: {e}")))?;
    if meta.is_dir() {
        return Err(fail("a directory, not a key file".into()));
    }
    if meta.is_file() {
        warn_if_readable_by_others(path, &meta);
    }
    // One buffer, never grown (a grown Vec leaves copies behind).
    let mut buf = Zeroizing::new(vec![0u8; MAX_KEY_FILE + 1]);
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(format!("cannot read it: {e}"))),
        }
    }
    if len > MAX_KEY_FILE {
        return Err(fail(format!(
            "larger than {} KiB: not a key file (it holds 64 hex digits for a raw key, \
             or a passphrase)",
            MAX_KEY_FILE / 1024
        )));
    }
    Ok(match parse_key(&buf[..len]).map_err(fail)? {
        Parsed::Raw(raw) => (EncryptionKey::raw(*raw), RAW),
        Parsed::Passphrase(text) => (EncryptionKey::passphrase(text), PASSPHRASE),
    })
}

const RAW: &str = "a raw key";
const PASSPHRASE: &str = "a passphrase";

/// What a key file holds.
#[derive(Debug, PartialEq)]
enum Parsed<'a> {
    Raw(Zeroizing<[u8; 32]>),
    Passphrase(&'a str),
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path, meta: &std::fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        crate::output::note(&format!(
            "warning: key file {0} can be read or changed by others than its owner \
             (mode {mode:03o}); `chmod 600 {0}`",
            path.display()
        ));
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path, _: &std::fs::Metadata) {}

/// A key file's contents as a key (see the module's documentation); the
/// error says what is wrong, never what the file holds.
fn parse_key(bytes: &[u8]) -> Result<Parsed<'_>, String> {
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Err(if bytes.is_empty() {
            "the file is empty; it must hold the passphrase, or 64 hex digits for a raw key".into()
        } else {
            "the file holds only white space; it must hold the passphrase, or 64 hex digits \
             for a raw key"
                .into()
        });
    }
    if trimmed.len() == 64 && trimmed.iter().all(u8::is_ascii_hexdigit) {
        let mut raw = Zeroizing::new([0u8; 32]);
        for (byte, pair) in raw.iter_mut().zip(trimmed.chunks_exact(2)) {
            *byte = (nibble(pair[0]) << 4) | nibble(pair[1]);
        }
        return Ok(Parsed::Raw(raw));
    }
    let pass = bytes
        .strip_suffix(b"\r\n")
        .or_else(|| bytes.strip_suffix(b"\n"))
        .unwrap_or(bytes);
    let text = std::str::from_utf8(pass).map_err(|e| {
        format!(
            "not valid UTF-8 (at byte {}): a file that is not 64 hex digits holds a passphrase, \
             as text",
            e.valid_up_to()
        )
    })?;
    Ok(Parsed::Passphrase(text))
}

fn nibble(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// How to give a key, for hints.
pub const HOW_TO_GIVE: &str = "pass `--key-file PATH` (a file holding the passphrase, or 64 hex \
digits for a raw key), or set WA_REDB_KEY_FILE to such a file's path, or WA_REDB_PASSPHRASE to \
the passphrase";

/// How to give `rekey`'s new key, for hints.
pub const NEW_HOW_TO_GIVE: &str = "give the new key with `--new-key-file PATH` (a file holding \
the new passphrase, or 64 hex digits for a raw key), or set WA_REDB_NEW_KEY_FILE to such a file's \
path, or WA_REDB_NEW_PASSPHRASE to the new passphrase";

/// A failure the library reported as a key problem, said in the terms of
/// the command line: which key was used (`key`, from where), and what to
/// do. Other failures pass unchanged.
pub fn advise(mut f: Failure, key: Option<&Key>) -> Failure {
    let Some((path, problem)) = f.key.take() else {
        return f;
    };
    let file = path.display();
    let from = key.map_or("no key", |k| k.from.as_str());
    let (message, hint) = match &problem {
        KeyProblem::Required => (
            format!("{file}: the store is encrypted and no key was given"),
            HOW_TO_GIVE.to_string(),
        ),
        KeyProblem::Wrong => (
            format!(
                "{file}: the key from {from} does not open this encrypted store (wrong key or \
                 passphrase); nothing was changed"
            ),
            "give the key the store was created with (or last rekeyed to)".to_string(),
        ),
        KeyProblem::WrongKind { file_uses, given } => (
            format!("{file}: the store is encrypted with {file_uses}, and {from} gives {given}"),
            "a key file holding exactly 64 hex digits (white space around them aside) is a raw \
             key; anything else, and WA_REDB_PASSPHRASE, is a passphrase"
                .to_string(),
        ),
        KeyProblem::NotEncrypted => (
            format!("{file}: the store is not encrypted, but a key was given ({from})"),
            "run the command without a key (drop --key-file, unset WA_REDB_KEY_FILE and \
             WA_REDB_PASSPHRASE), or write an encrypted copy with `wa-redb encrypt IN OUT`"
                .to_string(),
        ),
        _ => {
            f.hint.get_or_insert_with(|| {
                "the file may be damaged (`wa-redb check` it) or written by a newer wa-redb"
                    .to_string()
            });
            return f;
        }
    };
    f.message = message;
    f.hint = Some(hint);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdefABCDEF0123456789abcdef0123456789abcdef0123456789";

    fn raw() -> Parsed<'static> {
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate() {
            let pair = &HEX[2 * i..2 * i + 2];
            *b = u8::from_str_radix(pair, 16).unwrap();
        }
        Parsed::Raw(Zeroizing::new(key))
    }

    #[test]
    fn sixty_four_hex_digits_are_a_raw_key() {
        assert_eq!(HEX.len(), 64);
        assert_eq!(parse_key(HEX.as_bytes()), Ok(raw()));
        assert_eq!(parse_key(format!("  {HEX}\r\n\n").as_bytes()), Ok(raw()));
    }

    #[test]
    fn anything_else_is_a_passphrase_without_its_last_newline() {
        let pass = |s: &'static str| Ok(Parsed::Passphrase(s));
        assert_eq!(parse_key(&HEX.as_bytes()[..63]), pass(&HEX[..63]));
        let longer = format!("{HEX}0");
        assert_eq!(
            parse_key(longer.as_bytes()),
            Ok(Parsed::Passphrase(&longer))
        );
        let not_hex = format!("{}g", &HEX[..63]);
        assert_eq!(
            parse_key(not_hex.as_bytes()),
            Ok(Parsed::Passphrase(&not_hex))
        );
        assert_eq!(parse_key(b"correct horse\n"), pass("correct horse"));
        assert_eq!(parse_key(b"correct horse\r\n"), pass("correct horse"));
        assert_eq!(parse_key(b"two lines\n\n"), pass("two lines\n"));
        assert_eq!(parse_key(b" spaced \n"), pass(" spaced "));
        assert_eq!(parse_key("pässwörd".as_bytes()), pass("pässwörd"));
    }

    #[test]
    fn nibbles_decode_both_cases() {
        assert_eq!(nibble(b'0'), 0);
        assert_eq!(nibble(b'9'), 9);
        assert_eq!(nibble(b'a'), 10);
        assert_eq!(nibble(b'F'), 15);
    }

    #[test]
    fn empty_blank_and_non_utf8_files_are_refused() {
        assert!(parse_key(b"").unwrap_err().contains("empty"));
        assert!(parse_key(b"\n").unwrap_err().contains("white space"));
        assert!(parse_key(b" \t\r\n").unwrap_err().contains("white space"));
        let e = parse_key(b"pass\xff\n").unwrap_err();
        assert!(e.contains("UTF-8") && e.contains("byte 4"), "{e}");
    }
}
