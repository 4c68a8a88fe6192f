//! Real DMAR tables (QEMU captures and firmware dumps in `tests/data/dmar/`, provenance in
//! the README there) parse cleanly and say what their disassembly says they say; the QEMU
//! q35 builder reproduces QEMU's bytes exactly.

mod dmar_support;

use moat_iommu::Bdf;
use moat_iommu::dmar::{DeviceScope, Dmar, DmarFlags, ScopeKind};

use dmar_support::encode::encode;
use dmar_support::{data_dir, fixture, qemu};

/// `(kind, enumeration ID, start bus, [(device, function)...])`: a scope, compactly.
type ScopeSummary = (ScopeKind, u8, u8, Vec<(u8, u8)>);

fn scope_summary(scopes: &[DeviceScope]) -> Vec<ScopeSummary> {
    scopes
        .iter()
        .map(|scope| {
            let path = scope
                .path()
                .iter()
                .map(|e| (e.device(), e.function()))
                .collect();
            (
                scope.kind(),
                scope.enumeration_id(),
                scope.start_bus(),
                path,
            )
        })
        .collect()
}

fn parse_fixture(name: &str) -> Dmar {
    let bytes = fixture(name);
    Dmar::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_fixture_parses_cleanly() {
    let dir = data_dir();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "bin"))
        .collect();
    names.sort();
    assert!(
        !names.is_empty(),
        "no *.bin DMAR fixtures in {}: the real-table tests would pass vacuously",
        dir.display()
    );
    for path in names {
        let bytes = std::fs::read(&path).expect("readable fixture");
        let name = path.display();
        let dmar = Dmar::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(dmar.header().checksum_valid(), "{name}");
        assert_eq!(
            dmar.header().length() as usize,
            bytes.len(),
            "{name}: file is the whole table"
        );
        assert!(
            !dmar.units().is_empty(),
            "{name}: a DMAR table declares at least one unit"
        );
        // Parsing what we re-encode gives the same model.
        let again =
            Dmar::parse(&encode(&dmar)).unwrap_or_else(|e| panic!("{name} re-encoded: {e}"));
        assert_eq!(again.units(), dmar.units(), "{name}");
        assert_eq!(again.reserved_memory(), dmar.reserved_memory(), "{name}");
        assert_eq!(again.andd(), dmar.andd(), "{name}");
        // One summary line for the header and one per structure.
        let summary = dmar.to_string();
        let structures = dmar.structure_count();
        assert_eq!(
            summary.lines().count(),
            1 + structures,
            "{name}:\n{summary}"
        );
    }
}

#[test]
fn qemu_builder_reproduces_the_captured_default_table() {
    assert_eq!(qemu::q35_default(), fixture("qemu-q35-default.bin"));
}

#[test]
fn qemu_builder_reproduces_the_captured_bridges_table() {
    assert_eq!(
        qemu::q35_iotlb_bridges(),
        fixture("qemu-q35-iotlb-bridges.bin")
    );
}

#[test]
fn qemu_default_table_contents() {
    let dmar = parse_fixture("qemu-q35-default.bin");
    assert_eq!(dmar.header().oem_id(), b"BOCHS ");
    assert_eq!(dmar.header().revision(), 1);
    assert_eq!(dmar.host_address_width(), 38);
    assert_eq!(dmar.address_width_bits(), 39);
    assert_eq!(dmar.flags(), DmarFlags::INTR_REMAP);
    assert_eq!(dmar.units().len(), 1);
    let unit = &dmar.units()[0];
    assert!(!unit.include_pci_all(), "QEMU lists devices explicitly");
    assert_eq!(unit.register_base(), 0xfed9_0000);
    assert_eq!(unit.register_set_len(), 4096);
    use ScopeKind::{IoApic, PciEndpoint};
    assert_eq!(
        scope_summary(unit.scopes()),
        [
            (IoApic, 0, 0xff, vec![(0, 0)]),
            (PciEndpoint, 0, 0, vec![(0x00, 0)]),
            (PciEndpoint, 0, 0, vec![(0x01, 0)]),
            (PciEndpoint, 0, 0, vec![(0x02, 0)]),
            (PciEndpoint, 0, 0, vec![(0x1f, 0)]),
            (PciEndpoint, 0, 0, vec![(0x1f, 2)]),
            (PciEndpoint, 0, 0, vec![(0x1f, 3)]),
        ]
    );
    assert!(dmar.reserved_memory().is_empty() && dmar.atsr().is_empty());
    assert!(dmar.satc().is_empty() && dmar.andd().is_empty() && dmar.skipped().is_empty());
    assert_eq!(dmar.include_all_unit(0), None);
}

