//! The monotonic clock: the TSC, calibrated once at boot against the PIT. Timestamps are
//! nanoseconds since calibration; before it, 0.

use crate::arch::{io, pit};
use core::sync::atomic::{AtomicU64, Ordering};

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);

/// Result of the boot-time calibration, for the boot report.
#[derive(Clone, Copy, Debug)]
pub struct Calibration {
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// The reference it was measured against.
    pub reference: &'static str,
    /// Length of the reference interval in microseconds.
    pub interval_us: u64,
}

/// Calibrates the TSC against the PIT (50 ms, the best of three runs) and starts the clock.
pub fn calibrate() -> Result<Calibration, pit::PitError> {
    const TICKS: u16 = 59_659; // 50 ms at 1.193182 MHz
    let mut best = u64::MAX;
    for _ in 0..3 {
        let (start, end) = pit::measure_tsc(TICKS)?;
        best = best.min(end.wrapping_sub(start));
    }
    let hz = (u128::from(best) * u128::from(pit::PIT_HZ) / u128::from(TICKS)) as u64;
    TSC_AT_BOOT.store(io::rdtsc(), Ordering::Relaxed);
    TSC_HZ.store(hz.max(1), Ordering::Relaxed);
    Ok(Calibration {
        tsc_hz: hz,
        reference: "PIT channel 2",
        interval_us: u64::from(TICKS) * 1_000_000 / pit::PIT_HZ,
    })
}

/// TSC frequency in Hz (0 before calibration).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds since calibration (0 before calibration). Monotonic.
#[cfg(not(test))]
pub fn now_ns() -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed);
    if hz == 0 {
        return 0;
    }
    let ticks = io::rdtsc().saturating_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64
}

/// Nanoseconds since the first call, from the host's monotonic clock: host tests have no
/// calibrated TSC, and code under test that polls or waits must still see time pass.
#[cfg(test)]
pub fn now_ns() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let elapsed = START.get_or_init(std::time::Instant::now).elapsed();
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// Most calls of a poll's `ready` per microsecond of budget. No iteration (a call of `ready`,
/// a clock read and a pause) takes under a nanosecond, so with a working clock the deadline
/// always comes first; when the clock is broken (calibration failed and it stays at zero)
/// this cap still ends the wait.
const MAX_POLLS_PER_US: u64 = 1000;

/// A deadline on the monotonic clock, for bounded hardware polls.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(u64);

impl Deadline {
    /// A deadline `micros` microseconds from now.
    pub fn after_us(micros: u64) -> Self {
        Self(now_ns().saturating_add(micros.saturating_mul(1000)))
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        now_ns() >= self.0
    }
}

/// Busy-waits for `micros` microseconds (bounded like [`poll`] when the clock is broken).
pub fn delay_us(micros: u64) {
    // Waiting is the point: a poll that is never ready ends only by using up its budget.
    let _elapsed: Result<(), Timeout> = poll(micros, || None);
}

/// Polls `ready` until it returns `Some` or `budget_us` microseconds have passed, with an
/// iteration cap beside the deadline so the budget holds even when the clock does not
/// advance. This is the one poll helper of the kernel: every hardware wait goes through it.
pub fn poll<T>(budget_us: u64, mut ready: impl FnMut() -> Option<T>) -> Result<T, Timeout> {
    let deadline = Deadline::after_us(budget_us);
    let mut polls_left = budget_us.saturating_mul(MAX_POLLS_PER_US).max(1);
    loop {
        if let Some(value) = ready() {
            return Ok(value);
        }
        polls_left -= 1;
        if polls_left == 0 || deadline.expired() {
            // One last look: the deadline may have passed while we were descheduled.
            return ready().ok_or(Timeout { budget_us });
        }
        core::hint::spin_loop();
    }
}

/// A hardware poll ran out of its budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout {
    /// The budget that was exhausted, in microseconds.
    pub budget_us: u64,
}

impl core::fmt::Display for Timeout {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "no answer within {} us", self.budget_us)
    }
}

#[cfg(test)]
mod tests {
    use super::{delay_us, now_ns, poll};

    #[test]
    fn poll_returns_the_first_ready_value() {
        let mut calls = 0;
        let found = poll(1_000_000, || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(found, Ok(3));
    }

    #[test]
    fn poll_and_delay_keep_their_budget() {
        let start = now_ns();
        assert_eq!(poll(20_000, || None::<()>).unwrap_err().budget_us, 20_000);
        delay_us(10_000);
        let elapsed = now_ns() - start;
        assert!(elapsed >= 30_000_000, "only {elapsed} ns passed");
        assert!(elapsed < 5_000_000_000, "{elapsed} ns passed");
    }
}
