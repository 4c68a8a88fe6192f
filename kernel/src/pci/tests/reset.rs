//! Host tests for the reset on release: the method order, the check's canaries, FLR and PM
//! and their fallbacks, and what is restored, on the fake machine of `reset_machine`.

use alloc::vec::Vec;

use moat_iommu::Bdf;

use super::builder::FunctionBuilder;
use super::fake::{FakeConfig, ResetBehaviour, bdf};
use super::reset_machine::{enumerated, machine, nvme};
use crate::pci::reset::{
    Mismatch, Observation, Register, Reset, ResetError, ResetMethod, reset_for_release,
};

/// A predicate that approves any bus reset.
pub(super) fn approve_all(_: &[Bdf]) -> bool {
    true
}

/// A predicate that refuses every bus reset.
pub(super) fn refuse_all(_: &[Bdf]) -> bool {
    false
}

/// The registers the check saw change on `device`, in order.
pub(super) fn evidence_of(reset: &Reset, device: &str) -> Vec<Register> {
    reset
        .evidence
        .iter()
        .filter(|seen| seen.device == bdf(device))
        .map(|seen| seen.register)
        .collect()
}

/// Resets `device` on `machine` after enumerating it, with a clean write log.
pub(super) fn reset(
    machine: &FakeConfig,
    device: &str,
    may_reset: impl FnOnce(&[Bdf]) -> bool,
) -> Result<Reset, ResetError> {
    let devices = enumerated(machine);
    machine.clear_writes();
    reset_for_release(machine, &devices, bdf(device), may_reset)
}

#[test]
fn pci_reset_flr_resets_nvme_checks_it_and_restores_it() {
    let machine = machine();
    let done = reset(&machine, "0000:01:00.0", refuse_all).unwrap();
    assert_eq!(done.method, ResetMethod::Flr);
    assert_eq!(done.fallbacks, []);
    assert_eq!(
        evidence_of(&done, "0000:01:00.0"),
        [
            Register::Command,
            Register::CacheLineSize,
            Register::InterruptLine,
            Register::Bar(0),
            Register::MsixControl
        ]
    );
    let first = done.evidence[0];
    assert_eq!((first.before, first.after), (0x0402, 0));
    // Restored: Command 0, BAR 0 as enumerated, Device Control kept, MSI-X off.
    assert_eq!(machine.peek("0000:01:00.0", 0x04) & 0xffff, 0);
    assert_eq!(machine.peek("0000:01:00.0", 0x10), 0xfe80_0004);
    assert_eq!(machine.peek("0000:01:00.0", 0x14), 0);
    assert_eq!(machine.peek("0000:01:00.0", 0x0c) & 0xff, 0);
    assert_eq!(machine.peek("0000:01:00.0", 0x88) & 0xffff, 0x2810);
    assert_eq!(machine.peek("0000:01:00.0", 0x50) >> 16, 0x0040);
    // Nothing else was written.
    assert!(
        machine
            .writes()
            .iter()
            .all(|(at, ..)| *at == bdf("0000:01:00.0"))
    );
}

#[test]
fn pci_reset_canaries_never_turn_bus_mastering_on() {
    for device in ["0000:01:00.0", "0000:02:00.0", "0000:03:00.0"] {
        let machine = machine();
        reset(&machine, device, approve_all).unwrap();
        let command_writes: Vec<u32> = machine
            .writes()
            .into_iter()
            .filter(|(at, offset, _)| *at == bdf(device) && *offset == 0x04)
            .map(|(_, _, value)| value)
            .collect();
        assert!(!command_writes.is_empty());
        assert!(
            command_writes.iter().all(|value| value & 0x4 == 0),
            "{device}: {command_writes:x?}"
        );
        // The status half is always written as zero (its error bits are write-one-to-clear).
        assert!(command_writes.iter().all(|value| value >> 16 == 0));
    }
}

#[test]
fn pci_reset_pm_that_changes_nothing_falls_back_to_bus_reset() {
    let machine = machine();
    let done = reset(&machine, "0000:03:00.0", |devices| {
        devices == [bdf("0000:03:00.0")]
    })
    .unwrap();
    assert_eq!(done.method, ResetMethod::Bus);
    let what = Observation {
        device: bdf("0000:03:00.0"),
        register: Register::Command,
        before: 0x0403,
        after: 0x0403,
    };
    let pm_failed = ResetError::CheckFailed {
        method: ResetMethod::Pm,
        what,
    };
    assert_eq!(done.fallbacks, [pm_failed]);
    assert_eq!(
        evidence_of(&done, "0000:03:00.0"),
        [
            Register::Command,
            Register::CacheLineSize,
            Register::InterruptLine,
            Register::Bar(0),
            Register::Bar(1),
            Register::Bar(2),
            Register::Bar(3),
            Register::MsiData,
            Register::MsixControl
        ]
    );
    // PMCSR went to D3hot and back to D0; Command and BARs restored.
    let pmcsr_writes: Vec<u32> = machine
        .writes()
        .into_iter()
        .filter(|(at, offset, _)| *at == bdf("0000:03:00.0") && *offset == 0xcc)
        .map(|(_, _, value)| value & 0b11)
        .collect();
    assert_eq!(pmcsr_writes, [0b11, 0b00]);
    assert_eq!(machine.peek("0000:03:00.0", 0x04) & 0xffff, 0);
    assert_eq!(machine.peek("0000:03:00.0", 0x18), 0x1001);
    assert_eq!(machine.peek("0000:03:00.0", 0xd0) >> 16 & 1, 0);
}

