//! The cases of `test=reset`, one per reset method and device (see the parent module).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use moat_iommu::Bdf;
use moat_kernel::dma::DmaBuffer;
use moat_kernel::pci::reset::{Register, ResetError, ResetMethod, devices_affected_by_bus_reset};
use moat_kernel::pci::{
    CapabilityId, ConfigAccess, ConfigAccessExt, DeviceKind, PciDevice, PortType,
};
use moat_kernel::time;

use super::{E1000E, EDU, HEADER, Machine, NVME, expect, summary};

pub(super) fn flr_nvme(m: &Machine) -> Result<String, String> {
    let nvme = m.find(NVME, "nvme behind a root port", |parent, _| {
        parent.kind == DeviceKind::Pcie(PortType::RootPort)
    })?;
    let bdf = nvme.bdf;
    let window = m.bar0(nvme)?;
    let err = |e| format!("nvme BAR 0: {e:?}");
    // Enable the controller: admin queues (never used: no command is submitted), then CC.
    let (submission, completion) = (buffer()?, buffer()?);
    window.write32(0x24, 0x000f_000f).map_err(err)?;
    for (offset, queue) in [(0x28, &submission), (0x30, &completion)] {
        window.write32(offset, queue.phys() as u32).map_err(err)?;
        window
            .write32(offset + 4, (queue.phys() >> 32) as u32)
            .map_err(err)?;
    }
    window.write32(0x14, 0x0046_0001).map_err(err)?;
    // TIMEOUT: QEMU sets CSTS.RDY inside the CC write; CAP.TO allows seconds on hardware.
    time::poll(1_000_000, || {
        (window.read32(0x1c).ok()? & 1 == 1).then_some(())
    })
    .map_err(|t| format!("nvme never ready: {t}"))?;
    let cc_before = window.read32(0x14).map_err(err)?;
    // One MSI-X table entry with non-zero data (masked), when the table is in BAR 0.
    let msix = nvme
        .capability(CapabilityId::MsiX)
        .ok_or("nvme without MSI-X")?;
    let table = m.config.read32(bdf, u16::from(msix.offset) + 4);
    let entry = (table & 7 == 0).then_some(u64::from(table & !7));
    if let Some(entry) = entry {
        window.write32(entry + 8, 0x4d4f).map_err(err)?;
    }
    m.set_canaries(nvme);

    let reset = m
        .reset(nvme, |devices| devices == [bdf])
        .map_err(|e| format!("{bdf}: {e}"))?;
    expect(&reset, ResetMethod::Flr, bdf, &HEADER)?;
    expect(&reset, ResetMethod::Flr, bdf, &[Register::MsixControl])?;
    m.released(nvme)?;

    // BAR 0 is back: turn decoding on and look inside the controller.
    let window = m.bar0(nvme)?;
    let version = window.read32(0x08).map_err(err)?;
    let (cc, csts) = (
        window.read32(0x14).map_err(err)?,
        window.read32(0x1c).map_err(err)?,
    );
    // FLR zeroes the MSI-X table and masks every vector (facts H.2).
    let (entry_data, entry_control) = match entry {
        Some(entry) => (
            window.read32(entry + 8).map_err(err)?,
            window.read32(entry + 12).map_err(err)?,
        ),
        None => (0, 1),
    };
    m.config
        .write_command(bdf, pci_types::CommandRegister::empty());
    if version == 0 || version == u32::MAX {
        return Err(format!(
            "nvme BAR 0 does not decode after restore (VS {version:#x})"
        ));
    }
    if cc != 0 || csts & 1 != 0 || entry_data != 0 || entry_control & 1 == 0 {
        return Err(format!(
            "nvme not reset: CC {cc:#x}, CSTS {csts:#x}, MSI-X entry 0 data {entry_data:#x} control {entry_control:#x}"
        ));
    }
    let table = match entry {
        Some(_) => format!("MSI-X entry 0 data 0x4d4f->{entry_data:#x} (masked)"),
        None => "MSI-X table not in BAR 0, not checked".into(),
    };
    Ok(format!(
        "nvme {bdf}: {}; CC {cc_before:#x}->{cc:#x}, CSTS.RDY 1->0, {table}, VS {version:#x}",
        summary(&reset)
    ))
}