#[test]
fn qemu_bridges_table_contents() {
    let dmar = parse_fixture("qemu-q35-iotlb-bridges.bin");
    assert_eq!(dmar.address_width_bits(), 48);
    let scopes = dmar.units()[0].scopes();
    assert_eq!(scopes.len(), 14);
    let bridges: Vec<String> = scopes
        .iter()
        .filter(|s| s.kind() == ScopeKind::PciSubHierarchy)
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        bridges,
        [
            "bridge 00:05.0",
            "bridge 00:06.0",
            "bridge 00:07.0",
            "bridge 40:00.0"
        ]
    );
    assert_eq!(dmar.atsr().len(), 1);
    assert!(dmar.atsr()[0].all_ports());
    assert!(dmar.atsr()[0].scopes().is_empty());
}

#[test]
fn dell_precision_m6800_haswell() {
    let dmar = parse_fixture("dell-precision-m6800.bin");
    assert_eq!(dmar.header().oem_id(), b"INTEL ");
    assert_eq!(dmar.flags(), DmarFlags::INTR_REMAP);
    let bases: Vec<_> = dmar.units().iter().map(|u| u.register_base()).collect();
    assert_eq!(bases, [0xfed9_0000, 0xfed9_1000]);
    assert!(
        dmar.units()[1].include_pci_all(),
        "the last unit covers the rest"
    );
    assert!(!dmar.units()[0].include_pci_all());
    use ScopeKind::{IoApic, MsiCapableHpet, PciEndpoint};
    assert_eq!(
        scope_summary(dmar.units()[0].scopes()),
        [(PciEndpoint, 0, 0, vec![(2, 0)])],
        "the graphics unit"
    );
    assert_eq!(
        scope_summary(dmar.units()[1].scopes()),
        [
            (IoApic, 8, 0xf0, vec![(0x1f, 0)]),
            (MsiCapableHpet, 0, 0xf0, vec![(0x0f, 0)]),
        ]
    );
    let regions: Vec<_> = dmar
        .reserved_memory()
        .iter()
        .map(|r| (r.base(), r.limit(), r.scopes().len()))
        .collect();
    assert_eq!(
        regions,
        [(0xc7f1_9000, 0xc7f2_7fff, 3), (0xcd00_0000, 0xcf1f_ffff, 1)]
    );
    assert_eq!(dmar.reserved_memory()[0].len(), 0xf000);
}

#[test]
fn dell_xps13_9310_tiger_lake() {
    let dmar = parse_fixture("dell-xps13-9310.bin");
    assert_eq!(dmar.header().revision(), 2);
    assert_eq!(dmar.header().oem_table_id(), b"Dell Inc");
    let bases: Vec<_> = dmar.units().iter().map(|u| u.register_base()).collect();
    assert_eq!(bases, [0xfed9_0000, 0xfed8_4000, 0xfed8_6000, 0xfed9_1000]);
    let include_all: Vec<_> = dmar.units().iter().map(|u| u.include_pci_all()).collect();
    assert_eq!(include_all, [false, false, false, true]);
    assert_eq!(dmar.include_all_unit(0), Some(3));
    // The Thunderbolt root ports 07.0 and 07.2 each have a unit.
    assert_eq!(dmar.units()[1].scopes()[0].to_string(), "bridge 00:07.0");
    assert_eq!(dmar.units()[2].scopes()[0].to_string(), "bridge 00:07.2");
    assert_eq!(dmar.reserved_memory().len(), 1);
    let rmrr = &dmar.reserved_memory()[0];
    assert_eq!((rmrr.base(), rmrr.limit()), (0x6c00_0000, 0x707f_ffff));
}

#[test]
fn surface_book_2_acpi_namespace_devices() {
    let dmar = parse_fixture("microsoft-surface-book-2.bin");
    assert_eq!(dmar.units().len(), 2);
    assert!(dmar.units()[1].include_pci_all());
    let names: Vec<_> = dmar
        .andd()
        .iter()
        .map(|a| (a.device_number(), a.name().expect("ASCII name")))
        .collect();
    assert_eq!(
        names,
        [
            (1, "\\_SB.PCI0.I2C0"),
            (2, "\\_SB.PCI0.I2C1"),
            (3, "\\_SB.PCI0.I2C2"),
            (4, "\\_SB.PCI0.I2C3"),
            (9, "\\_SB.PCI0.UA00"),
        ]
    );
    // Every type-5 scope refers to a declared ANDD.
    let acpi_scopes: Vec<_> = dmar.units()[1]
        .scopes()
        .iter()
        .filter(|s| s.kind() == ScopeKind::AcpiNamespaceDevice)
        .collect();
    assert_eq!(acpi_scopes.len(), 5);
    for scope in acpi_scopes {
        assert!(
            dmar.andd_by_number(scope.enumeration_id()).is_some(),
            "{scope}"
        );
    }
    assert_eq!(
        dmar.units()[1].scopes()[2].to_string(),
        "acpi-device 1 at 00:15.0"
    );
    let regions: Vec<_> = dmar
        .reserved_memory()
        .iter()
        .map(|r| (r.base(), r.limit()))
        .collect();
    assert_eq!(
        regions,
        [(0x3e2e_0000, 0x3e2f_ffff), (0x8d00_0000, 0x8f7f_ffff)]
    );
}

