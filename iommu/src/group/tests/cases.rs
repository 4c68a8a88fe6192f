//! One rule of Linux's grouping per test, on small QEMU-shaped machines.

use super::*;
use crate::group::{DevfnSet, dma_aliases};

#[test]
fn acs_root_port_isolates_its_device_and_disable_acs_port_does_not() {
    let groups = Machine::new()
        .add(root_port("00:02.0", 1, 1))
        .add(edu("01:00.0"))
        .add(root_port_without_acs("00:03.0", 2, 2))
        .add(edu("02:00.0"))
        .groups();
    let expected: &[&[&str]] = &[&["00:02.0"], &["00:03.0", "02:00.0"], &["01:00.0"]];
    assert_eq!(members(&groups), expect(expected));
}

#[test]
fn acs_left_disabled_isolates_nothing() {
    // QEMU resets ACS Control to 0: until the kernel enables it, the root port is as good as
    // one without ACS.
    let machine = Machine::new()
        .add(root_port("00:02.0", 1, 1))
        .add(edu("01:00.0"));
    let before = compute_groups(&machine.as_found());
    let after = machine.groups();
    assert!(together(&before, "00:02.0", "01:00.0"));
    assert!(!together(&after, "00:02.0", "01:00.0"));
}

#[test]
fn acs_control_to_enable_adds_the_implemented_required_features() {
    let port = |capability, control| with_acs(edu("00:02.0"), capability, control);
    // QEMU's root port: SV TB RR CR UF DT implemented, nothing enabled -> SV RR CR UF.
    assert_eq!(acs_control_to_enable(&port(0x5f, 0)), Some(0x1d));
    // Enabled bits stay; unimplemented features are not set.
    assert_eq!(acs_control_to_enable(&port(0x5f, 0x42)), Some(0x5f));
    assert_eq!(acs_control_to_enable(&port(0x05, 0)), Some(0x05));
    // A required feature enabled already stays enabled (set, never toggled).
    assert_eq!(acs_control_to_enable(&port(0x5f, 0x01)), Some(0x1d));
    assert_eq!(acs_control_to_enable(&edu("00:02.0")), None);
}

#[test]
fn ioh3420_without_acs_groups_everything_below_it() {
    let groups = Machine::new()
        .add(ioh3420("00:02.0", 1, 1))
        .add(pcie(edu("01:00.0"), PcieType::Endpoint))
        .groups();
    let expected: &[&[&str]] = &[&["00:02.0", "01:00.0"]];
    assert_eq!(members(&groups), expect(expected));
}

#[test]
fn x3130_switch_behind_an_acs_root_port() {
    let groups = Machine::new()
        .add(root_port("00:02.0", 1, 4))
        .add(x3130_upstream("01:00.0", 2, 4))
        .add(xio3130_downstream("02:00.0", 3, 3))
        .add(edu("03:00.0"))
        .add(xio3130_downstream("02:01.0", 4, 4))
        .add(pcie(
            function("04:00.0", 0x1b36, 0x0010),
            PcieType::Endpoint,
        ))
        .groups();
    // The upstream port is alone; each downstream port has no ACS, so its device joins it,
    // but sibling downstream ports stay apart: each was grouped when it was registered.
    let expected: &[&[&str]] = &[
        &["00:02.0"],
        &["01:00.0"],
        &["02:00.0", "03:00.0"],
        &["02:01.0", "04:00.0"],
    ];
    assert_eq!(members(&groups), expect(expected));
}

#[test]
fn pcie_pci_bridge_with_two_devices_is_one_group() {
    let groups = Machine::new()
        .add(root_port("00:02.0", 1, 2))
        .add(pcie_pci_bridge("01:00.0", 2, 2))
        .add(edu("02:01.0"))
        .add(edu("02:02.0"))
        .groups();
    let expected: &[&[&str]] = &[&["00:02.0"], &["01:00.0", "02:01.0", "02:02.0"]];
    assert_eq!(members(&groups), expect(expected));
}

