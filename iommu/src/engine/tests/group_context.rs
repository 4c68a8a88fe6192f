//! A group's requester IDs move together (`set_group_context`): all of them reach the new entry,
//! or, when one write fails, every ID is back at its old entry (the failing one included) and
//! the error says so; if even that fails, the group is reported inconsistent. The review
//! finding: moving a group stopped half-way, a device's own requester ID moved and its alias
//! not.

use std::rc::Rc;

use super::{entry, unit};
use crate::engine::invalidate::InvalidationMode;
use crate::engine::sim::{Cache, Lookup, QEMU_CAP, QEMU_ECAP, SharedMemory, SimUnit, StepClock};
use crate::engine::unit::{RemappingUnit, UnitError};
use crate::engine::{GroupContextError, GroupRollback};
use crate::entries::{ContextEntry, PhysAddr, SourceId};
use crate::paging::{OutOfMemory, TableMemory};

/// CAP.CM: the unit caches not-present entries, so writing a present one is invalidated too.
const CACHING_MODE: u64 = 1 << 7;

/// Two devices behind a PCIe-to-PCI bridge whose secondary bus is 2: their own requester IDs
/// and the alias the bridge substitutes.
fn bridge_group() -> [SourceId; 3] {
    [
        SourceId::new(2, 1, 0).unwrap(),
        SourceId::new(2, 2, 0).unwrap(),
        SourceId::new(2, 0, 0).unwrap(),
    ]
}

struct Setup {
    unit: RemappingUnit<Rc<SimUnit>>,
    sim: Rc<SimUnit>,
    memory: SharedMemory,
    /// Domain 7's entry, where the group starts.
    old: ContextEntry,
    /// Domain 9's entry, where the group is moved.
    new: ContextEntry,
}

/// An enabled unit with the bridge group at domain 7, each of its IDs having done DMA (so the
/// caches hold domain 7 for it).
fn placed(mode: InvalidationMode, cap: u64) -> Setup {
    let (mut unit, sim, mut memory) = unit(cap, QEMU_ECAP);
    let clock = StepClock::default();
    unit.enable(&mut memory, &clock, mode).unwrap();
    let old = entry(&mut memory, 7);
    let new = entry(&mut memory, 9);
    unit.set_group_context(&mut memory, &clock, &bridge_group(), old)
        .unwrap();
    for source in bridge_group() {
        assert_eq!(sim.dma(source.get()), Lookup::Translated { domain: 7 });
    }
    Setup {
        unit,
        sim,
        memory,
        old,
        new,
    }
}

fn move_group(setup: &mut Setup, sources: &[SourceId]) -> Result<(), GroupContextError> {
    let new = setup.new;
    setup
        .unit
        .set_group_context(&mut setup.memory, &StepClock::default(), sources, new)
}

/// Every ID of the bridge group reads `expected` in its context entry, and its DMA (through
/// whatever the unit cached) translates with `domain`.
fn assert_group_at(setup: &Setup, expected: ContextEntry, domain: u16, case: &str) {
    for source in bridge_group() {
        assert_eq!(
            setup.unit.context_entry(&setup.memory, source),
            Some(expected),
            "{case}: context entry of {source:?}"
        );
        assert_eq!(
            setup.sim.dma(source.get()),
            Lookup::Translated { domain },
            "{case}: DMA from {source:?}"
        );
    }
}

const CONFIGURATIONS: [(InvalidationMode, u64); 3] = [
    (InvalidationMode::Register, QEMU_CAP),
    (InvalidationMode::Queued, QEMU_CAP),
    (InvalidationMode::Queued, QEMU_CAP | CACHING_MODE),
];

#[test]
fn every_requester_id_of_a_group_moves() {
    for (mode, cap) in CONFIGURATIONS {
        let mut setup = placed(mode, cap);
        move_group(&mut setup, &bridge_group()).unwrap();
        let new = setup.new;
        assert_group_at(&setup, new, 9, &format!("{mode:?}, CAP {cap:#x}"));
    }
}

#[test]
fn a_requester_id_repeated_is_written_once() {
    let mut setup = placed(InvalidationMode::Queued, QEMU_CAP);
    setup.sim.caches.borrow_mut().invalidations.clear();
    let [first, second, _] = bridge_group();
    move_group(&mut setup, &[first, second, first]).unwrap();
    let context_invalidations = setup
        .sim
        .caches
        .borrow()
        .invalidations
        .iter()
        .filter(|i| i.cache == Cache::Context)
        .count();
    assert_eq!(context_invalidations, 2);
}

