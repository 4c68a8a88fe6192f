//! The queued invalidation interface (VT-d spec 6.5.2) and its error handling (6.5.2.10).
//!
//! Each batch of descriptors is closed by a wait descriptor whose status write proves the batch
//! completed, and is waited for before the next one is queued, so the ring holds one batch at
//! most. When the hardware reports a queue error the queue is repaired and left empty again:
//!
//! * FSTS.IQE: the hardware stopped at the rejected descriptor, IQH points at it, and nothing
//!   more is fetched until IQE is cleared. The rejected descriptor and the rest of its batch
//!   before the wait are replaced with harmless waits, IQE is cleared (W1C), and IQT is written
//!   again (QEMU 7.2 resumes only on an IQT write; on hardware clearing IQE resumes and the
//!   repeated tail is a no-op). The batch's own wait then completes; the operation reports
//!   [`InvalidationError::QueueError`], since its invalidation was not performed.
//! * FSTS.ITE: a device-TLB invalidation timed out; the hardware aborted the wait descriptors it
//!   had fetched and fetches nothing more until ITE is cleared. ITE is cleared, the queue is
//!   drained, and the operation reports [`InvalidationError::DeviceTlbTimeout`].
//! * FSTS.ICE: an unexpected or invalid device-TLB invalidation completion arrived. It stops
//!   nothing and cannot belong to Moat's batches (Moat issues no device-TLB invalidations), so
//!   it is cleared and counted, and the operation stands on its own wait.
//!
//! Every error is counted in [`InvalidationErrorCounts`].

use super::invalidate::InvalidationError;
use super::registers::{FSTS, FaultStatus, IQH, IQT};
use super::{COMMAND_BUDGET_US, Clock, PollTimeout, Registers, poll};
use crate::entries::{Fence, InvalidationDescriptor, PhysAddr, StatusAddress, WaitCompletion};
use crate::paging::TableMemory;

/// Number of 16-byte descriptors in the queue (IQA.QS = 0: 256 entries, one 4 KiB frame).
pub(crate) const QUEUE_ENTRIES: u16 = 256;

/// How often one batch may hit IQE and be repaired before the operation gives up. A batch
/// rejected again after its descriptors were replaced has a bad wait descriptor (or a broken
/// unit); more attempts would not help.
const MAX_REPAIRS: u32 = 2;

/// Queue errors the hardware reported, and that were cleared, since the queue was set up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InvalidationErrorCounts {
    /// FSTS.IQE: rejected descriptors (or fetch errors); each was replaced and the queue resumed.
    pub queue_errors: u64,
    /// FSTS.ITE: device-TLB invalidation time-outs.
    pub time_outs: u64,
    /// FSTS.ICE: unexpected or invalid device-TLB invalidation completions.
    pub completion_errors: u64,
}

/// What the wait for a batch ended with.
enum Progress {
    Completed,
    QueueError,
    TimedOut,
}

/// The invalidation queue: its frame, the status frame (word 0: batch completion, word 1: where
/// the replacement waits write), the software tail and the counters.
#[derive(Debug)]
pub(crate) struct Queue {
    base: PhysAddr,
    status: PhysAddr,
    tail: u16,
    sequence: u32,
    errors: InvalidationErrorCounts,
    /// A batch gave up with IQE still set (already counted); the next one clears it.
    left_stopped: bool,
}

impl Queue {
    pub(crate) const fn new(base: PhysAddr, status: PhysAddr) -> Self {
        Self {
            base,
            status,
            tail: 0,
            sequence: 0,
            errors: InvalidationErrorCounts {
                queue_errors: 0,
                time_outs: 0,
                completion_errors: 0,
            },
            left_stopped: false,
        }
    }

    pub(crate) const fn errors(&self) -> InvalidationErrorCounts {
        self.errors
    }

    fn write_slot(
        &self,
        memory: &mut dyn TableMemory,
        index: u16,
        descriptor: InvalidationDescriptor,
    ) {
        let slot = usize::from(index) * 2;
        memory.write(self.base, slot, descriptor.lo());
        memory.write(self.base, slot + 1, descriptor.hi());
    }

    /// A wait descriptor that only writes 0 to the status frame's second word: valid on every
    /// implementation (QEMU rejects a wait with neither SW nor IF), and it invalidates nothing.
    fn harmless(&self) -> InvalidationDescriptor {
        let Ok(address) = StatusAddress::new(PhysAddr::new_truncate(self.status.as_u64() + 8))
        else {
            unreachable!("the status frame is 4 KiB aligned, so its second word is 4-byte aligned");
        };
        InvalidationDescriptor::wait(WaitCompletion::StatusWrite { address, data: 0 }, Fence::On)
    }

    /// Clears `bits` of FSTS (write-1-to-clear; writing only them leaves PFO, which the fault
    /// reporter owns, alone).
    fn clear(registers: &dyn Registers, bits: FaultStatus) {
        registers.write32(FSTS, bits.bits());
    }

    /// IQH as a slot index; a value outside the ring is reported as `None`.
    fn head(registers: &dyn Registers) -> Option<u16> {
        u16::try_from(registers.read64(IQH) >> 4)
            .ok()
            .filter(|head| *head < QUEUE_ENTRIES)
    }

    /// Clears and counts an ICE, which stops nothing.
    fn note_completion_error(&mut self, registers: &dyn Registers) {
        if FaultStatus::from_bits_retain(registers.read32(FSTS)).contains(FaultStatus::ICE) {
            Self::clear(registers, FaultStatus::ICE);
            self.errors.completion_errors += 1;
        }
    }

