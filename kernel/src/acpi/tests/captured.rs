//! The table listing on real tables captured from QEMU 7.2 q35 (`cargo xtask capture-acpi
//! kernel/src/acpi/tests/data/qemu-q35`): every table placed back at its captured address,
//! read from the real RSDP, must be listed with a good checksum, and damaging one must be
//! caught while the rest stay listed.

use super::*;
use std::path::PathBuf;

fn captured() -> (SparseMemory, u64, Vec<(String, u64, usize)>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/acpi/tests/data/qemu-q35");
    let index = std::fs::read_to_string(dir.join("index.txt")).expect("index.txt of the capture");
    let mut memory = SparseMemory::default();
    let mut rsdp = None;
    let mut tables = Vec::new();
    for line in index.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [signature, address, length] = fields[..] else {
            panic!("bad index line {line}")
        };
        let address = u64::from_str_radix(address.trim_start_matches("0x"), 16).unwrap();
        let bytes = std::fs::read(dir.join(format!("{signature}.bin"))).unwrap();
        assert_eq!(bytes.len(), length.parse::<usize>().unwrap());
        memory.add_zeroed(address, bytes.len());
        memory.write(address, &bytes);
        if signature == "RSDP" {
            rsdp = Some(address);
        } else {
            tables.push((signature.to_string(), address, bytes.len()));
        }
    }
    (memory, rsdp.expect("the capture has the RSDP"), tables)
}

#[test]
fn every_captured_table_is_listed_ok() {
    let (memory, rsdp_address, tables) = captured();
    let rsdp = read_rsdp(&memory, rsdp_address).expect("QEMU's RSDP is valid");
    assert_eq!(rsdp.revision, 0, "SeaBIOS gives an ACPI 1.0 RSDP");
    let list = list_tables(&memory, &rsdp).expect("QEMU's RSDT is valid");
    let mut listed: Vec<(String, u64, usize)> = list
        .iter()
        .map(|t| {
            assert_eq!(t.status, TableStatus::Ok, "{t}");
            (
                String::from_utf8_lossy(&t.signature).into_owned(),
                t.address,
                t.length as usize,
            )
        })
        .collect();
    let mut expected = tables;
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
    let dmar = list.find(*b"DMAR").expect("DMAR listed");
    let bytes = read_table(&memory, dmar).unwrap();
    assert_eq!(&bytes[..4], b"DMAR");
}

#[test]
fn a_damaged_captured_table_is_reported_and_skipped() {
    let (mut memory, rsdp_address, tables) = captured();
    let (_, mcfg_at, _) = tables.iter().find(|(s, _, _)| s == "MCFG").unwrap().clone();
    memory.corrupt(mcfg_at + 40);
    let list = list_tables(&memory, &read_rsdp(&memory, rsdp_address).unwrap()).unwrap();
    let mcfg = list.iter().find(|t| &t.signature == b"MCFG").unwrap();
    assert!(
        matches!(mcfg.status, TableStatus::BadChecksum { .. }),
        "{mcfg}"
    );
    assert!(
        list.find(*b"MCFG").is_none(),
        "a bad table is never handed out"
    );
    assert!(list.find(*b"DMAR").is_some() && list.find(*b"APIC").is_some());
}
