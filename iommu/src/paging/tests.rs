//! Scenario tests of the page-table engine against the host memory. The randomized comparison
//! with a model is in `tests/paging_model.rs`.

use super::host_memory::HostMemory;
use super::*;
use crate::entries::{DomainId, DomainLimit, InvalidationHint, IotlbScope, SlPte};

const QEMU_PSI: PageSelectiveSupport = PageSelectiveSupport::UpToOrder(18);
const KIB4: u64 = 0x1000;
const MIB2: u64 = 0x20_0000;
const GIB1: u64 = 0x4000_0000;

fn iova(raw: u64) -> Iova {
    Iova::new(raw).unwrap()
}

fn phys(raw: u64) -> PhysAddr {
    PhysAddr::new(raw).unwrap()
}

fn table(levels: Levels) -> PageTable<HostMemory> {
    PageTable::new(HostMemory::new(), levels, SuperpageSupport::all()).unwrap()
}

fn proof() -> InvalidationDone {
    // SAFETY: a host test; no remapping hardware caches anything.
    unsafe { InvalidationDone::assume_invalidated() }
}

fn map(table: &mut PageTable<HostMemory>, at: u64, to: u64, size: PageSize, access: Access) {
    table
        .map(iova(at), phys(to), size, access)
        .unwrap()
        .complete(proof());
}

fn page_selective(addr: u64, order: u8, hint: InvalidationHint) -> RequiredInvalidation {
    let range = crate::entries::PageSelective::new(iova(addr), order).unwrap();
    RequiredInvalidation::PageSelective { range, hint }
}

#[test]
fn maps_and_translates_4k_pages() {
    let mut table = table(Levels::Three);
    map(
        &mut table,
        0x1000,
        0x8000_0000,
        PageSize::Size4K,
        Access::Read,
    );
    let found = table.translate(iova(0x1234)).unwrap();
    assert_eq!(
        found,
        Translation {
            phys: phys(0x8000_0234),
            size: PageSize::Size4K,
            access: Access::Read
        }
    );
    assert_eq!(table.translate(iova(0x2000)), None);
    assert_eq!(table.translate(iova(0xFFF)), None);
    assert_eq!(table.translate(iova(1 << 39)), None);
    // Root plus one table at levels 2 and 1.
    assert_eq!(table.memory().allocations, 3);
    // Intermediate entries grant R|W even though the leaf is read-only.
    let level2 = SlPte::from_raw(table.memory().read(table.root(), 0));
    assert_eq!(level2.raw() & 3, 3);
    let level1 = SlPte::from_raw(table.memory().read(level2.address(), 0));
    assert_eq!(level1.raw() & 3, 3);
    let leaf = table.memory().read(level1.address(), 1);
    assert_eq!(leaf, 0x8000_0001);
}

#[test]
fn maps_superpages_at_their_levels() {
    let mut table = table(Levels::Four);
    map(&mut table, MIB2, GIB1, PageSize::Size2M, Access::Read);
    map(&mut table, GIB1, 2 * GIB1, PageSize::Size1G, Access::Write);
    let medium = table.translate(iova(MIB2 + 0x1_2345)).unwrap();
    assert_eq!(
        (medium.phys, medium.size),
        (phys(GIB1 + 0x1_2345), PageSize::Size2M)
    );
    let large = table.translate(iova(GIB1 + 0x3FFF_FFFF)).unwrap();
    assert_eq!(
        (large.phys, large.size, large.access),
        (phys(3 * GIB1 - 1), PageSize::Size1G, Access::Write)
    );
    // Walk by hand: level 4 -> level 3 entry 1 is the 1 GiB leaf with PS.
    let level3 = SlPte::from_raw(table.memory().read(table.root(), 0)).address();
    assert_eq!(table.memory().read(level3, 1), (2 * GIB1) | 0x82);
    let level2 = SlPte::from_raw(table.memory().read(level3, 0)).address();
    assert_eq!(table.memory().read(level2, 1), GIB1 | 0x81);
}

