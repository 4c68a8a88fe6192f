//! The two topologies whose groups Linux 6.1.192 printed under QEMU 7.2 (facts, section D).

use super::*;

/// Topology 1: edu on pcie.0; ACS root ports (one with an edu, one with a pcie-pci-bridge and
/// two edus); a pci-bridge with an edu; an ioh3420 with an x3130 switch and an edu; a
/// multifunction edu; an i82801b11-bridge with an edu; a disable-acs root port; ICH9.
/// Bus numbers as SeaBIOS assigns them, depth first.
fn topology_one() -> Machine {
    let machine = Machine::new()
        .add(host_bridge("00:00.0"))
        .add(edu("00:04.0"))
        .add(root_port("00:05.0", 1, 1))
        .add(edu("01:00.0"))
        .add(root_port("00:06.0", 2, 3))
        .add(pcie_pci_bridge("02:00.0", 3, 3))
        .add(edu("03:01.0"))
        .add(edu("03:02.0"))
        .add(pci_bridge("00:07.0", 4, 4))
        .add(edu("04:01.0"))
        .add(ioh3420("00:08.0", 5, 7))
        .add(x3130_upstream("05:00.0", 6, 7))
        .add(xio3130_downstream("06:00.0", 7, 7))
        .add(edu("07:00.0"))
        .add(multifunction(edu("00:09.0")))
        .add(edu("00:09.1"))
        .add(i82801b11("00:0a.0", 8, 8))
        .add(edu("08:03.0"))
        .add(root_port_without_acs("00:0b.0", 9, 9));
    ich9(machine)
}

#[test]
fn linux_topology_one_groups_and_numbers() {
    let groups = topology_one().groups();
    let expected: &[&[&str]] = &[
        &["00:00.0"],
        &["00:04.0"],
        &["00:05.0"],
        &["00:06.0"],
        &["00:07.0", "04:01.0"],
        &["00:08.0", "05:00.0", "06:00.0", "07:00.0"],
        &["00:09.0", "00:09.1"],
        &["00:0a.0", "08:03.0"],
        &["00:0b.0"],
        &["00:1f.0", "00:1f.2", "00:1f.3"],
        &["01:00.0"],
        &["02:00.0", "03:01.0", "03:02.0"],
    ];
    assert_eq!(members(&groups), expect(expected));
    for (number, group) in groups.iter().enumerate() {
        assert_eq!(group.id().number(), number);
        assert_eq!(groups.id(number), Some(group.id()));
        for member in group.members() {
            assert_eq!(groups.group_of(*member), Some(group.id()));
        }
    }
    assert_eq!(groups.id(expected.len()), None);
    assert_eq!(groups.group_of(bdf("00:02.0")), None);
}

#[test]
fn linux_topology_one_requester_ids() {
    let groups = topology_one().groups();
    // A conventional bridge replaces requester IDs with its own.
    assert_eq!(requester_ids_of(&groups, "04:01.0"), ["00:07.0", "04:01.0"]);
    assert_eq!(requester_ids_of(&groups, "08:03.0"), ["00:0a.0", "08:03.0"]);
    // Ports pass them through.
    assert_eq!(
        requester_ids_of(&groups, "07:00.0"),
        ["00:08.0", "05:00.0", "06:00.0", "07:00.0"]
    );
    // A PCIe-to-PCI bridge uses (secondary bus, 00.0).
    assert_eq!(
        requester_ids_of(&groups, "03:01.0"),
        ["02:00.0", "03:00.0", "03:01.0", "03:02.0"]
    );
    assert_eq!(requester_ids_of(&groups, "00:09.1"), ["00:09.0", "00:09.1"]);
}

/// Topology 2: root ports stacked in multifunction slot 2 (02.2 without ACS), two virtio-net
/// functions behind 02.0, an edu behind 02.2, an x3130 switch behind 02.3 with an e1000e
/// behind each downstream port. The facts give the partition; the numbers follow from
/// registration order.
fn topology_two() -> Machine {
    let virtio_net = |at| pcie(function(at, 0x1af4, 0x1041), PcieType::Endpoint);
    let machine = Machine::new()
        .add(host_bridge("00:00.0"))
        .add(multifunction(root_port("00:02.0", 1, 1)))
        .add(multifunction(virtio_net("01:00.0")))
        .add(virtio_net("01:00.1"))
        .add(root_port("00:02.1", 2, 2))
        .add(root_port_without_acs("00:02.2", 3, 3))
        .add(edu("03:00.0"))
        .add(root_port("00:02.3", 4, 7))
        .add(x3130_upstream("04:00.0", 5, 7))
        .add(xio3130_downstream("05:00.0", 6, 6))
        .add(e1000e("06:00.0", PcieType::Endpoint))
        .add(xio3130_downstream("05:01.0", 7, 7))
        .add(e1000e("07:00.0", PcieType::Endpoint));
    ich9(machine)
}

#[test]
fn linux_topology_two_partition() {
    let groups = topology_two().groups();
    let expected: &[&[&str]] = &[
        &["00:00.0"],
        &["00:02.0"],
        &["00:02.1"],
        &["00:02.2", "03:00.0"],
        &["00:02.3"],
        &["00:1f.0", "00:1f.2", "00:1f.3"],
        &["01:00.0", "01:00.1"],
        &["04:00.0"],
        &["05:00.0", "06:00.0"],
        &["05:01.0", "07:00.0"],
    ];
    assert_eq!(members(&groups), expect(expected));
}
