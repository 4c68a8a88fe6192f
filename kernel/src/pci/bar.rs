//! Base Address Registers: decoding what the firmware assigned and sizing each BAR by the
//! all-ones write (PCI Local Bus 3.0 §6.2.5.1), with the function's decoding turned off
//! around it and every register put back as found.
//!
//! `pci_types::EndpointHeader::bar` does the same for type 0 headers only, leaves decoding
//! on while the BAR briefly holds all ones, panics on the reserved memory type and shifts by
//! 32 on a mask with no address bits; this module keeps its layout and checks every mask.

use alloc::vec::Vec;
use moat_iommu::Bdf;
use pci_types::CommandRegister;

use super::access::{ConfigAccess, ConfigAccessExt};
use super::problem::ProblemKind;

/// Offset of BAR 0; BAR n is at `BAR0_OFFSET + 4 * n`.
const BAR0_OFFSET: u16 = 0x10;
/// Bit 0: an I/O BAR.
const BAR_IO: u32 = 1 << 0;
/// Bits 2:1 of a memory BAR: its type.
const MEMORY_TYPE_MASK: u32 = 0b110;
/// Memory type 0b00: anywhere in the 32-bit space.
const MEMORY_TYPE_32: u32 = 0b000;
/// Memory type 0b01: below 1 MiB (PCI 2.x; treated as 32-bit, as Linux does).
const MEMORY_TYPE_BELOW_1M: u32 = 0b010;
/// Memory type 0b10: anywhere in the 64-bit space, upper half in the next slot.
const MEMORY_TYPE_64: u32 = 0b100;
/// Bit 3 of a memory BAR: prefetchable.
const MEMORY_PREFETCHABLE: u32 = 1 << 3;
/// Address bits of a memory BAR.
const MEMORY_ADDRESS_MASK: u32 = !0xf;
/// Address bits of an I/O BAR.
const IO_ADDRESS_MASK: u32 = !0x3;

/// What address space a BAR decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BarKind {
    /// 32-bit memory (type 0b00, or the legacy below-1 MiB type 0b01).
    Memory32,
    /// 64-bit memory (type 0b10); occupies this slot and the next.
    Memory64,
    /// I/O ports.
    Io,
}

/// One implemented BAR, as the firmware left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    /// Slot index (0..=5 for type 0 headers, 0..=1 for bridges). A 64-bit BAR reports its
    /// lower slot.
    pub index: u8,
    /// Address space.
    pub kind: BarKind,
    /// Assigned base address (port number for I/O); 0 if the firmware assigned none.
    pub address: u64,
    /// Size in bytes (ports for I/O): a power of two.
    pub size: u64,
    /// Prefetchable memory. Always false for I/O.
    pub prefetchable: bool,
}

/// Reads and sizes the first `count` BAR slots of `bdf`. Memory and I/O decoding are turned
/// off while BARs hold all ones (so a half-sized BAR never claims addresses that belong to
/// something else) and the command register is then written back exactly as read.
pub(super) fn read_bars(
    access: &impl ConfigAccess,
    bdf: Bdf,
    count: u8,
) -> (Vec<Bar>, Vec<ProblemKind>) {
    let mut bars = Vec::new();
    let mut problems = Vec::new();
    if count == 0 {
        return (bars, problems);
    }
    let command = access.command(bdf);
    let decode = CommandRegister::IO_ENABLE | CommandRegister::MEMORY_ENABLE;
    let decoding = command.intersects(decode);
    if decoding {
        access.write_command(bdf, command.difference(decode));
    }

    let mut index = 0;
    while index < count {
        let (result, slots) = read_bar(access, bdf, index, count);
        match result {
            Ok(Some(bar)) => bars.push(bar),
            Ok(None) => {}
            Err(problem) => problems.push(problem),
        }
        index += slots;
    }

    if decoding {
        access.write_command(bdf, command);
    }
    (bars, problems)
}