#[test]
fn surface_pro_8_five_units() {
    let dmar = parse_fixture("microsoft-surface-pro-8.bin");
    assert_eq!(
        dmar.flags(),
        DmarFlags::INTR_REMAP | DmarFlags::DMA_CTRL_PLATFORM_OPT_IN
    );
    assert_eq!(dmar.units().len(), 5);
    assert_eq!(dmar.include_all_unit(0), Some(4));
    assert!(dmar.units()[..4].iter().all(|u| !u.include_pci_all()));
    assert_eq!(dmar.reserved_memory()[0].base(), 0x8380_0000);
    assert_eq!(dmar.reserved_memory()[0].limit(), 0x87bf_ffff);
}

#[test]
fn surface_pro_10_satc_and_unknown_type_6() {
    let dmar = parse_fixture("microsoft-surface-pro-10-business.bin");
    assert_eq!(dmar.address_width_bits(), 42);
    assert_eq!(dmar.units().len(), 2);
    assert!(dmar.units()[1].include_pci_all());
    assert_eq!(dmar.satc().len(), 1);
    let satc = &dmar.satc()[0];
    assert!(satc.atc_required());
    let devices: Vec<_> = satc.scopes().iter().map(|s| s.first_hop(0)).collect();
    let bdf = |d, f| Bdf::new(0, 0, d, f).unwrap();
    assert_eq!(devices, [bdf(2, 0), bdf(5, 0), bdf(0x0b, 0)]);
    // Type 6 (SIDP) is newer than this parser: skipped with a note, not an error.
    assert_eq!(dmar.skipped().len(), 1);
    assert_eq!(dmar.skipped()[0].kind(), 6);
    assert_eq!(dmar.skipped()[0].length(), 32);
    assert_eq!(dmar.skipped()[0].offset(), 0x88);
    assert!(
        dmar.to_string()
            .ends_with("skipped structure type 6 (32 bytes) at 0x88")
    );
}

#[test]
fn asrock_x99_broadwell_ep() {
    let dmar = parse_fixture("asrock-x99-extreme4-l3.81.bin");
    assert_eq!(dmar.address_width_bits(), 46);
    assert_eq!(
        dmar.flags(),
        DmarFlags::INTR_REMAP | DmarFlags::X2APIC_OPT_OUT
    );
    assert_eq!(dmar.units().len(), 2);
    assert_eq!(dmar.include_all_unit(0), Some(1));
    use ScopeKind::{IoApic, MsiCapableHpet};
    assert_eq!(
        scope_summary(dmar.units()[1].scopes()),
        [
            (IoApic, 1, 0xf0, vec![(0x1f, 7)]),
            (IoApic, 2, 0x00, vec![(0x05, 4)]),
            (MsiCapableHpet, 0, 0xf0, vec![(0x0f, 0)]),
        ]
    );
    let rmrr = &dmar.reserved_memory()[0];
    assert_eq!((rmrr.base(), rmrr.limit()), (0x5ce1_e000, 0x5ce2_dfff));
    assert_eq!(dmar.atsr().len(), 1);
    assert!(!dmar.atsr()[0].all_ports());
    assert_eq!(dmar.atsr()[0].scopes().len(), 2);
    assert_eq!(dmar.rhsa().len(), 1);
    assert_eq!(dmar.rhsa()[0].register_base(), 0xfbff_c000);
    assert_eq!(dmar.rhsa()[0].proximity_domain(), 0);
}

#[test]
fn xeon_sp_units_without_include_all() {
    let dmar = parse_fixture("google-ecclesia-xeon-sp.bin");
    let bases: Vec<_> = dmar.units().iter().map(|u| u.register_base()).collect();
    assert_eq!(bases, [0xd37f_c000, 0xe0ff_c000, 0xee7f_c000]);
    assert_eq!(dmar.include_all_unit(0), None);
    assert_eq!(dmar.units()[0].scopes().len(), 10);
    assert_eq!(
        dmar.units()[0].scopes()[0].to_string(),
        "ioapic 15 at 80:05.4"
    );
    assert_eq!(dmar.atsr().len(), 2);
    assert_eq!(dmar.atsr()[1].scopes().len(), 4);
    // The RHSAs name units this (trimmed) table does not declare; that is not an error.
    let rhsa: Vec<_> = dmar.rhsa().iter().map(|r| r.register_base()).collect();
    assert_eq!(rhsa, [0x9d7f_c000, 0xaaff_c000]);
    let rmrr = &dmar.reserved_memory()[0];
    assert_eq!((rmrr.base(), rmrr.limit()), (0x7546_0000, 0x7547_0fff));
}
