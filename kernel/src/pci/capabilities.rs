//! Capability lists: the standard list (from the header's pointer, 0x40..0xff) and the PCI
//! Express extended list (from 0x100). Both are linked lists written by the device, so every
//! pointer is range-checked and every walk is bounded and loop-checked before it advances.

use alloc::vec::Vec;
use moat_iommu::Bdf;

use super::access::{ConfigAccess, ConfigAccessExt};
use super::problem::ProblemKind;

/// First offset after the standard header, where standard capabilities may start.
const STANDARD_START: u16 = 0x40;
/// One past the last offset of conventional configuration space.
const STANDARD_END: u16 = 0x100;
/// Most standard capabilities that fit: (0x100 - 0x40) / 4.
const MAX_STANDARD: usize = 48;
/// Where the extended list starts.
const EXTENDED_START: u16 = 0x100;
/// Last offset an extended capability header may have.
const EXTENDED_LAST: u16 = 0xffc;
/// Most extended capabilities that fit: (0x1000 - 0x100) / 4.
const MAX_EXTENDED: usize = 960;
/// The Null capability's ID.
const NULL_ID: u8 = 0x00;
/// The Null extended capability's ID.
const NULL_EXTENDED_ID: u16 = 0x0000;
/// The ACS extended capability's ID.
const ACS_ID: u16 = 0x000d;

/// A standard capability's ID (PCI Local Bus 3.0, appendix H).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CapabilityId {
    /// 0x01, PCI Power Management.
    PowerManagement,
    /// 0x05, Message Signalled Interrupts.
    Msi,
    /// 0x09, vendor-specific.
    Vendor,
    /// 0x10, PCI Express.
    Pcie,
    /// 0x11, MSI-X.
    MsiX,
    /// Any other ID.
    Other(u8),
}

impl CapabilityId {
    /// The ID for a raw capability ID byte.
    pub const fn from_raw(id: u8) -> CapabilityId {
        match id {
            0x01 => CapabilityId::PowerManagement,
            0x05 => CapabilityId::Msi,
            0x09 => CapabilityId::Vendor,
            0x10 => CapabilityId::Pcie,
            0x11 => CapabilityId::MsiX,
            other => CapabilityId::Other(other),
        }
    }

    /// The raw ID byte.
    pub const fn raw(self) -> u8 {
        match self {
            CapabilityId::PowerManagement => 0x01,
            CapabilityId::Msi => 0x05,
            CapabilityId::Vendor => 0x09,
            CapabilityId::Pcie => 0x10,
            CapabilityId::MsiX => 0x11,
            CapabilityId::Other(other) => other,
        }
    }
}

/// One entry of the standard capability list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// What it is.
    pub id: CapabilityId,
    /// Where its header (ID, next pointer) is, 0x40..=0xfc.
    pub offset: u8,
}

/// ACS capability and control register bits; defined once, beside the grouping rules that
/// read them.
pub use moat_iommu::group::AcsFlags;

/// The Access Control Services extended capability (ID 0x000d) and its two registers as
/// discovery found them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acs {
    /// ACS Capability register (+4): what the port supports.
    pub capability: AcsFlags,
    /// ACS Control register (+6): what is enabled. QEMU resets it to 0.
    pub control: AcsFlags,
    /// Offset of the extended capability header.
    pub offset: u16,
}

/// One entry of the PCI Express extended capability list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtendedCapability {
    /// 0x0001, Advanced Error Reporting.
    Aer {
        /// Offset of the header.
        offset: u16,
    },
    /// 0x000d, Access Control Services, with its registers.
    Acs(Acs),
    /// 0x000e, Alternative Routing-ID Interpretation.
    Ari {
        /// Offset of the header.
        offset: u16,
    },
    /// 0x0010, Single Root I/O Virtualization.
    SrIov {
        /// Offset of the header.
        offset: u16,
    },
    /// Any other ID.
    Other {
        /// The 16-bit ID.
        id: u16,
        /// Offset of the header.
        offset: u16,
    },
}

impl ExtendedCapability {
    /// The raw 16-bit capability ID.
    pub const fn id(&self) -> u16 {
        match self {
            ExtendedCapability::Aer { .. } => 0x0001,
            ExtendedCapability::Acs(_) => ACS_ID,
            ExtendedCapability::Ari { .. } => 0x000e,
            ExtendedCapability::SrIov { .. } => 0x0010,
            ExtendedCapability::Other { id, .. } => *id,
        }
    }

    /// Offset of the capability's header, 0x100..=0xffc.
    pub const fn offset(&self) -> u16 {
        match self {
            ExtendedCapability::Aer { offset }
            | ExtendedCapability::Ari { offset }
            | ExtendedCapability::SrIov { offset }
            | ExtendedCapability::Other { offset, .. } => *offset,
            ExtendedCapability::Acs(acs) => acs.offset,
        }
    }
}

