//! The two invalidation interfaces (VT-d spec 6.5): the register interface (CCMD, IOTLB_REG,
//! IVA_REG) and the queued interface (a ring of descriptors closed by a wait descriptor whose
//! status write proves completion; see `queue.rs`). A unit uses exactly one of them, chosen at
//! enable time: with queued invalidation on, register commands are ignored by the hardware.

use super::queue::{InvalidationErrorCounts, Queue};
use super::registers::{self, CCMD, FSTS, FaultStatus, IQA, IQT, Offset64};
use super::{COMMAND_BUDGET_US, Clock, PollTimeout, Registers, poll};
use crate::entries::{
    ContextCacheScope, ContextCommand, ContextCommandStatus, Drain, InvalidateAddress,
    InvalidationDescriptor, IotlbCommand, IotlbCommandStatus, IotlbScope, PhysAddr,
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

/// Why an invalidation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidationError {
    /// The hardware did not complete in time.
    Timeout(PollTimeout),
    /// FSTS.IQE: the hardware rejected the descriptor at `head`, so the invalidation was not
    /// performed. The descriptor was replaced with a harmless one and the queue resumed: later
    /// invalidations work again.
    QueueError {
        /// Index of the offending descriptor.
        head: u16,
    },
    /// FSTS.ITE: a device-TLB invalidation timed out and the hardware aborted the pending wait
    /// descriptors, so completion is not proven. ITE was cleared and the queue drained.
    DeviceTlbTimeout,
    /// IOTLB_REG reported granularity 0: the request was not performed.
    NotPerformed,
}

impl core::fmt::Display for InvalidationError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Timeout(timeout) => write!(f, "{timeout}"),
            Self::QueueError { head } => write!(
                f,
                "invalidation queue error (FSTS.IQE) at descriptor {head}; the queue was repaired"
            ),
            Self::DeviceTlbTimeout => {
                write!(
                    f,
                    "device-TLB invalidation time-out (FSTS.ITE); the queue was drained"
                )
            }
            Self::NotPerformed => write!(f, "the IOTLB invalidation was not performed"),
        }
    }
}

impl From<PollTimeout> for InvalidationError {
    fn from(timeout: PollTimeout) -> Self {
        Self::Timeout(timeout)
    }
}

/// The chosen interface and its state.
#[derive(Debug)]
pub(crate) enum Invalidator {
    Register { iotlb: Offset64, iva: Offset64 },
    Queued(Queue),
}

impl Invalidator {
    /// Sets up the queue (queue errors left from before cleared, IQT = 0, IQA = queue | QS 0);
    /// the caller then sets GCMD.QIE.
    pub(crate) fn queued(registers: &dyn Registers, queue: PhysAddr, status: PhysAddr) -> Self {
        let stale = FaultStatus::IQE | FaultStatus::ITE | FaultStatus::ICE;
        registers.write32(FSTS, stale.bits());
        registers.write64(IQT, 0);
        registers.write64(IQA, queue.as_u64());
        Self::Queued(Queue::new(queue, status))
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
            Self::Queued(_) => InvalidationMode::Queued,
        }
    }

    /// Queue errors seen so far (none with the register interface).
    pub(crate) const fn errors(&self) -> InvalidationErrorCounts {
        match self {
            Self::Register { .. } => InvalidationErrorCounts {
                queue_errors: 0,
                time_outs: 0,
                completion_errors: 0,
            },
            Self::Queued(queue) => queue.errors(),
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
            Self::Queued(queue) => queue.submit(
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
        match self {
            &mut Self::Register { iotlb, iva } => {
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
            Self::Queued(queue) => queue.submit(
                registers,
                memory,
                clock,
                &[InvalidationDescriptor::iotlb(scope, drain)],
            ),
        }
    }

    /// The invalidation queue, in queued mode (interrupt-entry-cache invalidation exists only
    /// as a queued descriptor).
    pub(crate) fn queue(&mut self) -> Option<&mut Queue> {
        match self {
            Self::Queued(queue) => Some(queue),
            Self::Register { .. } => None,
        }
    }
}
