//! Host tests for IOMMU grouping on synthetic topologies shaped like QEMU 7.2's devices: the
//! two topologies whose Linux groups were verified, and one test per rule.

mod cases;
mod linux;
mod walk;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{
    AcsFlags, AcsRegisters, BridgeBuses, Bus, Function, Groups, PcieType, Topology,
    acs_control_to_enable, compute_groups,
};
use crate::Bdf;

/// The address `text` names (`BB:DD.F` or `SSSS:BB:DD.F`); panics on a typo in a test.
fn bdf(text: &str) -> Bdf {
    text.parse().expect("test BDF")
}

/// `BB:DD.F`, for short expectations (every test machine but one is segment 0).
fn short(bdf: Bdf) -> String {
    format!(
        "{:02x}:{:02x}.{:x}",
        bdf.bus(),
        bdf.device(),
        bdf.function()
    )
}

/// A machine under construction: functions and root buses.
struct Machine {
    functions: Vec<Function>,
    roots: Vec<Bus>,
}

impl Machine {
    /// Root bus 0000:00 only.
    fn new() -> Machine {
        Machine::with_roots(&[0])
    }

    /// These root buses of segment 0, in this order.
    fn with_roots(roots: &[u8]) -> Machine {
        Machine {
            functions: Vec::new(),
            roots: roots.iter().map(|&bus| Bus::new(0, bus)).collect(),
        }
    }

    fn add(mut self, function: Function) -> Machine {
        self.functions.push(function);
        self
    }

    /// The snapshot as discovery found it, ACS control registers untouched.
    fn as_found(&self) -> Topology {
        Topology::new(self.functions.clone(), self.roots.clone()).expect("valid test topology")
    }

    /// The snapshot after the kernel enabled ACS as Linux does (and read back what it wrote).
    fn topology(&self) -> Topology {
        let mut topology = self.as_found();
        let writes: Vec<(Bdf, u16)> = topology
            .functions()
            .iter()
            .filter_map(|function| Some((function.bdf, acs_control_to_enable(function)?)))
            .collect();
        for (at, control) in writes {
            topology.set_acs_control(at, control).expect("has ACS");
        }
        topology
    }

    fn groups(&self) -> Groups {
        compute_groups(&self.topology())
    }
}

/// Each group's members, by group number, in short form.
fn members(groups: &Groups) -> Vec<Vec<String>> {
    groups
        .iter()
        .map(|group| group.members().iter().copied().map(short).collect())
        .collect()
}

/// The requester IDs of the group `member` is in, in short form.
fn requester_ids_of(groups: &Groups, member: &str) -> Vec<String> {
    let id = groups.group_of(bdf(member)).expect("member is grouped");
    let group = groups.get(id).expect("id from this Groups");
    group.requester_ids().iter().copied().map(short).collect()
}

/// Whether `a` and `b` are in one group.
fn together(groups: &Groups, a: &str, b: &str) -> bool {
    groups.group_of(bdf(a)).expect("a grouped") == groups.group_of(bdf(b)).expect("b grouped")
}

/// `expected` as owned strings, for comparisons with [`members`].
fn expect(expected: &[&[&str]]) -> Vec<Vec<String>> {
    expected
        .iter()
        .map(|group| group.iter().map(|s| String::from(*s)).collect())
        .collect()
}

// ---- QEMU 7.2's devices, as far as grouping sees them ----

fn function(at: &str, vendor: u16, device: u16) -> Function {
    Function::new(bdf(at), vendor, device)
}

fn pcie(mut function: Function, kind: PcieType) -> Function {
    function.pcie = Some(kind);
    function
}

fn bridge(mut function: Function, secondary: u8, subordinate: u8) -> Function {
    function.bridge = Some(BridgeBuses {
        secondary,
        subordinate,
    });
    function
}

/// Sets bit 7 of the header type.
fn multifunction(mut function: Function) -> Function {
    function.multifunction_bit = true;
    function
}

/// Gives `function` an ACS capability at 0x148 with these registers.
fn with_acs(mut function: Function, capability: u16, control: u16) -> Function {
    function.acs = Some(AcsRegisters {
        position: 0x148,
        capability: AcsFlags::from_bits_retain(capability),
        control: AcsFlags::from_bits_retain(control),
    });
    function
}

/// q35's host bridge (8086:29c0), conventional.
fn host_bridge(at: &str) -> Function {
    function(at, 0x8086, 0x29c0)
}

/// edu (1234:11e8), conventional.
fn edu(at: &str) -> Function {
    function(at, 0x1234, 0x11e8)
}

/// pcie-root-port (1b36:000c): ACS capability 0x5f, control 0 as QEMU resets it.
fn root_port(at: &str, secondary: u8, subordinate: u8) -> Function {
    let port = pcie(function(at, 0x1b36, 0x000c), PcieType::RootPort);
    with_acs(bridge(port, secondary, subordinate), 0x5f, 0)
}

/// pcie-root-port with `disable-acs=on`: no ACS capability.
fn root_port_without_acs(at: &str, secondary: u8, subordinate: u8) -> Function {
    let port = pcie(function(at, 0x1b36, 0x000c), PcieType::RootPort);
    bridge(port, secondary, subordinate)
}

/// ioh3420 (8086:3420): a root port without ACS.
fn ioh3420(at: &str, secondary: u8, subordinate: u8) -> Function {
    let port = pcie(function(at, 0x8086, 0x3420), PcieType::RootPort);
    bridge(port, secondary, subordinate)
}

/// x3130-upstream (104c:8232), no ACS.
fn x3130_upstream(at: &str, secondary: u8, subordinate: u8) -> Function {
    let port = pcie(function(at, 0x104c, 0x8232), PcieType::UpstreamPort);
    bridge(port, secondary, subordinate)
}

/// xio3130-downstream (104c:8233), no ACS.
fn xio3130_downstream(at: &str, secondary: u8, subordinate: u8) -> Function {
    let port = pcie(function(at, 0x104c, 0x8233), PcieType::DownstreamPort);
    bridge(port, secondary, subordinate)
}

/// pcie-pci-bridge (1b36:000e), a PCIe-to-PCI bridge.
fn pcie_pci_bridge(at: &str, secondary: u8, subordinate: u8) -> Function {
    let port = pcie(function(at, 0x1b36, 0x000e), PcieType::PcieToPciBridge);
    bridge(port, secondary, subordinate)
}

/// pci-bridge (1b36:0001), conventional.
fn pci_bridge(at: &str, secondary: u8, subordinate: u8) -> Function {
    bridge(function(at, 0x1b36, 0x0001), secondary, subordinate)
}

/// i82801b11-bridge (8086:244e), conventional.
fn i82801b11(at: &str, secondary: u8, subordinate: u8) -> Function {
    bridge(function(at, 0x8086, 0x244e), secondary, subordinate)
}

/// e1000e (8086:10d3): an endpoint below a port, an integrated endpoint on a root bus.
fn e1000e(at: &str, kind: PcieType) -> Function {
    pcie(function(at, 0x8086, 0x10d3), kind)
}

/// The ICH9 slot 1f: LPC (multifunction bit set), AHCI and SMBus.
fn ich9(machine: Machine) -> Machine {
    machine
        .add(multifunction(function("00:1f.0", 0x8086, 0x2918)))
        .add(function("00:1f.2", 0x8086, 0x2922))
        .add(function("00:1f.3", 0x8086, 0x2930))
}
