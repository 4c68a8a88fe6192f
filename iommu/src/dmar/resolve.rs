//! Device scopes against the live PCI topology: which function a scope path leads to, and
//! which VT-d unit translates for a given device (VT-d 8.3.1 and 8.3.2).
//!
//! A path walks from the scope's start bus: the first element names a function there; each
//! further element names a function on the secondary bus of the bridge before it. Bus numbers
//! are the ones firmware (or the kernel) programmed into the bridges, which is why the walk
//! needs the topology and cannot be done from the table alone.

use core::fmt;

use super::Dmar;
use super::scope::{DeviceScope, ScopeKind};
use crate::Bdf;

/// Read access to the PCI configuration the scope walk needs. Implemented by the kernel over
/// ECAM, and by tests over a map. Every [`Bdf`] carries its segment.
pub trait PciTopology {
    /// Whether a function answers at `bdf` (its vendor ID is not `0xffff`).
    fn exists(&self, bdf: Bdf) -> bool;

    /// The secondary bus number of the PCI-PCI bridge at `bdf` (type 1 header, offset 0x19),
    /// or `None` if no bridge is there.
    fn secondary_bus(&self, bdf: Bdf) -> Option<u8>;

    /// The subordinate bus number of the PCI-PCI bridge at `bdf` (type 1 header, offset 0x1a):
    /// the highest bus below it. `None` if no bridge is there.
    fn subordinate_bus(&self, bdf: Bdf) -> Option<u8>;
}

/// Where a device scope leads in the live topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolvedScope {
    /// One PCI function.
    Endpoint(Bdf),
    /// A bridge and every bus below it: the bridge itself and all of
    /// `secondary_bus..=subordinate_bus`.
    SubHierarchy {
        /// The bridge the path ends at.
        bridge: Bdf,
        /// Its secondary bus.
        secondary_bus: u8,
        /// Its subordinate bus (the highest bus below it).
        subordinate_bus: u8,
    },
    /// An I/O APIC: its APIC ID and the source-id its interrupt requests carry.
    IoApic {
        /// The I/O APIC ID (the scope's enumeration ID).
        id: u8,
        /// The requester ID of its interrupt messages.
        source_id: Bdf,
    },
    /// An MSI-capable HPET: its number and the source-id of its interrupt messages.
    Hpet {
        /// The HPET number (the scope's enumeration ID).
        id: u8,
        /// The requester ID of its interrupt messages.
        source_id: Bdf,
    },
    /// An ACPI name-space device: the ANDD device number and the requester ID of its DMA.
    AcpiDevice {
        /// The ANDD device number (the scope's enumeration ID).
        number: u8,
        /// The requester ID of its DMA.
        source_id: Bdf,
    },
}

impl ResolvedScope {
    /// Whether this PCI scope covers the function at `bdf`: the endpoint itself, or the bridge
    /// or any function on a bus below it (in the bridge's segment). Always false for non-PCI
    /// scopes.
    pub fn covers(&self, bdf: Bdf) -> bool {
        match *self {
            ResolvedScope::Endpoint(endpoint) => endpoint == bdf,
            ResolvedScope::SubHierarchy {
                bridge,
                secondary_bus,
                subordinate_bus,
            } => {
                bridge == bdf
                    || (bridge.segment() == bdf.segment()
                        && (secondary_bus..=subordinate_bus).contains(&bdf.bus()))
            }
            ResolvedScope::IoApic { .. }
            | ResolvedScope::Hpet { .. }
            | ResolvedScope::AcpiDevice { .. } => false,
        }
    }
}

/// Why a device scope did not resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeError {
    /// No function answers at hop `depth` of the path (counting from 0). Common on real
    /// machines: firmware lists devices that are disabled or absent.
    PathLeadsNowhere {
        /// Which hop.
        depth: usize,
        /// The address that hop named.
        at: Bdf,
    },
    /// Hop `depth` must be a bridge, to reach the next hop or to span a sub-hierarchy, but has
    /// no secondary or subordinate bus.
    NotABridge {
        /// Which hop.
        depth: usize,
        /// The address that hop named.
        at: Bdf,
    },
    /// The bridge ending a sub-hierarchy reports a subordinate bus below its secondary bus.
    InvalidBusRange {
        /// The bridge.
        bridge: Bdf,
        /// Its secondary bus.
        secondary_bus: u8,
        /// Its subordinate bus.
        subordinate_bus: u8,
    },
    /// The scope's type is reserved; nothing is known about what it names.
    ReservedKind(u8),
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ScopeError::PathLeadsNowhere { depth, at } => {
                write!(
                    f,
                    "scope path hop {depth} names {at}, where no device answers"
                )
            }
            ScopeError::NotABridge { depth, at } => {
                write!(f, "scope path hop {depth} at {at} is not a bridge")
            }
            ScopeError::InvalidBusRange {
                bridge,
                secondary_bus,
                subordinate_bus,
            } => write!(
                f,
                "bridge {bridge} has subordinate bus {subordinate_bus:#04x} below secondary bus {secondary_bus:#04x}"
            ),
            ScopeError::ReservedKind(raw) => write!(f, "scope type {raw} is reserved"),
        }
    }
}

