//! A safe virtqueue for drivers: the `virtio-drivers` crate's `VirtQueue` on a slot's HAL,
//! with every request's buffers owned by the queue from submission until the device used
//! them. The crate's `add` and `pop_used` are `unsafe` because the caller must keep the
//! buffers alive and untouched, and hand the same ones back; owning them here makes that hold
//! by construction, so a driver crate (`forbid(unsafe_code)`) can keep several requests in
//! flight. Call everything inside [`VirtioSlot::lend`](super::VirtioSlot::lend).

use super::virtio_hal::VirtioHal;
use alloc::vec;
use alloc::vec::Vec;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::Transport;

/// Why the queue refused or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// A request with no buffers, or an empty one.
    EmptyBuffer,
    /// Not enough free descriptors.
    Full,
    /// The device named a descriptor chain that is not in flight.
    UnknownToken(u16),
    /// The HAL could not map a buffer of the request: the device would fault on it, so the
    /// request was queued but not notified, and the queue is unusable.
    ShareFailed,
    /// The queue was broken by an earlier `ShareFailed`.
    Broken,
    /// The crate refused (queue creation: size, already in use, no DMA memory).
    Virtio(virtio_drivers::Error),
}

/// A request's buffers while the device has them.
#[derive(Debug)]
struct Pending {
    inputs: Vec<Vec<u8>>,
    outputs: Vec<Vec<u8>>,
}

/// A finished request's buffers, handed back.
#[derive(Debug)]
pub struct UsedBuffers {
    /// What the device read.
    pub inputs: Vec<Vec<u8>>,
    /// What the device wrote.
    pub outputs: Vec<Vec<u8>>,
    /// Bytes the device says it wrote (untrusted).
    pub written: u32,
}

/// Virtqueue `index` of the device lent to slot `SLOT`, `SIZE` descriptors, direct descriptors
/// only (the crate's indirect ones need its `alloc` feature), no event index.
#[derive(Debug)]
pub struct OwnedQueue<const SLOT: usize, const SIZE: usize> {
    queue: VirtQueue<VirtioHal<SLOT>, SIZE>,
    index: u16,
    pending: Vec<Option<Pending>>,
    broken: bool,
}

fn slices(pending: &mut Pending) -> (Vec<&[u8]>, Vec<&mut [u8]>) {
    let inputs = pending.inputs.iter().map(Vec::as_slice).collect();
    let outputs = pending.outputs.iter_mut().map(Vec::as_mut_slice).collect();
    (inputs, outputs)
}

impl<const SLOT: usize, const SIZE: usize> OwnedQueue<SLOT, SIZE> {
    /// Allocates the rings through the HAL and sets the queue up on `transport`.
    pub fn new<T: Transport>(transport: &mut T, index: u16) -> Result<Self, QueueError> {
        let queue = VirtQueue::new(transport, index, false, false).map_err(QueueError::Virtio)?;
        let mut pending = Vec::with_capacity(SIZE);
        pending.resize_with(SIZE, || None);
        Ok(Self {
            queue,
            index,
            pending,
            broken: false,
        })
    }

    /// Queues a request: `inputs` for the device to read, and output buffers of
    /// `output_lens` bytes for it to write; notifies the device unless it suppressed
    /// notifications. Returns the request's token.
    pub fn submit<T: Transport>(
        &mut self,
        transport: &mut T,
        inputs: Vec<Vec<u8>>,
        output_lens: &[usize],
    ) -> Result<u16, QueueError> {
        if self.broken {
            return Err(QueueError::Broken);
        }
        if (inputs.is_empty() && output_lens.is_empty())
            || inputs.iter().any(Vec::is_empty)
            || output_lens.contains(&0)
        {
            return Err(QueueError::EmptyBuffer);
        }
        let mut pending = Pending {
            inputs,
            outputs: output_lens.iter().map(|&len| vec![0; len]).collect(),
        };
        let failures_before = super::virtio_hal::failures::<SLOT>();
        let token = {
            let (inputs, mut outputs) = slices(&mut pending);
            // SAFETY: the buffers are owned by `pending`, which is stored below under the
            // returned token and neither read nor written until `complete` takes it after the
            // device used the chain, passing the same buffers to `pop_used`. Moving `pending`
            // moves only the vectors' headers, not the heap memory the slices point into.
            unsafe { self.queue.add(&inputs, &mut outputs) }
        };
        let token = token.map_err(|error| match error {
            virtio_drivers::Error::QueueFull => QueueError::Full,
            other => QueueError::Virtio(other),
        })?;
        let Some(entry) = self.pending.get_mut(usize::from(token)) else {
            self.broken = true;
            return Err(QueueError::UnknownToken(token));
        };
        *entry = Some(pending);
        if super::virtio_hal::failures::<SLOT>() != failures_before {
            self.broken = true;
            return Err(QueueError::ShareFailed);
        }
        if self.queue.should_notify() {
            transport.notify(self.index);
        }
        Ok(token)
    }

    /// The token of the next request the device used, if any.
    pub fn peek_used(&self) -> Option<u16> {
        self.queue.peek_used()
    }

    /// Takes the used request `token` (the next one, as [`peek_used`](Self::peek_used) named
    /// it) and hands its buffers back, with what the device wrote copied in.
    pub fn complete(&mut self, token: u16) -> Result<UsedBuffers, QueueError> {
        let mut pending = self
            .pending
            .get_mut(usize::from(token))
            .and_then(Option::take)
            .ok_or(QueueError::UnknownToken(token))?;
        let written = {
            let (inputs, mut outputs) = slices(&mut pending);
            // SAFETY: these are the buffers `submit` passed to `add` when it returned `token`
            // (kept under that token since, untouched).
            unsafe { self.queue.pop_used(token, &inputs, &mut outputs) }
        };
        match written {
            Ok(written) => Ok(UsedBuffers {
                inputs: pending.inputs,
                outputs: pending.outputs,
                written,
            }),
            Err(error) => {
                self.pending[usize::from(token)] = Some(pending);
                Err(match error {
                    virtio_drivers::Error::WrongToken => QueueError::UnknownToken(token),
                    other => QueueError::Virtio(other),
                })
            }
        }
    }

    /// Requests submitted and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.pending.iter().filter(|p| p.is_some()).count()
    }
}
