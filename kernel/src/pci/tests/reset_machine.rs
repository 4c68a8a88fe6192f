//! The machine the reset tests run on, shaped like the one `test=reset` boots under QEMU 7.2
//! (facts H.1 for what each device offers), with the bus numbers SeaBIOS gives it:
//!
//! ```text
//! 00:01.0 root port [0,1,1]  -> 01:00.0 nvme       (FLR; PM with No_Soft_Reset; MSI-X)
//! 00:02.0 root port [0,2,2]  -> 02:00.0 edu        (alone below its port: bus reset)
//! 00:03.0 root port [0,3,3]  -> 03:00.0 e1000e     (PM, No_Soft_Reset clear; MSI, MSI-X)
//! 00:04.0 root port [0,4,5]  -> 04:00.0 pcie-pci-bridge [4,5,5] -> 05:01.0 edu, 05:02.0 edu
//! 00:05.0 root port [0,6,7]  -> 06:00.0 bridge with ACS [6,7,7] -> 07:01.0 edu
//!                               06:00.1 edu       (a sibling of the nested bridge)
//! 00:06.0 edu on the root bus (no reset method)
//! ```

use crate::pci::{ConfigSpaceSize, Enumeration, enumerate};

use super::builder::FunctionBuilder;
use super::fake::{FakeConfig, bdf};
use super::q35::{edu, root_port};

/// QEMU's nvme: 16 KiB 64-bit BAR 0, PM with No_Soft_Reset, MSI-X, PCIe endpoint whose
/// DEVCAP advertises FLR.
pub(super) fn nvme() -> FunctionBuilder {
    FunctionBuilder::endpoint(0x1b36, 0x0010, 0x01_08_02)
        .bar64(0, 0xfe80_0000, 0x4000, false)
        .cap(0x40, 0x01)
        .set16(0x44, 0x0008)
        .cap(0x50, 0x11)
        .set16(0x52, 0x0040)
        .pcie(0x80, 0)
        .set32(0x84, 1 << 28)
        .set16(0x88, 0x2810)
}

/// QEMU's e1000e: three memory BARs and an I/O BAR, PM with No_Soft_Reset clear, 64-bit
/// MSI, PCIe endpoint without FLR, MSI-X.
fn e1000e() -> FunctionBuilder {
    FunctionBuilder::endpoint(0x8086, 0x10d3, 0x02_00_00)
        .bar32(0, 0xfe84_0000, 0x2_0000, false)
        .bar32(1, 0xfe86_0000, 0x2_0000, false)
        .io_bar(2, 0x1000, 0x20)
        .bar32(3, 0xfe88_0000, 0x4000, false)
        .cap(0xc8, 0x01)
        .cap(0xd0, 0x05)
        .set16(0xd2, 0x0080)
        .pcie(0x80, 0)
        .cap(0x70, 0x11)
}

/// QEMU's edu with its 64-bit MSI capability and a firmware-assigned Interrupt Line.
fn edu_at(address: u32) -> FunctionBuilder {
    edu(address).set16(0x42, 0x0080).set32(0x3c, 0x0000_010b)
}

/// See the module comment.
pub(super) fn machine() -> FakeConfig {
    let mut machine = FakeConfig::new(ConfigSpaceSize::Extended);
    let mut add = |at: &str, function: FunctionBuilder| machine.insert(bdf(at), function.build());
    add(
        "0000:00:00.0",
        FunctionBuilder::endpoint(0x8086, 0x29c0, 0x06_00_00),
    );
    add(
        "0000:00:01.0",
        root_port([0, 1, 1], 0xfeb0_0000).command(0x07),
    );
    add("0000:01:00.0", nvme().command(0x0006));
    add(
        "0000:00:02.0",
        root_port([0, 2, 2], 0xfeb0_1000).command(0x07),
    );
    add("0000:02:00.0", edu_at(0xfe20_0000));
    add(
        "0000:00:03.0",
        root_port([0, 3, 3], 0xfeb0_2000).command(0x07),
    );
    add("0000:03:00.0", e1000e().command(0x0007));
    add(
        "0000:00:04.0",
        root_port([0, 4, 5], 0xfeb0_3000)
            .command(0x07)
            .set16(0x14e, 0x1d),
    );
    add(
        "0000:04:00.0",
        FunctionBuilder::bridge(0x1b36, 0x000e, [4, 5, 5])
            .command(0x07)
            .set32(0x20, 0xfe50_fe40)
            .pcie(0x40, 7)
            .cap(0x90, 0x05),
    );
    add("0000:05:01.0", edu_at(0xfe40_0000));
    add("0000:05:02.0", edu_at(0xfe50_0000));
    add(
        "0000:00:05.0",
        root_port([0, 6, 7], 0xfeb0_4000).command(0x07),
    );
    add(
        "0000:06:00.0",
        FunctionBuilder::bridge(0x1b36, 0x000e, [6, 7, 7])
            .multifunction()
            .command(0x07)
            .set32(0x1c, 0x0000_f0f0)
            .set32(0x20, 0xfe60_fe60)
            .set32(0x24, 0x0001_fff1)
            .set32(0x3c, 0x0003_0000)
            .pcie(0x40, 6)
            .acs(0x100, 0x5f, 0x1d),
    );
    add("0000:06:00.1", edu_at(0xfe70_0000));
    add("0000:07:01.0", edu_at(0xfe60_0000));
    add("0000:00:06.0", edu_at(0xfea0_0000).command(0x0006));
    machine
}

/// The machine as discovery sees it.
pub(super) fn enumerated(machine: &FakeConfig) -> Enumeration {
    let found = enumerate(machine, 0, 0..=0xff, ConfigSpaceSize::Extended);
    assert!(found.problems.is_empty(), "{:?}", found.problems);
    found
}
