//! Every QEMU command line and timeout of the project, in one place.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Wall-clock limit for a `-kernel` boot scenario (a TCG boot takes 1-3 s).
pub(crate) const KERNEL_TIMEOUT: Duration = Duration::from_secs(60);
/// Wall-clock limit for a boot through firmware and GRUB (OVMF alone takes ~5 s under TCG).
pub(crate) const IMAGE_TIMEOUT: Duration = Duration::from_secs(120);
/// Wall-clock limit for the hang scenario: it must be caught by this, so keep it short.
pub(crate) const HANG_TIMEOUT: Duration = Duration::from_secs(8);
/// Wall-clock limit for one block-benchmark boot (Moat or Linux) under [`BENCH_CLOCK`].
pub(crate) const BENCH_TIMEOUT: Duration = Duration::from_secs(900);

/// OVMF firmware (Debian package `ovmf`).
pub(crate) const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

/// The clock every benchmark boot runs under, Moat and Linux alike: instruction counting
/// (`shift=0`: one guest instruction is 1 ns of guest time) with `sleep=on` (an idle guest,
/// waiting for an I/O completion, sees real time pass). Plain TCG varied up to 2x between runs
/// on these machines; this made guest-timed rates repeatable within about 1.2x, while
/// `sleep=off` (idle time skipped) made them meaningless. The one place this is chosen.
pub(crate) const BENCH_CLOCK: [&str; 2] = ["-icount", "shift=0,sleep=on"];
/// The benchmark machine's virtio-blk (modern only, behind the IOMMU) on the root bus.
pub(crate) const BENCH_VIRTIO_BLK: &str = "00:03.0";
/// The benchmark machine's NVMe on the root bus.
pub(crate) const BENCH_NVME: &str = "00:04.0";

/// How the machine boots.
#[derive(Clone, Debug)]
pub(crate) enum Boot {
    /// QEMU loads the kernel ELF itself (PVH) with this command line.
    Kernel { image: PathBuf, cmdline: String },
    /// The appliance ISO as a CD-ROM.
    Cdrom(PathBuf),
    /// The appliance ISO as a raw hard disk.
    Disk(PathBuf),
    /// A Linux kernel and initramfs (the benchmark's Linux side) with this command line.
    Linux {
        kernel: PathBuf,
        initrd: PathBuf,
        cmdline: String,
    },
}

/// Firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Firmware {
    /// SeaBIOS (QEMU's default).
    Bios,
    /// OVMF (UEFI).
    Uefi,
}

/// A machine: q35 with the IOMMU and a set of extra devices.
#[derive(Clone, Debug, Default)]
pub(crate) struct Machine {
    /// Extra arguments (devices, drives).
    pub(crate) devices: Vec<String>,
    /// Leave out `-device intel-iommu`.
    pub(crate) no_iommu: bool,
    /// Extra `intel-iommu` properties, e.g. `aw-bits=48,caching-mode=on`.
    pub(crate) iommu_options: String,
}

impl Machine {
    /// q35 + intel-iommu and nothing else.
    pub(crate) fn minimal() -> Self {
        Self::default()
    }

    /// The machine `cargo xtask run` shows: an edu, an NVMe with a disk, a modern virtio-blk
    /// behind the IOMMU, an e1000e, a root port with an edu behind it, and a PCIe-to-PCI bridge
    /// (behind a root port) with two edu.
    pub(crate) fn showcase(disks: &Path) -> Self {
        let nvme = disks.join("nvme.img");
        let vblk = disks.join("virtio-blk.img");
        let devices = [
            "-device",
            "edu,id=edu0",
            "-drive",
            &format!("file={},if=none,id=nvme0,format=raw", nvme.display()),
            "-device",
            "nvme,drive=nvme0,serial=moat-nvme0",
            "-drive",
            &format!("file={},if=none,id=vblk0,format=raw", vblk.display()),
            "-device",
            "virtio-blk-pci,drive=vblk0,disable-legacy=on,iommu_platform=on",
            "-netdev",
            "user,id=net0,restrict=on",
            "-device",
            "e1000e,netdev=net0",
            "-device",
            "pcie-root-port,id=rp1,chassis=1,slot=1",
            "-device",
            "edu,bus=rp1,id=edu1",
            "-device",
            "pcie-root-port,id=rp2,chassis=2,slot=2",
            "-device",
            "pcie-pci-bridge,id=br1,bus=rp2",
            "-device",
            "edu,bus=br1,addr=1,id=edu2",
            "-device",
            "edu,bus=br1,addr=2,id=edu3",
        ];
        Self {
            devices: devices.iter().map(|s| s.to_string()).collect(),
            ..Self::default()
        }
    }

