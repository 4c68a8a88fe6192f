//! The table listing: root selection, bad entries, copies and the one-line report.

use super::image::*;
use super::*;
use alloc::string::ToString;
use alloc::vec::Vec;

#[test]
fn qemu_v0_lists_every_table_in_order() {
    let mem = qemu_image(Root::Rsdt);
    let list = listed(&mem);
    assert_eq!(
        summary(&list),
        [
            (b"RSDT", RSDT_AT, OK),
            (b"FACP", FACP_AT, OK),
            (b"APIC", APIC_AT, OK),
            (b"MCFG", MCFG_AT, OK),
            (b"DMAR", DMAR_AT, OK),
            (b"DSDT", DSDT_AT, OK),
            (b"FACS", FACS_AT, OK),
        ]
    );
    let dmar_info = list.find(*b"DMAR").expect("listed");
    assert_eq!(
        (dmar_info.length, dmar_info.revision, dmar_info.oem_id),
        (80, 1, OEM)
    );
    assert_eq!(read_table(&mem, dmar_info), Ok(dmar()));
    let facs_info = list.find(*b"FACS").expect("listed");
    assert_eq!((facs_info.length, facs_info.revision), (64, 1));
    assert_eq!(read_table(&mem, facs_info).map(|b| b.len()), Ok(64));
    assert_eq!(list.len(), 7);
    assert!(list.find(*b"HPET").is_none());
}

#[test]
fn xsdt_is_preferred_when_valid() {
    let mem = qemu_image(Root::Both);
    let list = listed(&mem);
    let signatures: Vec<&[u8; 4]> = list.iter().map(|t| &t.signature).collect();
    assert_eq!(
        signatures,
        [
            b"XSDT", b"FACP", b"APIC", b"MCFG", b"DMAR", b"DSDT", b"FACS"
        ]
    );
}

#[test]
fn bad_xsdt_falls_back_to_rsdt_and_is_still_reported() {
    let mut mem = qemu_image(Root::Both);
    mem.corrupt(XSDT_AT + 40);
    let list = listed(&mem);
    let first_two: Vec<_> = summary(&list).into_iter().take(2).collect();
    assert_eq!(
        first_two,
        [
            (b"XSDT", XSDT_AT, TableStatus::BadChecksum { sum: 0x5a }),
            (b"RSDT", RSDT_AT, OK),
        ]
    );
    assert!(list.find(*b"DMAR").is_some());

    // Also when the XSDT pointer leads nowhere.
    let mut mem = qemu_image(Root::Rsdt);
    mem.write(RSDP_AT, &rsdp_v2(RSDT_AT as u32, 0xdead_0000));
    let list = listed(&mem);
    assert_eq!(
        summary(&list)[..2],
        [
            (b"XSDT", 0xdead_0000, TableStatus::Unreadable),
            (b"RSDT", RSDT_AT, OK)
        ]
    );
}

#[test]
fn bad_root_table_is_an_error() {
    let mut mem = qemu_image(Root::Rsdt);
    mem.corrupt(RSDT_AT + 36);
    let rsdp = read_rsdp(&mem, RSDP_AT).expect("valid");
    assert_eq!(
        list_tables(&mem, &rsdp),
        Err(AcpiError::RootTable {
            signature: *b"RSDT",
            address: RSDT_AT,
            status: TableStatus::BadChecksum { sum: 0x5a },
        })
    );

    // An RSDT pointer that lands on another table.
    let mut mem = qemu_image(Root::Rsdt);
    mem.write(RSDP_AT, &rsdp_v0(DMAR_AT as u32));
    let rsdp = read_rsdp(&mem, RSDP_AT).expect("valid");
    assert_eq!(
        list_tables(&mem, &rsdp),
        Err(AcpiError::RootTable {
            signature: *b"DMAR",
            address: DMAR_AT,
            status: TableStatus::SignatureMismatch { expected: *b"RSDT" },
        })
    );

    // Both roots bad: the RSDT's problem is reported.
    let mut mem = qemu_image(Root::Both);
    mem.corrupt(XSDT_AT + 36);
    mem.write(RSDT_AT + 4, &20u32.to_le_bytes());
    let rsdp = read_rsdp(&mem, RSDP_AT).expect("valid");
    assert!(matches!(
        list_tables(&mem, &rsdp),
        Err(AcpiError::RootTable {
            status: TableStatus::BadLength { length: 20 },
            ..
        })
    ));

    // No root at all.
    let mut mem = qemu_image(Root::Rsdt);
    mem.write(RSDP_AT, &rsdp_v0(0));
    let rsdp = read_rsdp(&mem, RSDP_AT).expect("valid");
    assert_eq!(list_tables(&mem, &rsdp), Err(AcpiError::NoRootTable));
}

