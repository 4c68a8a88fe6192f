//! Driver for QEMU's `edu` teaching device (1234:11e8): liveness check, its DMA engine and its
//! interrupt status, raise and acknowledge registers. Safe Rust only; the kernel hands it a
//! register window and a clock.
//!
//! The device model's limits (QEMU 7.2, `hw/misc/edu.c`) are enforced here before anything is
//! written, because the model aborts QEMU on a bad request: a transfer is 1..=4095 bytes and
//! must end below device address 0x41000 (the model's range check is off by one).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

/// PCI vendor and device ID.
pub const VENDOR_ID: u16 = 0x1234;
/// PCI device ID.
pub const DEVICE_ID: u16 = 0x11e8;

/// Register offsets (QEMU `docs/specs/edu.txt`).
mod reg {
    pub(crate) const IDENTIFICATION: u64 = 0x00;
    pub(crate) const LIVENESS: u64 = 0x04;
    pub(crate) const FACTORIAL: u64 = 0x08;
    pub(crate) const STATUS: u64 = 0x20;
    pub(crate) const INTERRUPT_STATUS: u64 = 0x24;
    pub(crate) const INTERRUPT_RAISE: u64 = 0x60;
    pub(crate) const INTERRUPT_ACKNOWLEDGE: u64 = 0x64;
    pub(crate) const DMA_SOURCE: u64 = 0x80;
    pub(crate) const DMA_DESTINATION: u64 = 0x88;
    pub(crate) const DMA_COUNT: u64 = 0x90;
    pub(crate) const DMA_COMMAND: u64 = 0x98;
}

const COMMAND_START: u64 = 1 << 0;
const COMMAND_TO_RAM: u64 = 1 << 1;
const COMMAND_INTERRUPT: u64 = 1 << 2;

/// Status bit: a factorial is being computed.
const STATUS_COMPUTING: u32 = 0x01;
/// Status bit: raise [`INTERRUPT_FACTORIAL_DONE`] when the factorial is done.
const STATUS_INTERRUPT_ON_FACTORIAL: u32 = 0x80;

/// The interrupt status bit raised when a factorial finishes (if asked for).
pub const INTERRUPT_FACTORIAL_DONE: u32 = 0x01;

/// TIMEOUT: the model computes in a thread right after the write; 1 s covers a loaded host.
pub const FACTORIAL_BUDGET_US: u64 = 1_000_000;

/// The interrupt status bit the DMA engine raises on completion when asked to.
pub const INTERRUPT_DMA_DONE: u32 = 0x100;

/// Start of the device's internal buffer in its DMA address space.
pub const BUFFER_BASE: u64 = 0x40000;
/// Largest transfer the model accepts.
pub const MAX_TRANSFER: u16 = 4095;
/// End (exclusive) the model's range check allows for a transfer.
const BUFFER_LIMIT: u64 = 0x40fff;

/// Register access to one edu's BAR 0.
pub trait EduRegisters {
    /// 32-bit read at `offset`.
    fn read32(&self, offset: u64) -> u32;
    /// 32-bit write at `offset`.
    fn write32(&self, offset: u64, value: u32);
    /// 64-bit read at `offset` (offsets >= 0x80).
    fn read64(&self, offset: u64) -> u64;
    /// 64-bit write at `offset` (offsets >= 0x80).
    fn write64(&self, offset: u64, value: u64);
}

/// Why an edu operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EduError {
    /// The identification register is not an edu's.
    NotAnEdu(u32),
    /// The liveness register did not invert.
    NotAlive,
    /// Length or device offset outside what the model accepts.
    BadTransfer {
        /// Offset in the device buffer.
        device_offset: u16,
        /// Length.
        len: u16,
    },
    /// The engine was still busy before the command.
    Busy,
    /// The transfer did not finish within the budget.
    Timeout {
        /// Budget in microseconds.
        budget_us: u64,
    },
}

