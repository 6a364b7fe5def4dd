//! Printing: every line goes to a locked stdout through [`outln!`], which
//! turns a closed pipe (`wa-redb info f | head -1`) into a quiet exit. Rust
//! ignores SIGPIPE, so a closed pipe shows up as an `EPIPE` write error,
//! and `println!` would panic on it.

use std::io::Write;

use crate::failure::Failure;

/// Where commands print their results.
pub type Out = std::io::StdoutLock<'static>;

/// `writeln!` to an [`Out`], returning a [`Failure`] from the function on a
/// write error (a quiet one for a closed pipe).
macro_rules! outln {
    ($out:expr) => {
        writeln!($out).map_err($crate::failure::Failure::output)?
    };
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*).map_err($crate::failure::Failure::output)?
    };
}
pub(crate) use outln;

/// A note on stderr. Never fails: with stderr gone there is nobody to tell.
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "wa-redb: {text}");
}

pub fn print_json(out: &mut Out, value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::new(format!("cannot render JSON: {e}")))?;
    outln!(out, "{text}");
    Ok(())
}

pub fn human_bytes(n: u64) -> String {
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

/// The length of a file as `stat` shows it (0 if it is not there).
pub fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}
