//! The QEMU integration scenarios `cargo xtask test` runs: each boots the real image with a
//! wall-clock timeout and states exactly which outcome and which serial lines prove it.

mod block_load;
mod drivers;
mod nvme;
mod pass_through;
mod virtio_blk;

use crate::qemu::{self, Boot, Firmware, Machine};
use moat_tests::{Expect, OutcomeKind, Scenario};
use std::path::Path;

/// The showcase machine with disk images of its own under `disks/scenario` (two QEMUs
/// cannot open one image: QEMU locks it).
fn showcase(disks: &Path, scenario: &str) -> Machine {
    let dir = disks.join(scenario);
    if let Err(why) = qemu::create_disks(&dir) {
        // QEMU then fails on the missing image, and the scenario with it, showing why.
        eprintln!("xtask: {scenario}: {why}");
    }
    Machine::showcase(&dir)
}

/// A `-kernel` scenario. Drivers stay off (`drivers=none`, every device blocked until a
/// scenario binds it) unless the command line names them.
pub(crate) fn kernel(
    name: &str,
    machine: &Machine,
    image: &Path,
    cmdline: &str,
    expect: Expect,
) -> Scenario {
    let cmdline = if cmdline.contains("drivers=") {
        cmdline.to_string()
    } else {
        format!("{cmdline} drivers=none")
    };
    let boot = Boot::Kernel {
        image: image.to_path_buf(),
        cmdline,
    };
    Scenario {
        name: name.into(),
        command: qemu::command(machine, &boot, Firmware::Bios),
        timeout: qemu::KERNEL_TIMEOUT,
        expect,
        after: None,
        during: None,
    }
}

