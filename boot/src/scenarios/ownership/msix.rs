//! MSI-X through the passthrough API, on a real QEMU nvme: the owner binds it, maps its admin
//! queues and a data buffer into its own space, asks the kernel for MSI-X entry 0 (its own
//! remapping entry), enables the controller and sends Identify Controller. The completion must
//! arrive as an interrupt on the owner's vector, and the controller's answer must be in the
//! buffer at the IOVA the command named.

use super::super::rig::{Rig, err};
use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};
use moat_iommu::Bdf;
use moat_iommu::entries::Access;
use moat_kernel::dma::DmaBuffer;
use moat_kernel::passthrough::BarWindow;
use moat_kernel::time;

/// Controller registers (NVMe 1.4, 3.1).
const CAP: u64 = 0x00;
const CC: u64 = 0x14;
const CSTS: u64 = 0x1c;
const AQA: u64 = 0x24;
const ASQ: u64 = 0x28;
const ACQ: u64 = 0x30;
/// Admin submission queue tail and completion queue head doorbells (CAP.DSTRD = 0 checked).
const SQ0_TAIL: u64 = 0x1000;
const CQ0_HEAD: u64 = 0x1004;
/// CC: enable, 64-byte submission and 16-byte completion entries.
const CC_ENABLE: u32 = 1 | (6 << 16) | (4 << 20);
const IDENTIFY: u32 = 0x06;
const COMMAND_ID: u32 = 0x7;
/// TIMEOUT: QEMU's nvme is ready at once and completes Identify within microseconds of the
/// doorbell; 2 s covers a loaded TCG host.
const BUDGET_US: u64 = 2_000_000;

static DELIVERIES: AtomicU64 = AtomicU64::new(0);

fn on_completion(_vector: u8) {
    DELIVERIES.fetch_add(1, Ordering::Relaxed);
}

fn write64(bar: &BarWindow<'_>, offset: u64, value: u64) -> Result<(), String> {
    bar.write32(offset, value as u32).map_err(err)?;
    bar.write32(offset + 4, (value >> 32) as u32).map_err(err)
}

fn wait_ready(bar: &BarWindow<'_>, ready: bool) -> Result<(), String> {
    time::poll(BUDGET_US, || {
        let status = bar.read32(CSTS).ok()?;
        (status & 1 == u32::from(ready)).then_some(())
    })
    .map_err(|t| format!("CSTS.RDY never became {}: {t}", u32::from(ready)))
}

pub(super) fn msix_identify() -> Result<String, String> {
    let nvme: Bdf = super::release::find(0x1b36, 0x0010)?;
    let rig = Rig::new(nvme, "nvme-msix")?;
    let bar = rig.device.bar(0).map_err(err)?;
    let cap = u64::from(bar.read32(CAP).map_err(err)?)
        | (u64::from(bar.read32(CAP + 4).map_err(err)?) << 32);
    if (cap >> 32) & 0xf != 0 {
        return Err(format!("CAP.DSTRD is not 0 (CAP {cap:#x})"));
    }
    bar.write32(CC, 0).map_err(err)?;
    wait_ready(&bar, false)?;
    let map = |buffer: DmaBuffer| {
        rig.space
            .map(buffer, Access::ReadWrite)
            .map_err(|f| err(f.error))
    };
    let sq = map(DmaBuffer::new(4096, 4096).map_err(err)?)?;
    let cq = map(DmaBuffer::new(4096, 4096).map_err(err)?)?;
    let data = map(DmaBuffer::new(4096, 4096).map_err(err)?)?;
    let interrupt = rig.device.msix(0, Some(on_completion)).map_err(err)?;
    bar.write32(AQA, (15 << 16) | 15).map_err(err)?;
    write64(&bar, ASQ, sq.as_u64())?;
    write64(&bar, ACQ, cq.as_u64())?;
    bar.write32(CC, CC_ENABLE).map_err(err)?;
    wait_ready(&bar, true)?;
    // Identify Controller: opcode and command ID, PRP1 = the data buffer's IOVA, CNS = 1.
    let mut command = [0u8; 64];
    command[0..4].copy_from_slice(&(IDENTIFY | (COMMAND_ID << 16)).to_le_bytes());
    command[24..32].copy_from_slice(&data.as_u64().to_le_bytes());
    command[40..44].copy_from_slice(&1u32.to_le_bytes());
    rig.space
        .with_buffer(sq, |b| b.write(0, &command))
        .ok_or("the submission queue vanished")?
        .map_err(err)?;
    let before = interrupt.deliveries();
    bar.write32(SQ0_TAIL, 1).map_err(err)?;
    let delivered = time::poll(BUDGET_US, || {
        (interrupt.deliveries() > before).then_some(())
    });
    let mut entry = [0u8; 16];
    rig.space
        .with_buffer(cq, |b| b.read(0, &mut entry))
        .ok_or("the completion queue vanished")?
        .map_err(err)?;
    let dword3 = u32::from_le_bytes([entry[12], entry[13], entry[14], entry[15]]);
    let mut vendor = [0u8; 2];
    rig.space
        .with_buffer(data, |b| b.read(0, &mut vendor))
        .ok_or("the data buffer vanished")?
        .map_err(err)?;
    bar.write32(CQ0_HEAD, 1).map_err(err)?;
    bar.write32(CC, 0).map_err(err)?;
    let _ = wait_ready(&bar, false);
    if delivered.is_err() {
        return Err(format!(
            "no MSI-X delivery on vector {} (completion dword3 {dword3:#x})",
            interrupt.vector()
        ));
    }
    if dword3 & 0xffff != COMMAND_ID || (dword3 >> 16) & 1 != 1 || dword3 >> 17 != 0 {
        return Err(format!(
            "completion dword3 {dword3:#x}: not a successful Identify"
        ));
    }
    let vendor = u16::from_le_bytes(vendor);
    if vendor != 0x1b36 {
        return Err(format!("Identify data VID {vendor:#06x}, expected 0x1b36"));
    }
    Ok(format!(
        "{nvme}: Identify completed through MSI-X entry 0 (remapping entry {:?}, vector {}, {} delivery), data at IOVA {:#x} names vendor {vendor:#06x}",
        interrupt.remapping_handle(),
        interrupt.vector(),
        interrupt.deliveries() - before,
        data.as_u64()
    ))
}
