//! Walks one PCI segment from its first bus through every PCI-PCI bridge, using the bus
//! numbers the firmware programmed (SeaBIOS and OVMF assign them; Moat never renumbers).
//!
//! Everything read from a device is treated as untrusted: each bus is scanned at most once,
//! a bridge is followed only to a bus above its own and inside what its parent forwards, and
//! every list walk is bounded. What is wrong becomes a [`Problem`] and the walk goes on.

use alloc::vec::Vec;
use core::ops::RangeInclusive;

use moat_iommu::Bdf;
use moat_iommu::group::Bus;
use pci_types::HeaderType;

use super::access::{ConfigAccess, ConfigAccessExt, ConfigSpaceSize};
use super::bar::read_bars;
use super::capabilities::{CapabilityId, extended_capabilities, standard_capabilities};
use super::device::{DeviceKind, PciDevice, PcieInfo, PortType};
use super::problem::{Problem, ProblemKind};

/// Header type register (offset 0x0e) bit 7: the device has functions 1..=7.
const MULTIFUNCTION: u8 = 0x80;
/// Header type register bits 6:0: the header layout.
const LAYOUT_MASK: u8 = 0x7f;
/// Offset of the header type register.
const HEADER_TYPE_OFFSET: u16 = 0x0e;
/// Offset of the bus number register of a type 1 header (primary, secondary, subordinate).
const BUS_NUMBERS_OFFSET: u16 = 0x18;
/// Capability pointer of type 0 and type 1 headers.
const CAPABILITY_POINTER: u16 = 0x34;
/// Capability pointer of a CardBus (type 2) header.
const CARDBUS_CAPABILITY_POINTER: u16 = 0x14;
/// Devices on a bus.
const DEVICES_PER_BUS: u8 = 32;
/// Functions in a device.
const FUNCTIONS_PER_DEVICE: u8 = 8;

/// Everything found in one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enumeration {
    /// Every function that answered, sorted by [`Bdf`].
    pub devices: Vec<PciDevice>,
    /// Everything found wrong, sorted by [`Bdf`] (in discovery order for one function).
    pub problems: Vec<Problem>,
    /// The bus each walk started from (one per segment range), in the order walked: the
    /// root buses, which IOMMU grouping numbers groups by.
    pub root_buses: Vec<Bus>,
}

impl Enumeration {
    /// The function at `bdf`, if one was found.
    pub fn device(&self, bdf: Bdf) -> Option<&PciDevice> {
        self.devices
            .binary_search_by_key(&bdf, |device| device.bdf)
            .ok()
            .map(|index| &self.devices[index])
    }

    /// The problems recorded for `bdf`.
    pub fn problems_for(&self, bdf: Bdf) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(move |problem| problem.bdf == bdf)
    }
}

/// Finds every function of `segment` reachable from the first bus of `bus_range` (the
/// segment's bus range, from the MCFG entry), following PCI-PCI bridges and PCI Express
/// ports through their secondary and subordinate bus numbers.
///
/// `size` says whether `access` reaches extended configuration space (ECAM) or only the
/// first 256 bytes (port I/O); extended capabilities are read only in the first case, and
/// only for functions with a PCI Express capability, as Linux does (conventional functions
/// may alias offset 0x100 onto their header).
///
/// BARs are sized on the way, so this writes to configuration space: it briefly turns off
/// each function's memory and I/O decoding. Run it before drivers use the devices.
pub fn enumerate(
    access: &impl ConfigAccess,
    segment: u16,
    bus_range: RangeInclusive<u8>,
    size: ConfigSpaceSize,
) -> Enumeration {
    let mut result = Enumeration::default();
    let (first, last) = (*bus_range.start(), *bus_range.end());
    if first > last {
        return result;
    }
    result.root_buses.push(Bus::new(segment, first));
    let mut scanned = BusSet::default();
    scanned.insert(first);
    // Buses still to scan, each with the last bus number its bridge forwards.
    let mut pending = Vec::from([(first, last)]);
    while let Some((bus, window_last)) = pending.pop() {
        for device in 0..DEVICES_PER_BUS {
            let slot = Bdf::from_devfn(segment, bus, device << 3);
            if !present(access, slot) {
                continue;
            }
            let multifunction = access.read8(slot, HEADER_TYPE_OFFSET) & MULTIFUNCTION != 0;
            let functions = if multifunction {
                FUNCTIONS_PER_DEVICE
            } else {
                1
            };
            for function in 0..functions {
                let bdf = Bdf::from_devfn(segment, bus, (device << 3) | function);
                if function != 0 && !present(access, bdf) {
                    continue;
                }
                let mut problems = Vec::new();
                let found = read_function(access, bdf, multifunction, size, &mut problems);
                if let (Some(secondary), Some(subordinate)) =
                    (found.secondary_bus, found.subordinate_bus)
                {
                    let bridge = Bridge {
                        bus,
                        secondary,
                        subordinate,
                        window_last,
                    };
                    match bridge.check(&scanned) {
                        Ok(((child, child_last), note)) => {
                            scanned.insert(child);
                            pending.push((child, child_last));
                            problems.extend(note);
                        }
                        Err(problem) => problems.push(problem),
                    }
                }
                result
                    .problems
                    .extend(problems.into_iter().map(|kind| Problem { bdf, kind }));
                result.devices.push(found);
            }
        }
    }
    result.devices.sort_by_key(|device| device.bdf);
    // Stable: one function's problems keep their discovery order.
    result.problems.sort_by_key(|problem| problem.bdf);
    result
}