/// Direction of a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// RAM (an IOVA) to the device buffer: the device reads memory.
    ToDevice,
    /// The device buffer to RAM: the device writes memory.
    FromDevice,
}

/// Whether a transfer raises an interrupt when it completes (command bit 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// The caller polls; no interrupt.
    Quiet,
    /// The engine raises [`INTERRUPT_DMA_DONE`]: an MSI when MSI is enabled, else INTx.
    Interrupt,
}

/// TIMEOUT: the model runs a transfer 100 ms (virtual) after the command; 3 s is far beyond
/// that even on a loaded TCG host.
pub const TRANSFER_BUDGET_US: u64 = 3_000_000;

/// One edu device.
#[derive(Debug)]
pub struct Edu<R> {
    registers: R,
}

impl<R: EduRegisters> Edu<R> {
    /// Checks identification (major 1) and liveness, then returns the driver.
    pub fn new(registers: R) -> Result<Self, EduError> {
        let id = registers.read32(reg::IDENTIFICATION);
        if id & 0xffff != 0x00ed || id >> 24 != 1 {
            return Err(EduError::NotAnEdu(id));
        }
        let probe = 0x5a5a_1234;
        registers.write32(reg::LIVENESS, probe);
        if registers.read32(reg::LIVENESS) != !probe {
            return Err(EduError::NotAlive);
        }
        Ok(Self { registers })
    }

    fn busy(&self) -> bool {
        self.registers.read64(reg::DMA_COMMAND) & COMMAND_START != 0
    }

    /// Transfers `len` bytes between `iova` and the device buffer at `device_offset`, and waits
    /// for the engine to finish. `now_us` is the monotonic clock for the budget.
    ///
    /// Note: the device does not report DMA errors; a transfer the IOMMU blocked "completes"
    /// (reads give zeros, writes vanish). Faults are seen in the IOMMU's fault records.
    pub fn transfer(
        &mut self,
        direction: Direction,
        iova: u64,
        device_offset: u16,
        len: u16,
        now_us: &dyn Fn() -> u64,
    ) -> Result<(), EduError> {
        self.transfer_with(
            direction,
            iova,
            device_offset,
            len,
            Completion::Quiet,
            now_us,
        )
    }

    /// [`Edu::transfer`], with `completion` saying whether the engine also raises
    /// [`INTERRUPT_DMA_DONE`] when it is done.
    pub fn transfer_with(
        &mut self,
        direction: Direction,
        iova: u64,
        device_offset: u16,
        len: u16,
        completion: Completion,
        now_us: &dyn Fn() -> u64,
    ) -> Result<(), EduError> {
        self.start(direction, iova, device_offset, len, completion)?;
        self.wait(now_us)
    }

    /// Programs and starts a transfer without waiting for it (the model runs it about 100 ms
    /// later). Checks the same limits as [`transfer`](Self::transfer).
    pub fn start(
        &mut self,
        direction: Direction,
        iova: u64,
        device_offset: u16,
        len: u16,
        completion: Completion,
    ) -> Result<(), EduError> {
        let device_address = BUFFER_BASE + u64::from(device_offset);
        if len == 0 || len > MAX_TRANSFER || device_address + u64::from(len) > BUFFER_LIMIT {
            return Err(EduError::BadTransfer { device_offset, len });
        }
        if self.busy() {
            return Err(EduError::Busy);
        }
        let (source, destination, command) = match direction {
            Direction::ToDevice => (iova, device_address, COMMAND_START),
            Direction::FromDevice => (device_address, iova, COMMAND_START | COMMAND_TO_RAM),
        };
        self.registers.write64(reg::DMA_SOURCE, source);
        self.registers.write64(reg::DMA_DESTINATION, destination);
        self.registers.write64(reg::DMA_COUNT, u64::from(len));
        let command = match completion {
            Completion::Quiet => command,
            Completion::Interrupt => command | COMMAND_INTERRUPT,
        };
        self.registers.write64(reg::DMA_COMMAND, command);
        Ok(())
    }

