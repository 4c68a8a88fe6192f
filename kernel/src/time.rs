//! The monotonic clock: the TSC, calibrated once at boot against the PIT. Timestamps are
//! nanoseconds since calibration; before it (or if it failed), 0. Waits go through the remapping
//! engine's poll helper, whose iteration cap ends them even while the clock stands still.

use crate::arch::{io, pit};
use core::sync::atomic::{AtomicU64, Ordering};
use moat_iommu::engine::{self, Clock};

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
///
/// The composition root's alone, once: calibrating again would move the clock's origin.
pub fn calibrate(_root: &crate::privilege::Privileged) -> Result<Calibration, pit::PitError> {
    if TSC_HZ.load(Ordering::Relaxed) != 0 {
        return Err(pit::PitError::AlreadyCalibrated);
    }
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

/// The monotonic clock as the poll helper's [`Clock`]: microseconds since calibration. Without a
/// calibration it reads 0 forever, and the helper's iteration cap bounds every wait.
#[derive(Clone, Copy, Debug)]
pub struct Monotonic;

impl Clock for Monotonic {
    fn now_us(&self) -> u64 {
        now_ns() / 1000
    }
}

/// Busy-waits for `micros` microseconds. Without a working clock the poll helper's iteration cap
/// ends the wait instead (after roughly the same time), so a failed calibration cannot hang it.
pub fn delay_us(micros: u64) {
    // Nothing is awaited: the wait always runs out, and running out is the delay.
    let _elapsed = engine::poll(&Monotonic, "delay", micros, || None::<()>);
}

/// Polls `ready` until it returns `Some` or `budget_us` microseconds have passed. Every hardware
/// wait of the kernel goes through here, and this goes through the engine's one poll helper, so
/// the budget holds with a broken clock too (an iteration cap beside the deadline).
pub fn poll<T>(budget_us: u64, ready: impl FnMut() -> Option<T>) -> Result<T, Timeout> {
    engine::poll(&Monotonic, "kernel poll", budget_us, ready).map_err(|timeout| Timeout {
        budget_us: timeout.budget_us,
    })
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
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Runs `wait` on its own thread and fails if it has not returned within 30 s: without an
    /// iteration cap these waits spin forever on the host, where the TSC is never calibrated.
    fn returns_in_time<T: Send + 'static>(wait: impl FnOnce() -> T + Send + 'static) -> T {
        let (done, finished) = mpsc::channel();
        std::thread::spawn(move || {
            let _receiver_gone = done.send(wait());
        });
        finished
            .recv_timeout(Duration::from_secs(30))
            .expect("the wait did not end: its budget does not hold without a clock")
    }

    #[test]
    fn polls_and_delays_end_without_a_calibrated_clock() {
        assert_eq!(tsc_hz(), 0, "host tests never calibrate the TSC");
        let result = returns_in_time(|| poll(1_000, || None::<()>));
        assert_eq!(result, Err(Timeout { budget_us: 1_000 }));
        returns_in_time(|| delay_us(1_000));
        assert_eq!(returns_in_time(|| poll(1_000, || Some(3))), Ok(3));
    }

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
