//! Running a test of the current test binary in a child process.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

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

/// How long a child test process may take to print its first line
/// (libtest's `running 1 test`, as soon as it starts). Past it, it is taken
/// for one that never will: under qemu-user the fork of a multithreaded
/// test process can deadlock before its exec, and that forked copy would
/// also hold this process's output open. It is killed and spawned again.
const START: Duration = Duration::from_secs(60);
/// How long a child may take to print its marker (work under an emulator
/// included), from its spawn, before the test fails.
const MARKED: Duration = Duration::from_secs(600);

/// What the reader of a child's output tells the test.
enum Heard {
    /// The child's first line: it started.
    Started,
    /// The marker, and the rest of the output.
    Marker(BufReader<ChildStdout>),
    /// The output ended first.
    Ended,
}

/// Spawns `cmd` with stdin and stdout piped and reads its stdout until a
/// line ends with `marker`, every wait bounded: a child that prints
/// nothing within [`START`] is killed and spawned again (three tries), one
/// that does not print `marker` within [`MARKED`] of its spawn fails the
/// test. Keep the returned reader until the child has exited (a closed
/// pipe would fail its next print); dropping the child's stdin
/// (`child.stdin`) is how the helper children are told to finish.
pub fn spawn_until(cmd: Command, marker: &str) -> (Child, BufReader<ChildStdout>) {
    spawn_until_within(cmd, marker, MARKED)
}

/// [`spawn_until`], with `marker` due `within` of the child's spawn.
pub fn spawn_until_within(
    mut cmd: Command,
    marker: &str,
    within: Duration,
) -> (Child, BufReader<ChildStdout>) {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    for attempt in 1..=3 {
        let spawned = Instant::now();
        let mut child = cmd.spawn().expect("spawn the child test process");
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let heard = listen(out, marker);
        let fail = |child: &mut Child, why: String| -> ! {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{why}");
        };
        let start = START.min(within);
        match heard.recv_timeout(start) {
            Ok(Heard::Started) => {}
            Ok(Heard::Marker(out)) => return (child, out),
            Ok(Heard::Ended) | Err(RecvTimeoutError::Disconnected) => fail(
                &mut child,
                format!("the child exited before printing {marker}"),
            ),
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                eprintln!("the child printed nothing within {start:?} (attempt {attempt}): again");
                continue;
            }
        }
        match heard.recv_timeout(within.saturating_sub(spawned.elapsed())) {
            Ok(Heard::Marker(out)) => return (child, out),
            Ok(_) | Err(RecvTimeoutError::Disconnected) => fail(
                &mut child,
                format!("the child exited before printing {marker}"),
            ),
            Err(RecvTimeoutError::Timeout) => fail(
                &mut child,
                format!("the child did not print {marker} within {within:?}"),
            ),
        }
    }
    panic!("the child never started in three tries");
}

/// Reads `out` on a thread of its own: says when the first line came,
/// then hands the reader back once a line ends with `marker`.
fn listen(mut out: BufReader<ChildStdout>, marker: &str) -> Receiver<Heard> {
    let (tx, heard) = channel();
    let marker = marker.to_string();
    std::thread::spawn(move || {
        let mut line = String::new();
        let mut first = true;
        loop {
            line.clear();
            if !matches!(out.read_line(&mut line), Ok(n) if n > 0) {
                let _ = tx.send(Heard::Ended);
                return;
            }
            if std::mem::take(&mut first) {
                let _ = tx.send(Heard::Started);
            }
            if line.trim_end().ends_with(&marker) {
                let _ = tx.send(Heard::Marker(out));
                return;
            }
        }
    });
    heard
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
