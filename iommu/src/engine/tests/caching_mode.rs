//! Finding 1: with CAP.CM = 1 a context entry going from not present to present is followed by
//! context-cache and IOTLB invalidations under DID 0 (the tag of cached not-present entries),
//! and the DIDs a unit is given start at 1 and stay below CAP.ND's limit.

use super::unit;
use crate::engine::invalidate::InvalidationMode;
use crate::engine::sim::{
    Cache, Invalidation, Lookup, QEMU_CAP, QEMU_ECAP, SharedMemory, StepClock,
};
use crate::engine::unit::UnitError;
use crate::entries::{
    ContextAddressWidth, ContextEntry, ContextTranslation, DomainId, DomainIdAllocator,
    DomainLimit, FaultProcessing, SourceId,
};
use crate::paging::TableMemory;

const CACHING_MODE: u64 = 1 << 7;

fn entry_for(memory: &mut SharedMemory, domain: DomainId) -> ContextEntry {
    let table = memory.alloc_table().unwrap();
    ContextEntry::new(
        ContextTranslation::MultiLevel { table },
        ContextAddressWidth::Bits39,
        domain,
        FaultProcessing::Report,
    )
    .unwrap()
}

fn did(raw: u16) -> DomainId {
    DomainId::new(raw, DomainLimit::from_nd(6).unwrap()).unwrap()
}

#[test]
fn a_cached_not_present_entry_is_invalidated_under_domain_id_zero() {
    for mode in [InvalidationMode::Register, InvalidationMode::Queued] {
        let (mut unit, sim, mut memory) = unit(QEMU_CAP | CACHING_MODE, QEMU_ECAP);
        let clock = StepClock::default();
        unit.enable(&mut memory, &clock, mode).unwrap();
        let source = SourceId::new(0, 4, 0).unwrap();
        // The device tries DMA while it has no context entry: a unit in caching mode may keep
        // that not-present entry, tagged with DID 0.
        assert_eq!(sim.dma(source.get()), Lookup::Blocked);
        sim.caches.borrow_mut().invalidations.clear();

        let first = entry_for(&mut memory, did(5));
        unit.set_context(&mut memory, &clock, source, first)
            .unwrap();
        assert_eq!(
            sim.dma(source.get()),
            Lookup::Translated { domain: 5 },
            "{mode:?}: the cached not-present entry survived: {:?}",
            sim.caches.borrow().invalidations
        );
        let invalidations = sim.caches.borrow().invalidations.clone();
        assert_eq!(
            invalidations,
            vec![
                Invalidation {
                    cache: Cache::Context,
                    granularity: 3,
                    domain: 0,
                    source: source.get(),
                    function_mask: 0,
                },
                Invalidation {
                    cache: Cache::Iotlb,
                    granularity: 2,
                    domain: 0,
                    source: 0,
                    function_mask: 0,
                },
            ],
            "{mode:?}"
        );

        // Moving the device to another domain clears the entry in between: the old DID's
        // entries go, and the window in which it was not present is covered by DID 0 again.
        let second = entry_for(&mut memory, did(9));
        unit.set_context(&mut memory, &clock, source, second)
            .unwrap();
        assert_eq!(sim.dma(source.get()), Lookup::Translated { domain: 9 });
        let dids: Vec<(Cache, u16)> = sim.caches.borrow().invalidations[2..]
            .iter()
            .map(|i| (i.cache, i.domain))
            .collect();
        assert_eq!(
            dids,
            vec![
                (Cache::Context, 5),
                (Cache::Iotlb, 5),
                (Cache::Context, 0),
                (Cache::Iotlb, 0)
            ],
            "{mode:?}"
        );
        assert!(
            sim.caches.borrow().violations.is_empty(),
            "{:?}",
            sim.caches.borrow().violations
        );
    }
}

#[test]
fn without_caching_mode_nothing_is_invalidated_under_domain_id_zero() {
    let (mut unit, sim, mut memory) = unit(QEMU_CAP, QEMU_ECAP);
    let clock = StepClock::default();
    unit.enable(&mut memory, &clock, InvalidationMode::Queued)
        .unwrap();
    let source = SourceId::new(0, 4, 0).unwrap();
    assert_eq!(sim.dma(source.get()), Lookup::Blocked);
    sim.caches.borrow_mut().invalidations.clear();
    let entry = entry_for(&mut memory, did(5));
    unit.set_context(&mut memory, &clock, source, entry)
        .unwrap();
    assert_eq!(sim.dma(source.get()), Lookup::Translated { domain: 5 });
    assert!(sim.caches.borrow().invalidations.is_empty());
}

#[test]
fn domain_ids_start_at_one_and_stay_below_the_units_limit() {
    // ND = 0: 16 domain IDs, of which 1..=15 are usable.
    let (mut unit, sim, mut memory) = unit((QEMU_CAP & !0x7) | CACHING_MODE, QEMU_ECAP);
    let clock = StepClock::default();
    unit.enable(&mut memory, &clock, InvalidationMode::Queued)
        .unwrap();
    let limit = unit.domain_limit();
    assert_eq!(limit.count(), 16);
    let mut ids = DomainIdAllocator::new();
    let mut handed_out = Vec::new();
    while let Ok(id) = ids.allocate(limit) {
        let source = SourceId::new(1, id.get() as u8, 0).unwrap();
        let entry = entry_for(&mut memory, id);
        unit.set_context(&mut memory, &clock, source, entry)
            .unwrap();
        assert_eq!(
            sim.dma(source.get()),
            Lookup::Translated { domain: id.get() }
        );
        handed_out.push(id.get());
    }
    assert_eq!(handed_out, (1..16).collect::<Vec<u16>>());
    assert!(
        sim.caches.borrow().violations.is_empty(),
        "{:?}",
        sim.caches.borrow().violations
    );

    // An entry built for a larger unit is refused before anything is written.
    let source = SourceId::new(2, 0, 0).unwrap();
    let too_large = entry_for(&mut memory, did(20));
    assert_eq!(
        unit.set_context(&mut memory, &clock, source, too_large),
        Err(UnitError::InvalidDomainId { domain: 20 })
    );
    assert_eq!(unit.context_entry(&memory, source), None);
    assert_eq!(sim.dma(source.get()), Lookup::Blocked);
}