#[test]
fn map_rejects_bad_requests_without_allocating() {
    let mut table = table(Levels::Three);
    map(&mut table, MIB2, 0, PageSize::Size2M, Access::ReadWrite);
    let before = table.memory().allocations;
    let cases = [
        (0x1800, 0x1000, PageSize::Size4K, MapError::Misaligned),
        (0x1000, 0x1800, PageSize::Size4K, MapError::Misaligned),
        (4 * MIB2, KIB4, PageSize::Size2M, MapError::Misaligned),
        (1 << 39, 0, PageSize::Size4K, MapError::BeyondAddressWidth),
        (1 << 39, 0, PageSize::Size1G, MapError::BeyondAddressWidth),
        (MIB2 + KIB4, 0, PageSize::Size4K, MapError::AlreadyMapped),
        (MIB2, 0, PageSize::Size2M, MapError::AlreadyMapped),
        (0, 0, PageSize::Size1G, MapError::AlreadyMapped),
    ];
    for (at, to, size, error) in cases {
        assert_eq!(
            table
                .map(iova(at), phys(to), size, Access::Read)
                .map(|_| ()),
            Err(error),
            "{at:#x}"
        );
    }
    assert_eq!(table.memory().allocations, before);
    // The very top of the address space is fine.
    map(
        &mut table,
        (1 << 39) - GIB1,
        0,
        PageSize::Size1G,
        Access::Read,
    );
    map(
        &mut table,
        (1 << 38) - KIB4,
        0,
        PageSize::Size4K,
        Access::Read,
    );
}

#[test]
fn map_rejects_overlap_with_small_pages_below() {
    let mut table = table(Levels::Four);
    map(
        &mut table,
        GIB1 + 5 * MIB2 + 7 * KIB4,
        0,
        PageSize::Size4K,
        Access::Read,
    );
    let two_meg = table.map(
        iova(GIB1 + 5 * MIB2),
        phys(0),
        PageSize::Size2M,
        Access::Read,
    );
    assert_eq!(two_meg.map(|_| ()), Err(MapError::AlreadyMapped));
    let one_gig = table.map(iova(GIB1), phys(0), PageSize::Size1G, Access::Read);
    assert_eq!(one_gig.map(|_| ()), Err(MapError::AlreadyMapped));
    let same = table.map(
        iova(GIB1 + 5 * MIB2 + 7 * KIB4),
        phys(0),
        PageSize::Size4K,
        Access::Read,
    );
    assert_eq!(same.map(|_| ()), Err(MapError::AlreadyMapped));
}

#[test]
fn superpage_support_and_narrow_geometry() {
    let memory = HostMemory::new();
    let mut table = PageTable::new(memory, Levels::Three, SuperpageSupport::SIZE_2M).unwrap();
    let result = table.map(iova(GIB1), phys(GIB1), PageSize::Size1G, Access::Read);
    assert_eq!(result.map(|_| ()), Err(MapError::SuperpageUnsupported));
    map(&mut table, MIB2, MIB2, PageSize::Size2M, Access::Read);

    let geometry = Geometry::new(Levels::Four, 39).unwrap();
    let mut narrow =
        PageTable::new(HostMemory::new(), geometry, SuperpageSupport::empty()).unwrap();
    let result = narrow.map(iova(1 << 39), phys(0), PageSize::Size4K, Access::Read);
    assert_eq!(result.map(|_| ()), Err(MapError::BeyondAddressWidth));
    let result = narrow.map(iova(0), phys(0), PageSize::Size2M, Access::Read);
    assert_eq!(result.map(|_| ()), Err(MapError::SuperpageUnsupported));
    map(
        &mut narrow,
        (1 << 39) - KIB4,
        0,
        PageSize::Size4K,
        Access::Read,
    );
    assert_eq!(narrow.levels(), Levels::Four);
}

