//! The release side of the ownership scenarios: release with a checked reset, the reset
//! methods on real devices, fault routing and quarantine, and the frame accounting.

use super::super::rig::{Rig, edus, err, faults_after, sleep_us};
use super::lone_edus;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use moat_edu::Direction;
use moat_iommu::Bdf;
use moat_iommu::entries::Access;
use moat_iommu::ownership::{DeviceEvent, DeviceState};
use moat_kernel::dma::DmaBuffer;
use moat_kernel::passthrough;
use moat_kernel::vtd::{self, faults};

pub(super) fn release() -> Result<String, String> {
    let (a_bdf, _) = lone_edus()?;
    let rig = Rig::new(a_bdf, "releasing")?;
    // Canaries the reset must clear (facts H.7).
    rig.device.config_write(0x0c, 1, 0x10).map_err(err)?;
    rig.device.config_write(0x3c, 1, 0x0b).map_err(err)?;
    let buffer = DmaBuffer::new(4096, 4096).map_err(err)?;
    buffer.fill(0x5a);
    let iova = rig
        .space
        .map(buffer, Access::ReadWrite)
        .map_err(|f| err(f.error))?;
    // An MSI vector whose handle the owner leaks: release must revoke its remapping entry.
    let leaked = rig.device.msi(None).map_err(err)?;
    let (leaked_message, leaked_vector) = (
        leaked.message().ok_or("the vector has no message")?,
        leaked.vector(),
    );
    core::mem::forget(leaked);
    // Arm a DMA (it runs ~100 ms later), then release at once: it must not land.
    rig.start(Direction::FromDevice, iova.as_u64(), 0, 256)?;
    let Rig {
        device,
        space,
        owner,
        ..
    } = rig;
    drop(device);
    passthrough::settle();
    sleep_us(400_000);
    let mut check = alloc::vec![0u8; 256];
    space
        .with_buffer(iova, |b| b.read(0, &mut check))
        .ok_or("buffer vanished")?
        .map_err(err)?;
    if check.iter().any(|&b| b != 0x5a) {
        return Err("the DMA armed before release landed after it".into());
    }
    let config = passthrough::config_for_report(&crate::ROOT, a_bdf).ok_or("no config space")?;
    let command = config[1] & 0xffff;
    if command & 0x4 != 0 {
        return Err(format!(
            "after release: command {command:#x} still has bus mastering on"
        ));
    }
    let report = passthrough::last_release(a_bdf).ok_or("no release report")?;
    for wanted in [
        "reset bus",
        "Command 0x",
        "Cache Line Size 0x10->0x0",
        "Interrupt Line 0x",
    ] {
        if !report.contains(wanted) {
            return Err(format!("the release report lacks `{wanted}`: {report}"));
        }
    }
    let lines = passthrough::registry_lines();
    let line = lines
        .iter()
        .find(|l| l.contains(&format!("{a_bdf} ")))
        .ok_or("not in the registry")?;
    if !line.contains("state blocked") || !line.contains("domain blocking") {
        return Err(format!("registry after release: {line}"));
    }
    released_dma_is_blocked(a_bdf, iova.as_u64(), &space, leaked_message, leaked_vector)?;
    let group = vtd::group_of(a_bdf).ok_or("no group")?;
    if let Some(attached) = vtd::attachment(group) {
        return Err(format!(
            "group {group} is still attached (space, domain) {attached:?} after release"
        ));
    }
    drop(owner);
    Ok(format!(
        "{a_bdf}: bus mastering off (command {command:#x}), {report}; the armed DMA never landed; forced to DMA after release it faulted and changed nothing; registry: blocked"
    ))
}

