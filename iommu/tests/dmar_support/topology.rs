//! An in-memory PCI topology for the scope-resolution tests.

use std::collections::BTreeMap;

use moat_iommu::Bdf;
use moat_iommu::dmar::PciTopology;

/// Present functions; bridges carry (secondary, subordinate).
#[derive(Debug, Default, Clone)]
pub(crate) struct FakeTopology {
    functions: BTreeMap<Bdf, Option<(u8, u8)>>,
}

/// `00:bus:device.function` in segment 0.
pub(crate) fn bdf(bus: u8, device: u8, function: u8) -> Bdf {
    Bdf::new(0, bus, device, function).expect("test BDF in range")
}

impl FakeTopology {
    pub(crate) fn new() -> FakeTopology {
        FakeTopology::default()
    }

    /// An endpoint function.
    pub(crate) fn device(mut self, at: Bdf) -> FakeTopology {
        self.functions.insert(at, None);
        self
    }

    /// A PCI-PCI bridge spanning `secondary..=subordinate`.
    pub(crate) fn bridge(mut self, at: Bdf, secondary: u8, subordinate: u8) -> FakeTopology {
        self.functions.insert(at, Some((secondary, subordinate)));
        self
    }
}

impl PciTopology for FakeTopology {
    fn exists(&self, bdf: Bdf) -> bool {
        self.functions.contains_key(&bdf)
    }

    fn secondary_bus(&self, bdf: Bdf) -> Option<u8> {
        self.functions.get(&bdf).copied().flatten().map(|(s, _)| s)
    }

    fn subordinate_bus(&self, bdf: Bdf) -> Option<u8> {
        self.functions.get(&bdf).copied().flatten().map(|(_, s)| s)
    }
}
