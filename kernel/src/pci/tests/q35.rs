//! The machine `cargo xtask run` boots, as QEMU 7.2 q35 and SeaBIOS present it: devices on
//! the root bus, root ports with an nvme, an edu and a pcie-pci-bridge (two edus behind it),
//! the ICH9 multifunction slot, and a pci-testdev with an I/O BAR and a 64-bit prefetchable
//! BAR. Offsets and IDs follow QEMU's sources where the tests depend on them.

use crate::pci::ConfigSpaceSize;

use super::builder::FunctionBuilder;
use super::fake::{FakeConfig, bdf};

/// QEMU's pcie-root-port (1b36:000c): PCIe, MSI-X and PM capabilities, AER at 0x100, ACS at
/// 0x148 with capability 0x5f and control 0 (QEMU resets it), a 4 KiB BAR for the MSI-X table.
pub(super) fn root_port(buses: [u8; 3], bar_address: u32) -> FunctionBuilder {
    FunctionBuilder::bridge(0x1b36, 0x000c, buses)
        .bar32(0, bar_address, 0x1000, false)
        .pcie(0x54, 4)
        .cap(0x48, 0x11)
        .cap(0x40, 0x01)
        .ext_cap(0x100, 0x0001)
        .acs(0x148, 0x5f, 0)
}

/// QEMU's edu (1234:11e8, revision 0x10, class 00ff00): conventional PCI, MSI at 0x40, a
/// 1 MiB 32-bit BAR 0.
pub(super) fn edu(bar_address: u32) -> FunctionBuilder {
    FunctionBuilder::endpoint(0x1234, 0x11e8, 0x00_ff_00)
        .revision(0x10)
        .bar32(0, bar_address, 0x10_0000, false)
        .cap(0x40, 0x05)
}

/// Who is where; see the module comment.
pub(super) fn q35(size: ConfigSpaceSize) -> FakeConfig {
    let mut machine = FakeConfig::new(size);
    let mut add = |at: &str, function: FunctionBuilder| machine.insert(bdf(at), function.build());

    add(
        "0000:00:00.0",
        FunctionBuilder::endpoint(0x8086, 0x29c0, 0x06_00_00),
    );
    add(
        "0000:00:01.0",
        root_port([0, 1, 1], 0xfeb0_0000).multifunction(),
    );
    add("0000:00:01.1", root_port([0, 2, 3], 0xfeb0_1000));
    add("0000:00:02.0", root_port([0, 4, 4], 0xfeb0_2000));
    add("0000:00:04.0", edu(0xfea0_0000).command(0x0006));
    add(
        "0000:00:05.0",
        FunctionBuilder::endpoint(0x1b36, 0x0005, 0x00_ff_00)
            .command(0x0003)
            .bar32(0, 0xfeb1_0000, 0x1000, false)
            .io_bar(1, 0xc000, 0x100)
            .bar64(2, 0x8_0000_0000, 0x10_0000, true),
    );
    add(
        "0000:00:1f.0",
        FunctionBuilder::endpoint(0x8086, 0x2918, 0x06_01_00).multifunction(),
    );
    add(
        "0000:00:1f.2",
        FunctionBuilder::endpoint(0x8086, 0x2922, 0x01_06_01)
            .command(0x0007)
            .io_bar(4, 0xc080, 0x20)
            .bar32(5, 0xfeb1_1000, 0x1000, false)
            .cap(0x80, 0x05)
            .cap(0xa8, 0x12),
    );
    add(
        "0000:00:1f.3",
        FunctionBuilder::endpoint(0x8086, 0x2930, 0x0c_05_00).io_bar(4, 0x0700, 0x40),
    );
    // nvme: PM, MSI-X, PCIe endpoint; ARI and SR-IOV as with sriov_max_vfs; 64-bit BAR 0.
    add(
        "0000:01:00.0",
        FunctionBuilder::endpoint(0x1b36, 0x0010, 0x01_08_02)
            .revision(0x02)
            .command(0x0006)
            .bar64(0, 0xfe80_0000, 0x4000, false)
            .cap(0x40, 0x01)
            .cap(0x50, 0x11)
            .pcie(0x80, 0)
            .ext_cap(0x100, 0x000e)
            .ext_cap(0x120, 0x0010),
    );
    // pcie-pci-bridge: PCIe (PCIe-to-PCI bridge), MSI, SHPC, PM, AER; 64-bit SHPC BAR, which
    // fills both of a bridge's BAR slots.
    add(
        "0000:02:00.0",
        FunctionBuilder::bridge(0x1b36, 0x000e, [2, 3, 3])
            .bar64(0, 0xfe60_0000, 0x100, false)
            .pcie(0x40, 7)
            .cap(0x90, 0x05)
            .cap(0x80, 0x0c)
            .cap(0x88, 0x01)
            .ext_cap(0x100, 0x0001),
    );
    add("0000:03:01.0", edu(0xfe40_0000));
    add("0000:03:02.0", edu(0xfe50_0000));
    add("0000:04:00.0", edu(0xfe20_0000));
    machine
}

/// What [`device_line`](crate::pci::device_line) prints for [`q35`] through ECAM.
pub(super) const Q35_LINES: [&str; 14] = [
    "0000:00:00.0 8086:29c0 060000 pci-endpoint []",
    "0000:00:01.0 1b36:000c 060400 pcie-root-port [pcie,msi-x,pm,aer,acs]",
    "0000:00:01.1 1b36:000c 060400 pcie-root-port [pcie,msi-x,pm,aer,acs]",
    "0000:00:02.0 1b36:000c 060400 pcie-root-port [pcie,msi-x,pm,aer,acs]",
    "0000:00:04.0 1234:11e8 00ff00 pci-endpoint [msi]",
    "0000:00:05.0 1b36:0005 00ff00 pci-endpoint []",
    "0000:00:1f.0 8086:2918 060100 pci-endpoint []",
    "0000:00:1f.2 8086:2922 010601 pci-endpoint [msi,cap-12]",
    "0000:00:1f.3 8086:2930 0c0500 pci-endpoint []",
    "0000:01:00.0 1b36:0010 010802 pcie-endpoint [pm,msi-x,pcie,ari,sr-iov]",
    "0000:02:00.0 1b36:000e 060400 pcie-to-pci-bridge [pcie,msi,cap-0c,pm,aer]",
    "0000:03:01.0 1234:11e8 00ff00 pci-endpoint [msi]",
    "0000:03:02.0 1234:11e8 00ff00 pci-endpoint [msi]",
    "0000:04:00.0 1234:11e8 00ff00 pci-endpoint [msi]",
];