#[test]
fn bad_entries_are_reported_and_skipped() {
    let corrupt_at = SPARE_AT;
    let mut corrupt = sdt(b"SSDT", 1, &[1, 2, 3, 4]);
    corrupt[37] = corrupt[37].wrapping_add(0x10);
    let absurd_at = SPARE_AT + 0x100;
    let mut absurd = sdt(b"HPET", 1, &[0; 20]);
    absurd[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let truncated_at = SPARE_AT + 0x200;
    let mut truncated = sdt(b"WAET", 1, &[0; 4]);
    truncated[4..8].copy_from_slice(&10u32.to_le_bytes());
    // Header readable, body past the end of readable memory.
    let runs_off_at = TABLE_AREA.1 - 40;
    let mut runs_off = sdt(b"BGRT", 1, &[0; 4]);
    runs_off[4..8].copy_from_slice(&0x1000u32.to_le_bytes());
    let unreadable_at = 0x7000_0000;

    let mem = with_extra_entries(
        &[
            corrupt_at,
            absurd_at,
            truncated_at,
            runs_off_at,
            unreadable_at,
            0,
        ],
        &[
            (corrupt_at, corrupt),
            (absurd_at, absurd),
            (truncated_at, truncated),
            (runs_off_at, runs_off),
        ],
    );
    let list = listed(&mem);
    let summary = summary(&list);
    assert_eq!(
        summary[5..11],
        [
            (b"SSDT", corrupt_at, TableStatus::BadChecksum { sum: 0x10 }),
            (
                b"HPET",
                absurd_at,
                TableStatus::BadLength { length: u32::MAX }
            ),
            (b"WAET", truncated_at, TableStatus::BadLength { length: 10 }),
            (b"BGRT", runs_off_at, TableStatus::Unreadable),
            (b"????", unreadable_at, TableStatus::Unreadable),
            (b"????", 0, TableStatus::NullAddress),
        ]
    );
    // The listing went on: DSDT and FACS still follow.
    assert_eq!(
        summary[11..],
        [(b"DSDT", DSDT_AT, OK), (b"FACS", FACS_AT, OK)]
    );
    for signature in [b"SSDT", b"HPET", b"WAET", b"BGRT"] {
        assert!(list.find(*signature).is_none());
    }
    let bad = list
        .iter()
        .find(|t| &t.signature == b"SSDT")
        .expect("listed");
    assert_eq!(
        read_table(&mem, bad),
        Err(AcpiError::TableNotOk {
            status: TableStatus::BadChecksum { sum: 0x10 }
        })
    );
}

#[test]
fn xsdt_entries_above_4_gib() {
    let mut mem = qemu_image(Root::Both);
    let high = 0x1_0000_0000_u64;
    mem.add_zeroed(high, 0x1000);
    mem.write(high, &sdt(b"SSDT", 2, &[9; 8]));
    mem.write(XSDT_AT, &xsdt(&[FACP_AT, high]));
    let list = listed(&mem);
    assert_eq!(list.find(*b"SSDT").map(|t| t.address), Some(high));
}

#[test]
fn trailing_partial_entry_is_ignored() {
    let mut mem = qemu_image(Root::Rsdt);
    // One whole entry and two stray bytes, checksum fixed.
    let mut table = rsdt(&[DMAR_AT]);
    table.extend_from_slice(&[0xab, 0xcd]);
    table[4..8].copy_from_slice(&42u32.to_le_bytes());
    fix_checksum(&mut table, 9);
    mem.write(RSDT_AT, &table);
    let list = listed(&mem);
    assert_eq!(
        summary(&list),
        [(b"RSDT", RSDT_AT, OK), (b"DMAR", DMAR_AT, OK)]
    );
}

#[test]
fn read_table_notices_changes_after_listing() {
    let mut mem = qemu_image(Root::Rsdt);
    let list = listed(&mem);
    let dmar_info = *list.find(*b"DMAR").expect("listed");
    mem.corrupt(DMAR_AT + 60);
    assert_eq!(read_table(&mem, &dmar_info), Err(AcpiError::TableChanged));
    let mut mem = qemu_image(Root::Rsdt);
    mem.write(DMAR_AT, b"XXXX");
    assert_eq!(read_table(&mem, &dmar_info), Err(AcpiError::TableChanged));
}

#[test]
fn display_is_one_line_per_table() {
    let list = listed(&qemu_image(Root::Rsdt));
    let dmar_info = list.find(*b"DMAR").expect("listed");
    assert_eq!(
        dmar_info.to_string(),
        "DMAR @ 0x000000001ffe2300 len 80 rev 1 oem BOCHS  checksum ok"
    );
    let facs_info = list.find(*b"FACS").expect("listed");
    assert_eq!(
        facs_info.to_string(),
        "FACS @ 0x000000001ffe0000 len 64 rev 1 oem -      ok (no checksum)"
    );
    let bad = TableInfo {
        signature: *b"S\nDT",
        address: 0x1234,
        length: 40,
        revision: 2,
        oem_id: *b"\x1b[2J\0 ",
        status: TableStatus::BadChecksum { sum: 0x5a },
    };
    assert_eq!(
        bad.to_string(),
        "S?DT @ 0x0000000000001234 len 40 rev 2 oem ?[2J?  BAD CHECKSUM (sum 0x5a)"
    );
    let mismatch = TableStatus::SignatureMismatch { expected: *b"DSDT" };
    assert_eq!(mismatch.to_string(), "SIGNATURE MISMATCH (expected DSDT)");
}

#[test]
fn error_display() {
    let error = AcpiError::RootTable {
        signature: *b"RSDT",
        address: 0x1ffe_2400,
        status: TableStatus::BadChecksum { sum: 0x5a },
    };
    assert_eq!(
        error.to_string(),
        "RSDT at 0x1ffe2400: BAD CHECKSUM (sum 0x5a)"
    );
    assert_eq!(
        AcpiError::RsdpChecksum { sum: 1 }.to_string(),
        "RSDP checksum bad (sum 0x01)"
    );
}
