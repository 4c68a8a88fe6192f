//! Property test: random sequences of map, unmap, flush completion and flush merging, including
//! 2 MiB and 1 GiB superpages and overlapping unmaps, run against the page-table engine and a
//! plain model side by side, for 3 and 4 levels.
//!
//! The model is a `BTreeMap` from a mapping's first 4 KiB page number to (physical address,
//! access, size); a page translates through the entry with the greatest key at or below it, if
//! that mapping reaches it. (Storing every 4 KiB page separately would put 262,144 entries in
//! the map per 1 GiB page; keying by first page keeps the same per-page meaning.)
//!
//! After every step the test compares `translate()` for the addresses the step touched, the
//! edges of every model mapping and a fixed grid of sampled addresses; it checks each error
//! (including which one wins), each flush token's invalidation and freed tables, and that the
//! table memory holds exactly the tables the model implies plus the frames held by tokens.
//! At the end it unmaps everything: the intermediate tables come back only through the tokens,
//! and after completing them only the root is left (allocations == frees + 1).

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use moat_iommu::entries::InvalidationHint;
use moat_iommu::paging::{
    Access, CachingMode, Geometry, InvalidationDone, Iova, Levels, MapError, OutOfMemory,
    PageSelectiveSupport, PageSize, PageTable, PhysAddr, RequiredInvalidation, SuperpageSupport,
    TableMemory, UnmapError, UnmapFlush,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const KIB4: u64 = 0x1000;
const MIB2: u64 = 0x20_0000;
const GIB1: u64 = 0x4000_0000;
/// CAP.MAMV of QEMU 7.2.
const QEMU_PSI: PageSelectiveSupport = PageSelectiveSupport::UpToOrder(18);
const SLOTS: [u64; 4] = [0, 1, 2, 511];

/// Table frames in a `HashMap`; frames are never reused, so touching a freed one panics.
struct HostMemory {
    tables: HashMap<u64, [u64; 512]>,
    next_frame: u64,
    allocations: usize,
    frees: usize,
    /// `Some(n)`: only `n` more allocations succeed.
    budget: Cell<Option<usize>>,
}

impl HostMemory {
    fn new() -> Self {
        Self {
            tables: HashMap::new(),
            next_frame: 0x10_0000,
            allocations: 0,
            frees: 0,
            budget: Cell::new(None),
        }
    }
}

impl TableMemory for HostMemory {
    fn alloc_table(&mut self) -> Result<PhysAddr, OutOfMemory> {
        match self.budget.get() {
            Some(0) => return Err(OutOfMemory),
            Some(left) => self.budget.set(Some(left - 1)),
            None => {}
        }
        let frame = self.next_frame;
        self.next_frame += KIB4;
        self.tables.insert(frame, [0; 512]);
        self.allocations += 1;
        Ok(PhysAddr::new(frame).expect("small frame"))
    }

    fn free_table(&mut self, table: PhysAddr) {
        assert!(
            self.tables.remove(&table.as_u64()).is_some(),
            "double free of {table:?}"
        );
        self.frees += 1;
    }

    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        self.tables
            .get(&table.as_u64())
            .expect("read of a freed frame")[index]
    }

    fn write(&mut self, table: PhysAddr, index: usize, value: u64) {
        self.tables
            .get_mut(&table.as_u64())
            .expect("write to a freed frame")[index] = value;
    }
}

fn proof() -> InvalidationDone {
    // SAFETY: a host test; no remapping hardware caches anything.
    unsafe { InvalidationDone::assume_invalidated() }
}

fn iova(raw: u64) -> Iova {
    Iova::new(raw).expect("test IOVAs stay below 2^57")
}

/// Smallest naturally aligned block of 2^order pages containing `start..end`.
fn covering(start: u64, end: u64) -> (u64, u8) {
    let mut order = 0;
    loop {
        let block = KIB4 << order;
        if start / block == (end - 1) / block {
            return (start / block * block, order);
        }
        order += 1;
    }
}

fn describe(required: RequiredInvalidation) -> Option<(u64, u8, InvalidationHint)> {
    match required {
        RequiredInvalidation::PageSelective { range, hint } => {
            Some((range.addr().as_u64(), range.address_mask_order(), hint))
        }
        _ => None,
    }
}

fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mapping {
    phys: u64,
    access: Access,
    size: PageSize,
}

struct Model {
    /// First 4 KiB page number of each mapping -> the mapping.
    pages: BTreeMap<u64, Mapping>,
    levels: u8,
    width_end: u64,
    superpages: SuperpageSupport,
}

