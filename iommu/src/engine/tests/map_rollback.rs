//! Finding 5: a map whose invalidation fails leaves a consistent, reported state: the page is
//! taken out of the table again, and if even that removal cannot be invalidated, its token is
//! handed back with the error and the IOVAs stay blocked until it completes.

use std::rc::Rc;

use super::unit;
use crate::engine::invalidate::InvalidationMode;
use crate::engine::sim::{QEMU_CAP, QEMU_ECAP, SharedMemory, SimUnit, StepClock};
use crate::engine::unit::{RemappingUnit, UnitError};
use crate::entries::{Access, DomainId, Iova, PageSize, PhysAddr};
use crate::paging::{
    CachingMode, InvalidationDone, MapCompletionError, MapError, PageSelectiveSupport, PageTable,
    RequiredInvalidation,
};

const IOVA: u64 = 0x4020_0000;
const PHYS: u64 = 0x8000_0000;

struct Setup {
    unit: RemappingUnit<Rc<SimUnit>>,
    sim: Rc<SimUnit>,
    memory: SharedMemory,
    table: PageTable<SharedMemory>,
    caching_mode: CachingMode,
    psi: PageSelectiveSupport,
}

/// A unit in caching mode (so every map needs an IOTLB invalidation) and an empty table.
fn setup() -> Setup {
    let (mut unit, sim, mut memory) = unit(QEMU_CAP | (1 << 7), QEMU_ECAP);
    unit.enable(&mut memory, &StepClock::default(), InvalidationMode::Queued)
        .unwrap();
    let table = PageTable::new(memory.clone(), unit.geometry(), unit.superpages()).unwrap();
    let cap = unit.capability();
    Setup {
        caching_mode: CachingMode::from_cap(u8::from(cap.caching_mode())),
        psi: PageSelectiveSupport::from_cap(u8::from(cap.psi()), cap.mamv()),
        unit,
        sim,
        memory,
        table,
    }
}

/// The kernel's invalidation for a token of domain 1: the IOTLB scope it asks for, or the
/// write-buffer flush; the proof only once the unit reported completion.
fn invalidate(
    unit: &mut RemappingUnit<Rc<SimUnit>>,
    memory: &mut SharedMemory,
    required: RequiredInvalidation,
) -> Result<InvalidationDone, UnitError> {
    let domain = DomainId::new(1, unit.domain_limit()).unwrap();
    let clock = StepClock::default();
    match required.iotlb_scope(domain) {
        Some(scope) => unit.invalidate_iotlb(memory, &clock, scope)?,
        None => unit.flush_write_buffer(&clock)?,
    }
    // SAFETY: the simulated unit completed the invalidation the token asked for, and the table
    // is attached to no other unit.
    Ok(unsafe { InvalidationDone::assume_invalidated() })
}

fn map(setup: &mut Setup) -> crate::paging::MapFlush {
    setup
        .table
        .map(
            Iova::new(IOVA).unwrap(),
            PhysAddr::new(PHYS).unwrap(),
            PageSize::Size4K,
            Access::ReadWrite,
        )
        .unwrap()
}

fn complete(
    setup: &mut Setup,
    flush: crate::paging::MapFlush,
) -> Result<(), MapCompletionError<UnitError>> {
    let Setup {
        unit,
        memory,
        table,
        caching_mode,
        psi,
        ..
    } = setup;
    let mut queue_memory = memory.clone();
    table.complete_map(flush, *caching_mode, *psi, |required| {
        invalidate(unit, &mut queue_memory, required)
    })
}

#[test]
fn a_completed_map_translates() {
    let mut setup = setup();
    let flush = map(&mut setup);
    complete(&mut setup, flush).unwrap();
    let found = setup.table.translate(Iova::new(IOVA).unwrap()).unwrap();
    assert_eq!(found.phys.as_u64(), PHYS);
}

#[test]
fn a_map_whose_invalidation_fails_is_taken_out_again() {
    let mut setup = setup();
    let frames_before = setup.memory.0.borrow().len();
    let flush = map(&mut setup);
    // The map's invalidation times out (ITE); the removal's invalidation works.
    setup.sim.time_out_waits.set(1);
    let error = complete(&mut setup, flush).unwrap_err();
    assert!(
        matches!(
            error,
            MapCompletionError::RolledBack {
                error: UnitError::Invalidation(_)
            }
        ),
        "{error:?}"
    );
    assert_eq!(setup.table.translate(Iova::new(IOVA).unwrap()), None);
    assert_eq!(setup.table.pending_unmaps(), 0);
    // The intermediate tables the map built were freed again.
    assert_eq!(setup.memory.0.borrow().len(), frames_before);
    // And the IOVA can be mapped again at once.
    let again = map(&mut setup);
    complete(&mut setup, again).unwrap();
}

#[test]
fn a_failed_rollback_hands_its_token_back_and_keeps_the_iovas_blocked() {
    let mut setup = setup();
    let flush = map(&mut setup);
    setup.sim.hang.set(true);
    let error = complete(&mut setup, flush).unwrap_err();
    let MapCompletionError::RollbackPending {
        error: UnitError::Invalidation(_),
        rollback_error: UnitError::Invalidation(_),
        flush: removal,
    } = error
    else {
        panic!("{error:?}");
    };
    assert_eq!(setup.table.translate(Iova::new(IOVA).unwrap()), None);
    let blocked = setup.table.map(
        Iova::new(IOVA).unwrap(),
        PhysAddr::new(PHYS).unwrap(),
        PageSize::Size4K,
        Access::ReadWrite,
    );
    assert!(
        matches!(blocked, Err(MapError::PendingInvalidation)),
        "{blocked:?}"
    );
    // Once the unit answers again the removal completes and the IOVAs are free.
    setup.sim.hang.set(false);
    let removal = *removal;
    let required = removal.invalidation(setup.psi);
    let mut queue_memory = setup.memory.clone();
    let proof = invalidate(&mut setup.unit, &mut queue_memory, required).unwrap();
    setup.table.complete_unmap(removal, proof).unwrap();
    let again = map(&mut setup);
    complete(&mut setup, again).unwrap();
}
