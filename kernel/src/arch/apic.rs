//! The local APIC in xAPIC (MMIO) mode — QEMU's TCG has no x2APIC — and its timer, calibrated
//! against the TSC and run periodically as the kernel's tick. The legacy 8259 PICs are masked.

use super::interrupts::{self, Frame, SPURIOUS_VECTOR};
use super::io::{self, Mmio};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Register offsets (Intel SDM vol. 3, table 11-1).
mod reg {
    pub(super) const ID: usize = 0x20;
    pub(super) const VERSION: usize = 0x30;
    pub(super) const TPR: usize = 0x80;
    pub(super) const EOI: usize = 0xb0;
    pub(super) const SVR: usize = 0xf0;
    pub(super) const LVT_TIMER: usize = 0x320;
    pub(super) const TIMER_INITIAL: usize = 0x380;
    pub(super) const TIMER_CURRENT: usize = 0x390;
    pub(super) const TIMER_DIVIDE: usize = 0x3e0;
}

const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
const SVR_ENABLE: u32 = 1 << 8;
const DIVIDE_BY_16: u32 = 0b0011;

/// The timer's vector.
pub const TIMER_VECTOR: u8 = 32;
/// The tick rate.
pub const TICK_HZ: u64 = 100;

static BASE: AtomicUsize = AtomicUsize::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);

/// What the APIC bring-up found, for the boot report.
#[derive(Clone, Copy, Debug)]
pub struct ApicInfo {
    /// Physical base of the xAPIC registers.
    pub base: u64,
    /// This CPU's APIC ID.
    pub id: u8,
    /// The APIC version register's version field.
    pub version: u8,
    /// The timer's input rate after the divider, in Hz.
    pub timer_hz: u64,
}

/// Why the APIC could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApicError {
    /// The TSC was not calibrated, so the timer cannot be either.
    NoClock,
    /// The timer did not count during calibration.
    TimerStopped,
    /// The timer vector is taken.
    VectorBusy,
    /// `init` ran already.
    AlreadyInitialised,
    /// The register page could not be mapped.
    Mapping(crate::arch::paging::PagingError),
}

fn register(offset: usize) -> Mmio<u32> {
    // SAFETY: BASE is set (by `init`) to the xAPIC page, which `init` mapped uncached before
    // storing it; every offset used is a 32-bit register of that page.
    unsafe { Mmio::new(BASE.load(Ordering::Relaxed) + offset) }
}

/// Masks both 8259 PICs so only the APIC delivers interrupts.
fn mask_legacy_pic() {
    io::outb(0x21, 0xff);
    io::outb(0xa1, 0xff);
}

/// Maps the local APIC at `base` uncached, enables it, calibrates its timer against the TSC
/// and starts the periodic tick on `TIMER_VECTOR`. Interrupts stay disabled; the caller enables
/// them. The composition root's alone, once.
pub fn init(_root: &crate::privilege::Privileged, base: u64) -> Result<ApicInfo, ApicError> {
    if crate::time::tsc_hz() == 0 {
        return Err(ApicError::NoClock);
    }
    if BASE.load(Ordering::Relaxed) != 0 {
        return Err(ApicError::AlreadyInitialised);
    }
    crate::arch::paging::map_mmio(base, 4096).map_err(ApicError::Mapping)?;
    mask_legacy_pic();
    BASE.store(base as usize, Ordering::Relaxed);
    register(reg::TPR).write(0);
    register(reg::SVR).write(SVR_ENABLE | u32::from(SPURIOUS_VECTOR));

    // Calibrate: one-shot, masked, count down from the maximum for 10 ms of TSC time.
    register(reg::TIMER_DIVIDE).write(DIVIDE_BY_16);
    register(reg::LVT_TIMER).write(LVT_MASKED | u32::from(TIMER_VECTOR));
    register(reg::TIMER_INITIAL).write(u32::MAX);
    let start = crate::time::now_ns();
    crate::time::delay_us(10_000);
    let elapsed_ns = crate::time::now_ns() - start;
    let counted = u64::from(u32::MAX - register(reg::TIMER_CURRENT).read());
    register(reg::TIMER_INITIAL).write(0);
    if counted == 0 || elapsed_ns == 0 {
        return Err(ApicError::TimerStopped);
    }
    let timer_hz = counted * 1_000_000_000 / elapsed_ns;

    interrupts::register(TIMER_VECTOR, on_tick).map_err(|_| ApicError::VectorBusy)?;
    register(reg::LVT_TIMER).write(LVT_PERIODIC | u32::from(TIMER_VECTOR));
    register(reg::TIMER_INITIAL).write(((timer_hz / TICK_HZ) as u32).max(1));

    Ok(ApicInfo {
        base,
        id: (register(reg::ID).read() >> 24) as u8,
        version: register(reg::VERSION).read() as u8,
        timer_hz,
    })
}

fn on_tick(_frame: &Frame) {
    TICKS.fetch_add(1, Ordering::Relaxed);
    end_of_interrupt();
}

/// Timer ticks since the tick started.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Signals end of interrupt to the local APIC (no-op before `init`).
pub fn end_of_interrupt() {
    if BASE.load(Ordering::Relaxed) != 0 {
        register(reg::EOI).write(0);
    }
}

/// The APIC base from the IA32_APIC_BASE MSR.
pub fn base_from_msr() -> u64 {
    // SAFETY: IA32_APIC_BASE (0x1b) exists on every x86_64 CPU; reading it has no side effect.
    let value = unsafe { x86_64::registers::model_specific::Msr::new(0x1b).read() };
    value & 0x000f_ffff_ffff_f000
}

/// This CPU's local APIC ID (0 before `init`).
pub fn id() -> u8 {
    if BASE.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    (register(reg::ID).read() >> 24) as u8
}