impl Model {
    fn lookup(&self, addr: u64) -> Option<(u64, PageSize, Access)> {
        if addr >= self.width_end {
            return None;
        }
        let (&first, mapping) = self.pages.range(..=addr >> 12).next_back()?;
        let base = first << 12;
        (addr < base + mapping.size.bytes()).then_some((
            mapping.phys + (addr - base),
            mapping.size,
            mapping.access,
        ))
    }

    fn overlapping(&self, start: u64, end: u64) -> Vec<(u64, Mapping)> {
        self.pages
            .range(..end.div_ceil(KIB4))
            .map(|(&first, &mapping)| (first << 12, mapping))
            .filter(|&(base, mapping)| base + mapping.size.bytes() > start && base < end)
            .collect()
    }

    /// Non-root tables the engine must hold: (level, first IOVA covered). A level-`l` table
    /// exists iff some mapping with a leaf at level `l` or below lies inside its region.
    fn tables(&self) -> BTreeSet<(u8, u64)> {
        let mut tables = BTreeSet::new();
        for (&first, mapping) in &self.pages {
            for level in mapping.size.level()..self.levels {
                let region = 1u64 << (12 + 9 * u32::from(level));
                tables.insert((level, (first << 12) & !(region - 1)));
            }
        }
        tables
    }
}

fn region_of((level, base): (u8, u64)) -> (u64, u64) {
    (base, base + (1u64 << (12 + 9 * u32::from(level))))
}

/// An unmap token held by the test, with what the model expects of it.
struct Held {
    flush: UnmapFlush,
    spans: Vec<(u64, u64)>,
    freed_regions: Vec<(u64, u64)>,
}

#[derive(Clone, Copy, Debug)]
enum Region {
    Low,
    High,
    Beyond,
}

#[derive(Clone, Copy, Debug)]
struct Place {
    region: Region,
    gig: u64,
    slot: u64,
    page: u64,
}

impl Place {
    /// The address, keeping only the parts finer than `align` that `keep_fine` asks for.
    fn addr(self, width_end: u64, align: PageSize, keep_fine: bool) -> u64 {
        let base = match self.region {
            Region::Low => 0,
            Region::High => width_end - 4 * GIB1,
            Region::Beyond => width_end,
        };
        let slot = if align != PageSize::Size1G || keep_fine {
            self.slot * MIB2
        } else {
            0
        };
        let page = if align == PageSize::Size4K || keep_fine {
            self.page * KIB4
        } else {
            0
        };
        base + self.gig * GIB1 + slot + page
    }
}

#[derive(Clone, Copy, Debug)]
enum Misalign {
    No,
    Iova,
    Phys,
}

#[derive(Clone, Debug)]
enum Op {
    Map {
        place: Place,
        size: PageSize,
        frame: u64,
        access: Access,
        misalign: Misalign,
        budget: Option<usize>,
    },
    Unmap {
        place: Place,
        align: PageSize,
        length: u64,
        misalign: bool,
        reversed: bool,
    },
    Complete(usize),
    Merge(usize, usize),
}

fn place() -> impl Strategy<Value = Place> {
    let region =
        prop_oneof![8 => Just(Region::Low), 3 => Just(Region::High), 1 => Just(Region::Beyond)];
    (
        region,
        0..4u64,
        prop::sample::select(&SLOTS[..]),
        prop::sample::select(&SLOTS[..]),
    )
        .prop_map(|(region, gig, slot, page)| Place {
            region,
            gig,
            slot,
            page,
        })
}

fn page_size() -> impl Strategy<Value = PageSize> {
    prop_oneof![4 => Just(PageSize::Size4K), 3 => Just(PageSize::Size2M), 2 => Just(PageSize::Size1G)]
}

fn op() -> impl Strategy<Value = Op> {
    let access = prop_oneof![
        Just(Access::Read),
        Just(Access::Write),
        Just(Access::ReadWrite)
    ];
    let misalign =
        prop_oneof![12 => Just(Misalign::No), 1 => Just(Misalign::Iova), 1 => Just(Misalign::Phys)];
    let budget = prop_oneof![5 => Just(None), 1 => (0..3usize).prop_map(Some)];
    let map = (place(), page_size(), 0..64u64, access, misalign, budget).prop_map(
        |(place, size, frame, access, misalign, budget)| Op::Map {
            place,
            size,
            frame,
            access,
            misalign,
            budget,
        },
    );
    let length = prop_oneof![
        (1..4u64).prop_map(|pages| pages * KIB4),
        Just(MIB2),
        Just(MIB2 + KIB4),
        Just(GIB1),
        Just(GIB1 + MIB2),
        Just(3 * GIB1),
        Just(4 * GIB1 + KIB4),
        Just(0),
    ];
    let unmap = (
        place(),
        page_size(),
        length,
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.03),
    )
        .prop_map(|(place, align, length, misalign, reversed)| Op::Unmap {
            place,
            align,
            length,
            misalign,
            reversed,
        });
    prop_oneof![
        6 => map,
        4 => unmap,
        2 => (0..8usize).prop_map(Op::Complete),
        1 => (0..8usize, 0..8usize).prop_map(|(a, b)| Op::Merge(a, b)),
    ]
}

