//! Broken firmware and broken devices: each defect on the q35 machine gives exactly one
//! problem for the function at fault, and everything else is still found.

use alloc::vec::Vec;

use moat_iommu::Bdf;

use super::builder::FunctionBuilder;
use super::fake::{FakeConfig, bdf};
use super::q35::{Q35_LINES, edu, q35};
use super::{addresses, lines, problem_lines, run};
use crate::pci::{BarKind, ConfigSpaceSize, DeviceKind, ProblemKind, enumerate};

/// Enumerates `machine` and checks that `problem` is the only problem and that the devices
/// found are q35's, without `missing` and with `extra`.
fn expect_one(machine: &FakeConfig, problem: &str, missing: &[&str], extra: &[&str]) {
    let found = run(machine);
    assert_eq!(problem_lines(&found), [problem]);
    let missing: Vec<Bdf> = missing.iter().map(|at| bdf(at)).collect();
    let mut expected: Vec<Bdf> = Q35_LINES
        .iter()
        .map(|line| bdf(&line[..12]))
        .filter(|at| !missing.contains(at))
        .chain(extra.iter().map(|at| bdf(at)))
        .collect();
    expected.sort();
    assert_eq!(addresses(&found), expected);
    assert_eq!(machine.violations(), Vec::<&str>::new());
}

#[test]
fn pci_capability_loop() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    // pci-testdev: vendor capability at 0x40 -> PM at 0x48 -> 0x48 again.
    machine.edit("0000:00:05.0", |function| {
        function.put16(0x06, 1 << 4);
        function.put8(0x34, 0x40);
        function.put16(0x40, 0x4809);
        function.put16(0x48, 0x4801);
    });
    expect_one(&machine, "0000:00:05.0: capability loop at 0x48", &[], &[]);
    let found = run(&machine);
    let line = &lines(&found)[5];
    assert_eq!(
        line,
        "0000:00:05.0 1b36:0005 00ff00 pci-endpoint [vendor,pm]"
    );
}

#[test]
fn pci_capability_pointer_below_0x40() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.edit("0000:00:04.0", |function| function.put8(0x41, 0x20));
    expect_one(
        &machine,
        "0000:00:04.0: capability pointer 0x20 at 0x41 is outside 0x40-0xff",
        &[],
        &[],
    );
    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.edit("0000:04:00.0", |function| function.put8(0x34, 0x10));
    expect_one(
        &machine,
        "0000:04:00.0: capability pointer 0x10 at 0x34 is outside 0x40-0xff",
        &[],
        &[],
    );
}

#[test]
fn pci_capability_pointer_reserved_bits_are_masked() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.edit("0000:00:04.0", |function| function.put8(0x34, 0x43));
    let found = run(&machine);
    assert!(found.problems.is_empty());
    assert_eq!(lines(&found), Q35_LINES);
}

#[test]
fn pci_extended_capability_loop() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    // ACS at 0x148 points back to AER at 0x100.
    machine.edit("0000:00:02.0", |function| {
        let header = function.get32(0x148);
        function.put32(0x148, header | (0x100 << 20));
    });
    expect_one(
        &machine,
        "0000:00:02.0: extended capability loop at 0x100",
        &[],
        &[],
    );
    let found = run(&machine);
    assert_eq!(lines(&found), Q35_LINES);
}

#[test]
fn pci_extended_capability_pointer_below_0x100() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.edit("0000:00:01.0", |function| {
        let header = function.get32(0x100);
        function.put32(0x100, (header & 0x000f_ffff) | (0x0f0 << 20));
    });
    expect_one(
        &machine,
        "0000:00:01.0: extended capability at 0x100 points to 0x0f0, below 0x100",
        &[],
        &[],
    );
}

