//! Process-based tests of `run`: real children that exit, hang, crash, flood their pipes or
//! leave processes behind. They show that only status 33 can come out as a success.

use super::*;
use std::path::Path;

/// Timeout for commands that are expected to end on their own; far above what they need, so a
/// deadlock in the harness shows up as a `Timeout` failure instead of a hung test.
const GENEROUS: Duration = Duration::from_secs(30);

fn sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    command
}

fn run_sh(script: &str) -> RunResult {
    run(sh(script), GENEROUS).expect("sh starts")
}

/// True once `pid` no longer names a live process (gone, or a zombie nobody reaped yet).
fn is_dead(pid: &str) -> bool {
    match std::fs::read_to_string(Path::new("/proc").join(pid).join("stat")) {
        Err(_) => true,
        // The state follows the parenthesised command name: "123 (sleep) S ...".
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_until_dead(pid: &str) -> bool {
    let give_up = Instant::now() + Duration::from_secs(5);
    while Instant::now() < give_up {
        if is_dead(pid) {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn status_7_is_unexpected_and_output_is_captured() {
    let result = run_sh("echo hello; exit 7");
    assert_eq!(result.outcome, Outcome::UnexpectedStatus(7));
    assert!(!result.outcome.is_success());
    assert_eq!(result.serial, "hello\n");
    assert_eq!(result.stderr, "");
}

#[test]
fn status_33_is_success() {
    let result = run_sh("echo 'moat: ready'; exit 33");
    assert_eq!(result.outcome, Outcome::Success);
    assert_eq!(result.serial, "moat: ready\n");
}

#[test]
fn status_35_is_kernel_failure() {
    assert_eq!(run_sh("exit 35").outcome, Outcome::KernelFailure);
}

#[test]
fn status_1_is_qemu_error_with_its_stderr() {
    let result = run_sh("echo 'qemu: could not load kernel' >&2; exit 1");
    assert_eq!(result.outcome, Outcome::QemuError);
    assert_eq!(result.stderr, "qemu: could not load kernel\n");
    assert_eq!(result.serial, "");
}

#[test]
fn status_0_is_reset_even_after_ready() {
    let result = run_sh("echo 'moat: ready'; exit 0");
    assert_eq!(result.outcome, Outcome::Reset);
    assert!(!result.outcome.is_success());
}

#[test]
fn hang_times_out_fast() {
    let started = Instant::now();
    let result = run(sh("echo booting; sleep 30"), Duration::from_millis(300)).expect("sh starts");
    let wall = started.elapsed();
    assert_eq!(result.outcome, Outcome::Timeout);
    assert!(!result.outcome.is_success());
    assert!(result.elapsed >= Duration::from_millis(300));
    assert!(wall < Duration::from_secs(5), "took {wall:?}");
    assert_eq!(result.serial, "booting\n");
}

#[test]
fn zero_timeout_is_a_timeout() {
    let result = run(sh("exit 33"), Duration::ZERO).expect("sh starts");
    assert_eq!(result.outcome, Outcome::Timeout);
}

#[test]
fn huge_timeout_does_not_overflow() {
    let result = run(sh("exit 33"), Duration::MAX).expect("sh starts");
    assert_eq!(result.outcome, Outcome::Success);
}

#[test]
fn sigkill_is_a_crash() {
    let result = run_sh("echo 'moat: ready'; kill -9 $$");
    assert_eq!(result.outcome, Outcome::Crash { signal: 9 });
    assert!(!result.outcome.is_success());
}

#[test]
fn sigterm_is_a_crash() {
    assert_eq!(
        run_sh("kill -s TERM $$").outcome,
        Outcome::Crash { signal: 15 }
    );
}

#[test]
fn a_mebibyte_on_each_stream_does_not_deadlock() {
    // stderr first: a harness that read stdout to the end before stderr would block here.
    let result = run_sh(
        "head -c 1048576 /dev/zero | tr '\\000' e >&2; \
         head -c 1048576 /dev/zero | tr '\\000' s; exit 33",
    );
    assert_eq!(result.outcome, Outcome::Success);
    assert_eq!(result.serial.len(), 1 << 20);
    assert_eq!(result.stderr.len(), 1 << 20);
    assert!(result.serial.bytes().all(|byte| byte == b's'));
    assert!(result.stderr.bytes().all(|byte| byte == b'e'));
}

#[test]
fn invalid_utf8_is_decoded_lossily() {
    let result = run_sh("printf 'ok \\377\\n'; exit 33");
    assert_eq!(result.serial, "ok \u{fffd}\n");
}

#[test]
fn stdin_is_closed() {
    // With an inherited stdin, cat would wait for the terminal until the timeout.
    let result = run_sh("cat; exit 33");
    assert_eq!(result.outcome, Outcome::Success);
}

#[test]
fn missing_program_is_an_io_error() {
    let error = run(Command::new("/nonexistent/qemu-system-x86_64"), GENEROUS)
        .expect_err("cannot start a missing program");
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
    assert!(
        error
            .to_string()
            .contains("/nonexistent/qemu-system-x86_64")
    );
}

#[test]
fn command_line_is_recorded() {
    let result = run_sh("exit 33");
    assert_eq!(result.command_line, "sh -c 'exit 33'");
}

#[test]
fn timeout_kills_the_whole_process_group() {
    // The background sleep is what a wrapper script's QEMU would be.
    let result =
        run(sh("sleep 30 & echo $!; wait"), Duration::from_millis(300)).expect("sh starts");
    assert_eq!(result.outcome, Outcome::Timeout);
    let pid = result.serial.trim();
    assert!(!pid.is_empty());
    assert!(wait_until_dead(pid), "background process {pid} survived");
}

#[test]
fn a_process_left_holding_the_pipes_cannot_hang_the_harness() {
    let started = Instant::now();
    let result = run_sh("sleep 30 & echo $!; exit 33");
    let wall = started.elapsed();
    assert_eq!(result.outcome, Outcome::Success);
    assert!(
        wall < DRAIN_GRACE + KILL_GRACE + Duration::from_secs(5),
        "took {wall:?}"
    );
    let pid = result.serial.trim();
    assert!(wait_until_dead(pid), "background process {pid} survived");
    assert!(result.stderr.contains("killed its process group"));
}
