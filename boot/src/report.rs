//! The boot report: what the kernel found and set up, readable, one section per subsystem,
//! printed just before `moat: ready`.

use moat_kernel::acpi::platform::Platform;
use moat_kernel::arch::apic::{self, ApicInfo};
use moat_kernel::boot_info::BootInfo;
use moat_kernel::cmdline::CommandLine;
use moat_kernel::memory::MemoryMap;
use moat_kernel::physmem::FrameStats;
use moat_kernel::time::Calibration;
use moat_kernel::{kprintln, time};

/// Everything the report shows.
pub(crate) struct Report<'a> {
    pub(crate) boot_info: &'a BootInfo,
    pub(crate) map: &'a MemoryMap,
    pub(crate) frames: FrameStats,
    pub(crate) platform: &'a Platform,
    pub(crate) calibration: Option<Calibration>,
    pub(crate) apic: Option<ApicInfo>,
    pub(crate) options: &'a CommandLine,
    pub(crate) devices: &'a moat_kernel::pci::Enumeration,
    pub(crate) remapping: &'a [alloc::string::String],
    pub(crate) groups: &'a [alloc::string::String],
    pub(crate) registry: &'a [alloc::string::String],
    pub(crate) drivers: &'a [alloc::string::String],
}

const MIB: u64 = 1024 * 1024;

/// Prints the report.
pub(crate) fn print(report: &Report<'_>) {
    kprintln!("==================== moat boot report ====================");
    kprintln!(
        "boot: loader {}, command line `{}`",
        report.boot_info.loader.name(),
        report.boot_info.cmdline()
    );
    memory(report);
    cpus(report.platform);
    acpi(report.platform);
    timers(report);
    pci(report.devices);
    for line in report
        .remapping
        .iter()
        .chain(report.groups)
        .chain(report.registry)
        .chain(report.drivers)
    {
        kprintln!("{line}");
    }
    kprintln!(
        "options: poweroff={} test={} log={}",
        report.options.poweroff,
        report.options.test.as_deref().unwrap_or("-"),
        report.options.log_level.as_str()
    );
    kprintln!("==========================================================");
}

fn memory(report: &Report<'_>) {
    let map = report.map;
    kprintln!(
        "memory: {} MiB usable in {} regions (firmware map: {} entries)",
        map.total_usable() / MIB,
        map.usable().count(),
        map.raw().len()
    );
    for region in map.regions() {
        kprintln!(
            "  {:#014x}-{:#014x} {:>8} KiB {:?}",
            region.start,
            region.end,
            region.len() / 1024,
            region.kind
        );
    }
    for reservation in map.reservations() {
        kprintln!(
            "  reserved {:#014x}-{:#014x} {}",
            reservation.start,
            reservation.end,
            reservation.why
        );
    }
    kprintln!(
        "frames: {} of {} free (4 KiB), bitmap {} KiB at {:#x}",
        moat_kernel::physmem::free_frames(),
        report.frames.total,
        report.frames.bitmap_bytes / 1024,
        report.frames.bitmap_at
    );
}

fn cpus(platform: &Platform) {
    let enabled = platform.cpus.iter().filter(|cpu| cpu.enabled).count();
    kprintln!(
        "cpus: {} in MADT ({} enabled); running on the bootstrap CPU only",
        platform.cpus.len(),
        enabled
    );
    for cpu in &platform.cpus {
        kprintln!(
            "  cpu uid {} apic id {} {}",
            cpu.processor_id,
            cpu.apic_id,
            if cpu.enabled { "enabled" } else { "disabled" }
        );
    }
    for ioapic in &platform.io_apics {
        kprintln!(
            "  ioapic id {} at {:#x} gsi base {}",
            ioapic.id,
            ioapic.address,
            ioapic.gsi_base
        );
    }
}

fn acpi(platform: &Platform) {
    match platform.rsdp {
        Some((address, source)) => kprintln!("acpi: RSDP at {address:#x} (from {source})"),
        None => kprintln!("acpi: no RSDP"),
    }
    if let Some(list) = &platform.tables {
        for table in list.iter() {
            kprintln!("  {table}");
        }
    }
    for region in &platform.ecam {
        kprintln!(
            "  ecam: segment {} buses {:#04x}-{:#04x} at {:#x}",
            region.segment,
            region.bus_start,
            region.bus_end,
            region.base
        );
    }
    match &platform.dmar {
        Some(bytes) => kprintln!("  dmar: {} bytes kept for the IOMMU", bytes.len()),
        None => kprintln!("  dmar: none (no DMA remapping hardware described)"),
    }
    for problem in &platform.problems {
        kprintln!("  problem: {problem}");
    }
}

fn timers(report: &Report<'_>) {
    match report.calibration {
        Some(c) => kprintln!(
            "timers: TSC {}.{:03} MHz (calibrated against {} over {} us)",
            c.tsc_hz / 1_000_000,
            (c.tsc_hz / 1000) % 1000,
            c.reference,
            c.interval_us
        ),
        None => kprintln!("timers: TSC not calibrated"),
    }
    match report.apic {
        Some(a) => kprintln!(
            "  local APIC id {} version {:#x} at {:#x}; timer {} kHz input, periodic {} Hz, {} ticks so far",
            a.id,
            a.version,
            a.base,
            a.timer_hz / 1000,
            apic::TICK_HZ,
            apic::ticks()
        ),
        None => kprintln!("  local APIC: unavailable, no timer interrupt"),
    }
    kprintln!(
        "  monotonic clock: {} us since calibration",
        time::now_ns() / 1000
    );
}

fn pci(devices: &moat_kernel::pci::Enumeration) {
    kprintln!("pci: {} functions", devices.devices.len());
    for root in &devices.root_buses {
        kprintln!("pci: root bus {root}");
    }
    for device in &devices.devices {
        kprintln!("pci: {}", moat_kernel::pci::device_line(device));
    }
    for problem in &devices.problems {
        kprintln!("pci: problem: {problem}");
    }
}
