//! Hex dump of every ACPI table, for capturing real tables as host-test fixtures
//! (`cargo xtask capture-acpi` runs `test=acpi-dump` and writes the files).

use super::PhysRead;
use super::platform::KernelMemory;
use super::tables::{self, TableStatus};

/// Prints each readable table as `acpi-dump: SIG ADDRESS LEN` followed by lines of
/// `acpi-dump-data: SIG HEX...` (64 bytes each) and `acpi-dump-end: SIG`.
pub fn dump() {
    let Some(platform) = super::platform::last() else {
        crate::kprintln!("acpi-dump: no ACPI tables were discovered");
        return;
    };
    let Some(list) = platform.tables.as_ref() else {
        crate::kprintln!("acpi-dump: no ACPI tables were discovered");
        return;
    };
    if let Some((address, _)) = platform.rsdp {
        let revision = tables::read_rsdp(&KernelMemory, address).map_or(0, |rsdp| rsdp.revision);
        let mut bytes = alloc::vec![0u8; if revision >= 2 { 36 } else { 20 }];
        if KernelMemory.read(address, &mut bytes).is_ok() {
            hex("RSDP", address, &bytes);
        }
    }
    for table in list.iter() {
        let signature = core::str::from_utf8(&table.signature).unwrap_or("????");
        if table.status != TableStatus::Ok {
            crate::kprintln!("acpi-dump: {signature} skipped ({:?})", table.status);
            continue;
        }
        let Ok(bytes) = tables::read_table(&KernelMemory, table) else {
            crate::kprintln!("acpi-dump: {signature} unreadable");
            continue;
        };
        hex(signature, table.address, &bytes);
    }
}

fn hex(signature: &str, address: u64, bytes: &[u8]) {
    crate::kprintln!("acpi-dump: {signature} {address:#x} {}", bytes.len());
    for chunk in bytes.chunks(64) {
        crate::kprint!("acpi-dump-data: {signature} ");
        for byte in chunk {
            crate::kprint!("{byte:02x}");
        }
        crate::kprintln!();
    }
    crate::kprintln!("acpi-dump-end: {signature}");
}
