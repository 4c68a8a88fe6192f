//! `block-load`: virtio-blk and NVMe at once with requests in flight, each in its own address
//! space, while an edu's DMA at their live buffers must fault; the host then checks both
//! images byte by byte (each device's own pattern, nothing else written).

use super::kernel;
use crate::disk_check;
use crate::qemu::Machine;
use moat_tests::{After, Expect, Scenario};
use std::path::Path;

/// The same values as boot/src/scenarios/block_load.rs.
const VIRTIO_SEED: u64 = 0x10ad_0001;
const NVME_SEED: u64 = 0x10ad_0002;
const FIRST_SECTOR: u64 = 8192;
const SECTORS: u64 = 64 * 64;
const IMAGE_BYTES: u64 = 16 << 20;

/// The scenario: virtio-blk (01:00.0), nvme (02:00.0) and the rogue edu (03:00.0), each below a
/// root port of its own.
pub(crate) fn scenario(image: &Path, disks: &Path) -> Scenario {
    let dir = disks.join("block-load");
    let virtio = dir.join("virtio-blk.img");
    let nvme = dir.join("nvme.img");
    if let Err(why) = disk_check::fresh_image(&virtio, IMAGE_BYTES)
        .and(disk_check::fresh_image(&nvme, IMAGE_BYTES))
    {
        eprintln!("xtask: block-load: {why}");
    }
    let devices = [
        "-device",
        "pcie-root-port,id=rp1,chassis=1,slot=1",
        "-drive",
        &format!("file={},if=none,id=vblk0,format=raw", virtio.display()),
        "-device",
        "virtio-blk-pci,bus=rp1,drive=vblk0,disable-legacy=on,iommu_platform=on",
        "-device",
        "pcie-root-port,id=rp2,chassis=2,slot=2",
        "-drive",
        &format!("file={},if=none,id=nvme0,format=raw", nvme.display()),
        "-device",
        "nvme,bus=rp2,drive=nvme0,serial=moat-load",
        "-device",
        "pcie-root-port,id=rp3,chassis=3,slot=3",
        "-device",
        "edu,bus=rp3",
    ]
    .map(String::from)
    .to_vec();
    let machine = Machine {
        devices,
        ..Machine::minimal()
    };
    let mut scenario = kernel(
        "block-load",
        &machine,
        image,
        "test=block-load drivers=virtio-blk,nvme",
        Expect::success([
            "block-load: the rogue edu's DMA at virtio-blk's live buffer at its IOVA",
            "block-load: the rogue edu's DMA at virtio-blk's live buffer at its physical address",
            "block-load: the rogue edu's DMA at nvme's live buffer at its IOVA",
            "block-load: the rogue edu's DMA at nvme's live buffer at its physical address",
            "block-load: virtio-blk: 128 requests, up to 8 in flight",
            "block-load: nvme: 128 requests, up to 8 in flight",
            "block-load: 8 DMA attempts by 0000:03:00.0 at the drivers' live buffers all faulted; both patterns read back exact",
            "0000:03:00.0 quarantined: too many DMA faults",
            "scenario `block-load` passed",
        ]),
    );
    let range = FIRST_SECTOR * 512..(FIRST_SECTOR + SECTORS) * 512;
    scenario.after = Some(After::new(move || {
        disk_check::check_pattern(&virtio, VIRTIO_SEED, range.clone())?;
        disk_check::check_pattern(&nvme, NVME_SEED, range)
    }));
    scenario
}