fn superpage_support() -> impl Strategy<Value = SuperpageSupport> {
    prop_oneof![
        6 => Just(SuperpageSupport::all()),
        1 => Just(SuperpageSupport::SIZE_2M),
        1 => Just(SuperpageSupport::empty()),
    ]
}

struct Harness {
    table: PageTable<HostMemory>,
    model: Model,
    held: Vec<Held>,
}

impl Harness {
    fn new(geometry: Geometry, superpages: SuperpageSupport) -> Self {
        let table = PageTable::new(HostMemory::new(), geometry, superpages)
            .unwrap_or_else(|_| panic!("no memory for the root"));
        let model = Model {
            pages: BTreeMap::new(),
            levels: geometry.levels().count(),
            width_end: geometry.iova_end(),
            superpages,
        };
        Self {
            table,
            model,
            held: Vec::new(),
        }
    }

    fn map(
        &mut self,
        start: u64,
        phys: u64,
        size: PageSize,
        access: Access,
        budget: Option<usize>,
    ) -> Result<(), TestCaseError> {
        let end = start + size.bytes();
        let model = &self.model;
        let tables_before = model.tables().len();
        let mut with_new = Model {
            pages: model.pages.clone(),
            ..*model
        };
        with_new
            .pages
            .insert(start >> 12, Mapping { phys, access, size });
        // Only meaningful when the map succeeds; an overlapping insert may replace a mapping.
        let needed = with_new.tables().len().saturating_sub(tables_before);
        let expected = if !model.superpages.supports(size) {
            Err(MapError::SuperpageUnsupported)
        } else if !start.is_multiple_of(size.bytes()) || !phys.is_multiple_of(size.bytes()) {
            Err(MapError::Misaligned)
        } else if end > model.width_end {
            Err(MapError::BeyondAddressWidth)
        } else if self
            .held
            .iter()
            .flat_map(|held| &held.spans)
            .any(|&s| overlaps(s, (start, end)))
        {
            Err(MapError::PendingInvalidation)
        } else if !model.overlapping(start, end).is_empty() {
            Err(MapError::AlreadyMapped)
        } else if budget.is_some_and(|budget| needed > budget) {
            Err(MapError::OutOfMemory)
        } else {
            Ok(())
        };

        self.table.memory().budget.set(budget);
        let result = self
            .table
            .map(iova(start), PhysAddr::new(phys).unwrap(), size, access);
        self.table.memory().budget.set(None);
        prop_assert_eq!(
            result.as_ref().map(|_| ()).map_err(|error| *error),
            expected
        );
        let Ok(flush) = result else { return Ok(()) };

        prop_assert_eq!(flush.mapped(), iova(start)..iova(end), "line 410");
        let stale = self
            .held
            .iter()
            .flat_map(|held| &held.freed_regions)
            .any(|&region| overlaps(region, (start, end)));
        prop_assert_eq!(
            flush.needs_invalidation(CachingMode::Disabled),
            stale,
            "line 416"
        );
        prop_assert!(flush.needs_invalidation(CachingMode::Enabled));
        let (addr, order) = covering(start, end);
        prop_assert_eq!(
            describe(flush.invalidation(CachingMode::Enabled, QEMU_PSI)),
            Some((addr, order, InvalidationHint::AllEntries))
        );
        flush.complete(proof());
        self.model = with_new;
        Ok(())
    }