/// The BAR in slot `index`: `Ok(None)` if unimplemented, and how many slots it occupies.
fn read_bar(
    access: &impl ConfigAccess,
    bdf: Bdf,
    index: u8,
    count: u8,
) -> (Result<Option<Bar>, ProblemKind>, u8) {
    let offset = BAR0_OFFSET + 4 * u16::from(index);
    let original = access.read32(bdf, offset);

    if original & BAR_IO != 0 {
        let mask = probe(access, bdf, offset, original) & IO_ADDRESS_MASK;
        // Devices that decode only 16 address bits hardwire the upper half to zero.
        let mask = if mask != 0 && mask & 0xffff_0000 == 0 {
            mask | 0xffff_0000
        } else {
            mask
        };
        let bar = size_of(u64::from(mask)).map(|size| Bar {
            index,
            kind: BarKind::Io,
            address: u64::from(original & IO_ADDRESS_MASK),
            size,
            prefetchable: false,
        });
        return (bar.ok_or(ProblemKind::BarUnsizable { index }).map(Some), 1);
    }

    let prefetchable = original & MEMORY_PREFETCHABLE != 0;
    match original & MEMORY_TYPE_MASK {
        MEMORY_TYPE_32 | MEMORY_TYPE_BELOW_1M => {
            let readback = probe(access, bdf, offset, original);
            if original == 0 && readback == 0 {
                // Hardwired to zero: the slot has no BAR.
                return (Ok(None), 1);
            }
            let bar = size_of(u64::from(readback & MEMORY_ADDRESS_MASK)).map(|size| Bar {
                index,
                kind: BarKind::Memory32,
                address: u64::from(original & MEMORY_ADDRESS_MASK),
                size,
                prefetchable,
            });
            (bar.ok_or(ProblemKind::BarUnsizable { index }).map(Some), 1)
        }
        MEMORY_TYPE_64 => {
            if index + 1 >= count {
                // The next dword is not a BAR (a bridge's bus numbers, a CardBus CIS
                // pointer): never write all ones there.
                return (Err(ProblemKind::Bar64InLastSlot { index }), 1);
            }
            let upper_original = access.read32(bdf, offset + 4);
            let low = probe(access, bdf, offset, original);
            let high = probe(access, bdf, offset + 4, upper_original);
            let mask = (u64::from(high) << 32) | u64::from(low & MEMORY_ADDRESS_MASK);
            let address =
                (u64::from(upper_original) << 32) | u64::from(original & MEMORY_ADDRESS_MASK);
            let bar = size_of(mask).map(|size| Bar {
                index,
                kind: BarKind::Memory64,
                address,
                size,
                prefetchable,
            });
            (bar.ok_or(ProblemKind::BarUnsizable { index }).map(Some), 2)
        }
        _ => (Err(ProblemKind::BarReservedType { index }), 1),
    }
}

/// Writes all ones to the BAR dword at `offset`, reads the mask back and restores `original`.
fn probe(access: &impl ConfigAccess, bdf: Bdf, offset: u16, original: u32) -> u32 {
    access.write32(bdf, offset, u32::MAX);
    let readback = access.read32(bdf, offset);
    access.write32(bdf, offset, original);
    readback
}

/// The size a BAR's address mask encodes: its lowest set bit, if the set bits are one
/// contiguous run. A zero mask, or ones with holes between them, cannot be a BAR.
fn size_of(mask: u64) -> Option<u64> {
    if mask == 0 {
        return None;
    }
    let lowest = mask & mask.wrapping_neg();
    // Adding the lowest bit carries through a contiguous run and clears all of it.
    if mask.wrapping_add(lowest) & mask != 0 {
        return None;
    }
    Some(lowest)
}

#[cfg(test)]
mod tests {
    use super::size_of;

    #[test]
    fn pci_bar_size_of_masks() {
        assert_eq!(size_of(0xfff0_0000), Some(0x10_0000));
        assert_eq!(size_of(0xffff_ffff_ffff_c000), Some(0x4000));
        assert_eq!(size_of(0xffff_ffff_0000_0000), Some(0x1_0000_0000));
        assert_eq!(size_of(0x8000_0000_0000_0000), Some(0x8000_0000_0000_0000));
        assert_eq!(size_of(0xffff_ff00), Some(0x100));
        // Contiguous but not reaching the top: a device decoding fewer address bits.
        assert_eq!(size_of(0x0fff_f000), Some(0x1000));
        assert_eq!(size_of(0), None);
        assert_eq!(size_of(0xf0f0_0000), None);
        assert_eq!(size_of(0xffff_ffff_0000_f000), None);
    }
}
