//! Finding 3: queued invalidation recovers from FSTS.IQE (a rejected descriptor), ITE (a
//! device-TLB invalidation time-out) and ICE: the operation that hit the error reports it, the
//! error is counted and cleared, and later invalidations work again.

use std::rc::Rc;

use zerocopy::FromBytes;

use super::unit;
use crate::engine::invalidate::{InvalidationError, InvalidationMode, Invalidator};
use crate::engine::registers::FaultStatus;
use crate::engine::sim::{Cache, Event, QEMU_CAP, QEMU_ECAP, SharedMemory, SimUnit, StepClock};
use crate::engine::unit::{RemappingUnit, UnitError};
use crate::engine::{InvalidationErrorCounts, Registers};
use crate::entries::{ContextCacheScope, Drain, InvalidationDescriptor, IotlbScope};

/// An IOTLB descriptor with a reserved bit of `hi` set (QEMU's mask 0xf80): rejected.
fn reserved_bit_set() -> InvalidationDescriptor {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&0x12u64.to_le_bytes());
    bytes[8..].copy_from_slice(&0x80u64.to_le_bytes());
    InvalidationDescriptor::read_from_bytes(&bytes).unwrap()
}

/// Queues `descriptors` as one batch, the way every invalidation of the unit is queued.
fn submit(
    unit: &mut RemappingUnit<Rc<SimUnit>>,
    memory: &mut SharedMemory,
    descriptors: &[InvalidationDescriptor],
) -> Result<(), InvalidationError> {
    let Some(Invalidator::Queued(queue)) = unit.invalidator.as_mut() else {
        panic!("the unit uses queued invalidation");
    };
    let registers: &dyn Registers = &unit.registers;
    queue.submit(registers, memory, &StepClock::default(), descriptors)
}

fn enabled() -> (RemappingUnit<Rc<SimUnit>>, Rc<SimUnit>, SharedMemory) {
    let (mut unit, sim, mut memory) = unit(QEMU_CAP, QEMU_ECAP);
    unit.enable(&mut memory, &StepClock::default(), InvalidationMode::Queued)
        .unwrap();
    sim.events.borrow_mut().clear();
    sim.caches.borrow_mut().invalidations.clear();
    (unit, sim, memory)
}

fn clear_of_queue_errors(sim: &SimUnit) -> bool {
    !FaultStatus::from_bits_retain(sim.fsts.get())
        .intersects(FaultStatus::IQE | FaultStatus::ITE | FaultStatus::ICE)
}

/// A global IOTLB invalidation through the unit's ordinary path, and whether the sim saw it.
fn later_invalidation_works(
    unit: &mut RemappingUnit<Rc<SimUnit>>,
    sim: &SimUnit,
    memory: &mut SharedMemory,
) {
    sim.caches.borrow_mut().invalidations.clear();
    unit.invalidate_iotlb(memory, &StepClock::default(), IotlbScope::Global)
        .unwrap();
    let performed = sim.caches.borrow().invalidations.clone();
    assert_eq!(performed.len(), 1, "{performed:?}");
    assert_eq!(
        (performed[0].cache, performed[0].granularity),
        (Cache::Iotlb, 1)
    );
}

#[test]
fn a_rejected_descriptor_is_reported_and_later_invalidations_work() {
    let (mut unit, sim, mut memory) = enabled();
    // Enabling queued two batches of two descriptors: the bad one lands in slot 4.
    let error = submit(&mut unit, &mut memory, &[reserved_bit_set()]).unwrap_err();
    assert_eq!(error, InvalidationError::QueueError { head: 4 });
    assert!(sim.events.borrow().contains(&Event::Rejected(0x12, 0x80)));
    assert!(
        clear_of_queue_errors(&sim),
        "FSTS.IQE left set: {:#x}",
        sim.fsts.get()
    );
    assert_eq!(
        unit.invalidation_errors(),
        InvalidationErrorCounts {
            queue_errors: 1,
            ..Default::default()
        }
    );
    later_invalidation_works(&mut unit, &sim, &mut memory);
    later_invalidation_works(&mut unit, &sim, &mut memory);
}