/// Walks `scope`'s path through `topology` in `segment`.
///
/// Every hop but the last must be a present bridge. For PCI endpoint and sub-hierarchy scopes
/// the last hop must be present too, and a sub-hierarchy's last hop must be a bridge. For
/// I/O APIC, HPET and ACPI device scopes the last hop is a source-id, not necessarily a
/// function in configuration space (QEMU's I/O APIC uses the pseudo bus 0xff), so its presence
/// is not checked.
pub fn resolve_scope<T>(
    scope: &DeviceScope,
    segment: u16,
    topology: &T,
) -> Result<ResolvedScope, ScopeError>
where
    T: PciTopology + ?Sized,
{
    let pci = matches!(
        scope.kind(),
        ScopeKind::PciEndpoint | ScopeKind::PciSubHierarchy
    );
    let (last, depth) = walk_path(scope, segment, topology, pci)?;
    let id = scope.enumeration_id();
    match scope.kind() {
        ScopeKind::PciEndpoint => Ok(ResolvedScope::Endpoint(last)),
        ScopeKind::PciSubHierarchy => {
            let not_a_bridge = ScopeError::NotABridge { depth, at: last };
            let secondary_bus = topology.secondary_bus(last).ok_or(not_a_bridge)?;
            let subordinate_bus = topology.subordinate_bus(last).ok_or(not_a_bridge)?;
            if subordinate_bus < secondary_bus {
                return Err(ScopeError::InvalidBusRange {
                    bridge: last,
                    secondary_bus,
                    subordinate_bus,
                });
            }
            Ok(ResolvedScope::SubHierarchy {
                bridge: last,
                secondary_bus,
                subordinate_bus,
            })
        }
        ScopeKind::IoApic => Ok(ResolvedScope::IoApic {
            id,
            source_id: last,
        }),
        ScopeKind::MsiCapableHpet => Ok(ResolvedScope::Hpet {
            id,
            source_id: last,
        }),
        ScopeKind::AcpiNamespaceDevice => Ok(ResolvedScope::AcpiDevice {
            number: id,
            source_id: last,
        }),
        ScopeKind::Reserved(raw) => Err(ScopeError::ReservedKind(raw)),
    }
}

/// Follows the path to its last hop; returns that hop's address and depth. Bounded by the
/// path's length, whatever bus numbers the topology reports.
fn walk_path<T>(
    scope: &DeviceScope,
    segment: u16,
    topology: &T,
    last_must_exist: bool,
) -> Result<(Bdf, usize), ScopeError>
where
    T: PciTopology + ?Sized,
{
    if let ScopeKind::Reserved(raw) = scope.kind() {
        return Err(ScopeError::ReservedKind(raw));
    }
    let path = scope.path();
    let mut bus = scope.start_bus();
    let mut depth = 0;
    while let Some(&element) = path.get(depth) {
        let at = element.on_bus(segment, bus);
        let is_last = depth + 1 == path.len();
        if (!is_last || last_must_exist) && !topology.exists(at) {
            return Err(ScopeError::PathLeadsNowhere { depth, at });
        }
        if is_last {
            return Ok((at, depth));
        }
        bus = topology
            .secondary_bus(at)
            .ok_or(ScopeError::NotABridge { depth, at })?;
        depth += 1;
    }
    // A DeviceScope's path is never empty, so the loop always returns; report the first hop
    // as absent rather than panic should that invariant ever break.
    Err(ScopeError::PathLeadsNowhere {
        depth: 0,
        at: scope.first_hop(segment),
    })
}

/// The index into [`Dmar::units`] of the VT-d unit that translates DMA from the PCI function
/// at `bdf`, or `None` if no unit does (the device is not behind an IOMMU).
///
/// A unit claims the device when one of its PCI scopes covers it: an endpoint scope naming
/// it, or a sub-hierarchy scope naming it or a bridge above it. When several do, the most
/// specific wins, as in VT-d 8.3.2: an exact match first, then the sub-hierarchy with the
/// narrowest bus range (the bridge nearest the device); ties go to the earlier unit. Only if
/// no unit claims it does the INCLUDE_PCI_ALL unit of its segment get it.
///
/// Scopes that do not resolve (firmware listing absent devices) are skipped. Every call
/// walks every scope, so resolve each device once and keep the answer.
pub fn unit_for_device<T>(dmar: &Dmar, bdf: Bdf, topology: &T) -> Option<usize>
where
    T: PciTopology + ?Sized,
{
    // Lower is more specific: 0 for an exact match, 1 + bus-range width for a sub-hierarchy.
    let segment = bdf.segment();
    let mut best: Option<(u16, usize)> = None;
    for (index, unit) in dmar.units().iter().enumerate() {
        if unit.segment() != segment {
            continue;
        }
        for scope in unit.scopes() {
            let Ok(resolved) = resolve_scope(scope, segment, topology) else {
                continue;
            };
            let rank = match resolved {
                ResolvedScope::Endpoint(endpoint) if endpoint == bdf => 0,
                ResolvedScope::SubHierarchy { bridge, .. } if bridge == bdf => 0,
                ResolvedScope::SubHierarchy {
                    secondary_bus,
                    subordinate_bus,
                    ..
                } if resolved.covers(bdf) => 1 + u16::from(subordinate_bus - secondary_bus),
                _ => continue,
            };
            if best.is_none_or(|(best_rank, _)| rank < best_rank) {
                best = Some((rank, index));
            }
        }
    }
    best.map(|(_, index)| index)
        .or_else(|| dmar.include_all_unit(segment))
}