    fn unmap(&mut self, start: u64, end: u64) -> Result<(), TestCaseError> {
        let model = &self.model;
        let partial = |probe: u64| {
            model
                .overlapping(probe, probe + 1)
                .into_iter()
                .find_map(|(base, mapping)| {
                    (base < start || base + mapping.size.bytes() > end).then_some(
                        UnmapError::PartialSuperpage {
                            start: iova(base),
                            size: mapping.size,
                        },
                    )
                })
        };
        let expected = if start > end {
            Err(UnmapError::InvalidRange)
        } else if !start.is_multiple_of(KIB4) || !end.is_multiple_of(KIB4) {
            Err(UnmapError::Misaligned)
        } else if end > model.width_end {
            Err(UnmapError::BeyondAddressWidth)
        } else if start == end {
            Ok(Vec::new())
        } else if let Some(error) = partial(start).or_else(|| partial(end - 1)) {
            Err(error)
        } else {
            Ok(model.overlapping(start, end))
        };

        let frees_before = self.table.memory().frees;
        let result = self.table.unmap(iova(start)..iova(end));
        prop_assert_eq!(
            result.as_ref().map(|_| ()).map_err(|error| *error),
            expected.as_ref().map(|_| ()).map_err(|error| *error)
        );
        let (Ok(flush), Ok(removed)) = (result, expected) else {
            return Ok(());
        };

        // Freed tables are handed over, not freed.
        prop_assert_eq!(self.table.memory().frees, frees_before, "line 468");
        let tables_before = self.model.tables();
        for (base, _) in &removed {
            self.model.pages.remove(&(base >> 12));
        }
        let gone: Vec<(u64, u64)> = tables_before
            .difference(&self.model.tables())
            .copied()
            .map(region_of)
            .collect();
        prop_assert_eq!(flush.freed_tables().len(), gone.len(), "line 478");

        let span = removed
            .iter()
            .map(|&(base, mapping)| (base, base + mapping.size.bytes()))
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)));
        prop_assert_eq!(
            flush.unmapped_span(),
            span.map(|(s, e)| iova(s)..iova(e)),
            "line 484"
        );
        match span {
            None => prop_assert_eq!(flush.invalidation(QEMU_PSI), RequiredInvalidation::None),
            Some((span_start, span_end)) => {
                let (addr, order) = covering(span_start, span_end);
                let hint = if gone.is_empty() {
                    InvalidationHint::LeafEntriesOnly
                } else {
                    InvalidationHint::AllEntries
                };
                let required = flush.invalidation(QEMU_PSI);
                if order <= 18 {
                    prop_assert_eq!(describe(required), Some((addr, order, hint)), "line 496");
                } else {
                    prop_assert_eq!(required, RequiredInvalidation::DomainSelective, "line 498");
                }
                let small = flush.invalidation(PageSelectiveSupport::UpToOrder(3));
                prop_assert_eq!(
                    order > 3,
                    small == RequiredInvalidation::DomainSelective,
                    "line 501"
                );
                prop_assert_eq!(
                    flush.invalidation(PageSelectiveSupport::Unsupported),
                    RequiredInvalidation::DomainSelective
                );
            }
        }
        self.held.push(Held {
            flush,
            spans: span.into_iter().collect(),
            freed_regions: gone,
        });
        Ok(())
    }

    fn complete(&mut self, index: usize) -> Result<(), TestCaseError> {
        if self.held.is_empty() {
            return Ok(());
        }
        let held = self.held.remove(index % self.held.len());
        let frees_before = self.table.memory().frees;
        let count = held.flush.freed_tables().len();
        let result = self.table.complete_unmap(held.flush, proof());
        prop_assert!(result.is_ok());
        prop_assert_eq!(self.table.memory().frees, frees_before + count, "line 525");
        Ok(())
    }

    fn merge(&mut self, first: usize, second: usize) -> Result<(), TestCaseError> {
        let count = self.held.len();
        if count < 2 || first % count == second % count {
            return Ok(());
        }
        let other = self.held.remove(second % count);
        let into = &mut self.held[first % (count - 1)];
        let result = into.flush.merge(other.flush);
        prop_assert!(result.is_ok());
        into.spans.extend(other.spans);
        into.freed_regions.extend(other.freed_regions);
        let span = into
            .spans
            .iter()
            .copied()
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)));
        prop_assert_eq!(
            into.flush.unmapped_span(),
            span.map(|(s, e)| iova(s)..iova(e))
        );
        prop_assert_eq!(
            into.flush.freed_tables().len(),
            into.freed_regions.len(),
            "line 549"
        );
        Ok(())
    }

    /// Compares translations and the table-memory accounting with the model.
    fn check(&self, touched: &[u64]) -> Result<(), TestCaseError> {
        let width_end = self.model.width_end;
        let mut addresses: Vec<u64> = touched.to_vec();
        for (&first, mapping) in &self.model.pages {
            let base = first << 12;
            let end = base + mapping.size.bytes();
            addresses.extend([base.wrapping_sub(1), base, base + 0x123, end - 1, end]);
        }
        for region in [0, width_end - 4 * GIB1] {
            for gig in 0..4 {
                for slot in SLOTS {
                    for page in SLOTS {
                        addresses.push(region + gig * GIB1 + slot * MIB2 + page * KIB4 + 0x123);
                    }
                }
            }
        }
        for addr in addresses.into_iter().filter(|&addr| addr < 1 << 57) {
            let found = self
                .table
                .translate(iova(addr))
                .map(|t| (t.phys.as_u64(), t.size, t.access));
            prop_assert_eq!(found, self.model.lookup(addr), "translate({:#x})", addr);
        }
        let memory = self.table.memory();
        let held_frames: usize = self
            .held
            .iter()
            .map(|held| held.flush.freed_tables().len())
            .sum();
        prop_assert_eq!(
            memory.tables.len(),
            1 + self.model.tables().len() + held_frames
        );
        prop_assert_eq!(
            memory.allocations,
            memory.frees + memory.tables.len(),
            "line 588"
        );
        prop_assert_eq!(
            self.table.pending_unmaps(),
            self.held.iter().map(|held| held.spans.len()).sum::<usize>()
        );
        Ok(())
    }

    /// Unmaps everything, completes every token and checks that only the root is left.
    fn finish(mut self) -> Result<(), TestCaseError> {
        let frees_before = self.table.memory().frees;
        self.unmap(0, self.model.width_end)?;
        prop_assert!(self.model.pages.is_empty());
        prop_assert_eq!(self.table.memory().frees, frees_before, "line 601");
        self.check(&[])?;
        let handed_over: usize = self
            .held
            .iter()
            .map(|held| held.flush.freed_tables().len())
            .sum();
        while !self.held.is_empty() {
            self.complete(0)?;
        }
        let memory = self.table.memory();
        prop_assert_eq!(memory.frees, frees_before + handed_over, "line 612");
        prop_assert_eq!(memory.tables.len(), 1, "only the root is left");
        prop_assert_eq!(memory.allocations, memory.frees + 1, "line 614");
        let memory = self.table.destroy(proof());
        prop_assert_eq!(memory.allocations, memory.frees, "line 616");
        Ok(())
    }
}