#[test]
fn pci_bridges_share_one_group_with_everything_below() {
    let groups = Machine::new()
        .add(pci_bridge("00:03.0", 1, 2))
        .add(edu("01:01.0"))
        .add(pci_bridge("01:02.0", 2, 2))
        .add(edu("02:01.0"))
        .groups();
    let expected: &[&[&str]] = &[&["00:03.0", "01:01.0", "01:02.0", "02:01.0"]];
    assert_eq!(members(&groups), expect(expected));
    // Behind two conventional bridges the topmost one's address is what the IOMMU sees.
    let topology = Machine::new()
        .add(pci_bridge("00:03.0", 1, 2))
        .add(pci_bridge("01:02.0", 2, 2))
        .add(edu("02:01.0"))
        .topology();
    let aliases = dma_aliases(&topology, bdf("02:01.0")).expect("known function");
    assert_eq!(aliases, [bdf("02:01.0"), bdf("01:02.0"), bdf("00:03.0")]);
}

#[test]
fn multifunction_endpoints_without_acs_share_a_group() {
    let endpoint = |at| pcie(function(at, 0x1af4, 0x1041), PcieType::Endpoint);
    let groups = Machine::new()
        .add(root_port("00:02.0", 1, 1))
        .add(multifunction(endpoint("01:00.0")))
        .add(endpoint("01:00.1"))
        .add(multifunction(edu("00:03.0")))
        .add(edu("00:03.1"))
        .groups();
    assert!(together(&groups, "01:00.0", "01:00.1"));
    assert!(together(&groups, "00:03.0", "00:03.1"));
    assert!(!together(&groups, "00:02.0", "01:00.0"));
}

#[test]
fn multifunction_endpoints_with_acs_are_split() {
    let endpoint = |at| {
        let function = pcie(function(at, 0x1af4, 0x1041), PcieType::Endpoint);
        with_acs(function, 0x1d, 0)
    };
    let machine = Machine::new()
        .add(root_port("00:02.0", 1, 1))
        .add(multifunction(endpoint("01:00.0")))
        .add(endpoint("01:00.1"));
    let groups = machine.groups();
    let expected: &[&[&str]] = &[&["00:02.0"], &["01:00.0"], &["01:00.1"]];
    assert_eq!(members(&groups), expect(expected));
    // Only once their ACS is enabled.
    assert!(together(
        &compute_groups(&machine.as_found()),
        "01:00.0",
        "01:00.1"
    ));
}

#[test]
fn intel_integrated_endpoint_quirk_splits_a_multifunction_slot() {
    let slot = |vendor, kind| {
        let first = pcie(function("00:02.0", vendor, 0x10d3), kind);
        let second = pcie(function("00:02.1", vendor, 0x10d3), kind);
        Machine::new()
            .add(multifunction(first))
            .add(second)
            .groups()
    };
    use PcieType::{Endpoint, RootComplexIntegratedEndpoint as RcEnd};
    // e1000e on the root bus: Intel, integrated endpoint -> isolated though multifunction.
    let groups = slot(0x8086, RcEnd);
    assert_eq!(members(&groups), expect(&[&["00:02.0"], &["00:02.1"]]));
    assert_eq!(members(&groups), members(&e1000e_pair()));
    // The quirk needs both Intel and the integrated-endpoint type.
    assert_eq!(
        members(&slot(0x1af4, RcEnd)),
        expect(&[&["00:02.0", "00:02.1"]])
    );
    assert_eq!(
        members(&slot(0x8086, Endpoint)),
        expect(&[&["00:02.0", "00:02.1"]])
    );
}

/// Two e1000e functions on the root bus, as QEMU presents them.
fn e1000e_pair() -> Groups {
    use PcieType::RootComplexIntegratedEndpoint as RcEnd;
    Machine::new()
        .add(multifunction(e1000e("00:02.0", RcEnd)))
        .add(e1000e("00:02.1", RcEnd))
        .groups()
}