#[test]
fn a_failure_on_the_second_id_puts_every_id_back() {
    // Which context-cache invalidation is the second ID's: the one after its old entry was
    // cleared, and with CAP.CM also the one after the new entry was written (the first ID
    // took two).
    let cases = [
        (InvalidationMode::Register, QEMU_CAP, 2),
        (InvalidationMode::Queued, QEMU_CAP, 2),
        (InvalidationMode::Queued, QEMU_CAP | CACHING_MODE, 3),
        (InvalidationMode::Queued, QEMU_CAP | CACHING_MODE, 4),
    ];
    for (mode, cap, failing) in cases {
        let case = format!("{mode:?}, CAP {cap:#x}, invalidation {failing} fails");
        let mut setup = placed(mode, cap);
        setup.sim.fail_context_invalidations(&[failing]);
        let error = move_group(&mut setup, &bridge_group()).unwrap_err();
        assert_eq!(error.source, bridge_group()[1], "{case}");
        assert!(
            matches!(error.error, UnitError::Invalidation(_)),
            "{case}: {error:?}"
        );
        assert_eq!(error.rollback, GroupRollback::Restored, "{case}");
        let old = setup.old;
        assert_group_at(&setup, old, 7, &case);
    }
}

#[test]
fn a_failure_whose_restore_fails_too_is_inconsistent() {
    for (mode, cap) in CONFIGURATIONS {
        let case = format!("{mode:?}, CAP {cap:#x}");
        let mut setup = placed(mode, cap);
        // The second ID's write fails, and so does the next context-cache invalidation: the
        // one putting the first ID back (the second ID's own restore needs none without
        // CAP.CM, and with CAP.CM its clearing of domain 9 is the next one).
        let (failing, restore) = if cap & CACHING_MODE == 0 {
            (2, 3)
        } else {
            (4, 5)
        };
        setup.sim.fail_context_invalidations(&[failing, restore]);
        let error = move_group(&mut setup, &bridge_group()).unwrap_err();
        let [first, second, third] = bridge_group();
        assert_eq!(error.source, second, "{case}");
        let GroupRollback::Inconsistent {
            source: unrestored,
            error: restore_error,
        } = error.rollback
        else {
            panic!("{case}: {error:?}");
        };
        assert!(
            matches!(restore_error, UnitError::Invalidation(_)),
            "{case}: {restore_error:?}"
        );
        let at = |source| setup.unit.context_entry(&setup.memory, source);
        // The ID whose restore failed names neither domain in the table: its entry is cleared.
        let expected_unrestored = if cap & CACHING_MODE == 0 {
            first
        } else {
            second
        };
        assert_eq!(unrestored, expected_unrestored, "{case}");
        assert_eq!(
            at(unrestored).map(|e| e.is_present()),
            Some(false),
            "{case}"
        );
        // The others are back at the old entry (the third was never touched).
        for source in [first, second, third] {
            if source != unrestored {
                assert_eq!(at(source), Some(setup.old), "{case}: {source:?}");
            }
        }
    }
}

/// Table memory whose frame allocator gives out `left` more frames, then refuses.
struct RefusingMemory {
    memory: SharedMemory,
    left: usize,
}

impl TableMemory for RefusingMemory {
    fn alloc_table(&mut self) -> Result<PhysAddr, OutOfMemory> {
        self.left = self.left.checked_sub(1).ok_or(OutOfMemory)?;
        self.memory.alloc_table()
    }
    fn free_table(&mut self, table: PhysAddr) {
        self.memory.free_table(table);
    }
    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        self.memory.read(table, index)
    }
    fn write(&mut self, table: PhysAddr, index: usize, value: u64) {
        self.memory.write(table, index, value);
    }
}

#[test]
fn no_frame_for_the_second_ids_context_table_leaves_the_group_blocked() {
    for mode in [InvalidationMode::Register, InvalidationMode::Queued] {
        let (mut unit, sim, mut memory) = unit(QEMU_CAP, QEMU_ECAP);
        let clock = StepClock::default();
        unit.enable(&mut memory, &clock, mode).unwrap();
        let target = entry(&mut memory, 7);
        // A group spread over three buses none of which has a context table yet: the first
        // gets one, the second finds no frame.
        let group = [
            SourceId::new(3, 0, 0).unwrap(),
            SourceId::new(5, 0, 0).unwrap(),
            SourceId::new(6, 0, 0).unwrap(),
        ];
        let mut refusing = RefusingMemory {
            memory: memory.clone(),
            left: 1,
        };
        let error = unit
            .set_group_context(&mut refusing, &clock, &group, target)
            .unwrap_err();
        assert_eq!(
            error,
            GroupContextError {
                source: group[1],
                error: UnitError::OutOfMemory,
                rollback: GroupRollback::Restored,
            },
            "{mode:?}"
        );
        for source in group {
            let found = unit
                .context_entry(&memory, source)
                .unwrap_or(ContextEntry::NOT_PRESENT);
            assert_eq!(found, ContextEntry::NOT_PRESENT, "{mode:?}: {source:?}");
            assert_eq!(
                sim.dma(source.get()),
                Lookup::Blocked,
                "{mode:?}: {source:?}"
            );
        }
    }
}
