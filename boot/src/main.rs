//! Moat's kernel image and composition root: the boot entries hand a loader-independent
//! `BootInfo` to `kernel_start`, which brings the kernel up in order (console, CPU tables,
//! clock, memory, command line, page tables, ACPI, interrupts), prints the boot report and
//! `moat: ready`, then runs what the command line asks for.
#![no_std]
#![no_main]

extern crate alloc;

mod drivers;
mod entry;
mod iommu_groups;
mod multiboot2;
mod pvh;
mod remapping;
mod report;
mod scenarios;

use moat_kernel::arch::exit::{ExitCode, exit};
use moat_kernel::arch::{apic, gdt, interrupts, paging};
use moat_kernel::boot_info::{BootInfo, Loader};
use moat_kernel::memory::MemoryMap;
use moat_kernel::memory::map::{Region, RegionKind};
use moat_kernel::{acpi, cmdline, console, error, info, passthrough, physmem, time, warn};

unsafe extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// The composition root's capability, for itself and its in-kernel scenarios.
// SAFETY: this is the composition root; the capability never leaves the boot crate (drivers
// get device handles, never this).
pub(crate) static ROOT: moat_kernel::privilege::Privileged =
    unsafe { moat_kernel::privilege::Privileged::assume() };

/// Bytes of heap the kernel starts with.
const HEAP_BYTES: u64 = 16 * 1024 * 1024;

const FOUR_GIB: u64 = 1 << 32;

static BOOT_INFO: spin::Mutex<BootInfo> = spin::Mutex::new(BootInfo::new(Loader::Pvh));
static MEMORY_MAP: spin::Mutex<MemoryMap> = spin::Mutex::new(MemoryMap::new());

