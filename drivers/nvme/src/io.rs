//! I/O queues and the NVM commands: creating the queue pairs, and Read, Write and Flush, each
//! either submitted (several in flight, completions collected later) or run to completion.

use crate::command::{Command, admin, nvm};
use crate::error::NvmeError;
use crate::platform::{Direction, DmaRegion, Platform};
use crate::prp::{self, Second};
use crate::queue::{Buffers, Completion, QueuePair, Tag};
use crate::session::Core;
use crate::{Nvme, Options};
use alloc::vec::Vec;

/// Create I/O Completion/Submission Queue CDW11 bit 0: physically (here: IOVA) contiguous.
const CONTIGUOUS: u32 = 1;
/// Create I/O Completion Queue CDW11 bit 1: interrupts enabled.
const INTERRUPTS_ENABLED: u32 = 1 << 1;

/// Asks for `options.io_queues` queue pairs (Set Features, Number of Queues), takes what the
/// controller grants, and creates each pair: the completion queue on MSI-X entry `id`, then its
/// submission queue.
pub(crate) fn create_queues<P: Platform>(
    core: &mut Core<P>,
    options: Options,
) -> Result<(), NvmeError> {
    let asked = options.io_queues.max(1);
    let wanted = u32::from(asked - 1);
    let set = Command::new(admin::SET_FEATURES)
        .dword(10, admin::FEATURE_QUEUES)
        .dword(11, wanted | (wanted << 16));
    let granted = core.admin(&set)?;
    // NSQA and NCQA, 0-based.
    let pairs = (granted as u16)
        .min((granted >> 16) as u16)
        .saturating_add(1)
        .min(asked);
    if pairs == 0 {
        return Err(NvmeError::QueuesRefused { asked });
    }
    let entries = options
        .queue_entries
        .clamp(2, 4096)
        .min(core.capabilities.max_queue_entries().min(4096) as u16);
    let stride = core.capabilities.doorbell_stride();
    for id in 1..=pairs {
        core.platform.enable_vector(id)?;
        let pair = QueuePair::allocate(&mut core.platform, id, entries, id, stride)?;
        let size = (u32::from(entries) - 1) << 16 | u32::from(id);
        let (sq, cq) = (pair.submission_iova(), pair.completion_iova());
        // In the session before the commands, so a failure retires it with the rest.
        core.io.push(pair);
        let create_cq = Command::new(admin::CREATE_CQ)
            .prps(cq, 0)
            .dword(10, size)
            .dword(11, (u32::from(id) << 16) | INTERRUPTS_ENABLED | CONTIGUOUS);
        core.admin(&create_cq)?;
        let create_sq = Command::new(admin::CREATE_SQ)
            .prps(sq, 0)
            .dword(10, size)
            .dword(11, (u32::from(id) << 16) | CONTIGUOUS);
        core.admin(&create_sq)?;
    }
    Ok(())
}

impl<P: Platform> Nvme<P> {
    /// Checks a transfer of `len` bytes at `first_block`; returns the block count.
    fn blocks_for(&self, first_block: u64, len: usize) -> Result<u32, NvmeError> {
        let block_size = self.namespace.block_size;
        if len == 0 || !len.is_multiple_of(block_size as usize) {
            return Err(NvmeError::BadLength { len, block_size });
        }
        if len > self.max_transfer {
            return Err(NvmeError::TooLarge {
                len,
                max: self.max_transfer,
            });
        }
        let blocks = (len / block_size as usize) as u64;
        self.check_range(first_block, blocks)?;
        Ok(blocks as u32)
    }

    /// Whether blocks `first_block..first_block + blocks` lie in the namespace: if not,
    /// [`NvmeError::NamespaceTooSmall`].
    pub fn check_range(&self, first_block: u64, blocks: u64) -> Result<(), NvmeError> {
        let namespace_blocks = self.namespace.blocks;
        if first_block
            .checked_add(blocks)
            .is_none_or(|end| end > namespace_blocks)
        {
            return Err(NvmeError::NamespaceTooSmall {
                first_block,
                blocks,
                namespace_blocks,
            });
        }
        Ok(())
    }

    /// Maps fresh memory for `len` bytes (and a PRP list if needed) and submits a read or a
    /// write of it at `first_block` on I/O queue `queue`.
    fn submit_transfer(
        &mut self,
        queue: usize,
        first_block: u64,
        len: usize,
        data: Option<&[u8]>,
    ) -> Result<Tag, NvmeError> {
        let blocks = self.blocks_for(first_block, len)?;
        let id = self.queue_id(queue)?;
        let (opcode, direction) = match data {
            Some(_) => (nvm::WRITE, Direction::ToDevice),
            None => (nvm::READ, Direction::FromDevice),
        };
        let platform = &mut self.core.platform;
        let region = platform.allocate(len, direction)?;
        let mut buffers = Buffers {
            data: None,
            list: None,
            read_back: if data.is_none() { len } else { 0 },
        };
        let max = self.max_transfer;
        let prps = Self::fill(platform, &region, (len, max), data, &mut buffers.list);
        buffers.data = Some(region);
        let (first, second) = match prps {
            Ok(prps) => prps,
            Err(e) => {
                crate::queue::retire_buffers(platform, buffers);
                return Err(e);
            }
        };
        let command = Command::new(opcode)
            .namespace(self.namespace.id)
            .prps(first, second)
            .dword(10, first_block as u32)
            .dword(11, (first_block >> 32) as u32)
            .dword(12, blocks - 1);
        self.core.submit(id, &command, buffers)
    }