pub(super) fn pm_then_bus_e1000e(m: &Machine) -> Result<String, String> {
    let e1000e = m.find(E1000E, "e1000e alone below a root port", |parent, below| {
        parent.kind == DeviceKind::Pcie(PortType::RootPort) && below.len() == 1
    })?;
    let bdf = e1000e.bdf;
    // RDBAL0 (0x2800): device state only a real device reset clears (facts H.4).
    let window = m.bar0(e1000e)?;
    window
        .write32(0x2800, 0x1234_5000)
        .map_err(|e| format!("{e:?}"))?;
    let rdbal_before = window.read32(0x2800).map_err(|e| format!("{e:?}"))?;
    m.set_canaries(e1000e);

    let reset = m
        .reset(e1000e, |devices| devices == [bdf])
        .map_err(|e| format!("{bdf}: {e}"))?;
    expect(&reset, ResetMethod::Bus, bdf, &HEADER)?;
    expect(
        &reset,
        ResetMethod::Bus,
        bdf,
        &[Register::MsiData, Register::MsixControl],
    )?;
    let pm_ineffective = matches!(
        reset.fallbacks[..],
        [ResetError::CheckFailed {
            method: ResetMethod::Pm,
            ..
        }]
    );
    if !pm_ineffective {
        return Err(format!(
            "expected the PM reset to be tried and found ineffective: {reset:?}"
        ));
    }
    m.released(e1000e)?;
    let window = m.bar0(e1000e)?;
    let rdbal = window.read32(0x2800).map_err(|e| format!("{e:?}"))?;
    m.config
        .write_command(bdf, pci_types::CommandRegister::empty());
    if rdbal_before != 0x1234_5000 || rdbal != 0 {
        return Err(format!(
            "e1000e RDBAL0 {rdbal_before:#x}->{rdbal:#x}, expected cleared"
        ));
    }
    Ok(format!(
        "e1000e {bdf}: {}; RDBAL0 {rdbal_before:#x}->{rdbal:#x}",
        summary(&reset)
    ))
}

pub(super) fn bus_edu_alone(m: &Machine) -> Result<String, String> {
    let edu = m.find(EDU, "edu alone below a root port", |parent, below| {
        parent.kind == DeviceKind::Pcie(PortType::RootPort) && below.len() == 1
    })?;
    let bdf = edu.bdf;
    let port = m.parent(bdf).ok_or("no parent")?;
    let port_before = (m.config.read32(port.bdf, 0x18), acs_control(m, port));
    m.set_canaries(edu);
    let line = m.config.read32(bdf, 0x3c) & 0xff;

    let reset = m
        .reset(edu, |devices| devices == [bdf])
        .map_err(|e| format!("{bdf}: {e}"))?;
    expect(&reset, ResetMethod::Bus, bdf, &HEADER)?;
    expect(&reset, ResetMethod::Bus, bdf, &[Register::MsiData])?;
    if !reset.fallbacks.is_empty() {
        return Err(format!("edu has no FLR or PM, yet: {:?}", reset.fallbacks));
    }
    m.released(edu)?;
    let port_after = (m.config.read32(port.bdf, 0x18), acs_control(m, port));
    if port_after != port_before {
        return Err(format!(
            "root port changed: {port_before:x?} -> {port_after:x?}"
        ));
    }
    let restored = (
        m.config.read32(bdf, 0x0c) & 0xff,
        m.config.read32(bdf, 0x3c) & 0xff,
    );
    if restored != (0x10, line) {
        return Err(format!(
            "Cache Line Size/Interrupt Line not restored: {restored:x?}"
        ));
    }
    // edu has no reset handler (facts H.5): its identification register proves BAR 0 decodes.
    let window = m.bar0(edu)?;
    let id = window.read32(0).map_err(|e| format!("{e:?}"))?;
    m.config
        .write_command(bdf, pci_types::CommandRegister::empty());
    if id & 0xff != 0xed {
        return Err(format!(
            "edu BAR 0 does not decode after restore (id {id:#x})"
        ));
    }
    Ok(format!(
        "edu {bdf} below {}: {}; port bus numbers and ACS kept; BAR 0 decodes (id {id:#x})",
        port.bdf,
        summary(&reset)
    ))
}

