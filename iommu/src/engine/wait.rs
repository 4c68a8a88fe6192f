//! Waiting for hardware: the one poll helper, its clock and its budgets. Every wait on a
//! register bit or a status word in the engine (and, through `time::poll`, in the kernel) goes
//! through [`poll`], so every wait ends, even when the clock does not advance.

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
    /// How many times the condition was checked before giving up. When this reached
    /// `budget_us * POLLS_PER_MICROSECOND` the iteration cap, not the clock, ended the wait.
    pub polls: u64,
}

impl core::fmt::Display for PollTimeout {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} did not complete within {} us ({} polls)",
            self.what, self.budget_us, self.polls
        )
    }
}

/// The iteration cap beside every deadline: at most this many checks per microsecond of budget.
///
/// TIMEOUT: one check is at least a register or memory read plus a `pause`, which takes 10 ns or
/// more on any x86 CPU (far more under emulation), so with a working clock the deadline always
/// ends a wait first. When the clock is broken (TSC calibration failed and time stands still)
/// the cap ends it after `budget_us * 100` checks: about the budget at 10 ns per check, a small
/// multiple of it when checks are slower, but never forever.
pub const POLLS_PER_MICROSECOND: u64 = 100;

/// The engine's one poll helper: calls `ready` until it gives `Some`, until `budget_us` has
/// passed on `clock`, or until `ready` has been called `budget_us * POLLS_PER_MICROSECOND`
/// times, whichever comes first. The cap is what bounds the wait when `clock` does not advance.
pub fn poll<C: Clock + ?Sized, T>(
    clock: &C,
    what: &'static str,
    budget_us: u64,
    mut ready: impl FnMut() -> Option<T>,
) -> Result<T, PollTimeout> {
    let cap = budget_us.saturating_mul(POLLS_PER_MICROSECOND).max(1);
    let start = clock.now_us();
    let mut polls: u64 = 0;
    loop {
        if let Some(value) = ready() {
            return Ok(value);
        }
        polls += 1;
        if polls >= cap || clock.now_us().saturating_sub(start) > budget_us {
            // One last look: the budget may have run out while this CPU was elsewhere.
            return ready().ok_or(PollTimeout {
                what,
                budget_us,
                polls: polls + 1,
            });
        }
        core::hint::spin_loop();
    }
}

/// TIMEOUT: register-interface commands and status bits complete in microseconds on real
/// hardware and synchronously in QEMU; 100 ms means the unit is not answering.
pub const COMMAND_BUDGET_US: u64 = 100_000;

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A clock that never advances (a failed TSC calibration). It panics when read far more
    /// often than a capped poll of these tests reads it, so a missing cap fails, not hangs.
    #[derive(Default)]
    struct Frozen(Cell<u64>);

    impl Clock for Frozen {
        fn now_us(&self) -> u64 {
            self.0.set(self.0.get() + 1);
            assert!(self.0.get() < 10_000_000, "poll ignored its iteration cap");
            0
        }
    }

    #[test]
    fn a_frozen_clock_still_ends_the_wait_at_the_iteration_cap() {
        let checks = Cell::new(0u64);
        let result = poll(&Frozen::default(), "a bit that never flips", 1_000, || {
            checks.set(checks.get() + 1);
            assert!(
                checks.get() <= 1_000 * POLLS_PER_MICROSECOND + 1,
                "cap ignored"
            );
            None::<()>
        });
        let timeout = result.unwrap_err();
        assert_eq!(timeout.what, "a bit that never flips");
        assert_eq!(timeout.budget_us, 1_000);
        assert_eq!(timeout.polls, 1_000 * POLLS_PER_MICROSECOND + 1);
        assert_eq!(checks.get(), timeout.polls);
    }

    #[test]
    fn a_zero_budget_still_looks_once_and_a_ready_value_wins() {
        assert_eq!(poll(&Frozen::default(), "ready", 0, || Some(7)), Ok(7));
        assert!(poll(&Frozen::default(), "never", 0, || None::<()>).is_err());
        let frozen = Frozen::default();
        let dynamic: &dyn Clock = &frozen;
        let mut left = 3;
        let value = poll(dynamic, "soon", 10, || {
            left -= 1;
            (left == 0).then_some("done")
        });
        assert_eq!(value, Ok("done"));
    }
}
