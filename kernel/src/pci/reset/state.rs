//! Configuration saved before a reset and written back after it, as Linux's
//! `pci_save_state`/`pci_restore_state` do, so the next owner finds the device usable: BARs
//! at their enumerated addresses, header registers, PCI Express Device Control, and for
//! bridges below a bus reset their bus numbers, windows, Bridge Control and ACS Control
//! (facts H.4: a bus reset zeroes them, and devices below answer only once the bus numbers
//! are back).
//!
//! Command is written last and explicitly: 0 for an endpoint (bus mastering off; a reset
//! alone does not close QEMU's bus-master gate, facts H.6.1), the saved value for a bridge,
//! which must forward again. MSI and MSI-X are left disabled.

use moat_iommu::Bdf;

use super::error::{Mismatch, Register};
use super::registers::{
    ACS_REGISTERS, BAR0, BIST_START, BUS_NUMBERS, CACHE_LINE, COMMAND, COMMAND_BUS_MASTER,
    COMMAND_IO, COMMAND_MEMORY, DEVCTL_INITIATE_FLR, INTERRUPT, IO_WINDOW, MSI_ENABLE, MSIX_ENABLE,
    MSIX_FUNCTION_MASK, PCIE_DEVCTL, PCIE_DEVCTL2, PCIE_VERSION_MASK, ROM_TYPE0, ROM_TYPE1,
    SECONDARY_BUS_RESET, WINDOWS, msi_layout, read_high, write_high, write_low_clear_status,
};
use crate::pci::access::{ConfigAccess, ConfigAccessExt};
use crate::pci::{BarKind, CapabilityId, PciDevice};

/// Dwords of the standard header (0x00..0x40).
const HEADER_DWORDS: usize = 16;
/// BAR slots of a type 0 and a type 1 header.
const ENDPOINT_BARS: u16 = 6;
const BRIDGE_BARS: u16 = 2;
/// Bus number bits of the bus numbers dword (the secondary latency timer is not compared).
const BUS_NUMBER_BITS: u32 = 0x00ff_ffff;

/// One function's configuration as it was before the reset.
#[derive(Debug, Clone)]
pub(super) struct Saved {
    header: [u32; HEADER_DWORDS],
    /// Device Control dword and, for version 2 capabilities, Device Control 2.
    devctl: Option<(u32, Option<u32>)>,
    /// ACS Control.
    acs_control: Option<u16>,
}

impl Saved {
    /// Vendor and device ID: what the function must answer with after the reset.
    pub(super) fn identity(&self) -> u32 {
        self.header[0]
    }

    /// A bridge's bus numbers dword.
    pub(super) fn bus_numbers(&self) -> u32 {
        self.header[usize::from(BUS_NUMBERS / 4)]
    }

    fn dword(&self, offset: u16) -> u32 {
        self.header[usize::from(offset / 4)]
    }
}

/// Reads what [`restore`] writes back.
pub(super) fn save(config: &impl ConfigAccess, device: &PciDevice) -> Saved {
    let bdf = device.bdf;
    let mut header = [0; HEADER_DWORDS];
    for (index, dword) in header.iter_mut().enumerate() {
        *dword = config.read32(bdf, 4 * index as u16);
    }
    let devctl = device.pcie.map(|pcie| {
        let cap = u16::from(pcie.cap_offset);
        let version = config.read16(bdf, cap + 2) & PCIE_VERSION_MASK;
        let devctl2 = (version >= 2).then(|| config.read32(bdf, cap + PCIE_DEVCTL2));
        (config.read32(bdf, cap + PCIE_DEVCTL), devctl2)
    });
    let acs_control = device
        .acs()
        .map(|acs| read_high(config, bdf, acs.offset + ACS_REGISTERS));
    Saved {
        header,
        devctl,
        acs_control,
    }
}

