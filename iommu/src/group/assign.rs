//! Linux's `pci_device_group`, run over every function in registration order: a function joins
//! the group of a DMA alias that already has one; otherwise the search climbs from the
//! topmost aliasing bridge to the first bridge whose path to the root is ACS-isolated, and
//! looks at quirk aliases and non-isolated sibling functions of the same slot; failing all
//! that, it starts a new group.

use alloc::vec;
use alloc::vec::Vec;

use super::acs::{REQUIRED_ACS, acs_enabled, path_enabled};
use super::alias::for_each_dma_alias;
use super::topology::{Bus, DevfnSet, Topology};
use super::{Group, GroupId, Groups};

/// Groups every function of `topology` as Linux 6.1 does for an Intel IOMMU. Call it after
/// recording the ACS control values the kernel enabled.
pub fn compute_groups(topology: &Topology) -> Groups {
    let mut assigned: Vec<Option<GroupId>> = vec![None; topology.functions().len()];
    let mut groups: Vec<Group> = Vec::new();
    for &device in topology.order() {
        let id = match device_group(topology, &assigned, device) {
            Some(id) => id,
            None => {
                let id = GroupId(groups.len());
                groups.push(Group::empty(id));
                id
            }
        };
        assigned[device] = Some(id);
        let group = &mut groups[id.0];
        group.members.push(topology.at(device).bdf);
        for_each_dma_alias::<()>(topology, device, |_, alias| {
            group.requester_ids.push(alias);
            None
        });
    }
    for group in &mut groups {
        group.members.sort_unstable();
        group.requester_ids.sort_unstable();
        group.requester_ids.dedup();
    }
    let membership = topology
        .functions()
        .iter()
        .zip(&assigned)
        .filter_map(|(function, id)| Some((function.bdf, (*id)?)))
        .collect();
    Groups { groups, membership }
}

/// The existing group the function at `device` belongs to, or `None` for a new one.
fn device_group(
    topology: &Topology,
    assigned: &[Option<GroupId>],
    device: usize,
) -> Option<GroupId> {
    // 1. Any DMA alias already grouped decides; remember the last device visited: the
    //    function itself or the topmost bridge that replaces its requester ID.
    let mut last = device;
    let found = for_each_dma_alias(topology, device, |owner, _| {
        last = owner;
        assigned[owner]
    });
    if found.is_some() {
        return found;
    }
    // 2. Climb to the first bridge whose path to the root bus is isolated.
    let mut start = last;
    let mut bus = Bus::of(topology.at(start).bdf);
    // Each step moves to a lower bus number (`Topology::new` checked); the bound is a second
    // guard.
    for _ in 0..=u8::MAX as usize {
        if topology.is_root(bus) {
            break;
        }
        let Some(bridge) = topology.parent_bridge(bus) else {
            break;
        };
        if path_enabled(topology, bridge, REQUIRED_ACS) {
            break;
        }
        start = bridge;
        if let Some(id) = assigned[start] {
            return Some(id);
        }
        bus = Bus::of(topology.at(bridge).bdf);
    }
    // 3. and 4. Quirk aliases and non-isolated functions of the same slot.
    Search::new(topology, assigned).run(start)
}

/// One step still to take in the search of `get_pci_alias_group` and
/// `get_pci_function_alias_group`, kept on an explicit stack instead of recursing: a chain of
/// quirk aliases can be 256 functions long.
enum Frame {
    /// Scanning the functions on `device`'s bus from index `next` for DMA aliases of
    /// `device`; `then_functions` is an alias whose sibling functions are still to search.
    Aliases {
        device: usize,
        next: usize,
        then_functions: Option<usize>,
    },
    /// Scanning the functions in `device`'s slot from index `next` for non-isolated ones.
    Functions { device: usize, next: usize },
}

/// The alias and sibling-function search from one start device. Any group found ends the
/// whole search (each level of Linux's recursion returns it at once); a level that finds
/// none hands control back to its caller.
struct Search<'a> {
    topology: &'a Topology,
    assigned: &'a [Option<GroupId>],
    /// Devfns already searched for aliases (all on one bus).
    visited: DevfnSet,
    stack: Vec<Frame>,
}

