//! The remapping structures a DMAR table holds (VT-d 8.3 to 8.8), as validated owned values.
//! Their one-line `Display` forms live in `summary.rs`.

use alloc::vec::Vec;
use bitflags::bitflags;

use super::scope::DeviceScope;

/// Size of the pages the VT-d register set and RMRR bounds are measured in.
pub const PAGE_SIZE: u64 = 4096;

bitflags! {
    /// DRHD flags (VT-d 8.3). Unnamed bits are kept.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct DrhdFlags: u8 {
        /// The unit covers every PCI device of its segment not claimed by another DRHD's
        /// scopes. Its own scopes then list only I/O APICs and HPETs.
        const INCLUDE_PCI_ALL = 1 << 0;
        const _ = !0;
    }
}

bitflags! {
    /// ATSR flags (VT-d 8.5). Unnamed bits are kept.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct AtsrFlags: u8 {
        /// Every root port of the segment supports ATS; the scope list is then empty.
        const ALL_PORTS = 1 << 0;
        const _ = !0;
    }
}

bitflags! {
    /// SATC flags (VT-d 8.8). Unnamed bits are kept.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct SatcFlags: u8 {
        /// The listed devices only work correctly with ATS enabled.
        const ATC_REQUIRED = 1 << 0;
        const _ = !0;
    }
}

/// A DMA Remapping Hardware Unit Definition: one VT-d unit (type 0, VT-d 8.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drhd {
    pub(super) flags: DrhdFlags,
    pub(super) size: u8,
    pub(super) segment: u16,
    pub(super) register_base: u64,
    pub(super) scopes: Vec<DeviceScope>,
}

impl Drhd {
    /// The unit's flags.
    pub const fn flags(&self) -> DrhdFlags {
        self.flags
    }

    /// Whether the unit covers every device of its segment no other unit lists.
    pub const fn include_pci_all(&self) -> bool {
        self.flags.contains(DrhdFlags::INCLUDE_PCI_ALL)
    }

    /// The PCI segment (domain) the unit serves.
    pub const fn segment(&self) -> u16 {
        self.segment
    }

    /// Physical address of the unit's register set; 4 KiB aligned (checked when parsed).
    pub const fn register_base(&self) -> u64 {
        self.register_base
    }

    /// The raw Size byte (the byte after the flags, reserved before VT-d 3.x).
    pub const fn size_field(&self) -> u8 {
        self.size
    }

    /// Bytes of the register set: 2^N 4 KiB pages with N in bits 3:0 of the Size byte, so
    /// 4 KiB when firmware left the byte zero. Register offsets the unit's capabilities
    /// report (IOTLB, fault recording) must lie within this.
    pub const fn register_set_len(&self) -> u64 {
        PAGE_SIZE << (self.size & 0x0f)
    }

    /// The device scopes: I/O APICs, HPETs, ACPI devices and, unless INCLUDE_PCI_ALL is set,
    /// the PCI devices the unit translates for.
    pub fn scopes(&self) -> &[DeviceScope] {
        &self.scopes
    }
}

/// A Reserved Memory Region: memory that the listed devices may DMA to from firmware
/// onwards (USB legacy emulation, graphics stolen memory), which must stay identity-mapped for
/// them (type 1, VT-d 8.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rmrr {
    pub(super) segment: u16,
    pub(super) base: u64,
    pub(super) limit: u64,
    pub(super) scopes: Vec<DeviceScope>,
}

impl Rmrr {
    /// The PCI segment of the listed devices.
    pub const fn segment(&self) -> u16 {
        self.segment
    }

    /// First byte of the region; 4 KiB aligned (checked when parsed).
    pub const fn base(&self) -> u64 {
        self.base
    }

    /// Last byte of the region (inclusive); `limit + 1` is 4 KiB aligned.
    pub const fn limit(&self) -> u64 {
        self.limit
    }

    /// One past the last byte. Parsing rejects a limit of `u64::MAX`, so this cannot wrap.
    pub const fn end(&self) -> u64 {
        self.limit.wrapping_add(1)
    }

    /// Length in bytes, a whole number of 4 KiB pages.
    pub const fn len(&self) -> u64 {
        self.end() - self.base
    }