#[test]
fn pci_reset_pm_that_works_is_used() {
    let mut machine = machine();
    let behaviour = ResetBehaviour {
        pm_resets: true,
        ..ResetBehaviour::default()
    };
    machine.behave("0000:03:00.0", behaviour);
    let done = reset(&machine, "0000:03:00.0", refuse_all).unwrap();
    assert_eq!(done.method, ResetMethod::Pm);
    assert_eq!(done.fallbacks, []);
    assert_eq!(machine.peek("0000:03:00.0", 0xcc) & 0b11, 0);
}

#[test]
fn pci_reset_flr_that_changes_nothing_falls_back_past_no_soft_reset_pm() {
    let mut machine = machine();
    let behaviour = ResetBehaviour {
        flr_ignored: true,
        ..ResetBehaviour::default()
    };
    machine.behave("0000:01:00.0", behaviour);
    let done = reset(&machine, "0000:01:00.0", approve_all).unwrap();
    assert_eq!(done.method, ResetMethod::Bus);
    assert!(matches!(
        done.fallbacks[..],
        [ResetError::CheckFailed {
            method: ResetMethod::Flr,
            what: Observation {
                register: Register::Command,
                ..
            }
        }]
    ));
    // No_Soft_Reset is set: the PM reset is not tried (PMCSR never written).
    assert!(
        !machine
            .writes()
            .iter()
            .any(|(_, offset, _)| *offset == 0x44)
    );
}

#[test]
fn pci_reset_silent_after_flr_is_recovered_by_bus_reset() {
    let mut machine = machine();
    let behaviour = ResetBehaviour {
        flr_silences: true,
        ..ResetBehaviour::default()
    };
    machine.behave("0000:01:00.0", behaviour);
    let done = reset(&machine, "0000:01:00.0", approve_all).unwrap();
    assert_eq!(done.method, ResetMethod::Bus);
    let timeout = ResetError::Timeout {
        method: ResetMethod::Flr,
        device: bdf("0000:01:00.0"),
        budget_us: 1_000_000,
    };
    assert_eq!(done.fallbacks, [timeout]);
    // No canary went into the silent nvme; that it answers again is the evidence.
    let back = Observation {
        device: bdf("0000:01:00.0"),
        register: Register::Identity,
        before: u32::MAX,
        after: 0x0010_1b36,
    };
    assert_eq!(done.evidence, [back]);
    assert_eq!(machine.peek("0000:01:00.0", 0x10), 0xfe80_0004);
}

#[test]
fn pci_reset_silent_after_flr_on_the_root_bus_is_a_timeout() {
    let mut machine = machine();
    machine.insert(bdf("0000:00:07.0"), nvme().build());
    let behaviour = ResetBehaviour {
        flr_silences: true,
        ..ResetBehaviour::default()
    };
    machine.behave("0000:00:07.0", behaviour);
    let error = reset(&machine, "0000:00:07.0", approve_all).unwrap_err();
    let timeout = ResetError::Timeout {
        method: ResetMethod::Flr,
        device: bdf("0000:00:07.0"),
        budget_us: 1_000_000,
    };
    assert_eq!(error, timeout);
}

#[test]
fn pci_reset_without_a_method_changes_nothing() {
    let machine = machine();
    assert_eq!(
        reset(&machine, "0000:00:06.0", approve_all),
        Err(ResetError::NoMethod)
    );
    assert_eq!(machine.writes(), []);
    let unknown = bdf("0000:09:00.0");
    assert_eq!(
        reset(&machine, "0000:09:00.0", approve_all),
        Err(ResetError::UnknownDevice(unknown))
    );
    let bridge = bdf("0000:04:00.0");
    assert_eq!(
        reset(&machine, "0000:04:00.0", approve_all),
        Err(ResetError::Bridge(bridge))
    );
}

#[test]
fn pci_reset_restore_that_does_not_stick_is_reported() {
    let mut machine = machine();
    let behaviour = ResetBehaviour {
        reset_freezes_bars: true,
        ..ResetBehaviour::default()
    };
    machine.behave("0000:01:00.0", behaviour);
    let mismatch = Mismatch {
        device: bdf("0000:01:00.0"),
        register: Register::Bar(0),
        wrote: 0xfe80_0000,
        read: 0,
    };
    assert_eq!(
        reset(&machine, "0000:01:00.0", approve_all),
        Err(ResetError::RestoreFailed {
            method: ResetMethod::Flr,
            mismatch
        })
    );
}

#[test]
fn pci_reset_that_cannot_be_checked_is_not_done() {
    let mut machine = machine();
    let bare = FunctionBuilder::endpoint(0x1b36, 0x0011, 0xff_00_00)
        .pcie(0x40, 0)
        .set32(0x44, 1 << 28);
    machine.insert(bdf("0000:00:07.0"), bare.build());
    let behaviour = ResetBehaviour {
        read_only: true,
        ..ResetBehaviour::default()
    };
    machine.behave("0000:00:07.0", behaviour);
    let device = bdf("0000:00:07.0");
    assert_eq!(
        reset(&machine, "0000:00:07.0", approve_all),
        Err(ResetError::Unverifiable { device })
    );
    // No FLR was initiated.
    let flr = |(_, offset, value): &(Bdf, u16, u32)| *offset == 0x48 && value & 0x8000 != 0;
    assert!(!machine.writes().iter().any(flr));
}
