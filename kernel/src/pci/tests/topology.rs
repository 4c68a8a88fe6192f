//! Well-formed topologies: what discovery finds on the q35 machine and how it leaves it.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use pci_types::{HeaderType, PciAddress};

use super::builder::FunctionBuilder;
use super::fake::{FakeConfig, bdf};
use super::q35::{Q35_LINES, edu, q35, root_port};
use super::{addresses, lines, problem_lines, run};
use crate::pci::{
    AcsFlags, Bar, BarKind, CapabilityId, ConfigAccessExt, ConfigSpaceSize, DeviceKind,
    ExtendedCapability, PcieInfo, PortType, bdf_from_address, device_line, enumerate, kind_name,
    pci_address,
};

#[test]
fn pci_q35_report_lines() {
    let found = run(&q35(ConfigSpaceSize::Extended));
    assert_eq!(lines(&found), Q35_LINES);
    assert_eq!(problem_lines(&found), Vec::<&str>::new());
}

#[test]
fn pci_root_port_bus_numbers_pcie_and_acs() {
    let found = run(&q35(ConfigSpaceSize::Extended));
    let port = found.device(bdf("0000:00:01.1")).expect("root port");
    assert_eq!(port.header_type, HeaderType::PciPciBridge);
    assert!(port.is_bridge());
    assert_eq!(
        (port.secondary_bus, port.subordinate_bus),
        (Some(2), Some(3))
    );
    assert_eq!(port.kind, DeviceKind::Pcie(PortType::RootPort));
    assert_eq!(
        port.pcie,
        Some(PcieInfo {
            port_type: PortType::RootPort,
            cap_offset: 0x54
        })
    );
    let acs = port.acs().expect("ACS on pcie-root-port");
    assert_eq!(acs.offset, 0x148);
    assert_eq!(acs.capability.bits(), 0x5f);
    assert!(acs.capability.contains(
        AcsFlags::SOURCE_VALIDATION
            | AcsFlags::REQUEST_REDIRECT
            | AcsFlags::COMPLETION_REDIRECT
            | AcsFlags::UPSTREAM_FORWARDING
    ));
    assert!(acs.control.is_empty());
    assert_eq!(
        port.extended_capabilities.first(),
        Some(&ExtendedCapability::Aer { offset: 0x100 })
    );
    assert_eq!(
        port.capability(CapabilityId::MsiX).map(|cap| cap.offset),
        Some(0x48)
    );
    assert_eq!(port.base_class(), 0x06);
}

#[test]
fn pci_multifunction_and_identity_fields() {
    let found = run(&q35(ConfigSpaceSize::Extended));
    let edu = found.device(bdf("0000:00:04.0")).expect("edu");
    assert_eq!((edu.vendor, edu.device), (0x1234, 0x11e8));
    assert_eq!((edu.class, edu.revision), (0x00ff00, 0x10));
    assert!(!edu.multifunction);
    assert_eq!(edu.pcie, None);
    for function in [
        "0000:00:1f.0",
        "0000:00:1f.2",
        "0000:00:1f.3",
        "0000:00:01.1",
    ] {
        let device = found.device(bdf(function)).expect(function);
        assert!(device.multifunction, "{function}");
    }
}

#[test]
fn pci_bars_decoded_and_sized() {
    let found = run(&q35(ConfigSpaceSize::Extended));
    let bars = |at: &str| found.device(bdf(at)).expect(at).bars.clone();
    let bar = |index, kind, address, size, prefetchable| Bar {
        index,
        kind,
        address,
        size,
        prefetchable,
    };
    assert_eq!(
        bars("0000:00:04.0"),
        [bar(0, BarKind::Memory32, 0xfea0_0000, 0x10_0000, false)]
    );
    assert_eq!(
        bars("0000:00:05.0"),
        [
            bar(0, BarKind::Memory32, 0xfeb1_0000, 0x1000, false),
            bar(1, BarKind::Io, 0xc000, 0x100, false),
            bar(2, BarKind::Memory64, 0x8_0000_0000, 0x10_0000, true),
        ]
    );
    assert_eq!(
        bars("0000:01:00.0"),
        [bar(0, BarKind::Memory64, 0xfe80_0000, 0x4000, false)]
    );
    // A bridge has two BAR slots; this 64-bit BAR fills both.
    assert_eq!(
        bars("0000:02:00.0"),
        [bar(0, BarKind::Memory64, 0xfe60_0000, 0x100, false)]
    );
    assert_eq!(
        bars("0000:00:1f.2"),
        [
            bar(4, BarKind::Io, 0xc080, 0x20, false),
            bar(5, BarKind::Memory32, 0xfeb1_1000, 0x1000, false),
        ]
    );
    assert_eq!(bars("0000:00:00.0"), []);
}

