//! IOMMU groups of the discovered machine: the grouping snapshot built from an
//! [`Enumeration`], ACS enabled through configuration space as Linux does before it groups,
//! then [`moat_iommu::group::compute_groups`]. The result is published once for the rest of
//! the run.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use moat_iommu::Bdf;
use moat_iommu::group::{
    AcsRegisters, BridgeBuses, Function, Group, Groups, Topology, TopologyError,
    acs_control_to_enable, compute_groups,
};

use super::access::{ConfigAccess, ConfigAccessExt};
use super::device::PciDevice;
use super::enumerate::Enumeration;

/// Offset of the ACS Control register from the ACS capability header (PCIe 6.0 §7.7.8.3).
const ACS_CONTROL: u16 = 6;

/// A function whose ACS Control register did not keep what the kernel wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcsNotEnabled {
    /// The function.
    pub bdf: Bdf,
    /// The value written.
    pub wanted: u16,
    /// The value read back (what grouping uses).
    pub read: u16,
}

/// The outcome of [`discover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The groups.
    pub groups: Groups,
    /// How many functions had ACS enabled.
    pub acs_enabled: usize,
    /// Functions that did not take the ACS Control value written.
    pub acs_not_enabled: Vec<AcsNotEnabled>,
}

/// The grouping snapshot of `enumeration`. A bridge is recorded with its bus numbers only if
/// discovery followed it, so every function's bus has exactly one way up.
pub fn topology(enumeration: &Enumeration) -> Result<Topology, TopologyError> {
    let functions = enumeration
        .devices
        .iter()
        .map(|device| snapshot(enumeration, device))
        .collect();
    Topology::new(functions, enumeration.root_buses.clone())
}

/// What grouping needs from one discovered function.
fn snapshot(enumeration: &Enumeration, device: &PciDevice) -> Function {
    let followed = !enumeration
        .problems_for(device.bdf)
        .any(|problem| problem.kind.bridge_not_followed());
    let bridge = match (device.secondary_bus, device.subordinate_bus) {
        (Some(secondary), Some(subordinate)) if followed => Some(BridgeBuses {
            secondary,
            subordinate,
        }),
        _ => None,
    };
    Function {
        // Functions 1..=7 were only looked for because function 0 has the bit; Linux counts
        // them multifunction either way.
        multifunction_bit: device.multifunction,
        pcie: device.pcie.map(|pcie| pcie.port_type),
        acs: device.acs().map(|acs| AcsRegisters {
            position: acs.offset,
            capability: acs.capability,
            control: acs.control,
        }),
        bridge,
        ..Function::new(device.bdf, device.vendor, device.device)
    }
}

/// Enables ACS on every function of `topology` that has it, as Linux does before grouping:
/// one 16-bit write of [`acs_control_to_enable`] to ACS Control, then a read-back, which is
/// recorded in `topology`. Returns how many functions were written and those that did not
/// keep the value.
pub fn enable_acs(
    access: &impl ConfigAccess,
    topology: &mut Topology,
) -> (usize, Vec<AcsNotEnabled>) {
    let writes: Vec<(Bdf, u16, u16)> = topology
        .functions()
        .iter()
        .filter_map(|function| {
            let control = acs_control_to_enable(function)?;
            Some((function.bdf, function.acs?.position + ACS_CONTROL, control))
        })
        .collect();
    let mut not_enabled = Vec::new();
    for &(bdf, offset, wanted) in &writes {
        access.write16(bdf, offset, wanted);
        let read = access.read16(bdf, offset);
        if read != wanted {
            not_enabled.push(AcsNotEnabled { bdf, wanted, read });
        }
        let recorded = topology.set_acs_control(bdf, read);
        // Every function in `writes` came from `topology` and has ACS.
        debug_assert_eq!(recorded, Ok(()));
    }
    (writes.len(), not_enabled)
}

/// Builds the snapshot of `enumeration`, enables ACS through `access`, and groups.
pub fn discover(
    access: &impl ConfigAccess,
    enumeration: &Enumeration,
) -> Result<Discovery, TopologyError> {
    let mut topology = topology(enumeration)?;
    let (acs_enabled, acs_not_enabled) = enable_acs(access, &mut topology);
    Ok(Discovery {
        groups: compute_groups(&topology),
        acs_enabled,
        acs_not_enabled,
    })
}

/// `iommu group N: 0000:00:04.0 0000:00:05.0`: the group's number and members, as the boot
/// report prints it.
pub fn group_line(group: &Group) -> String {
    let mut line = format!("iommu group {}:", group.id());
    for member in group.members() {
        // Writing into a String cannot fail.
        let _ = write!(line, " {member}");
    }
    line
}

static GROUPS: spin::Once<Groups> = spin::Once::new();

/// Keeps the machine's groups for the rest of the run and returns them. Only the first call
/// stores anything.
pub fn publish(_root: &crate::privilege::Privileged, groups: Groups) -> &'static Groups {
    GROUPS.call_once(|| groups)
}

/// The groups published at boot, if they were computed.
pub fn groups() -> Option<&'static Groups> {
    GROUPS.get()
}
