//! Configuration-space access: the safe 32-bit accessor discovery runs on, narrower reads
//! built from it, and how much of each function's space the mechanism reaches.

use moat_iommu::Bdf;
use pci_types::{CommandRegister, PciAddress, StatusRegister};

/// Offset of the command register (16 bits; the status register is the upper half).
pub const COMMAND_OFFSET: u16 = 0x04;

/// Reads and writes PCI configuration space in aligned 32-bit units (and 16-bit writes where a
/// neighbouring register must not be written), safely.
///
/// This is the safe twin of [`pci_types::ConfigRegionAccess`], whose `read`/`write` are
/// `unsafe fn`s ("`address` and `offset` must be valid"). Discovery calls the accessor with
/// addresses that come from the hardware (bridge bus numbers), so it cannot make that promise
/// itself; the accessor checks instead. `crate::ecam::ConfigSpace` already range-checks every
/// access (all ones for anything no window decodes), so it implements this trait by
/// forwarding to its `ConfigRegionAccess` impl with [`pci_address`], under one `// SAFETY:`
/// comment that cites those checks.
///
/// Implementations must be sound for *every* argument: for a `bdf` outside the mapped
/// segments and buses, or an `offset` that is not a multiple of 4 or not below the reachable
/// size, a read returns `0xffff_ffff` (what a master abort reads as) and a write does
/// nothing. Discovery itself only passes offsets that are multiples of 4 and below the
/// [`ConfigSpaceSize`] it was given.
pub trait ConfigAccess {
    /// The little-endian dword at `offset` of `bdf`'s configuration space.
    fn read32(&self, bdf: Bdf, offset: u16) -> u32;

    /// Writes the dword at `offset` of `bdf`'s configuration space.
    fn write32(&self, bdf: Bdf, offset: u16, value: u32);

    /// Writes the 16-bit word at `offset` (even) with one 16-bit access, for a register that
    /// shares its dword with one that must not be written: the ACS Control register (+6)
    /// sits beside the read-only ACS Capability register (+4). An odd `offset` or one beyond
    /// the reachable size writes nothing.
    fn write16(&self, bdf: Bdf, offset: u16, value: u16);
}

impl<T: ConfigAccess + ?Sized> ConfigAccess for &T {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        (**self).read32(bdf, offset)
    }

    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        (**self).write32(bdf, offset, value)
    }

    fn write16(&self, bdf: Bdf, offset: u16, value: u16) {
        (**self).write16(bdf, offset, value)
    }
}

/// Narrow reads and register helpers over any [`ConfigAccess`]. Reads reach the hardware as
/// 32-bit accesses: legacy port I/O (0xcf8/0xcfc) and some devices (QEMU's edu, below 0x80)
/// handle nothing else reliably.
pub trait ConfigAccessExt: ConfigAccess {
    /// The byte at `offset` (any alignment).
    fn read8(&self, bdf: Bdf, offset: u16) -> u8 {
        let dword = self.read32(bdf, offset & !3);
        (dword >> (8 * u32::from(offset & 3))) as u8
    }

    /// The 16-bit word at `offset`; `offset` must be even (bit 0 is ignored).
    fn read16(&self, bdf: Bdf, offset: u16) -> u16 {
        let dword = self.read32(bdf, offset & !3);
        (dword >> (8 * u32::from(offset & 2))) as u16
    }

    /// The command register (offset 0x04).
    fn command(&self, bdf: Bdf) -> CommandRegister {
        CommandRegister::from_bits_retain(self.read16(bdf, COMMAND_OFFSET))
    }

    /// The status register (offset 0x06).
    fn status(&self, bdf: Bdf) -> StatusRegister {
        StatusRegister::new(self.read16(bdf, COMMAND_OFFSET + 2))
    }

    /// Writes the command register exactly. The status half of the dword is written as zero:
    /// its error bits are write-one-to-clear, so a read-modify-write of the whole dword would
    /// clear any error the device has latched.
    fn write_command(&self, bdf: Bdf, command: CommandRegister) {
        self.write32(bdf, COMMAND_OFFSET, u32::from(command.bits()));
    }
}

impl<T: ConfigAccess + ?Sized> ConfigAccessExt for T {}

/// How much of each function's configuration space the access mechanism reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSpaceSize {
    /// The first 256 bytes only: legacy port I/O (0xcf8/0xcfc). Extended capabilities are
    /// not read.
    Conventional,
    /// All 4096 bytes: ECAM (the MCFG window). Extended capabilities from 0x100 are read for
    /// PCI Express functions.
    Extended,
}

impl ConfigSpaceSize {
    /// One past the last reachable offset: 0x100 or 0x1000.
    pub const fn limit(self) -> u16 {
        match self {
            ConfigSpaceSize::Conventional => 0x100,
            ConfigSpaceSize::Extended => 0x1000,
        }
    }
}

/// `bdf` as a `pci_types` address, for the `pci_types` helpers (MSI, MSI-X).
pub fn pci_address(bdf: Bdf) -> PciAddress {
    PciAddress::new(bdf.segment(), bdf.bus(), bdf.device(), bdf.function())
}

/// A `pci_types` address as a [`Bdf`]. Always succeeds: `PciAddress` packs the device into
/// 5 bits and the function into 3.
pub fn bdf_from_address(address: PciAddress) -> Bdf {
    let devfn = (address.device() << 3) | address.function();
    Bdf::from_devfn(address.segment(), address.bus(), devfn)
}
