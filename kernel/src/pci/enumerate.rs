//! Walks one PCI segment from each root bus through every PCI-PCI bridge, using the bus
//! numbers the firmware programmed (SeaBIOS and OVMF assign them; Moat never renumbers).
//! Root buses other than the segment's first are found by probing (see [`super::bus`]).
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
use super::bus::BusSet;
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
    /// The root buses, in the order walked (which IOMMU grouping numbers groups by): the
    /// segment's first bus, then every other bus found by probing, ascending (see
    /// [`super::bus`]).
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

/// Finds every function of `segment` in `bus_range` (the segment's bus range, from the MCFG
/// entry): first everything reachable from the range's first bus, following PCI-PCI bridges
/// and PCI Express ports through their secondary and subordinate bus numbers; then, in
/// ascending order, every other root bus (see [`RootBus`]) and what is reachable from it.
/// A bus that any bridge claims (secondary..=subordinate) is never taken for a root bus, so
/// no function is listed twice.
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
    let (first, last) = (*bus_range.start(), *bus_range.end());
    let mut walk = Walk {
        access,
        segment,
        size,
        last,
        scanned: BusSet::default(),
        claimed: BusSet::default(),
        result: Enumeration::default(),
    };
    if first > last {
        return walk.result;
    }
    walk.scan_hierarchy(first);
    // Bridges always lead to higher bus numbers, so a root bus is probed before any bus its
    // own bridges claim.
    for bus in (first..=last).skip(1) {
        if !walk.claimed.contains(bus) && walk.answers(bus) {
            walk.scan_hierarchy(bus);
        }
    }
    let mut result = walk.result;
    result.devices.sort_by_key(|device| device.bdf);
    // Stable: one function's problems keep their discovery order.
    result.problems.sort_by_key(|problem| problem.bdf);
    result
}

/// The state of one [`enumerate`] call.
struct Walk<'a, A> {
    access: &'a A,
    segment: u16,
    size: ConfigSpaceSize,
    /// The segment's last bus.
    last: u8,
    /// Buses scanned so far.
    scanned: BusSet,
    /// Buses scanned so far, and every bus some bridge claims (secondary..=subordinate).
    claimed: BusSet,
    result: Enumeration,
}

impl<A: ConfigAccess> Walk<'_, A> {
    /// Whether a function 0 answers in any slot of `bus`.
    fn answers(&self, bus: u8) -> bool {
        (0..DEVICES_PER_BUS)
            .any(|device| present(self.access, Bdf::from_devfn(self.segment, bus, device << 3)))
    }

    /// Records `root` as a root bus and scans it and every bus below it.
    fn scan_hierarchy(&mut self, root: u8) {
        self.result.root_buses.push(Bus::new(self.segment, root));
        self.scanned.insert(root);
        self.claimed.insert(root);
        // Buses still to scan, each with the last bus number its bridge forwards.
        let mut pending = Vec::from([(root, self.last)]);
        while let Some((bus, window_last)) = pending.pop() {
            for device in 0..DEVICES_PER_BUS {
                self.scan_slot(bus, device, window_last, &mut pending);
            }
        }
    }

    /// Reads the functions of one slot, queueing the buses behind any bridges among them.
    fn scan_slot(&mut self, bus: u8, device: u8, window_last: u8, pending: &mut Vec<(u8, u8)>) {
        let (access, segment) = (self.access, self.segment);
        let slot = Bdf::from_devfn(segment, bus, device << 3);
        if !present(access, slot) {
            return;
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
            let found = read_function(access, bdf, multifunction, self.size, &mut problems);
            if let (Some(secondary), Some(subordinate)) =
                (found.secondary_bus, found.subordinate_bus)
            {
                // Whatever a bridge claims is not a root bus, even if it is not followed.
                if secondary > bus {
                    self.claimed
                        .insert_range(secondary, subordinate.min(self.last));
                }
                let bridge = Bridge {
                    bus,
                    secondary,
                    subordinate,
                    window_last,
                };
                match bridge.check(&self.scanned) {
                    Ok(((child, child_last), note)) => {
                        self.scanned.insert(child);
                        self.claimed.insert_range(child, child_last);
                        pending.push((child, child_last));
                        problems.extend(note);
                    }
                    Err(problem) => problems.push(problem),
                }
            }
            self.result
                .problems
                .extend(problems.into_iter().map(|kind| Problem { bdf, kind }));
            self.result.devices.push(found);
        }
    }
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
