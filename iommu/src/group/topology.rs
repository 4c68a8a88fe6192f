//! The snapshot grouping reads: per PCI function what Linux's `pci_device_group` looks at
//! (identity, multifunction, PCI Express type, ACS registers, bridge bus numbers), plus the
//! root buses. It is checked once, on construction, so the walks over it always end at a
//! root bus.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use super::acs::AcsFlags;
use super::error::TopologyError;
use crate::Bdf;

/// One PCI bus: its segment and bus number.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bus {
    // Field order is the sort order, as for `Bdf`.
    segment: u16,
    number: u8,
}

impl Bus {
    /// Bus `number` of `segment`. Every pair names a possible bus.
    pub const fn new(segment: u16, number: u8) -> Bus {
        Bus { segment, number }
    }

    /// The bus `bdf` sits on.
    pub const fn of(bdf: Bdf) -> Bus {
        Bus::new(bdf.segment(), bdf.bus())
    }

    /// The PCI segment (domain).
    pub const fn segment(self) -> u16 {
        self.segment
    }

    /// The bus number.
    pub const fn number(self) -> u8 {
        self.number
    }
}

impl fmt::Display for Bus {
    /// Linux's form: `0000:00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:02x}", self.segment, self.number)
    }
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bus({self})")
    }
}

/// A PCI Express function's device/port type: bits 7:4 of its PCI Express Capabilities
/// register (PCIe 6.0 §7.5.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PcieType {
    /// 0: endpoint.
    Endpoint,
    /// 1: legacy endpoint.
    LegacyEndpoint,
    /// 4: root port.
    RootPort,
    /// 5: switch upstream port.
    UpstreamPort,
    /// 6: switch downstream port.
    DownstreamPort,
    /// 7: PCI Express to PCI/PCI-X bridge (QEMU's pcie-pci-bridge).
    PcieToPciBridge,
    /// 8: PCI/PCI-X to PCI Express bridge.
    PciToPcieBridge,
    /// 9: root complex integrated endpoint (what QEMU makes of a PCIe endpoint on a root bus).
    RootComplexIntegratedEndpoint,
    /// 10: root complex event collector.
    RootComplexEventCollector,
    /// A reserved value.
    Reserved(u8),
}

impl PcieType {
    /// The type for the 4-bit field value `raw` (higher bits ignored).
    pub const fn from_raw(raw: u8) -> PcieType {
        match raw & 0xf {
            0 => PcieType::Endpoint,
            1 => PcieType::LegacyEndpoint,
            4 => PcieType::RootPort,
            5 => PcieType::UpstreamPort,
            6 => PcieType::DownstreamPort,
            7 => PcieType::PcieToPciBridge,
            8 => PcieType::PciToPcieBridge,
            9 => PcieType::RootComplexIntegratedEndpoint,
            10 => PcieType::RootComplexEventCollector,
            other => PcieType::Reserved(other),
        }
    }

    /// The 4-bit field value.
    pub const fn raw(self) -> u8 {
        match self {
            PcieType::Endpoint => 0,
            PcieType::LegacyEndpoint => 1,
            PcieType::RootPort => 4,
            PcieType::UpstreamPort => 5,
            PcieType::DownstreamPort => 6,
            PcieType::PcieToPciBridge => 7,
            PcieType::PciToPcieBridge => 8,
            PcieType::RootComplexIntegratedEndpoint => 9,
            PcieType::RootComplexEventCollector => 10,
            PcieType::Reserved(other) => other,
        }
    }
}

/// A function's ACS extended capability (ID 0x000d) as read from configuration space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcsRegisters {
    /// Offset of the capability header (0x100..=0xff8); control is at `position + 6`.
    pub position: u16,
    /// ACS Capability register (+4): what the function implements.
    pub capability: AcsFlags,
    /// ACS Control register (+6): what is enabled.
    pub control: AcsFlags,
}

/// The bus numbers a PCI-PCI bridge forwards, as the firmware programmed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BridgeBuses {
    /// The bus directly behind the bridge.
    pub secondary: u8,
    /// The last bus behind it.
    pub subordinate: u8,
}

/// A set of devfn bytes (device << 3 | function), one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DevfnSet([u64; 4]);

