//! Root buses other than the segment's first, found by probing: a QEMU `pxb-pcie` expander's
//! bus, and buses that a bridge claims, which must never be taken for root buses.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::builder::FunctionBuilder;
use super::fake::{FakeConfig, bdf};
use super::q35::{Q35_LINES, edu, q35, root_port};
use super::{addresses, lines, problem_lines, run};
use moat_iommu::group::Bus;

use crate::pci::{ConfigSpaceSize, Enumeration, enumerate};

/// The root buses as the boot report prints them.
fn roots(found: &Enumeration) -> Vec<String> {
    found.root_buses.iter().map(ToString::to_string).collect()
}

/// q35 plus a pxb-pcie expander as QEMU 7.2 and SeaBIOS lay it out with `bus_nr=0x40`: the
/// expander itself on bus 00 (1b36:000b, a host bridge), its root bus 0x40 with a
/// pcie-root-port at 40:00.0 forwarding bus 0x41 (an edu behind it) and an edu directly on
/// the root bus at 40:01.0.
fn q35_with_expander(size: ConfigSpaceSize) -> FakeConfig {
    let mut machine = q35(size);
    machine.insert(
        bdf("0000:00:09.0"),
        FunctionBuilder::endpoint(0x1b36, 0x000b, 0x06_00_00).build(),
    );
    machine.insert(
        bdf("0000:40:00.0"),
        root_port([0x40, 0x41, 0x41], 0xfd00_0000).build(),
    );
    machine.insert(bdf("0000:40:01.0"), edu(0xfd10_0000).build());
    machine.insert(bdf("0000:41:00.0"), edu(0xfd20_0000).build());
    machine
}

#[test]
fn pci_expander_root_bus_is_found_by_probing() {
    let found = run(&q35_with_expander(ConfigSpaceSize::Extended));
    assert_eq!(problem_lines(&found), Vec::<&str>::new());
    assert_eq!(roots(&found), ["0000:00", "0000:40"]);
    let mut expected: Vec<&str> = Q35_LINES.to_vec();
    expected.extend([
        "0000:00:09.0 1b36:000b 060000 pci-endpoint []",
        "0000:40:00.0 1b36:000c 060400 pcie-root-port [pcie,msi-x,pm,aer,acs]",
        "0000:40:01.0 1234:11e8 00ff00 pci-endpoint [msi]",
        "0000:41:00.0 1234:11e8 00ff00 pci-endpoint [msi]",
    ]);
    expected.sort_unstable();
    assert_eq!(lines(&found), expected);
    assert_eq!(found.root_buses[1], Bus::new(0, 0x40));
}

#[test]
fn pci_buses_a_bridge_claims_are_not_root_buses() {
    let mut machine = q35_with_expander(ConfigSpaceSize::Extended);
    // The pcie-pci-bridge forwards 03-05 (its root port 00:01.1 forwards 02-05): bus 04 has
    // no bridge of its own, and is not a root bus either. A stray function there (the fake
    // answers where real hardware would not) must stay unlisted. The 0x40 root port claims
    // 0x41-0x43 likewise.
    machine.edit("0000:00:01.1", |function| function.put8(0x1a, 5));
    machine.edit("0000:02:00.0", |function| function.put8(0x1a, 5));
    machine.edit("0000:40:00.0", |function| function.put8(0x1a, 0x43));
    machine.insert(bdf("0000:05:00.0"), edu(0xfc00_0000).build());
    machine.insert(bdf("0000:43:00.0"), edu(0xfc10_0000).build());
    let found = run(&machine);
    assert_eq!(problem_lines(&found), Vec::<&str>::new());
    assert_eq!(roots(&found), ["0000:00", "0000:40"]);
    let at = addresses(&found);
    assert!(!at.contains(&bdf("0000:05:00.0")) && !at.contains(&bdf("0000:43:00.0")));

    // Every function is listed once, whichever root reached it.
    let mut unique = at.clone();
    unique.dedup();
    assert_eq!(unique, at);
    assert_eq!(at.len(), Q35_LINES.len() + 4);
}

#[test]
fn pci_bridge_to_an_expander_bus_is_not_followed_twice() {
    // Broken firmware: a root port on bus 00 also claims bus 0x40. Bus 0x40 is then reached
    // through that port, never probed as a root bus, and listed once.
    let mut machine = q35_with_expander(ConfigSpaceSize::Extended);
    machine.edit("0000:00:02.0", |function| {
        function.put8(0x19, 0x40);
        function.put8(0x1a, 0x41);
    });
    machine.remove(bdf("0000:04:00.0"));
    let found = run(&machine);
    assert_eq!(roots(&found), ["0000:00"]);
    assert_eq!(problem_lines(&found), Vec::<&str>::new());
    let at = addresses(&found);
    let mut unique = at.clone();
    unique.dedup();
    assert_eq!(unique, at);
    assert!(at.contains(&bdf("0000:41:00.0")));
}

#[test]
fn pci_root_buses_in_order_and_within_the_segment_range() {
    let machine = q35_with_expander(ConfigSpaceSize::Extended);
    // The first bus is always a root bus, even when it is not bus 00 and nothing answers.
    let found = enumerate(&machine, 0, 0x3f..=0xff, ConfigSpaceSize::Extended);
    assert_eq!(roots(&found), ["0000:3f", "0000:40"]);
    assert_eq!(found.devices.len(), 3);
    // A range that ends below the expander never reaches it.
    let found = enumerate(&machine, 0, 0..=0x3f, ConfigSpaceSize::Extended);
    assert_eq!(roots(&found), ["0000:00"]);
    assert_eq!(found.devices.len(), Q35_LINES.len() + 1);
    // Legacy port I/O probes the same buses.
    let machine = q35_with_expander(ConfigSpaceSize::Conventional);
    let found = enumerate(&machine, 0, 0..=0xff, ConfigSpaceSize::Conventional);
    assert_eq!(roots(&found), ["0000:00", "0000:40"]);
    assert_eq!(found.devices.len(), Q35_LINES.len() + 4);
}
