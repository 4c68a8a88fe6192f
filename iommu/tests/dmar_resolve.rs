//! Device scopes walked through an in-memory PCI topology, and the choice of VT-d unit for a
//! device.

mod dmar_support;

use moat_iommu::Bdf;
use moat_iommu::dmar::{
    DeviceScope, Dmar, PathElement, ResolvedScope, ScopeError, ScopeKind, resolve_scope,
    unit_for_device,
};

use dmar_support::builder::{Scope, TableBuilder};
use dmar_support::topology::{FakeTopology, bdf};
use dmar_support::{fixture, qemu};

/// Segment 0:
///
/// ```text
/// 00:00.0 host bridge        00:02.0 graphics         00:1f.0 LPC
/// 00:1c.0 root port  [01..=03]
///   01:00.0 switch upstream  [02..=03]
///     02:01.0 switch downstream [03..=03]
///       03:00.0 NVMe
/// 00:07.0 root port  [04..=06]
///   04:00.0 NIC
/// ```
///
/// Segment 1 has only 00:00.0.
fn topology() -> FakeTopology {
    FakeTopology::new()
        .device(bdf(0, 0, 0))
        .device(bdf(0, 2, 0))
        .device(bdf(0, 0x1f, 0))
        .bridge(bdf(0, 0x1c, 0), 1, 3)
        .bridge(bdf(1, 0, 0), 2, 3)
        .bridge(bdf(2, 1, 0), 3, 3)
        .device(bdf(3, 0, 0))
        .bridge(bdf(0, 7, 0), 4, 6)
        .device(bdf(4, 0, 0))
        .device(Bdf::new(1, 0, 0, 0).unwrap())
}

fn scope(kind: ScopeKind, id: u8, start_bus: u8, path: &[(u8, u8)]) -> DeviceScope {
    let path = path
        .iter()
        .map(|&(d, f)| PathElement::new(d, f).unwrap())
        .collect();
    DeviceScope::new(kind, id, start_bus, path).unwrap()
}

fn endpoint(start_bus: u8, path: &[(u8, u8)]) -> DeviceScope {
    scope(ScopeKind::PciEndpoint, 0, start_bus, path)
}

fn sub_hierarchy(start_bus: u8, path: &[(u8, u8)]) -> DeviceScope {
    scope(ScopeKind::PciSubHierarchy, 0, start_bus, path)
}

/// The path from bus 0 to the NVMe drive through the root port and both switch ports.
const NVME_PATH: [(u8, u8); 4] = [(0x1c, 0), (0, 0), (1, 0), (0, 0)];

#[test]
fn an_empty_path_is_not_a_scope() {
    assert_eq!(DeviceScope::new(ScopeKind::PciEndpoint, 0, 0, vec![]), None);
    assert_eq!(PathElement::new(32, 0), None);
    assert_eq!(PathElement::new(0, 8), None);
}

#[test]
fn single_hop_endpoint() {
    assert_eq!(
        resolve_scope(&endpoint(0, &[(2, 0)]), 0, &topology()),
        Ok(ResolvedScope::Endpoint(bdf(0, 2, 0)))
    );
}

#[test]
fn multi_hop_path_resolves_through_bridges() {
    assert_eq!(
        resolve_scope(&endpoint(0, &NVME_PATH), 0, &topology()),
        Ok(ResolvedScope::Endpoint(bdf(3, 0, 0)))
    );
    assert_eq!(
        resolve_scope(&sub_hierarchy(0, &NVME_PATH[..3]), 0, &topology()),
        Ok(ResolvedScope::SubHierarchy {
            bridge: bdf(2, 1, 0),
            secondary_bus: 3,
            subordinate_bus: 3
        })
    );
}

#[test]
fn sub_hierarchy_covers_the_bridge_and_everything_below() {
    let resolved = resolve_scope(&sub_hierarchy(0, &[(0x1c, 0)]), 0, &topology()).unwrap();
    assert_eq!(
        resolved,
        ResolvedScope::SubHierarchy {
            bridge: bdf(0, 0x1c, 0),
            secondary_bus: 1,
            subordinate_bus: 3
        }
    );
    for covered in [bdf(0, 0x1c, 0), bdf(1, 0, 0), bdf(2, 1, 0), bdf(3, 0, 0)] {
        assert!(resolved.covers(covered), "{covered}");
    }
    let other_segment = Bdf::new(1, 2, 0, 0).unwrap();
    for outside in [bdf(0, 2, 0), bdf(0, 0x1c, 1), bdf(4, 0, 0), other_segment] {
        assert!(!resolved.covers(outside), "{outside}");
    }
}