#[test]
fn pci_acs_header_at_the_end_of_config_space() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.edit("0000:00:01.0", |function| {
        function.put32(0x148, 0x000d | (1 << 16) | (0xffc << 20));
        function.put32(0xffc, 0x000d | (1 << 16));
    });
    expect_one(
        &machine,
        "0000:00:01.0: extended capability 0x000d at 0xffc runs past the end of config space",
        &[],
        &[],
    );
}

#[test]
fn pci_bar_whose_mask_reads_zero() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.edit("0000:04:00.0", |function| {
        function.bar_writable[0] = Some(0)
    });
    expect_one(&machine, "0000:04:00.0: BAR 0 cannot be sized", &[], &[]);
    let found = run(&machine);
    assert!(
        found
            .device(bdf("0000:04:00.0"))
            .expect("edu")
            .bars
            .is_empty()
    );
}

#[test]
fn pci_bar_with_non_contiguous_mask() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.edit("0000:00:05.0", |function| {
        function.bar_writable[0] = Some(0xf0f0_0000);
    });
    expect_one(&machine, "0000:00:05.0: BAR 0 cannot be sized", &[], &[]);
    // The BARs after it are still sized.
    let found = run(&machine);
    let bars = &found.device(bdf("0000:00:05.0")).expect("testdev").bars;
    let kinds: Vec<(u8, BarKind)> = bars.iter().map(|bar| (bar.index, bar.kind)).collect();
    assert_eq!(kinds, [(1, BarKind::Io), (2, BarKind::Memory64)]);
}

#[test]
fn pci_64_bit_bar_in_the_last_slot() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.edit("0000:00:1f.2", |function| {
        function.put32(0x24, 0xfeb1_1004);
    });
    expect_one(
        &machine,
        "0000:00:1f.2: BAR 5 is 64-bit but is the last BAR slot",
        &[],
        &[],
    );
    // The dword after the last BAR (CardBus CIS pointer) was never written.
    assert!(
        machine
            .writes()
            .iter()
            .all(|(_, offset, _)| *offset != 0x28)
    );

    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.edit("0000:02:00.0", |function| {
        function.put32(0x10, 0);
        function.put32(0x14, 0x4);
    });
    expect_one(
        &machine,
        "0000:02:00.0: BAR 1 is 64-bit but is the last BAR slot",
        &[],
        &[],
    );
    // The bridge's bus numbers (0x18) were never written, and it was still followed.
    let bridge = bdf("0000:02:00.0");
    let writes = machine.writes();
    assert!(
        writes
            .iter()
            .all(|(at, offset, _)| *at != bridge || *offset != 0x18)
    );
}

#[test]
fn pci_bar_with_reserved_memory_type() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.edit("0000:00:04.0", |function| function.put32(0x10, 0xfea0_0006));
    expect_one(
        &machine,
        "0000:00:04.0: BAR 0 has the reserved memory type",
        &[],
        &[],
    );
}

#[test]
fn pci_bridge_secondary_bus_pointing_back_at_an_ancestor() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    // A pci-bridge behind the pcie-pci-bridge whose secondary bus is bus 02, its
    // grandparent's bus, with an edu "behind" it that must not be found.
    let bridge = FunctionBuilder::bridge(0x1b36, 0x0001, [3, 2, 3]).build();
    machine.insert(bdf("0000:03:03.0"), bridge);
    expect_one(
        &machine,
        "0000:03:03.0: bridge secondary bus 02 is not above its own bus 03; not scanned",
        &[],
        &["0000:03:03.0"],
    );
    let found = run(&machine);
    let bridge = found.device(bdf("0000:03:03.0")).expect("listed");
    assert_eq!(bridge.kind, DeviceKind::PciBridge);

    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.edit("0000:02:00.0", |function| function.put8(0x19, 0));
    expect_one(
        &machine,
        "0000:02:00.0: bridge secondary bus 00 is not above its own bus 02; not scanned",
        &["0000:03:01.0", "0000:03:02.0"],
        &[],
    );
}