/// Writes `saved` back to `device` after a reset, with its BARs at their enumerated
/// addresses, then reads back what matters: BARs and Command, and a bridge's bus numbers
/// and ACS Control.
pub(super) fn restore(
    config: &impl ConfigAccess,
    device: &PciDevice,
    saved: &Saved,
) -> Result<(), Mismatch> {
    let bdf = device.bdf;
    let bridge = device.is_bridge();
    write_low_clear_status(config, bdf, COMMAND, 0);
    if bridge {
        // First: until its bus numbers are back, nothing below the bridge answers.
        config.write32(bdf, BUS_NUMBERS, saved.bus_numbers());
        config.write32(bdf, IO_WINDOW, saved.dword(IO_WINDOW) & 0xffff);
        for window in WINDOWS {
            config.write32(bdf, window, saved.dword(window));
        }
    }
    let (slots, rom) = if bridge {
        (BRIDGE_BARS, ROM_TYPE1)
    } else {
        (ENDPOINT_BARS, ROM_TYPE0)
    };
    for slot in 0..slots {
        let offset = BAR0 + 4 * slot;
        config.write32(bdf, offset, saved.dword(offset));
    }
    for bar in &device.bars {
        let offset = BAR0 + 4 * u16::from(bar.index);
        config.write32(bdf, offset, bar.address as u32);
        if bar.kind == BarKind::Memory64 {
            config.write32(bdf, offset + 4, (bar.address >> 32) as u32);
        }
    }
    config.write32(bdf, rom, saved.dword(rom));
    config.write32(bdf, CACHE_LINE, saved.dword(CACHE_LINE) & !BIST_START);
    config.write32(
        bdf,
        INTERRUPT,
        saved.dword(INTERRUPT) & !SECONDARY_BUS_RESET,
    );
    if let (Some(pcie), Some((devctl, devctl2))) = (device.pcie, saved.devctl) {
        let cap = u16::from(pcie.cap_offset);
        let control = (devctl & 0xffff & !DEVCTL_INITIATE_FLR) as u16;
        write_low_clear_status(config, bdf, cap + PCIE_DEVCTL, control);
        if let Some(devctl2) = devctl2 {
            write_low_clear_status(config, bdf, cap + PCIE_DEVCTL2, devctl2 as u16);
        }
    }
    if let (Some(acs), Some(control)) = (device.acs(), saved.acs_control) {
        write_high(config, bdf, acs.offset + ACS_REGISTERS, control);
    }
    if !bridge {
        disable_msi(config, device);
    }
    let command = if bridge {
        saved.dword(COMMAND) as u16
    } else {
        0
    };
    write_low_clear_status(config, bdf, COMMAND, command);
    verify(config, device, saved, command)
}

/// MSI off with a zero message; MSI-X off and unmasked: their reset values.
fn disable_msi(config: &impl ConfigAccess, device: &PciDevice) {
    let bdf = device.bdf;
    if let Some(msi) = device.capability(CapabilityId::Msi) {
        let cap = u16::from(msi.offset);
        let control = read_high(config, bdf, cap);
        write_high(config, bdf, cap, control & !MSI_ENABLE);
        let layout = msi_layout(cap, control);
        for offset in layout.address {
            config.write32(bdf, offset, 0);
        }
        let data = config.read32(bdf, layout.data);
        config.write32(bdf, layout.data, data & !0xffff);
    }
    if let Some(msix) = device.capability(CapabilityId::MsiX) {
        let cap = u16::from(msix.offset);
        let control = read_high(config, bdf, cap);
        write_high(
            config,
            bdf,
            cap,
            control & !(MSIX_ENABLE | MSIX_FUNCTION_MASK),
        );
    }
}

fn verify(
    config: &impl ConfigAccess,
    device: &PciDevice,
    saved: &Saved,
    command: u16,
) -> Result<(), Mismatch> {
    let bdf = device.bdf;
    let decode = COMMAND_IO | COMMAND_MEMORY | COMMAND_BUS_MASTER;
    expect(
        bdf,
        Register::Command,
        u32::from(command & decode),
        u32::from(config.read16(bdf, COMMAND) & decode),
    )?;
    for bar in &device.bars {
        let offset = BAR0 + 4 * u16::from(bar.index);
        let mask = if bar.kind == BarKind::Io { !0x3 } else { !0xf };
        let read = config.read32(bdf, offset) & mask;
        expect(
            bdf,
            Register::Bar(bar.index),
            bar.address as u32 & mask,
            read,
        )?;
        if bar.kind == BarKind::Memory64 {
            let upper = Register::Bar(bar.index + 1);
            let read = config.read32(bdf, offset + 4);
            expect(bdf, upper, (bar.address >> 32) as u32, read)?;
        }
    }
    if device.is_bridge() {
        let read = config.read32(bdf, BUS_NUMBERS) & BUS_NUMBER_BITS;
        let wrote = saved.bus_numbers() & BUS_NUMBER_BITS;
        expect(bdf, Register::BusNumbers, wrote, read)?;
    }
    if let (Some(acs), Some(control)) = (device.acs(), saved.acs_control) {
        let read = read_high(config, bdf, acs.offset + ACS_REGISTERS);
        expect(
            bdf,
            Register::AcsControl,
            u32::from(control),
            u32::from(read),
        )?;
    }
    Ok(())
}

fn expect(device: Bdf, register: Register, wrote: u32, read: u32) -> Result<(), Mismatch> {
    if wrote == read {
        Ok(())
    } else {
        Err(Mismatch {
            device,
            register,
            wrote,
            read,
        })
    }
}