#[test]
fn out_of_memory_links_nothing() {
    let mut table = table(Levels::Four);
    table.memory.budget = Some(2);
    let result = table.map(iova(0x1000), phys(0x1000), PageSize::Size4K, Access::Read);
    assert_eq!(result.map(|_| ()), Err(MapError::OutOfMemory));
    assert_eq!(table.memory().live(), 1, "only the root");
    assert!(table.is_empty(table.root()));
    table.memory.budget = None;
    table.memory.misalign_next = true;
    let result = table.map(iova(0x1000), phys(0x1000), PageSize::Size4K, Access::Read);
    assert_eq!(result.map(|_| ()), Err(MapError::MisalignedTableFrame));
    assert_eq!(table.memory().live(), 1);
    map(&mut table, 0x1000, 0x1000, PageSize::Size4K, Access::Read);
    assert_eq!(table.memory().live(), 4);

    let mut empty = HostMemory::new();
    empty.budget = Some(0);
    let (_memory, error) =
        PageTable::new(empty, Levels::Three, SuperpageSupport::all()).unwrap_err();
    assert_eq!(error, TableAllocError::OutOfMemory);
}

#[test]
fn unmapping_many_pages_needs_one_invalidation_and_frees_tables_only_on_completion() {
    let mut table = table(Levels::Three);
    for page in 0..512 {
        map(
            &mut table,
            MIB2 + page * KIB4,
            0x100_0000 + page * KIB4,
            PageSize::Size4K,
            Access::ReadWrite,
        );
    }
    let live = table.memory().live();
    let flush = table.unmap(iova(0)..iova(GIB1)).unwrap();
    assert_eq!(
        flush.invalidation(QEMU_PSI),
        page_selective(MIB2, 9, InvalidationHint::AllEntries)
    );
    assert_eq!(flush.unmapped_span(), Some(iova(MIB2)..iova(2 * MIB2)));
    // The level-1 and level-2 tables emptied, but they are still allocated.
    assert_eq!(flush.freed_tables().len(), 2);
    assert!(
        flush
            .freed_tables()
            .iter()
            .all(|&frame| table.memory().is_live(frame))
    );
    assert_eq!((table.memory().live(), table.memory().frees), (live, 0));
    assert_eq!(table.translate(iova(MIB2)), None);
    // The IOVAs stay blocked until the invalidation completed.
    let again = table.map(iova(MIB2 + KIB4), phys(0), PageSize::Size4K, Access::Read);
    assert_eq!(again.map(|_| ()), Err(MapError::PendingInvalidation));
    assert_eq!(table.pending_unmaps(), 1);
    table.complete_unmap(flush, proof()).unwrap();
    assert_eq!((table.memory().live(), table.memory().frees), (1, 2));
    assert_eq!(table.pending_unmaps(), 0);
    map(&mut table, MIB2 + KIB4, 0, PageSize::Size4K, Access::Read);
}

#[test]
fn unmapping_leaves_only_asks_for_a_leaf_invalidation() {
    let mut table = table(Levels::Three);
    map(&mut table, 0x5000, 0x5000, PageSize::Size4K, Access::Read);
    map(&mut table, 0x6000, 0x6000, PageSize::Size4K, Access::Read);
    let flush = table.unmap(iova(0x5000)..iova(0x6000)).unwrap();
    assert!(flush.freed_tables().is_empty());
    assert_eq!(
        flush.invalidation(QEMU_PSI),
        page_selective(0x5000, 0, InvalidationHint::LeafEntriesOnly)
    );
    table.complete_unmap(flush, proof()).unwrap();
    assert_eq!(
        table.translate(iova(0x6800)).map(|found| found.phys),
        Some(phys(0x6800))
    );
}

#[test]
fn partly_covered_superpages_are_not_split() {
    let mut table = table(Levels::Four);
    map(&mut table, MIB2, 0, PageSize::Size2M, Access::Read);
    let expected = Err(UnmapError::PartialSuperpage {
        start: iova(MIB2),
        size: PageSize::Size2M,
    });
    assert_eq!(
        table.unmap(iova(MIB2)..iova(MIB2 + KIB4)).map(|_| ()),
        expected
    );
    assert_eq!(
        table
            .unmap(iova(MIB2 - KIB4)..iova(MIB2 + KIB4))
            .map(|_| ()),
        expected
    );
    assert_eq!(
        table
            .unmap(iova(2 * MIB2 - KIB4)..iova(3 * MIB2))
            .map(|_| ()),
        expected
    );
    assert!(table.translate(iova(MIB2)).is_some());
    assert_eq!(table.pending_unmaps(), 0);
    let flush = table.unmap(iova(0)..iova(3 * MIB2)).unwrap();
    assert_eq!(flush.unmapped_span(), Some(iova(MIB2)..iova(2 * MIB2)));
    table.complete_unmap(flush, proof()).unwrap();
    assert_eq!(table.memory().live(), 1);
}

