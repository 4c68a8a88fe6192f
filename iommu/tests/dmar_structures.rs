//! The DMAR parser on well-formed hand-built tables: every structure type with its fields,
//! the field checks (alignment, ordering, one INCLUDE_PCI_ALL per segment), the boot-report
//! summary, and the lazy walker.

mod dmar_support;

use moat_iommu::dmar::{Dmar, DmarError, ParseOptions, ScopeKind, Structure, Structures};

use dmar_support::builder::{FIRST_STRUCTURE, Scope, TableBuilder, fix_checksum};

fn parse_err(bytes: &[u8]) -> DmarError {
    Dmar::parse(bytes).expect_err("table must be rejected")
}

// ---------------------------------------------------------------- field checks

#[test]
fn drhd_register_base_must_be_page_aligned() {
    let table = TableBuilder::new(38, 0)
        .drhd(0, 0, 0, 0xfed9_0800, &[])
        .build();
    assert_eq!(
        parse_err(&table),
        DmarError::MisalignedRegisterBase {
            offset: FIRST_STRUCTURE,
            base: 0xfed9_0800
        }
    );
}

#[test]
fn one_include_all_unit_per_segment() {
    let table = TableBuilder::new(38, 0)
        .drhd(1, 0, 0, 0x1000, &[])
        .drhd(1, 0, 1, 0x2000, &[])
        .drhd(1, 0, 0, 0x3000, &[])
        .build();
    assert_eq!(
        parse_err(&table),
        DmarError::DuplicateIncludeAll {
            offset: FIRST_STRUCTURE + 32,
            segment: 0
        }
    );
    let table = TableBuilder::new(38, 0)
        .drhd(1, 0, 0, 0x1000, &[])
        .drhd(1, 0, 1, 0x2000, &[])
        .build();
    let dmar = Dmar::parse(&table).unwrap();
    assert_eq!(dmar.include_all_unit(0), Some(0));
    assert_eq!(dmar.include_all_unit(1), Some(1));
    assert_eq!(dmar.include_all_unit(2), None);
}

#[test]
fn rmrr_bounds_must_be_page_aligned_and_ordered() {
    let at = FIRST_STRUCTURE;
    let cases = [
        (0x1000, 0x1fff, None),
        (0x1800, 0x1fff, Some("misaligned")),
        (0x1000, 0x1ffe, Some("misaligned")),
        (0x1000, 0x2000, Some("misaligned")),
        (0x2000, 0x0fff, Some("inverted")),
        (0x1000, u64::MAX, Some("misaligned")),
        (0, u64::MAX - 0x1000, None),
    ];
    for (base, limit, problem) in cases {
        let table = TableBuilder::new(38, 0)
            .rmrr(0, base, limit, &[Scope::endpoint(0, &[(0x14, 0)])])
            .build();
        let result = Dmar::parse(&table);
        match problem {
            None => {
                let dmar = result.unwrap();
                let rmrr = &dmar.reserved_memory()[0];
                assert_eq!((rmrr.base(), rmrr.limit()), (base, limit));
                assert_eq!(rmrr.end(), limit + 1);
                assert_eq!(rmrr.len(), limit + 1 - base);
            }
            Some("inverted") => assert_eq!(
                result,
                Err(DmarError::InvertedReservedRegion {
                    offset: at,
                    base,
                    limit
                })
            ),
            Some(_) => assert_eq!(
                result,
                Err(DmarError::MisalignedReservedRegion {
                    offset: at,
                    base,
                    limit
                })
            ),
        }
    }
}

// ---------------------------------------------------------------- every structure type

fn every_type() -> Vec<u8> {
    TableBuilder::new(45, 0b011)
        .oem(b"ALASKA", b"A M I \0\0", 1)
        .creator(b"INTL", 0x2009_1013)
        .drhd(0, 0, 0, 0xfbff_d000, &[Scope::endpoint(0, &[(0x1b, 0)])])
        .drhd(
            0,
            0x02,
            1,
            0xe000_0000,
            &[
                Scope::bridge(0x80, &[(0, 0)]),
                Scope::endpoint(0x80, &[(3, 0), (0, 0), (1, 1)]),
            ],
        )
        .drhd(
            1,
            0,
            0,
            0xfbff_c000,
            &[
                Scope::ioapic(1, 0xf0, &[(0x1f, 7)]),
                Scope::hpet(0, 0xf0, &[(0x0f, 0)]),
                Scope::acpi(1, 0, &[(0x15, 0)]),
                Scope::raw(7, 0, 0, &[(1, 2)]),
            ],
        )
        .rmrr(
            0,
            0x5ce1_e000,
            0x5ce2_dfff,
            &[Scope::endpoint(0, &[(0x14, 0)])],
        )
        .atsr(
            0,
            0,
            &[Scope::bridge(0, &[(1, 0)]), Scope::bridge(0, &[(3, 0)])],
        )
        .atsr(1, 1, &[])
        .rhsa(0xfbff_c000, 3)
        .andd(1, b"\\_SB.PCI0.I2C0", 20)
        .satc(1, 0, &[Scope::endpoint(0, &[(2, 0)])])
        .structure(6, &[0xaa; 28])
        .structure(0xffff, &[])
        .build()
}

