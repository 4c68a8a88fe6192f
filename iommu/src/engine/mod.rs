//! The VT-d remapping engine: bring-up of a remapping unit, root and context tables, both
//! invalidation interfaces and fault recording, sequenced exactly as the spec asks. It is
//! generic over register access ([`Registers`]), table memory
//! ([`TableMemory`](crate::paging::TableMemory)) and time ([`Clock`]) so the sequencing runs
//! against a simulated unit on the host; the kernel supplies MMIO, frames and the TSC.

mod context;
pub mod fault;
pub mod invalidate;
pub mod registers;
pub mod unit;

pub use fault::{FaultRecord, FaultReporter, fault_reason_name};
pub use invalidate::InvalidationMode;
pub use registers::{Capability, ExtendedCapability, Offset32, Offset64};
pub use unit::{RemappingUnit, UnitError, UnitSummary};

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

/// A monotonic clock for poll budgets.
pub trait Clock {
    /// Microseconds since some fixed point.
    fn now_us(&self) -> u64;
}

/// A hardware poll that ran out of its budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollTimeout {
    /// What was being waited for.
    pub what: &'static str,
    /// The budget, in microseconds.
    pub budget_us: u64,
}

impl core::fmt::Display for PollTimeout {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} did not complete within {} us",
            self.what, self.budget_us
        )
    }
}

/// The engine's one poll helper: calls `ready` until it gives `Some`, or `budget_us` passed.
pub fn poll<T>(
    clock: &dyn Clock,
    what: &'static str,
    budget_us: u64,
    mut ready: impl FnMut() -> Option<T>,
) -> Result<T, PollTimeout> {
    let start = clock.now_us();
    loop {
        if let Some(value) = ready() {
            return Ok(value);
        }
        if clock.now_us().saturating_sub(start) > budget_us {
            return ready().ok_or(PollTimeout { what, budget_us });
        }
        core::hint::spin_loop();
    }
}

/// TIMEOUT: register-interface commands and status bits complete in microseconds on real
/// hardware and synchronously in QEMU; 100 ms means the unit is not answering.
pub const COMMAND_BUDGET_US: u64 = 100_000;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