/// Whether a function answers at `bdf`. A missing function reads all ones; vendor 0 is not
/// a vendor either (Linux treats both as absent).
fn present(access: &impl ConfigAccess, bdf: Bdf) -> bool {
    let vendor = access.read16(bdf, 0x00);
    vendor != 0xffff && vendor != 0x0000
}

/// Reads one present function: header, BARs, capabilities.
fn read_function(
    access: &impl ConfigAccess,
    bdf: Bdf,
    multifunction: bool,
    size: ConfigSpaceSize,
    problems: &mut Vec<ProblemKind>,
) -> PciDevice {
    let id = access.read32(bdf, 0x00);
    let class_revision = access.read32(bdf, 0x08);
    let layout = access.read8(bdf, HEADER_TYPE_OFFSET) & LAYOUT_MASK;
    let (header_type, bar_count, capability_pointer) = match layout {
        0x00 => (HeaderType::Endpoint, 6, Some(CAPABILITY_POINTER)),
        0x01 => (HeaderType::PciPciBridge, 2, Some(CAPABILITY_POINTER)),
        0x02 => (
            HeaderType::CardBusBridge,
            1,
            Some(CARDBUS_CAPABILITY_POINTER),
        ),
        other => {
            problems.push(ProblemKind::UnknownHeaderType { header_type: other });
            (HeaderType::Unknown(other), 0, None)
        }
    };

    let (bars, bar_problems) = read_bars(access, bdf, bar_count);
    problems.extend(bar_problems);

    let (capabilities, capability_problem) = match capability_pointer {
        Some(head) => standard_capabilities(access, bdf, head),
        None => (Vec::new(), None),
    };
    problems.extend(capability_problem);

    let pcie = capabilities
        .iter()
        .find(|capability| capability.id == CapabilityId::Pcie)
        .map(|capability| {
            // PCI Express Capabilities register, at +2.
            let register = access.read16(bdf, u16::from(capability.offset) + 2);
            PcieInfo {
                port_type: PortType::from_raw((register >> 4) as u8),
                cap_offset: capability.offset,
            }
        });

    let extended_capabilities = if size == ConfigSpaceSize::Extended && pcie.is_some() {
        let (found, problem) = extended_capabilities(access, bdf);
        problems.extend(problem);
        found
    } else {
        Vec::new()
    };

    let kind = match (pcie, header_type) {
        (Some(info), _) => DeviceKind::Pcie(info.port_type),
        (None, HeaderType::Endpoint) => DeviceKind::PciEndpoint,
        (None, HeaderType::PciPciBridge) => DeviceKind::PciBridge,
        (None, HeaderType::CardBusBridge) => DeviceKind::CardbusBridge,
        (None, _) => DeviceKind::UnknownHeader(layout),
    };

    let (secondary_bus, subordinate_bus) = if header_type == HeaderType::PciPciBridge {
        let buses = access.read32(bdf, BUS_NUMBERS_OFFSET);
        (Some((buses >> 8) as u8), Some((buses >> 16) as u8))
    } else {
        (None, None)
    };

    PciDevice {
        bdf,
        vendor: id as u16,
        device: (id >> 16) as u16,
        class: class_revision >> 8,
        revision: class_revision as u8,
        header_type,
        multifunction,
        kind,
        secondary_bus,
        subordinate_bus,
        bars,
        capabilities,
        extended_capabilities,
        pcie,
    }
}

/// A bridge's bus numbers and where it sits, to decide whether to follow it.
struct Bridge {
    /// The bus the bridge is on.
    bus: u8,
    /// Its secondary bus number.
    secondary: u8,
    /// Its subordinate bus number.
    subordinate: u8,
    /// The last bus number the bridge's parent forwards.
    window_last: u8,
}

impl Bridge {
    /// The bus to scan behind this bridge and the last bus number it forwards, with a note
    /// if that range had to be cut to the parent's; or why the bridge must not be followed.
    fn check(&self, scanned: &BusSet) -> Result<((u8, u8), Option<ProblemKind>), ProblemKind> {
        let Bridge {
            bus,
            secondary,
            subordinate,
            window_last,
        } = *self;
        if secondary <= bus {
            return Err(ProblemKind::SecondaryBusNotAbove { secondary, bus });
        }
        if secondary > window_last {
            return Err(ProblemKind::SecondaryBusOutOfRange {
                secondary,
                first: bus + 1,
                last: window_last,
            });
        }
        if scanned.contains(secondary) {
            return Err(ProblemKind::SecondaryBusAlreadyScanned { secondary });
        }
        if subordinate < secondary {
            return Err(ProblemKind::SubordinateBelowSecondary {
                secondary,
                subordinate,
            });
        }
        if subordinate > window_last {
            let note = ProblemKind::SubordinateBusOutOfRange {
                subordinate,
                last: window_last,
            };
            return Ok(((secondary, window_last), Some(note)));
        }
        Ok(((secondary, subordinate), None))
    }
}

/// A set of bus numbers.
#[derive(Default)]
struct BusSet([u64; 4]);

impl BusSet {
    fn insert(&mut self, bus: u8) {
        self.0[usize::from(bus / 64)] |= 1 << (bus % 64);
    }

    fn contains(&self, bus: u8) -> bool {
        self.0[usize::from(bus / 64)] & (1 << (bus % 64)) != 0
    }
}
