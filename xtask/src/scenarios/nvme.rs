//! The NVMe driver scenarios (boot/src/scenarios/nvme.rs). Their disk images are created
//! fresh (all zero) for every run and checked byte by byte on the host afterwards.

use super::kernel;
use crate::disk_check::{check_pattern, fresh_image};
use crate::qemu::Machine;
use moat_tests::{After, Expect, Scenario};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The guest's pattern: its seed, and the bytes it covers (boot/src/scenarios/nvme.rs:
/// blocks 2051..7963 of 512 bytes). The guest prints the range and the expectations below
/// require that line, so the two cannot drift apart unnoticed.
const SEED: u64 = 0x6e76_6d65;
const RANGE: Range<u64> = 0x10_0600..0x3e_3600;
const WRITTEN: &str = "bytes 0x100600..0x3e3600 written with 24 commands and read back with 24";

/// Image sizes: room for the range; and a namespace of 128 blocks, smaller than the range.
const DISK: u64 = 8 << 20;
const TINY: u64 = 64 << 10;

fn image(dir: &Path, name: &str, size: u64) -> PathBuf {
    let path = dir.join(name);
    if let Err(why) = fresh_image(&path, size) {
        // QEMU then fails on the missing image, and the scenario with it, showing why.
        eprintln!("xtask: {name}: {why}");
    }
    path
}

/// The scenarios, with their images under `disks/nvme`.
pub(super) fn scenarios(kernel_image: &Path, disks: &Path) -> Vec<Scenario> {
    let dir = disks.join("nvme");
    let disk = image(&dir, "nvme-pattern.img", DISK);
    let mut pattern = kernel(
        "nvme-pattern",
        &Machine::nvme(&[Some(&disk)]),
        kernel_image,
        "test=nvme-pattern drivers=nvme",
        Expect::success([
            "driver: 0000:01:00.0 nvme group",
            "namespace 1: 16384 blocks of 512 B, 2 I/O queue pairs on MSI-X 1-2",
            WRITTEN,
            "up to 16 in flight on 2 queues), compared, flushed",
            "completions interrupt-driven: MSI-X 1 delivered",
            "batch invalidations",
            "nvme-pattern: 0000:01:00.0: shut down and released: registry: 0000:01:00.0",
            "scenario `nvme-pattern` passed",
        ]),
    );
    pattern.after = Some(After::new(move || check_pattern(&disk, SEED, RANGE)));

    let good = image(&dir, "nvme-bad-input-good.img", DISK);
    let tiny = image(&dir, "nvme-bad-input-tiny.img", TINY);
    let mut bad = kernel(
        "nvme-bad-input",
        &Machine::nvme(&[Some(&good), Some(&tiny), None]),
        kernel_image,
        "test=nvme-bad-input drivers=nvme,edu",
        Expect::success([
            "driver: 0000:01:00.0 nvme group",
            "driver: 0000:02:00.0 nvme group",
            "namespace 1: 128 blocks of 512 B",
            "driver: 0000:03:00.0: nvme failed: the controller has no active namespace",
            "nvme-bad-input: 0000:03:00.0 reported:",
            "nvme-bad-input: 0000:02:00.0: blocks 2051..7963 asked, the namespace has 128; removed: registry: 0000:02:00.0",
            "nvme-bad-input: the rest works: 0000:01:00.0:",
            WRITTEN,
            "5! = 120",
            "scenario `nvme-bad-input` passed",
        ]),
    );
    bad.after = Some(After::new(move || {
        check_pattern(&good, SEED, RANGE)?;
        // Nothing reached the small namespace.
        check_pattern(&tiny, SEED, 0..0)
    }));
    vec![pattern, bad]
}
