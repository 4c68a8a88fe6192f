//! QEMU 7.2's q35 DMAR table, rebuilt from the facts in
//! `shared/reference/qemu-vtd-facts.md` A.10 (`build_dmar_q35`): revision 1, HAW = aw-bits - 1,
//! flags INTR_REMAP when interrupt remapping is on, one DRHD at 0xfed90000 with flags 0 (not
//! INCLUDE_PCI_ALL) on segment 0, whose scopes are the I/O APIC (type 3, ID 0, bus 0xff,
//! path 00.0) and then one scope per device on each root bus in devfn order, endpoints as
//! type 1 and bridges as type 2, and an ATSR (ALL_PORTS, segment 0) only with device-iotlb=on.

use super::builder::{Scope, TableBuilder};

/// Where QEMU maps the VT-d registers (`Q35_HOST_BRIDGE_IOMMU_ADDR`).
pub(crate) const IOMMU_BASE: u64 = 0xfed9_0000;

/// A device on a root bus as QEMU's DMAR lists it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RootDevice {
    pub(crate) slot: u8,
    pub(crate) function: u8,
    /// PCI-PCI bridges and ports get a sub-hierarchy scope.
    pub(crate) bridge: bool,
}

pub(crate) const fn endpoint(slot: u8, function: u8) -> RootDevice {
    RootDevice {
        slot,
        function,
        bridge: false,
    }
}

pub(crate) const fn bridge(slot: u8, function: u8) -> RootDevice {
    RootDevice {
        slot,
        function,
        bridge: true,
    }
}

/// What `-device intel-iommu,...` and the machine's devices decide about the table.
#[derive(Debug, Clone)]
pub(crate) struct Q35Config<'a> {
    /// `aw-bits`: 39 (default) or 48.
    pub(crate) aw_bits: u8,
    /// `intremap` (on under TCG by default).
    pub(crate) intremap: bool,
    /// `device-iotlb`.
    pub(crate) device_iotlb: bool,
    /// Devices on pcie.0 (bus 0).
    pub(crate) root_bus: &'a [RootDevice],
    /// Further root buses (pxb-pcie `bus_nr`) and their devices.
    pub(crate) extra_root_buses: &'a [(u8, &'a [RootDevice])],
}

/// The DMAR table QEMU 7.2 builds for `config`.
pub(crate) fn q35(config: &Q35Config<'_>) -> Vec<u8> {
    let mut scopes = vec![Scope::ioapic(0, 0xff, &[(0, 0)])];
    let buses =
        core::iter::once((0u8, config.root_bus)).chain(config.extra_root_buses.iter().copied());
    for (bus, devices) in buses {
        for device in devices {
            let path = [(device.slot, device.function)];
            scopes.push(if device.bridge {
                Scope::bridge(bus, &path)
            } else {
                Scope::endpoint(bus, &path)
            });
        }
    }
    let flags = u8::from(config.intremap);
    let mut table = TableBuilder::new(config.aw_bits - 1, flags).drhd(0, 0, 0, IOMMU_BASE, &scopes);
    if config.device_iotlb {
        table = table.atsr(1, 0, &[]);
    }
    table.build()
}

/// The root bus of a default `-machine q35`: host bridge 00.0, VGA 01.0, e1000e 02.0, and the
/// ICH9 LPC, AHCI and SMBus functions 1f.0, 1f.2, 1f.3.
pub(crate) const DEFAULT_ROOT_BUS: [RootDevice; 6] = [
    endpoint(0x00, 0),
    endpoint(0x01, 0),
    endpoint(0x02, 0),
    endpoint(0x1f, 0),
    endpoint(0x1f, 2),
    endpoint(0x1f, 3),
];

/// `qemu-system-x86_64 -machine q35 -accel tcg -device intel-iommu` (fixture
/// `qemu-q35-default.bin`).
pub(crate) fn q35_default() -> Vec<u8> {
    q35(&Q35Config {
        aw_bits: 39,
        intremap: true,
        device_iotlb: false,
        root_bus: &DEFAULT_ROOT_BUS,
        extra_root_buses: &[],
    })
}

/// The root bus of fixture `qemu-q35-iotlb-bridges.bin`: host bridge, VGA, edu 04.0, root ports
/// 05.0 and 06.0, pci-bridge 07.0, pxb-pcie 08.0 (a host bridge, so an endpoint), edu 09.0 and
/// 09.1, and the ICH9 functions.
pub(crate) const BRIDGES_ROOT_BUS: [RootDevice; 12] = [
    endpoint(0x00, 0),
    endpoint(0x01, 0),
    endpoint(0x04, 0),
    bridge(0x05, 0),
    bridge(0x06, 0),
    bridge(0x07, 0),
    endpoint(0x08, 0),
    endpoint(0x09, 0),
    endpoint(0x09, 1),
    endpoint(0x1f, 0),
    endpoint(0x1f, 2),
    endpoint(0x1f, 3),
];

/// The pxb-pcie root bus 0x40 of that fixture, with one root port.
pub(crate) const PXB_ROOT_BUS: [RootDevice; 1] = [bridge(0x00, 0)];

/// `-device intel-iommu,device-iotlb=on,aw-bits=48` plus bridges and a pxb-pcie (fixture
/// `qemu-q35-iotlb-bridges.bin`; the README gives the full command line).
pub(crate) fn q35_iotlb_bridges() -> Vec<u8> {
    q35(&Q35Config {
        aw_bits: 48,
        intremap: true,
        device_iotlb: true,
        root_bus: &BRIDGES_ROOT_BUS,
        extra_root_buses: &[(0x40, &PXB_ROOT_BUS)],
    })
}