#[test]
fn pxb_pcie_root_bus_is_grouped_after_the_first_root_bus() {
    let machine = |roots: &[u8]| {
        Machine::with_roots(roots)
            .add(host_bridge("00:00.0"))
            .add(root_port("00:02.0", 1, 1))
            .add(edu("01:00.0"))
            // pxb-pcie: a host bridge on pcie.0 that opens root bus 0x40.
            .add(function("00:08.0", 0x1b36, 0x000b))
            .add(root_port("40:00.0", 0x41, 0x41))
            .add(edu("41:00.0"))
            .add(edu("40:01.0"))
    };
    let groups = machine(&[0x00, 0x40]).groups();
    let expected: &[&[&str]] = &[
        &["00:00.0"],
        &["00:02.0"],
        &["00:08.0"],
        &["01:00.0"],
        &["40:00.0"],
        &["40:01.0"],
        &["41:00.0"],
    ];
    assert_eq!(members(&groups), expect(expected));
    // The order the root buses were found in is the order they are grouped in.
    let reversed = machine(&[0x40, 0x00]).groups();
    assert_eq!(members(&reversed)[0], ["40:00.0"]);
    assert_eq!(members(&reversed)[3], ["00:00.0"]);
}

#[test]
fn requester_ids_behind_a_pcie_pci_bridge_are_deduplicated() {
    // The showcase machine's bridge: two edus behind pcie-pci-bridge 02:00.0 on bus 3.
    let machine = Machine::new()
        .add(root_port("00:06.0", 2, 3))
        .add(pcie_pci_bridge("02:00.0", 3, 3))
        .add(edu("03:01.0"))
        .add(edu("03:02.0"));
    let topology = machine.topology();
    let aliases = |at| dma_aliases(&topology, bdf(at)).expect("known function");
    assert_eq!(aliases("02:00.0"), [bdf("02:00.0")]);
    assert_eq!(aliases("03:01.0"), [bdf("03:01.0"), bdf("03:00.0")]);
    assert_eq!(aliases("03:02.0"), [bdf("03:02.0"), bdf("03:00.0")]);
    let groups = compute_groups(&topology);
    assert_eq!(
        requester_ids_of(&groups, "03:02.0"),
        ["02:00.0", "03:00.0", "03:01.0", "03:02.0"]
    );
    assert_eq!(requester_ids_of(&groups, "00:06.0"), ["00:06.0"]);
}

#[test]
fn i82801b11_behind_a_root_port_gets_linux_and_qemu_aliases() {
    let machine = Machine::new()
        .add(root_port("00:02.0", 1, 2))
        .add(i82801b11("01:00.0", 2, 2))
        .add(edu("02:01.0"));
    let topology = machine.topology();
    // Linux: (secondary bus, 00.0); QEMU 7.2: the bridge's own address.
    let aliases = dma_aliases(&topology, bdf("02:01.0")).expect("known function");
    assert_eq!(aliases, [bdf("02:01.0"), bdf("02:00.0"), bdf("01:00.0")]);
    let groups = compute_groups(&topology);
    assert_eq!(
        members(&groups),
        expect(&[&["00:02.0"], &["01:00.0", "02:01.0"]])
    );
    // On a root bus the quirk does not apply.
    let on_root = Machine::new()
        .add(i82801b11("00:0a.0", 1, 1))
        .add(edu("01:03.0"))
        .topology();
    let aliases = dma_aliases(&on_root, bdf("01:03.0")).expect("known function");
    assert_eq!(aliases, [bdf("01:03.0"), bdf("00:0a.0")]);
}

#[test]
fn the_pcie_bridge_alias_quirk_needs_a_conventional_bridge_with_a_quirk_id() {
    // A conventional bridge without a quirk ID behind a root port: its own address.
    let plain = Machine::new()
        .add(root_port("00:02.0", 1, 2))
        .add(pci_bridge("01:00.0", 2, 2))
        .add(edu("02:01.0"))
        .topology();
    let aliases = dma_aliases(&plain, bdf("02:01.0")).expect("known function");
    assert_eq!(aliases, [bdf("02:01.0"), bdf("01:00.0")]);
    // A quirk ID on a function with a PCI Express capability (a PCI-to-PCIe bridge): the
    // PCIe rules apply (its own address), not the quirk's (secondary bus, 00.0).
    let express = Machine::new()
        .add(root_port("00:02.0", 1, 2))
        .add(pcie(
            bridge(function("01:00.0", 0x8086, 0x244e), 2, 2),
            PcieType::PciToPcieBridge,
        ))
        .add(edu("02:01.0"))
        .topology();
    let aliases = dma_aliases(&express, bdf("02:01.0")).expect("known function");
    assert_eq!(aliases, [bdf("02:01.0"), bdf("01:00.0")]);
}

