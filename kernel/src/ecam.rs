//! PCI configuration access for the running machine: ECAM (memory-mapped, 4 KiB per function)
//! from the MCFG, with legacy port I/O (0xcf8/0xcfc, first 256 bytes only) as the fallback
//! when the firmware describes no ECAM.

use crate::acpi::platform::EcamRegion;
use crate::arch::io::{self, Mmio};
use crate::arch::paging::{self, PagingError};
use alloc::vec::Vec;
use pci_types::{ConfigRegionAccess, PciAddress};

/// How configuration space is reached.
#[derive(Debug)]
pub(crate) enum Mechanism {
    /// Memory-mapped, from the MCFG; extended config space (offsets 0x100..0x1000) reachable.
    Ecam(Vec<EcamRegion>),
    /// Ports 0xcf8/0xcfc, segment 0 only, offsets below 0x100.
    Ports,
}

impl Mechanism {
    /// Maps the ECAM windows of `regions` uncached, or falls back to ports if there are none.
    pub(crate) fn new(regions: &[EcamRegion]) -> Result<Self, PagingError> {
        if regions.is_empty() {
            return Ok(Self::Ports);
        }
        for region in regions {
            let start = region.base + (u64::from(region.bus_start) << 20);
            let buses = u64::from(region.bus_end) - u64::from(region.bus_start) + 1;
            paging::map_mmio(start, buses << 20)?;
        }
        Ok(Self::Ecam(regions.to_vec()))
    }

    /// Whether offsets 0x100..0x1000 are reachable.
    pub(crate) fn extended(&self) -> bool {
        matches!(self, Self::Ecam(_))
    }

    /// The (segment, first bus, last bus) ranges to enumerate.
    pub(crate) fn bus_ranges(&self) -> Vec<(u16, u8, u8)> {
        match self {
            Self::Ecam(regions) => regions
                .iter()
                .map(|r| (r.segment, r.bus_start, r.bus_end))
                .collect(),
            Self::Ports => alloc::vec![(0, 0, 255)],
        }
    }

    /// Where `offset` (aligned to `width` bytes) of `address` is mapped, if a window decodes it.
    fn ecam_address(
        regions: &[EcamRegion],
        address: PciAddress,
        offset: u16,
        width: u16,
    ) -> Option<usize> {
        if offset >= 4096 || !offset.is_multiple_of(width) {
            return None;
        }
        let region = regions.iter().find(|r| {
            r.segment == address.segment() && (r.bus_start..=r.bus_end).contains(&address.bus())
        })?;
        let function = (u64::from(address.bus()) << 20)
            | (u64::from(address.device()) << 15)
            | (u64::from(address.function()) << 12);
        Some((region.base + function + u64::from(offset)) as usize)
    }

    /// The 0xcf8 selector for the dword holding `offset` (aligned to `width` bytes).
    fn port_address(address: PciAddress, offset: u16, width: u16) -> Option<u32> {
        if address.segment() != 0 || offset >= 256 || !offset.is_multiple_of(width) {
            return None;
        }
        Some(
            0x8000_0000
                | (u32::from(address.bus()) << 16)
                | (u32::from(address.device()) << 11)
                | (u32::from(address.function()) << 8)
                | u32::from(offset & !3),
        )
    }

    /// Writes the 16-bit word at `offset` (even) with one 16-bit access; a write no window
    /// decodes, or at an odd offset, is dropped.
    fn write16(&self, address: PciAddress, offset: u16, value: u16) {
        match self {
            Self::Ecam(regions) => {
                if let Some(at) = Self::ecam_address(regions, address, offset, 2) {
                    // SAFETY: the address lies in an ECAM window `new` mapped uncached, and is
                    // 2-byte aligned; configuration space takes 16-bit accesses.
                    unsafe { Mmio::<u16>::new(at) }.write(value);
                }
            }
            Self::Ports => {
                if let Some(selector) = Self::port_address(address, offset, 2) {
                    io::outl(0xcf8, selector);
                    // The data port's bytes are the selected dword's bytes.
                    io::outw(0xcfc + (offset & 2), value);
                }
            }
        }
    }
}

