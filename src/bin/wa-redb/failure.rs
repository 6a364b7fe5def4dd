//! Why a command failed, as the user should read it, and how it is
//! reported: on stderr, or with `--json` as a JSON object on stdout.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;
use wacore::store::error::StoreError;
use whatsapp_rust_redb_storage::{Error, KeyProblem};

/// Exit status: the operation failed, or `check` found the file unsound.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: bad usage (clap's, too).
pub const EXIT_USAGE: u8 = 2;
/// Exit status: another process has the store file open.
pub const EXIT_IN_USE: u8 = 3;
/// Exit status: a key problem: an encrypted store and no key given (or a
/// command that needs a key without one), a key that does not open the
/// store (wrong, or of the other kind), a key for a store that is not
/// encrypted, or a key file that cannot be used (missing, unreadable,
/// empty). Nothing was changed.
pub const EXIT_KEY: u8 = 4;

/// What a command returns: its exit status, or the failure to report.
pub type Outcome = Result<ExitCode, Failure>;

pub struct Failure {
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    pub code: u8,
    /// The reader of our output went away (`| head`): not a failure, and
    /// nothing more to say.
    pub quiet: bool,
    /// The store file and the key problem the library reported, for
    /// `key_source::advise` to explain in the terms of the command line.
    pub key: Option<(PathBuf, KeyProblem)>,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            hint: None,
            code: EXIT_FAILED,
            quiet: false,
            key: None,
        }
    }

    /// A key problem found by wa-redb itself (no key given, a key file
    /// that cannot be used).
    pub fn key(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_KEY,
            ..Failure::new(message)
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_USAGE,
            ..Failure::new(message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A failure to write our output: a closed pipe ends the command
    /// quietly with success, like `cat` does.
    pub fn output(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Failure {
                quiet: true,
                code: 0,
                ..Failure::new("")
            }
        } else {
            Failure::new(format!("cannot write the output: {e}"))
        }
    }

    /// Reports the failure (on stdout as JSON with `as_json`, else on
    /// stderr) and returns the exit status.
    pub fn report(self, as_json: bool) -> ExitCode {
        if self.quiet {
            return ExitCode::SUCCESS;
        }
        if as_json {
            let value = json!({
                "error": self.message,
                "hint": self.hint,
                "exit_code": self.code,
            });
            let mut out = std::io::stdout().lock();
            // Nobody to tell if stdout is gone: the status still says it.
            let _ = writeln!(out, "{value:#}").and_then(|()| out.flush());
        } else {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "wa-redb: error: {}", self.message);
            if let Some(hint) = &self.hint {
                let _ = writeln!(err, "{}", wrap("hint: ", hint, 78));
            }
        }
        ExitCode::from(self.code)
    }
}

/// `text` after `first`, wrapped at `width` columns, continuation lines
/// indented under the text.
pub fn wrap(first: &str, text: &str, width: usize) -> String {
    let indent = " ".repeat(first.len());
    let mut out = String::from(first);
    let mut col = first.len();
    let mut line_empty = true;
    for word in text.split_whitespace() {
        if !line_empty && col + 1 + word.len() > width {
            out.push('\n');
            out.push_str(&indent);
            col = indent.len();
            line_empty = true;
        }
        if !line_empty {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += word.len();
        line_empty = false;
    }
    out
}

pub const IN_USE_HINT: &str = "stop the application first. `info`, `dump`, `check`, `backup` and \
`export-sqlite` work while it runs (`wa-redb backup FILE COPY` copies it as of its last \
checkpoint); run the other commands on such a copy.";

/// The library's own error in a `StoreError`'s chain, if any.
pub fn store_error(e: &StoreError) -> Option<&Error> {
    Error::find_in(e)
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match store_error(&e) {
            Some(Error::AlreadyOpen { path }) => {
                return Failure {
                    code: EXIT_IN_USE,
                    ..Failure::new(format!(
                        "{}: the store file is open in another process (waited 5 s for it to let go)",
                        path.display()
                    ))
                }
                .with_hint(IN_USE_HINT);
            }
            Some(ours @ Error::Key { path, problem }) => {
                return Failure {
                    code: EXIT_KEY,
                    key: Some((path.clone(), problem.clone())),
                    ..Failure::new(ours.to_string())
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

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn hints_wrap_under_their_label() {
        let text = wrap("hint: ", &"word ".repeat(40), 30);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() > 3, "{text}");
        assert!(lines.iter().all(|l| l.len() <= 30), "{text}");
        assert!(lines[0].starts_with("hint: word"));
        assert!(lines[1..].iter().all(|l| l.starts_with("      word")));
    }
}