#[test]
fn large_spans_fall_back_to_domain_selective() {
    let mut table = table(Levels::Three);
    map(&mut table, GIB1, 0, PageSize::Size1G, Access::Read);
    let flush = table.unmap(iova(GIB1)..iova(2 * GIB1)).unwrap();
    let expected = page_selective(GIB1, 18, InvalidationHint::LeafEntriesOnly);
    assert_eq!(flush.invalidation(QEMU_PSI), expected);
    let narrow = PageSelectiveSupport::UpToOrder(17);
    assert_eq!(
        flush.invalidation(narrow),
        RequiredInvalidation::DomainSelective
    );
    assert_eq!(
        flush.invalidation(PageSelectiveSupport::Unsupported),
        RequiredInvalidation::DomainSelective
    );
    let domain = DomainId::new(7, DomainLimit::from_nd(6).unwrap()).unwrap();
    assert_eq!(
        RequiredInvalidation::DomainSelective.iotlb_scope(domain),
        Some(IotlbScope::Domain(domain))
    );
    assert_eq!(RequiredInvalidation::None.iotlb_scope(domain), None);
    table.complete_unmap(flush, proof()).unwrap();
    assert_eq!(PageSelectiveSupport::from_cap(1, 18), QEMU_PSI);
    assert_eq!(
        PageSelectiveSupport::from_cap(0, 18),
        PageSelectiveSupport::Unsupported
    );
}

#[test]
fn unmap_argument_errors_and_empty_ranges() {
    let mut table = table(Levels::Three);
    assert_eq!(
        table.unmap(iova(0x2000)..iova(0x1000)).map(|_| ()),
        Err(UnmapError::InvalidRange)
    );
    assert_eq!(
        table.unmap(iova(0x1000)..iova(0x1800)).map(|_| ()),
        Err(UnmapError::Misaligned)
    );
    let beyond = table.unmap(iova(0)..iova((1 << 39) + KIB4));
    assert_eq!(beyond.map(|_| ()), Err(UnmapError::BeyondAddressWidth));
    for range in [iova(0x1000)..iova(0x1000), iova(0)..iova(1 << 39)] {
        let flush = table.unmap(range).unwrap();
        assert_eq!(flush.invalidation(QEMU_PSI), RequiredInvalidation::None);
        assert_eq!(flush.unmapped_span(), None);
        table.complete_unmap(flush, proof()).unwrap();
    }
    assert_eq!(table.pending_unmaps(), 0);
}

#[test]
fn map_flush_follows_caching_mode() {
    let mut table = table(Levels::Three);
    let flush = table
        .map(iova(0x3000), phys(0x3000), PageSize::Size4K, Access::Read)
        .unwrap();
    assert!(!flush.needs_invalidation(CachingMode::Disabled));
    assert!(flush.needs_invalidation(CachingMode::Enabled));
    assert_eq!(
        flush.invalidation(CachingMode::Disabled, QEMU_PSI),
        RequiredInvalidation::None
    );
    let expected = page_selective(0x3000, 0, InvalidationHint::AllEntries);
    assert_eq!(flush.invalidation(CachingMode::Enabled, QEMU_PSI), expected);
    assert_eq!(flush.mapped(), iova(0x3000)..iova(0x4000));
    let mut flush = flush;
    let second = table
        .map(iova(0x8000), phys(0x8000), PageSize::Size4K, Access::Read)
        .unwrap();
    flush.merge(second).unwrap();
    let merged = page_selective(0, 4, InvalidationHint::AllEntries);
    assert_eq!(flush.invalidation(CachingMode::Enabled, QEMU_PSI), merged);
    flush.complete(proof());
    assert_eq!(CachingMode::from_cap(1), CachingMode::Enabled);
    assert_eq!(CachingMode::from_cap(0), CachingMode::Disabled);
}