/// The foundation scenarios on the kernel ELF (`-kernel`, PVH).
pub(crate) fn kernel_scenarios(image: &Path, disks: &Path) -> Vec<Scenario> {
    let minimal = Machine::minimal();
    let report = [
        "moat boot report",
        "memory: ",
        "cpus: 1 in MADT",
        "acpi: RSDP at",
        "timers: TSC",
        "ticks so far",
    ];
    let mut list = vec![
        kernel(
            "boot-ready",
            &minimal,
            image,
            "poweroff",
            Expect::success(report.iter().copied().chain([
                "APIC @",
                "MCFG @",
                "DMAR @",
                "ecam: segment 0 buses 0x00-0xff at 0xb0000000",
                "loader PVH (QEMU -kernel)",
                "pci: 0000:00:00.0 8086:29c0 060000",
                "dmar: unit 0 at 0xfed90000 segment 0: VT-d 1.0",
                "translation: enabled",
                "blocked: group",
                "device(s) registered, all blocked",
                "registry: 0000:00:1f.0 group",
            ])),
        ),
        kernel(
            "boot-showcase-machine",
            &showcase(disks, "boot-showcase-machine"),
            image,
            "poweroff",
            // Linux's groups for this machine (facts D: root-bus devices alone but for the
            // ICH9 slot; behind an ACS root port alone; behind a PCIe-to-PCI bridge together).
            Expect::success(report.iter().copied().chain([
                "iommu group 4: 0000:00:04.0",
                "iommu group 7: 0000:00:1f.0 0000:00:1f.2 0000:00:1f.3",
                "iommu group 8: 0000:01:00.0",
                "iommu group 9: 0000:02:00.0 0000:03:01.0 0000:03:02.0",
            ])),
        ),
        kernel(
            "boot-without-iommu",
            &Machine {
                no_iommu: true,
                ..Machine::minimal()
            },
            image,
            "poweroff",
            Expect::success(["dmar: none", "iommu groups: none (remapping off)"]),
        ),
        kernel(
            "timer-interrupt",
            &minimal,
            image,
            "test=timer",
            Expect::success(["timer: 5 ticks in", "scenario `timer` passed"]),
        ),
        kernel(
            "unknown-option-reported",
            &minimal,
            image,
            "poweroff bogus=1 frobnicate test=",
            Expect::success([
                "unknown option `bogus=1`",
                "unknown option `frobnicate`",
                "malformed option `test=`",
            ]),
        ),
        kernel(
            "panic-is-failure",
            &minimal,
            image,
            "test=panic",
            Expect::failure(
                OutcomeKind::KernelFailure,
                ["moat: PANIC at", "deliberate panic requested by test=panic"],
            ),
        ),
        kernel(
            "page-fault-reported",
            &minimal,
            image,
            "test=page-fault",
            Expect::failure(
                OutcomeKind::KernelFailure,
                [
                    "CPU exception #PF page fault (vector 14)",
                    "cr2=0x00007e57dead0000",
                    "page not present on read",
                ],
            ),
        ),
        kernel(
            "unknown-scenario-is-failure",
            &minimal,
            image,
            "test=no-such-scenario",
            Expect::failure(
                OutcomeKind::KernelFailure,
                ["unknown test scenario `no-such-scenario`"],
            ),
        ),
        kernel(
            "triple-fault-is-reset",
            &minimal,
            image,
            "test=triple-fault",
            Expect::failure(OutcomeKind::Reset, ["running scenario `triple-fault`"]),
        ),
    ];
    for (aw, invalidation) in [
        (39, "register"),
        (39, "queued"),
        (48, "register"),
        (48, "queued"),
    ] {
        list.push(dma(
            &format!("aw-bits={aw}"),
            // Register invalidation leaves interrupt remapping off (the interrupt entry cache
            // can only be invalidated through the queue), so binding an edu (it has MSI)
            // needs the explicit opt-in.
            &if invalidation == "register" {
                format!(
                    "test=dma-all iommu.invalidation={invalidation} iommu.allow_unsafe_interrupts"
                )
            } else {
                format!("test=dma-all iommu.invalidation={invalidation}")
            },
            &format!("dma-aw{aw}-{invalidation}"),
            image,
            aw,
            invalidation,
        ));
    }
    list.push(dma(
        "aw-bits=39,caching-mode=on",
        "test=dma-all",
        "dma-aw39-caching-mode",
        image,
        39,
        "queued",
    ));
    list.extend(irq_scenarios(image));
    list.push(kernel(
        "device-reset",
        &Machine::reset(),
        image,
        "test=reset",
        Expect::success([
            "reset-flr: ok (nvme 0000:01:00.0: method flr;",
            "CC 0x460001->0x0, CSTS.RDY 1->0, MSI-X entry 0 data 0x4d4f->0x0 (masked)",
            "reset-pm-then-bus: ok (e1000e 0000:03:00.0: method bus; tried first: pm reset had no effect: 0000:03:00.0 Command 0x402->0x402;",
            "RDBAL0 0x12345000->0x0",
            "reset-bus: ok (edu 0000:02:00.0 below 0000:00:02.0: method bus;",
            "reset-bus-refused: ok (0000:05:01.0: refused (bus reset not approved; it would reset 0000:05:01.0 0000:05:02.0), then approved: method bus;",
            "reset-bus-nested: ok (0000:06:00.1 with nested bridge 0000:06:00.0 (bus numbers 0x70706 back): method bus;",
            "0000:07:01.0 BAR0 0x",
            "scenario `reset` passed",
        ]),
    ));
    let bad_dmar = qemu::write_bad_dmar(&disks.join("acpi")).unwrap_or_default();
    let mut corrupted = Machine {
        no_iommu: true,
        ..Machine::minimal()
    };
    corrupted.devices.extend([
        "-acpitable".to_string(),
        format!("file={}", bad_dmar.display()),
    ]);
    list.push(kernel(
        "bad-dmar-remapping-off",
        &corrupted,
        image,
        "poweroff",
        Expect::success(["DMA remapping off: DMAR table rejected: at 0x30: structure type 0 has length 0; DMA isolation unavailable"]),
    ));
    list.push(kernel(
        "no-iommu-remapping-off",
        &Machine {
            no_iommu: true,
            ..Machine::minimal()
        },
        image,
        "test=dma-translate",
        Expect::failure(
            OutcomeKind::KernelFailure,
            [
                "DMA remapping off: no valid DMAR table",
                "DMA remapping is off",
            ],
        ),
    ));
    list.push(kernel(
        "iommu-off-option",
        &Machine::dma(""),
        image,
        "iommu=off poweroff",
        Expect::success([
            "DMA remapping off: iommu=off on the command line; DMA isolation unavailable",
            "iommu groups: none (remapping off)",
        ]),
    ));
    list.extend(pass_through::scenarios(image, disks));
    list.push(kernel(
        "bind-refused-without-interrupt-remapping",
        &Machine::dma(""),
        image,
        "test=dma-translate iommu.invalidation=register",
        Expect::failure(
            OutcomeKind::KernelFailure,
            ["interrupt remapping off", "UnsafeInterrupts"],
        ),
    ));
    list.push(kernel(
        "ownership-all",
        &Machine::ownership(),
        image,
        "test=own-all iommu.fault_limit=4/10000ms",
        Expect::success([
            "iommu group",
            "own-isolation: ok",
            "own-conflict: ok",
            "own-group: ok",
            "own-release: ok",
            "own-faults: ok",
            "quarantined: too many DMA faults",
            "own-msix: ok",
            "own-reset-methods: ok",
            "own-frames: ok",
            "scenario `own-all` passed",
        ]),
    ));
    list.extend(nvme::scenarios(image, disks));
    let mut hang = kernel(
        "hang-is-timeout",
        &minimal,
        image,
        "test=hang",
        Expect::failure(OutcomeKind::Timeout, ["running scenario `hang`"]),
    );
    hang.timeout = qemu::HANG_TIMEOUT;
    list.push(hang);
    list.extend(virtio_blk::scenarios(image, disks));
    list.push(block_load::scenario(image, disks));
    list.extend(drivers::scenarios(image, disks));
    list
}

