//! Hex dump of every ACPI table, for capturing real tables as host-test fixtures
//! (`cargo xtask capture-acpi` runs `test=acpi-dump` and writes the files).

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
        crate::kprintln!(
            "acpi-dump: {signature} {:#x} {}",
            table.address,
            bytes.len()
        );
        for chunk in bytes.chunks(64) {
            crate::kprint!("acpi-dump-data: {signature} ");
            for byte in chunk {
                crate::kprint!("{byte:02x}");
            }
            crate::kprintln!();
        }
        crate::kprintln!("acpi-dump-end: {signature}");
    }
}
