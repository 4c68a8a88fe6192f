//! Running one command (normally QEMU) under a wall-clock timeout and capturing its output.
//!
//! The command runs with stdin closed, stdout (the guest's serial port under `-serial stdio`)
//! and stderr (QEMU's own messages) drained by threads, and in a process group of its own so a
//! timeout kills everything it started. `run` returns in bounded time whatever the command does:
//! at most the timeout, plus [`DRAIN_GRACE`] and [`KILL_GRACE`] if something it started keeps
//! the output pipes open after it ended.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::capture::Drain;
use crate::command_line;
use crate::outcome::{Outcome, classify};
use crate::process_group::kill_group;

/// How often the exit status is polled.
// TIMEOUT: 10 ms is far below any QEMU boot time and costs nothing measurable on the host.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How long the output pipes may stay open after the command ended, before the harness kills
/// whatever still holds them.
// TIMEOUT: the pipes hold at most a few hundred kilobytes once the writer is gone; draining
// them takes milliseconds, so two seconds only expires when another process holds them.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How long to wait for the pipes to close after that kill, before giving up on them.
// TIMEOUT: SIGKILL takes effect at once; one second covers a heavily loaded host.
const KILL_GRACE: Duration = Duration::from_secs(1);

/// Everything known about one finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    /// How the run ended.
    pub outcome: Outcome,
    /// The command's stdout (the guest's serial log), decoded as lossy UTF-8.
    pub serial: String,
    /// The command's stderr (QEMU's own messages), decoded as lossy UTF-8.
    pub stderr: String,
    /// Wall-clock time from spawning the command until it ended or was killed.
    pub elapsed: Duration,
    /// The command as a shell line, for reproducing the run by hand.
    pub command_line: String,
}

/// Runs `command` until it exits or `timeout` passes, whichever comes first; on timeout the
/// command's whole process group is killed and the outcome is [`Outcome::Timeout`].
///
/// Stdin, stdout, stderr and the process group of `command` are overridden. An error means the
/// command could not be started or supervised; in that case it is no longer running.
pub fn run(mut command: Command, timeout: Duration) -> io::Result<RunResult> {
    let command_line = command_line::render(&command);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let child = command.spawn().map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot start `{command_line}`: {error}"),
        )
    })?;
    let mut child = Supervised {
        child,
        reaped: false,
    };
    let (serial, stderr) = child.start_drains()?;
    let (status, timed_out) = child.wait(started.checked_add(timeout))?;
    let elapsed = started.elapsed();

    let drained_by = Instant::now() + DRAIN_GRACE;
    let all_closed = serial.wait_until(drained_by) && stderr.wait_until(drained_by);
    let mut stderr_note = "";
    if !all_closed {
        // Something the command started outlived it and still holds a pipe.
        kill_group(child.child.id());
        let give_up = Instant::now() + KILL_GRACE;
        let closed = serial.wait_until(give_up) && stderr.wait_until(give_up);
        stderr_note = if closed {
            "\n[moat-tests: the output pipes stayed open after the command ended; \
             killed its process group]\n"
        } else {
            "\n[moat-tests: the output pipes stayed open after the command ended, even after \
             killing its process group; output may be incomplete]\n"
        };
    }

    let serial = String::from_utf8_lossy(&serial.into_bytes()).into_owned();
    let mut stderr = String::from_utf8_lossy(&stderr.into_bytes()).into_owned();
    stderr.push_str(stderr_note);
    Ok(RunResult {
        outcome: classify(status, timed_out),
        serial,
        stderr,
        elapsed,
        command_line,
    })
}

/// A child that is killed, with its process group, if the harness lets go of it unreaped
/// (an error or a panic): no QEMU outlives the harness's interest in it.
struct Supervised {
    child: Child,
    reaped: bool,
}

impl Supervised {
    /// Starts one drain thread per output pipe: (stdout, stderr).
    fn start_drains(&mut self) -> io::Result<(Drain, Drain)> {
        let stdout: ChildStdout = self.child.stdout.take().ok_or_else(not_piped)?;
        let stderr: ChildStderr = self.child.stderr.take().ok_or_else(not_piped)?;
        Ok((
            Drain::spawn("moat-tests-serial", stdout)?,
            Drain::spawn("moat-tests-stderr", stderr)?,
        ))
    }

    /// Polls for the exit status until `deadline` (none: wait forever), then kills. Returns the
    /// status, if one was obtained, and whether the deadline expired.
    fn wait(&mut self, deadline: Option<Instant>) -> io::Result<(Option<ExitStatus>, bool)> {
        loop {
            // The deadline is checked before the status: an exit the runner only sees once the
            // time is up counts as a timeout, whatever the load on the machine (a zero timeout
            // is always a timeout, even for a command that exits at once).
            let now = Instant::now();
            let expired = deadline.is_some_and(|deadline| now >= deadline);
            if !expired && let Some(status) = self.child.try_wait()? {
                self.reaped = true;
                return Ok((Some(status), false));
            }
            let pause = match deadline {
                Some(deadline) if now >= deadline => {
                    self.kill();
                    // Whatever status the kill produced, the outcome is the timeout.
                    let status = self.child.wait().ok();
                    self.reaped = status.is_some();
                    return Ok((status, true));
                }
                Some(deadline) => POLL_INTERVAL.min(deadline - now),
                None => POLL_INTERVAL,
            };
            thread::sleep(pause);
        }
    }

    /// Kills the process group (the child leads it, so its id is the group's) and the child.
    /// Must run before the child is reaped, while the group id still names this group.
    fn kill(&mut self) {
        kill_group(self.child.id());
        let _ = self.child.kill();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let _ = self.child.wait();
        }
    }
}

/// The error for an output pipe that `spawn` did not create, which would be a bug here.
fn not_piped() -> io::Error {
    io::Error::other("the child's output was not piped")
}

#[cfg(test)]
mod tests;
