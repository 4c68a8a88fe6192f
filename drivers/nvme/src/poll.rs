//! The driver's one register poll: a deadline on the platform clock and an iteration cap
//! beside it, so a wait ends even when the clock stands still.

use crate::error::{NvmeError, Wait};
use crate::platform::Clock;

/// The iteration cap: at most this many checks per microsecond of budget.
///
/// TIMEOUT: a check is at least one uncached register read, which takes far more than 10 ns on
/// any machine (microseconds under emulation), so with a working clock the deadline ends a wait
/// first; with a clock that stands still the cap ends it after `budget_us * 100` reads.
pub(crate) const POLLS_PER_MICROSECOND: u64 = 100;

/// Calls `check` until it answers `Some`, fails, `budget_us` passes on the platform clock, or
/// it has been called `budget_us * POLLS_PER_MICROSECOND` times; the last is a
/// [`NvmeError::Timeout`] for `what`.
pub(crate) fn poll<P: Clock, T>(
    platform: &mut P,
    what: Wait,
    budget_us: u64,
    mut check: impl FnMut(&mut P) -> Result<Option<T>, NvmeError>,
) -> Result<T, NvmeError> {
    let cap = budget_us.saturating_mul(POLLS_PER_MICROSECOND).max(1);
    let start = platform.now_us();
    let mut polls = 0u64;
    loop {
        if let Some(value) = check(platform)? {
            return Ok(value);
        }
        polls += 1;
        if polls >= cap || platform.now_us().saturating_sub(start) > budget_us {
            // One last look: the budget may have run out while this CPU was elsewhere.
            return check(platform)?.ok_or(NvmeError::Timeout { what, budget_us });
        }
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that never advances; counts how often it was read.
    struct Frozen(u64);

    impl Clock for Frozen {
        fn now_us(&mut self) -> u64 {
            self.0 += 1;
            0
        }
    }

    /// A clock that advances 1 ms per read.
    struct Fast(u64);

    impl Clock for Fast {
        fn now_us(&mut self) -> u64 {
            self.0 += 1000;
            self.0
        }
    }

    #[test]
    fn a_frozen_clock_still_ends_the_wait() {
        let mut clock = Frozen(0);
        let mut checks = 0u64;
        let result: Result<(), _> = poll(&mut clock, Wait::Ready, 10, |_| {
            checks += 1;
            Ok(None)
        });
        assert_eq!(
            result,
            Err(NvmeError::Timeout {
                what: Wait::Ready,
                budget_us: 10
            })
        );
        assert_eq!(checks, 10 * POLLS_PER_MICROSECOND + 1);
    }

    #[test]
    fn the_deadline_ends_the_wait_with_a_working_clock() {
        let mut clock = Fast(0);
        let mut checks = 0u64;
        let result: Result<(), _> = poll(&mut clock, Wait::Disabled, 5000, |_| {
            checks += 1;
            Ok(None)
        });
        assert!(result.is_err());
        assert!(checks <= 7, "{checks} checks");
    }

    #[test]
    fn an_answer_or_an_error_ends_the_wait_at_once() {
        let mut clock = Fast(0);
        let mut checks = 0;
        let answer = poll(&mut clock, Wait::Ready, 1_000_000, |_| {
            checks += 1;
            Ok((checks == 3).then_some(checks))
        });
        assert_eq!(answer, Ok(3));
        let failed: Result<(), _> = poll(&mut clock, Wait::Ready, 1_000_000, |_| {
            Err(NvmeError::ControllerFatal { status: 3 })
        });
        assert_eq!(failed, Err(NvmeError::ControllerFatal { status: 3 }));
    }
}
