//! ACPI on the running machine: finds the RSDP, lists every table (through `tables`, which
//! checks each one), then reads the MADT and MCFG through the `acpi` crate and keeps the raw
//! DMAR bytes for the IOMMU. A table that failed its checks is never handed to the parser.

use super::tables::{self, PhysRead, ReadError, TableList};
use crate::arch::{io, paging};
use alloc::vec::Vec;
use core::ptr::NonNull;

/// Physical memory as the kernel sees it: identity-mapped; unmapped ranges are unreadable
/// rather than a page fault.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KernelMemory;

impl PhysRead for KernelMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ReadError> {
        let len = buf.len() as u64;
        if addr.checked_add(len).is_none() || !paging::is_mapped(addr, len) {
            return Err(ReadError);
        }
        // SAFETY: the whole range is mapped (checked above); ACPI tables live in RAM or
        // firmware-reserved RAM, where reads have no side effects.
        unsafe { io::read_physical(addr, buf) };
        Ok(())
    }
}

/// The `acpi` crate's view of physical memory: identity mapping, mapping on demand.
#[derive(Clone, Copy, Debug)]
struct IdentityHandler;

impl acpi::AcpiHandler for IdentityHandler {
    unsafe fn map_physical_region<T>(
        &self,
        address: usize,
        size: usize,
    ) -> acpi::PhysicalMapping<Self, T> {
        if !paging::is_mapped(address as u64, size as u64) {
            // Firmware tables outside the RAM map: map them uncached; a failure shows up as a
            // parse error from the crate, never as a wild access, because the crate only
            // reads what the listing already checked.
            let _ = paging::map_mmio(address as u64, size as u64);
        }
        // SAFETY: `address` is non-zero (the crate never maps the null page for a table) and
        // identity-mapped; the mapping lives as long as the kernel.
        unsafe {
            acpi::PhysicalMapping::new(
                address,
                NonNull::new_unchecked(address as *mut T),
                size,
                size,
                *self,
            )
        }
    }

    fn unmap_physical_region<T>(_region: &acpi::PhysicalMapping<Self, T>) {}
}

/// A local APIC from the MADT.
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    /// ACPI processor UID.
    pub processor_id: u8,
    /// Local APIC ID.
    pub apic_id: u8,
    /// Enabled (bit 0) or online-capable.
    pub enabled: bool,
}

/// An I/O APIC from the MADT.
#[derive(Clone, Copy, Debug)]
pub struct IoApic {
    /// I/O APIC ID.
    pub id: u8,
    /// Register base.
    pub address: u32,
    /// First global system interrupt.
    pub gsi_base: u32,
}

/// One MCFG entry: the ECAM window of a PCI segment's bus range.
#[derive(Clone, Copy, Debug)]
pub struct EcamRegion {
    /// Physical base of bus 0 of this segment (as MCFG gives it).
    pub base: u64,
    /// PCI segment group.
    pub segment: u16,
    /// First bus decoded.
    pub bus_start: u8,
    /// Last bus decoded.
    pub bus_end: u8,
}