impl ConfigRegionAccess for Mechanism {
    /// Reads a config dword; an address no window decodes reads as all ones, like a master
    /// abort.
    unsafe fn read(&self, address: PciAddress, offset: u16) -> u32 {
        match self {
            Self::Ecam(regions) => match Self::ecam_address(regions, address, offset, 4) {
                // SAFETY: the address lies in an ECAM window `new` mapped uncached, and config
                // dwords are 4-byte registers.
                Some(at) => unsafe { Mmio::<u32>::new(at) }.read(),
                None => u32::MAX,
            },
            Self::Ports => match Self::port_address(address, offset, 4) {
                Some(selector) => {
                    io::outl(0xcf8, selector);
                    io::inl(0xcfc)
                }
                None => u32::MAX,
            },
        }
    }

    /// Writes a config dword; writes no window decodes are dropped.
    unsafe fn write(&self, address: PciAddress, offset: u16, value: u32) {
        match self {
            Self::Ecam(regions) => {
                if let Some(at) = Self::ecam_address(regions, address, offset, 4) {
                    // SAFETY: as for `read`.
                    unsafe { Mmio::<u32>::new(at) }.write(value);
                }
            }
            Self::Ports => {
                if let Some(selector) = Self::port_address(address, offset, 4) {
                    io::outl(0xcf8, selector);
                    io::outl(0xcfc, value);
                }
            }
        }
    }
}

/// The machine's configuration space. Only the kernel makes one (at discovery); the kernel's
/// services reach it crate-internally and the composition root through
/// [`config_privileged`]: whoever holds it can rewrite any function's configuration.
#[derive(Debug)]
pub struct ConfigSpace(Mechanism);

impl ConfigSpace {
    /// Maps the ECAM windows of `regions` uncached, or falls back to ports if there are none
    /// or they cannot be mapped (said in the log).
    pub(crate) fn new(regions: &[EcamRegion]) -> Self {
        match Mechanism::new(regions) {
            Ok(mechanism) => Self(mechanism),
            Err(problem) => {
                crate::error!(
                    "pci",
                    "cannot map ECAM ({problem:?}); using port I/O config access"
                );
                Self(Mechanism::Ports)
            }
        }
    }

    /// Whether offsets 0x100..0x1000 are reachable.
    pub fn extended(&self) -> bool {
        self.0.extended()
    }

    /// The (segment, first bus, last bus) ranges to enumerate.
    pub fn bus_ranges(&self) -> Vec<(u16, u8, u8)> {
        self.0.bus_ranges()
    }
}

impl crate::pci::ConfigAccess for ConfigSpace {
    fn read32(&self, bdf: moat_iommu::Bdf, offset: u16) -> u32 {
        // SAFETY: `read` range-checks segment, bus and offset against the mapped windows (or the
        // port I/O limits) and reads all ones otherwise, so every argument is valid.
        unsafe { ConfigRegionAccess::read(&self.0, crate::pci::pci_address(bdf), offset) }
    }

    fn write32(&self, bdf: moat_iommu::Bdf, offset: u16, value: u32) {
        // SAFETY: as for `read32`; writes no window decodes are dropped.
        unsafe { ConfigRegionAccess::write(&self.0, crate::pci::pci_address(bdf), offset, value) }
    }

    fn write16(&self, bdf: moat_iommu::Bdf, offset: u16, value: u16) {
        self.0.write16(crate::pci::pci_address(bdf), offset, value)
    }
}

static CONFIG: spin::Once<ConfigSpace> = spin::Once::new();

/// Keeps the machine's config space for the rest of the run and returns it.
pub(crate) fn publish(config: ConfigSpace) -> &'static ConfigSpace {
    CONFIG.call_once(|| config)
}

/// The config space published at boot, for the kernel's own services (enumeration, the
/// registry, reset), which enforce the ownership rules themselves.
pub(crate) fn config() -> Option<&'static ConfigSpace> {
    CONFIG.get()
}

/// The config space published at boot, for the composition root: raw access to every
/// function, so it takes the root's capability.
pub fn config_privileged(_root: &crate::privilege::Privileged) -> Option<&'static ConfigSpace> {
    CONFIG.get()
}
