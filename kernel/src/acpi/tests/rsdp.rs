//! RSDP reading and the BIOS-area search.

use super::image::*;
use super::*;

#[test]
fn rsdp_v0_fields() {
    let mem = qemu_image(Root::Rsdt);
    let rsdp = read_rsdp(&mem, RSDP_AT).expect("valid");
    assert_eq!(
        rsdp,
        Rsdp {
            address: RSDP_AT,
            revision: 0,
            oem_id: OEM,
            rsdt_address: RSDT_AT as u32,
            xsdt_address: None,
        }
    );
}

#[test]
fn rsdp_v2_fields_and_zero_xsdt() {
    let mem = qemu_image(Root::Both);
    let rsdp = read_rsdp(&mem, RSDP_AT).expect("valid");
    assert_eq!(rsdp.revision, 2);
    assert_eq!(rsdp.xsdt_address, Some(XSDT_AT));

    let mut mem = SparseMemory::default();
    mem.add_zeroed(0x1000, 64);
    mem.write(0x1000, &rsdp_v2(0x2000, 0));
    let rsdp = read_rsdp(&mem, 0x1000).expect("valid");
    assert_eq!((rsdp.rsdt_address, rsdp.xsdt_address), (0x2000, None));
}

#[test]
fn rsdp_rejections() {
    let mut mem = SparseMemory::default();
    mem.add_zeroed(0x1000, 0x100);
    let place = |mem: &mut SparseMemory, bytes: &[u8]| {
        mem.write(0x1000, &[0; 0x40]);
        mem.write(0x1000, bytes);
    };

    place(&mut mem, b"RSD PTR!");
    assert_eq!(read_rsdp(&mem, 0x1000), Err(AcpiError::RsdpSignature));

    let mut bad = rsdp_v0(0x2000);
    bad[16] ^= 1;
    place(&mut mem, &bad);
    assert_eq!(
        read_rsdp(&mem, 0x1000),
        Err(AcpiError::RsdpChecksum { sum: 1 })
    );

    // The extended checksum covers bytes 20..36 too.
    let mut bad = rsdp_v2(0x2000, 0x3000);
    bad[24] = bad[24].wrapping_add(2);
    place(&mut mem, &bad);
    assert_eq!(
        read_rsdp(&mem, 0x1000),
        Err(AcpiError::RsdpExtendedChecksum { sum: 2 })
    );

    for length in [0u32, 20, 35, MAX_RSDP_LENGTH + 1, u32::MAX] {
        let mut bad = rsdp_v2(0x2000, 0x3000);
        bad[20..24].copy_from_slice(&length.to_le_bytes());
        fix_checksum(&mut bad, 32);
        place(&mut mem, &bad);
        assert_eq!(
            read_rsdp(&mem, 0x1000),
            Err(AcpiError::RsdpLength { length }),
            "{length}"
        );
    }

    // A longer (future) RSDP is fine if the whole length is readable and sums to zero.
    let mut long = rsdp_v2(0x2000, 0x3000);
    long[20..24].copy_from_slice(&48u32.to_le_bytes());
    long.extend_from_slice(&[7; 12]);
    fix_checksum(&mut long, 32);
    place(&mut mem, &long);
    assert!(read_rsdp(&mem, 0x1000).is_ok());
    // ... but not if it runs into unreadable memory (the chunk ends at 0x1100).
    let mut long_at_end = long.clone();
    long_at_end[20..24].copy_from_slice(&64u32.to_le_bytes());
    fix_checksum(&mut long_at_end, 32);
    mem.write(0x10d0, &long_at_end);
    assert_eq!(
        read_rsdp(&mem, 0x10d0),
        Err(AcpiError::Unreadable { address: 0x10d0 })
    );
}

#[test]
fn rsdp_partly_readable() {
    let mut mem = SparseMemory::default();
    mem.add_zeroed(0x1000, 20);
    let bytes = rsdp_v2(0x2000, 0x3000);
    mem.write(0x1000, &bytes[..20]);
    // The v1 part is fine, but revision 2 needs 36 readable bytes.
    assert_eq!(
        read_rsdp(&mem, 0x1000),
        Err(AcpiError::Unreadable { address: 0x1000 })
    );
    assert_eq!(
        read_rsdp(&mem, 0x9000),
        Err(AcpiError::Unreadable { address: 0x9000 })
    );
    assert_eq!(
        read_rsdp(&mem, u64::MAX - 4),
        Err(AcpiError::Unreadable {
            address: u64::MAX - 4
        })
    );
}

#[test]
fn find_rsdp_in_the_bios_area() {
    let mem = qemu_image(Root::Both);
    assert_eq!(find_rsdp(&mem, &[BIOS_AREA]), Some(RSDP_AT));
    // Empty, inverted and unreadable ranges are harmless.
    let ranges = [(0, 0), (0x9000, 0x1000), (0x40_0000, 0x40_0400), BIOS_AREA];
    assert_eq!(find_rsdp(&mem, &ranges), Some(RSDP_AT));
    // The range end is exclusive and the 20 bytes must fit inside it.
    assert_eq!(find_rsdp(&mem, &[(BIOS_AREA.0, RSDP_AT + 19)]), None);
    assert_eq!(
        find_rsdp(&mem, &[(BIOS_AREA.0, RSDP_AT + 20)]),
        Some(RSDP_AT)
    );
    // An unaligned start rounds up to the next 16-byte boundary.
    assert_eq!(
        find_rsdp(&mem, &[(RSDP_AT - 15, BIOS_AREA.1)]),
        Some(RSDP_AT)
    );
    assert_eq!(find_rsdp(&mem, &[(RSDP_AT + 1, BIOS_AREA.1)]), None);
    assert_eq!(find_rsdp(&mem, &[(u64::MAX - 8, u64::MAX)]), None);
}

#[test]
fn find_rsdp_skips_bad_and_misaligned_copies() {
    let mut mem = SparseMemory::default();
    mem.add_zeroed(0xe_0000, 0x2_0000);
    // A misaligned valid copy, a stale copy with a bad checksum, a v2 copy with a bad extended
    // checksum, then the real one.
    mem.write(0xe_0008, &rsdp_v0(0x1111));
    let mut stale = rsdp_v0(0x2222);
    stale[8] ^= 0xff;
    mem.write(0xe_1000, &stale);
    let mut bad_v2 = rsdp_v2(0x3333, 0x4444);
    bad_v2[32] ^= 1;
    mem.write(0xe_2000, &bad_v2);
    mem.write(0xf_0000, &rsdp_v2(0x5555, 0x6666));
    let found = find_rsdp(&mem, &[BIOS_AREA]).expect("found");
    assert_eq!(found, 0xf_0000);
    assert_eq!(
        read_rsdp(&mem, found).map(|r| r.xsdt_address),
        Ok(Some(0x6666))
    );
    // The first range that holds one wins, whatever the addresses.
    mem.write(0xe_3000, &rsdp_v0(0x7777));
    assert_eq!(
        find_rsdp(&mem, &[(0xf_0000, 0x10_0000), BIOS_AREA]),
        Some(0xf_0000)
    );
    assert_eq!(find_rsdp(&mem, &[BIOS_AREA]), Some(0xe_3000));
}