#[test]
fn quirk_dma_alias_joins_the_aliased_function_group() {
    // 00:03.0 also issues DMA as 00:05.0 (a quirk alias): 00:05.0 is found by the alias
    // search and joins 00:03.0's group; 00:04.0 stays apart.
    let mut aliased = edu("00:03.0");
    aliased.dma_alias_devfns = {
        let mut set = DevfnSet::new();
        set.insert(bdf("00:05.0").devfn());
        set
    };
    let machine = Machine::new()
        .add(aliased)
        .add(edu("00:04.0"))
        .add(edu("00:05.0"));
    let groups = machine.groups();
    assert_eq!(
        members(&groups),
        expect(&[&["00:03.0", "00:05.0"], &["00:04.0"]])
    );
    assert_eq!(requester_ids_of(&groups, "00:05.0"), ["00:03.0", "00:05.0"]);
}

#[test]
fn showcase_machine_groups() {
    // What `cargo xtask run` boots, as its boot report lists it: edu, nvme, virtio-blk and
    // e1000e on pcie.0 (nvme and e1000e are integrated endpoints there, virtio-blk is
    // conventional), an edu behind a root port, two edus behind a pcie-pci-bridge behind
    // another root port, and ICH9.
    use PcieType::RootComplexIntegratedEndpoint as RcEnd;
    let machine = Machine::new()
        .add(host_bridge("00:00.0"))
        .add(edu("00:01.0"))
        .add(pcie(function("00:02.0", 0x1b36, 0x0010), RcEnd))
        .add(function("00:03.0", 0x1af4, 0x1042))
        .add(e1000e("00:04.0", RcEnd))
        .add(root_port("00:05.0", 1, 1))
        .add(edu("01:00.0"))
        .add(root_port("00:06.0", 2, 3))
        .add(pcie_pci_bridge("02:00.0", 3, 3))
        .add(edu("03:01.0"))
        .add(edu("03:02.0"));
    let expected: &[&[&str]] = &[
        &["00:00.0"],
        &["00:01.0"],
        &["00:02.0"],
        &["00:03.0"],
        &["00:04.0"],
        &["00:05.0"],
        &["00:06.0"],
        &["00:1f.0", "00:1f.2", "00:1f.3"],
        &["01:00.0"],
        &["02:00.0", "03:01.0", "03:02.0"],
    ];
    assert_eq!(members(&ich9(machine).groups()), expect(expected));
}

#[test]
fn acs_features_a_port_lacks_count_as_enabled() {
    // A root port implementing only SV and RR, both enabled, isolates: Linux checks only the
    // required features the port implements.
    let groups = Machine::new()
        .add(with_acs(root_port_without_acs("00:02.0", 1, 1), 0x05, 0))
        .add(edu("01:00.0"))
        .groups();
    assert!(!together(&groups, "00:02.0", "01:00.0"));
}

#[test]
fn acs_must_hold_on_the_whole_path_to_the_root_bus() {
    // A downstream port with ACS below an ioh3420 without: the device behind it is not
    // isolated from the rest of the switch, so it joins its port (and so the ioh3420's group).
    let groups = Machine::new()
        .add(ioh3420("00:02.0", 1, 3))
        .add(x3130_upstream("01:00.0", 2, 3))
        .add(with_acs(xio3130_downstream("02:00.0", 3, 3), 0x1d, 0))
        .add(edu("03:00.0"))
        .groups();
    let expected: &[&[&str]] = &[&["00:02.0", "01:00.0", "02:00.0", "03:00.0"]];
    assert_eq!(members(&groups), expect(expected));
}