fn run(
    geometry: Geometry,
    superpages: SuperpageSupport,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let mut harness = Harness::new(geometry, superpages);
    let width_end = geometry.iova_end();
    for op in ops {
        let touched = match op {
            Op::Map {
                place,
                size,
                frame,
                access,
                misalign,
                budget,
            } => {
                let mut start = place.addr(width_end, size, false);
                let mut phys = frame * size.bytes();
                // Off by half a small page, or by a small page for superpages.
                let wrong = if size == PageSize::Size4K {
                    0x800
                } else {
                    KIB4
                };
                match misalign {
                    Misalign::No => {}
                    Misalign::Iova => start = place.addr(width_end, size, true) + wrong,
                    Misalign::Phys => phys += wrong,
                }
                harness.map(start, phys, size, access, budget)?;
                vec![
                    start,
                    start + size.bytes() / 2,
                    start + size.bytes() - 1,
                    start + size.bytes(),
                ]
            }
            Op::Unmap {
                place,
                align,
                length,
                misalign,
                reversed,
            } => {
                let mut start = place.addr(width_end, align, false);
                let mut end = start + length;
                if misalign {
                    start += 0x800;
                }
                if reversed {
                    (start, end) = (end, start);
                }
                harness.unmap(start, end)?;
                vec![start.wrapping_sub(1), start, end.wrapping_sub(1), end]
            }
            Op::Complete(index) => {
                harness.complete(index)?;
                Vec::new()
            }
            Op::Merge(first, second) => {
                harness.merge(first, second)?;
                Vec::new()
            }
        };
        harness.check(&touched)?;
    }
    harness.finish()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn three_levels_match_the_model(superpages in superpage_support(), ops in vec(op(), 1..64)) {
        run(Geometry::full(Levels::Three), superpages, ops)?;
    }

    #[test]
    fn four_levels_match_the_model(superpages in superpage_support(), ops in vec(op(), 1..64)) {
        run(Geometry::full(Levels::Four), superpages, ops)?;
    }

    #[test]
    fn four_levels_limited_to_39_bits_match_the_model(
        superpages in superpage_support(),
        ops in vec(op(), 1..64),
    ) {
        let geometry = Geometry::new(Levels::Four, 39).expect("39 bits fit 4 levels");
        run(geometry, superpages, ops)?;
    }
}