/// The released device, made to DMA anyway (the composition root turns bus mastering back on
/// behind every owner's back): the IOMMU must stop it with a fault from its requester ID, and
/// its old buffer must stay unchanged.
fn released_dma_is_blocked(
    bdf: Bdf,
    iova: u64,
    space: &moat_kernel::vtd::IoAddressSpace,
    leaked_message: (u32, u32),
    leaked_vector: u8,
) -> Result<(), String> {
    use moat_kernel::pci::ConfigAccessExt;
    let config = moat_kernel::ecam::config_privileged(&crate::ROOT).ok_or("no config space")?;
    let device = moat_kernel::devices::all()
        .and_then(|all| all.device(bdf))
        .ok_or("device vanished")?;
    let bar = device
        .bars
        .iter()
        .find(|b| b.index == 0)
        .ok_or("no BAR 0")?;
    let window =
        moat_kernel::dma::RegisterWindow::map_privileged(&crate::ROOT, bar.address, bar.size)
            .map_err(err)?;
    let command = config.command(bdf);
    config.write_command(
        bdf,
        command
            | pci_types::CommandRegister::MEMORY_ENABLE
            | pci_types::CommandRegister::BUS_MASTER_ENABLE,
    );
    let before = faults::interrupts_taken();
    let result = moat_edu::Edu::new(super::super::rig::Window(window))
        .map_err(err)
        .and_then(|mut edu| {
            edu.transfer(
                Direction::FromDevice,
                iova,
                0,
                256,
                &super::super::rig::now_us,
            )
            .map_err(err)
        });
    let records = faults_after(before);
    // The leaked vector's old message, sent by the released device: its entry was revoked.
    let msi = moat_kernel::pci::Msi::of(config, device).map_err(err)?;
    msi.program(config, leaked_message.0, leaked_message.1)
        .map_err(err)?;
    msi.enable(config);
    let delivered_before = moat_kernel::arch::device_vectors::deliveries(leaked_vector);
    let raised = moat_edu::Edu::new(super::super::rig::Window(
        moat_kernel::dma::RegisterWindow::map_privileged(&crate::ROOT, bar.address, bar.size)
            .map_err(err)?,
    ))
    .map(|mut edu| {
        edu.raise_interrupt(1);
        sleep_us(200_000);
        let status = edu.interrupt_status();
        edu.acknowledge_interrupt(status);
    });
    msi.disable(config);
    config.write_command(bdf, command);
    result?;
    raised.map_err(err)?;
    let delivered = moat_kernel::arch::device_vectors::deliveries(leaked_vector) - delivered_before;
    if delivered != 0 {
        return Err(format!(
            "the leaked vector {leaked_vector} still got {delivered} interrupt(s) after release"
        ));
    }
    super::super::rig::expect_fault(
        &records,
        bdf.requester_id(),
        iova & !0xfff,
        moat_iommu::engine::fault::Access::Write,
        5,
    )
    .map_err(|e| format!("the released device's DMA: {e}"))?;
    let mut check = alloc::vec![0u8; 256];
    space
        .with_buffer(moat_iommu::entries::Iova::new_truncate(iova), |b| {
            b.read(0, &mut check)
        })
        .ok_or("buffer vanished")?
        .map_err(err)?;
    if check.iter().any(|&b| b != 0x5a) {
        return Err("the released device's DMA reached its old buffer".into());
    }
    Ok(())
}

pub(super) fn fault_storm() -> Result<String, String> {
    let (a_bdf, b_bdf) = lone_edus()?;
    let a = Rig::new(a_bdf, "stormy")?;
    let b = Rig::new(b_bdf, "steady")?;
    let steady = b
        .space
        .map(DmaBuffer::new(4096, 4096).map_err(err)?, Access::ReadWrite)
        .map_err(|f| err(f.error))?;
    let before = faults::interrupts_taken();
    a.transfer(Direction::FromDevice, 0x0bad_0000, 0, 64)?;
    let _ = faults_after(before);
    let events = a.device.fault_events().map_err(err)?;
    if !events
        .events
        .iter()
        .any(|e| matches!(e, DeviceEvent::Fault { .. }))
    {
        return Err(format!("the owner saw no fault event: {events:?}"));
    }
    let mut quarantined = false;
    for round in 0..32u64 {
        let before = faults::interrupts_taken();
        if a.transfer(Direction::FromDevice, 0x0bad_0000 + round * 4096, 0, 64)
            .is_err()
        {
            break;
        }
        let _ = faults_after(before);
        passthrough::settle();
        // B keeps working, fault-free, through the storm.
        let before = faults::interrupts_taken();
        b.transfer(Direction::ToDevice, steady.as_u64(), 0, 64)?;
        let records = faults_after(before);
        if records.iter().any(|r| r.source == b_bdf.requester_id()) {
            return Err(format!("B faulted during A's storm: {records:?}"));
        }
        if matches!(a.device.state(), Some(DeviceState::Quarantined { .. })) {
            quarantined = true;
            break;
        }
    }
    if !quarantined {
        return Err("32 rounds of faults did not quarantine the device".into());
    }
    if a.device.set_bus_master(true).is_ok() {
        return Err("a quarantined device could turn bus mastering on".into());
    }
    let command =
        passthrough::config_for_report(&crate::ROOT, a_bdf).ok_or("no config space")?[1] & 0xffff;
    if command & 0x4 != 0 {
        return Err(format!(
            "the quarantined device still has bus mastering on (command {command:#x})"
        ));
    }
    let group = vtd::group_of(a_bdf).ok_or("no group")?;
    if let Some(attached) = vtd::attachment(group) {
        return Err(format!(
            "the quarantined device's group {group} is still attached {attached:?}"
        ));
    }
    let before = faults::interrupts_taken();
    b.transfer(Direction::ToDevice, steady.as_u64(), 0, 64)?;
    if !faults_after(before).is_empty() {
        return Err("B faulted after A's quarantine".into());
    }
    Ok(format!(
        "{a_bdf}: owner read {} fault event(s), then quarantined by the storm; {b_bdf} kept doing DMA without a fault",
        events.events.len()
    ))
}