impl DevfnSet {
    /// The empty set.
    pub const fn new() -> DevfnSet {
        DevfnSet([0; 4])
    }

    /// Adds `devfn`; returns whether it was absent.
    pub fn insert(&mut self, devfn: u8) -> bool {
        let (word, bit) = (usize::from(devfn / 64), devfn % 64);
        let absent = self.0[word] & (1 << bit) == 0;
        self.0[word] |= 1 << bit;
        absent
    }

    /// Whether `devfn` is in the set.
    pub fn contains(&self, devfn: u8) -> bool {
        self.0[usize::from(devfn / 64)] & (1 << (devfn % 64)) != 0
    }

    /// The members, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0..=u8::MAX).filter(|devfn| self.contains(*devfn))
    }
}

/// What grouping needs to know about one PCI function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Where it is.
    pub bdf: Bdf,
    /// Vendor ID.
    pub vendor: u16,
    /// Device ID.
    pub device: u16,
    /// Bit 7 of the header type register. Functions 1..=7 count as multifunction even
    /// without it, as Linux's `pci_scan_slot` decides; see [`Function::is_multifunction`].
    pub multifunction_bit: bool,
    /// The PCI Express device/port type, if the function has a PCI Express capability.
    pub pcie: Option<PcieType>,
    /// The ACS extended capability, if any.
    pub acs: Option<AcsRegisters>,
    /// The buses behind it, if it is a PCI-PCI bridge the topology was followed through.
    pub bridge: Option<BridgeBuses>,
    /// Other devfns on its own bus its DMA may carry (Linux's `dma_alias_mask`, set only by
    /// device quirks; empty for every device QEMU emulates).
    pub dma_alias_devfns: DevfnSet,
}

impl Function {
    /// A conventional single-function endpoint without ACS; set the other fields to describe
    /// anything else.
    pub const fn new(bdf: Bdf, vendor: u16, device: u16) -> Function {
        Function {
            bdf,
            vendor,
            device,
            multifunction_bit: false,
            pcie: None,
            acs: None,
            bridge: None,
            dma_alias_devfns: DevfnSet::new(),
        }
    }

    /// Linux's `multifunction`: the header bit, or any function number above 0.
    pub const fn is_multifunction(&self) -> bool {
        self.multifunction_bit || self.bdf.function() > 0
    }
}

/// A checked snapshot of the PCI functions and root buses of a machine.
///
/// Built by [`Topology::new`], which guarantees that every function's bus is a root bus or
/// the secondary bus of exactly one bridge on a lower-numbered bus: so every walk towards the
/// root ends, and every function is reached from a root bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Sorted by address.
    functions: Vec<Function>,
    /// In the order they were found.
    root_buses: Vec<Bus>,
    /// Secondary bus -> index of the bridge in front of it.
    parents: BTreeMap<Bus, usize>,
    /// Indices of `functions` in Linux's registration order.
    order: Vec<usize>,
}

impl Topology {
    /// Checks and keeps `functions` (any order) and `root_buses` (in the order they were
    /// found: that order numbers the groups).
    pub fn new(mut functions: Vec<Function>, root_buses: Vec<Bus>) -> Result<Self, TopologyError> {
        functions.sort_by_key(|function| function.bdf);
        if let Some(pair) = functions.windows(2).find(|pair| pair[0].bdf == pair[1].bdf) {
            return Err(TopologyError::DuplicateFunction(pair[0].bdf));
        }
        for (index, bus) in root_buses.iter().enumerate() {
            if root_buses[..index].contains(bus) {
                return Err(TopologyError::DuplicateRootBus(*bus));
            }
        }
        let mut parents: BTreeMap<Bus, usize> = BTreeMap::new();
        for (index, function) in functions.iter().enumerate() {
            let Some(buses) = function.bridge else {
                continue;
            };
            let bridge = function.bdf;
            if buses.secondary <= bridge.bus() {
                let secondary = buses.secondary;
                return Err(TopologyError::BridgeNotAbove { bridge, secondary });
            }
            let bus = Bus::new(bridge.segment(), buses.secondary);
            if root_buses.contains(&bus) {
                return Err(TopologyError::BridgeClaimsRootBus { bridge });
            }
            if let Some(&first) = parents.get(&bus) {
                let first = functions[first].bdf;
                let second = bridge;
                return Err(TopologyError::SecondaryBusClaimedTwice { bus, first, second });
            }
            parents.insert(bus, index);
        }
        for function in &functions {
            let bus = Bus::of(function.bdf);
            if !root_buses.contains(&bus) && !parents.contains_key(&bus) {
                let function = function.bdf;
                return Err(TopologyError::NoParentBridge { function });
            }
        }
        let mut topology = Topology {
            functions,
            root_buses,
            parents,
            order: Vec::new(),
        };
        topology.order = topology.registration_order();
        Ok(topology)
    }

