//! Host tests of interrupt remapping's register sequencing against the simulated unit (which
//! panics on any GCMD write with CFI set).

use super::*;
use crate::engine::invalidate::InvalidationMode;
use crate::engine::sim::{Event, QEMU_CAP, QEMU_ECAP, SharedMemory, SimUnit, StepClock};
use crate::entries::{InterruptVector, RemappableMessage, SourceId, SourceValidation};
use std::rc::Rc;

type Unit = RemappingUnit<Rc<SimUnit>>;

fn probed(ecap: u64) -> (Unit, Rc<SimUnit>, SharedMemory) {
    let memory = SharedMemory::default();
    let sim = SimUnit::new(QEMU_CAP, ecap, memory.clone());
    (RemappingUnit::probe(sim.clone()).unwrap(), sim, memory)
}

/// A unit with translation on through `mode`, its events so far forgotten.
fn enabled(mode: InvalidationMode) -> (Unit, Rc<SimUnit>, SharedMemory) {
    let (mut unit, sim, mut memory) = probed(QEMU_ECAP);
    unit.enable(&mut memory, &StepClock::default(), mode)
        .unwrap();
    sim.events.borrow_mut().clear();
    (unit, sim, memory)
}

fn size(entries: u32) -> InterruptTableSize {
    InterruptTableSize::new(entries).unwrap()
}

fn index(raw: u16) -> InterruptIndex {
    InterruptIndex::new(raw)
}

fn msi(vector: u8, device: u8) -> RemappedInterrupt {
    let source = SourceValidation::exact(SourceId::new(0, device, 0).unwrap());
    RemappedInterrupt::fixed(InterruptVector::new(vector).unwrap(), 0, source)
}

fn gcmd_writes(sim: &SimUnit) -> Vec<Global> {
    sim.events
        .borrow()
        .iter()
        .filter_map(|event| match event {
            Event::Gcmd(value) => Some(Global::from_bits_retain(*value)),
            _ => None,
        })
        .collect()
}

/// The low words of the interrupt-entry-cache descriptors queued so far.
fn iec_descriptors(sim: &SimUnit) -> Vec<u64> {
    sim.events
        .borrow()
        .iter()
        .filter_map(|event| match event {
            Event::Queued(lo, hi) if lo & 0xf == 4 => {
                assert_eq!(*hi, 0, "the IEC descriptor's high half is reserved");
                Some(*lo)
            }
            _ => None,
        })
        .collect()
}

fn enable(unit: &mut Unit, memory: &mut SharedMemory, entries: u32) -> InterruptRemapping {
    InterruptRemapping::enable(unit, memory, &StepClock::default(), size(entries)).unwrap()
}