#[test]
fn pci_bridge_secondary_bus_already_claimed() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.edit("0000:00:02.0", |function| {
        function.put8(0x19, 1);
        function.put8(0x1a, 1);
    });
    // The edu the fake leaves on bus 04 (which no bridge claims any more) is found by
    // probing, as a root bus; a real port would have taken it along to bus 01.
    expect_one(
        &machine,
        "0000:00:02.0: bridge secondary bus 01 is already claimed by another bridge; not scanned",
        &[],
        &[],
    );
    let roots = run(&machine).root_buses;
    assert_eq!(roots.last().map(|root| root.number()), Some(4));
}

#[test]
fn pci_bridge_secondary_bus_outside_its_parent_range() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    // Root port 00:01.1 forwards 02-03; its pcie-pci-bridge claims 05.
    machine.edit("0000:02:00.0", |function| {
        function.put8(0x19, 5);
        function.put8(0x1a, 5);
    });
    machine.insert(bdf("0000:05:00.0"), edu(0xfe00_0000).build());
    expect_one(
        &machine,
        "0000:02:00.0: bridge secondary bus 05 is outside bus range 03-03; not scanned",
        &["0000:03:01.0", "0000:03:02.0"],
        &[],
    );

    // The segment's own range: an MCFG covering buses 00-03 only.
    let machine = q35(ConfigSpaceSize::Extended);
    let found = enumerate(&machine, 0, 0..=3, ConfigSpaceSize::Extended);
    assert_eq!(
        problem_lines(&found),
        ["0000:00:02.0: bridge secondary bus 04 is outside bus range 01-03; not scanned"]
    );
    assert_eq!(found.devices.len(), Q35_LINES.len() - 1);
}

#[test]
fn pci_bridge_subordinate_bus_numbers() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.edit("0000:00:02.0", |function| function.put8(0x1a, 3));
    // The port claims nothing, so bus 04 is probed and its edu found there, as a root bus.
    expect_one(
        &machine,
        "0000:00:02.0: bridge subordinate bus 03 is below secondary bus 04; not scanned",
        &[],
        &[],
    );
    let roots = run(&machine).root_buses;
    assert_eq!(roots.last().map(|root| root.number()), Some(4));

    // Subordinate beyond the parent's range: followed within the range.
    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.edit("0000:02:00.0", |function| function.put8(0x1a, 9));
    expect_one(
        &machine,
        "0000:02:00.0: bridge subordinate bus 09 is beyond bus 03; scanned up to 03",
        &[],
        &[],
    );
}

#[test]
fn pci_unknown_header_type_is_listed() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.edit("0000:00:04.0", |function| function.put8(0x0e, 0x7f));
    expect_one(&machine, "0000:00:04.0: unknown header type 0x7f", &[], &[]);
    let found = run(&machine);
    let device = found.device(bdf("0000:00:04.0")).expect("still listed");
    assert_eq!(device.kind, DeviceKind::UnknownHeader(0x7f));
    assert!(device.bars.is_empty() && device.capabilities.is_empty());
    assert_eq!(
        lines(&found)[4],
        "0000:00:04.0 1234:11e8 00ff00 pci-unknown []"
    );
    assert_eq!(
        found.problems[0].kind,
        ProblemKind::UnknownHeaderType { header_type: 0x7f }
    );
    assert_eq!(found.problems_for(bdf("0000:00:04.0")).count(), 1);
}

#[test]
fn pci_several_broken_functions_are_each_reported() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.edit("0000:04:00.0", |function| {
        function.bar_writable[0] = Some(0)
    });
    machine.edit("0000:03:02.0", |function| function.put8(0x41, 0x40));
    let found = run(&machine);
    assert_eq!(
        problem_lines(&found),
        [
            "0000:03:02.0: capability loop at 0x40",
            "0000:04:00.0: BAR 0 cannot be sized",
        ]
    );
    assert_eq!(found.devices.len(), Q35_LINES.len());
}
