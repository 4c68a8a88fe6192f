//! Scenarios: one QEMU command plus what its run must produce to count as a pass.
//!
//! A scenario passes only if the outcome is the expected one *and* every expected piece of text
//! appears in the serial log. Expected-failure scenarios (a kernel that must detect a fault, a
//! guest that must reset) name the failure they expect; a success expectation can never be met
//! by a reset, a timeout or a crash, whatever the serial log says.

use std::fmt;
use std::process::Command;
use std::time::Duration;

use crate::outcome::{Outcome, OutcomeKind};
use crate::process::RunResult;

/// The line the kernel prints once it has booted; success scenarios require it by default so a
/// kernel that exits "successfully" before doing anything does not pass.
pub const READY_LINE: &str = "moat: ready";

/// One integration test: a command (normally QEMU, built by xtask) and its expectation.
#[derive(Debug)]
pub struct Scenario {
    /// Name printed in `PASS`/`FAIL` lines and in the report.
    pub name: String,
    /// The command to run; its stdin, stdout, stderr and process group are set by the harness.
    pub command: Command,
    /// Wall-clock limit after which the command is killed and the scenario fails as a timeout
    /// (unless it expects one).
    pub timeout: Duration,
    /// What the run must produce.
    pub expect: Expect,
    /// A check the host runs after the run met its expectation, e.g. reading the disk images
    /// the guest wrote; its error fails the scenario.
    pub after: Option<After>,
    /// A host-side peer that runs while the command runs (e.g. a client talking to the guest
    /// over the network); it gets the run's deadline and must return by then. Its error fails
    /// the scenario.
    pub during: Option<During>,
}

/// A host-side step run concurrently with a scenario's command (see [`Scenario::during`]).
pub struct During(pub Box<dyn FnOnce(std::time::Instant) -> Result<(), String> + Send>);

impl During {
    /// Wraps `step`, which receives the wall-clock deadline of the run.
    pub fn new(
        step: impl FnOnce(std::time::Instant) -> Result<(), String> + Send + 'static,
    ) -> Self {
        Self(Box::new(step))
    }
}

impl std::fmt::Debug for During {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("During(host step)")
    }
}

/// A host-side check run after a scenario's command (see [`Scenario::after`]).
pub struct After(pub Box<dyn FnOnce() -> Result<(), String> + Send>);

impl After {
    /// Wraps `check`.
    pub fn new(check: impl FnOnce() -> Result<(), String> + Send + 'static) -> Self {
        Self(Box::new(check))
    }
}

impl std::fmt::Debug for After {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("After(host check)")
    }
}

/// What a run must produce for its scenario to pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// The kernel reports success ([`Outcome::Success`]).
    Success {
        /// Text that must appear somewhere in the serial log, each piece independently.
        serial_contains: Vec<String>,
        /// Whether the serial log must contain the line [`READY_LINE`].
        require_ready: bool,
    },
    /// The run ends in a specific kind of failure (a scenario that checks the kernel catches a
    /// fault, or that a bad configuration resets the guest).
    Failure {
        /// The expected kind of ending; [`OutcomeKind::Success`] is a contradiction and never
        /// passes.
        outcome: OutcomeKind,
        /// Text that must appear somewhere in the serial log, each piece independently.
        serial_contains: Vec<String>,
    },
}

impl Expect {
    /// Success, with [`READY_LINE`] and every piece of `serial_contains` in the serial log.
    pub fn success<I, S>(serial_contains: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Success {
            serial_contains: serial_contains.into_iter().map(Into::into).collect(),
            require_ready: true,
        }
    }

    /// A failure of kind `outcome`, with every piece of `serial_contains` in the serial log.
    pub fn failure<I, S>(outcome: OutcomeKind, serial_contains: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Failure {
            outcome,
            serial_contains: serial_contains.into_iter().map(Into::into).collect(),
        }
    }
}

/// Why a run did not meet its scenario's expectation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The run ended differently than expected.
    WrongOutcome {
        /// The expected kind of ending.
        expected: OutcomeKind,
        /// How the run actually ended.
        actual: Outcome,
    },
    /// Success was expected and reported, but the kernel never printed [`READY_LINE`].
    MissingReady,
    /// These expected pieces of text are absent from the serial log.
    MissingText(Vec<String>),
    /// The scenario expects a failure whose kind is success, which no run can satisfy.
    ContradictoryExpectation,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongOutcome { expected, actual } => {
                write!(formatter, "expected {expected}, got {actual}")
            }
            Self::MissingReady => write!(
                formatter,
                "exit status says success but the serial log lacks the line `{READY_LINE}`"
            ),
            Self::MissingText(texts) => {
                formatter.write_str("serial log lacks expected text")?;
                for (index, text) in texts.iter().enumerate() {
                    let separator = if index == 0 { ": " } else { ", " };
                    write!(formatter, "{separator}{text:?}")?;
                }
                Ok(())
            }
            Self::ContradictoryExpectation => formatter.write_str(
                "the scenario expects a failure of kind success; use Expect::Success instead",
            ),
        }
    }
}

impl std::error::Error for Mismatch {}

/// Whether `result` meets `expect`. Pure: it only reads the run's outcome and serial log.
pub fn check(expect: &Expect, result: &RunResult) -> Result<(), Mismatch> {
    let serial_contains = match expect {
        Expect::Success {
            serial_contains,
            require_ready,
        } => {
            if !result.outcome.is_success() {
                return Err(Mismatch::WrongOutcome {
                    expected: OutcomeKind::Success,
                    actual: result.outcome,
                });
            }
            if *require_ready && !has_ready_line(&result.serial) {
                return Err(Mismatch::MissingReady);
            }
            serial_contains
        }
        Expect::Failure {
            outcome,
            serial_contains,
        } => {
            if *outcome == OutcomeKind::Success {
                return Err(Mismatch::ContradictoryExpectation);
            }
            if result.outcome.kind() != *outcome {
                return Err(Mismatch::WrongOutcome {
                    expected: *outcome,
                    actual: result.outcome,
                });
            }
            serial_contains
        }
    };
    let missing: Vec<String> = serial_contains
        .iter()
        .filter(|text| !result.serial.contains(text.as_str()))
        .cloned()
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Mismatch::MissingText(missing))
    }
}

/// True if some line of `serial` is [`READY_LINE`], ignoring surrounding whitespace (the serial
/// port may send `\r\n`).
fn has_ready_line(serial: &str) -> bool {
    serial.lines().any(|line| line.trim() == READY_LINE)
}

#[cfg(test)]
mod tests;
