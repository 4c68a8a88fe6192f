//! What discovery records about one PCI function: identity, kind, bus numbers, BARs and
//! capabilities.

use alloc::vec::Vec;
use moat_iommu::Bdf;
use pci_types::HeaderType;

use super::bar::Bar;
use super::capabilities::{Acs, Capability, CapabilityId, ExtendedCapability};

/// The device/port type of a PCI Express function: bits 7:4 of the PCI Express Capabilities
/// register (PCIe 6.0 §7.5.3.2). One definition, shared with the group algorithm.
pub use moat_iommu::group::PcieType as PortType;

/// The PCI Express capability of a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcieInfo {
    /// Device/port type.
    pub port_type: PortType,
    /// Offset of the PCI Express capability (ID 0x10).
    pub cap_offset: u8,
}

/// What a function is: its PCI Express port type if it has a PCI Express capability,
/// otherwise its header layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// Conventional PCI function with a type 0 header.
    PciEndpoint,
    /// Conventional PCI-PCI bridge (type 1 header).
    PciBridge,
    /// CardBus bridge (type 2 header).
    CardbusBridge,
    /// Conventional function with a header type other than 0, 1 or 2 (bits 6:0).
    UnknownHeader(u8),
    /// PCI Express function of this type.
    Pcie(PortType),
}

/// One PCI function found by [`enumerate`](super::enumerate()).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDevice {
    /// Where it is.
    pub bdf: Bdf,
    /// Vendor ID (offset 0x00).
    pub vendor: u16,
    /// Device ID (offset 0x02).
    pub device: u16,
    /// 24-bit class code as in Linux's sysfs `class` file: base class << 16 | subclass << 8 |
    /// programming interface.
    pub class: u32,
    /// Revision ID (offset 0x08).
    pub revision: u8,
    /// Header layout (bits 6:0 of offset 0x0e).
    pub header_type: HeaderType,
    /// Part of a multi-function device: function 0's header type has bit 7 set. Functions
    /// 1..=7 are only looked for when it does.
    pub multifunction: bool,
    /// Endpoint, bridge or PCI Express port type.
    pub kind: DeviceKind,
    /// First bus behind a PCI-PCI bridge (type 1 header), as the firmware programmed it.
    pub secondary_bus: Option<u8>,
    /// Last bus behind a PCI-PCI bridge, as the firmware programmed it.
    pub subordinate_bus: Option<u8>,
    /// Implemented BARs, by slot.
    pub bars: Vec<Bar>,
    /// Standard capabilities in list order.
    pub capabilities: Vec<Capability>,
    /// PCI Express extended capabilities in list order (read only through ECAM).
    pub extended_capabilities: Vec<ExtendedCapability>,
    /// The PCI Express capability, if the function has one.
    pub pcie: Option<PcieInfo>,
}

impl PciDevice {
    /// The first standard capability with this ID.
    pub fn capability(&self, id: CapabilityId) -> Option<&Capability> {
        self.capabilities
            .iter()
            .find(|capability| capability.id == id)
    }

    /// The first extended capability with this 16-bit ID.
    pub fn extended_capability(&self, id: u16) -> Option<&ExtendedCapability> {
        self.extended_capabilities
            .iter()
            .find(|capability| capability.id() == id)
    }

    /// The ACS capability and its registers, if the function has one.
    pub fn acs(&self) -> Option<&Acs> {
        self.extended_capabilities
            .iter()
            .find_map(|capability| match capability {
                ExtendedCapability::Acs(acs) => Some(acs),
                _ => None,
            })
    }

    /// A PCI-PCI bridge (type 1 header): conventional bridge, root or switch port, or
    /// PCI Express to PCI bridge.
    pub fn is_bridge(&self) -> bool {
        self.header_type == HeaderType::PciPciBridge
    }

    /// The 24-bit class code's base class (e.g. 0x06 for bridges).
    pub const fn base_class(&self) -> u8 {
        (self.class >> 16) as u8
    }
}
