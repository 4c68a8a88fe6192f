//! One line per function for the boot report and for tests to compare against:
//! `0000:00:01.0 1b36:000c 060400 pcie-root-port [pcie,msi-x,pm,aer,acs]`.

use alloc::string::String;
use core::fmt::{self, Write};

use super::capabilities::{CapabilityId, ExtendedCapability};
use super::device::{DeviceKind, PciDevice, PortType};

/// `SSSS:BB:DD.F vvvv:dddd cccccc TYPE [cap,cap,...]`: address, vendor and device IDs, class
/// code, [`DeviceKind`] name, then the capabilities in list order, standard before extended.
pub fn device_line(device: &PciDevice) -> String {
    let mut line = String::new();
    // Writing into a String cannot fail.
    let _ = write_device_line(&mut line, device);
    line
}

fn write_device_line(out: &mut impl Write, device: &PciDevice) -> fmt::Result {
    write!(
        out,
        "{} {:04x}:{:04x} {:06x} {} [",
        device.bdf,
        device.vendor,
        device.device,
        device.class,
        kind_name(device.kind)
    )?;
    let mut separator = "";
    for capability in &device.capabilities {
        out.write_str(separator)?;
        write_capability_name(out, capability.id)?;
        separator = ",";
    }
    for capability in &device.extended_capabilities {
        out.write_str(separator)?;
        write_extended_name(out, capability)?;
        separator = ",";
    }
    out.write_str("]")
}

/// The report's name for a kind of function.
pub const fn kind_name(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::PciEndpoint => "pci-endpoint",
        DeviceKind::PciBridge => "pci-bridge",
        DeviceKind::CardbusBridge => "cardbus-bridge",
        DeviceKind::UnknownHeader(_) => "pci-unknown",
        DeviceKind::Pcie(port_type) => match port_type {
            PortType::Endpoint => "pcie-endpoint",
            PortType::LegacyEndpoint => "pcie-legacy-endpoint",
            PortType::RootPort => "pcie-root-port",
            PortType::UpstreamPort => "pcie-upstream-port",
            PortType::DownstreamPort => "pcie-downstream-port",
            PortType::PcieToPciBridge => "pcie-to-pci-bridge",
            PortType::PciToPcieBridge => "pci-to-pcie-bridge",
            PortType::RootComplexIntegratedEndpoint => "rc-integrated-endpoint",
            PortType::RootComplexEventCollector => "rc-event-collector",
            PortType::Reserved(_) => "pcie-unknown",
        },
    }
}

/// `pm`, `msi`, `vendor`, `pcie`, `msi-x`, or `cap-XX`.
fn write_capability_name(out: &mut impl Write, id: CapabilityId) -> fmt::Result {
    match id {
        CapabilityId::PowerManagement => out.write_str("pm"),
        CapabilityId::Msi => out.write_str("msi"),
        CapabilityId::Vendor => out.write_str("vendor"),
        CapabilityId::Pcie => out.write_str("pcie"),
        CapabilityId::MsiX => out.write_str("msi-x"),
        CapabilityId::Other(raw) => write!(out, "cap-{raw:02x}"),
    }
}

/// `aer`, `acs`, `ari`, `sr-iov`, or `ecap-XXXX`.
fn write_extended_name(out: &mut impl Write, capability: &ExtendedCapability) -> fmt::Result {
    match capability {
        ExtendedCapability::Aer { .. } => out.write_str("aer"),
        ExtendedCapability::Acs(_) => out.write_str("acs"),
        ExtendedCapability::Ari { .. } => out.write_str("ari"),
        ExtendedCapability::SrIov { .. } => out.write_str("sr-iov"),
        ExtendedCapability::Other { id, .. } => write!(out, "ecap-{id:04x}"),
    }
}