    /// The block benchmark machine, for Moat and Linux alike: a modern virtio-blk behind the
    /// IOMMU at [`BENCH_VIRTIO_BLK`] and an NVMe at [`BENCH_NVME`], each on its own image in
    /// `disks` (`virtio-blk.img`, `nvme.img`), the IOMMU as everywhere (interrupt remapping on:
    /// QEMU's default under TCG), and the [`BENCH_CLOCK`].
    pub(crate) fn bench(disks: &Path) -> Self {
        let vblk = disks.join("virtio-blk.img");
        let nvme = disks.join("nvme.img");
        let slot = |bdf: &str| bdf.trim_start_matches("00:").replace(".0", "");
        let mut devices = vec![
            "-drive".to_string(),
            format!("file={},if=none,id=vblk0,format=raw", vblk.display()),
            "-device".to_string(),
            format!(
                "virtio-blk-pci,drive=vblk0,disable-legacy=on,iommu_platform=on,addr=0x{}",
                slot(BENCH_VIRTIO_BLK)
            ),
            "-drive".to_string(),
            format!("file={},if=none,id=nvme0,format=raw", nvme.display()),
            "-device".to_string(),
            format!(
                "nvme,drive=nvme0,serial=moat-bench,addr=0x{}",
                slot(BENCH_NVME)
            ),
        ];
        devices.extend(BENCH_CLOCK.iter().map(|s| s.to_string()));
        Self {
            devices,
            ..Self::default()
        }
    }

    /// The interrupt-remapping machine: two edu on the root bus, so each has its own requester
    /// ID and no bridge alias.
    pub(crate) fn two_edus() -> Self {
        let devices = ["-device", "edu,addr=0x4", "-device", "edu,addr=0x5"];
        Self {
            devices: devices.iter().map(|s| s.to_string()).collect(),
            ..Self::default()
        }
    }

    /// The DMA test machine: an edu on the root bus, and two edu behind a PCIe-to-PCI bridge
    /// (behind a root port), whose DMA carries the bridge's alias requester ID.
    pub(crate) fn dma(iommu_options: &str) -> Self {
        let devices = [
            "-device",
            "edu,addr=0x4",
            "-device",
            "pcie-root-port,id=rp1,chassis=1,slot=1",
            "-device",
            "pcie-pci-bridge,id=br1,bus=rp1",
            "-device",
            "edu,bus=br1,addr=1",
            "-device",
            "edu,bus=br1,addr=2",
        ];
        Self {
            devices: devices.iter().map(|s| s.to_string()).collect(),
            no_iommu: false,
            iommu_options: iommu_options.into(),
        }
    }

