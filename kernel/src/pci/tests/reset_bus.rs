//! Host tests for secondary bus resets (who is affected, the caller's approval, nested
//! bridges brought back) and the release helpers, on the fake machine of `reset_machine`.

use alloc::vec::Vec;
use core::cell::RefCell;

use moat_iommu::Bdf;

use super::fake::{ResetBehaviour, bdf};
use super::reset::{approve_all, evidence_of, reset};
use super::reset_machine::{enumerated, machine};
use crate::pci::ConfigAccess;
use crate::pci::reset::{
    BusMaster, Mismatch, Observation, Register, ResetError, ResetMethod, bus_master,
    devices_affected_by_bus_reset, mask_interrupts,
};

fn bdfs(list: &[&str]) -> Vec<Bdf> {
    list.iter().map(|text| bdf(text)).collect()
}

#[test]
fn pci_reset_bus_lists_every_function_below_the_parent_bridge() {
    let machine = machine();
    let devices = enumerated(&machine);
    let affected = |at: &str| devices_affected_by_bus_reset(&devices, bdf(at));
    assert_eq!(affected("0000:02:00.0"), bdfs(&["0000:02:00.0"]));
    let pair = bdfs(&["0000:05:01.0", "0000:05:02.0"]);
    assert_eq!(affected("0000:05:02.0"), pair);
    let nested = bdfs(&["0000:06:00.0", "0000:06:00.1", "0000:07:01.0"]);
    assert_eq!(affected("0000:06:00.1"), nested);
    assert_eq!(affected("0000:07:01.0"), bdfs(&["0000:07:01.0"]));
    assert_eq!(affected("0000:00:06.0"), []);
    assert_eq!(affected("0000:09:00.0"), []);
}

#[test]
fn pci_reset_bus_for_an_edu_alone_below_its_root_port() {
    let machine = machine();
    let alone = |devices: &[Bdf]| devices == [bdf("0000:02:00.0")];
    let done = reset(&machine, "0000:02:00.0", alone).unwrap();
    assert_eq!(done.method, ResetMethod::Bus);
    assert_eq!(done.fallbacks, []);
    assert_eq!(
        evidence_of(&done, "0000:02:00.0"),
        [
            Register::Command,
            Register::CacheLineSize,
            Register::InterruptLine,
            Register::Bar(0),
            Register::MsiData
        ]
    );
    // The root port: Secondary Bus Reset asserted then deasserted, nothing else written.
    let port: Vec<(u16, u32)> = machine
        .writes()
        .into_iter()
        .filter(|(at, ..)| *at == bdf("0000:00:02.0"))
        .map(|(_, offset, value)| (offset, value))
        .collect();
    assert_eq!(port, [(0x3c, 0x0040_0000), (0x3c, 0)]);
    assert_eq!(machine.peek("0000:00:02.0", 0x18), 0x0002_0200);
    // The edu: Command 0, BAR 0 and Interrupt Line back, Cache Line Size as it was.
    assert_eq!(machine.peek("0000:02:00.0", 0x04) & 0xffff, 0);
    assert_eq!(machine.peek("0000:02:00.0", 0x10), 0xfe20_0000);
    assert_eq!(machine.peek("0000:02:00.0", 0x3c), 0x0000_010b);
    assert_eq!(machine.peek("0000:02:00.0", 0x0c) & 0xff, 0);
}

#[test]
fn pci_reset_bus_refused_names_every_device_and_writes_nothing() {
    let machine = machine();
    let asked = RefCell::new(Vec::new());
    let linux_rule = |devices: &[Bdf]| {
        asked.borrow_mut().extend_from_slice(devices);
        devices == [bdf("0000:05:01.0")]
    };
    let pair = bdfs(&["0000:05:01.0", "0000:05:02.0"]);
    assert_eq!(
        reset(&machine, "0000:05:01.0", linux_rule),
        Err(ResetError::NotApproved {
            devices: pair.clone()
        })
    );
    assert_eq!(asked.into_inner(), pair);
    assert_eq!(machine.writes(), []);
}

#[test]
fn pci_reset_bus_approved_checks_and_restores_both_siblings() {
    let machine = machine();
    let done = reset(&machine, "0000:05:01.0", approve_all).unwrap();
    assert_eq!(done.method, ResetMethod::Bus);
    for edu in ["0000:05:01.0", "0000:05:02.0"] {
        assert!(evidence_of(&done, edu).contains(&Register::Bar(0)), "{edu}");
        assert_eq!(machine.peek(edu, 0x04) & 0xffff, 0);
        assert_eq!(machine.peek(edu, 0x3c) & 0xff, 0x0b);
    }
    assert_eq!(machine.peek("0000:05:02.0", 0x10), 0xfe50_0000);
    // The pcie-pci-bridge issued the reset and kept its own registers.
    assert_eq!(machine.peek("0000:04:00.0", 0x18), 0x0005_0504);
    assert_eq!(machine.peek("0000:04:00.0", 0x04) & 0xffff, 0x07);
}