    /// Replaces the slots from `first` up to (not including) `wait` with harmless waits; if
    /// `first` is the wait itself, writes it again.
    fn replace(
        &self,
        memory: &mut dyn TableMemory,
        first: u16,
        wait: u16,
        again: InvalidationDescriptor,
    ) {
        let mut index = first;
        while index != wait {
            self.write_slot(memory, index, self.harmless());
            index = (index + 1) % QUEUE_ENTRIES;
        }
        if first == wait {
            self.write_slot(memory, wait, again);
        }
    }

    /// Makes sure no error from before is pending and the hardware has fetched everything up to
    /// the tail, so the next batch starts on an empty, running queue.
    fn settle(
        &mut self,
        registers: &dyn Registers,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
    ) -> Result<(), InvalidationError> {
        let status = FaultStatus::from_bits_retain(registers.read32(FSTS));
        if status.contains(FaultStatus::IQE) {
            // Left over from a batch whose repair failed: skip whatever is still queued.
            let first = Self::head(registers).unwrap_or(self.tail);
            let mut index = first;
            while index != self.tail {
                self.write_slot(memory, index, self.harmless());
                index = (index + 1) % QUEUE_ENTRIES;
            }
            Self::clear(registers, FaultStatus::IQE);
            if !self.left_stopped {
                self.errors.queue_errors += 1;
            }
        }
        self.left_stopped = false;
        if status.contains(FaultStatus::ITE) {
            Self::clear(registers, FaultStatus::ITE);
            self.errors.time_outs += 1;
        }
        self.note_completion_error(registers);
        if status.intersects(FaultStatus::IQE | FaultStatus::ITE) {
            registers.write64(IQT, u64::from(self.tail) << 4);
        }
        self.drain(registers, clock)?;
        Ok(())
    }

    /// Waits until the hardware has fetched everything queued (IQH = IQT).
    fn drain(&self, registers: &dyn Registers, clock: &dyn Clock) -> Result<(), PollTimeout> {
        let tail = self.tail;
        poll(
            clock,
            "invalidation queue drain (IQH = IQT)",
            COMMAND_BUDGET_US,
            || (Self::head(registers) == Some(tail)).then_some(()),
        )
    }

    /// Queues `descriptors` plus a status-writing wait descriptor and waits for the status,
    /// repairing the queue if the hardware reports an error on the way (see the module text).
    pub(crate) fn submit(
        &mut self,
        registers: &dyn Registers,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        descriptors: &[InvalidationDescriptor],
    ) -> Result<(), InvalidationError> {
        self.settle(registers, memory, clock)?;
        self.sequence = self.sequence.wrapping_add(1).max(1);
        memory.write(self.status, 0, 0);
        let Ok(address) = StatusAddress::new(self.status) else {
            unreachable!("the status frame is 4 KiB aligned, so 4-byte aligned");
        };
        let wait = InvalidationDescriptor::wait(
            WaitCompletion::StatusWrite {
                address,
                data: self.sequence,
            },
            Fence::On,
        );
        let start = self.tail;
        // The ring is empty (settled) and a batch is a few descriptors: the head is never
        // overrun.
        for descriptor in descriptors {
            self.write_slot(memory, self.tail, *descriptor);
            self.tail = (self.tail + 1) % QUEUE_ENTRIES;
        }
        let wait_index = self.tail;
        self.write_slot(memory, wait_index, wait);
        self.tail = (self.tail + 1) % QUEUE_ENTRIES;
        registers.write64(IQT, u64::from(self.tail) << 4);

        let mut outcome = Ok(());
        let mut repairs = 0;
        loop {
            let expected = self.sequence;
            let status = self.status;
            let progress = poll(
                clock,
                "queued invalidation (wait descriptor)",
                COMMAND_BUDGET_US,
                || {
                    let fault = FaultStatus::from_bits_retain(registers.read32(FSTS));
                    if fault.contains(FaultStatus::IQE) {
                        Some(Progress::QueueError)
                    } else if fault.contains(FaultStatus::ITE) {
                        Some(Progress::TimedOut)
                    } else {
                        (memory.read(status, 0) as u32 == expected).then_some(Progress::Completed)
                    }
                },
            )?;
            match progress {
                Progress::Completed => {
                    self.note_completion_error(registers);
                    return outcome;
                }
                Progress::QueueError => {
                    self.errors.queue_errors += 1;
                    let head = Self::head(registers);
                    if outcome.is_ok() {
                        outcome = Err(InvalidationError::QueueError {
                            head: head.unwrap_or(start),
                        });
                    }
                    repairs += 1;
                    if repairs > MAX_REPAIRS {
                        // Leave IQE set: the next submission skips what is left (settle).
                        self.left_stopped = true;
                        return outcome;
                    }
                    // Only the batch's slots are replaced; a head outside it is not trusted.
                    let in_batch = |index: u16| {
                        (index + QUEUE_ENTRIES - start) % QUEUE_ENTRIES
                            <= (wait_index + QUEUE_ENTRIES - start) % QUEUE_ENTRIES
                    };
                    let first = head.filter(|head| in_batch(*head)).unwrap_or(start);
                    self.replace(memory, first, wait_index, wait);
                    Self::clear(registers, FaultStatus::IQE);
                    registers.write64(IQT, u64::from(self.tail) << 4);
                }
                Progress::TimedOut => {
                    self.errors.time_outs += 1;
                    Self::clear(registers, FaultStatus::ITE);
                    registers.write64(IQT, u64::from(self.tail) << 4);
                    // The wait may have been aborted; settle on an empty queue before reporting.
                    self.drain(registers, clock)?;
                    return Err(InvalidationError::DeviceTlbTimeout);
                }
            }
        }
    }
}