    /// Always false: a parsed region holds at least one page. Present for API symmetry.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The devices that use the region.
    pub fn scopes(&self) -> &[DeviceScope] {
        &self.scopes
    }
}

/// A Root Port ATS Capability report: which root ports support Address Translation
/// Services (type 2, VT-d 8.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atsr {
    pub(super) flags: AtsrFlags,
    pub(super) segment: u16,
    pub(super) scopes: Vec<DeviceScope>,
}

impl Atsr {
    /// The structure's flags.
    pub const fn flags(&self) -> AtsrFlags {
        self.flags
    }

    /// Whether every root port of the segment supports ATS.
    pub const fn all_ports(&self) -> bool {
        self.flags.contains(AtsrFlags::ALL_PORTS)
    }

    /// The PCI segment.
    pub const fn segment(&self) -> u16 {
        self.segment
    }

    /// The root ports (as sub-hierarchies) that support ATS, when not ALL_PORTS.
    pub fn scopes(&self) -> &[DeviceScope] {
        &self.scopes
    }
}

/// A Remapping Hardware Static Affinity: the NUMA proximity domain of a unit (type 3,
/// VT-d 8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rhsa {
    pub(super) register_base: u64,
    pub(super) proximity_domain: u32,
}

impl Rhsa {
    /// Register base of the DRHD this applies to. Not checked against the DRHD list: real
    /// tables carry RHSAs for units they do not declare.
    pub const fn register_base(&self) -> u64 {
        self.register_base
    }

    /// The proximity domain (as in SRAT).
    pub const fn proximity_domain(&self) -> u32 {
        self.proximity_domain
    }
}

/// An ACPI Name-space Device Declaration: names the ACPI device behind a type-5 scope with
/// the same device number (type 4, VT-d 8.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Andd {
    pub(super) device_number: u8,
    pub(super) name: Vec<u8>,
}

impl Andd {
    /// The ACPI device number that type-5 scopes use as their enumeration ID.
    pub const fn device_number(&self) -> u8 {
        self.device_number
    }

    /// The object name's bytes up to (not including) the first NUL, e.g. `\_SB.PCI0.I2C0`.
    pub fn name_bytes(&self) -> &[u8] {
        &self.name
    }

    /// The object name, if it is ASCII as the spec requires.
    pub fn name(&self) -> Option<&str> {
        if self.name.is_ascii() {
            core::str::from_utf8(&self.name).ok()
        } else {
            None
        }
    }
}

/// A SoC Integrated Address Translation Cache report: integrated devices with an ATC
/// (type 5, VT-d 8.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Satc {
    pub(super) flags: SatcFlags,
    pub(super) segment: u16,
    pub(super) scopes: Vec<DeviceScope>,
}

impl Satc {
    /// The structure's flags.
    pub const fn flags(&self) -> SatcFlags {
        self.flags
    }

    /// Whether the listed devices need ATS enabled to work.
    pub const fn atc_required(&self) -> bool {
        self.flags.contains(SatcFlags::ATC_REQUIRED)
    }

    /// The PCI segment.
    pub const fn segment(&self) -> u16 {
        self.segment
    }

    /// The devices with an ATC.
    pub fn scopes(&self) -> &[DeviceScope] {
        &self.scopes
    }
}

/// A structure of a type this parser does not interpret (type 6 and above: SIDP and later
/// additions). It is skipped, not an error; its length was still checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownStructure {
    pub(super) kind: u16,
    pub(super) length: u16,
    pub(super) offset: usize,
}

impl UnknownStructure {
    /// The structure's type field.
    pub const fn kind(&self) -> u16 {
        self.kind
    }

    /// The structure's length field (at least 4).
    pub const fn length(&self) -> u16 {
        self.length
    }

    /// Where the structure starts in the table.
    pub const fn offset(&self) -> usize {
        self.offset
    }
}

/// One remapping structure, in table order (see [`Structures`](super::Structures)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Structure {
    /// Type 0.
    Drhd(Drhd),
    /// Type 1.
    Rmrr(Rmrr),
    /// Type 2.
    Atsr(Atsr),
    /// Type 3.
    Rhsa(Rhsa),
    /// Type 4.
    Andd(Andd),
    /// Type 5.
    Satc(Satc),
    /// Any other type, skipped.
    Unknown(UnknownStructure),
}
