//! The virtio-blk driver's glue: `moat-virtio-blk` over a modern virtio-pci function
//! (1af4:1042, `iommu_platform=on`). The driver crate gets its registers and MSI-X waits
//! through the kernel's [`SlotRegisters`], its virtqueue as the kernel's [`OwnedQueue`] on the
//! `virtio-drivers` crate, and every ring and request buffer is mapped by [`VirtioHal`] into
//! this device's own address space. Each operation lends the session to the driver's slot
//! (see `kernel/src/passthrough/virtio_hal.rs`: how a static `Hal` finds its space).
//!
//! [`VirtioHal`]: moat_kernel::passthrough::VirtioHal

use super::{Driver, DriverEntry};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::any::Any;
use moat_kernel::passthrough::{
    DmaStats, DriverDevice, OwnedQueue, QueueError, SlotRegisters, SlotStats, VirtioSlot,
};
use moat_kernel::pci::PciDevice;
use moat_kernel::time;
use moat_virtio_blk::{
    BlkError, Completion, Interrupts, QUEUE_VECTOR, QueueFault, Tag, Transport, Used, VirtioBlk,
    VirtioPciAccess, VirtioPciTransport, Virtqueue, WaitTimeout,
};

/// The table row.
pub(super) const ENTRY: DriverEntry = DriverEntry {
    name: "virtio-blk",
    matches: |device: &PciDevice| {
        device.vendor == moat_virtio::VENDOR_ID
            && device.device == moat_virtio_blk::DEVICE_ID_MODERN
    },
    // virtio devices address 64 bits; 39 is the smallest width QEMU's VT-d offers.
    dma_bits: 39,
    // Retired request buffers are unmapped 32 at a time (one ranged invalidation).
    batch: 32,
    probe,
};

/// Descriptors in the request ring: 42 requests of three descriptors in flight (the
/// benchmark's queue depth 32 fits).
const QUEUE_SIZE: usize = 128;
/// Requests in flight at most: three descriptors each (header, data, status).
pub(crate) const MAX_IN_FLIGHT: usize = QUEUE_SIZE / 3;

/// The device's registers as the transport sees them: the lent session's mapped BARs.
#[derive(Debug)]
struct Access<const SLOT: usize> {
    registers: SlotRegisters<SLOT>,
    bar_lens: [Option<u64>; 6],
}

impl<const SLOT: usize> Access<SLOT> {
    /// A BAR access on the lent session; `None` (all ones for reads) when it fails.
    fn bar<T>(
        &self,
        bar: u8,
        f: impl FnOnce(&moat_kernel::dma::RegisterWindow) -> Option<T>,
    ) -> Option<T> {
        self.registers
            .with(|device| device.mapped(bar).ok().and_then(f))
            .ok()
            .flatten()
    }
}

impl<const SLOT: usize> VirtioPciAccess for Access<SLOT> {
    fn config_read32(&self, offset: u16) -> u32 {
        self.registers
            .with(|device| device.config_read32(offset).ok())
            .ok()
            .flatten()
            .unwrap_or(u32::MAX)
    }
    fn bar_len(&self, bar: u8) -> Option<u64> {
        self.bar_lens.get(usize::from(bar)).copied().flatten()
    }
    fn read8(&self, bar: u8, offset: u64) -> u8 {
        self.bar(bar, |w| w.read8(offset).ok()).unwrap_or(u8::MAX)
    }
    fn write8(&self, bar: u8, offset: u64, value: u8) {
        self.bar(bar, |w| w.write8(offset, value).ok());
    }
    fn read16(&self, bar: u8, offset: u64) -> u16 {
        self.bar(bar, |w| w.read16(offset).ok()).unwrap_or(u16::MAX)
    }
    fn write16(&self, bar: u8, offset: u64, value: u16) {
        self.bar(bar, |w| w.write16(offset, value).ok());
    }
    fn read32(&self, bar: u8, offset: u64) -> u32 {
        self.bar(bar, |w| w.read32(offset).ok()).unwrap_or(u32::MAX)
    }
    fn write32(&self, bar: u8, offset: u64, value: u32) {
        self.bar(bar, |w| w.write32(offset, value).ok());
    }
    fn now_us(&self) -> u64 {
        time::now_ns() / 1000
    }
}

impl<const SLOT: usize> Interrupts for Access<SLOT> {
    fn deliveries(&self, vector: u16) -> u64 {
        self.registers
            .with(|device| device.deliveries(vector))
            .unwrap_or(0)
    }
    fn wait(&self, vector: u16, seen: u64, budget_us: u64) -> Result<u64, WaitTimeout> {
        self.registers
            .with(|device| device.wait_interrupt(vector, seen, budget_us))
            .map_err(|_| WaitTimeout)?
            .map_err(|_| WaitTimeout)
    }
}

