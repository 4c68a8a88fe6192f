//! The pass-through scenarios (boot/src/scenarios/pass_through.rs): the benchmark's
//! yardstick on QEMU's VT-d, its DeviceDma mode beside a strict device, a unit without
//! ECAP.PT refusing it, and the block benchmark's guest side (boot/src/scenarios/bench_block.rs)
//! run once so it cannot rot between `cargo xtask bench` runs.

use super::kernel;
use crate::qemu::Machine;
use moat_tests::{Expect, Scenario};
use std::path::Path;

/// Every scenario of this file.
pub(super) fn scenarios(image: &Path, disks: &Path) -> Vec<Scenario> {
    let mut list = Vec::new();
    list.push(kernel(
        "dma-passthrough",
        &Machine::dma(""),
        image,
        "test=dma-passthrough iommu.passthrough=00:04.0,00:09.0",
        Expect::success([
            "pass-through: group 2: 0000:00:04.0 (iommu.passthrough=0000:00:04.0): benchmark yardstick",
            "pass-through refused for 0000:00:09.0 (iommu.passthrough): no remapping unit translates this device",
            "dma-passthrough: 0000:00:04.0 copied 1024 bytes out of PA",
            "dmar fault: source=0000:02:00.0",
            "access=write reason=0x05",
            "pass-through: benchmark yardstick, no isolation",
            "dma-passthrough: ok",
            "scenario `dma-passthrough` passed",
        ]),
    ));
    list.push(kernel(
        "driver-edu-passthrough",
        &Machine::dma(""),
        image,
        "test=driver-edu-passthrough drivers=edu iommu.passthrough=00:04.0",
        Expect::success([
            "driver-edu-passthrough: 0000:00:04.0: round trip at physical addresses, 0 invalidations",
            "driver-edu-passthrough: ok (0000:02:01.0 strict: 2 invalidation(s) for one round trip",
            "scenario `driver-edu-passthrough` passed",
        ]),
    ));
    let bench_disks = disks.join("bench-block");
    if let Err(why) = crate::bench::create_disks(&bench_disks) {
        eprintln!("xtask: bench-block-runs: {why}");
    }
    // The block benchmark's guest side, so it cannot rot between `cargo xtask bench` runs:
    // one boot with the virtio-blk strict and the NVMe in pass-through. No speed is checked.
    list.push(kernel(
        "bench-block-runs",
        &Machine::bench(&bench_disks),
        image,
        "test=bench-block drivers=all iommu.passthrough=00:04.0",
        Expect::success([
            "bench-block: system=moat device=virtio-blk mode=strict workload=rand-4k qd=1 ios=1024 bytes=4194304 ns=",
            "bench-block: system=moat device=virtio-blk mode=strict workload=seq-128k qd=32 ios=512 bytes=67108864 ns=",
            "bench-block: system=moat device=nvme mode=pass-through workload=rand-4k qd=32 ios=1024 bytes=4194304 ns=",
            "bench-block: system=moat device=nvme mode=pass-through workload=seq-128k qd=1 ios=512 bytes=67108864 ns=",
            "invalidations=0 maps=",
            "scenario `bench-block` passed",
        ]),
    ));
    list.push(kernel(
        "passthrough-refused-without-ecap-pt",
        &Machine::dma("pt=off"),
        image,
        "poweroff iommu.passthrough=00:04.0",
        Expect::success([
            "pass-through refused for 0000:00:04.0 (iommu.passthrough): its remapping unit lacks ECAP.PT; it stays translated",
        ]),
    ));
    list
}
