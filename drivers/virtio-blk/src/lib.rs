//! virtio-blk driver over the modern virtio-pci transport (`moat-virtio`) and a virtqueue
//! the kernel provides (the `virtio-drivers` crate's `VirtQueue`, behind a safe owned-buffer
//! API): read, write and flush, several requests in flight, completion by MSI-X interrupt.
//! Safe Rust only.
//!
//! Why the queue is a trait here: submitting to the crate's `VirtQueue` is `unsafe` (the
//! caller promises the buffers outlive the request), so the kernel wraps it in a queue that
//! owns every request's buffers until the device is done, and this crate drives that queue.
//! The crate's `VirtIOBlk` is not used: its `flush` (like every blocking call of it) spins on
//! the used ring with no budget, and its non-blocking calls are `unsafe`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod driver;
mod request;

#[cfg(test)]
mod tests;

use alloc::vec::Vec;
pub use driver::{Completion, Tag, VirtioBlk, features};
pub use moat_virtio::{Transport, TransportError, VirtioPciAccess, VirtioPciTransport};
pub use request::{MAX_SECTORS, RequestKind, SECTOR_SIZE};

/// The PCI device ID of a modern (virtio 1.x only) block device.
pub const DEVICE_ID_MODERN: u16 = 0x1042;
/// The MSI-X table entry the request queue interrupts on.
pub const QUEUE_VECTOR: u16 = 0;
/// TIMEOUT: a request on QEMU's virtio-blk completes in well under a millisecond of guest
/// time; a flush waits for the host's fdatasync, which on a loaded TCG host can take seconds.
pub const REQUEST_BUDGET_US: u64 = 10_000_000;

/// The interrupt side of the device: MSI-X deliveries of the queue's vector, counted.
pub trait Interrupts {
    /// Deliveries of MSI-X entry `vector` so far.
    fn deliveries(&self, vector: u16) -> u64;
    /// Waits until entry `vector` has been delivered more than `seen` times, at most
    /// `budget_us`; returns the new count, or [`WaitTimeout`] when the budget ran out.
    fn wait(&self, vector: u16, seen: u64, budget_us: u64) -> Result<u64, WaitTimeout>;
}

/// An interrupt wait that ran out of budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitTimeout;

/// What a device used: the buffers of a finished request, handed back.
#[derive(Debug)]
pub struct Used {
    /// The buffers the device read, as submitted.
    pub inputs: Vec<Vec<u8>>,
    /// The buffers the device wrote.
    pub outputs: Vec<Vec<u8>>,
    /// Bytes the device says it wrote (untrusted).
    pub written: u32,
}

/// Why the virtqueue refused or failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueFault {
    /// No free descriptors for the request.
    Full,
    /// The device used a chain that is not in flight (a misbehaving device).
    UnknownToken(u16),
    /// Anything else, said in words (from the kernel's queue).
    Failed(alloc::string::String),
}

/// A virtqueue whose requests own their buffers (the kernel's, over `virtio-drivers`).
pub trait Virtqueue {
    /// Descriptors in the ring (a power of two); a request uses three.
    const SIZE: u16;
    /// Queues a request made of `inputs` (read by the device) and output buffers of
    /// `output_lens` bytes (written by it), notifies the device if it asks for it, and returns
    /// the request's token.
    fn submit<T: Transport>(
        &mut self,
        transport: &mut T,
        inputs: Vec<Vec<u8>>,
        output_lens: &[usize],
    ) -> Result<u16, QueueFault>;
    /// The token of the next used request, if the device finished one.
    fn peek_used(&self) -> Option<u16>;
    /// Takes the used request `token` (the one [`peek_used`](Self::peek_used) named) and hands
    /// its buffers back.
    fn complete(&mut self, token: u16) -> Result<Used, QueueFault>;
}

/// Why a block operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlkError {
    /// The transport refused the device (features, queue, vectors, status).
    Transport(TransportError),
    /// The function is a virtio device of another type.
    NotBlock,
    /// Reading the device configuration failed.
    Config,
    /// The device reports a capacity of 0 sectors.
    NoCapacity,
    /// The virtqueue failed.
    Queue(QueueFault),
    /// The request reaches past the device's end.
    OutOfRange {
        /// First sector.
        sector: u64,
        /// Sectors asked for.
        sectors: u32,
        /// The device's capacity in sectors.
        capacity: u64,
    },
    /// A length that is not a non-zero multiple of 512 bytes.
    BadLength(usize),
    /// More than [`MAX_SECTORS`] in one request.
    TooLarge {
        /// Bytes asked for.
        len: usize,
    },
    /// A write to a device that offers VIRTIO_BLK_F_RO.
    ReadOnly,
    /// No request is in flight to wait for.
    NothingInFlight,
    /// No completion within the budget.
    Timeout {
        /// The budget in microseconds.
        budget_us: u64,
        /// Requests still in flight.
        in_flight: usize,
    },
    /// The device completed a request with VIRTIO_BLK_S_IOERR.
    DeviceIo {
        /// What the request was.
        kind: RequestKind,
        /// Its first sector.
        sector: u64,
    },
    /// The device completed a request with VIRTIO_BLK_S_UNSUPP.
    DeviceUnsupported {
        /// What the request was.
        kind: RequestKind,
    },
    /// A status byte the spec does not define.
    BadStatus(u8),
    /// The device says it wrote fewer bytes than the status byte.
    ShortCompletion {
        /// Bytes it says it wrote.
        written: u32,
    },
    /// The device set DEVICE_NEEDS_RESET or FAILED.
    DeviceBroken,
}

impl From<TransportError> for BlkError {
    fn from(error: TransportError) -> Self {
        Self::Transport(error)
    }
}

impl From<QueueFault> for BlkError {
    fn from(fault: QueueFault) -> Self {
        Self::Queue(fault)
    }
}