#[test]
fn path_that_leads_nowhere() {
    let topology = topology();
    // Absent at the first hop, in the middle, and at the end.
    assert_eq!(
        resolve_scope(&endpoint(0, &[(5, 0)]), 0, &topology),
        Err(ScopeError::PathLeadsNowhere {
            depth: 0,
            at: bdf(0, 5, 0)
        })
    );
    assert_eq!(
        resolve_scope(&endpoint(0, &[(0x1c, 0), (3, 0), (0, 0)]), 0, &topology),
        Err(ScopeError::PathLeadsNowhere {
            depth: 1,
            at: bdf(1, 3, 0)
        })
    );
    assert_eq!(
        resolve_scope(&endpoint(0, &[(7, 0), (0, 1)]), 0, &topology),
        Err(ScopeError::PathLeadsNowhere {
            depth: 1,
            at: bdf(4, 0, 1)
        })
    );
    // The right BDF in the wrong segment.
    assert_eq!(
        resolve_scope(&endpoint(0, &[(2, 0)]), 1, &topology),
        Err(ScopeError::PathLeadsNowhere {
            depth: 0,
            at: Bdf::new(1, 0, 2, 0).unwrap()
        })
    );
}

#[test]
fn intermediate_hop_must_be_a_bridge() {
    let topology = topology();
    assert_eq!(
        resolve_scope(&endpoint(0, &[(2, 0), (0, 0)]), 0, &topology),
        Err(ScopeError::NotABridge {
            depth: 0,
            at: bdf(0, 2, 0)
        })
    );
    // A sub-hierarchy that ends at an endpoint spans nothing.
    assert_eq!(
        resolve_scope(&sub_hierarchy(0, &[(7, 0), (0, 0)]), 0, &topology),
        Err(ScopeError::NotABridge {
            depth: 1,
            at: bdf(4, 0, 0)
        })
    );
}

#[test]
fn bridge_with_an_inverted_bus_range() {
    let topology = FakeTopology::new().bridge(bdf(0, 1, 0), 5, 4);
    assert_eq!(
        resolve_scope(&sub_hierarchy(0, &[(1, 0)]), 0, &topology),
        Err(ScopeError::InvalidBusRange {
            bridge: bdf(0, 1, 0),
            secondary_bus: 5,
            subordinate_bus: 4
        })
    );
}

#[test]
fn interrupt_sources_resolve_to_source_ids_without_config_space() {
    let topology = topology();
    // QEMU's I/O APIC sits on pseudo bus 0xff, which no bridge leads to.
    let resolved = resolve_scope(&scope(ScopeKind::IoApic, 0, 0xff, &[(0, 0)]), 0, &topology);
    assert_eq!(
        resolved,
        Ok(ResolvedScope::IoApic {
            id: 0,
            source_id: bdf(0xff, 0, 0)
        })
    );
    assert!(!resolved.unwrap().covers(bdf(0xff, 0, 0)));
    assert_eq!(
        resolve_scope(
            &scope(ScopeKind::MsiCapableHpet, 2, 0xf0, &[(0x0f, 0)]),
            0,
            &topology
        ),
        Ok(ResolvedScope::Hpet {
            id: 2,
            source_id: bdf(0xf0, 0x0f, 0)
        })
    );
    // An ACPI device behind a bridge: the bridge must exist, the last hop need not.
    assert_eq!(
        resolve_scope(
            &scope(ScopeKind::AcpiNamespaceDevice, 9, 0, &[(0x1c, 0), (4, 2)]),
            0,
            &topology
        ),
        Ok(ResolvedScope::AcpiDevice {
            number: 9,
            source_id: bdf(1, 4, 2)
        })
    );
    assert_eq!(
        resolve_scope(
            &scope(ScopeKind::Reserved(9), 0, 0, &[(2, 0)]),
            0,
            &topology
        ),
        Err(ScopeError::ReservedKind(9))
    );
}

/// Four units, from widest to narrowest claim, plus the INCLUDE_PCI_ALL unit.
fn nested_units() -> Dmar {
    let table = TableBuilder::new(38, 0)
        .drhd(0, 0, 0, 0x1000, &[Scope::bridge(0, &[(0x1c, 0)])])
        .drhd(0, 0, 0, 0x2000, &[Scope::bridge(0, &NVME_PATH[..2])])
        .drhd(0, 0, 0, 0x3000, &[Scope::endpoint(0, &NVME_PATH)])
        .drhd(
            0,
            0,
            0,
            0x4000,
            &[
                // Firmware listing a device that is not there: skipped, not fatal.
                Scope::endpoint(0, &[(0x1d, 0)]),
                Scope::endpoint(0, &[(2, 0)]),
            ],
        )
        .drhd(1, 0, 0, 0x5000, &[Scope::ioapic(0, 0xf0, &[(0x1f, 0)])])
        .build();
    Dmar::parse(&table).unwrap()
}

#[test]
fn the_most_specific_unit_wins() {
    let dmar = nested_units();
    let topology = topology();
    let unit = |at| unit_for_device(&dmar, at, &topology);
    assert_eq!(unit(bdf(3, 0, 0)), Some(2), "endpoint scope");
    assert_eq!(unit(bdf(2, 1, 0)), Some(1), "narrower sub-hierarchy");
    assert_eq!(unit(bdf(1, 0, 0)), Some(1), "the bridge of a sub-hierarchy");
    assert_eq!(unit(bdf(0, 0x1c, 0)), Some(0), "the root port itself");
    assert_eq!(
        unit(bdf(0, 2, 0)),
        Some(3),
        "after an absent device in the same unit"
    );
    assert_eq!(
        unit(bdf(0, 0x1f, 0)),
        Some(4),
        "not listed: INCLUDE_PCI_ALL"
    );
    assert_eq!(unit(bdf(4, 0, 0)), Some(4));
    assert_eq!(
        unit_for_device(&dmar, Bdf::new(1, 0, 0, 0).unwrap(), &topology),
        None,
        "no unit for segment 1"
    );
}

