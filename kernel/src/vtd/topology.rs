//! What remapping needs from PCI discovery: the requester IDs a device's DMA may carry (its own
//! and the aliases bridges above it substitute, as Linux's `pci_for_each_dma_alias` walks
//! them), and the live topology the DMAR's device scopes are resolved against.

use crate::pci::enumerate::Enumeration;
use alloc::vec::Vec;
use moat_iommu::Bdf;
use moat_iommu::dmar::PciTopology;
use moat_iommu::group;

/// Requester IDs `bdf`'s DMA may carry, own first, each once: the walk of
/// [`moat_iommu::group::dma_aliases`] (a PCIe-to-PCI bridge above it substitutes its
/// secondary bus with devfn 0, a conventional PCI bridge its own BDF; PCIe ports pass IDs
/// through). Only its own ID if `bdf` is unknown or the topology is inconsistent: then aliased
/// DMA finds no context entry and is blocked.
pub fn dma_sources(enumeration: &Enumeration, bdf: Bdf) -> Vec<u16> {
    crate::pci::groups::topology(enumeration)
        .and_then(|topology| group::dma_aliases(&topology, bdf))
        .map(|aliases| aliases.iter().map(|alias| alias.requester_id()).collect())
        .unwrap_or_else(|_| alloc::vec![bdf.requester_id()])
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
