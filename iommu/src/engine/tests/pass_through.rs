//! Pass-through context entries (TT = 2, VT-d spec 9.3), the benchmark's yardstick: a group's
//! requester IDs move to pass-through and back with the same invalidations as any other
//! change (a unit caches a pass-through context entry under its DID like any other), and a
//! unit without ECAP.PT refuses the entry before touching anything.

use super::{entry, unit};
use crate::engine::invalidate::InvalidationMode;
use crate::engine::sim::{Lookup, QEMU_CAP, QEMU_ECAP, StepClock};
use crate::engine::unit::UnitError;
use crate::engine::{GroupContextError, GroupRollback};
use crate::entries::{
    ContextAddressWidth, ContextEntry, ContextTranslation, DomainId, DomainLimit, FaultProcessing,
    SourceId, TranslationType,
};

/// ECAP.PT (bit 6).
const PASS_THROUGH: u64 = 1 << 6;
/// CAP.CM: not-present entries may be cached (under DID 0).
const CACHING_MODE: u64 = 1 << 7;

fn pass_through(domain: u16) -> ContextEntry {
    let domain = DomainId::new(domain, DomainLimit::from_nd(6).unwrap()).unwrap();
    ContextEntry::new(
        ContextTranslation::PassThrough,
        ContextAddressWidth::Bits39,
        domain,
        FaultProcessing::Report,
    )
    .unwrap()
}

/// A device and the alias of the PCIe-to-PCI bridge it sits behind.
fn group() -> [SourceId; 2] {
    [
        SourceId::new(2, 1, 0).unwrap(),
        SourceId::new(2, 0, 0).unwrap(),
    ]
}

#[test]
fn a_group_moves_to_pass_through_and_back() {
    for (mode, cap) in [
        (InvalidationMode::Register, QEMU_CAP),
        (InvalidationMode::Queued, QEMU_CAP),
        (InvalidationMode::Queued, QEMU_CAP | CACHING_MODE),
    ] {
        let case = format!("{mode:?}, CAP {cap:#x}");
        let (mut unit, sim, mut memory) = unit(cap, QEMU_ECAP);
        let clock = StepClock::default();
        unit.enable(&mut memory, &clock, mode).unwrap();
        assert!(unit.offers_pass_through(), "{case}");
        let translated = entry(&mut memory, 7);
        unit.set_group_context(&mut memory, &clock, &group(), translated)
            .unwrap();
        for source in group() {
            // The unit now caches the translated entry under DID 7.
            assert_eq!(sim.dma(source.get()), Lookup::Translated { domain: 7 });
        }
        let yardstick = pass_through(9);
        unit.set_group_context(&mut memory, &clock, &group(), yardstick)
            .unwrap();
        for source in group() {
            assert_eq!(
                unit.context_entry(&memory, source),
                Some(yardstick),
                "{case}"
            );
            assert_eq!(
                sim.dma(source.get()),
                Lookup::PassThrough { domain: 9 },
                "{case}: DMA from {source:?} after the move to pass-through"
            );
        }
        // Back to translation: the pass-through entry cached under DID 9 must be dropped, or
        // the device would keep reaching all of memory.
        let strict = entry(&mut memory, 11);
        unit.set_group_context(&mut memory, &clock, &group(), strict)
            .unwrap();
        for source in group() {
            assert_eq!(
                sim.dma(source.get()),
                Lookup::Translated { domain: 11 },
                "{case}: DMA from {source:?} after the move back"
            );
        }
        assert_eq!(
            sim.caches.borrow().violations,
            Vec::<String>::new(),
            "{case}"
        );
    }
}

#[test]
fn pass_through_is_refused_without_ecap_pt() {
    let (mut unit, sim, mut memory) = unit(QEMU_CAP, QEMU_ECAP & !PASS_THROUGH);
    let clock = StepClock::default();
    unit.enable(&mut memory, &clock, InvalidationMode::Queued)
        .unwrap();
    assert!(!unit.offers_pass_through());
    let translated = entry(&mut memory, 7);
    unit.set_group_context(&mut memory, &clock, &group(), translated)
        .unwrap();
    for source in group() {
        assert_eq!(sim.dma(source.get()), Lookup::Translated { domain: 7 });
    }
    let invalidations_before = sim.caches.borrow().invalidations.len();
    let error = unit
        .set_group_context(&mut memory, &clock, &group(), pass_through(9))
        .unwrap_err();
    assert_eq!(
        error,
        GroupContextError {
            source: group()[0],
            error: UnitError::UnsupportedTranslationType {
                translation_type: Some(TranslationType::PassThrough),
            },
            rollback: GroupRollback::Restored,
        }
    );
    // Refused before anything was written or invalidated.
    assert_eq!(
        sim.caches.borrow().invalidations.len(),
        invalidations_before
    );
    for source in group() {
        assert_eq!(unit.context_entry(&memory, source), Some(translated));
        assert_eq!(sim.dma(source.get()), Lookup::Translated { domain: 7 });
    }
}

#[test]
fn reserved_and_device_tlb_types_are_refused() {
    let (mut unit, _sim, mut memory) = unit(QEMU_CAP, QEMU_ECAP);
    let clock = StepClock::default();
    unit.enable(&mut memory, &clock, InvalidationMode::Queued)
        .unwrap();
    let source = group()[0];
    let pass = pass_through(5);
    // TT = 3 (reserved): the pass-through entry with its TT field's low bit set too.
    let reserved = ContextEntry::from_raw(pass.lo() | 1 << 2, pass.hi());
    assert_eq!(
        unit.set_context(&mut memory, &clock, source, reserved),
        Err(UnitError::UnsupportedTranslationType {
            translation_type: None
        })
    );
    let table = crate::entries::PhysAddr::new(0x20_0000).unwrap();
    let device_tlb = ContextEntry::new(
        ContextTranslation::DeviceTlb { table },
        ContextAddressWidth::Bits39,
        DomainId::new(5, DomainLimit::from_nd(6).unwrap()).unwrap(),
        FaultProcessing::Report,
    )
    .unwrap();
    // QEMU's default ECAP has no DT.
    assert_eq!(
        unit.set_context(&mut memory, &clock, source, device_tlb),
        Err(UnitError::UnsupportedTranslationType {
            translation_type: Some(TranslationType::DeviceTlb)
        })
    );
    assert_eq!(unit.context_entry(&memory, source), None);
}
