//! Running a test of the current test binary in a child process.

/// A command that runs one test of this test binary in a child process
/// (for tests that need a second process, or to kill one). Under an
/// emulator (cross-target test runs) `WA_REDB_TEST_RUNNER` names the runner
/// to put in front, e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`.
pub fn self_command(test: &str) -> std::process::Command {
    let exe = std::env::current_exe().expect("test binary path");
    let runner = std::env::var("WA_REDB_TEST_RUNNER").unwrap_or_default();
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