#[test]
fn pci_enumeration_leaves_config_space_as_found() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    // An error bit latched in a status register must survive the command writes.
    machine.edit("0000:00:05.0", |function| function.put16(0x06, 1 << 13));
    let before = machine.snapshot();
    let found = run(&machine);
    assert!(found.problems.is_empty());
    assert_eq!(machine.snapshot(), before);
    assert_eq!(machine.violations(), Vec::<&str>::new());
}

#[test]
fn pci_writes_touch_only_command_and_bars() {
    let machine = q35(ConfigSpaceSize::Extended);
    run(&machine);
    let writes = machine.writes();
    let header_types = machine.snapshot();
    assert!(!writes.is_empty());
    for (at, offset, _) in &writes {
        let bar_slots = if header_types[at][0x0e] & 0x7f == 1 {
            2
        } else {
            6
        };
        assert!(
            *offset == 0x04 || (0x10..0x10 + 4 * bar_slots).contains(offset),
            "{at} written at {offset:#x}"
        );
    }
    // Decoding was turned off and back on for the edu, whose command was 0x0006.
    let edu = bdf("0000:00:04.0");
    let commands: Vec<u32> = writes
        .iter()
        .filter(|(at, offset, _)| *at == edu && *offset == 0x04)
        .map(|(_, _, value)| *value)
        .collect();
    assert_eq!(commands, [0x0004, 0x0006]);
    // Functions that do not decode are not written to except to size BARs.
    let host = bdf("0000:00:00.0");
    assert!(
        writes
            .iter()
            .all(|(at, offset, _)| *at != host || *offset != 0x04)
    );
}

#[test]
fn pci_port_io_access_reads_no_extended_space() {
    // The fake panics on any access at or beyond 0x100 in this mode.
    let machine = q35(ConfigSpaceSize::Conventional);
    let found = enumerate(&machine, 0, 0..=0xff, ConfigSpaceSize::Conventional);
    assert!(found.problems.is_empty());
    assert_eq!(addresses(&found).len(), Q35_LINES.len());
    assert_eq!(
        device_line(found.device(bdf("0000:00:01.0")).expect("root port")),
        "0000:00:01.0 1b36:000c 060400 pcie-root-port [pcie,msi-x,pm]"
    );
}

#[test]
fn pci_functions_above_zero_need_the_multifunction_bit() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.insert(bdf("0000:00:04.1"), edu(0xfe00_0000).build());
    let found = run(&machine);
    assert_eq!(found.device(bdf("0000:00:04.1")), None);
    assert_eq!(addresses(&found).len(), Q35_LINES.len());
}

#[test]
fn pci_absent_function_zero_hides_the_slot() {
    let mut machine = q35(ConfigSpaceSize::Extended);
    machine.remove(bdf("0000:00:01.0"));
    let found = run(&machine);
    // 00:01.1 is not scanned without a function 0, as in Linux.
    assert_eq!(found.device(bdf("0000:00:01.1")), None);
    assert!(found.device(bdf("0000:04:00.0")).is_some());
    // The fake still answers behind both ports (a real 00:01.0 that is not there forwards
    // nothing): no scanned bridge claims buses 01-03, so probing takes 01 and 02 for root
    // buses. Bus 03 is claimed by the pcie-pci-bridge found on bus 02.
    let roots: Vec<String> = found.root_buses.iter().map(ToString::to_string).collect();
    assert_eq!(roots, ["0000:00", "0000:01", "0000:02"]);
    assert!(found.device(bdf("0000:03:01.0")).is_some());
}

