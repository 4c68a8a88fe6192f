//! Host tests of the edu driver against a register model.

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

#[test]
fn a_stuck_clock_still_ends_the_wait() {
    let checks = Cell::new(0u64);
    let waited = poll(&|| 0, 10, || {
        checks.set(checks.get() + 1);
        None::<()>
    });
    assert_eq!(waited, Err(EduError::Timeout { budget_us: 10 }));
    // The cap, then the last look.
    assert_eq!(checks.get(), 10 * POLLS_PER_MICROSECOND + 1);
}