/// Interrupt remapping: the proof on two root-bus edus (exact source IDs) and on the DMA
/// machine (edu B behind a PCIe-to-PCI bridge: a bus-range entry), and the two ways it is
/// reported off (register-based invalidation, a unit without ECAP.IR).
fn irq_scenarios(image: &Path) -> Vec<Scenario> {
    let proof = |extra: &str| {
        Expect::success([
            "dmar: interrupt remapping enabled (256 entries, xAPIC)",
            "irq-remap: own entry: ok (4 deliveries on vector 48: 3 raised, 1 DMA completion)",
            "irq-remap: foreign entry: ok",
            "irq-remap: compatibility format: ok",
            "stray interrupt on vector 50: no owner; counted and ignored",
            "irq-remap: freed entry: ok",
            extra,
            "scenario `irq-remap` passed",
        ])
    };
    let refused = |why: &str| {
        Expect::failure(
            OutcomeKind::KernelFailure,
            [
                format!("dmar: interrupt remapping off: unit 0 at 0xfed90000{why}"),
                "MSIs are not isolated".to_string(),
                "scenario `irq-remap` failed: interrupt remapping is off".to_string(),
            ],
        )
    };
    vec![
        kernel(
            "irq-remap",
            &Machine::two_edus(),
            image,
            "test=irq-remap",
            proof("edu B 0000:00:05.0: entry 1 of 256, vector 49, accepts RequesterId"),
        ),
        kernel(
            "irq-remap-bridge",
            &Machine::dma(""),
            image,
            "test=irq-remap",
            proof("edu B 0000:02:01.0: entry 1 of 256, vector 49, accepts BusRange"),
        ),
        kernel(
            "irq-remap-off-with-register-invalidation",
            &Machine::two_edus(),
            image,
            "test=irq-remap iommu.invalidation=register",
            refused(": the unit uses register-based invalidation"),
        ),
        kernel(
            "irq-remap-off-without-ecap-ir",
            &Machine {
                iommu_options: "intremap=off".into(),
                ..Machine::two_edus()
            },
            image,
            "test=irq-remap",
            refused(" lacks ECAP.IR"),
        ),
    ]
}

/// The appliance ISO under SeaBIOS and OVMF, as a CD and as a raw disk.
pub(crate) fn image_scenarios(iso: &Path) -> Vec<Scenario> {
    let mut list = Vec::new();
    for (firmware, firmware_name) in [(Firmware::Bios, "seabios"), (Firmware::Uefi, "ovmf")] {
        for (boot, medium) in [
            (Boot::Cdrom(iso.to_path_buf()), "cdrom"),
            (Boot::Disk(iso.to_path_buf()), "disk"),
        ] {
            list.push(Scenario {
                name: format!("iso-{firmware_name}-{medium}"),
                command: qemu::command(&Machine::minimal(), &boot, firmware),
                timeout: qemu::IMAGE_TIMEOUT,
                expect: Expect::success([
                    "loader multiboot2 (GRUB)",
                    "acpi: RSDP at",
                    "timers: TSC",
                ]),
                after: None,
                during: None,
            });
        }
    }
    list
}

/// One run of every DMA scenario on the DMA machine with `iommu_options`.
fn dma(
    iommu_options: &str,
    cmdline: &str,
    name: &str,
    image: &Path,
    aw: u32,
    invalidation: &str,
) -> Scenario {
    let levels = if aw == 48 { 4 } else { 3 };
    kernel(
        name,
        &Machine::dma(iommu_options),
        image,
        cmdline,
        Expect::success([
            format!("address width {aw} bits (MGAW), {levels}-level tables"),
            format!("invalidation: {invalidation}"),
            "translation: enabled".to_string(),
            "dma-translate: ok".to_string(),
            "dma-blocked: ok".to_string(),
            "dmar fault: source=0000:00:04.0 addr=0xbad0000 access=read reason=0x06 (read not permitted)".to_string(),
            "dma-readonly: ok".to_string(),
            "dma-unmap: ok".to_string(),
            "dma-superpage: ok".to_string(),
            "dma-alias: ok".to_string(),
            "access=write reason=0x05 (write not permitted)".to_string(),
            "scenario `dma-all` passed".to_string(),
        ]),
    )
}
