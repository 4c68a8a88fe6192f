//! Host tests of the engine's register sequencing against the simulated unit.

mod budgets;
mod caching_mode;
mod enable_order;
mod faults;
mod group_context;
mod map_rollback;
mod pass_through;
mod queue_errors;

use super::fault::Access;
use super::invalidate::InvalidationMode;
use super::registers::Global;
use super::sim::{Event, QEMU_CAP, QEMU_ECAP, SharedMemory, SimUnit, StepClock};
use super::unit::{RemappingUnit, UnitError};
use crate::entries::{
    ContextAddressWidth, ContextEntry, ContextTranslation, DomainId, DomainLimit, FaultProcessing,
    IotlbScope, SourceId,
};
use crate::paging::{Levels, TableMemory};

pub(super) fn unit(
    cap: u64,
    ecap: u64,
) -> (
    RemappingUnit<std::rc::Rc<SimUnit>>,
    std::rc::Rc<SimUnit>,
    SharedMemory,
) {
    let memory = SharedMemory::default();
    let sim = SimUnit::new(cap, ecap, memory.clone());
    (RemappingUnit::probe(sim.clone()).unwrap(), sim, memory)
}

fn entry(memory: &mut SharedMemory, domain: u16) -> ContextEntry {
    let table = memory.alloc_table().unwrap();
    let domain = DomainId::new(domain, DomainLimit::from_nd(6).unwrap()).unwrap();
    ContextEntry::new(
        ContextTranslation::MultiLevel { table },
        ContextAddressWidth::Bits39,
        domain,
        FaultProcessing::Report,
    )
    .unwrap()
}

#[test]
fn probe_picks_levels_from_sagaw() {
    let (unit39, _, _) = unit(QEMU_CAP, QEMU_ECAP);
    assert_eq!(unit39.levels(), Levels::Three);
    let (unit48, _, _) = unit(0x00d2_008c_222f_0606, QEMU_ECAP);
    assert_eq!(unit48.levels(), Levels::Four);
    let memory = SharedMemory::default();
    let dead = SimUnit::new(u64::MAX, u64::MAX, memory);
    assert_eq!(
        RemappingUnit::probe(dead).unwrap_err(),
        UnitError::NoRegisters
    );
    let memory = SharedMemory::default();
    let no_format = SimUnit::new(QEMU_CAP & !(0x1f << 8), QEMU_ECAP, memory);
    assert!(matches!(
        RemappingUnit::probe(no_format).unwrap_err(),
        UnitError::UnsupportedWidth { .. }
    ));
}

#[test]
fn queued_enable_sequence() {
    let (mut unit, sim, mut memory) = unit(QEMU_CAP, QEMU_ECAP);
    unit.enable(&mut memory, &StepClock::default(), InvalidationMode::Queued)
        .unwrap();
    let status = Global::from_bits_retain(sim.gsts.get());
    assert!(status.contains(Global::TE | Global::QIE));
    let events = sim.events.borrow();
    // SRTP, QIE, then two queued invalidations each closed by a wait, then TE.
    let queued: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Queued(lo, _) => Some(lo & 0xf),
            _ => None,
        })
        .collect();
    assert_eq!(queued, vec![1, 5, 2, 5]);
    assert!(
        !events.contains(&Event::IgnoredRegisterCommand),
        "register commands while QI is on: {events:?}"
    );
    let last = events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Gcmd(v) => Some(*v),
            _ => None,
        })
        .unwrap();
    assert_eq!(Global::from_bits_retain(last), Global::TE | Global::QIE);
    assert_eq!(unit.summary().invalidation, Some(InvalidationMode::Queued));
}

#[test]
fn register_enable_sequence_and_gcmd_preserves_enables() {
    let (mut unit, sim, mut memory) = unit(QEMU_CAP, QEMU_ECAP);
    unit.enable(
        &mut memory,
        &StepClock::default(),
        InvalidationMode::Register,
    )
    .unwrap();
    let events = sim.events.borrow();
    assert!(events.contains(&Event::RegisterContext(0xa000_0000_0000_0000)));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::RegisterIotlb(v) if v >> 60 == 0x9))
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Queued(..))));
    drop(events);
    // A later one-shot command keeps TE.
    unit.flush_write_buffer(&StepClock::default()).unwrap();
    assert!(Global::from_bits_retain(sim.gsts.get()).contains(Global::TE));
}

#[test]
fn queued_requires_ecap_qi() {
    let (mut unit, _, mut memory) = unit(QEMU_CAP, QEMU_ECAP & !0x2);
    assert_eq!(
        unit.enable(&mut memory, &StepClock::default(), InvalidationMode::Queued),
        Err(UnitError::QueuedUnavailable)
    );
}

#[test]
fn a_dead_unit_times_out_instead_of_hanging() {
    let (mut unit, sim, mut memory) = unit(QEMU_CAP, QEMU_ECAP);
    sim.hang.set(true);
    let error = unit
        .enable(
            &mut memory,
            &StepClock::default(),
            InvalidationMode::Register,
        )
        .unwrap_err();
    assert!(
        matches!(error, UnitError::Timeout(t) if t.what.contains("RTPS")),
        "{error:?}"
    );
}

