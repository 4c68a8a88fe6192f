//! The NVMe driver's glue: the `moat-nvme` crate's platform traits over the device's session.
//! Registers are BAR 0 of the session, each completion queue's interrupt is its own MSI-X
//! entry (through interrupt remapping), and every DMA region (queue rings, Identify data, and
//! each request's data and PRP list) is a fresh mapping in the driver's own address space,
//! retired into the session's batch queue when its command is done. Removing the driver, or
//! dropping it, shuts the controller down (CC.SHN) before the session releases the device.

use super::block::NvmeRequests;
use super::{Driver, DriverEntry};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use core::any::Any;
use moat_iommu::entries::Access;
use moat_kernel::passthrough::{DmaMapping, DmaStats, DriverDevice};
use moat_kernel::pci::PciDevice;
use moat_kernel::{error, time};
use moat_nvme::{
    Clock, Direction, DmaError, DmaMemory, DmaRegion, InterruptError, Interrupts, Nvme, Options,
    RegisterError, Registers, WaitTimeout,
};

/// The table row: any NVM Express I/O controller (QEMU's is 1b36:0010).
pub(super) const ENTRY: DriverEntry = DriverEntry {
    name: "nvme",
    matches: |device: &PciDevice| device.class == moat_nvme::CLASS,
    // NVMe controllers address 64 bits; the space's page table bounds the IOVAs further.
    dma_bits: 64,
    // Retired regions unmapped per ranged invalidation (each I/O retires one or two).
    batch: 32,
    probe,
};

/// I/O queue pairs the driver asks for (MSI-X entries 1 and 2; the admin queue has entry 0).
const IO_QUEUES: u16 = 2;

/// One DMA mapping of the session, as the driver crate sees it.
pub(crate) struct Region(DmaMapping);

impl DmaRegion for Region {
    fn iova(&self) -> u64 {
        self.0.iova()
    }
    fn len(&self) -> usize {
        self.0.len() as usize
    }
}

/// The driver crate's platform: the session, and what went wrong retiring regions (a failed
/// unmap leaves the buffers in the space, which is safe; it is reported, not hidden).
pub(crate) struct Session {
    device: DriverDevice,
    retire_failures: u64,
}

impl Session {
    /// The device session.
    pub(crate) fn device(&self) -> &DriverDevice {
        &self.device
    }
}

impl Registers for Session {
    fn read32(&mut self, offset: u64) -> Result<u32, RegisterError> {
        let window = self
            .device
            .mapped(0)
            .map_err(|_| RegisterError { offset })?;
        window.read32(offset).map_err(|_| RegisterError { offset })
    }
    fn write32(&mut self, offset: u64, value: u32) -> Result<(), RegisterError> {
        let window = self
            .device
            .mapped(0)
            .map_err(|_| RegisterError { offset })?;
        window
            .write32(offset, value)
            .map_err(|_| RegisterError { offset })
    }
}

impl DmaMemory for Session {
    type Region = Region;
    fn allocate(&mut self, len: usize, direction: Direction) -> Result<Region, DmaError> {
        let access = match direction {
            Direction::ToDevice => Access::Read,
            Direction::FromDevice => Access::Write,
        };
        self.device
            .dma()
            .map(len as u64, access)
            .map(Region)
            .map_err(|_| DmaError::Allocate { len })
    }
    fn read(&mut self, region: &Region, offset: usize, out: &mut [u8]) -> Result<(), DmaError> {
        let len = out.len();
        self.device
            .dma_ref()
            .read(&region.0, offset as u64, out)
            .map_err(|_| DmaError::OutOfBounds { offset, len })
    }
    fn write(&mut self, region: &Region, offset: usize, data: &[u8]) -> Result<(), DmaError> {
        self.device
            .dma_ref()
            .write(&region.0, offset as u64, data)
            .map_err(|_| DmaError::OutOfBounds {
                offset,
                len: data.len(),
            })
    }
    fn retire(&mut self, region: Region) {
        if let Err(why) = self.device.dma().retire(region.0) {
            self.retire_failures += 1;
            error!(
                "nvme",
                "{}: retiring a DMA region: {why:?}",
                self.device.bdf()
            );
        }
    }
}

impl Interrupts for Session {
    fn enable_vector(&mut self, vector: u16) -> Result<(), InterruptError> {
        self.device.enable_msix(vector).map_err(|why| {
            error!("nvme", "{}: MSI-X {vector}: {why:?}", self.device.bdf());
            InterruptError { vector }
        })
    }
    fn deliveries(&mut self, vector: u16) -> u64 {
        self.device.deliveries(vector)
    }
    fn wait_for_interrupt(
        &mut self,
        vector: u16,
        seen: u64,
        budget_us: u64,
    ) -> Result<u64, WaitTimeout> {
        self.device
            .wait_interrupt(vector, seen, budget_us)
            .map_err(|t| WaitTimeout {
                budget_us: t.budget_us,
            })
    }
}

impl Clock for Session {
    fn now_us(&mut self) -> u64 {
        time::now_ns() / 1000
    }
}

enum State {
    Running(Box<Nvme<Session>>),
    Stopped(Session),
    /// Only inside [`NvmeDriver::stop`], between taking the driver and getting the session.
    Stopping,
}

/// A running NVMe driver.
pub(crate) struct NvmeDriver {
    state: State,
    summary: String,
    requests: NvmeRequests,
}