/// Called by the trampoline in long mode with the first 4 GiB identity-mapped.
#[unsafe(no_mangle)]
extern "C" fn kernel_start(loader: u32, info_address: u32) -> ! {
    console::init();
    gdt::init(&ROOT);
    interrupts::init(&ROOT);
    let calibration = match time::calibrate(&ROOT) {
        Ok(calibration) => Some(calibration),
        Err(problem) => {
            error!(
                "time",
                "TSC calibration failed: {problem:?}; timestamps stay at zero"
            );
            None
        }
    };
    info!("boot", "moat {} starting", env!("CARGO_PKG_VERSION"));

    let mut boot_info = BOOT_INFO.lock();
    read_boot_info(loader, u64::from(info_address), &mut boot_info);
    info!("boot", "loader: {}", boot_info.loader.name());

    let mut map = MEMORY_MAP.lock();
    build_memory_map(&boot_info, &mut map);
    let frames = match physmem::init(&ROOT, &mut map) {
        Ok(stats) => stats,
        Err(problem) => fail("memory", format_args!("no frame allocator: {problem:?}")),
    };
    if let Err(problem) = physmem::init_heap(&ROOT, HEAP_BYTES) {
        fail("memory", format_args!("no heap: {problem:?}"));
    }

    let options = cmdline::parse(boot_info.cmdline());
    console::set_max_level(options.log_level);
    info!("cmdline", "command line: `{}`", boot_info.cmdline());
    if boot_info.cmdline_truncated {
        warn!(
            "cmdline",
            "command line truncated to {} bytes",
            moat_kernel::boot_info::MAX_CMDLINE
        );
    }
    for problem in &options.problems {
        warn!("cmdline", "{problem}");
    }

    // RAM first (write-back), then everything else the firmware described (uncached), then
    // the rest of the low 1 MiB; where they share a page, the first mapping wins.
    let is_ram = |kind: RegionKind| {
        matches!(
            kind,
            RegionKind::Usable | RegionKind::AcpiReclaimable | RegionKind::AcpiNvs
        )
    };
    let ram = map
        .raw()
        .iter()
        .filter(|r| is_ram(r.kind))
        .map(|r| (r.start, r.end, paging::Caching::WriteBack));
    // Non-RAM ranges below 4 GiB hold firmware tables (SeaBIOS keeps ACPI in "reserved");
    // above 4 GiB they are PCI windows, mapped on demand like any other MMIO.
    let other = map
        .raw()
        .iter()
        .filter(|r| !is_ram(r.kind) && r.start < FOUR_GIB)
        .map(|r| (r.start, r.end.min(FOUR_GIB), paging::Caching::Uncached));
    let kernel_image = [(
        kernel_start_address(),
        kernel_end_address(),
        paging::Caching::WriteBack,
    )];
    let low_memory = [(0u64, 0x10_0000u64, paging::Caching::Uncached)];
    let mut all = kernel_image
        .into_iter()
        .chain(ram)
        .chain(other)
        .chain(low_memory);
    if let Err(problem) = paging::init(&ROOT, &mut all) {
        fail(
            "paging",
            format_args!("cannot build the kernel page tables: {problem:?}"),
        );
    }
    info!(
        "paging",
        "kernel page tables active: RAM write-back, MMIO uncached"
    );

    let platform = acpi::platform::publish(&ROOT, acpi::platform::discover(&ROOT, boot_info.rsdp));
    for problem in &platform.problems {
        warn!("acpi", "{problem}");
    }

    let apic_base = platform
        .local_apic_address
        .unwrap_or_else(apic::base_from_msr);
    let apic_info = match apic::init(&ROOT, apic_base).map_err(|e| alloc::format!("{e:?}")) {
        Ok(apic_info) => Some(apic_info),
        Err(problem) => {
            error!(
                "apic",
                "local APIC unavailable: {problem}; no timer interrupt"
            );
            None
        }
    };
    let devices = moat_kernel::devices::publish(
        &ROOT,
        moat_kernel::discover::discover_pci(&ROOT, platform).unwrap_or_default(),
    );
    let groups = iommu_groups::discover(&options, platform.dmar.as_deref(), devices);
    let mut remapping_lines = remapping::bring_up(
        &options,
        platform.dmar.as_deref(),
        devices,
        groups.as_ref().ok().copied(),
    );
    let group_lines = iommu_groups::report_lines(&groups);
    if moat_kernel::vtd::off_reason().is_none() {
        let remapped_interrupts = moat_kernel::vtd::interrupt_remapping::status().is_ok();
        match passthrough::init(&ROOT, &devices.devices, &options, remapped_interrupts) {
            Ok(count) => info!("registry", "{count} device(s) registered, all blocked"),
            Err(problem) => {
                error!("registry", "no device registry: {problem:?}");
                remapping_lines.push(alloc::format!("registry: none ({problem:?})"));
            }
        }
    }

    x86_64::instructions::interrupts::enable();
    if apic_info.is_some() {
        // TIMEOUT: two ticks are 20 ms at 100 Hz; 500 ms means the interrupt is not arriving.
        if time::poll(500_000, || (apic::ticks() >= 2).then_some(())).is_err() {
            warn!(
                "apic",
                "timer interrupt not seen within 500 ms ({} ticks)",
                apic::ticks()
            );
        }
    }

    // Drivers start with interrupts on: their probes wait for their devices' MSIs.
    let driver_lines = if passthrough::registry_lines().is_empty() {
        alloc::vec::Vec::new()
    } else {
        drivers::configure_network(options.net_address, options.net_gateway);
        drivers::start(&options.drivers, &devices.devices)
    };

    report::print(&report::Report {
        boot_info: &boot_info,
        map: &map,
        frames,
        platform,
        calibration,
        apic: apic_info,
        options: &options,
        devices,
        remapping: &remapping_lines,
        groups: &group_lines,
        registry: &passthrough::registry_lines(),
        drivers: &driver_lines,
    });
    moat_kernel::kprintln!("moat: ready");

    if let Some(name) = options.test.as_deref() {
        info!("test", "running scenario `{name}`");
        match scenarios::run(name) {
            Ok(()) => {
                info!("test", "scenario `{name}` passed");
                exit(ExitCode::Success)
            }
            Err(why) => {
                error!("test", "scenario `{name}` failed: {why}");
                exit(ExitCode::Failure)
            }
        }
    }
    if options.poweroff {
        info!("boot", "poweroff requested: exiting");
        exit(ExitCode::Success);
    }
    drop(map);
    drop(boot_info);
    loop {
        // Deferred work (releases, fault routing) and the drivers' own work (the network
        // stack) run between interrupts, never inside one.
        passthrough::settle();
        drivers::poll_all();
        x86_64::instructions::hlt();
    }
}

