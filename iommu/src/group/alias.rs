//! The requester IDs a function's DMA may carry, walked as Linux's `pci_for_each_dma_alias`
//! walks them: the function itself, its quirk aliases, then each bridge on the way to the root
//! bus that replaces the requester ID (a PCIe-to-PCI bridge with its secondary bus and devfn
//! 00.0, a conventional PCI bridge with its own address, a PCI-to-PCIe bridge with its own
//! address); PCI Express ports pass IDs through.

use alloc::vec::Vec;

use super::error::TopologyError;
use super::topology::{Bus, PcieType, Topology};
use crate::Bdf;

/// Conventional bridges that are really PCIe-to-PCI bridges without saying so (Linux's
/// `quirk_use_pcie_bridge_dma_alias`): ASMedia ASM1083/1085, Tundra 8113, ITE 8892 and 8893,
/// Intel 82801 (QEMU's i82801b11-bridge).
const PCIE_BRIDGE_ALIAS_IDS: [(u16, u16); 5] = [
    (0x1b21, 0x1080),
    (0x10e3, 0x8113),
    (0x1283, 0x8892),
    (0x1283, 0x8893),
    (0x8086, 0x244e),
];

/// Calls `visit(function, requester ID)` for each DMA alias of the function at index
/// `device`, in Linux's order, and stops at the first `Some`, which it returns. `function`
/// is the index of the device the alias belongs to (the device itself or a bridge).
///
/// One addition to Linux: behind a bridge that Linux's quirk treats as PCIe-to-PCI, QEMU 7.2
/// still tags DMA with the bridge's own address, so the bridge is visited twice: with
/// Linux's alias (secondary bus, 00.0), then with its own address. Both visits name the same
/// bridge, so grouping is unchanged; the group gets a context entry for each.
pub(super) fn for_each_dma_alias<T>(
    topology: &Topology,
    device: usize,
    mut visit: impl FnMut(usize, Bdf) -> Option<T>,
) -> Option<T> {
    let function = topology.at(device);
    let own = function.bdf;
    if let Some(stop) = visit(device, own) {
        return Some(stop);
    }
    for devfn in function.dma_alias_devfns.iter() {
        let alias = Bdf::from_devfn(own.segment(), own.bus(), devfn);
        if let Some(stop) = visit(device, alias) {
            return Some(stop);
        }
    }
    let mut bus = Bus::of(own);
    // Each step moves to a lower bus number (`Topology::new` checked), so at most 256 steps
    // reach a root bus; the bound is a second guard.
    for _ in 0..=u8::MAX as usize {
        if topology.is_root(bus) {
            return None;
        }
        let index = topology.parent_bridge(bus)?;
        let bridge = topology.at(index);
        let secondary_alias = Bdf::from_devfn(bus.segment(), bus.number(), 0);
        let (first, second) = match bridge.pcie {
            Some(PcieType::PcieToPciBridge) => (Some(secondary_alias), None),
            Some(PcieType::PciToPcieBridge) => (Some(bridge.bdf), None),
            // Ports pass requester IDs through; so do the other types.
            Some(_) => (None, None),
            None if uses_pcie_bridge_alias(topology, index) => {
                (Some(secondary_alias), Some(bridge.bdf))
            }
            None => (Some(bridge.bdf), None),
        };
        for alias in [first, second].into_iter().flatten() {
            if let Some(stop) = visit(index, alias) {
                return Some(stop);
            }
        }
        bus = Bus::of(bridge.bdf);
    }
    None
}

/// Linux's `PCI_DEV_FLAG_PCIE_BRIDGE_ALIAS`: a conventional bridge from
/// [`PCIE_BRIDGE_ALIAS_IDS`], not on a root bus, behind a PCI Express bridge that is not
/// itself a PCIe-to-PCI bridge.
fn uses_pcie_bridge_alias(topology: &Topology, index: usize) -> bool {
    let bridge = topology.at(index);
    let bus = Bus::of(bridge.bdf);
    if bridge.pcie.is_some()
        || topology.is_root(bus)
        || !PCIE_BRIDGE_ALIAS_IDS.contains(&(bridge.vendor, bridge.device))
    {
        return false;
    }
    topology
        .parent_bridge(bus)
        .and_then(|parent| topology.at(parent).pcie)
        .is_some_and(|kind| kind != PcieType::PcieToPciBridge)
}

/// The requester IDs the DMA of the function at `bdf` may carry, its own first, each once,
/// each written as the address it names. These are the context entries the function needs.
pub fn dma_aliases(topology: &Topology, bdf: Bdf) -> Result<Vec<Bdf>, TopologyError> {
    let device = topology
        .index_of(bdf)
        .ok_or(TopologyError::UnknownFunction(bdf))?;
    let mut aliases = Vec::new();
    for_each_dma_alias::<()>(topology, device, |_, alias| {
        if !aliases.contains(&alias) {
            aliases.push(alias);
        }
        None
    });
    Ok(aliases)
}
