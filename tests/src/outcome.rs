//! What a QEMU exit means: the `isa-debug-exit` protocol and the classification of exit statuses.
//!
//! The kernel leaves QEMU through `-device isa-debug-exit,iobase=0xf4,iosize=0x04`: writing `v`
//! to port 0xf4 makes QEMU exit with status `(v << 1) | 1`. Exactly one status means success;
//! everything else (QEMU's own error 1, a reset's 0 under `-no-reboot`, a signal, a timeout, any
//! other number) is a failure of some documented kind.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

/// Value the kernel writes to the `isa-debug-exit` port when every check passed.
pub const SUCCESS_EXIT_VALUE: u8 = 0x10;
/// Value the kernel writes to the `isa-debug-exit` port when it detected a failure (a panic, an
/// unexpected exception, a failed self-check).
pub const FAILURE_EXIT_VALUE: u8 = 0x11;
/// QEMU's exit status after the kernel wrote [`SUCCESS_EXIT_VALUE`]: `(0x10 << 1) | 1`.
pub const SUCCESS_STATUS: i32 = exit_status_for(SUCCESS_EXIT_VALUE);
/// QEMU's exit status after the kernel wrote [`FAILURE_EXIT_VALUE`]: `(0x11 << 1) | 1`.
pub const KERNEL_FAILURE_STATUS: i32 = exit_status_for(FAILURE_EXIT_VALUE);
/// QEMU's own exit status when it cannot start or run the machine (bad flag, missing file).
pub const QEMU_ERROR_STATUS: i32 = 1;
/// QEMU's exit status when the guest resets under `-no-reboot` (a triple fault, a reboot).
pub const RESET_STATUS: i32 = 0;

/// The status QEMU exits with after the guest writes `value` to the `isa-debug-exit` port.
const fn exit_status_for(value: u8) -> i32 {
    ((value as i32) << 1) | 1
}

/// How one QEMU run ended. Only [`Outcome::Success`] is a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The kernel wrote [`SUCCESS_EXIT_VALUE`]: QEMU exited with [`SUCCESS_STATUS`].
    Success,
    /// The kernel wrote [`FAILURE_EXIT_VALUE`] (panic, exception, failed self-check).
    KernelFailure,
    /// QEMU itself failed (status 1): it could not start or run the machine.
    QemuError,
    /// QEMU exited with 0, which under `-no-reboot` means the guest reset (often a triple fault).
    Reset,
    /// The wall-clock timeout expired and the harness killed QEMU.
    Timeout,
    /// QEMU was killed by a signal it did not survive.
    Crash {
        /// The signal number, as reported by the operating system.
        signal: i32,
    },
    /// QEMU exited with a status this protocol does not define.
    UnexpectedStatus(i32),
    /// The process ended without an exit status the harness could read and without a timeout.
    /// `run` never produces this; it exists so that "no status" cannot be mistaken for any
    /// other outcome.
    NoStatus,
}

/// [`Outcome`] without its payload, for expectations such as "this scenario must crash".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutcomeKind {
    /// [`Outcome::Success`].
    Success,
    /// [`Outcome::KernelFailure`].
    KernelFailure,
    /// [`Outcome::QemuError`].
    QemuError,
    /// [`Outcome::Reset`].
    Reset,
    /// [`Outcome::Timeout`].
    Timeout,
    /// [`Outcome::Crash`] with any signal.
    Crash,
    /// [`Outcome::UnexpectedStatus`] with any status.
    UnexpectedStatus,
    /// [`Outcome::NoStatus`].
    NoStatus,
}

impl Outcome {
    /// True only for [`Outcome::Success`]; every other way of ending is a failure.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Success)
    }

    /// The variant without its payload.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Self::Success => OutcomeKind::Success,
            Self::KernelFailure => OutcomeKind::KernelFailure,
            Self::QemuError => OutcomeKind::QemuError,
            Self::Reset => OutcomeKind::Reset,
            Self::Timeout => OutcomeKind::Timeout,
            Self::Crash { .. } => OutcomeKind::Crash,
            Self::UnexpectedStatus(_) => OutcomeKind::UnexpectedStatus,
            Self::NoStatus => OutcomeKind::NoStatus,
        }
    }
}

/// Classifies how a run ended. A timeout wins over any status (the harness killed the process,
/// so the status is the kill's, not the kernel's); `status == None` means no status was obtained.
pub fn classify(status: Option<ExitStatus>, timed_out: bool) -> Outcome {
    let code = status.and_then(|status| status.code());
    let signal = status.and_then(|status| status.signal());
    classify_code(code, signal, timed_out)
}

/// The pure core of [`classify`]: `code` is the exit code of a normal exit, `signal` the signal
/// that ended the process. Precedence: timeout, then signal, then code. A signal wins over a code
/// because a process that was killed did not choose its status.
pub fn classify_code(code: Option<i32>, signal: Option<i32>, timed_out: bool) -> Outcome {
    if timed_out {
        return Outcome::Timeout;
    }
    if let Some(signal) = signal {
        return Outcome::Crash { signal };
    }
    match code {
        Some(SUCCESS_STATUS) => Outcome::Success,
        Some(KERNEL_FAILURE_STATUS) => Outcome::KernelFailure,
        Some(QEMU_ERROR_STATUS) => Outcome::QemuError,
        Some(RESET_STATUS) => Outcome::Reset,
        Some(other) => Outcome::UnexpectedStatus(other),
        None => Outcome::NoStatus,
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Success => write!(
                formatter,
                "success (exit {SUCCESS_STATUS}: the kernel wrote {SUCCESS_EXIT_VALUE:#04x} to isa-debug-exit)"
            ),
            Self::KernelFailure => write!(
                formatter,
                "kernel-detected failure (exit {KERNEL_FAILURE_STATUS}: the kernel wrote \
                 {FAILURE_EXIT_VALUE:#04x} to isa-debug-exit after a panic, exception or failed check)"
            ),
            Self::QemuError => write!(
                formatter,
                "QEMU error (exit {QEMU_ERROR_STATUS}: QEMU could not start or run the machine; see its stderr)"
            ),
            Self::Reset => write!(
                formatter,
                "reset (exit {RESET_STATUS} under -no-reboot: triple fault or reboot)"
            ),
            Self::Timeout => write!(
                formatter,
                "timeout (no exit before the wall-clock limit; the harness killed QEMU: hang?)"
            ),
            Self::Crash { signal } => match signal_name(*signal) {
                Some(name) => write!(formatter, "crash (killed by signal {signal}, {name})"),
                None => write!(formatter, "crash (killed by signal {signal})"),
            },
            Self::UnexpectedStatus(status) => {
                write!(formatter, "unexpected exit status {status}")?;
                // An odd status may still come from isa-debug-exit with an unknown value.
                if status & 1 == 1 && (3..=511).contains(status) {
                    write!(
                        formatter,
                        " (as if the guest wrote {:#04x} to isa-debug-exit, which is not a Moat exit value)",
                        status >> 1
                    )?;
                }
                Ok(())
            }
            Self::NoStatus => write!(formatter, "no exit status (the process ended without one)"),
        }
    }
}

impl fmt::Display for OutcomeKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Success => "success",
            Self::KernelFailure => "kernel-detected failure",
            Self::QemuError => "QEMU error",
            Self::Reset => "reset",
            Self::Timeout => "timeout",
            Self::Crash => "crash",
            Self::UnexpectedStatus => "unexpected exit status",
            Self::NoStatus => "no exit status",
        })
    }
}

/// Names of the signals that usually end a QEMU process, for readable failure messages.
fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