#[test]
fn replacing_a_context_entry_invalidates_in_order() {
    for mode in [InvalidationMode::Register, InvalidationMode::Queued] {
        let (mut unit, sim, mut memory) = unit(QEMU_CAP, QEMU_ECAP);
        let clock = StepClock::default();
        unit.enable(&mut memory, &clock, mode).unwrap();
        let source = SourceId::new(3, 0, 0).unwrap();
        let first = entry(&mut memory, 7);
        sim.events.borrow_mut().clear();
        unit.set_context(&mut memory, &clock, source, first)
            .unwrap();
        // Not-present to present without caching mode: nothing to invalidate.
        assert!(
            sim.events.borrow().is_empty(),
            "{mode:?}: {:?}",
            sim.events.borrow()
        );
        assert_eq!(unit.context_entry(&memory, source), Some(first));
        let second = entry(&mut memory, 9);
        unit.set_context(&mut memory, &clock, source, second)
            .unwrap();
        let kinds: Vec<String> = sim
            .events
            .borrow()
            .iter()
            .map(|e| format!("{e:?}"))
            .collect();
        match mode {
            // Device-selective context (CIRG 3, DID 7, SID 0x300), then DSI IOTLB of DID 7.
            InvalidationMode::Register => {
                assert_eq!(
                    sim.events.borrow()[0],
                    Event::RegisterContext((1 << 63) | (3 << 61) | (0x300 << 16) | 7),
                    "{kinds:?}"
                );
                assert!(
                    matches!(sim.events.borrow()[1], Event::RegisterIotlb(v) if (v >> 60) & 3 == 2 && (v >> 32) & 0xffff == 7),
                    "{kinds:?}"
                );
            }
            InvalidationMode::Queued => {
                let events = sim.events.borrow();
                assert!(
                    matches!(events[0], Event::Queued(lo, _) if lo & 0xf == 1 && (lo >> 4) & 3 == 3 && (lo >> 16) & 0xffff == 7 && (lo >> 32) & 0xffff == 0x300),
                    "{kinds:?}"
                );
                assert!(
                    matches!(events[2], Event::Queued(lo, _) if lo & 0xf == 2 && (lo >> 4) & 3 == 2 && (lo >> 16) & 0xffff == 7),
                    "{kinds:?}"
                );
            }
        }
        assert_eq!(unit.context_entry(&memory, source), Some(second));
        unit.set_context(&mut memory, &clock, source, ContextEntry::NOT_PRESENT)
            .unwrap();
        assert_eq!(
            unit.context_entry(&memory, source).map(|e| e.is_present()),
            Some(false)
        );
    }
}

#[test]
fn caching_mode_invalidates_new_entries() {
    let (mut unit, sim, mut memory) = unit(QEMU_CAP | (1 << 7), QEMU_ECAP);
    let clock = StepClock::default();
    unit.enable(&mut memory, &clock, InvalidationMode::Queued)
        .unwrap();
    let fresh = entry(&mut memory, 5);
    sim.events.borrow_mut().clear();
    unit.set_context(&mut memory, &clock, SourceId::new(0, 4, 0).unwrap(), fresh)
        .unwrap();
    let types: Vec<u64> = sim
        .events
        .borrow()
        .iter()
        .filter_map(|e| match e {
            Event::Queued(lo, _) => Some(lo & 0xf),
            _ => None,
        })
        .collect();
    assert_eq!(types, vec![1, 5, 2, 5]);
}

#[test]
fn page_selective_iotlb_through_registers_writes_iva_first() {
    let (mut unit, sim, mut memory) = unit(QEMU_CAP, QEMU_ECAP);
    let clock = StepClock::default();
    unit.enable(&mut memory, &clock, InvalidationMode::Register)
        .unwrap();
    let domain = DomainId::new(3, DomainLimit::from_nd(6).unwrap()).unwrap();
    let range = crate::entries::PageSelective::covering(
        crate::entries::Iova::new(0x20_0000).unwrap(),
        crate::entries::Iova::new(0x3f_ffff).unwrap(),
    );
    unit.invalidate_iotlb(
        &mut memory,
        &clock,
        IotlbScope::Pages {
            domain,
            range,
            hint: crate::entries::InvalidationHint::AllEntries,
        },
    )
    .unwrap();
    assert_eq!(sim.iva.get(), 0x20_0000 | 9);
}

#[test]
fn fault_records_drain_and_clear() {
    let (mut unit, sim, _) = unit(QEMU_CAP, QEMU_ECAP);
    let mut reporter = unit.take_fault_reporter().unwrap();
    assert!(
        unit.take_fault_reporter().is_none(),
        "one reporter per unit"
    );
    sim.frcd
        .set((0x0abc_d123, (1 << 63) | (1 << 62) | (6 << 32) | 0x0300));
    sim.fsts.set(super::registers::FaultStatus::PFO.bits());
    let mut seen = Vec::new();
    let summary = reporter.drain(|record| seen.push(record));
    assert_eq!(summary.records, 1);
    assert!(summary.overflowed);
    assert_eq!(seen[0].address, 0x0abc_d000);
    assert_eq!(seen[0].access, Access::Read);
    assert_eq!(seen[0].reason, 6);
    assert_eq!(sim.frcd.get(), (0, 0), "F must be cleared");
    assert_eq!(sim.fsts.get(), 0, "PFO must be cleared");
    assert_eq!(reporter.drain(|_| panic!("no second report")).records, 0);
}

#[test]
fn disable_turns_translation_and_the_queue_off() {
    let (mut unit, sim, mut memory) = unit(QEMU_CAP, QEMU_ECAP);
    let clock = StepClock::default();
    unit.enable(&mut memory, &clock, InvalidationMode::Queued)
        .unwrap();
    unit.disable(&clock).unwrap();
    let status = Global::from_bits_retain(sim.gsts.get());
    assert!(
        !status.contains(Global::TE) && !status.contains(Global::QIE),
        "{status:?}"
    );
    assert_eq!(unit.summary().invalidation, None);
}