fn kernel_start_address() -> u64 {
    &raw const __kernel_start as u64
}

fn kernel_end_address() -> u64 {
    &raw const __kernel_end as u64
}

fn read_boot_info(loader: u32, address: u64, info: &mut BootInfo) {
    match loader {
        entry::LOADER_PVH => {
            // SAFETY: the PVH entry passed %ebx, the loader's start info, untouched since.
            if let Err(problem) = unsafe { pvh::read(address, info) } {
                fail("boot", format_args!("PVH start info unusable: {problem}"));
            }
        }
        entry::LOADER_MULTIBOOT2 => {
            // SAFETY: the multiboot2 entry passed %ebx with the magic checked, untouched since.
            if let Err(problem) = unsafe { multiboot2::read(address, info) } {
                fail(
                    "boot",
                    format_args!("multiboot2 information unusable: {problem}"),
                );
            }
        }
        _ => fail(
            "boot",
            format_args!("started by an unknown loader (no PVH or multiboot2 magic)"),
        ),
    }
}

fn build_memory_map(info: &BootInfo, map: &mut MemoryMap) {
    if info.regions().is_empty() {
        fail("memory", format_args!("the boot loader gave no memory map"));
    }
    for region in info.regions() {
        let Some(end) = region.start.checked_add(region.length) else {
            warn!(
                "memory",
                "memory-map entry {:#x}+{:#x} overflows; ignored", region.start, region.length
            );
            continue;
        };
        if region.length == 0 {
            continue;
        }
        if let Err(problem) = map.push(Region::new(
            region.start,
            end,
            RegionKind::from_e820(region.kind),
        )) {
            warn!(
                "memory",
                "memory-map entry {:#x}..{end:#x} dropped: {problem:?}", region.start
            );
        }
    }
    if info.regions_dropped > 0 {
        warn!(
            "memory",
            "{} memory-map entries beyond the first {} dropped",
            info.regions_dropped,
            info.regions().len()
        );
    }
    let reservations = [
        (0, 0x10_0000, "low 1 MiB (BIOS, real-mode structures)"),
        (kernel_start_address(), kernel_end_address(), "kernel image"),
    ];
    for (start, end, why) in reservations.into_iter().chain(
        info.loader_ranges
            .iter()
            .filter(|(s, e)| e > s)
            .map(|&(s, e)| (s, e, "boot loader information")),
    ) {
        if let Err(problem) = map.reserve(start, end, why) {
            fail("memory", format_args!("cannot reserve {why}: {problem:?}"));
        }
    }
}

/// Reports a bring-up failure the kernel cannot continue past and ends the run.
fn fail(subsystem: &str, why: core::fmt::Arguments<'_>) -> ! {
    error!(subsystem, "{why}");
    moat_kernel::kprintln!("moat: failed: {why}");
    exit(ExitCode::Failure)
}

#[panic_handler]
fn panic(panic: &core::panic::PanicInfo<'_>) -> ! {
    x86_64::instructions::interrupts::disable();
    let location = panic.location();
    console::emergency_write(format_args!(
        "\nmoat: PANIC at {}:{}: {}\nmoat: failed: kernel panic\n",
        location.map_or("?", |l| l.file()),
        location.map_or(0, |l| l.line()),
        panic.message()
    ));
    exit(ExitCode::Failure)
}
