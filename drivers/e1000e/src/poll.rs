//! The crate's one poll helper: a condition checked until it holds, within a deadline AND an
//! iteration cap, so that a stuck clock cannot turn it into an endless loop.

use crate::Clock;

/// Checks `ready` until it returns true; `Err(budget_us)` when `budget_us` passed or
/// `iterations` checks failed, whichever comes first.
pub(crate) fn poll<P: Clock>(
    platform: &mut P,
    budget_us: u64,
    iterations: u64,
    mut ready: impl FnMut(&mut P) -> bool,
) -> Result<(), u64> {
    let start = platform.now_us();
    for _ in 0..iterations {
        if ready(platform) {
            return Ok(());
        }
        if platform.now_us().saturating_sub(start) > budget_us {
            break;
        }
    }
    Err(budget_us)
}
