//! One block interface over every block driver of the table (virtio-blk, NVMe), for the
//! scenarios and the benchmark that drive several at once: requests are started and finished
//! separately, so each device can have many in flight; sizes are in 512-byte sectors.

use super::Driver;
use super::nvme::NvmeDriver;
use super::virtio_blk::Block;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use moat_iommu::Bdf;
use moat_kernel::passthrough::{DmaStats, DriverDevice};
use moat_nvme::Tag;

/// A request's token, unique per device while it is in flight.
pub(crate) type Token = u64;

/// A block device with requests in flight.
pub(crate) trait BlockIo {
    /// Capacity in 512-byte sectors.
    fn sectors(&self) -> u64;
    /// The most requests the driver keeps in flight.
    fn max_in_flight(&self) -> usize;
    /// Starts reading `sectors` sectors at `sector`.
    fn start_read(&mut self, sector: u64, sectors: u32) -> Result<Token, String>;
    /// Starts writing `data` (whole sectors) at `sector`.
    fn start_write(&mut self, sector: u64, data: Vec<u8>) -> Result<Token, String>;
    /// Waits (for the device's interrupt) for any request to finish: its token and, for a
    /// read, the data. A request the device failed is an error naming it.
    fn finish_any(&mut self) -> Result<(Token, Vec<u8>), String>;
    /// Makes every finished write durable (no request may be in flight).
    fn flush(&mut self) -> Result<(), String>;
    /// The driver's DMA counters.
    fn dma_stats(&self) -> DmaStats;
    /// Completion interrupts taken so far.
    fn interrupts(&self) -> u64;
    /// The driver's session (its address space, fault events), for reports and the
    /// isolation scenarios.
    fn session(&self) -> &DriverDevice;
}

/// Runs `f` on the block interface of the driver running on `bdf`; `None` if there is none
/// or it is not a block driver. The driver is out of the table while `f` runs (see
/// [`super::with`]), so `f` may drive another one the same way.
pub(crate) fn with_block<R>(bdf: Bdf, f: impl FnOnce(&mut dyn BlockIo) -> R) -> Option<R> {
    super::with_driver(bdf, |driver| driver.as_block().map(f)).flatten()
}

/// Every virtio-blk driver (whichever slot it holds) through its [`Block`].
impl<T: Block> BlockIo for T {
    fn sectors(&self) -> u64 {
        self.capacity()
    }
    fn max_in_flight(&self) -> usize {
        super::virtio_blk::MAX_IN_FLIGHT
    }
    fn start_read(&mut self, sector: u64, sectors: u32) -> Result<Token, String> {
        let tag = self.submit_read(sector, sectors);
        tag.map(Token::from).map_err(|e| format!("{e:?}"))
    }
    fn start_write(&mut self, sector: u64, data: Vec<u8>) -> Result<Token, String> {
        let tag = self.submit_write(sector, data);
        tag.map(Token::from).map_err(|e| format!("{e:?}"))
    }
    fn finish_any(&mut self) -> Result<(Token, Vec<u8>), String> {
        let done = self.wait_any().map_err(|e| format!("{e:?}"))?;
        done.result
            .map_err(|e| format!("request {} at sector {}: {e:?}", done.tag, done.sector))?;
        let data = match done.kind {
            moat_virtio_blk::RequestKind::Read => done.data,
            _ => Vec::new(),
        };
        Ok((Token::from(done.tag), data))
    }
    fn flush(&mut self) -> Result<(), String> {
        Block::flush(self).map_err(|e| format!("{e:?}"))
    }
    fn dma_stats(&self) -> DmaStats {
        Block::dma_stats(self)
    }
    fn interrupts(&self) -> u64 {
        Block::interrupts(self)
    }
    fn session(&self) -> &DriverDevice {
        Block::session(self)
    }
}

/// What the NVMe driver's [`BlockIo`] keeps: requests in flight in submission order, with
/// the I/O queue each went to, and the next token.
#[derive(Debug, Default)]
pub(crate) struct NvmeRequests {
    in_flight: VecDeque<(Tag, usize, Token)>,
    next_token: Token,
    next_queue: usize,
}

impl BlockIo for NvmeDriver {
    fn sectors(&self) -> u64 {
        self.namespace_sectors()
    }
    fn max_in_flight(&self) -> usize {
        self.queue_depth()
    }
    fn start_read(&mut self, sector: u64, sectors: u32) -> Result<Token, String> {
        let (lba, blocks) = self.to_blocks(sector, u64::from(sectors))?;
        let queue = self.pick_queue()?;
        let tag = self
            .nvme()?
            .submit_read(queue, lba, blocks)
            .map_err(|e| format!("{e}"))?;
        Ok(self.track(tag, queue))
    }
    fn start_write(&mut self, sector: u64, data: Vec<u8>) -> Result<Token, String> {
        let (lba, _) = self.to_blocks(sector, data.len() as u64 / 512)?;
        let queue = self.pick_queue()?;
        let tag = self
            .nvme()?
            .submit_write(queue, lba, &data)
            .map_err(|e| format!("{e}"))?;
        Ok(self.track(tag, queue))
    }
    fn finish_any(&mut self) -> Result<(Token, Vec<u8>), String> {
        let queue = self
            .requests()
            .in_flight
            .front()
            .map(|(_, queue, _)| *queue)
            .ok_or("no request in flight")?;
        let done = self
            .nvme()?
            .next_completion(queue)
            .map_err(|e| format!("{e}"))?;
        let requests = self.requests();
        let index = requests
            .in_flight
            .iter()
            .position(|(tag, _, _)| *tag == done.tag)
            .ok_or_else(|| format!("completion for {:?}, which is not in flight", done.tag))?;
        let (_, _, token) = requests.in_flight.remove(index).ok_or("lost request")?;
        let data = done.outcome.map_err(|e| format!("request {token}: {e}"))?;
        Ok((token, data))
    }
    fn flush(&mut self) -> Result<(), String> {
        self.nvme()?.flush().map_err(|e| format!("{e}"))
    }
    fn dma_stats(&self) -> DmaStats {
        NvmeDriver::dma_stats(self)
    }
    fn interrupts(&self) -> u64 {
        self.completion_interrupts()
    }
    fn session(&self) -> &DriverDevice {
        Driver::device(self)
    }
}

impl NvmeDriver {
    /// Round-robin over the I/O queues.
    fn pick_queue(&mut self) -> Result<usize, String> {
        let queues = self.nvme()?.io_queues().max(1);
        let requests = self.requests();
        let queue = requests.next_queue % queues;
        requests.next_queue = requests.next_queue.wrapping_add(1);
        Ok(queue)
    }

    fn track(&mut self, tag: Tag, queue: usize) -> Token {
        let requests = self.requests();
        let token = requests.next_token;
        requests.next_token += 1;
        requests.in_flight.push_back((tag, queue, token));
        token
    }
}
