//! The VT-d remapping engine: bring-up of a remapping unit, root and context tables, both
//! invalidation interfaces and fault recording, sequenced exactly as the spec asks. It is
//! generic over register access ([`Registers`]), table memory
//! ([`TableMemory`](crate::paging::TableMemory)) and time ([`Clock`]) so the sequencing runs
//! against a simulated unit on the host; the kernel supplies MMIO, frames and the TSC.

mod context;
mod enable;
pub mod fault;
pub mod interrupt_remapping;
pub mod invalidate;
mod queue;
pub mod registers;
pub mod unit;
mod wait;

pub use context::{GroupContextError, GroupRollback};
pub use fault::{FaultRecord, FaultReporter, fault_reason_name};
pub use interrupt_remapping::{InterruptRemapping, InterruptRemappingError};
pub use invalidate::{InvalidationError, InvalidationMode};
pub use queue::InvalidationErrorCounts;
pub use registers::{Capability, ExtendedCapability, Offset32, Offset64};
pub use unit::{RemappingUnit, UnitError, UnitSummary};
pub use wait::{COMMAND_BUDGET_US, Clock, POLLS_PER_MICROSECOND, PollTimeout, poll};

/// Width-typed access to one unit's register window.
pub trait Registers {
    /// Reads a 32-bit register.
    fn read32(&self, offset: Offset32) -> u32;
    /// Writes a 32-bit register.
    fn write32(&self, offset: Offset32, value: u32);
    /// Reads a 64-bit register with one 8-byte access.
    fn read64(&self, offset: Offset64) -> u64;
    /// Writes a 64-bit register with one 8-byte access (a command in CCMD/IOTLB runs on it).
    fn write64(&self, offset: Offset64, value: u64);
}

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