    /// The device reset machine (`test=reset`), one root port per case: an nvme (FLR), an edu
    /// alone (bus reset), an e1000e (PM reset, ineffective in QEMU 7.2, then bus reset), a
    /// pcie-pci-bridge with two edu (bus reset refused while the sibling is not approved),
    /// and a pcie-pci-bridge as function 0 beside an edu as function 1 with an edu below the
    /// bridge (a bus reset that reaches a nested bridge). The nvme needs no disk.
    pub(crate) fn reset() -> Self {
        let devices = [
            "-device",
            "pcie-root-port,id=rp1,chassis=1,slot=1",
            "-device",
            "nvme,serial=moat-reset,bus=rp1",
            "-device",
            "pcie-root-port,id=rp2,chassis=2,slot=2",
            "-device",
            "edu,bus=rp2",
            "-netdev",
            "user,id=net0,restrict=on",
            "-device",
            "pcie-root-port,id=rp3,chassis=3,slot=3",
            "-device",
            "e1000e,bus=rp3,netdev=net0",
            "-device",
            "pcie-root-port,id=rp4,chassis=4,slot=4",
            "-device",
            "pcie-pci-bridge,id=br1,bus=rp4",
            "-device",
            "edu,bus=br1,addr=1",
            "-device",
            "edu,bus=br1,addr=2",
            "-device",
            "pcie-root-port,id=rp5,chassis=5,slot=5",
            "-device",
            "pcie-pci-bridge,id=br2,bus=rp5,addr=0.0,multifunction=on",
            "-device",
            "edu,bus=rp5,addr=0.1",
            "-device",
            "edu,bus=br2,addr=1",
        ];
        Self {
            devices: devices.iter().map(|s| s.to_string()).collect(),
            ..Self::default()
        }
    }
}

impl Machine {
    /// The ownership test machine: an edu alone below each of two root ports (separate,
    /// resettable groups), two edus behind a PCIe-to-PCI bridge (one group, one alias), an
    /// nvme (FLR) and an e1000e (PM reset that QEMU 7.2 ignores) each below a root port, and
    /// an edu on the root bus (no reset method at all).
    pub(crate) fn ownership() -> Self {
        let devices = [
            "-device",
            "pcie-root-port,id=rp1,chassis=1,slot=1,addr=0x2",
            "-device",
            "edu,bus=rp1,addr=0",
            "-device",
            "pcie-root-port,id=rp2,chassis=2,slot=2,addr=0x3",
            "-device",
            "edu,bus=rp2,addr=0",
            "-device",
            "pcie-root-port,id=rp3,chassis=3,slot=3,addr=0x5",
            "-device",
            "pcie-pci-bridge,id=br1,bus=rp3",
            "-device",
            "edu,bus=br1,addr=1",
            "-device",
            "edu,bus=br1,addr=2",
            "-device",
            "pcie-root-port,id=rp4,chassis=4,slot=4,addr=0x6",
            "-device",
            "nvme,serial=moat-own,bus=rp4,addr=0",
            "-device",
            "pcie-root-port,id=rp5,chassis=5,slot=5,addr=0x7",
            "-netdev",
            "user,id=n0,restrict=on",
            "-device",
            "e1000e,netdev=n0,bus=rp5,addr=0",
            "-device",
            "edu,addr=0x8",
        ];
        Self {
            devices: devices.iter().map(|s| s.to_string()).collect(),
            ..Self::default()
        }
    }
}

impl Machine {
    /// The NVMe machine: an nvme below each of its own root ports (buses 1, 2, ... in order),
    /// backed by its image or, for `None`, by none at all (a controller without a namespace),
    /// and an edu on the root bus (another driver's device, which must keep working).
    pub(crate) fn nvme(images: &[Option<&Path>]) -> Self {
        let mut devices = Vec::new();
        for (i, image) in images.iter().enumerate() {
            let n = i + 1;
            devices.push("-device".to_string());
            devices.push(format!(
                "pcie-root-port,id=rp{n},chassis={n},slot={n},addr={:#x}",
                n + 1
            ));
            let drive = match image {
                Some(path) => {
                    devices.push("-drive".to_string());
                    devices.push(format!(
                        "file={},if=none,id=nvme{n},format=raw",
                        path.display()
                    ));
                    format!(",drive=nvme{n}")
                }
                None => String::new(),
            };
            devices.push("-device".to_string());
            devices.push(format!("nvme,serial=moat-nvme{n},bus=rp{n},addr=0{drive}"));
        }
        devices.extend(["-device".to_string(), "edu,addr=0x10".to_string()]);
        Self {
            devices,
            ..Self::default()
        }
    }
}

