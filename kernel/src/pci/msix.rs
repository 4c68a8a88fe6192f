//! The MSI-X capability (PCI Local Bus 3.0, 6.8.2): where a function's vector table lives (a
//! BAR and an offset), how many entries it has, and turning the function's MSI-X on. The table
//! entries themselves are MMIO; the kernel's passthrough layer writes them through the BAR.

use moat_iommu::Bdf;

use super::access::ConfigAccess;
use super::bar::BarKind;
use super::capabilities::CapabilityId;
use super::device::PciDevice;

/// Message control (upper half of the capability's first dword).
const CONTROL_TABLE_SIZE: u16 = 0x07ff;
const CONTROL_FUNCTION_MASK: u16 = 1 << 14;
const CONTROL_ENABLE: u16 = 1 << 15;
/// Offset of the table offset/BIR dword inside the capability.
const TABLE: u16 = 0x4;
/// Bytes per table entry: address low, address high, data, vector control.
pub const ENTRY_BYTES: u64 = 16;
/// Vector control bit 0: the entry is masked.
pub const ENTRY_MASKED: u32 = 1;

/// Why an MSI-X operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsixError {
    /// The function has no MSI-X capability.
    NoCapability,
    /// The table's BIR names a BAR the function does not have (or an I/O or unassigned BAR).
    BadTableBar(u8),
    /// The table does not fit inside its BAR.
    TableOutsideBar,
    /// No entry with that index.
    NoSuchEntry(u16),
}

/// One function's MSI-X capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msix {
    bdf: Bdf,
    offset: u16,
    entries: u16,
    table_bar: u8,
    table_offset: u64,
    bar_address: u64,
    bar_size: u64,
}

impl Msix {
    /// The MSI-X capability of `device`, checked against its BARs.
    pub fn of(config: &impl ConfigAccess, device: &PciDevice) -> Result<Self, MsixError> {
        let capability = device
            .capability(CapabilityId::MsiX)
            .ok_or(MsixError::NoCapability)?;
        let offset = u16::from(capability.offset);
        let header = config.read32(device.bdf, offset);
        if header as u8 != CapabilityId::MsiX.raw() {
            return Err(MsixError::NoCapability);
        }
        let control = (header >> 16) as u16;
        let entries = (control & CONTROL_TABLE_SIZE) + 1;
        let table = config.read32(device.bdf, offset + TABLE);
        let table_bar = (table & 0x7) as u8;
        let table_offset = u64::from(table & !0x7);
        let bar = device
            .bars
            .iter()
            .find(|b| b.index == table_bar)
            .filter(|b| matches!(b.kind, BarKind::Memory32 | BarKind::Memory64) && b.address != 0)
            .ok_or(MsixError::BadTableBar(table_bar))?;
        if table_offset + u64::from(entries) * ENTRY_BYTES > bar.size {
            return Err(MsixError::TableOutsideBar);
        }
        Ok(Self {
            bdf: device.bdf,
            offset,
            entries,
            table_bar,
            table_offset,
            bar_address: bar.address,
            bar_size: bar.size,
        })
    }

    /// Number of table entries.
    pub fn entries(&self) -> u16 {
        self.entries
    }

    /// The BAR holding the table (index, address, size).
    pub fn table_bar(&self) -> (u8, u64, u64) {
        (self.table_bar, self.bar_address, self.bar_size)
    }

    /// Offset of entry `index` inside the table's BAR.
    pub fn entry_offset(&self, index: u16) -> Result<u64, MsixError> {
        if index >= self.entries {
            return Err(MsixError::NoSuchEntry(index));
        }
        Ok(self.table_offset + u64::from(index) * ENTRY_BYTES)
    }

    /// Turns MSI-X on with the function unmasked (each entry keeps its own mask bit).
    pub fn enable(&self, config: &impl ConfigAccess) {
        let header = config.read32(self.bdf, self.offset);
        let control = ((header >> 16) as u16 | CONTROL_ENABLE) & !CONTROL_FUNCTION_MASK;
        config.write32(
            self.bdf,
            self.offset,
            (header & 0xffff) | (u32::from(control) << 16),
        );
    }

    /// Whether MSI-X is on.
    pub fn is_enabled(&self, config: &impl ConfigAccess) -> bool {
        (config.read32(self.bdf, self.offset) >> 16) as u16 & CONTROL_ENABLE != 0
    }
}