#[test]
fn maps_through_a_pending_freed_table_need_an_invalidation() {
    let mut table = table(Levels::Three);
    map(&mut table, MIB2, 0, PageSize::Size4K, Access::Read);
    let unmapped = table.unmap(iova(MIB2)..iova(MIB2 + KIB4)).unwrap();
    assert_eq!(unmapped.freed_tables().len(), 2);
    // Same 2 MiB region, outside the unmapped span: a cached non-leaf entry may point at the
    // table that is waiting to be freed.
    let nearby = table
        .map(
            iova(MIB2 + 5 * KIB4),
            phys(0),
            PageSize::Size4K,
            Access::Read,
        )
        .unwrap();
    assert!(nearby.needs_invalidation(CachingMode::Disabled));
    // Another 1 GiB root slot shares nothing with the freed tables.
    let far = table
        .map(iova(GIB1), phys(0), PageSize::Size4K, Access::Read)
        .unwrap();
    assert!(!far.needs_invalidation(CachingMode::Disabled));
    nearby.complete(proof());
    far.complete(proof());
    table.complete_unmap(unmapped, proof()).unwrap();
    let later = table
        .map(
            iova(MIB2 + 9 * KIB4),
            phys(0),
            PageSize::Size4K,
            Access::Read,
        )
        .unwrap();
    assert!(!later.needs_invalidation(CachingMode::Disabled));
    later.complete(proof());
}

#[test]
fn flush_tokens_belong_to_their_table() {
    let mut first = table(Levels::Three);
    let mut second = table(Levels::Three);
    map(&mut first, 0x1000, 0x1000, PageSize::Size4K, Access::Read);
    map(&mut second, 0x1000, 0x1000, PageSize::Size4K, Access::Read);
    let flush = first.unmap(iova(0)..iova(GIB1)).unwrap();
    let returned = second
        .complete_unmap(flush, proof())
        .unwrap_err()
        .into_flush();
    assert_eq!(second.memory().frees, 0);
    let mut other = second.unmap(iova(0)..iova(GIB1)).unwrap();
    let mut returned = other.merge(returned).unwrap_err();
    let first_map = first
        .map(iova(GIB1), phys(0), PageSize::Size4K, Access::Read)
        .unwrap();
    let mut second_map = second
        .map(iova(GIB1), phys(0), PageSize::Size4K, Access::Read)
        .unwrap();
    let first_map = second_map.merge(first_map).unwrap_err();
    first_map.complete(proof());
    second_map.complete(proof());
    let empty = first.unmap(iova(0)..iova(0)).unwrap();
    returned.merge(empty).unwrap();
    first.complete_unmap(returned, proof()).unwrap();
    second.complete_unmap(other, proof()).unwrap();
    assert_eq!((first.pending_unmaps(), second.pending_unmaps()), (0, 0));
}

#[test]
fn merged_unmaps_share_one_invalidation() {
    let mut table = table(Levels::Four);
    map(&mut table, 0x1000, 0x1000, PageSize::Size4K, Access::Read);
    map(&mut table, 0x7000, 0x7000, PageSize::Size4K, Access::Read);
    map(&mut table, 0x9000, 0x9000, PageSize::Size4K, Access::Read);
    let mut flush = table.unmap(iova(0x1000)..iova(0x2000)).unwrap();
    flush
        .merge(table.unmap(iova(0x7000)..iova(0x8000)).unwrap())
        .unwrap();
    assert_eq!(
        flush.invalidation(QEMU_PSI),
        page_selective(0, 3, InvalidationHint::LeafEntriesOnly)
    );
    assert_eq!(table.pending_unmaps(), 2);
    table.complete_unmap(flush, proof()).unwrap();
    assert_eq!(table.pending_unmaps(), 0);
    assert!(table.translate(iova(0x9000)).is_some());
}

#[test]
fn destroy_frees_every_frame() {
    let mut table = table(Levels::Four);
    map(&mut table, 0x1000, 0x1000, PageSize::Size4K, Access::Read);
    map(&mut table, MIB2, 0, PageSize::Size2M, Access::Read);
    map(&mut table, GIB1, 0, PageSize::Size1G, Access::Read);
    map(&mut table, 1 << 40, 0, PageSize::Size4K, Access::Read);
    let memory = table.destroy(proof());
    assert_eq!(memory.allocations, memory.frees);
    assert_eq!(memory.live(), 0);
}
