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
        let start = now_us();
        while self.busy() {
            if now_us().saturating_sub(start) > TRANSFER_BUDGET_US {
                return Err(EduError::Timeout {
                    budget_us: TRANSFER_BUDGET_US,
                });
            }
        }
        Ok(())
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
        let start = now_us();
        loop {
            if let Some(result) = self.factorial_result() {
                return Ok(result);
            }
            if now_us().saturating_sub(start) > FACTORIAL_BUDGET_US {
                return Err(EduError::Timeout {
                    budget_us: FACTORIAL_BUDGET_US,
                });
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    /// A model of the edu registers: the DMA "runs" after `delay` polls.
    struct FakeEdu {
        id: u32,
        liveness: Cell<u32>,
        status: Cell<u32>,
        writes: RefCell<Vec<(u64, u64)>>,
        busy_polls: Cell<u32>,
        delay: u32,
        /// Status register (0x20) as last written, and the factorial register.
        control: Cell<u32>,
        factorial: Cell<u32>,
        /// Status reads left before the factorial is done.
        computing: Cell<u32>,
    }

    impl FakeEdu {
        fn new(delay: u32) -> Self {
            Self {
                id: 0x0100_00ed,
                liveness: Cell::new(0),
                status: Cell::new(0),
                writes: RefCell::new(Vec::new()),
                busy_polls: Cell::new(0),
                delay,
                control: Cell::new(0),
                factorial: Cell::new(0),
                computing: Cell::new(0),
            }
        }
    }

    impl EduRegisters for &FakeEdu {
        fn read32(&self, offset: u64) -> u32 {
            match offset {
                0 => self.id,
                4 => !self.liveness.get(),
                0x08 => self.factorial.get(),
                0x20 => {
                    let left = self.computing.get();
                    if left == 1 {
                        // Done: the model raises the interrupt if bit 7 asked for it.
                        if self.control.get() & 0x80 != 0 {
                            self.status.set(self.status.get() | 1);
                        }
                    }
                    self.computing.set(left.saturating_sub(1));
                    self.control.get() | u32::from(left > 0)
                }
                0x24 => self.status.get(),
                _ => 0,
            }
        }
        fn write32(&self, offset: u64, value: u32) {
            match offset {
                4 => self.liveness.set(value),
                0x08 => {
                    self.factorial
                        .set((1..=value).fold(1u32, |a, b| a.wrapping_mul(b)));
                    self.computing.set(self.delay);
                }
                0x20 => self.control.set(value & 0x80),
                0x60 => self.status.set(self.status.get() | value),
                0x64 => self.status.set(self.status.get() & !value),
                _ => {}
            }
        }
        fn read64(&self, offset: u64) -> u64 {
            assert_eq!(offset, 0x98);
            let started = self.writes.borrow().iter().any(|(o, _)| *o == 0x98);
            if started && self.busy_polls.get() < self.delay {
                self.busy_polls.set(self.busy_polls.get() + 1);
                1
            } else {
                0
            }
        }
        fn write64(&self, offset: u64, value: u64) {
            self.writes.borrow_mut().push((offset, value));
        }
    }

    fn clock() -> impl Fn() -> u64 {
        let now = Cell::new(0);
        move || {
            now.set(now.get() + 1000);
            now.get()
        }
    }

    #[test]
    fn transfers_program_the_engine_in_order() {
        let fake = FakeEdu::new(3);
        let mut edu = Edu::new(&fake).unwrap();
        edu.transfer(Direction::FromDevice, 0x0700_0800, 0x10, 1024, &clock())
            .unwrap();
        assert_eq!(
            *fake.writes.borrow(),
            vec![
                (0x80, 0x40010),
                (0x88, 0x0700_0800),
                (0x90, 1024),
                (0x98, 3)
            ]
        );
    }

    #[test]
    fn a_transfer_can_ask_for_a_completion_interrupt() {
        let fake = FakeEdu::new(1);
        let mut edu = Edu::new(&fake).unwrap();
        let clock = clock();
        edu.transfer_with(
            Direction::ToDevice,
            0x1000,
            0,
            64,
            Completion::Interrupt,
            &clock,
        )
        .unwrap();
        assert_eq!(fake.writes.borrow().last(), Some(&(0x98, 0b101)));
        edu.transfer_with(
            Direction::FromDevice,
            0x1000,
            0,
            64,
            Completion::Quiet,
            &clock,
        )
        .unwrap();
        assert_eq!(fake.writes.borrow().last(), Some(&(0x98, 0b011)));
    }

    #[test]
    fn interrupts_are_raised_and_acknowledged() {
        let fake = FakeEdu::new(0);
        let mut edu = Edu::new(&fake).unwrap();
        edu.raise_interrupt(0x1);
        edu.raise_interrupt(INTERRUPT_DMA_DONE);
        assert_eq!(edu.interrupt_status(), 0x101);
        edu.acknowledge_interrupt(0x1);
        assert_eq!(edu.interrupt_status(), INTERRUPT_DMA_DONE);
        edu.acknowledge_interrupt(edu.interrupt_status());
        assert_eq!(edu.interrupt_status(), 0);
    }

    #[test]
    fn requests_the_model_would_abort_on_are_refused() {
        let fake = FakeEdu::new(0);
        let mut edu = Edu::new(&fake).unwrap();
        for (offset, len) in [(0, 0), (0, 4096), (0xfff, 1), (0x800, 0x800)] {
            assert_eq!(
                edu.transfer(Direction::ToDevice, 0, offset, len, &clock()),
                Err(EduError::BadTransfer {
                    device_offset: offset,
                    len
                })
            );
        }
        assert!(fake.writes.borrow().is_empty());
        edu.transfer(Direction::ToDevice, 0, 0, 4095, &clock())
            .unwrap();
    }

    #[test]
    fn a_stuck_engine_times_out() {
        let fake = FakeEdu::new(u32::MAX);
        let mut edu = Edu::new(&fake).unwrap();
        assert_eq!(
            edu.transfer(Direction::ToDevice, 0, 0, 8, &clock()),
            Err(EduError::Timeout {
                budget_us: TRANSFER_BUDGET_US
            })
        );
    }

    #[test]
    fn identification_and_liveness_are_checked() {
        let mut wrong = FakeEdu::new(0);
        wrong.id = 0x1234_5678;
        assert!(matches!(Edu::new(&wrong), Err(EduError::NotAnEdu(_))));
    }

    #[test]
    fn factorial_waits_for_the_device_and_can_ask_for_an_interrupt() {
        let fake = FakeEdu::new(4);
        let mut edu = Edu::new(&fake).unwrap();
        assert_eq!(edu.factorial(12, &clock()), Ok(479_001_600));
        assert_eq!(edu.interrupt_status(), 0, "quiet: no interrupt");
        edu.start_factorial(5, Completion::Interrupt).unwrap();
        assert_eq!(
            edu.start_factorial(6, Completion::Quiet),
            Err(EduError::Busy)
        );
        let result = (0..10).find_map(|_| edu.factorial_result());
        assert_eq!(result, Some(120));
        assert_eq!(edu.interrupt_status(), INTERRUPT_FACTORIAL_DONE);
    }

    #[test]
    fn a_stuck_factorial_times_out() {
        let fake = FakeEdu::new(u32::MAX);
        let mut edu = Edu::new(&fake).unwrap();
        assert_eq!(
            edu.factorial(3, &clock()),
            Err(EduError::Timeout {
                budget_us: FACTORIAL_BUDGET_US
            })
        );
    }
}
