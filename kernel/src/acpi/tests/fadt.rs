//! Following the FADT to the DSDT and FACS: extended versus legacy pointers, the FACS rules.

use super::image::*;
use super::*;

#[test]
fn x_dsdt_on_the_wrong_signature_falls_back_to_dsdt() {
    let list = with_fadt(fadt(244, FACS_AT as u32, DSDT_AT as u32, 0, APIC_AT), &[]);
    assert_eq!(
        tail(&list, 5),
        [
            (
                b"APIC",
                APIC_AT,
                TableStatus::SignatureMismatch { expected: *b"DSDT" }
            ),
            (b"DSDT", DSDT_AT, OK),
            (b"FACS", FACS_AT, OK),
        ]
    );
    assert_eq!(list.find(*b"DSDT").map(|t| t.address), Some(DSDT_AT));
}

#[test]
fn valid_x_dsdt_wins_over_a_different_dsdt() {
    let second_dsdt = SPARE_AT;
    let list = with_fadt(
        fadt(244, FACS_AT as u32, DSDT_AT as u32, 0, second_dsdt),
        &[(second_dsdt, sdt(b"DSDT", 2, &[1; 10]))],
    );
    assert_eq!(
        tail(&list, 5),
        [(b"DSDT", second_dsdt, OK), (b"FACS", FACS_AT, OK)]
    );
}

#[test]
fn acpi_1_fadt_has_no_extended_pointers() {
    // 116 bytes: bytes 132.. would be the next table; they must not be read as X_ fields.
    let mut short = fadt(116, FACS_AT as u32, DSDT_AT as u32, 0, 0);
    short.resize(116, 0);
    let list = with_fadt(short, &[(FACP_AT + 132, [0xff; 16].to_vec())]);
    assert_eq!(
        tail(&list, 5),
        [(b"DSDT", DSDT_AT, OK), (b"FACS", FACS_AT, OK)]
    );
}

#[test]
fn hardware_reduced_fadt_without_facs() {
    let list = with_fadt(fadt(244, 0, 0, 0, DSDT_AT), &[]);
    assert_eq!(tail(&list, 5), [(b"DSDT", DSDT_AT, OK)]);
}

#[test]
fn x_firmware_ctrl_is_preferred_and_facs_is_checked_without_checksum() {
    let second_facs = SPARE_AT;
    let mut odd_facs = facs(64, 2);
    odd_facs[40] = 0x77; // arbitrary bytes: no checksum to break
    let list = with_fadt(
        fadt(244, FACS_AT as u32, DSDT_AT as u32, second_facs, DSDT_AT),
        &[(second_facs, odd_facs)],
    );
    assert_eq!(
        tail(&list, 5),
        [(b"DSDT", DSDT_AT, OK), (b"FACS", second_facs, OK)]
    );
    assert_eq!(list.find(*b"FACS").map(|t| t.revision), Some(2));
}

#[test]
fn bad_facs_variants() {
    let at = SPARE_AT;
    let cases = [
        (facs(63, 1), b"FACS", TableStatus::BadLength { length: 63 }),
        (
            facs(u32::MAX, 1),
            b"FACS",
            TableStatus::BadLength { length: u32::MAX },
        ),
        (
            sdt(b"DSDT", 1, &[0; 40]),
            b"DSDT",
            TableStatus::SignatureMismatch { expected: *b"FACS" },
        ),
    ];
    for (bytes, signature, status) in cases {
        let list = with_fadt(
            fadt(244, at as u32, DSDT_AT as u32, 0, DSDT_AT),
            &[(at, bytes)],
        );
        assert_eq!(tail(&list, 6), [(signature, at, status)]);
        assert!(list.find(*b"FACS").is_none());
    }
    // FACS whose claimed length runs past readable memory.
    let at = TABLE_AREA.1 - 64;
    let list = with_fadt(
        fadt(244, at as u32, DSDT_AT as u32, 0, DSDT_AT),
        &[(at, facs(128, 1))],
    );
    assert_eq!(tail(&list, 6), [(b"FACS", at, TableStatus::Unreadable)]);
}

#[test]
fn bad_fadt_is_not_followed() {
    let mut mem = qemu_image(Root::Rsdt);
    mem.corrupt(FACP_AT + 100);
    let list = listed(&mem);
    assert_eq!(list.len(), 5, "RSDT and its four entries, no DSDT or FACS");
    assert!(matches!(
        list.iter().nth(1).map(|t| t.status),
        Some(TableStatus::BadChecksum { .. })
    ));
}
