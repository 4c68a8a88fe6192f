//! Finding 4: a fault record that arrives while the records are being drained (in the slot
//! that was just cleared) is reported by the same drain, not left pending.

use super::unit;
use crate::engine::fault::{Access, FaultRecord, MAX_DRAIN_ROUNDS};
use crate::engine::registers::FaultStatus;
use crate::engine::sim::{QEMU_CAP, QEMU_ECAP};

/// The high half of a record: F, T (read), reason and source.
fn high(source: u16, reason: u64) -> u64 {
    (1 << 63) | (1 << 62) | (reason << 32) | u64::from(source)
}

#[test]
fn a_record_arriving_during_a_drain_is_not_lost() {
    let (mut unit, sim, _) = unit(QEMU_CAP, QEMU_ECAP);
    let mut reporter = unit.take_fault_reporter().unwrap();
    sim.frcd.set((0x1000, high(0x0300, 6)));
    // QEMU has one recording register: the next fault lands there as soon as F is cleared.
    sim.arriving
        .borrow_mut()
        .push_back((0x2000, high(0x0400, 5)));
    let mut seen: Vec<FaultRecord> = Vec::new();
    let summary = reporter.drain(|record| seen.push(record));
    let sources: Vec<(u16, u64)> = seen.iter().map(|r| (r.source, r.address)).collect();
    assert_eq!(sources, vec![(0x0300, 0x1000), (0x0400, 0x2000)]);
    assert_eq!((seen[0].access, seen[1].reason), (Access::Read, 5));
    assert_eq!(summary.records, 2);
    assert!(!summary.still_pending);
    assert_eq!(sim.frcd.get(), (0, 0), "a record was left pending");
    assert!(!FaultStatus::from_bits_retain(sim.fsts.get()).contains(FaultStatus::PPF));
}

#[test]
fn a_fault_storm_ends_the_drain_after_a_bounded_number_of_rounds() {
    let (mut unit, sim, _) = unit(QEMU_CAP, QEMU_ECAP);
    let mut reporter = unit.take_fault_reporter().unwrap();
    sim.frcd.set((0, high(1, 6)));
    for n in 0..1000 {
        sim.arriving.borrow_mut().push_back((0, high(n, 6)));
    }
    let summary = reporter.drain(|_| {});
    assert_eq!(summary.records, MAX_DRAIN_ROUNDS as usize);
    assert!(summary.still_pending);
    // The next drain carries on where this one stopped.
    assert_eq!(reporter.drain(|_| {}).records, MAX_DRAIN_ROUNDS as usize);
}
