//! Finding 2: every wait of the engine ends with a timeout error when the clock never advances
//! and the register bit or status word never changes.

use super::unit;
use crate::engine::invalidate::InvalidationError;
use crate::engine::invalidate::InvalidationMode;
use crate::engine::sim::{FrozenClock, QEMU_CAP, QEMU_ECAP, StepClock};
use crate::engine::unit::UnitError;
use crate::entries::{ContextCacheScope, IotlbScope};

#[test]
fn a_status_bit_that_never_flips_times_out_without_a_clock() {
    let (mut unit, sim, mut memory) = unit(QEMU_CAP, QEMU_ECAP);
    sim.hang.set(true);
    let error = unit
        .enable(
            &mut memory,
            &FrozenClock::default(),
            InvalidationMode::Register,
        )
        .unwrap_err();
    assert!(
        matches!(error, UnitError::Timeout(t) if t.what.contains("RTPS")),
        "{error:?}"
    );
}

#[test]
fn register_invalidations_time_out_without_a_clock() {
    let (mut unit, sim, mut memory) = unit(QEMU_CAP, QEMU_ECAP);
    unit.enable(
        &mut memory,
        &StepClock::default(),
        InvalidationMode::Register,
    )
    .unwrap();
    sim.hang.set(true);
    let clock = FrozenClock::default();
    let error = unit
        .invalidate_context(&mut memory, &clock, ContextCacheScope::Global)
        .unwrap_err();
    assert!(
        matches!(error, UnitError::Invalidation(InvalidationError::Timeout(t)) if t.what.contains("CCMD")),
        "{error:?}"
    );
    let error = unit
        .invalidate_iotlb(&mut memory, &clock, IotlbScope::Global)
        .unwrap_err();
    assert!(
        matches!(error, UnitError::Invalidation(InvalidationError::Timeout(t)) if t.what.contains("IVT")),
        "{error:?}"
    );
}

#[test]
fn a_queued_wait_whose_status_never_arrives_times_out_without_a_clock() {
    let (mut unit, sim, mut memory) = unit(QEMU_CAP, QEMU_ECAP);
    unit.enable(&mut memory, &StepClock::default(), InvalidationMode::Queued)
        .unwrap();
    sim.hang.set(true);
    let error = unit
        .invalidate_iotlb(&mut memory, &FrozenClock::default(), IotlbScope::Global)
        .unwrap_err();
    assert!(
        matches!(
            error,
            UnitError::Invalidation(InvalidationError::Timeout(_))
        ),
        "{error:?}"
    );
}
