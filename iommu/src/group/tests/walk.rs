//! The snapshot's checks, registration order and the DMA alias walk on its own.

use super::*;
use crate::group::{DevfnSet, TopologyError, dma_aliases};

fn build(machine: Machine) -> Result<Topology, TopologyError> {
    Topology::new(machine.functions, machine.roots)
}

#[test]
fn topology_rejects_inconsistent_snapshots() {
    let orphan = Machine::new().add(edu("00:01.0")).add(edu("05:00.0"));
    assert_eq!(
        build(orphan),
        Err(TopologyError::NoParentBridge {
            function: bdf("05:00.0")
        })
    );
    let twice = Machine::new().add(edu("00:01.0")).add(edu("00:01.0"));
    assert_eq!(
        build(twice),
        Err(TopologyError::DuplicateFunction(bdf("00:01.0")))
    );
    let roots_twice = Machine::with_roots(&[0, 0]);
    assert_eq!(
        build(roots_twice),
        Err(TopologyError::DuplicateRootBus(Bus::new(0, 0)))
    );
    let backwards = Machine::new()
        .add(pci_bridge("00:02.0", 1, 1))
        .add(pci_bridge("01:00.0", 1, 1));
    assert_eq!(
        build(backwards),
        Err(TopologyError::BridgeNotAbove {
            bridge: bdf("01:00.0"),
            secondary: 1
        })
    );
    let onto_root = Machine::with_roots(&[0, 0x40]).add(pci_bridge("00:02.0", 0x40, 0x40));
    assert_eq!(
        build(onto_root),
        Err(TopologyError::BridgeClaimsRootBus {
            bridge: bdf("00:02.0")
        })
    );
    let shared = Machine::new()
        .add(pci_bridge("00:02.0", 1, 1))
        .add(pci_bridge("00:03.0", 1, 1));
    assert_eq!(
        build(shared),
        Err(TopologyError::SecondaryBusClaimedTwice {
            bus: Bus::new(0, 1),
            first: bdf("00:02.0"),
            second: bdf("00:03.0")
        })
    );
}

#[test]
fn lookups_report_unknown_functions_and_missing_acs() {
    let mut topology = Machine::new().add(edu("00:01.0")).topology();
    assert_eq!(
        dma_aliases(&topology, bdf("00:02.0")),
        Err(TopologyError::UnknownFunction(bdf("00:02.0")))
    );
    assert_eq!(
        topology.set_acs_control(bdf("00:02.0"), 0x1d),
        Err(TopologyError::UnknownFunction(bdf("00:02.0")))
    );
    assert_eq!(
        topology.set_acs_control(bdf("00:01.0"), 0x1d),
        Err(TopologyError::NoAcs(bdf("00:01.0")))
    );
}

#[test]
fn set_acs_control_records_the_value_read_back() {
    let mut topology = Machine::new().add(root_port("00:02.0", 1, 1)).as_found();
    topology
        .set_acs_control(bdf("00:02.0"), 0x1d)
        .expect("root port has ACS");
    let acs = topology
        .function(bdf("00:02.0"))
        .and_then(|function| function.acs)
        .expect("root port has ACS");
    assert_eq!(acs.control.bits(), 0x1d);
    assert_eq!(acs.capability.bits(), 0x5f);
}

#[test]
fn registration_order_is_depth_first_per_root_bus() {
    let topology = Machine::with_roots(&[0, 0x40])
        .add(root_port("00:03.0", 3, 3))
        .add(edu("03:00.0"))
        .add(root_port("00:02.0", 1, 2))
        .add(pcie_pci_bridge("01:00.0", 2, 2))
        .add(edu("02:01.0"))
        .add(edu("01:01.0"))
        .add(edu("00:1f.0"))
        .add(edu("40:00.0"))
        .topology();
    let order: Vec<String> = topology
        .in_registration_order()
        .map(|function| short(function.bdf))
        .collect();
    assert_eq!(
        order,
        [
            "00:02.0", "00:03.0", "00:1f.0", "01:00.0", "01:01.0", "02:01.0", "03:00.0", "40:00.0"
        ]
    );
    assert_eq!(topology.root_buses(), [Bus::new(0, 0), Bus::new(0, 0x40)]);
}

#[test]
fn pci_to_pcie_bridge_replaces_requester_ids_with_its_own() {
    let reverse = pcie(
        function("01:00.0", 0x1234, 0x5678),
        PcieType::PciToPcieBridge,
    );
    let topology = Machine::new()
        .add(pci_bridge("00:02.0", 1, 2))
        .add(bridge(reverse, 2, 2))
        .add(pcie(
            function("02:00.0", 0x1234, 0x9abc),
            PcieType::Endpoint,
        ))
        .topology();
    let aliases = dma_aliases(&topology, bdf("02:00.0")).expect("known function");
    assert_eq!(aliases, [bdf("02:00.0"), bdf("01:00.0"), bdf("00:02.0")]);
}

#[test]
fn quirk_aliases_follow_the_own_requester_id() {
    let mut aliased = edu("01:03.0");
    aliased.dma_alias_devfns.insert(bdf("01:05.0").devfn());
    aliased.dma_alias_devfns.insert(bdf("01:03.0").devfn());
    let topology = Machine::new()
        .add(pci_bridge("00:02.0", 1, 1))
        .add(aliased)
        .topology();
    let aliases = dma_aliases(&topology, bdf("01:03.0")).expect("known function");
    assert_eq!(aliases, [bdf("01:03.0"), bdf("01:05.0"), bdf("00:02.0")]);
}

#[test]
fn devfn_set_holds_every_devfn() {
    let mut set = DevfnSet::new();
    assert!(set.insert(0));
    assert!(set.insert(0xff));
    assert!(set.insert(0x40));
    assert!(!set.insert(0x40));
    assert!(set.contains(0xff) && !set.contains(0x3f));
    assert_eq!(set.iter().collect::<Vec<_>>(), [0x00, 0x40, 0xff]);
}