#[test]
fn every_structure_type_parses() {
    let dmar = Dmar::parse(&every_type()).unwrap();
    assert_eq!(dmar.header().oem_id(), b"ALASKA");
    assert_eq!(dmar.header().creator_revision(), 0x2009_1013);
    assert_eq!(dmar.address_width_bits(), 46);

    let units = dmar.units();
    assert_eq!(units.len(), 3);
    assert_eq!(units[1].segment(), 1);
    assert_eq!(units[1].size_field(), 2);
    assert_eq!(units[1].register_set_len(), 16 * 1024, "2^2 pages");
    assert_eq!(units[0].register_set_len(), 4096);
    let deep = &units[1].scopes()[1];
    assert_eq!(deep.kind(), ScopeKind::PciEndpoint);
    assert_eq!(deep.path().len(), 3, "multi-element path");
    assert_eq!(deep.to_string(), "endpoint 80:03.0/00.0/01.1");
    let kinds: Vec<_> = units[2].scopes().iter().map(|s| s.kind()).collect();
    assert_eq!(
        kinds,
        [
            ScopeKind::IoApic,
            ScopeKind::MsiCapableHpet,
            ScopeKind::AcpiNamespaceDevice,
            ScopeKind::Reserved(7),
        ]
    );
    assert_eq!(units[2].scopes()[0].enumeration_id(), 1);

    assert_eq!(dmar.reserved_memory().len(), 1);
    assert_eq!(dmar.atsr().len(), 2);
    assert!(!dmar.atsr()[0].all_ports() && dmar.atsr()[1].all_ports());
    assert_eq!(dmar.atsr()[1].segment(), 1);
    assert_eq!(dmar.rhsa()[0].proximity_domain(), 3);
    assert_eq!(dmar.andd()[0].name(), Some("\\_SB.PCI0.I2C0"));
    assert_eq!(dmar.andd_by_number(1).map(|a| a.device_number()), Some(1));
    assert!(dmar.satc()[0].atc_required());

    let skipped: Vec<_> = dmar
        .skipped()
        .iter()
        .map(|s| (s.kind(), s.length()))
        .collect();
    assert_eq!(skipped, [(6, 32), (0xffff, 4)]);
}

#[test]
fn summary_has_one_line_per_structure() {
    let dmar = Dmar::parse(&every_type()).unwrap();
    let summary = dmar.to_string();
    let expected = [
        "DMAR rev 1 oem \"ALASKA\" \"A M I \\x00\\x00\": 46-bit DMA addresses, flags INTR_REMAP|X2APIC_OPT_OUT",
        "DRHD segment 0 registers 0xfbffd000 (4 KiB): endpoint 00:1b.0",
        "DRHD segment 1 registers 0xe0000000 (16 KiB): bridge 80:00.0, endpoint 80:03.0/00.0/01.1",
        "DRHD segment 0 registers 0xfbffc000 (4 KiB) INCLUDE_PCI_ALL: ioapic 1 at f0:1f.7, hpet 0 at f0:0f.0, acpi-device 1 at 00:15.0, reserved-type-7 at 00:01.2",
        "RMRR segment 0 0x5ce1e000..=0x5ce2dfff: endpoint 00:14.0",
        "ATSR segment 0 flags none: bridge 00:01.0, bridge 00:03.0",
        "ATSR segment 1 flags ALL_PORTS",
        "RHSA registers 0xfbffc000 proximity domain 3",
        "ANDD device 1 \"\\_SB.PCI0.I2C0\"",
        "SATC segment 0 flags ATC_REQUIRED: endpoint 00:02.0",
        "skipped structure type 6 (32 bytes) at 0x11c",
        "skipped structure type 65535 (4 bytes) at 0x13c",
    ];
    assert_eq!(summary.lines().collect::<Vec<_>>(), expected, "{summary}");
}

#[test]
fn andd_names() {
    // No NUL: the name runs to the end of the structure.
    let table = TableBuilder::new(38, 0)
        .structure(4, &[0, 0, 0, 7, b'A', b'B'])
        .build();
    assert_eq!(Dmar::parse(&table).unwrap().andd()[0].name(), Some("AB"));
    // Not ASCII: bytes kept, no str.
    let table = TableBuilder::new(38, 0).andd(3, &[0xc3, 0xa9], 4).build();
    let dmar = Dmar::parse(&table).unwrap();
    assert_eq!(dmar.andd()[0].name(), None);
    assert_eq!(dmar.andd()[0].name_bytes(), [0xc3, 0xa9]);
    assert!(dmar.to_string().ends_with("ANDD device 3 \"\\xc3\\xa9\""));
}

#[test]
fn scope_flags_are_kept() {
    let mut scope = Scope::endpoint(0, &[(2, 0)]);
    scope.flags = 0x01;
    let table = TableBuilder::new(38, 0).satc(1, 0, &[scope]).build();
    let dmar = Dmar::parse(&table).unwrap();
    assert_eq!(dmar.satc()[0].scopes()[0].flags(), 1);
    assert_eq!(
        dmar.satc()[0].scopes()[0].to_string(),
        "endpoint 00:02.0 (flags 0x01)"
    );
}

#[test]
fn walker_yields_structures_then_the_first_error_then_stops() {
    let mut table = TableBuilder::new(38, 1)
        .drhd(
            1,
            0,
            0,
            0xfed9_0000,
            &[Scope::ioapic(2, 0xf0, &[(0x1f, 0)])],
        )
        .rhsa(0xfed9_0000, 0)
        .raw(&[0, 0, 0, 0])
        .build();
    fix_checksum(&mut table);
    let mut walk = Structures::new(&table, ParseOptions::STRICT).unwrap();
    assert_eq!(walk.host_address_width(), 38);
    assert!(matches!(walk.next(), Some(Ok(Structure::Drhd(_)))));
    assert!(matches!(walk.next(), Some(Ok(Structure::Rhsa(_)))));
    let offset = walk.offset();
    assert_eq!(
        walk.next(),
        Some(Err(DmarError::ZeroLengthStructure { offset, kind: 0 }))
    );
    assert_eq!(walk.next(), None);
    assert_eq!(walk.next(), None);
}