/// Walks the standard capability list whose head pointer is the byte at `head`
/// (0x34 for type 0/1 headers, 0x14 for CardBus). Returns the entries read before any
/// problem, and the problem that ended the walk, if any.
pub(super) fn standard_capabilities(
    access: &impl ConfigAccess,
    bdf: Bdf,
    head: u16,
) -> (Vec<Capability>, Option<ProblemKind>) {
    let mut found = Vec::new();
    if !access.status(bdf).has_capability_list() {
        return (found, None);
    }
    // Bit i: the entry at 0x40 + 4 * i has been read.
    let mut visited: u64 = 0;
    let mut entries = 0;
    let mut pointer_at = head;
    // The bottom two bits of every pointer are reserved; the spec says to mask them.
    let mut pointer = u16::from(access.read8(bdf, head)) & !3;
    while pointer != 0 {
        if !(STANDARD_START..STANDARD_END).contains(&pointer) {
            let problem = ProblemKind::CapabilityPointerOutOfRange {
                at: pointer_at,
                pointer,
            };
            return (found, Some(problem));
        }
        let slot = (pointer - STANDARD_START) / 4;
        if visited & (1 << slot) != 0 || entries >= MAX_STANDARD {
            return (found, Some(ProblemKind::CapabilityLoop { at: pointer }));
        }
        visited |= 1 << slot;
        let header = access.read16(bdf, pointer);
        entries += 1;
        // ID 0 is the Null capability: no registers, nothing to list, but it links on.
        if header as u8 != NULL_ID {
            found.push(Capability {
                id: CapabilityId::from_raw(header as u8),
                // In range 0x40..0x100 (checked above), so it fits a byte.
                offset: pointer as u8,
            });
        }
        pointer_at = pointer + 1;
        pointer = (header >> 8) & !3;
    }
    (found, None)
}

/// Walks the extended capability list from 0x100. An all-zero or all-ones header at 0x100
/// means the function has none. Returns the entries read before any problem, and the problem
/// that ended the walk, if any.
pub(super) fn extended_capabilities(
    access: &impl ConfigAccess,
    bdf: Bdf,
) -> (Vec<ExtendedCapability>, Option<ProblemKind>) {
    let mut found = Vec::new();
    // Bit i of word i / 64: the entry at 0x100 + 4 * i has been read.
    let mut visited = [0u64; MAX_EXTENDED / 64];
    let mut entries = 0;
    let mut pointer = EXTENDED_START;
    let first = access.read32(bdf, pointer);
    if first == 0 || first == u32::MAX {
        return (found, None);
    }
    loop {
        let slot = usize::from((pointer - EXTENDED_START) / 4);
        let (word, bit) = (slot / 64, slot % 64);
        if visited[word] & (1 << bit) != 0 || entries >= MAX_EXTENDED {
            return (
                found,
                Some(ProblemKind::ExtendedCapabilityLoop { at: pointer }),
            );
        }
        visited[word] |= 1 << bit;
        let header = access.read32(bdf, pointer);
        entries += 1;
        // ID 0 is the Null extended capability: nothing to list, but it links on.
        if header as u16 != NULL_EXTENDED_ID {
            match decode_extended(access, bdf, pointer, header) {
                Ok(capability) => found.push(capability),
                Err(problem) => return (found, Some(problem)),
            }
        }
        // Bits 31:20, bottom two reserved and masked, so the result is at most 0xffc.
        let next = ((header >> 20) as u16) & !3;
        if next == 0 {
            return (found, None);
        }
        if !(EXTENDED_START..=EXTENDED_LAST).contains(&next) {
            let problem = ProblemKind::ExtendedCapabilityPointerOutOfRange { at: pointer, next };
            return (found, Some(problem));
        }
        pointer = next;
    }
}

/// One extended capability from its header at `offset`, or a problem if its registers
/// would lie past the end of configuration space.
fn decode_extended(
    access: &impl ConfigAccess,
    bdf: Bdf,
    offset: u16,
    header: u32,
) -> Result<ExtendedCapability, ProblemKind> {
    let capability = match header as u16 {
        0x0001 => ExtendedCapability::Aer { offset },
        ACS_ID => {
            // Capability at +4, control at +6: the next aligned dword, which must exist.
            if offset > EXTENDED_LAST - 4 {
                let problem = ProblemKind::ExtendedCapabilityTruncated {
                    at: offset,
                    id: ACS_ID,
                };
                return Err(problem);
            }
            let registers = access.read32(bdf, offset + 4);
            ExtendedCapability::Acs(Acs {
                capability: AcsFlags::from_bits_retain(registers as u16),
                control: AcsFlags::from_bits_retain((registers >> 16) as u16),
                offset,
            })
        }
        0x000e => ExtendedCapability::Ari { offset },
        0x0010 => ExtendedCapability::SrIov { offset },
        id => ExtendedCapability::Other { id, offset },
    };
    Ok(capability)
}