    /// Waits for a started transfer to finish, within [`TRANSFER_BUDGET_US`].
    pub fn wait(&mut self, now_us: &dyn Fn() -> u64) -> Result<(), EduError> {
        poll(now_us, TRANSFER_BUDGET_US, || (!self.busy()).then_some(()))
    }

    /// Starts computing `n!` (modulo 2^32, as the model does); with
    /// [`Completion::Interrupt`] the device raises [`INTERRUPT_FACTORIAL_DONE`] when done.
    pub fn start_factorial(&mut self, n: u32, completion: Completion) -> Result<(), EduError> {
        if self.registers.read32(reg::STATUS) & STATUS_COMPUTING != 0 {
            return Err(EduError::Busy);
        }
        let status = match completion {
            Completion::Quiet => 0,
            Completion::Interrupt => STATUS_INTERRUPT_ON_FACTORIAL,
        };
        self.registers.write32(reg::STATUS, status);
        self.registers.write32(reg::FACTORIAL, n);
        Ok(())
    }

    /// The factorial's result once the device has finished it.
    pub fn factorial_result(&self) -> Option<u32> {
        (self.registers.read32(reg::STATUS) & STATUS_COMPUTING == 0)
            .then(|| self.registers.read32(reg::FACTORIAL))
    }

    /// Computes `n!` on the device and waits for it within [`FACTORIAL_BUDGET_US`].
    pub fn factorial(&mut self, n: u32, now_us: &dyn Fn() -> u64) -> Result<u32, EduError> {
        self.start_factorial(n, Completion::Quiet)?;
        poll(now_us, FACTORIAL_BUDGET_US, || self.factorial_result())
    }

    /// Raises an interrupt: ORs `bits` into the status register, then the device sends its MSI
    /// (if MSI is enabled) or asserts INTx. The model sends whenever the status is non-zero
    /// after the OR, so acknowledge earlier interrupts first.
    pub fn raise_interrupt(&mut self, bits: u32) {
        self.registers.write32(reg::INTERRUPT_RAISE, bits);
    }

    /// The interrupt status: the OR of every value raised and not yet acknowledged.
    pub fn interrupt_status(&self) -> u32 {
        self.registers.read32(reg::INTERRUPT_STATUS)
    }

    /// Clears `bits` from the interrupt status (INTx deasserts at 0; an MSI is not affected).
    pub fn acknowledge_interrupt(&mut self, bits: u32) {
        self.registers.write32(reg::INTERRUPT_ACKNOWLEDGE, bits);
    }
}

/// The iteration cap beside every deadline: at most this many checks per microsecond.
///
/// TIMEOUT: a check is at least one uncached register read (microseconds under emulation), so
/// with a working clock the deadline ends a wait first; with a clock that stands still the cap
/// ends it after `budget_us * 100` reads.
const POLLS_PER_MICROSECOND: u64 = 100;

/// The crate's one poll: calls `ready` until it answers, `budget_us` passed on `now_us`, or it
/// was called `budget_us * POLLS_PER_MICROSECOND` times (so a stuck clock cannot hang it).
fn poll<T>(
    now_us: &dyn Fn() -> u64,
    budget_us: u64,
    mut ready: impl FnMut() -> Option<T>,
) -> Result<T, EduError> {
    let cap = budget_us.saturating_mul(POLLS_PER_MICROSECOND).max(1);
    let start = now_us();
    for _ in 0..cap {
        if let Some(value) = ready() {
            return Ok(value);
        }
        if now_us().saturating_sub(start) > budget_us {
            break;
        }
        core::hint::spin_loop();
    }
    // One last look: the budget may have run out while this CPU was elsewhere.
    ready().ok_or(EduError::Timeout { budget_us })
}

#[cfg(test)]
mod tests;