/// The kernel's owned-buffer virtqueue as the driver crate's [`Virtqueue`].
#[derive(Debug)]
struct Queue<const SLOT: usize>(OwnedQueue<SLOT, QUEUE_SIZE>);

fn fault(error: QueueError) -> QueueFault {
    match error {
        QueueError::Full => QueueFault::Full,
        QueueError::UnknownToken(token) => QueueFault::UnknownToken(token),
        other => QueueFault::Failed(format!("{other:?}")),
    }
}

impl<const SLOT: usize> Virtqueue for Queue<SLOT> {
    const SIZE: u16 = QUEUE_SIZE as u16;
    fn submit<T: Transport>(
        &mut self,
        transport: &mut T,
        inputs: Vec<Vec<u8>>,
        output_lens: &[usize],
    ) -> Result<u16, QueueFault> {
        self.0.submit(transport, inputs, output_lens).map_err(fault)
    }
    fn peek_used(&self) -> Option<u16> {
        self.0.peek_used()
    }
    fn complete(&mut self, token: u16) -> Result<Used, QueueFault> {
        let used = self.0.complete(token).map_err(fault)?;
        Ok(Used {
            inputs: used.inputs,
            outputs: used.outputs,
            written: used.written,
        })
    }
}

/// A block device as scenarios use it, whatever slot its driver holds.
pub(crate) trait Block {
    /// Capacity in 512-byte sectors.
    fn capacity(&self) -> u64;
    /// Starts a read of `sectors` sectors at `sector`.
    fn submit_read(&mut self, sector: u64, sectors: u32) -> Result<Tag, BlkError>;
    /// Starts a write of `data` at `sector`.
    fn submit_write(&mut self, sector: u64, data: Vec<u8>) -> Result<Tag, BlkError>;
    /// The next completion, waiting for the queue's interrupt.
    fn wait_any(&mut self) -> Result<Completion, BlkError>;
    /// Makes completed writes durable.
    fn flush(&mut self) -> Result<(), BlkError>;
    /// The driver's DMA counters (maps, retired, ranged invalidations).
    fn dma_stats(&self) -> DmaStats;
    /// The HAL's counters.
    fn hal_stats(&self) -> SlotStats;
    /// Interrupts taken on the queue's vector.
    fn interrupts(&self) -> u64;
    /// The driver's session.
    fn session(&self) -> &DriverDevice;
}

/// A running virtio-blk driver in slot `SLOT`. Field order is drop order, after `Drop` has
/// reset the device and freed its rings with the session lent: the slot, then the session
/// (which releases the device).
pub(crate) struct VirtioBlkDriver<const SLOT: usize> {
    blk: Option<VirtioBlk<Access<SLOT>, Queue<SLOT>>>,
    slot: VirtioSlot<SLOT>,
    session: DriverDevice,
}

impl<const SLOT: usize> VirtioBlkDriver<SLOT> {
    fn run<R>(
        &mut self,
        f: impl FnOnce(&mut VirtioBlk<Access<SLOT>, Queue<SLOT>>) -> Result<R, BlkError>,
    ) -> Result<R, BlkError> {
        let Some(blk) = self.blk.as_mut() else {
            return Err(BlkError::DeviceBroken);
        };
        self.slot.lend(&mut self.session, || f(blk))
    }
}

impl<const SLOT: usize> Block for VirtioBlkDriver<SLOT> {
    fn capacity(&self) -> u64 {
        self.blk.as_ref().map_or(0, |blk| blk.capacity())
    }
    fn submit_read(&mut self, sector: u64, sectors: u32) -> Result<Tag, BlkError> {
        self.run(|blk| blk.submit_read(sector, sectors))
    }
    fn submit_write(&mut self, sector: u64, data: Vec<u8>) -> Result<Tag, BlkError> {
        self.run(|blk| blk.submit_write(sector, data))
    }
    fn wait_any(&mut self) -> Result<Completion, BlkError> {
        self.run(|blk| blk.wait_any())
    }
    fn flush(&mut self) -> Result<(), BlkError> {
        self.run(|blk| blk.flush())
    }
    fn dma_stats(&self) -> DmaStats {
        self.session.dma_ref().stats()
    }
    fn hal_stats(&self) -> SlotStats {
        self.slot.stats()
    }
    fn interrupts(&self) -> u64 {
        self.session.deliveries(QUEUE_VECTOR)
    }
    fn session(&self) -> &DriverDevice {
        &self.session
    }
}

