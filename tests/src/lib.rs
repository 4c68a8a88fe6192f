//! Moat integration-test runner: boots the kernel in QEMU, classifies how QEMU ended and checks
//! each scenario's expectations, so that a hang, a reset or a crash can never count as a pass.
//!
//! The pieces, one per module:
//! - [`Outcome`] and [`classify`]: what a QEMU exit status means (`isa-debug-exit` protocol).
//! - [`run`]: spawn one command with a wall-clock timeout and capture its serial log and stderr.
//! - [`Scenario`], [`Expect`] and [`check`]: what a scenario must produce to pass.
//! - [`run_all`] and [`Report`]: run scenarios a few at a time and print what failed and why.
//!
//! The QEMU flags themselves live in `xtask`; this crate only runs the commands it is given.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod bounded_log;
mod capture;
mod command_line;
mod outcome;
mod process;
mod process_group;
mod runner;
mod scenario;

pub use command_line::render as render_command_line;
pub use outcome::{
    FAILURE_EXIT_VALUE, KERNEL_FAILURE_STATUS, Outcome, OutcomeKind, QEMU_ERROR_STATUS,
    RESET_STATUS, SUCCESS_EXIT_VALUE, SUCCESS_STATUS, classify, classify_code,
};
pub use process::{RunResult, run};
pub use runner::{Report, run_all, run_all_with_output};
pub use scenario::{After, During, Expect, Mismatch, READY_LINE, Scenario, check};
