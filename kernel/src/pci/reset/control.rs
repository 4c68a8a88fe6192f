//! Small controls the ownership layer uses around a release: bus mastering on or off, and
//! every interrupt of a function masked.

use moat_iommu::Bdf;

use super::error::{Mismatch, Register};
use super::registers::{
    COMMAND, COMMAND_BUS_MASTER, COMMAND_INTX_DISABLE, MSI_ENABLE, MSIX_ENABLE, MSIX_FUNCTION_MASK,
    read_high, write_high, write_low_clear_status,
};
use crate::pci::access::{ConfigAccess, ConfigAccessExt};
use crate::pci::{CapabilityId, PciDevice};

/// Whether a function may start DMA (Command.Bus Master Enable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusMaster {
    /// Bus mastering on: the function may issue memory requests.
    Enabled,
    /// Bus mastering off.
    Disabled,
}

/// Sets Command.Bus Master Enable of `bdf` to `state` by writing Command, and reads it back.
/// Writing Command is what closes QEMU's bus-master gate: a reset alone clears the bit but
/// lets DMA the device had started land (facts H.6.1). The IOMMU's blocking domain stays
/// the real barrier.
pub fn bus_master(config: &impl ConfigAccess, bdf: Bdf, state: BusMaster) -> Result<(), Mismatch> {
    let command = config.read16(bdf, COMMAND);
    let wanted = match state {
        BusMaster::Enabled => command | COMMAND_BUS_MASTER,
        BusMaster::Disabled => command & !COMMAND_BUS_MASTER,
    };
    write_low_clear_status(config, bdf, COMMAND, wanted);
    let read = config.read16(bdf, COMMAND);
    if read & COMMAND_BUS_MASTER == wanted & COMMAND_BUS_MASTER {
        Ok(())
    } else {
        Err(Mismatch {
            device: bdf,
            register: Register::Command,
            wrote: u32::from(wanted),
            read: u32::from(read),
        })
    }
}

/// Masks every interrupt of `device` for release: INTx disabled in Command, MSI Enable
/// cleared, MSI-X Function Mask set and Enable cleared. Checks MSI and MSI-X read back
/// (Interrupt Disable may be hardwired to 0 on conventional devices, so it is not checked).
pub fn mask_interrupts(config: &impl ConfigAccess, device: &PciDevice) -> Result<(), Mismatch> {
    let bdf = device.bdf;
    let command = config.read16(bdf, COMMAND);
    write_low_clear_status(config, bdf, COMMAND, command | COMMAND_INTX_DISABLE);
    if let Some(msi) = device.capability(CapabilityId::Msi) {
        let cap = u16::from(msi.offset);
        let control = read_high(config, bdf, cap);
        write_high(config, bdf, cap, control & !MSI_ENABLE);
        let read = read_high(config, bdf, cap);
        if read & MSI_ENABLE != 0 {
            return Err(Mismatch {
                device: bdf,
                register: Register::MsiEnable,
                wrote: u32::from(control & !MSI_ENABLE),
                read: u32::from(read),
            });
        }
    }
    if let Some(msix) = device.capability(CapabilityId::MsiX) {
        let cap = u16::from(msix.offset);
        let bits = MSIX_ENABLE | MSIX_FUNCTION_MASK;
        let control = read_high(config, bdf, cap);
        // Mask first, then disable: a vector never fires between the two writes.
        write_high(config, bdf, cap, control | MSIX_FUNCTION_MASK);
        let wanted = (control | MSIX_FUNCTION_MASK) & !MSIX_ENABLE;
        write_high(config, bdf, cap, wanted);
        let read = read_high(config, bdf, cap);
        if read & bits != MSIX_FUNCTION_MASK {
            return Err(Mismatch {
                device: bdf,
                register: Register::MsixControl,
                wrote: u32::from(wanted),
                read: u32::from(read),
            });
        }
    }
    Ok(())
}