/// The first function with this vendor and device ID.
pub(super) fn find(vendor: u16, device: u16) -> Result<Bdf, String> {
    moat_kernel::devices::all()
        .and_then(|all| {
            all.devices
                .iter()
                .find(|d| d.vendor == vendor && d.device == device)
                .map(|d| d.bdf)
        })
        .ok_or(format!("no {vendor:04x}:{device:04x} in this machine"))
}

/// Binds `bdf` for a fresh owner, attaches a space, turns bus mastering on, releases it, and
/// returns how the release ended.
fn bind_and_release(bdf: Bdf, owner_name: &'static str) -> Result<String, String> {
    let rig = Rig::new(bdf, owner_name)?;
    drop(rig);
    passthrough::settle();
    passthrough::last_release(bdf).ok_or(format!("{bdf}: no release report"))
}

pub(super) fn reset_methods() -> Result<String, String> {
    let nvme = find(0x1b36, 0x0010)?;
    let e1000e = find(0x8086, 0x10d3)?;
    let root_edu = edus()
        .into_iter()
        .find(|bdf| bdf.bus() == 0)
        .ok_or("no edu on the root bus")?;
    let nvme_report = bind_and_release(nvme, "nvme-owner")?;
    if !nvme_report.starts_with("reset flr") {
        return Err(format!("nvme {nvme}: {nvme_report}"));
    }
    let e1000e_report = bind_and_release(e1000e, "nic-owner")?;
    if !e1000e_report.starts_with("reset bus") || !e1000e_report.contains("pm reset had no effect")
    {
        return Err(format!("e1000e {e1000e}: {e1000e_report}"));
    }
    let edu_report = bind_and_release(root_edu, "edu-owner")?;
    if !edu_report.starts_with("reset failed") {
        return Err(format!("root-bus edu {root_edu}: {edu_report}"));
    }
    let lines = passthrough::registry_lines();
    let line = lines
        .iter()
        .find(|l| l.contains(&format!("{root_edu} ")))
        .ok_or("the root-bus edu is not in the registry")?;
    if !line.contains("state quarantined") || !line.contains("stays blocked: reset failed") {
        return Err(format!("registry after a failed reset: {line}"));
    }
    if passthrough::open(root_edu).is_ok() {
        return Err("a device whose reset failed could be opened again".into());
    }
    Ok(format!(
        "nvme {nvme}: {nvme_report}; e1000e {e1000e}: {e1000e_report}; edu {root_edu}: {edu_report} (registry: quarantined)"
    ))
}

pub(super) fn frames() -> Result<String, String> {
    // The second lone edu: the first may have been quarantined by `own-faults`.
    let (_, a_bdf) = lone_edus()?;
    // One warm-up round: first use maps the BAR into the kernel's page tables for good.
    drop(Rig::new(a_bdf, "warm-up")?);
    passthrough::settle();
    let frames_before = moat_kernel::physmem::free_frames();
    let ids_before = vtd::domain_ids_in_use();
    let rig = Rig::new(a_bdf, "frames")?;
    let mut iovas = Vec::new();
    for _ in 0..16 {
        iovas.push(
            rig.space
                .map(DmaBuffer::new(4096, 4096).map_err(err)?, Access::ReadWrite)
                .map_err(|f| err(f.error))?,
        );
    }
    let big = DmaBuffer::new(2 << 20, 2 << 20).map_err(err)?;
    rig.space
        .map(big, Access::ReadWrite)
        .map_err(|f| err(f.error))?;
    let frames_during = moat_kernel::physmem::free_frames();
    let ids_during = vtd::domain_ids_in_use();
    // 16 pages and a 2 MiB buffer (512 frames) at least, plus table frames.
    if frames_during + 16 + 512 > frames_before {
        return Err(format!(
            "mapping took only {} frames: the accounting proves nothing",
            frames_before - frames_during
        ));
    }
    let first = iovas.remove(0);
    drop(rig.space.unmap(first).map_err(err)?);
    drop(rig);
    passthrough::settle();
    let frames_after = moat_kernel::physmem::free_frames();
    let ids_after = vtd::domain_ids_in_use();
    if frames_after != frames_before || ids_after != ids_before {
        return Err(format!(
            "not everything came back: free frames {frames_before} -> {frames_during} -> {frames_after}, domain IDs in use {ids_before:?} -> {ids_during:?} -> {ids_after:?}"
        ));
    }
    Ok(format!(
        "free frames {frames_before} -> {frames_during} while mapped -> {frames_after} after release; domain IDs in use {ids_before:?} -> {ids_during:?} -> {ids_after:?}"
    ))
}