/// Builds the QEMU command for `machine` booted by `boot` under `firmware`.
pub(crate) fn command(machine: &Machine, boot: &Boot, firmware: Firmware) -> Command {
    let mut command = Command::new("qemu-system-x86_64");
    command.args([
        "-machine",
        "q35",
        "-accel",
        "tcg",
        "-m",
        "512M",
        "-display",
        "none",
        "-nodefaults",
        "-no-reboot",
        "-serial",
        "stdio",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ]);
    if !machine.no_iommu {
        let device = match machine.iommu_options.as_str() {
            "" => "intel-iommu".to_string(),
            options => format!("intel-iommu,{options}"),
        };
        command.arg("-device").arg(device);
    }
    if firmware == Firmware::Uefi {
        command.args(["-bios", OVMF]);
    }
    command.args(&machine.devices);
    match boot {
        Boot::Kernel { image, cmdline } => {
            command
                .arg("-kernel")
                .arg(image)
                .arg("-append")
                .arg(cmdline);
        }
        Boot::Cdrom(iso) => {
            command.arg("-cdrom").arg(iso);
        }
        Boot::Linux {
            kernel,
            initrd,
            cmdline,
        } => {
            command
                .arg("-kernel")
                .arg(kernel)
                .arg("-initrd")
                .arg(initrd)
                .arg("-append")
                .arg(cmdline);
        }
        Boot::Disk(iso) => {
            command
                .arg("-drive")
                .arg(format!(
                    "file={},if=none,id=boot0,format=raw,snapshot=on",
                    iso.display()
                ))
                .args(["-device", "ide-hd,drive=boot0,bootindex=0"]);
        }
    }
    command
}

/// Creates the showcase machine's disk images (raw, sparse, 64 MiB) under `dir` if missing.
pub(crate) fn create_disks(dir: &Path) -> Result<(), String> {
    for name in ["nvme.img", "virtio-blk.img"] {
        let path = dir.join(name);
        if !path.exists() {
            crate::disk_check::fresh_image(&path, 64 << 20)?;
        }
    }
    Ok(())
}

/// Writes a DMAR whose only remapping structure has length 0 (a record a walker must not
/// loop on) with a correct checksum, for `-acpitable`; returns its path.
pub(crate) fn write_bad_dmar(dir: &Path) -> Result<PathBuf, String> {
    let mut table = Vec::new();
    table.extend_from_slice(b"DMAR");
    table.extend_from_slice(&0u32.to_le_bytes()); // length, set below
    table.push(1); // revision
    table.push(0); // checksum, set below
    table.extend_from_slice(b"MOAT  ");
    table.extend_from_slice(b"BADDMAR ");
    table.extend_from_slice(&1u32.to_le_bytes());
    table.extend_from_slice(b"MOAT");
    table.extend_from_slice(&1u32.to_le_bytes());
    table.push(38); // host address width - 1
    table.push(0); // flags
    table.extend_from_slice(&[0; 10]);
    // DRHD header: type 0, length 0 (invalid), then what a real DRHD would carry.
    table.extend_from_slice(&0u16.to_le_bytes());
    table.extend_from_slice(&0u16.to_le_bytes());
    table.extend_from_slice(&[0; 4]);
    table.extend_from_slice(&0xfed9_0000u64.to_le_bytes());
    let length = table.len() as u32;
    table[4..8].copy_from_slice(&length.to_le_bytes());
    let sum = table.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    table[9] = 0u8.wrapping_sub(sum);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let path = dir.join("bad-dmar-zero-length.bin");
    std::fs::write(&path, table).map_err(|e| e.to_string())?;
    Ok(path)
}
