//! Support for the ownership property test: the independent model, the
//! invariants, and the calls.

pub(crate) mod invariants;
pub(crate) mod model;
pub(crate) mod ops;

/// The fault policy of every run: quarantine at the 3rd fault within 4 time units, 2 events
/// queued per device (small, so that quarantine and overflow happen often).
pub(crate) const THRESHOLD: u32 = 3;
pub(crate) const WINDOW: u64 = 4;
pub(crate) const CAPACITY: usize = 2;