#[test]
fn pci_reset_bus_brings_nested_bridges_back() {
    let mut machine = machine();
    machine.route_by_bus_numbers();
    let done = reset(&machine, "0000:06:00.1", approve_all).unwrap();
    assert_eq!(done.method, ResetMethod::Bus);
    // The edu below the nested bridge answered again and its canaries were cleared.
    assert!(evidence_of(&done, "0000:07:01.0").contains(&Register::Bar(0)));
    let nested = "0000:06:00.0";
    assert_eq!(machine.peek(nested, 0x18), 0x0007_0706);
    assert_eq!(machine.peek(nested, 0x1c) & 0xffff, 0xf0f0);
    assert_eq!(machine.peek(nested, 0x20), 0xfe60_fe60);
    assert_eq!(machine.peek(nested, 0x24), 0x0001_fff1);
    assert_eq!(machine.peek(nested, 0x3c) >> 16, 0x0003);
    assert_eq!(machine.peek(nested, 0x04) & 0xffff, 0x07);
    assert_eq!(machine.peek(nested, 0x104) >> 16, 0x1d);
    assert_eq!(machine.read32(bdf("0000:07:01.0"), 0), 0x11e8_1234);
    assert_eq!(machine.read32(bdf("0000:07:01.0"), 0x10), 0xfe60_0000);
    assert_eq!(machine.peek("0000:00:05.0", 0x18), 0x0007_0600);
}

#[test]
fn pci_reset_bus_that_changes_nothing_is_reported_and_restored() {
    let mut machine = machine();
    let behaviour = ResetBehaviour {
        bus_reset_ignored: true,
        ..ResetBehaviour::default()
    };
    machine.behave("0000:00:02.0", behaviour);
    let what = Observation {
        device: bdf("0000:02:00.0"),
        register: Register::Command,
        before: 0x0400,
        after: 0x0400,
    };
    assert_eq!(
        reset(&machine, "0000:02:00.0", approve_all),
        Err(ResetError::CheckFailed {
            method: ResetMethod::Bus,
            what
        })
    );
    assert_eq!(machine.peek("0000:02:00.0", 0x04) & 0xffff, 0);
    assert_eq!(machine.peek("0000:02:00.0", 0x3c) & 0xff, 0x0b);
}

#[test]
fn pci_reset_bus_that_resets_its_own_bridge_is_reported_and_the_bridge_restored() {
    let mut machine = machine();
    machine.route_by_bus_numbers();
    let behaviour = ResetBehaviour {
        bus_reset_resets_issuer: true,
        ..ResetBehaviour::default()
    };
    machine.behave("0000:04:00.0", behaviour);
    let what = Observation {
        device: bdf("0000:04:00.0"),
        register: Register::BusNumbers,
        before: 0x0005_0504,
        after: 0,
    };
    assert_eq!(
        reset(&machine, "0000:05:01.0", approve_all),
        Err(ResetError::CheckFailed {
            method: ResetMethod::Bus,
            what
        })
    );
    // The pcie-pci-bridge got its bus numbers, window and Command back.
    assert_eq!(machine.peek("0000:04:00.0", 0x18), 0x0005_0504);
    assert_eq!(machine.peek("0000:04:00.0", 0x20), 0xfe50_fe40);
    assert_eq!(machine.peek("0000:04:00.0", 0x04) & 0xffff, 0x07);
    assert_eq!(machine.read32(bdf("0000:05:01.0"), 0x10), 0xfe40_0000);
}

#[test]
fn pci_reset_bus_master_writes_command_and_keeps_status() {
    let mut machine = machine();
    // Status: capability list and a latched Received Master Abort (write-one-to-clear).
    machine.edit("0000:02:00.0", |edu| edu.put16(0x06, 0x2010));
    let edu = bdf("0000:02:00.0");
    bus_master(&machine, edu, BusMaster::Enabled).unwrap();
    assert_eq!(machine.peek("0000:02:00.0", 0x04), 0x2010_0004);
    bus_master(&machine, edu, BusMaster::Disabled).unwrap();
    assert_eq!(machine.peek("0000:02:00.0", 0x04), 0x2010_0000);

    let behaviour = ResetBehaviour {
        read_only: true,
        ..ResetBehaviour::default()
    };
    machine.behave("0000:02:00.0", behaviour);
    let mismatch = Mismatch {
        device: edu,
        register: Register::Command,
        wrote: 0x0004,
        read: 0x0000,
    };
    assert_eq!(bus_master(&machine, edu, BusMaster::Enabled), Err(mismatch));
}

#[test]
fn pci_reset_mask_interrupts_disables_msi_and_masks_msix() {
    let mut machine = machine();
    machine.edit("0000:03:00.0", |e1000e| {
        e1000e.put16(0xd2, 0x0081);
        e1000e.put16(0x72, 0x8004);
    });
    let devices = enumerated(&machine);
    let e1000e = devices.device(bdf("0000:03:00.0")).unwrap();
    mask_interrupts(&machine, e1000e).unwrap();
    assert_eq!(machine.peek("0000:03:00.0", 0xd0) >> 16, 0x0080);
    assert_eq!(machine.peek("0000:03:00.0", 0x70) >> 16, 0x4004);
    assert_eq!(machine.peek("0000:03:00.0", 0x04) & 0x0400, 0x0400);
}