#[test]
fn qemu_lists_devices_and_has_no_catch_all() {
    let dmar = Dmar::parse(&qemu::q35_default()).unwrap();
    let topology = FakeTopology::new()
        .device(bdf(0, 0, 0))
        .device(bdf(0, 1, 0))
        .device(bdf(0, 2, 0))
        .device(bdf(0, 0x1f, 0))
        .device(bdf(0, 0x1f, 2))
        .device(bdf(0, 0x1f, 3))
        // Present but not in the table (added after the table was built).
        .device(bdf(0, 3, 0));
    for listed in [(0, 0), (1, 0), (2, 0), (0x1f, 0), (0x1f, 2), (0x1f, 3)] {
        let at = bdf(0, listed.0, listed.1);
        assert_eq!(unit_for_device(&dmar, at, &topology), Some(0), "{at}");
    }
    assert_eq!(unit_for_device(&dmar, bdf(0, 3, 0), &topology), None);
}

#[test]
fn qemu_root_ports_claim_their_buses() {
    let dmar = Dmar::parse(&fixture("qemu-q35-iotlb-bridges.bin")).unwrap();
    let topology = FakeTopology::new()
        .bridge(bdf(0, 5, 0), 1, 1)
        .device(bdf(1, 0, 0))
        .bridge(bdf(0, 7, 0), 2, 2)
        .device(bdf(2, 3, 0))
        .bridge(bdf(0x40, 0, 0), 0x41, 0x41)
        .device(bdf(0x41, 0, 0));
    for device in [bdf(1, 0, 0), bdf(2, 3, 0), bdf(0x41, 0, 0)] {
        assert_eq!(
            unit_for_device(&dmar, device, &topology),
            Some(0),
            "{device}"
        );
    }
    assert_eq!(unit_for_device(&dmar, bdf(3, 0, 0), &topology), None);
}

#[test]
fn qemu_expander_root_bus_scopes_start_at_its_bus() {
    // What QEMU 7.2 builds for `-device pxb-pcie,bus_nr=0x40,addr=0x9` with a pcie-root-port
    // at 40:00.0 and a pci-bridge at 40:01.0: one scope per device on each root bus, the
    // expander's with start bus 0x40.
    let table = TableBuilder::new(38, 1)
        .drhd(
            0,
            0,
            0,
            0xfed9_0000,
            &[
                Scope::ioapic(0, 0xff, &[(0, 0)]),
                Scope::endpoint(0, &[(0, 0)]),
                Scope::endpoint(0, &[(9, 0)]),
                Scope::bridge(0x40, &[(0, 0)]),
                Scope::bridge(0x40, &[(1, 0)]),
            ],
        )
        .build();
    let dmar = Dmar::parse(&table).unwrap();
    let topology = FakeTopology::new()
        .device(bdf(0, 0, 0))
        .device(bdf(0, 9, 0))
        .bridge(bdf(0x40, 0, 0), 0x41, 0x41)
        .device(bdf(0x41, 0, 0))
        .bridge(bdf(0x40, 1, 0), 0x42, 0x42)
        .device(bdf(0x42, 2, 0));
    for device in [
        bdf(0, 9, 0),
        bdf(0x40, 0, 0),
        bdf(0x40, 1, 0),
        bdf(0x41, 0, 0),
        bdf(0x42, 2, 0),
    ] {
        assert_eq!(
            unit_for_device(&dmar, device, &topology),
            Some(0),
            "{device}"
        );
    }
    // Not listed (nothing at 40:02.0) and not below a listed bridge.
    assert_eq!(unit_for_device(&dmar, bdf(0x40, 2, 0), &topology), None);
    assert_eq!(unit_for_device(&dmar, bdf(0x43, 0, 0), &topology), None);
}

#[test]
fn dell_xps13_thunderbolt_ports_have_their_own_units() {
    let dmar = Dmar::parse(&fixture("dell-xps13-9310.bin")).unwrap();
    let topology = FakeTopology::new()
        .device(bdf(0, 2, 0))
        .bridge(bdf(0, 7, 0), 0x20, 0x2c)
        .bridge(bdf(0, 7, 2), 0x2d, 0x39)
        .device(bdf(0x21, 0, 0))
        .device(bdf(0x2d, 0, 0))
        .device(bdf(0, 0x14, 0));
    let unit = |at| unit_for_device(&dmar, at, &topology);
    assert_eq!(unit(bdf(0, 2, 0)), Some(0), "graphics");
    assert_eq!(unit(bdf(0x21, 0, 0)), Some(1), "behind 00:07.0");
    assert_eq!(unit(bdf(0x2d, 0, 0)), Some(2), "behind 00:07.2");
    assert_eq!(unit(bdf(0, 0x14, 0)), Some(3), "everything else");
}
