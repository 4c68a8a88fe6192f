//! IOMMU groups exactly as Linux 6.1 forms them for an Intel IOMMU (`pci_device_group`): the
//! smallest sets of PCI functions the IOMMU can tell apart, because their DMA carries distinct
//! requester IDs and no peer-to-peer path lets one reach another without passing the IOMMU.
//!
//! The kernel takes a [`Topology`] snapshot of PCI discovery, enables ACS where a function
//! implements it ([`acs_control_to_enable`]), records the control values it read back, and
//! calls [`compute_groups`]. Each [`Group`] lists its members and the requester IDs their DMA
//! may carry ([`dma_aliases`]): the context entries the group's domain needs.
//!
//! Modelled Linux quirks: Intel root-complex integrated endpoints count as ACS-isolated, and
//! the conventional bridges Linux treats as PCIe-to-PCI bridges (QEMU's i82801b11-bridge
//! among them) alias to their secondary bus. Quirk DMA aliases can be given per function.
//! Other quirks match no device QEMU emulates and are not modelled.
#![forbid(unsafe_code)]

mod acs;
mod alias;
mod assign;
mod error;
mod topology;

#[cfg(test)]
mod tests;

use alloc::vec::Vec;
use core::fmt;

use crate::Bdf;

pub use acs::{AcsFlags, REQUIRED_ACS, acs_control_to_enable};
pub use alias::dma_aliases;
pub use assign::compute_groups;
pub use error::TopologyError;
pub use topology::{AcsRegisters, BridgeBuses, Bus, DevfnSet, Function, PcieType, Topology};

/// The number of an IOMMU group: 0, 1, ... in the order [`compute_groups`] created them,
/// which is the order Linux numbers them in on the same machine.
///
/// Only [`Groups::id`] makes one from a number (it checks the group exists), and
/// [`compute_groups`] hands them out; a `GroupId` names a group of the [`Groups`] it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(usize);

impl GroupId {
    /// The group's number.
    pub const fn number(self) -> usize {
        self.0
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One IOMMU group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    id: GroupId,
    members: Vec<Bdf>,
    requester_ids: Vec<Bdf>,
}

impl Group {
    fn empty(id: GroupId) -> Group {
        Group {
            id,
            members: Vec::new(),
            requester_ids: Vec::new(),
        }
    }

    /// Its number.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// The functions in it, sorted by address.
    pub fn members(&self) -> &[Bdf] {
        &self.members
    }

    /// Every requester ID its members' DMA may carry (their own and their bridges' aliases),
    /// each once, sorted, each written as the address it names: the context entries to point
    /// at the group's domain.
    pub fn requester_ids(&self) -> &[Bdf] {
        &self.requester_ids
    }
}

/// The IOMMU groups of one [`Topology`], from [`compute_groups`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Groups {
    /// Indexed by group number.
    groups: Vec<Group>,
    /// Each function's group, sorted by address.
    membership: Vec<(Bdf, GroupId)>,
}

impl Groups {
    /// The groups, by number.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Group> + '_ {
        self.groups.iter()
    }

    /// How many groups there are.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// Whether there are none (no PCI functions).
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The id of group `number`, if there is such a group.
    pub fn id(&self, number: usize) -> Option<GroupId> {
        (number < self.groups.len()).then_some(GroupId(number))
    }

    /// The group `id` names.
    pub fn get(&self, id: GroupId) -> Option<&Group> {
        self.groups.get(id.0)
    }

    /// The group of the function at `bdf`, if it is one of the topology's functions.
    pub fn group_of(&self, bdf: Bdf) -> Option<GroupId> {
        self.membership
            .binary_search_by_key(&bdf, |(member, _)| *member)
            .ok()
            .map(|index| self.membership[index].1)
    }
}