#[test]
fn the_rest_of_a_rejected_batch_is_skipped_not_rejected_again() {
    let (mut unit, sim, mut memory) = enabled();
    let batch = [
        InvalidationDescriptor::context_cache(ContextCacheScope::Global),
        reserved_bit_set(),
        reserved_bit_set(),
        InvalidationDescriptor::iotlb(IotlbScope::Global, Drain::empty()),
    ];
    let error = submit(&mut unit, &mut memory, &batch).unwrap_err();
    assert_eq!(error, InvalidationError::QueueError { head: 5 });
    let rejected = sim
        .events
        .borrow()
        .iter()
        .filter(|event| matches!(event, Event::Rejected(..)))
        .count();
    assert_eq!(rejected, 1, "{:?}", sim.events.borrow());
    // The context-cache invalidation before the bad descriptor ran; what followed was skipped.
    let performed: Vec<Cache> = sim
        .caches
        .borrow()
        .invalidations
        .iter()
        .map(|i| i.cache)
        .collect();
    assert_eq!(performed, vec![Cache::Context]);
    assert_eq!(unit.invalidation_errors().queue_errors, 1);
    later_invalidation_works(&mut unit, &sim, &mut memory);
}

#[test]
fn an_invalidation_time_out_is_reported_and_later_invalidations_work() {
    let (mut unit, sim, mut memory) = enabled();
    sim.time_out_waits.set(1);
    let error = unit
        .invalidate_iotlb(&mut memory, &StepClock::default(), IotlbScope::Global)
        .unwrap_err();
    assert_eq!(
        error,
        UnitError::Invalidation(InvalidationError::DeviceTlbTimeout)
    );
    assert!(
        clear_of_queue_errors(&sim),
        "FSTS.ITE left set: {:#x}",
        sim.fsts.get()
    );
    assert_eq!(unit.invalidation_errors().time_outs, 1);
    later_invalidation_works(&mut unit, &sim, &mut memory);
}

#[test]
fn completion_errors_and_errors_left_from_before_are_cleared_and_counted() {
    let (mut unit, sim, mut memory) = enabled();
    // ICE stops nothing: the invalidation completes and the error is only counted.
    sim.fsts.set(FaultStatus::ICE.bits());
    later_invalidation_works(&mut unit, &sim, &mut memory);
    assert!(clear_of_queue_errors(&sim));
    // An IQE nobody handled (the queue is stopped) is repaired before the next batch.
    sim.fsts.set(FaultStatus::IQE.bits());
    later_invalidation_works(&mut unit, &sim, &mut memory);
    assert!(clear_of_queue_errors(&sim));
    assert_eq!(
        unit.invalidation_errors(),
        InvalidationErrorCounts {
            queue_errors: 1,
            time_outs: 0,
            completion_errors: 1,
        }
    );
}

#[test]
fn a_queue_that_keeps_failing_gives_up_in_bounded_time_and_recovers_later() {
    let (mut unit, sim, mut memory) = enabled();
    sim.fetch_errors.set(true);
    let error = unit
        .invalidate_iotlb(&mut memory, &StepClock::default(), IotlbScope::Global)
        .unwrap_err();
    assert_eq!(
        error,
        UnitError::Invalidation(InvalidationError::QueueError { head: 4 })
    );
    // The first sighting and two repairs, then it gave up with IQE left set.
    assert_eq!(unit.invalidation_errors().queue_errors, 3);
    assert!(FaultStatus::from_bits_retain(sim.fsts.get()).contains(FaultStatus::IQE));
    sim.fetch_errors.set(false);
    later_invalidation_works(&mut unit, &sim, &mut memory);
    assert!(clear_of_queue_errors(&sim));
    assert_eq!(unit.invalidation_errors().queue_errors, 3, "counted twice");
}

#[test]
fn fault_overflow_is_left_for_the_fault_reporter() {
    let (mut unit, sim, mut memory) = enabled();
    sim.fsts.set((FaultStatus::PFO | FaultStatus::ICE).bits());
    later_invalidation_works(&mut unit, &sim, &mut memory);
    assert_eq!(sim.fsts.get(), FaultStatus::PFO.bits());
}