    /// Copies `data` into `region` and builds the PRPs (writing a list into a fresh region put
    /// in `list`). Returns PRP1 and PRP2.
    fn fill(
        platform: &mut P,
        region: &P::Region,
        (len, max): (usize, usize),
        data: Option<&[u8]>,
        list: &mut Option<P::Region>,
    ) -> Result<(u64, u64), NvmeError> {
        if let Some(data) = data {
            platform.write(region, 0, data)?;
        }
        let plan = prp::plan(region.iova(), len).map_err(|e| match e {
            prp::PrpError::Shape => NvmeError::MisalignedRegion {
                iova: region.iova(),
            },
            prp::PrpError::TooManyPages => NvmeError::TooLarge { len, max },
        })?;
        let second = match plan.second {
            Second::Unused => 0,
            Second::Page(page) => page,
            Second::List(entries) => {
                let bytes = prp::list_bytes(&entries);
                let page = platform.allocate(bytes.len(), Direction::ToDevice)?;
                let iova = page.iova();
                let written = platform.write(&page, 0, &bytes);
                *list = Some(page);
                written?;
                iova
            }
        };
        Ok((plan.first, second))
    }

    fn queue_id(&self, queue: usize) -> Result<u16, NvmeError> {
        if queue < self.core.io.len() {
            Ok(queue as u16 + 1)
        } else {
            Err(NvmeError::NoSuchRequest)
        }
    }

    /// Submits a read of `blocks` blocks at `first_block` on I/O queue `queue`; its
    /// [`Completion`] carries the data.
    pub fn submit_read(
        &mut self,
        queue: usize,
        first_block: u64,
        blocks: u32,
    ) -> Result<Tag, NvmeError> {
        let len = (blocks as usize).saturating_mul(self.namespace.block_size as usize);
        self.submit_transfer(queue, first_block, len, None)
    }

    /// Submits a write of `data` (whole blocks) at `first_block` on I/O queue `queue`.
    pub fn submit_write(
        &mut self,
        queue: usize,
        first_block: u64,
        data: &[u8],
    ) -> Result<Tag, NvmeError> {
        self.submit_transfer(queue, first_block, data.len(), Some(data))
    }

    /// Submits a Flush of the namespace on I/O queue `queue`.
    pub fn submit_flush(&mut self, queue: usize) -> Result<Tag, NvmeError> {
        let id = self.queue_id(queue)?;
        let command = Command::new(nvm::FLUSH).namespace(self.namespace.id);
        self.core.submit(id, &command, Buffers::none())
    }

    /// The next completion on I/O queue `queue`, in the order the controller posted them;
    /// waits (interrupt-driven, within the command budget) if none is ready.
    pub fn next_completion(&mut self, queue: usize) -> Result<Completion, NvmeError> {
        let id = self.queue_id(queue)?;
        loop {
            let (_, pair) = self.core.queue(id)?;
            if let Some(done) = pair.done.pop_front() {
                return Ok(done);
            }
            self.core.wait_for_completions(id)?;
        }
    }

    /// Waits for `tag`'s completion: the data for a read, nothing for a write or flush.
    pub fn wait(&mut self, tag: Tag) -> Result<Vec<u8>, NvmeError> {
        self.core.wait(tag)?.outcome
    }

    /// Reads `out.len()` bytes (whole blocks) at `first_block`, on I/O queue 0.
    pub fn read(&mut self, first_block: u64, out: &mut [u8]) -> Result<(), NvmeError> {
        let tag = self.submit_transfer(0, first_block, out.len(), None)?;
        // The completion of a read carries exactly the bytes asked for.
        out.copy_from_slice(&self.wait(tag)?);
        Ok(())
    }

    /// Writes `data` (whole blocks) at `first_block`, on I/O queue 0.
    pub fn write(&mut self, first_block: u64, data: &[u8]) -> Result<(), NvmeError> {
        let tag = self.submit_write(0, first_block, data)?;
        self.wait(tag).map(|_| ())
    }

    /// Flushes the namespace, on I/O queue 0.
    pub fn flush(&mut self) -> Result<(), NvmeError> {
        let tag = self.submit_flush(0)?;
        self.wait(tag).map(|_| ())
    }
}
