//! The two invalidation interfaces (VT-d spec 6.5): the register interface (CCMD, IOTLB_REG,
//! IVA_REG) and the queued interface (a ring of descriptors closed by a wait descriptor whose
//! status write proves completion). A unit uses exactly one of them, chosen at enable time:
//! with queued invalidation on, register commands are ignored by the hardware.

use super::registers::{self, CCMD, FSTS, FaultStatus, IQA, IQH, IQT, Offset64};
use super::{COMMAND_BUDGET_US, Clock, PollTimeout, Registers, poll};
use crate::entries::{
    ContextCacheScope, ContextCommand, ContextCommandStatus, Drain, Fence, InvalidateAddress,
    InvalidationDescriptor, IotlbCommand, IotlbCommandStatus, IotlbScope, PhysAddr, StatusAddress,
    WaitCompletion,
};
use crate::paging::TableMemory;

/// Which interface a unit uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidationMode {
    /// CCMD / IOTLB_REG writes, polled until the hardware clears ICC / IVT.
    Register,
    /// The invalidation queue, with a status-writing wait descriptor after each batch.
    Queued,
}

impl InvalidationMode {
    /// `register` or `queued`, as on the kernel command line.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Queued => "queued",
        }
    }
}

/// Number of 16-byte descriptors in the queue (IQA.QS = 0: 256 entries, one 4 KiB frame).
const QUEUE_ENTRIES: u16 = 256;

/// Why an invalidation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidationError {
    /// The hardware did not complete in time.
    Timeout(PollTimeout),
    /// FSTS.IQE: the queue stopped at the descriptor at IQH.
    QueueError {
        /// Index of the offending descriptor.
        head: u16,
    },
    /// IOTLB_REG reported granularity 0: the request was not performed.
    NotPerformed,
}

impl From<PollTimeout> for InvalidationError {
    fn from(timeout: PollTimeout) -> Self {
        Self::Timeout(timeout)
    }
}

/// The chosen interface and its state.
#[derive(Debug)]
pub(crate) enum Invalidator {
    Register {
        iotlb: Offset64,
        iva: Offset64,
    },
    Queued {
        queue: PhysAddr,
        status: PhysAddr,
        tail: u16,
        sequence: u32,
    },
}

impl Invalidator {
    /// Sets up the queue (IQT = 0, IQA = queue | QS 0) — the caller then sets GCMD.QIE.
    pub(crate) fn queued(registers: &dyn Registers, queue: PhysAddr, status: PhysAddr) -> Self {
        registers.write64(IQT, 0);
        registers.write64(IQA, queue.as_u64());
        Self::Queued {
            queue,
            status,
            tail: 0,
            sequence: 0,
        }
    }

    pub(crate) const fn register(iro: u16) -> Self {
        Self::Register {
            iotlb: registers::iotlb(iro),
            iva: registers::iva(iro),
        }
    }

    pub(crate) const fn mode(&self) -> InvalidationMode {
        match self {
            Self::Register { .. } => InvalidationMode::Register,
            Self::Queued { .. } => InvalidationMode::Queued,
        }
    }

    /// Invalidates the context cache for `scope` and waits for completion.
    pub(crate) fn context(
        &mut self,
        registers: &dyn Registers,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        scope: ContextCacheScope,
    ) -> Result<(), InvalidationError> {
        match self {
            Self::Register { .. } => {
                registers.write64(CCMD, ContextCommand::invalidate(scope).raw());
                poll(
                    clock,
                    "context-cache invalidation (CCMD.ICC)",
                    COMMAND_BUDGET_US,
                    || {
                        let status = ContextCommandStatus::from_raw(registers.read64(CCMD));
                        (!status.is_pending()).then_some(())
                    },
                )?;
                Ok(())
            }
            Self::Queued { .. } => self.submit(
                registers,
                memory,
                clock,
                &[InvalidationDescriptor::context_cache(scope)],
            ),
        }
    }

    /// Invalidates the IOTLB for `scope` and waits for completion.
    pub(crate) fn iotlb(
        &mut self,
        registers: &dyn Registers,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        scope: IotlbScope,
        drain: Drain,
    ) -> Result<(), InvalidationError> {
        match *self {
            Self::Register { iotlb, iva } => {
                if let Some(address) = InvalidateAddress::for_scope(scope) {
                    registers.write64(iva, address.raw());
                }
                registers.write64(iotlb, IotlbCommand::invalidate(scope, drain).raw());
                let status = poll(
                    clock,
                    "IOTLB invalidation (IOTLB_REG.IVT)",
                    COMMAND_BUDGET_US,
                    || {
                        let status = IotlbCommandStatus::from_raw(registers.read64(iotlb));
                        (!status.is_pending()).then_some(status)
                    },
                )?;
                if status.actual_granularity().is_none() {
                    return Err(InvalidationError::NotPerformed);
                }
                Ok(())
            }
            Self::Queued { .. } => self.submit(
                registers,
                memory,
                clock,
                &[InvalidationDescriptor::iotlb(scope, drain)],
            ),
        }
    }

    /// Queues `descriptors` plus a status-writing wait descriptor and waits for the status.
    /// Queued mode only (interrupt_remapping.rs checks the mode before it calls).
    pub(crate) fn submit(
        &mut self,
        registers: &dyn Registers,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        descriptors: &[InvalidationDescriptor],
    ) -> Result<(), InvalidationError> {
        let Self::Queued {
            queue,
            status,
            tail,
            sequence,
        } = self
        else {
            unreachable!("submit is only reached in queued mode");
        };
        *sequence = sequence.wrapping_add(1).max(1);
        memory.write(*status, 0, 0);
        let Ok(address) = StatusAddress::new(*status) else {
            unreachable!("the status frame is 4 KiB aligned, so 4-byte aligned");
        };
        let wait = InvalidationDescriptor::wait(
            WaitCompletion::StatusWrite {
                address,
                data: *sequence,
            },
            Fence::On,
        );
        for descriptor in descriptors.iter().chain(core::iter::once(&wait)) {
            let index = usize::from(*tail) * 2;
            memory.write(*queue, index, descriptor.lo());
            memory.write(*queue, index + 1, descriptor.hi());
            *tail = (*tail + 1) % QUEUE_ENTRIES;
        }
        // Every batch is waited for, so the ring is empty before each submission and a batch
        // (at most a few descriptors) never overruns the head.
        registers.write64(IQT, u64::from(*tail) << 4);
        let expected = *sequence;
        let result = poll(
            clock,
            "queued invalidation (wait descriptor)",
            COMMAND_BUDGET_US,
            || {
                if FaultStatus::from_bits_retain(registers.read32(FSTS)).contains(FaultStatus::IQE)
                {
                    return Some(Err(()));
                }
                (memory.read(*status, 0) as u32 == expected).then_some(Ok(()))
            },
        )?;
        result.map_err(|()| InvalidationError::QueueError {
            head: (registers.read64(IQH) >> 4) as u16,
        })
    }
}
