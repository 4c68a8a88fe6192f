//! A controller that breaks the protocol during I/O: completions with unknown or stale command
//! IDs, an impossible SQ head, no completion, a completion without its interrupt. Each is a
//! clear error that stops the controller, and shutdown still hands the platform back.

use super::start;
use crate::Nvme;
use crate::error::{NvmeError, Wait};
use crate::sim::{Config, Sim};

/// After a protocol error: the controller takes no more commands, and shutdown (without the
/// queue deletions it can no longer trust) still retires everything.
fn stopped_then_shut_down(sim: &Sim, mut nvme: Nvme<Sim>) {
    assert!(nvme.is_stopped());
    assert_eq!(nvme.write(0, &[0; 512]).unwrap_err(), NvmeError::Stopped);
    let admin_before = sim.state().admin_log.len();
    let (_platform, _result) = nvme.shut_down();
    let state = sim.state();
    assert_eq!(
        state.admin_log.len(),
        admin_before,
        "no admin commands to a stopped controller"
    );
    assert_eq!(state.memory.live(), 0);
    assert_eq!(state.cc & 1, 0);
}

#[test]
fn a_completion_with_an_unknown_command_id_is_an_error() {
    let (sim, mut nvme) = start(Config::default());
    sim.state().faults.corrupt_next_id = Some(0x7777);
    let error = nvme.write(0, &[1; 512]).unwrap_err();
    assert_eq!(
        error,
        NvmeError::UnexpectedCompletion {
            queue: 1,
            command_id: 0x7777
        }
    );
    assert_eq!(
        error.to_string(),
        "completion on queue 1 for command ID 0x7777, which is not in flight"
    );
    stopped_then_shut_down(&sim, nvme);
}

#[test]
fn a_second_completion_for_the_same_command_is_stale() {
    let (sim, mut nvme) = start(Config {
        deferred: true,
        ..Config::default()
    });
    sim.state().faults.repeat_next = true;
    let first = nvme.submit_write(0, 0, &[1; 512]).unwrap();
    // Both copies are reaped together: the first completes the command, the second is stale.
    let error = nvme.wait(first).unwrap_err();
    assert_eq!(
        error,
        NvmeError::UnexpectedCompletion {
            queue: 1,
            command_id: first.command_id()
        }
    );
    stopped_then_shut_down(&sim, nvme);
}

#[test]
fn a_reused_slot_does_not_accept_the_old_command_id() {
    let (sim, mut nvme) = start(Config::default());
    let old = nvme.submit_write(0, 0, &[1; 512]).unwrap();
    nvme.wait(old).unwrap();
    // 63 slots: the old command had slot 0; after 62 more writes the next one gets slot 0
    // again (a new generation), and the stale ID arrives while that slot is occupied.
    for i in 0..62 {
        nvme.write(i % 8, &[2; 512]).unwrap();
    }
    sim.state().faults.corrupt_next_id = Some(old.command_id());
    let error = nvme.write(0, &[3; 512]).unwrap_err();
    assert_eq!(
        error,
        NvmeError::UnexpectedCompletion {
            queue: 1,
            command_id: old.command_id()
        }
    );
}

#[test]
fn an_impossible_submission_head_is_an_error() {
    let (sim, mut nvme) = start(Config::default());
    sim.state().faults.bad_head_next = true;
    let error = nvme.write(0, &[1; 512]).unwrap_err();
    assert!(
        matches!(
            error,
            NvmeError::BadCompletion {
                queue: 1,
                submission_queue: 1,
                ..
            }
        ),
        "{error:?}"
    );
    stopped_then_shut_down(&sim, nvme);
}

#[test]
fn a_command_that_never_completes_times_out() {
    let (sim, mut nvme) = start(Config::default());
    sim.state().faults.swallow_io = true;
    let error = nvme.write(0, &[1; 512]).unwrap_err();
    assert_eq!(
        error,
        NvmeError::Timeout {
            what: Wait::Completion { queue: 1 },
            budget_us: 10_000_000
        }
    );
    // The write's buffer stays mapped while the command may still run; shutdown retires it.
    assert_eq!(sim.state().memory.live(), 5);
    stopped_then_shut_down(&sim, nvme);
}

#[test]
fn a_completion_without_its_interrupt_is_reported() {
    // Deferred: the completion is posted while the driver waits, so only the interrupt can
    // tell it (a completion already there at the first look needs none).
    let (sim, mut nvme) = start(Config {
        deferred: true,
        ..Config::default()
    });
    sim.state().faults.drop_interrupts = true;
    let error = nvme.write(0, &[1; 512]).unwrap_err();
    assert_eq!(error, NvmeError::MissedInterrupt { vector: 1 });
    stopped_then_shut_down(&sim, nvme);
}

#[test]
fn completions_are_interrupt_driven() {
    let (sim, mut nvme) = start(Config {
        deferred: true,
        ..Config::default()
    });
    let before = sim.state().deliveries[1];
    for i in 0..5 {
        nvme.write(i, &[1; 512]).unwrap();
    }
    assert_eq!(
        sim.state().deliveries[1] - before,
        5,
        "one MSI-X delivery per completion"
    );
}
