//! The block device: bring-up in the transport's order (features with VIRTIO_F_ACCESS_PLATFORM,
//! capacity, the queue's size and MSI-X vector checked, DRIVER_OK read back), requests tagged
//! and kept in flight, and completions taken after the queue's interrupt.

use crate::request::{self, RequestKind, SECTOR_SIZE};
use crate::{BlkError, Interrupts, QUEUE_VECTOR, QueueFault, REQUEST_BUDGET_US, Virtqueue};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec;
use alloc::vec::Vec;
use moat_virtio::{DeviceType, NO_VECTOR, Transport, VirtioPciAccess, VirtioPciTransport};

/// virtio-blk feature bits this driver accepts.
pub mod features {
    /// VIRTIO_BLK_F_RO: the device is read-only.
    pub const RO: u64 = 1 << 5;
    /// VIRTIO_BLK_F_FLUSH: the device has a write cache and takes flush requests.
    pub const FLUSH: u64 = 1 << 9;
}

/// Wake-ups a wait takes at most (each is an interrupt or the end of the budget); a bound
/// beside the deadline, for a clock that does not advance.
const MAX_WAKEUPS: u32 = 10_000;

/// Names one request in flight (the queue's token for it).
pub type Tag = u16;

/// A finished request.
#[derive(Debug)]
pub struct Completion {
    /// The request's tag.
    pub tag: Tag,
    /// What it was.
    pub kind: RequestKind,
    /// Its first sector (0 for a flush).
    pub sector: u64,
    /// How the device says it went.
    pub result: Result<(), BlkError>,
    /// A read's data; a write's data handed back; empty for a flush.
    pub data: Vec<u8>,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    kind: RequestKind,
    sector: u64,
    sectors: u32,
}

/// One virtio-blk device. Field order is drop order: the queue (its rings) goes before the
/// transport, and `Drop` resets the device first so it stops using them.
#[derive(Debug)]
pub struct VirtioBlk<A: VirtioPciAccess + Interrupts, Q: Virtqueue> {
    queue: Q,
    transport: VirtioPciTransport<A>,
    capacity: u64,
    features: u64,
    in_flight: BTreeMap<Tag, InFlight>,
    finished: VecDeque<Completion>,
}

impl<A: VirtioPciAccess + Interrupts, Q: Virtqueue> VirtioBlk<A, Q> {
    /// Brings the device up: negotiates (VIRTIO_F_ACCESS_PLATFORM accepted when offered,
    /// FEATURES_OK checked), reads the capacity, checks queue 0 (a size of 0 is an error) and
    /// gives it MSI-X entry [`QUEUE_VECTOR`], has `make_queue` create the virtqueue on the
    /// transport, and sets DRIVER_OK (checked). On failure the device is marked FAILED and the
    /// error says which step refused.
    pub fn new(
        mut transport: VirtioPciTransport<A>,
        make_queue: impl FnOnce(&mut VirtioPciTransport<A>) -> Result<Q, QueueFault>,
    ) -> Result<Self, BlkError> {
        if transport.device_type() != DeviceType::Block {
            return Err(BlkError::NotBlock);
        }
        let features = transport.negotiate(features::RO | features::FLUSH)?;
        match Self::bring_up(&mut transport, make_queue) {
            Ok((capacity, queue)) => Ok(Self {
                queue,
                transport,
                capacity,
                features,
                in_flight: BTreeMap::new(),
                finished: VecDeque::new(),
            }),
            Err(error) => {
                transport.fail();
                Err(error)
            }
        }
    }

    fn bring_up(
        transport: &mut VirtioPciTransport<A>,
        make_queue: impl FnOnce(&mut VirtioPciTransport<A>) -> Result<Q, QueueFault>,
    ) -> Result<(u64, Q), BlkError> {
        let capacity = transport
            .read_consistent(|| transport.read_config_space::<u64>(0))
            .map_err(|_| BlkError::Config)?;
        if capacity == 0 {
            return Err(BlkError::NoCapacity);
        }
        transport.set_config_vector(NO_VECTOR)?;
        transport.prepare_queue(0, Q::SIZE, QUEUE_VECTOR)?;
        let queue = make_queue(transport)?;
        transport.finish()?;
        Ok((capacity, queue))
    }

