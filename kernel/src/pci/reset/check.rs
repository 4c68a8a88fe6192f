//! The check that a reset happened: canaries armed in registers every reset clears
//! (QEMU's `pci_do_device_reset`, and the PCI specs' reset values), read back after it.
//!
//! A PM D3hot -> D0 transition on QEMU 7.2 resets nothing (facts H.3) and reports nothing
//! either; only reading the registers back shows it. Canaries never turn on anything that
//! can reach memory: bus mastering is turned off before the first one is armed, MSI stays
//! disabled (only its data register is armed), and MSI-X is enabled with the Function Mask
//! set, so no vector can fire.

use alloc::vec::Vec;
use moat_iommu::Bdf;

use super::error::{Observation, Register};
use super::registers::{
    BAR0, BIST_START, CACHE_LINE, COMMAND, COMMAND_BUS_MASTER, COMMAND_INTX_DISABLE, INTERRUPT,
    MSI_ENABLE, MSIX_ENABLE, MSIX_FUNCTION_MASK, msi_layout, read_high, write_high,
    write_low_clear_status,
};
use crate::pci::access::{ConfigAccess, ConfigAccessExt};
use crate::pci::{BarKind, CapabilityId, PciDevice};

/// Cache Line Size armed when the register holds 0 (64 bytes, as facts H.7).
const CACHE_LINE_CANARY: u32 = 0x10;
/// Interrupt Line armed when the register holds 0.
const INTERRUPT_LINE_CANARY: u32 = 0x5a;
/// MSI Message Data armed when it holds 0 (MSI stays disabled).
const MSI_DATA_CANARY: u32 = 0x4d54;
/// Address bits of a memory BAR's low dword.
const MEMORY_ADDRESS: u32 = !0xf;
/// Address bits of an I/O BAR.
const IO_ADDRESS: u32 = !0x3;

/// One armed register: where it is, which bits a reset must clear, and what they held.
#[derive(Debug, Clone, Copy)]
pub(super) struct Canary {
    device: Bdf,
    register: Register,
    offset: u16,
    shift: u8,
    mask: u32,
    /// The checked bits as read back after arming; 0 for a register that must merely read
    /// 0 after the reset (MSI Enable), which then proves nothing by itself.
    armed: u32,
}

impl Canary {
    /// Reads the register now and records its checked bits as the armed value.
    fn read_back(
        config: &impl ConfigAccess,
        device: Bdf,
        register: Register,
        offset: u16,
        shift: u8,
        mask: u32,
    ) -> Canary {
        let mut canary = Canary {
            device,
            register,
            offset,
            shift,
            mask,
            armed: 0,
        };
        canary.armed = canary.value(config);
        canary
    }

    fn value(&self, config: &impl ConfigAccess) -> u32 {
        (config.read32(self.device, self.offset) >> self.shift) & self.mask
    }
}

/// Arms the canaries of endpoint `device`: bus mastering off and Interrupt Disable set in
/// Command; Cache Line Size, Interrupt Line and MSI data set where they hold 0; every BAR
/// written with its enumerated address; MSI-X enabled and masked. Returns them in the
/// order they are checked.
pub(super) fn arm(config: &impl ConfigAccess, device: &PciDevice) -> Vec<Canary> {
    let bdf = device.bdf;
    let mut canaries = Vec::new();

    let command = config.read16(bdf, COMMAND);
    let armed = (command & !COMMAND_BUS_MASTER) | COMMAND_INTX_DISABLE;
    write_low_clear_status(config, bdf, COMMAND, armed);
    let armed_bits = u32::from(config.read16(bdf, COMMAND) & armed);
    let read = Canary::read_back;
    canaries.push(read(config, bdf, Register::Command, COMMAND, 0, armed_bits));

    let dword = config.read32(bdf, CACHE_LINE);
    if dword & 0xff == 0 {
        config.write32(bdf, CACHE_LINE, (dword & !BIST_START) | CACHE_LINE_CANARY);
    }
    canaries.push(read(
        config,
        bdf,
        Register::CacheLineSize,
        CACHE_LINE,
        0,
        0xff,
    ));

    let dword = config.read32(bdf, INTERRUPT);
    if dword & 0xff == 0 {
        config.write32(bdf, INTERRUPT, dword | INTERRUPT_LINE_CANARY);
    }
    canaries.push(read(
        config,
        bdf,
        Register::InterruptLine,
        INTERRUPT,
        0,
        0xff,
    ));

    for bar in &device.bars {
        let offset = BAR0 + 4 * u16::from(bar.index);
        let mask = if bar.kind == BarKind::Io {
            IO_ADDRESS
        } else {
            MEMORY_ADDRESS
        };
        config.write32(bdf, offset, bar.address as u32);
        canaries.push(read(config, bdf, Register::Bar(bar.index), offset, 0, mask));
        if bar.kind == BarKind::Memory64 {
            let upper = Register::Bar(bar.index + 1);
            config.write32(bdf, offset + 4, (bar.address >> 32) as u32);
            canaries.push(read(config, bdf, upper, offset + 4, 0, u32::MAX));
        }
    }

    if let Some(msi) = device.capability(CapabilityId::Msi) {
        let cap = u16::from(msi.offset);
        let control = read_high(config, bdf, cap);
        if control & MSI_ENABLE != 0 {
            write_high(config, bdf, cap, control & !MSI_ENABLE);
        }
        let data = msi_layout(cap, control).data;
        let dword = config.read32(bdf, data);
        if dword & 0xffff == 0 {
            config.write32(bdf, data, dword | MSI_DATA_CANARY);
        }
        canaries.push(read(config, bdf, Register::MsiData, data, 0, 0xffff));
        let enable = u32::from(MSI_ENABLE);
        canaries.push(read(config, bdf, Register::MsiEnable, cap, 16, enable));
    }

    if let Some(msix) = device.capability(CapabilityId::MsiX) {
        let cap = u16::from(msix.offset);
        let bits = MSIX_ENABLE | MSIX_FUNCTION_MASK;
        let control = read_high(config, bdf, cap);
        write_high(config, bdf, cap, control | bits);
        canaries.push(read(
            config,
            bdf,
            Register::MsixControl,
            cap,
            16,
            u32::from(bits),
        ));
    }
    canaries
}

/// Whether any canary armed for `device` holds a value a reset must clear.
pub(super) fn verifiable(canaries: &[Canary], device: Bdf) -> bool {
    canaries
        .iter()
        .any(|canary| canary.device == device && canary.armed != 0)
}

/// Reads every canary back. All at their reset value: the armed ones, as evidence. Otherwise
/// the first that kept a value.
pub(super) fn check(
    config: &impl ConfigAccess,
    canaries: &[Canary],
) -> Result<Vec<Observation>, Observation> {
    let mut evidence = Vec::new();
    for canary in canaries {
        let observation = Observation {
            device: canary.device,
            register: canary.register,
            before: canary.armed,
            after: canary.value(config),
        };
        if observation.after != 0 {
            return Err(observation);
        }
        if observation.before != 0 {
            evidence.push(observation);
        }
    }
    Ok(evidence)
}