#[test]
fn pci_empty_extended_header_means_no_extended_capabilities() {
    for header in [0, u32::MAX] {
        let mut machine = q35(ConfigSpaceSize::Extended);
        machine.edit("0000:00:02.0", |function| function.put32(0x100, header));
        let found = run(&machine);
        assert!(found.problems.is_empty(), "{header:#x}");
        let port = found.device(bdf("0000:00:02.0")).expect("port");
        assert!(port.extended_capabilities.is_empty());
    }
}

#[test]
fn pci_io_bar_decoding_16_address_bits() {
    let mut machine = FakeConfig::new(ConfigSpaceSize::Extended);
    let device = FunctionBuilder::endpoint(0x8086, 0x100e, 0x02_00_00)
        .bar_raw(1, 0xc041, 0x0000_ffc0)
        .build();
    machine.insert(bdf("0000:00:03.0"), device);
    let found = run(&machine);
    assert!(found.problems.is_empty());
    let bars = &found.device(bdf("0000:00:03.0")).expect("nic").bars;
    assert_eq!(bars.len(), 1);
    assert_eq!(
        (bars[0].kind, bars[0].address, bars[0].size),
        (BarKind::Io, 0xc040, 0x40)
    );
}

#[test]
fn pci_cardbus_bridge_uses_its_own_capability_pointer() {
    let mut machine = FakeConfig::new(ConfigSpaceSize::Extended);
    let bridge = FunctionBuilder::cardbus(0x104c, 0xac56)
        .bar32(0, 0xfe00_0000, 0x1000, false)
        .cap(0x80, 0x01)
        .build();
    machine.insert(bdf("0000:00:07.0"), bridge);
    let found = run(&machine);
    assert!(found.problems.is_empty());
    assert_eq!(
        lines(&found),
        ["0000:00:07.0 104c:ac56 060700 cardbus-bridge [pm]"]
    );
    let device = &found.devices[0];
    assert_eq!(device.header_type, HeaderType::CardBusBridge);
    assert_eq!(device.secondary_bus, None);
    assert_eq!(device.bars.len(), 1);
}

#[test]
fn pci_conventional_bridge_and_nonzero_segment_and_root_bus() {
    // A second host bridge's segment: buses 0x40..=0x4f, a pci-bridge to 0x41.
    let mut machine = FakeConfig::new(ConfigSpaceSize::Extended);
    let at = |text: &str| bdf(text);
    machine.insert(
        at("0001:40:00.0"),
        FunctionBuilder::bridge(0x1b36, 0x0001, [0x40, 0x41, 0x41])
            .cap(0x4c, 0x0c)
            .build(),
    );
    machine.insert(at("0001:41:01.0"), edu(0xe000_0000).build());
    let found = enumerate(&machine, 1, 0x40..=0x4f, ConfigSpaceSize::Extended);
    assert!(found.problems.is_empty());
    assert_eq!(
        lines(&found),
        [
            "0001:40:00.0 1b36:0001 060400 pci-bridge [cap-0c]",
            "0001:41:01.0 1234:11e8 00ff00 pci-endpoint [msi]",
        ]
    );
    #[allow(clippy::reversed_empty_ranges)]
    let nothing = enumerate(&machine, 1, 0x41..=0x40, ConfigSpaceSize::Extended);
    assert!(nothing.devices.is_empty() && nothing.problems.is_empty());
}

#[test]
fn pci_port_types_and_kind_names() {
    let names: Vec<&str> = (0..=11u8)
        .map(|raw| kind_name(DeviceKind::Pcie(PortType::from_raw(raw))))
        .collect();
    assert_eq!(
        names,
        [
            "pcie-endpoint",
            "pcie-legacy-endpoint",
            "pcie-unknown",
            "pcie-unknown",
            "pcie-root-port",
            "pcie-upstream-port",
            "pcie-downstream-port",
            "pcie-to-pci-bridge",
            "pci-to-pcie-bridge",
            "rc-integrated-endpoint",
            "rc-event-collector",
            "pcie-unknown",
        ]
    );
    for raw in 0..16 {
        assert_eq!(PortType::from_raw(raw).raw(), raw);
    }
    assert_eq!(kind_name(DeviceKind::PciBridge), "pci-bridge");
    assert_eq!(kind_name(DeviceKind::CardbusBridge), "cardbus-bridge");
}