pub(super) fn bus_refused_then_approved(m: &Machine) -> Result<String, String> {
    let edu = m.find(
        EDU,
        "edu with a sibling behind a pcie-pci-bridge",
        |parent, below| {
            parent.kind == DeviceKind::Pcie(PortType::PcieToPciBridge) && below.len() == 2
        },
    )?;
    let bdf = edu.bdf;
    let headers = |m: &Machine, list: &[Bdf]| -> Vec<u32> {
        list.iter()
            .flat_map(|at| (0..16).map(move |dword| m.config.read32(*at, 4 * dword)))
            .collect()
    };
    let affected = devices_affected_by_bus_reset(m.all, bdf);
    for device in &affected {
        m.set_canaries(m.all.device(*device).ok_or("vanished")?);
    }
    let before = headers(m, &affected);
    let refused = m.reset(edu, |devices| devices == [bdf]);
    let expected = ResetError::NotApproved {
        devices: affected.clone(),
    };
    if refused.as_ref().err() != Some(&expected) {
        return Err(format!("expected {expected}, got {refused:?}"));
    }
    if headers(m, &affected) != before {
        return Err("a refused bus reset changed config space".into());
    }
    // The ownership layer approves when every affected device is its own or unowned and
    // blocked; here they all are.
    let reset = m.reset(edu, |_| true).map_err(|e| format!("{bdf}: {e}"))?;
    for device in &affected {
        expect(&reset, ResetMethod::Bus, *device, &HEADER)?;
        m.released(m.all.device(*device).ok_or("vanished")?)?;
    }
    Ok(format!(
        "{bdf}: refused ({expected}), then approved: {}",
        summary(&reset)
    ))
}

pub(super) fn bus_nested_bridge(m: &Machine) -> Result<String, String> {
    let edu = m.find(
        EDU,
        "edu beside a nested bridge below a root port",
        |parent, below| parent.kind == DeviceKind::Pcie(PortType::RootPort) && below.len() > 2,
    )?;
    let bdf = edu.bdf;
    let affected = devices_affected_by_bus_reset(m.all, bdf);
    let nested = affected
        .iter()
        .filter_map(|at| m.all.device(*at))
        .find(|device| device.is_bridge())
        .ok_or("no nested bridge")?;
    // Bus numbers, Command, I/O, memory and prefetchable windows, Bridge Control.
    let bridge_registers = |m: &Machine| -> Vec<u32> {
        [
            (0x18, 0x00ff_ffff),
            (0x04, 0xffff),
            (0x1c, 0xffff),
            (0x20, !0),
            (0x24, !0),
            (0x3c, !0xff),
        ]
        .iter()
        .map(|(offset, mask)| m.config.read32(nested.bdf, *offset) & mask)
        .collect()
    };
    let bridge_before = bridge_registers(m);
    let endpoints: Vec<&PciDevice> = affected
        .iter()
        .filter_map(|at| m.all.device(*at))
        .filter(|device| !device.is_bridge())
        .collect();
    for device in &endpoints {
        m.set_canaries(device);
    }
    let reset = m.reset(edu, |_| true).map_err(|e| format!("{bdf}: {e}"))?;
    for device in &endpoints {
        expect(&reset, ResetMethod::Bus, device.bdf, &HEADER)?;
        m.released(device)?;
    }
    let bridge_after = bridge_registers(m);
    if bridge_after != bridge_before {
        return Err(format!(
            "nested bridge {} not restored: {bridge_before:x?} -> {bridge_after:x?}",
            nested.bdf
        ));
    }
    Ok(format!(
        "{bdf} with nested bridge {} (bus numbers {:#x} back): {}",
        nested.bdf,
        bridge_after[0],
        summary(&reset)
    ))
}

fn acs_control(m: &Machine, device: &PciDevice) -> u16 {
    device
        .acs()
        .map_or(0, |acs| m.config.read16(device.bdf, acs.offset + 6))
}

fn buffer() -> Result<DmaBuffer, String> {
    DmaBuffer::new(4096, 4096).map_err(|e| format!("{e:?}"))
}