/// What the kernel learned from ACPI.
#[derive(Debug, Default)]
pub struct Platform {
    /// Where the RSDP was found and how.
    pub rsdp: Option<(u64, &'static str)>,
    /// Every table, with its check result.
    pub tables: Option<TableList>,
    /// Local APIC address from the MADT.
    pub local_apic_address: Option<u64>,
    /// CPUs from the MADT.
    pub cpus: Vec<Cpu>,
    /// I/O APICs from the MADT.
    pub io_apics: Vec<IoApic>,
    /// ECAM regions from the MCFG.
    pub ecam: Vec<EcamRegion>,
    /// The raw DMAR table, if present and its checks passed.
    pub dmar: Option<Vec<u8>>,
    /// Problems met on the way, one line each.
    pub problems: Vec<alloc::string::String>,
}

/// The BIOS areas searched for the RSDP when the loader gave none: the first KiB of the EBDA
/// and 0xe0000..0x100000 (ACPI spec 5.2.5.1).
fn bios_search_ranges() -> [(u64, u64); 2] {
    let mut ebda_segment = [0u8; 2];
    let ebda = match KernelMemory.read(0x40e, &mut ebda_segment) {
        Ok(()) => u64::from(u16::from_le_bytes(ebda_segment)) << 4,
        Err(_) => 0,
    };
    let ebda_range = if ebda > 0x400 && ebda < 0xa0000 {
        (ebda, ebda + 1024)
    } else {
        (0, 0)
    };
    [ebda_range, (0xe0000, 0x100000)]
}

/// Discovers the ACPI tables starting from `given_rsdp` (from the boot loader) or a BIOS search.
///
/// The composition root's alone (it reads firmware memory at addresses it is given).
pub fn discover(_root: &crate::privilege::Privileged, given_rsdp: Option<u64>) -> Platform {
    use alloc::format;
    let mut platform = Platform::default();
    let rsdp_address = match given_rsdp {
        Some(address) => Some((address, "boot loader")),
        None => {
            tables::find_rsdp(&KernelMemory, &bios_search_ranges()).map(|a| (a, "BIOS area scan"))
        }
    };
    let Some((rsdp_address, source)) = rsdp_address else {
        platform
            .problems
            .push("no RSDP found: no ACPI tables, no MADT/MCFG/DMAR".into());
        return platform;
    };
    platform.rsdp = Some((rsdp_address, source));
    let rsdp = match tables::read_rsdp(&KernelMemory, rsdp_address) {
        Ok(rsdp) => rsdp,
        Err(error) => {
            platform
                .problems
                .push(format!("RSDP at {rsdp_address:#x} rejected: {error}"));
            return platform;
        }
    };
    let list = match tables::list_tables(&KernelMemory, &rsdp) {
        Ok(list) => list,
        Err(error) => {
            platform
                .problems
                .push(format!("root table rejected: {error}"));
            return platform;
        }
    };
    if let Some(dmar) = list.find(*b"DMAR") {
        match tables::read_table(&KernelMemory, dmar) {
            Ok(bytes) => platform.dmar = Some(bytes),
            Err(error) => platform.problems.push(format!("DMAR unreadable: {error}")),
        }
    }
    let have_madt = list.find(*b"APIC").is_some();
    let have_mcfg = list.find(*b"MCFG").is_some();
    platform.tables = Some(list);

    // SAFETY: the RSDP passed `read_rsdp`'s checks and physical memory is identity-mapped.
    let parsed = unsafe { acpi::AcpiTables::from_rsdp(IdentityHandler, rsdp_address as usize) };
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            platform
                .problems
                .push(format!("acpi crate rejected the tables: {error:?}"));
            return platform;
        }
    };
    if have_madt {
        match parsed.find_table::<acpi::madt::Madt>() {
            Ok(madt) => read_madt(&madt, &mut platform),
            Err(error) => platform.problems.push(format!("MADT: {error:?}")),
        }
    } else {
        platform
            .problems
            .push("no valid MADT: CPUs and I/O APICs unknown".into());
    }
    if have_mcfg {
        match parsed.find_table::<acpi::mcfg::Mcfg>() {
            Ok(mcfg) => {
                for entry in mcfg.entries() {
                    platform.ecam.push(EcamRegion {
                        base: entry.base_address,
                        segment: entry.pci_segment_group,
                        bus_start: entry.bus_number_start,
                        bus_end: entry.bus_number_end,
                    });
                }
            }
            Err(error) => platform.problems.push(format!("MCFG: {error:?}")),
        }
    } else {
        platform
            .problems
            .push("no valid MCFG: no ECAM, PCI config space only through ports".into());
    }
    platform
}

fn read_madt(
    madt: &acpi::PhysicalMapping<IdentityHandler, acpi::madt::Madt>,
    platform: &mut Platform,
) {
    use acpi::madt::MadtEntry;
    let madt = madt.get();
    platform.local_apic_address = Some(u64::from(madt.local_apic_address));
    for entry in madt.entries() {
        match entry {
            MadtEntry::LocalApic(lapic) => platform.cpus.push(Cpu {
                processor_id: lapic.processor_id,
                apic_id: lapic.apic_id,
                enabled: lapic.flags & 0b11 != 0,
            }),
            MadtEntry::IoApic(ioapic) => platform.io_apics.push(IoApic {
                id: ioapic.io_apic_id,
                address: ioapic.io_apic_address,
                gsi_base: ioapic.global_system_interrupt_base,
            }),
            MadtEntry::LocalApicAddressOverride(over) => {
                platform.local_apic_address = Some(over.local_apic_address);
            }
            _ => {}
        }
    }
}

static PLATFORM: spin::Once<Platform> = spin::Once::new();

/// Keeps the discovered platform for the rest of the run and returns it.
pub fn publish(_root: &crate::privilege::Privileged, platform: Platform) -> &'static Platform {
    PLATFORM.call_once(|| platform)
}

/// The platform published at boot, if any.
pub fn last() -> Option<&'static Platform> {
    PLATFORM.get()
}
