//! The Linux side of the block benchmark: Debian's kernel (the group oracle's, cached in
//! `.cache/linux`), an initramfs with busybox, the virtio-blk and NVMe modules with their
//! dependencies, and `linux-init.sh`, booted on the same QEMU machine and clock as Moat's bench
//! boots, once with `iommu.strict=1` (Debian's 6.1 ignores `iommu=strict`) and once with
//! `iommu=pt`.

use super::results::Mode;
use super::{JOBS, RANDOM_IOS, SEQUENTIAL_IOS};
use crate::oracle::{InitramfsSpec, LinuxGuest, ensure_linux_with};
use crate::qemu::{BENCH_NVME, BENCH_VIRTIO_BLK};
use std::path::Path;

/// The guest's `/init`.
const INIT_SCRIPT: &str = include_str!("linux-init.sh");

/// The drivers loaded with `insmod` (their dependencies are found in the package).
const MODULES: &[&str] = &["virtio_pci", "virtio_blk", "nvme"];

/// The initramfs, cached beside the oracle's.
const INITRAMFS: InitramfsSpec<'static> = InitramfsSpec {
    file: "bench-initrd.gz",
    init_script: INIT_SCRIPT,
    modules: MODULES,
};

/// Makes sure the benchmark's Linux guest is in `cache` (downloading the kernel package and
/// busybox on first use) and returns it.
pub(super) fn guest(cache: &Path) -> Result<LinuxGuest, String> {
    ensure_linux_with(cache, &INITRAMFS)
}

/// The kernel command line for `mode`: the IOMMU on, strict (every unmap invalidated before
/// it returns) or pass-through (identity domains, TT=2), and the workload parameters
/// `linux-init.sh` reads.
pub(super) fn cmdline(mode: Mode) -> String {
    let iommu = match mode {
        Mode::Strict => "iommu.strict=1",
        Mode::PassThrough => "iommu=pt",
    };
    format!(
        "console=ttyS0 intel_iommu=on {iommu} panic=-1 quiet bench_vblk=0000:{BENCH_VIRTIO_BLK} \
         bench_nvme=0000:{BENCH_NVME} bench_rand={RANDOM_IOS} bench_seq={SEQUENTIAL_IOS} bench_jobs={JOBS}"
    )
}

/// The IOMMU domain type Linux must report for a device in `mode` (sysfs
/// `iommu_group/type`): a run whose devices are not where the mode says is refused.
pub(super) fn expected_domain(mode: Mode) -> &'static str {
    match mode {
        Mode::Strict => "DMA",
        Mode::PassThrough => "identity",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_lines_differ_only_in_the_iommu_mode() {
        let strict = cmdline(Mode::Strict);
        let pass = cmdline(Mode::PassThrough);
        assert!(
            strict.contains("intel_iommu=on iommu.strict=1 "),
            "{strict}"
        );
        assert!(pass.contains("intel_iommu=on iommu=pt "), "{pass}");
        assert_eq!(
            strict.replace("iommu.strict=1", "iommu=pt"),
            pass,
            "same workload both times"
        );
        assert!(strict.contains("bench_vblk=0000:00:03.0 bench_nvme=0000:00:04.0"));
    }

    #[test]
    fn the_init_script_prints_lines_the_parser_reads() {
        assert!(INIT_SCRIPT.starts_with("#!/bin/busybox sh\n"));
        for needed in [
            "echo bench-block-begin",
            "echo bench-block-end",
            "poweroff -f",
            "iflag=direct",
            "bench-block: system=linux device=$name mode=$mode domain=$domain workload=$1 qd=$2",
            "1103515245",
        ] {
            assert!(INIT_SCRIPT.contains(needed), "missing `{needed}`");
        }
    }
}
