//! Property test: randomly damaged tables are reported, never trusted.

use super::image::*;
use super::*;

/// Each table of the QEMU-like image as (address, length).
const TABLE_SPANS: [(u64, usize); 8] = [
    (FACS_AT, 64),
    (DSDT_AT, 40),
    (FACP_AT, 244),
    (APIC_AT, 80),
    (MCFG_AT, 60),
    (DMAR_AT, 80),
    (RSDT_AT, 52),
    (XSDT_AT, 68),
];

/// Damage to one table: overwrite one byte, then maybe repair the checksum so that the damage
/// (to a length, a pointer, a signature) reaches the checks behind the checksum.
fn damage() -> impl proptest::strategy::Strategy<Value = (usize, usize, u8, bool)> {
    use proptest::prelude::*;
    (
        0..TABLE_SPANS.len(),
        0usize..244,
        any::<u8>(),
        any::<bool>(),
    )
}

proptest::proptest! {
    /// Any damage to the tables is reported, never trusted: every table listed as Ok really
    /// passes its checks when copied, and nothing panics.
    #[test]
    fn damaged_images_never_yield_bad_ok_tables(
        root in proptest::prop_oneof![
            proptest::strategy::Just(Root::Rsdt),
            proptest::strategy::Just(Root::Both),
        ],
        damages in proptest::collection::vec(damage(), 1..5),
    ) {
        let mut mem = qemu_image(root);
        for (table, offset, value, repair) in damages {
            let (address, length) = TABLE_SPANS[table];
            mem.write(address + (offset % length) as u64, &[value]);
            if repair && address != FACS_AT {
                let mut bytes = alloc::vec![0u8; length];
                mem.read(address, &mut bytes).expect("inside the image");
                fix_checksum(&mut bytes, 9);
                mem.write(address, &bytes);
            }
        }
        let rsdp = read_rsdp(&mem, RSDP_AT);
        proptest::prop_assert!(rsdp.is_ok(), "the RSDP is not damaged");
        let Ok(rsdp) = rsdp else { return Ok(()) };
        if let Ok(list) = list_tables(&mem, &rsdp) {
            proptest::prop_assert!(!list.is_empty());
            for table in &list {
                let _ = table.to_string();
                if table.status == TableStatus::Ok {
                    let bytes = read_table(&mem, table);
                    proptest::prop_assert!(bytes.is_ok(), "{}", table);
                    let bytes = bytes.unwrap_or_default();
                    proptest::prop_assert_eq!(bytes.len(), table.length as usize);
                    if &table.signature != b"FACS" {
                        proptest::prop_assert!(bytes.len() >= 36);
                        proptest::prop_assert_eq!(sum_bytes(&bytes), 0);
                    }
                }
            }
        }
    }
}