#[test]
fn enable_sequence_keeps_translation_and_the_queue_on() {
    let (mut unit, sim, mut memory) = enabled(InvalidationMode::Queued);
    let remapping = enable(&mut unit, &mut memory, 256);
    // IRTA_REG = table | S = 7 (256 entries), EIME (bit 11) clear; SIRTP latched it.
    let latched = sim.interrupt_table.get().expect("SIRTP latched a table");
    assert_eq!(latched, sim.irta.get());
    assert_eq!(latched & 0xfff, 7);
    let on = Global::TE | Global::QIE;
    assert_eq!(
        gcmd_writes(&sim),
        vec![on | Global::SIRTP, on | Global::IRE]
    );
    // Between the two: one global IEC invalidation, closed by a wait.
    let kinds: Vec<u64> = sim
        .events
        .borrow()
        .iter()
        .map(|event| match event {
            Event::Gcmd(_) => 0,
            Event::Queued(lo, _) => lo & 0xf,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kinds, vec![0, 4, 5, 0]);
    assert_eq!(iec_descriptors(&sim), vec![0x4]);
    assert!(Global::from_bits_retain(sim.gsts.get()).contains(on | Global::IRE));
    assert!(unit.interrupt_remapping_enabled());
    assert_eq!((remapping.entries(), remapping.in_use()), (256, 0));
    for raw in 0..256 {
        assert!(!remapping.entry(&memory, index(raw)).unwrap().is_present());
    }
    assert_eq!(remapping.entry(&memory, index(256)), None);
}

#[test]
fn register_based_invalidation_is_refused() {
    let (mut unit, sim, mut memory) = enabled(InvalidationMode::Register);
    let result = InterruptRemapping::enable(&mut unit, &mut memory, &StepClock::default(), size(8));
    assert_eq!(result.unwrap_err(), InterruptRemappingError::QueueRequired);
    assert!(gcmd_writes(&sim).is_empty());
    assert_eq!(sim.irta.get(), 0);
}

#[test]
fn units_without_ecap_ir_or_not_enabled_are_refused() {
    let (mut unit, _, mut memory) = probed(QEMU_ECAP & !(1 << 3));
    unit.enable(&mut memory, &StepClock::default(), InvalidationMode::Queued)
        .unwrap();
    let result = InterruptRemapping::enable(&mut unit, &mut memory, &StepClock::default(), size(8));
    assert_eq!(result.unwrap_err(), InterruptRemappingError::Unsupported);
    let (mut idle, _, mut memory) = probed(QEMU_ECAP);
    let result = InterruptRemapping::enable(&mut idle, &mut memory, &StepClock::default(), size(8));
    assert_eq!(
        result.unwrap_err(),
        InterruptRemappingError::Unit(UnitError::NotEnabled)
    );
}

#[test]
fn entries_are_written_and_invalidated_one_by_one() {
    let (mut unit, sim, mut memory) = enabled(InvalidationMode::Queued);
    let mut remapping = enable(&mut unit, &mut memory, 8);
    sim.events.borrow_mut().clear();
    let clock = StepClock::default();
    let a = remapping
        .allocate(&mut unit, &mut memory, &clock, msi(48, 4))
        .unwrap();
    let b = remapping
        .allocate(&mut unit, &mut memory, &clock, msi(49, 5))
        .unwrap();
    assert_eq!((a, b), (index(0), index(1)));
    assert_eq!(
        remapping.entry(&memory, a),
        Some(InterruptEntry::remapped(msi(48, 4)))
    );
    assert_eq!(
        remapping.entry(&memory, b),
        Some(InterruptEntry::remapped(msi(49, 5)))
    );
    // Index-selective (G = 1) invalidations of exactly the entries written.
    assert_eq!(
        iec_descriptors(&sim),
        vec![0x0000_0000_0000_0014, 0x0000_0001_0000_0014]
    );
    remapping
        .release(&mut unit, &mut memory, &clock, a)
        .unwrap();
    assert_eq!(
        remapping.entry(&memory, a),
        Some(InterruptEntry::NOT_PRESENT)
    );
    assert_eq!(iec_descriptors(&sim).last(), Some(&0x0000_0000_0000_0014));
    assert_eq!(
        remapping.release(&mut unit, &mut memory, &clock, a),
        Err(InterruptRemappingError::NotAllocated(a))
    );
    // The freed index is handed out again; the other entry is untouched.
    let c = remapping
        .allocate(&mut unit, &mut memory, &clock, msi(50, 6))
        .unwrap();
    assert_eq!(c, a);
    assert_eq!(remapping.in_use(), 2);
    assert_eq!(
        remapping.entry(&memory, b).map(InterruptEntry::vector),
        Some(49)
    );
    // Nothing turned remapping off or touched the other enables.
    assert!(gcmd_writes(&sim).is_empty());
}

#[test]
fn the_table_runs_out_and_foreign_indices_are_refused() {
    let (mut unit, _, mut memory) = enabled(InvalidationMode::Queued);
    let mut remapping = enable(&mut unit, &mut memory, 4);
    let clock = StepClock::default();
    for expected in 0..4 {
        let got = remapping.allocate(&mut unit, &mut memory, &clock, msi(48, 4));
        assert_eq!(got, Ok(index(expected)));
    }
    assert_eq!(
        remapping.allocate(&mut unit, &mut memory, &clock, msi(48, 4)),
        Err(InterruptRemappingError::Exhausted)
    );
    remapping
        .release(&mut unit, &mut memory, &clock, index(2))
        .unwrap();
    assert_eq!(
        remapping.allocate(&mut unit, &mut memory, &clock, msi(48, 4)),
        Ok(index(2))
    );
    for foreign in [4, 200, 0xffff] {
        assert_eq!(
            remapping.release(&mut unit, &mut memory, &clock, index(foreign)),
            Err(InterruptRemappingError::NotAllocated(index(foreign)))
        );
    }
}

#[test]
fn the_message_names_the_entry_allocated() {
    let (mut unit, _, mut memory) = enabled(InvalidationMode::Queued);
    let mut remapping = enable(&mut unit, &mut memory, 16);
    let clock = StepClock::default();
    for vector in 48..52 {
        let handle = remapping
            .allocate(&mut unit, &mut memory, &clock, msi(vector, 4))
            .unwrap();
        let message = RemappableMessage::new(handle);
        let decoded = RemappableMessage::decode(message.address(), message.data()).unwrap();
        let entry = remapping.entry(&memory, decoded).unwrap();
        assert_eq!((entry.is_present(), entry.vector()), (true, vector));
    }
}

#[test]
fn a_dead_unit_times_out() {
    let (mut unit, sim, mut memory) = enabled(InvalidationMode::Queued);
    sim.hang.set(true);
    let result = InterruptRemapping::enable(&mut unit, &mut memory, &StepClock::default(), size(8));
    assert!(
        matches!(
            result,
            Err(InterruptRemappingError::Unit(UnitError::Timeout(_)))
        ),
        "{result:?}"
    );
}

#[test]
fn remapping_left_on_by_firmware_is_turned_off_first() {
    let (mut unit, sim, mut memory) = enabled(InvalidationMode::Queued);
    sim.interrupt_table.set(Some(0xdead_0007));
    sim.gsts.set(sim.gsts.get() | Global::IRE.bits());
    enable(&mut unit, &mut memory, 8);
    let on = Global::TE | Global::QIE;
    assert_eq!(
        gcmd_writes(&sim),
        vec![on, on | Global::SIRTP, on | Global::IRE]
    );
    assert_ne!(sim.interrupt_table.get(), Some(0xdead_0007));
}

#[test]
fn disable_keeps_translation_and_frees_the_table() {
    let (mut unit, sim, mut memory) = enabled(InvalidationMode::Queued);
    let remapping = enable(&mut unit, &mut memory, 8);
    let table = sim.interrupt_table.get().unwrap() & !0xfff;
    remapping
        .disable(&mut unit, &mut memory, &StepClock::default())
        .unwrap();
    let status = Global::from_bits_retain(sim.gsts.get());
    assert!(status.contains(Global::TE | Global::QIE) && !status.contains(Global::IRE));
    assert!(!memory.0.borrow().contains_key(&table), "table not freed");
}

#[test]
fn unit_disable_turns_remapping_off_before_the_queue() {
    let (mut unit, sim, mut memory) = enabled(InvalidationMode::Queued);
    enable(&mut unit, &mut memory, 8);
    sim.events.borrow_mut().clear();
    unit.disable(&StepClock::default()).unwrap();
    assert_eq!(
        gcmd_writes(&sim),
        vec![Global::TE | Global::QIE, Global::QIE, Global::empty()]
    );
    assert_eq!(sim.gsts.get() & Global::IRE.bits(), 0);
}
