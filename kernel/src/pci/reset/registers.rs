//! The configuration registers a reset touches, defined once: offsets in the header and in
//! the capabilities, the bits used, and 16-bit writes built from the 32-bit accessor.
//!
//! Every write is a whole aligned dword (the only width [`ConfigAccess`] has). Where the other
//! half of that dword holds write-one-to-clear status bits (Status, Device Status, Secondary
//! Status) it is written as zero, so a write never clears an error the device latched.

use moat_iommu::Bdf;

use crate::pci::access::{ConfigAccess, ConfigAccessExt};

/// Command (low half) and Status (high half, RW1C).
pub(super) const COMMAND: u16 = 0x04;
/// Cache Line Size (byte 0), Latency Timer, Header Type, BIST.
pub(super) const CACHE_LINE: u16 = 0x0c;
/// BIST byte of the 0x0c dword, bit 6: Start BIST. Never written as one.
pub(super) const BIST_START: u32 = 1 << 30;
/// BAR 0; BAR n is at `BAR0 + 4 * n`.
pub(super) const BAR0: u16 = 0x10;
/// Expansion ROM BAR of a type 0 header.
pub(super) const ROM_TYPE0: u16 = 0x30;
/// Expansion ROM BAR of a type 1 header.
pub(super) const ROM_TYPE1: u16 = 0x38;
/// Interrupt Line (byte 0) and Pin; for type 1 headers Bridge Control is the high half.
pub(super) const INTERRUPT: u16 = 0x3c;
/// Type 1: primary, secondary, subordinate bus, secondary latency timer.
pub(super) const BUS_NUMBERS: u16 = 0x18;
/// Type 1: I/O base and limit (low half), Secondary Status (high half, RW1C).
pub(super) const IO_WINDOW: u16 = 0x1c;
/// Type 1 window dwords after [`IO_WINDOW`]: memory, prefetchable base/limit, prefetchable
/// upper base, upper limit, I/O upper base/limit (PCI-to-PCI Bridge 1.2 §3.2).
pub(super) const WINDOWS: [u16; 5] = [0x20, 0x24, 0x28, 0x2c, 0x30];
/// Bridge Control bit 6: Secondary Bus Reset (PCI-to-PCI Bridge 1.2 §3.2.5.18), as a bit of
/// the [`INTERRUPT`] dword.
pub(super) const SECONDARY_BUS_RESET: u32 = 1 << (16 + 6);

/// Command: I/O Space Enable.
pub(super) const COMMAND_IO: u16 = 1 << 0;
/// Command: Memory Space Enable.
pub(super) const COMMAND_MEMORY: u16 = 1 << 1;
/// Command: Bus Master Enable.
pub(super) const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// Command: Interrupt Disable (INTx).
pub(super) const COMMAND_INTX_DISABLE: u16 = 1 << 10;

/// PCI Express capability + 4: Device Capabilities.
pub(super) const PCIE_DEVCAP: u16 = 0x04;
/// DEVCAP bit 28: Function Level Reset Capability (PCIe 6.0 §7.5.3.3).
pub(super) const DEVCAP_FLR: u32 = 1 << 28;
/// PCI Express capability + 8: Device Control (low half), Device Status (high half, RW1C).
pub(super) const PCIE_DEVCTL: u16 = 0x08;
/// DEVCTL bit 15: Initiate Function Level Reset (reads as 0).
pub(super) const DEVCTL_INITIATE_FLR: u32 = 1 << 15;
/// Device Status bit 5 (bit 21 of the DEVCTL dword): Transactions Pending.
pub(super) const DEVSTA_TRANSACTIONS_PENDING: u32 = 1 << (16 + 5);
/// PCI Express capability + 0x28: Device Control 2 (version 2 capabilities only).
pub(super) const PCIE_DEVCTL2: u16 = 0x28;
/// PCI Express Capabilities register (+2) bits 3:0: the capability's version.
pub(super) const PCIE_VERSION_MASK: u16 = 0xf;

/// Power Management capability + 4: PMCSR (low half).
pub(super) const PM_CONTROL: u16 = 0x04;
/// PMCSR bits 1:0: PowerState.
pub(super) const PM_STATE_MASK: u16 = 0b11;
/// PowerState D0.
pub(super) const PM_D0: u16 = 0b00;
/// PowerState D3hot.
pub(super) const PM_D3HOT: u16 = 0b11;
/// PMCSR bit 3: No_Soft_Reset; set means D3hot -> D0 keeps the function's state.
pub(super) const PM_NO_SOFT_RESET: u16 = 1 << 3;
/// PMCSR bit 15: PME_Status (RW1C), never written back as one.
pub(super) const PM_PME_STATUS: u16 = 1 << 15;

/// MSI Message Control (+2) bit 0: MSI Enable.
pub(super) const MSI_ENABLE: u16 = 1 << 0;
/// MSI Message Control bit 7: 64-bit address capable.
pub(super) const MSI_64BIT: u16 = 1 << 7;
/// MSI-X Message Control (+2) bit 15: MSI-X Enable.
pub(super) const MSIX_ENABLE: u16 = 1 << 15;
/// MSI-X Message Control bit 14: Function Mask.
pub(super) const MSIX_FUNCTION_MASK: u16 = 1 << 14;

/// ACS capability + 4: ACS Capability (low half), ACS Control (high half).
pub(super) const ACS_REGISTERS: u16 = 0x04;

/// Offsets of MSI's address and data dwords for a capability at `cap` with `control`.
pub(super) const fn msi_layout(cap: u16, control: u16) -> MsiLayout {
    if control & MSI_64BIT != 0 {
        MsiLayout {
            address: [cap + 4, cap + 8],
            data: cap + 0x0c,
        }
    } else {
        MsiLayout {
            address: [cap + 4, cap + 4],
            data: cap + 8,
        }
    }
}

/// Where MSI's message lives (PCI Local Bus 3.0 §6.8.1).
#[derive(Debug, Clone, Copy)]
pub(super) struct MsiLayout {
    /// Address dword(s); the same offset twice for a 32-bit capability.
    pub(super) address: [u16; 2],
    /// Data dword (Message Data in the low half).
    pub(super) data: u16,
}

/// The high half of the dword at `offset`.
pub(super) fn read_high(config: &impl ConfigAccess, bdf: Bdf, offset: u16) -> u16 {
    config.read16(bdf, offset + 2)
}

/// Writes `value` as the high half of the dword at `offset`, keeping its low half (a
/// capability header or Interrupt Line/Pin, never status bits).
pub(super) fn write_high(config: &impl ConfigAccess, bdf: Bdf, offset: u16, value: u16) {
    let low = config.read32(bdf, offset) & 0xffff;
    config.write32(bdf, offset, (u32::from(value) << 16) | low);
}

/// Writes `value` as the low half of the dword at `offset` and zero to its high half, for
/// registers whose high half is RW1C status (Command, Device Control).
pub(super) fn write_low_clear_status(
    config: &impl ConfigAccess,
    bdf: Bdf,
    offset: u16,
    value: u16,
) {
    config.write32(bdf, offset, u32::from(value));
}

/// Config dword 0 (vendor and device ID) of a function that answers with something other
/// than all ones (no device) or vendor 0x0001 (Configuration Request Retry Status).
pub(super) fn identity(config: &impl ConfigAccess, bdf: Bdf) -> Option<u32> {
    let id = config.read32(bdf, 0);
    let vendor = id & 0xffff;
    (vendor != 0xffff && vendor != 0x0001).then_some(id)
}
