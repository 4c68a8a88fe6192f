//! Review finding (RMRR order): context entries the caller writes between `prepare` and
//! `enable_translation` are all present the moment GSTS.TES turns on, their invalidations
//! (caching mode: under DID 0) done with translation still off. The simulated unit records the
//! present entries at the rising edge of TES, so the old order (translation on, then the
//! entries) shows up as translation starting over an empty root table.

use super::unit;
use crate::engine::invalidate::InvalidationMode;
use crate::engine::sim::{Event, Lookup, QEMU_CAP, QEMU_ECAP, SharedMemory, SimUnit, StepClock};
use crate::engine::unit::UnitError;
use crate::entries::{
    ContextAddressWidth, ContextEntry, ContextTranslation, DomainId, DomainLimit, FaultProcessing,
    SourceId,
};
use crate::paging::TableMemory;

const CACHING_MODE: u64 = 1 << 7;

/// What bring-up writes before translation: two requester IDs in the blocking domain (DID 1)
/// and one, on another bus, in an RMRR identity domain (DID 2).
fn planned(memory: &mut SharedMemory) -> Vec<(SourceId, ContextEntry)> {
    let blocking = memory.alloc_table().unwrap();
    let identity = memory.alloc_table().unwrap();
    let entry = |table, domain| {
        let domain = DomainId::new(domain, DomainLimit::from_nd(6).unwrap()).unwrap();
        ContextEntry::new(
            ContextTranslation::MultiLevel { table },
            ContextAddressWidth::Bits39,
            domain,
            FaultProcessing::Report,
        )
        .unwrap()
    };
    vec![
        (SourceId::new(0, 2, 0).unwrap(), entry(blocking, 1)),
        (SourceId::new(0, 0x14, 0).unwrap(), entry(identity, 2)),
        (SourceId::new(3, 0, 0).unwrap(), entry(blocking, 1)),
    ]
}

/// (requester ID, DID) of `plan`, in requester-ID order as the simulator records them.
fn expected(plan: &[(SourceId, ContextEntry)]) -> Vec<(u16, u16)> {
    let mut expected: Vec<(u16, u16)> = plan
        .iter()
        .map(|(source, entry)| (source.get(), entry.domain_id()))
        .collect();
    expected.sort_unstable();
    expected
}

/// The present entries at each rising edge of GSTS.TES.
fn translation_turned_on(sim: &SimUnit) -> Vec<Vec<(u16, u16)>> {
    sim.events
        .borrow()
        .iter()
        .filter_map(|event| match event {
            Event::TranslationOn(present) => Some(present.clone()),
            _ => None,
        })
        .collect()
}

/// Position in the event log and requester ID of each device-selective context-cache
/// invalidation under DID 0 (the caching-mode invalidation of a not-present entry).
fn not_present_invalidations(sim: &SimUnit) -> Vec<(usize, u16)> {
    sim.events
        .borrow()
        .iter()
        .enumerate()
        .filter_map(|(position, event)| match *event {
            Event::RegisterContext(v) if (v >> 61) & 3 == 3 && v & 0xffff == 0 => {
                Some((position, (v >> 16) as u16))
            }
            Event::Queued(lo, _) if lo & 0xf == 1 && (lo >> 4) & 3 == 3 => {
                ((lo >> 16) & 0xffff == 0).then_some((position, (lo >> 32) as u16))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn entries_written_after_prepare_are_present_when_translation_turns_on() {
    for mode in [InvalidationMode::Register, InvalidationMode::Queued] {
        for cap in [QEMU_CAP, QEMU_CAP | CACHING_MODE] {
            let (mut unit, sim, mut memory) = unit(cap, QEMU_ECAP);
            let clock = StepClock::default();
            let plan = planned(&mut memory);
            unit.prepare(&mut memory, &clock, mode).unwrap();
            for &(source, entry) in &plan {
                unit.set_context(&mut memory, &clock, source, entry)
                    .unwrap();
            }
            unit.enable_translation(&clock).unwrap();

            // One rising edge of TES, and every planned entry already there at that moment.
            // If `prepare` set TE, the edge would come first and find an empty root table.
            assert_eq!(
                translation_turned_on(&sim),
                vec![expected(&plan)],
                "{mode:?}, CAP {cap:#x}: translation must start over every planned entry"
            );
            assert!(unit.summary().translating);
            for &(source, entry) in &plan {
                assert_eq!(
                    sim.dma(source.get()),
                    Lookup::Translated {
                        domain: entry.domain_id()
                    },
                    "{mode:?}, CAP {cap:#x}: {source:?}"
                );
            }
            // Caching mode: each entry's DID-0 invalidation ran before translation started
            // (invalidations work once the interface is on, with TE still 0).
            if cap & CACHING_MODE != 0 {
                let turned_on = sim
                    .events
                    .borrow()
                    .iter()
                    .position(|e| matches!(e, Event::TranslationOn(_)))
                    .unwrap();
                let invalidated = not_present_invalidations(&sim);
                let sources: Vec<u16> = invalidated.iter().map(|&(_, source)| source).collect();
                let written: Vec<u16> = plan.iter().map(|(source, _)| source.get()).collect();
                assert_eq!(sources, written, "{mode:?}");
                assert!(
                    invalidated.iter().all(|&(at, _)| at < turned_on),
                    "{mode:?}: a DID-0 invalidation came after TE: {:?}",
                    sim.events.borrow()
                );
            }
            assert_eq!(sim.caches.borrow().violations, Vec::<String>::new());
        }
    }
}

/// The check above tells the two orders apart: the old flow (enable, then write) turns
/// translation on over an empty root table, the window in which an RMRR device faulted.
#[test]
fn the_old_order_starts_translation_without_the_entries() {
    let (mut unit, sim, mut memory) = unit(QEMU_CAP, QEMU_ECAP);
    let clock = StepClock::default();
    let plan = planned(&mut memory);
    unit.enable(&mut memory, &clock, InvalidationMode::Queued)
        .unwrap();
    for &(source, entry) in &plan {
        unit.set_context(&mut memory, &clock, source, entry)
            .unwrap();
    }
    let turned_on = translation_turned_on(&sim);
    assert_eq!(turned_on, vec![Vec::new()]);
    assert_ne!(turned_on, vec![expected(&plan)]);
}

#[test]
fn prepare_leaves_translation_off_and_enable_translation_needs_it() {
    let (mut unit, sim, mut memory) = unit(QEMU_CAP, QEMU_ECAP);
    let clock = StepClock::default();
    assert_eq!(unit.enable_translation(&clock), Err(UnitError::NotEnabled));
    assert!(sim.events.borrow().is_empty(), "{:?}", sim.events.borrow());
    unit.prepare(&mut memory, &clock, InvalidationMode::Queued)
        .unwrap();
    assert!(!unit.summary().translating);
    assert!(unit.root_table().is_some());
    assert!(translation_turned_on(&sim).is_empty());
    // A unit turned off again must be prepared again (its queue is gone).
    unit.disable(&clock).unwrap();
    assert_eq!(unit.enable_translation(&clock), Err(UnitError::NotEnabled));
}
