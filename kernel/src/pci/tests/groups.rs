//! IOMMU groups from discovery: the snapshot, ACS enabling through configuration space, and
//! the requester IDs remapping programs (`vtd::topology::dma_sources`).

use alloc::string::String;
use alloc::vec::Vec;

use moat_iommu::group::Bus;

use super::fake::{FakeConfig, bdf};
use super::q35::q35;
use super::run;
use crate::pci::ConfigSpaceSize;
use crate::pci::groups::{discover, group_line, topology};
use crate::vtd::topology::dma_sources;

/// Every group's report line.
fn group_lines(machine: &FakeConfig) -> Vec<String> {
    let found = run(machine);
    let discovery = discover(machine, &found).expect("consistent topology");
    discovery.groups.iter().map(group_line).collect()
}

#[test]
fn groups_enable_acs_with_one_16_bit_write_per_root_port() {
    let machine = q35(ConfigSpaceSize::Extended);
    let found = run(&machine);
    let discovery = discover(&machine, &found).expect("consistent topology");
    // ACS at 0x148: control at 0x14e gets SV | RR | CR | UF; capability is never written.
    let expected: Vec<_> = ["0000:00:01.0", "0000:00:01.1", "0000:00:02.0"]
        .into_iter()
        .map(|at| (bdf(at), 0x14e, 0x1d))
        .collect();
    assert_eq!(machine.writes16(), expected);
    assert!(
        machine
            .writes()
            .iter()
            .all(|(_, offset, _)| *offset < 0x100)
    );
    assert_eq!(discovery.acs_enabled, 3);
    assert_eq!(discovery.acs_not_enabled, []);
}

#[test]
fn groups_of_the_q35_machine() {
    assert_eq!(
        group_lines(&q35(ConfigSpaceSize::Extended)),
        [
            "iommu group 0: 0000:00:00.0",
            "iommu group 1: 0000:00:01.0",
            "iommu group 2: 0000:00:01.1",
            "iommu group 3: 0000:00:02.0",
            "iommu group 4: 0000:00:04.0",
            "iommu group 5: 0000:00:05.0",
            "iommu group 6: 0000:00:1f.0 0000:00:1f.2 0000:00:1f.3",
            "iommu group 7: 0000:01:00.0",
            "iommu group 8: 0000:02:00.0 0000:03:01.0 0000:03:02.0",
            "iommu group 9: 0000:04:00.0",
        ]
    );
}

#[test]
fn groups_without_extended_config_space_see_no_acs() {
    // Through port I/O the ACS capability is out of reach: nothing is written and the root
    // ports isolate nothing, so each joins the group of what is behind it.
    let machine = q35(ConfigSpaceSize::Conventional);
    let found = super::enumerate(&machine, 0, 0..=0xff, ConfigSpaceSize::Conventional);
    let discovery = discover(&machine, &found).expect("consistent topology");
    assert_eq!(machine.writes16(), []);
    assert_eq!(discovery.acs_enabled, 0);
    let groups = &discovery.groups;
    assert_eq!(
        groups.group_of(bdf("0000:00:02.0")),
        groups.group_of(bdf("0000:04:00.0"))
    );
}

#[test]
fn groups_snapshot_drops_bridges_discovery_did_not_follow() {
    // Root port 00:02.0 claims bus 01 as well; discovery follows 00:01.0 only, and so does
    // the snapshot, so bus 01 keeps one way up.
    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.edit("0000:00:02.0", |function| {
        function.put8(0x19, 1);
        function.put8(0x1a, 1);
    });
    // Its edu would move along with it on real hardware; left on bus 04, which nothing
    // claims any more, discovery would probe it as a root bus.
    machine.remove(bdf("0000:04:00.0"));
    let found = run(&machine);
    let topology = topology(&found).expect("consistent topology");
    let port = topology.function(bdf("0000:00:02.0")).expect("listed");
    assert_eq!(port.bridge, None);
    assert_eq!(topology.root_buses(), [Bus::new(0, 0)]);
    assert!(group_lines(&machine).contains(&String::from("iommu group 7: 0000:01:00.0")));
}

#[test]
fn dma_sources_follow_the_alias_walk() {
    let found = run(&q35(ConfigSpaceSize::Extended));
    // Behind the pcie-pci-bridge on bus 03: own ID, then (03, 00.0).
    assert_eq!(dma_sources(&found, bdf("0000:03:01.0")), [0x0308, 0x0300]);
    assert_eq!(dma_sources(&found, bdf("0000:03:02.0")), [0x0310, 0x0300]);
    // Root ports pass requester IDs through.
    assert_eq!(dma_sources(&found, bdf("0000:04:00.0")), [0x0400]);
    assert_eq!(dma_sources(&found, bdf("0000:00:04.0")), [0x0020]);
    // Unknown: only its own.
    assert_eq!(dma_sources(&found, bdf("0000:09:00.0")), [0x0900]);
}
