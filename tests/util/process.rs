//! Running a test of the current test binary in a child process.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};

/// A command that runs one test of this test binary in a child process
/// (for tests that need a second process, or to kill one). Under an
/// emulator (cross-target test runs) `WA_REDB_TEST_RUNNER` names the runner
/// to put in front, e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`.
pub fn self_command(test: &str) -> std::process::Command {
    let exe = std::env::current_exe().expect("test binary path");
    let runner = runner();
    let mut parts = runner.split_whitespace();
    let mut cmd = match parts.next() {
        Some(program) => {
            let mut c = std::process::Command::new(program);
            c.args(parts).arg(exe);
            c
        }
        None => std::process::Command::new(exe),
    };
    cmd.args([
        test,
        "--exact",
        "--nocapture",
        "--include-ignored",
        "--test-threads=1",
    ]);
    cmd
}

/// The emulator children run under (`WA_REDB_TEST_RUNNER`), empty if none.
fn runner() -> String {
    std::env::var("WA_REDB_TEST_RUNNER").unwrap_or_default()
}

/// Whether children run under an emulator (10-30x slower than native).
pub fn emulated() -> bool {
    !runner().trim().is_empty()
}

/// The child's side of [`spawn_until`]: prints `marker` on a line of its
/// own, then blocks until the parent closes this process's stdin.
pub fn report_and_wait(marker: &str) {
    use std::io::Write;
    println!("{marker}");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// Spawns `cmd` with stdin and stdout piped and reads its stdout until a
/// line ends with `marker`. Keep the returned reader until the child has
/// exited (a closed pipe would fail its next print); dropping the child's
/// stdin (`child.stdin`) is how the helper children are told to finish.
pub fn spawn_until(mut cmd: Command, marker: &str) -> (Child, BufReader<ChildStdout>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the child test process");
    let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
    wait_for_line(&mut out, marker);
    (child, out)
}

/// Reads lines until one ends with `marker` (libtest may print
/// "test <name> ... " before it on the same line); panics if the child's
/// output ends first.
pub fn wait_for_line(out: &mut impl BufRead, marker: &str) {
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).expect("read the child's stdout");
        assert_ne!(n, 0, "the child exited before printing {marker}");
        if line.trim_end().ends_with(marker) {
            return;
        }
    }
}