fn probe(mut device: DriverDevice) -> Result<Box<dyn Driver>, String> {
    device.registers(0).map_err(|e| format!("BAR 0: {e:?}"))?;
    let session = Session {
        device,
        retire_failures: 0,
    };
    let options = Options {
        io_queues: IO_QUEUES,
        ..Options::default()
    };
    // On failure the session comes back and is dropped here: the device is released, reset
    // and stays blocked; the error names the device's fault.
    let nvme = Nvme::start(session, options).map_err(|(why, _session)| format!("{why}"))?;
    let namespace = nvme.namespace();
    let model = core::str::from_utf8(&nvme.controller().model)
        .unwrap_or("?")
        .trim_end();
    let summary = format!(
        "{model}, NVMe {}.{}, namespace {}: {} blocks of {} B, {} I/O queue pairs on MSI-X 1-{}, max transfer {} KiB",
        nvme.version() >> 16,
        (nvme.version() >> 8) & 0xff,
        namespace.id,
        namespace.blocks,
        namespace.block_size,
        nvme.io_queues(),
        nvme.io_queues(),
        nvme.max_transfer() / 1024
    );
    Ok(Box::new(NvmeDriver {
        state: State::Running(Box::new(nvme)),
        summary,
        requests: NvmeRequests::default(),
    }))
}

impl NvmeDriver {
    /// The running controller, for scenarios; an error once the driver was stopped.
    pub(crate) fn nvme(&mut self) -> Result<&mut Nvme<Session>, String> {
        match &mut self.state {
            State::Running(nvme) => Ok(nvme),
            _ => Err("the nvme driver was stopped".into()),
        }
    }

    /// The block interface's bookkeeping.
    pub(super) fn requests(&mut self) -> &mut NvmeRequests {
        &mut self.requests
    }

    /// The namespace's size in 512-byte sectors (0 once stopped).
    pub(super) fn namespace_sectors(&self) -> u64 {
        match &self.state {
            State::Running(nvme) => {
                let namespace = nvme.namespace();
                namespace.blocks * u64::from(namespace.block_size) / 512
            }
            _ => 0,
        }
    }

    /// Commands the I/O queues hold at once (each queue keeps one entry free).
    pub(super) fn queue_depth(&self) -> usize {
        let entries = usize::from(Options::default().queue_entries);
        (entries - 1) * usize::from(IO_QUEUES)
    }

    /// `sectors` 512-byte sectors at `sector` as (first block, blocks) of the namespace.
    pub(super) fn to_blocks(&self, sector: u64, sectors: u64) -> Result<(u64, u32), String> {
        let State::Running(nvme) = &self.state else {
            return Err("the nvme driver was stopped".into());
        };
        let per_block = u64::from(nvme.namespace().block_size) / 512;
        if per_block == 0 || !sector.is_multiple_of(per_block) || !sectors.is_multiple_of(per_block)
        {
            return Err(format!(
                "{sectors} sector(s) at {sector} are not whole {} B blocks",
                nvme.namespace().block_size
            ));
        }
        let blocks = u32::try_from(sectors / per_block).map_err(|_| "request too large")?;
        Ok((sector / per_block, blocks))
    }

    /// Completion interrupts taken on the I/O queues' vectors.
    pub(super) fn completion_interrupts(&self) -> u64 {
        let device = self.session().device();
        (1..=IO_QUEUES).map(|entry| device.deliveries(entry)).sum()
    }

    /// The session's DMA counters (maps, retirements, batch invalidations).
    pub(crate) fn dma_stats(&self) -> DmaStats {
        self.session().device().dma_ref().stats()
    }

    fn session(&self) -> &Session {
        match &self.state {
            State::Running(nvme) => nvme.platform(),
            State::Stopped(session) => session,
            State::Stopping => unreachable!("the state is restored before stop returns"),
        }
    }

    /// Shuts the controller down (once), then unmaps every retired region.
    fn stop(&mut self) -> Result<(), String> {
        let nvme = match core::mem::replace(&mut self.state, State::Stopping) {
            State::Running(nvme) => nvme,
            other => {
                self.state = other;
                return Ok(());
            }
        };
        let (mut session, result) = nvme.shut_down();
        let flushed = session.device.dma().flush();
        let failures = session.retire_failures;
        self.state = State::Stopped(session);
        result.map_err(|why| format!("shutdown: {why}"))?;
        flushed.map_err(|why| format!("DMA flush: {why:?}"))?;
        if failures > 0 {
            return Err(format!("{failures} DMA region(s) could not be retired"));
        }
        Ok(())
    }
}

impl Driver for NvmeDriver {
    fn describe(&self) -> String {
        match &self.state {
            State::Running(_) => self.summary.clone(),
            _ => format!("{} (shut down)", self.summary),
        }
    }

    fn device(&self) -> &DriverDevice {
        self.session().device()
    }

    fn remove(&mut self) -> Result<(), String> {
        self.stop()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn as_block(&mut self) -> Option<&mut dyn super::block::BlockIo> {
        Some(self)
    }
}

impl Drop for NvmeDriver {
    /// A driver dropped without `remove` (released) still shuts its controller down cleanly.
    fn drop(&mut self) {
        if let Err(why) = self.stop() {
            error!("nvme", "{}: {why}", self.session().device().bdf());
        }
    }
}