/// The [`Block`] of a running virtio-blk driver (whichever slot it holds).
pub(crate) fn block(driver: &mut dyn Any) -> Option<&mut dyn Block> {
    if driver.is::<VirtioBlkDriver<0>>() {
        return driver
            .downcast_mut::<VirtioBlkDriver<0>>()
            .map(|d| d as &mut dyn Block);
    }
    if driver.is::<VirtioBlkDriver<1>>() {
        return driver
            .downcast_mut::<VirtioBlkDriver<1>>()
            .map(|d| d as &mut dyn Block);
    }
    if driver.is::<VirtioBlkDriver<2>>() {
        return driver
            .downcast_mut::<VirtioBlkDriver<2>>()
            .map(|d| d as &mut dyn Block);
    }
    driver
        .downcast_mut::<VirtioBlkDriver<3>>()
        .map(|d| d as &mut dyn Block)
}

fn probe(session: DriverDevice) -> Result<Box<dyn Driver>, String> {
    if let Some(slot) = VirtioSlot::<0>::claim() {
        return start(slot, session);
    }
    if let Some(slot) = VirtioSlot::<1>::claim() {
        return start(slot, session);
    }
    if let Some(slot) = VirtioSlot::<2>::claim() {
        return start(slot, session);
    }
    match VirtioSlot::<3>::claim() {
        Some(slot) => start(slot, session),
        None => Err(format!(
            "all {} virtio slots are in use",
            moat_kernel::passthrough::VIRTIO_SLOTS
        )),
    }
}

fn start<const SLOT: usize>(
    mut slot: VirtioSlot<SLOT>,
    mut session: DriverDevice,
) -> Result<Box<dyn Driver>, String> {
    // Map every memory BAR now (the transport finds out which ones hold its structures).
    let mut bar_lens = [None; 6];
    for (bar, len) in bar_lens.iter_mut().enumerate() {
        *len = session.registers(bar as u8).ok().map(|window| window.len());
    }
    session
        .enable_msix(QUEUE_VECTOR)
        .map_err(|e| format!("MSI-X entry {QUEUE_VECTOR}: {e:?}"))?;
    let access = Access {
        registers: slot.registers(),
        bar_lens,
    };
    let blk = slot.lend(&mut session, || {
        let transport = VirtioPciTransport::new(access).map_err(BlkError::Transport)?;
        VirtioBlk::new(transport, |transport| {
            // Without VIRTIO_F_ACCESS_PLATFORM the device's DMA bypasses the IOMMU (QEMU's
            // `iommu_platform=off`): it would take the HAL's IOVAs as physical addresses and
            // write wherever they point. Refuse it before it is given a ring.
            let features = transport.negotiated().unwrap_or(0);
            if features & moat_virtio::FEATURE_ACCESS_PLATFORM == 0 {
                return Err(QueueFault::Failed(String::from(
                    "no VIRTIO_F_ACCESS_PLATFORM: the device's DMA would bypass the IOMMU",
                )));
            }
            OwnedQueue::new(transport, 0).map(Queue).map_err(fault)
        })
    });
    let blk = blk.map_err(|e| format!("{e:?}"))?;
    Ok(Box::new(VirtioBlkDriver {
        blk: Some(blk),
        slot,
        session,
    }))
}

impl<const SLOT: usize> Driver for VirtioBlkDriver<SLOT> {
    fn describe(&self) -> String {
        let Some(blk) = &self.blk else {
            return String::from("removed");
        };
        let features = blk.features();
        format!(
            "{} sectors ({} MiB){}, features {features:#x} (ACCESS_PLATFORM {}), queue of {QUEUE_SIZE} on MSI-X entry {QUEUE_VECTOR}, slot {SLOT}",
            blk.capacity(),
            blk.capacity() / 2048,
            if blk.read_only() { ", read-only" } else { "" },
            if features & moat_virtio::FEATURE_ACCESS_PLATFORM != 0 {
                "on"
            } else {
                "off"
            },
        )
    }
    fn device(&self) -> &DriverDevice {
        &self.session
    }
    fn remove(&mut self) -> Result<(), String> {
        if let Some(blk) = self.blk.take() {
            // Dropping the driver resets the device, then frees its rings through the HAL.
            self.slot.lend(&mut self.session, || drop(blk));
        }
        self.session
            .dma()
            .flush()
            .map_err(|e| format!("unmapping retired buffers: {e:?}"))
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn as_block(&mut self) -> Option<&mut dyn super::block::BlockIo> {
        Some(self)
    }
}

impl<const SLOT: usize> Drop for VirtioBlkDriver<SLOT> {
    fn drop(&mut self) {
        if let Some(blk) = self.blk.take() {
            self.slot.lend(&mut self.session, || drop(blk));
        }
    }
}
