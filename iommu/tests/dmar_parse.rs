//! The DMAR parser on malformed hand-built tables: every way the header, a structure length
//! or a device scope can be wrong, each with its own error and offset.

mod dmar_support;

use moat_iommu::dmar::{ChecksumPolicy, Dmar, DmarError, DmarFlags, ParseOptions};

use dmar_support::builder::{
    CHECKSUM_OFFSET, FIRST_STRUCTURE, Scope, TableBuilder, fix_checksum, set_length,
    set_structure_length,
};

/// A minimal valid table: one INCLUDE_PCI_ALL unit with an I/O APIC scope.
fn minimal() -> TableBuilder {
    TableBuilder::new(38, 1).drhd(
        1,
        0,
        0,
        0xfed9_0000,
        &[Scope::ioapic(2, 0xf0, &[(0x1f, 0)])],
    )
}

fn parse_err(bytes: &[u8]) -> DmarError {
    Dmar::parse(bytes).expect_err("table must be rejected")
}

/// `table` with `structure` appended raw and the length and checksum fixed up.
fn with_raw_structure(structure: &[u8]) -> Vec<u8> {
    TableBuilder::new(38, 0).raw(structure).build()
}

// ---------------------------------------------------------------- header

#[test]
fn truncated_header() {
    let table = minimal().build();
    for len in [0, 1, 8, 35, 36, 47] {
        assert_eq!(
            parse_err(&table[..len]),
            DmarError::TruncatedHeader { available: len }
        );
    }
}

#[test]
fn header_only_table_has_no_structures() {
    let dmar = Dmar::parse(&TableBuilder::new(38, 0).build()).unwrap();
    assert!(dmar.units().is_empty());
    assert_eq!(dmar.header().length(), 48);
}

#[test]
fn bad_signature() {
    let mut table = minimal().build();
    table[..4].copy_from_slice(b"APIC");
    fix_checksum(&mut table);
    assert_eq!(
        parse_err(&table),
        DmarError::BadSignature { found: *b"APIC" }
    );
}

#[test]
fn length_field_beyond_the_slice() {
    let table = minimal().build();
    let short = &table[..table.len() - 1];
    assert_eq!(
        parse_err(short),
        DmarError::LengthExceedsSlice {
            length: table.len() as u32,
            available: table.len() - 1,
        }
    );
    let mut huge = table.clone();
    set_length(&mut huge, u32::MAX);
    assert!(matches!(
        parse_err(&huge),
        DmarError::LengthExceedsSlice {
            length: u32::MAX,
            ..
        }
    ));
}

#[test]
fn length_field_below_the_header() {
    for length in [0, 36, 47] {
        let mut table = minimal().build();
        set_length(&mut table, length);
        assert_eq!(parse_err(&table), DmarError::LengthBelowHeader { length });
    }
}

#[test]
fn bytes_past_the_length_field_are_ignored() {
    let mut table = minimal().build();
    let expected = Dmar::parse(&table).unwrap();
    // A page-rounded mapping: garbage after the table, outside the checksum.
    table.extend([0xff; 100]);
    assert_eq!(Dmar::parse(&table).unwrap(), expected);
}

#[test]
fn bad_checksum_is_an_error() {
    let mut table = minimal().build();
    table[CHECKSUM_OFFSET] = table[CHECKSUM_OFFSET].wrapping_add(1);
    let stored = table[CHECKSUM_OFFSET];
    assert_eq!(parse_err(&table), DmarError::BadChecksum { stored, sum: 1 });
}

#[test]
fn bad_checksum_can_be_ignored_for_diagnostics() {
    let mut table = minimal().build();
    table[CHECKSUM_OFFSET] ^= 0x55;
    let options = ParseOptions::default().with_checksum(ChecksumPolicy::Ignore);
    assert_eq!(options, ParseOptions::DIAGNOSTIC);
    let dmar = Dmar::parse_with(&table, options).unwrap();
    assert!(!dmar.header().checksum_valid());
    assert_eq!(dmar.units().len(), 1);
    assert!(
        dmar.to_string()
            .lines()
            .next()
            .unwrap()
            .ends_with("BAD CHECKSUM (ignored)")
    );
    // The other checks still run.
    table[0] = b'X';
    assert!(matches!(
        Dmar::parse_with(&table, options),
        Err(DmarError::BadSignature { .. })
    ));
}

#[test]
fn host_address_width_and_flags() {
    let table = TableBuilder::new(63, 0b1111_0111).build();
    let dmar = Dmar::parse(&table).unwrap();
    assert_eq!(dmar.host_address_width(), 63);
    assert_eq!(dmar.address_width_bits(), 64);
    assert!(dmar.flags().contains(
        DmarFlags::INTR_REMAP | DmarFlags::X2APIC_OPT_OUT | DmarFlags::DMA_CTRL_PLATFORM_OPT_IN
    ));
    assert_eq!(dmar.flags().bits(), 0b1111_0111, "reserved bits are kept");
    assert!(
        dmar.to_string()
            .contains("flags INTR_REMAP|X2APIC_OPT_OUT|DMA_CTRL_PLATFORM_OPT_IN|0xf0"),
        "{dmar}"
    );
    assert_eq!(
        parse_err(&TableBuilder::new(64, 0).build()),
        DmarError::InvalidHostAddressWidth { raw: 64 }
    );
}