    /// Capacity in 512-byte sectors.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The features negotiated (virtio bit numbers).
    pub fn features(&self) -> u64 {
        self.features
    }

    /// Whether the device is read-only.
    pub fn read_only(&self) -> bool {
        self.features & features::RO != 0
    }

    /// Requests submitted and not yet taken.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len() + self.finished.len()
    }

    /// The transport (its access, for reports).
    pub fn transport(&self) -> &VirtioPciTransport<A> {
        &self.transport
    }

    fn check_range(&self, sector: u64, sectors: u32) -> Result<(), BlkError> {
        match sector.checked_add(u64::from(sectors)) {
            Some(end) if end <= self.capacity => Ok(()),
            _ => Err(BlkError::OutOfRange {
                sector,
                sectors,
                capacity: self.capacity,
            }),
        }
    }

    fn submit(
        &mut self,
        request: InFlight,
        inputs: Vec<Vec<u8>>,
        output_lens: &[usize],
    ) -> Result<Tag, BlkError> {
        let tag = self
            .queue
            .submit(&mut self.transport, inputs, output_lens)?;
        if self.in_flight.insert(tag, request).is_some() {
            return Err(BlkError::Queue(QueueFault::Failed(
                "the queue reused a token still in flight".into(),
            )));
        }
        Ok(tag)
    }

    /// Starts reading `sectors` sectors at `sector`; the data arrives in the completion.
    pub fn submit_read(&mut self, sector: u64, sectors: u32) -> Result<Tag, BlkError> {
        request::sectors_in(sectors as usize * SECTOR_SIZE)?;
        self.check_range(sector, sectors)?;
        let header = request::header(RequestKind::Read, sector).to_vec();
        let request = InFlight {
            kind: RequestKind::Read,
            sector,
            sectors,
        };
        self.submit(request, vec![header], &[sectors as usize * SECTOR_SIZE, 1])
    }

    /// Starts writing `data` (a multiple of 512 bytes) at `sector`.
    pub fn submit_write(&mut self, sector: u64, data: Vec<u8>) -> Result<Tag, BlkError> {
        if self.read_only() {
            return Err(BlkError::ReadOnly);
        }
        let sectors = request::sectors_in(data.len())?;
        self.check_range(sector, sectors)?;
        let header = request::header(RequestKind::Write, sector).to_vec();
        let request = InFlight {
            kind: RequestKind::Write,
            sector,
            sectors,
        };
        self.submit(request, vec![header, data], &[1])
    }

    /// Starts a flush (the device must offer VIRTIO_BLK_F_FLUSH).
    pub fn submit_flush(&mut self) -> Result<Tag, BlkError> {
        if self.features & features::FLUSH == 0 {
            return Err(BlkError::DeviceUnsupported {
                kind: RequestKind::Flush,
            });
        }
        let header = request::header(RequestKind::Flush, 0).to_vec();
        let request = InFlight {
            kind: RequestKind::Flush,
            sector: 0,
            sectors: 0,
        };
        self.submit(request, vec![header], &[1])
    }

    /// Takes the request the device used, checking what it says against what was asked.
    fn take(&mut self, token: Tag) -> Result<Completion, BlkError> {
        let Some(request) = self.in_flight.remove(&token) else {
            return Err(BlkError::Queue(QueueFault::UnknownToken(token)));
        };
        let mut used = self.queue.complete(token)?;
        let data_len = match request.kind {
            RequestKind::Read => request.sectors as usize * SECTOR_SIZE,
            _ => 0,
        };
        let status = used.outputs.last().and_then(|s| s.first().copied());
        let result = match status {
            _ if (used.written as usize) < data_len + 1 => Err(BlkError::ShortCompletion {
                written: used.written,
            }),
            Some(byte) => request::status(request.kind, request.sector, byte),
            None => Err(BlkError::ShortCompletion { written: 0 }),
        };
        let data = match request.kind {
            RequestKind::Read => used.outputs.swap_remove(0),
            RequestKind::Write => used.inputs.pop().unwrap_or_default(),
            RequestKind::Flush => Vec::new(),
        };
        Ok(Completion {
            tag: token,
            kind: request.kind,
            sector: request.sector,
            result,
            data,
        })
    }

    /// A completion that has arrived, without waiting.
    pub fn poll(&mut self) -> Result<Option<Completion>, BlkError> {
        if let Some(completion) = self.finished.pop_front() {
            return Ok(Some(completion));
        }
        match self.queue.peek_used() {
            Some(token) => self.take(token).map(Some),
            None => Ok(None),
        }
    }

    /// The next completion from the device: takes a used request if there is one, else halts
    /// until the queue's MSI-X vector fires, within [`REQUEST_BUDGET_US`]. The delivery count
    /// is read before the used ring, so an interrupt between the two is never missed.
    fn next_from_device(&mut self) -> Result<Completion, BlkError> {
        if self.in_flight.is_empty() {
            return Err(BlkError::NothingInFlight);
        }
        let access = self.transport.access();
        let start = access.now_us();
        for _ in 0..MAX_WAKEUPS {
            let seen = self.transport.access().deliveries(QUEUE_VECTOR);
            if let Some(token) = self.queue.peek_used() {
                return self.take(token);
            }
            let elapsed = self.transport.access().now_us().saturating_sub(start);
            if elapsed >= REQUEST_BUDGET_US {
                break;
            }
            let remaining = REQUEST_BUDGET_US - elapsed;
            let _ = self.transport.access().wait(QUEUE_VECTOR, seen, remaining);
        }
        if self.transport.broken() {
            return Err(BlkError::DeviceBroken);
        }
        Err(BlkError::Timeout {
            budget_us: REQUEST_BUDGET_US,
            in_flight: self.in_flight.len(),
        })
    }

    /// The next completion, waiting for the device if none has arrived.
    pub fn wait_any(&mut self) -> Result<Completion, BlkError> {
        match self.finished.pop_front() {
            Some(completion) => Ok(completion),
            None => self.next_from_device(),
        }
    }

    /// Waits for request `tag`; completions of other requests are kept for
    /// [`wait_any`](Self::wait_any) and [`poll`](Self::poll).
    pub fn wait_for(&mut self, tag: Tag) -> Result<Completion, BlkError> {
        if let Some(at) = self.finished.iter().position(|c| c.tag == tag)
            && let Some(completion) = self.finished.remove(at)
        {
            return Ok(completion);
        }
        if !self.in_flight.contains_key(&tag) {
            return Err(BlkError::Queue(QueueFault::UnknownToken(tag)));
        }
        loop {
            let completion = self.next_from_device()?;
            if completion.tag == tag {
                return Ok(completion);
            }
            self.finished.push_back(completion);
        }
    }

    /// Reads `buffer.len()` bytes (a multiple of 512) at `sector`.
    pub fn read(&mut self, sector: u64, buffer: &mut [u8]) -> Result<(), BlkError> {
        let sectors = request::sectors_in(buffer.len())?;
        let tag = self.submit_read(sector, sectors)?;
        let completion = self.wait_for(tag)?;
        completion.result?;
        buffer.copy_from_slice(&completion.data);
        Ok(())
    }

    /// Writes `data` (a multiple of 512 bytes) at `sector`.
    pub fn write(&mut self, sector: u64, data: &[u8]) -> Result<(), BlkError> {
        let tag = self.submit_write(sector, data.to_vec())?;
        self.wait_for(tag)?.result
    }

    /// Makes completed writes durable. A device without VIRTIO_BLK_F_FLUSH has no volatile
    /// write cache to flush, so this succeeds without a request.
    pub fn flush(&mut self) -> Result<(), BlkError> {
        if self.features & features::FLUSH == 0 {
            return Ok(());
        }
        let tag = self.submit_flush()?;
        self.wait_for(tag)?.result
    }
}

impl<A: VirtioPciAccess + Interrupts, Q: Virtqueue> Drop for VirtioBlk<A, Q> {
    /// Resets the device, so it stops using the rings and buffers before they are freed.
    fn drop(&mut self) {
        let _ = self.transport.reset();
    }
}
