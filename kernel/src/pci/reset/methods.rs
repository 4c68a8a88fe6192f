//! The three reset sequences, each with the waits the specs require and a budgeted wait for
//! the function to answer again. None checks its own effect: QEMU completes every one of
//! them inside the config write, and a PM reset there "completes" without doing anything
//! (facts H.3), so the canaries in `check` are the judge.

use moat_iommu::Bdf;

use super::error::{Observation, Register, ResetError, ResetMethod};
use super::registers::{
    ACS_REGISTERS, BUS_NUMBERS, DEVCAP_FLR, DEVCTL_INITIATE_FLR, DEVSTA_TRANSACTIONS_PENDING,
    INTERRUPT, PCIE_DEVCAP, PCIE_DEVCTL, PM_CONTROL, PM_D0, PM_D3HOT, PM_NO_SOFT_RESET,
    PM_PME_STATUS, PM_STATE_MASK, SECONDARY_BUS_RESET, identity, read_high,
};
use crate::pci::access::{ConfigAccess, ConfigAccessExt};
use crate::pci::{CapabilityId, PciDevice};
use crate::time;

// TIMEOUT: Linux waits up to about 1 s for Transactions Pending to clear before an FLR and
// then resets anyway; QEMU never sets the bit. 100 ms, then the FLR (which is what clears
// a stuck transaction) goes ahead, as in Linux.
const PENDING_BUDGET_US: u64 = 100_000;
/// Wait after Initiate FLR before the first config request (PCIe 6.0 §6.6.2: 100 ms).
const FLR_DELAY_US: u64 = 100_000;
/// Wait after a write to PMCSR that moves D0 <-> D3hot (PCI PM 1.2 §5.6.1: 10 ms).
const PM_DELAY_US: u64 = 10_000;
/// How long Secondary Bus Reset stays asserted (PCI 3.0 Trst is 1 ms; Linux holds 2 ms).
const SBR_ASSERT_US: u64 = 2_000;
/// Wait after deasserting Secondary Bus Reset before config requests below (PCIe 6.0
/// §6.6.1: 100 ms). No wait for Data Link Layer Link Active: q35's root ports never show
/// it with ACPI hotplug on (facts H.6.2).
const SBR_DELAY_US: u64 = 100_000;
// TIMEOUT: after the spec's delay a function answers at once or with Configuration Retry
// Status for a while; Linux allows up to 60 s for slow devices. QEMU answers at once; 1 s
// after the delay is generous for the emulated and typical real devices this kernel runs.
pub(super) const READY_BUDGET_US: u64 = 1_000_000;

/// Whether `device` advertises FLR (DEVCAP bit 28 of its PCI Express capability).
pub(super) fn flr_capable(config: &impl ConfigAccess, device: &PciDevice) -> bool {
    device.pcie.is_some_and(|pcie| {
        let devcap = config.read32(device.bdf, u16::from(pcie.cap_offset) + PCIE_DEVCAP);
        devcap != u32::MAX && devcap & DEVCAP_FLR != 0
    })
}

/// The PMCSR offset of `device` if a PM reset may work: a PM capability with
/// No_Soft_Reset clear.
pub(super) fn pm_control(config: &impl ConfigAccess, device: &PciDevice) -> Option<u16> {
    let pm = device.capability(CapabilityId::PowerManagement)?;
    let control = u16::from(pm.offset) + PM_CONTROL;
    let pmcsr = config.read32(device.bdf, control);
    (pmcsr != u32::MAX && pmcsr as u16 & PM_NO_SOFT_RESET == 0).then_some(control)
}

/// Function Level Reset of `device` (which must be [`flr_capable`]), then waits until it
/// answers with the `identity` it had.
pub(super) fn flr(
    config: &impl ConfigAccess,
    device: &PciDevice,
    identity: u32,
) -> Result<(), ResetError> {
    let bdf = device.bdf;
    let Some(pcie) = device.pcie else {
        return Err(ResetError::NoMethod);
    };
    let control = u16::from(pcie.cap_offset) + PCIE_DEVCTL;
    let pending = || config.read32(bdf, control) & DEVSTA_TRANSACTIONS_PENDING != 0;
    // Outstanding or not, the FLR goes ahead (see PENDING_BUDGET_US).
    let _drained = time::poll(PENDING_BUDGET_US, || (!pending()).then_some(()));
    let devctl = config.read32(bdf, control) & 0xffff;
    config.write32(bdf, control, devctl | DEVCTL_INITIATE_FLR);
    time::delay_us(FLR_DELAY_US);
    wait_ready(config, bdf, identity, ResetMethod::Flr)
}