#[test]
fn pci_other_capability_ids_are_named_by_number_and_null_ones_skipped() {
    let mut machine = FakeConfig::new(ConfigSpaceSize::Extended);
    let device = FunctionBuilder::endpoint(0x1af4, 0x1042, 0x01_00_00)
        .cap(0x40, 0x09)
        .cap(0x50, 0x07)
        .cap(0x58, 0x00)
        .pcie(0x60, 0)
        .ext_cap(0x100, 0x000b)
        .ext_cap(0x180, 0x0000)
        .ext_cap(0x200, 0x0001)
        .build();
    machine.insert(bdf("0000:00:03.0"), device);
    let found = run(&machine);
    assert_eq!(
        lines(&found),
        ["0000:00:03.0 1af4:1042 010000 pcie-endpoint [vendor,cap-07,pcie,ecap-000b,aer]"]
    );
    let device = &found.devices[0];
    assert_eq!(
        device.extended_capability(0x000b).map(|cap| cap.offset()),
        Some(0x100)
    );
    assert_eq!(CapabilityId::from_raw(0x07).raw(), 0x07);
}

#[test]
fn pci_narrow_reads_and_address_conversion() {
    let mut machine = FakeConfig::new(ConfigSpaceSize::Extended);
    machine.insert(bdf("0000:00:04.0"), edu(0xfea0_0000).build());
    let at = bdf("0000:00:04.0");
    assert_eq!(machine.read16(at, 0x00), 0x1234);
    assert_eq!(machine.read16(at, 0x02), 0x11e8);
    assert_eq!(machine.read8(at, 0x03), 0x11);
    assert_eq!(machine.read8(at, 0x08), 0x10);
    assert_eq!(machine.read16(bdf("0000:00:05.0"), 0x00), 0xffff);
    let address = pci_address(bdf("0003:41:1f.5"));
    assert_eq!(address, PciAddress::new(3, 0x41, 0x1f, 5));
    assert_eq!(bdf_from_address(address), bdf("0003:41:1f.5"));
}

#[test]
fn pci_bridge_behind_bridge_uses_firmware_bus_numbers() {
    // A switch as SeaBIOS numbers it: root port 00:1c.0 -> upstream 05:00.0 ->
    // downstream 06:00.0 and 06:01.0 -> endpoints on 07 and 08. Not 1, 2, 3...
    let mut machine = FakeConfig::new(ConfigSpaceSize::Extended);
    let port = |buses, kind| {
        FunctionBuilder::bridge(0x104c, 0x8232, buses)
            .pcie(0x40, kind)
            .build()
    };
    machine.insert(
        bdf("0000:00:1c.0"),
        root_port([0, 5, 8], 0xfe00_0000).build(),
    );
    machine.insert(bdf("0000:05:00.0"), port([5, 6, 8], 5));
    machine.insert(bdf("0000:06:00.0"), port([6, 7, 7], 6));
    machine.insert(bdf("0000:06:01.0"), port([6, 8, 8], 6));
    machine.insert(bdf("0000:07:00.0"), edu(0xfe10_0000).build());
    machine.insert(bdf("0000:08:00.0"), edu(0xfe20_0000).build());
    let found = run(&machine);
    assert!(found.problems.is_empty());
    let kinds: Vec<(String, &str)> = found
        .devices
        .iter()
        .map(|device| (device.bdf.to_string(), kind_name(device.kind)))
        .collect();
    let expected = [
        ("0000:00:1c.0", "pcie-root-port"),
        ("0000:05:00.0", "pcie-upstream-port"),
        ("0000:06:00.0", "pcie-downstream-port"),
        ("0000:06:01.0", "pcie-downstream-port"),
        ("0000:07:00.0", "pci-endpoint"),
        ("0000:08:00.0", "pci-endpoint"),
    ];
    let expected: Vec<(String, &str)> = expected
        .iter()
        .map(|(at, kind)| (at.to_string(), *kind))
        .collect();
    assert_eq!(kinds, expected);
}