// ---------------------------------------------------------------- structure lengths

#[test]
fn zero_length_structure() {
    let table = with_raw_structure(&[0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        parse_err(&table),
        DmarError::ZeroLengthStructure {
            offset: FIRST_STRUCTURE,
            kind: 0
        }
    );
    // Also for a type the parser does not know, and after a valid structure.
    let mut table = minimal().raw(&[9, 0, 0, 0]).build();
    let second = table.len() - 4;
    fix_checksum(&mut table);
    assert_eq!(
        parse_err(&table),
        DmarError::ZeroLengthStructure {
            offset: second,
            kind: 9
        }
    );
}

#[test]
fn structure_shorter_than_its_fixed_part() {
    // (type, minimum length)
    for (kind, minimum) in [
        (0u16, 16usize),
        (1, 24),
        (2, 8),
        (3, 20),
        (4, 8),
        (5, 8),
        (77, 4),
    ] {
        let length = minimum as u16 - 1;
        let mut raw = vec![0u8; 64];
        raw[..2].copy_from_slice(&kind.to_le_bytes());
        raw[2..4].copy_from_slice(&length.to_le_bytes());
        let table = with_raw_structure(&raw);
        assert_eq!(
            parse_err(&table),
            DmarError::StructureTooShort {
                offset: FIRST_STRUCTURE,
                kind,
                length,
                minimum,
            },
            "type {kind}"
        );
    }
}

#[test]
fn structure_past_the_end_of_the_table() {
    let mut table = minimal().build();
    let length = (table.len() - FIRST_STRUCTURE + 1) as u16;
    set_structure_length(&mut table, FIRST_STRUCTURE, length);
    fix_checksum(&mut table);
    assert_eq!(
        parse_err(&table),
        DmarError::StructurePastEnd {
            offset: FIRST_STRUCTURE,
            kind: 0,
            length,
            table_length: table.len(),
        }
    );
}

#[test]
fn structure_header_cut_off_by_the_table_end() {
    let table = minimal().raw(&[1, 0, 24]).build();
    assert_eq!(
        parse_err(&table),
        DmarError::TruncatedStructureHeader {
            offset: table.len() - 3,
            available: 3
        }
    );
}

// ---------------------------------------------------------------- scope lengths

/// A DRHD whose scope area is exactly `scope_bytes`.
fn drhd_with_scope_bytes(scope_bytes: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 0, 0, 0];
    body.extend(0xfed9_0000u64.to_le_bytes());
    body.extend(scope_bytes);
    TableBuilder::new(38, 0).structure(0, &body).build()
}

/// Where the first scope of a DRHD at the first structure offset starts.
const FIRST_SCOPE: usize = FIRST_STRUCTURE + 16;

#[test]
fn scope_past_its_structure() {
    // Claims 10 bytes, the structure holds 8.
    let table = drhd_with_scope_bytes(&[1, 10, 0, 0, 0, 0, 2, 0]);
    assert_eq!(
        parse_err(&table),
        DmarError::ScopePastStructure {
            offset: FIRST_SCOPE,
            length: 10,
            available: 8
        }
    );
}

#[test]
fn zero_length_and_short_scopes() {
    assert_eq!(
        parse_err(&drhd_with_scope_bytes(&[1, 0, 0, 0, 0, 0, 2, 0])),
        DmarError::ZeroLengthScope {
            offset: FIRST_SCOPE
        }
    );
    for length in [1u8, 2, 5, 6, 7] {
        assert_eq!(
            parse_err(&drhd_with_scope_bytes(&[1, length, 0, 0, 0, 0, 2, 0])),
            DmarError::ScopeTooShort {
                offset: FIRST_SCOPE,
                length
            },
            "length {length}"
        );
    }
}

#[test]
fn odd_scope_path() {
    let table = drhd_with_scope_bytes(&[1, 9, 0, 0, 0, 0, 2, 0, 3]);
    assert_eq!(
        parse_err(&table),
        DmarError::OddScopePath {
            offset: FIRST_SCOPE,
            length: 9
        }
    );
}

#[test]
fn scope_header_cut_off_by_the_structure_end() {
    let mut scopes = Scope::endpoint(0, &[(2, 0)]).bytes();
    scopes.push(1);
    assert_eq!(
        parse_err(&drhd_with_scope_bytes(&scopes)),
        DmarError::TruncatedScopeHeader {
            offset: FIRST_SCOPE + 8,
            available: 1
        }
    );
}

#[test]
fn path_elements_out_of_range() {
    for (device, function) in [(32u8, 0u8), (0, 8), (0xff, 0xff)] {
        let scope = Scope::endpoint(0, &[(1, 0), (device, function)]).bytes();
        assert_eq!(
            parse_err(&drhd_with_scope_bytes(&scope)),
            DmarError::InvalidPathElement {
                offset: FIRST_SCOPE + 8,
                device,
                function
            }
        );
    }
}

#[test]
fn errors_name_the_offset() {
    let message = parse_err(&drhd_with_scope_bytes(&[1, 9, 0, 0, 0, 0, 2, 0, 3])).to_string();
    assert!(message.starts_with("at 0x40:"), "{message}");
}