impl<'a> Search<'a> {
    fn new(topology: &'a Topology, assigned: &'a [Option<GroupId>]) -> Self {
        Search {
            topology,
            assigned,
            visited: DevfnSet::new(),
            stack: Vec::new(),
        }
    }

    /// `get_pci_alias_group(start)`, then `get_pci_function_alias_group(start)`.
    fn run(mut self, start: usize) -> Option<GroupId> {
        if let Some(id) = self.enter_aliases(start) {
            return Some(id);
        }
        if let Some(id) = self.drain() {
            return Some(id);
        }
        self.enter_functions(start);
        self.drain()
    }

    /// Runs the stack until it is empty (nothing found) or a group is found.
    fn drain(&mut self) -> Option<GroupId> {
        while let Some(frame) = self.stack.pop() {
            match frame {
                Frame::Aliases {
                    device,
                    mut next,
                    then_functions,
                } => {
                    if let Some(alias) = then_functions {
                        // The alias's own alias search found nothing: its siblings next.
                        self.stack.push(Frame::Aliases {
                            device,
                            next,
                            then_functions: None,
                        });
                        self.enter_functions(alias);
                        continue;
                    }
                    if let Some(alias) = self.next_alias(device, &mut next) {
                        self.stack.push(Frame::Aliases {
                            device,
                            next,
                            then_functions: Some(alias),
                        });
                        if let Some(id) = self.enter_aliases(alias) {
                            return Some(id);
                        }
                    }
                }
                Frame::Functions { device, mut next } => {
                    if let Some(sibling) = self.next_sibling(device, &mut next) {
                        self.stack.push(Frame::Functions { device, next });
                        if let Some(id) = self.enter_aliases(sibling) {
                            return Some(id);
                        }
                    }
                }
            }
        }
        None
    }

    /// Entry of `get_pci_alias_group(device)`: nothing if already visited, the device's group
    /// if it has one, else a frame to scan its aliases.
    fn enter_aliases(&mut self, device: usize) -> Option<GroupId> {
        if !self.visited.insert(self.topology.at(device).bdf.devfn()) {
            return None;
        }
        if let Some(id) = self.assigned[device] {
            return Some(id);
        }
        let next = self
            .topology
            .on_bus(Bus::of(self.topology.at(device).bdf))
            .start;
        self.stack.push(Frame::Aliases {
            device,
            next,
            then_functions: None,
        });
        None
    }

    /// Entry of `get_pci_function_alias_group(device)`: only a multifunction device that is
    /// not isolated has siblings to search.
    fn enter_functions(&mut self, device: usize) {
        let function = self.topology.at(device);
        if !function.is_multifunction() || acs_enabled(function, REQUIRED_ACS) {
            return;
        }
        let next = self.topology.on_bus(Bus::of(function.bdf)).start;
        self.stack.push(Frame::Functions { device, next });
    }

    /// The next function on `device`'s bus from `*next` that is a DMA alias of it
    /// (`pci_devs_are_dma_aliases`), advancing `*next` past it.
    fn next_alias(&self, device: usize, next: &mut usize) -> Option<usize> {
        let own = self.topology.at(device);
        let end = self.topology.on_bus(Bus::of(own.bdf)).end;
        while *next < end {
            let candidate = *next;
            *next += 1;
            let other = self.topology.at(candidate);
            if candidate != device
                && (own.dma_alias_devfns.contains(other.bdf.devfn())
                    || other.dma_alias_devfns.contains(own.bdf.devfn()))
            {
                return Some(candidate);
            }
        }
        None
    }

    /// The next function in `device`'s slot from `*next` that is not isolated, advancing
    /// `*next` past it.
    fn next_sibling(&self, device: usize, next: &mut usize) -> Option<usize> {
        let own = self.topology.at(device).bdf;
        let end = self.topology.on_bus(Bus::of(own)).end;
        while *next < end {
            let candidate = *next;
            *next += 1;
            let other = self.topology.at(candidate);
            if candidate != device
                && other.bdf.device() == own.device()
                && !acs_enabled(other, REQUIRED_ACS)
            {
                return Some(candidate);
            }
        }
        None
    }
}
