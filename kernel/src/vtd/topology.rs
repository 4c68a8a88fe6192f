//! What remapping needs from PCI discovery: the requester IDs a device's DMA may carry (its own
//! and the aliases bridges above it substitute, as Linux's `pci_for_each_dma_alias` walks
//! them), and the live topology the DMAR's device scopes are resolved against.

use crate::pci::device::{PciDevice, PortType};
use crate::pci::enumerate::Enumeration;
use alloc::vec::Vec;
use moat_iommu::Bdf;
use moat_iommu::dmar::PciTopology;

/// The bridge whose secondary bus is `bus` in `segment`, if any (none: a root bus).
fn parent_bridge(enumeration: &Enumeration, segment: u16, bus: u8) -> Option<&PciDevice> {
    enumeration
        .devices
        .iter()
        .find(|d| d.bdf.segment() == segment && d.is_bridge() && d.secondary_bus == Some(bus))
}

/// Requester IDs `bdf`'s DMA may carry, own first. A PCIe-to-PCI bridge above it substitutes
/// (its secondary bus, devfn 0); a conventional PCI bridge its own BDF; PCIe ports pass IDs
/// through unchanged.
pub fn dma_sources(enumeration: &Enumeration, bdf: Bdf) -> Vec<u16> {
    let mut sources = alloc::vec![bdf.requester_id()];
    let mut bus = bdf.bus();
    // Each step moves to a lower bus level; the bound guards against firmware bus loops.
    for _ in 0..=255 {
        let Some(bridge) = parent_bridge(enumeration, bdf.segment(), bus) else {
            break;
        };
        let alias = match bridge.pcie.map(|p| p.port_type) {
            Some(PortType::RootPort | PortType::UpstreamPort | PortType::DownstreamPort) => None,
            Some(PortType::PcieToPciBridge) => Some(u16::from(bus) << 8),
            Some(PortType::PciToPcieBridge) => Some(bridge.bdf.requester_id()),
            Some(_) => None,
            None => Some(bridge.bdf.requester_id()),
        };
        if let Some(alias) = alias.filter(|alias| !sources.contains(alias)) {
            sources.push(alias);
        }
        if bridge.bdf.bus() >= bus {
            break;
        }
        bus = bridge.bdf.bus();
    }
    sources
}

/// The enumerated devices as the DMAR scope walk sees them.
#[derive(Clone, Copy, Debug)]
pub struct EnumeratedTopology<'a>(pub &'a Enumeration);

impl PciTopology for EnumeratedTopology<'_> {
    fn exists(&self, bdf: Bdf) -> bool {
        self.0.device(bdf).is_some()
    }

    fn secondary_bus(&self, bdf: Bdf) -> Option<u8> {
        self.0.device(bdf).and_then(|d| d.secondary_bus)
    }

    fn subordinate_bus(&self, bdf: Bdf) -> Option<u8> {
        self.0.device(bdf).and_then(|d| d.subordinate_bus)
    }
}