    /// Every function, sorted by address.
    pub fn functions(&self) -> &[Function] {
        &self.functions
    }

    /// The function at `bdf`.
    pub fn function(&self, bdf: Bdf) -> Option<&Function> {
        self.index_of(bdf).map(|index| &self.functions[index])
    }

    /// The root buses, in the order they were found.
    pub fn root_buses(&self) -> &[Bus] {
        &self.root_buses
    }

    /// Every function in Linux's registration order: per root bus, all functions of a bus in
    /// devfn order, then each bridge's secondary bus in turn, depth first.
    pub fn in_registration_order(&self) -> impl Iterator<Item = &Function> + '_ {
        self.order.iter().map(|&index| &self.functions[index])
    }

    /// Records `control` as the ACS Control register of `bdf` (after the kernel wrote and
    /// re-read it).
    pub fn set_acs_control(&mut self, bdf: Bdf, control: u16) -> Result<(), TopologyError> {
        let index = self
            .index_of(bdf)
            .ok_or(TopologyError::UnknownFunction(bdf))?;
        let acs = self.functions[index]
            .acs
            .as_mut()
            .ok_or(TopologyError::NoAcs(bdf))?;
        acs.control = AcsFlags::from_bits_retain(control);
        Ok(())
    }

    /// The index of `bdf` in [`Topology::functions`].
    pub(super) fn index_of(&self, bdf: Bdf) -> Option<usize> {
        self.functions
            .binary_search_by_key(&bdf, |function| function.bdf)
            .ok()
    }

    /// The function at `index` (an index this topology handed out).
    pub(super) fn at(&self, index: usize) -> &Function {
        &self.functions[index]
    }

    /// Whether `bus` is a root bus.
    pub(super) fn is_root(&self, bus: Bus) -> bool {
        self.root_buses.contains(&bus)
    }

    /// The bridge in front of `bus` (Linux's `bus->self`); `None` for a root bus.
    pub(super) fn parent_bridge(&self, bus: Bus) -> Option<usize> {
        self.parents.get(&bus).copied()
    }

    /// Indices of the functions on `bus`, in devfn order.
    pub(super) fn on_bus(&self, bus: Bus) -> Range<usize> {
        let start = self
            .functions
            .partition_point(|function| Bus::of(function.bdf) < bus);
        let end = self
            .functions
            .partition_point(|function| Bus::of(function.bdf) <= bus);
        start..end
    }

    /// Indices in registration order.
    pub(super) fn order(&self) -> &[usize] {
        &self.order
    }

    /// Depth-first from each root bus (see [`Topology::in_registration_order`]).
    fn registration_order(&self) -> Vec<usize> {
        let mut order = Vec::with_capacity(self.functions.len());
        for &root in &self.root_buses {
            let mut pending = Vec::from([root]);
            // `new` checked that each bus has at most one parent and every parent sits on a
            // lower bus, so each bus is pushed at most once: this ends.
            while let Some(bus) = pending.pop() {
                let functions = self.on_bus(bus);
                order.extend(functions.clone());
                let children = functions.filter_map(|index| {
                    let secondary = self.functions[index].bridge?.secondary;
                    Some(Bus::new(bus.segment, secondary))
                });
                // Pushed in reverse so that the first bridge's bus is scanned first.
                let first_child = pending.len();
                pending.extend(children);
                pending[first_child..].reverse();
            }
        }
        debug_assert_eq!(order.len(), self.functions.len());
        order
    }
}