/// PM reset of `device` through its PMCSR at `control` ([`pm_control`]): D3hot, then D0.
/// A PowerState that does not reach D3hot fails the check at once.
pub(super) fn pm(
    config: &impl ConfigAccess,
    device: &PciDevice,
    control: u16,
    identity: u32,
) -> Result<(), ResetError> {
    let bdf = device.bdf;
    let pmcsr = config.read16(bdf, control) & !(PM_STATE_MASK | PM_PME_STATUS);
    config.write32(bdf, control, u32::from(pmcsr | PM_D3HOT));
    time::delay_us(PM_DELAY_US);
    let state = config.read16(bdf, control) & PM_STATE_MASK;
    config.write32(bdf, control, u32::from(pmcsr | PM_D0));
    time::delay_us(PM_DELAY_US);
    wait_ready(config, bdf, identity, ResetMethod::Pm)?;
    if state != PM_D3HOT {
        let what = Observation {
            device: bdf,
            register: Register::PowerState,
            before: u32::from(PM_D3HOT),
            after: u32::from(state),
        };
        return Err(ResetError::CheckFailed {
            method: ResetMethod::Pm,
            what,
        });
    }
    Ok(())
}

/// Pulses Secondary Bus Reset on `bridge` and waits the time the spec requires before
/// anything below may be read. Readiness below is the caller's: nested bridges need their
/// bus numbers back first.
pub(super) fn secondary_bus_reset(config: &impl ConfigAccess, bridge: Bdf) {
    // Interrupt Line and Pin share the dword; Line is read/write and written back as read.
    let control = config.read32(bridge, INTERRUPT) & !SECONDARY_BUS_RESET;
    config.write32(bridge, INTERRUPT, control | SECONDARY_BUS_RESET);
    time::delay_us(SBR_ASSERT_US);
    config.write32(bridge, INTERRUPT, control);
    time::delay_us(SBR_DELAY_US);
}

/// Waits until `bdf` answers config reads with `identity` again.
pub(super) fn wait_ready(
    config: &impl ConfigAccess,
    bdf: Bdf,
    expected: u32,
    method: ResetMethod,
) -> Result<(), ResetError> {
    time::poll(READY_BUDGET_US, || {
        (identity(config, bdf) == Some(expected)).then_some(())
    })
    .map_err(|timeout| ResetError::Timeout {
        method,
        device: bdf,
        budget_us: timeout.budget_us,
    })
}

/// What a bridge that issues a bus reset must keep (facts H.4: it is not reset itself): its
/// bus numbers and its ACS Control (0 without ACS).
pub(super) fn issuer_registers(config: &impl ConfigAccess, bridge: &PciDevice) -> [Observation; 2] {
    let acs = bridge.acs().map_or(0, |acs| {
        read_high(config, bridge.bdf, acs.offset + ACS_REGISTERS)
    });
    let seen = |register, value| Observation {
        device: bridge.bdf,
        register,
        before: value,
        after: value,
    };
    [
        seen(
            Register::BusNumbers,
            config.read32(bridge.bdf, BUS_NUMBERS) & 0x00ff_ffff,
        ),
        seen(Register::AcsControl, u32::from(acs)),
    ]
}

/// The first of the issuing bridge's registers read `before` that changed since.
pub(super) fn issuer_changed(
    config: &impl ConfigAccess,
    bridge: &PciDevice,
    before: &[Observation; 2],
) -> Option<Observation> {
    let now = issuer_registers(config, bridge);
    before.iter().zip(now).find_map(|(before, now)| {
        (before.before != now.after).then_some(Observation {
            before: before.before,
            ..now
        })
    })
}
