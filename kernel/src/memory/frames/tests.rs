//! Tests for the frame allocator: construction, exhaustion, contiguous runs, error cases and a
//! property test against a set-based model.

use super::*;
use crate::memory::{MemoryMap, Region, RegionKind};
use alloc::vec;
use alloc::vec::Vec;
use proptest::prelude::*;
use std::collections::BTreeSet;

const PAGE: u64 = FRAME_SIZE;

fn map_of(regions: &[(u64, u64, RegionKind)], holes: &[(u64, u64)]) -> MemoryMap {
    let mut map = MemoryMap::new();
    for &(start, end, kind) in regions {
        map.push(Region::new(start, end, kind)).expect("fits");
    }
    for &(start, end) in holes {
        map.reserve(start, end, "test hole").expect("fits");
    }
    map
}

fn storage_for(map: &MemoryMap) -> Vec<u64> {
    vec![0; FrameAllocator::words_needed(map)]
}

fn drain(allocator: &mut FrameAllocator<'_>) -> Vec<u64> {
    let mut starts = Vec::new();
    while let Ok(frame) = allocator.allocate() {
        starts.push(frame.start());
    }
    starts
}

#[test]
fn storage_size_is_checked_and_extra_words_are_untouched() {
    let map = map_of(&[(0, 0x100 * PAGE, RegionKind::Usable)], &[]);
    let needed = FrameAllocator::words_needed(&map);
    assert_eq!(needed, 2 * 4, "256 frames: 4 words per bitmap");
    let mut short = vec![0; needed - 1];
    assert_eq!(
        FrameAllocator::new(&map, &mut short).err(),
        Some(FrameError::StorageTooSmall {
            needed,
            provided: needed - 1
        })
    );
    let mut long = vec![0xdead_beef_u64; needed + 3];
    {
        let allocator = FrameAllocator::new(&map, &mut long).expect("enough storage");
        assert_eq!(allocator.total_count(), 255, "frame 0 is excluded");
        assert_eq!(allocator.free_count(), 255);
    }
    assert_eq!(&long[needed..], &[0xdead_beef; 3]);
}

#[test]
fn empty_map_has_nothing_to_give() {
    let map = MemoryMap::new();
    assert_eq!(FrameAllocator::words_needed(&map), 0);
    let mut storage = [];
    let mut allocator = FrameAllocator::new(&map, &mut storage).expect("no storage needed");
    assert_eq!(allocator.allocate(), Err(FrameError::Exhausted));
    assert_eq!(
        allocator.allocate_contiguous(1, 1),
        Err(FrameError::Exhausted)
    );
    assert_eq!(
        allocator.free(Frame::containing(0x1000)),
        Err(FrameError::NotManaged)
    );
}

#[test]
fn frame_zero_is_never_handed_out() {
    let map = map_of(&[(0, 4 * PAGE, RegionKind::Usable)], &[]);
    let mut storage = storage_for(&map);
    let mut allocator = FrameAllocator::new(&map, &mut storage).expect("fits");
    assert_eq!(drain(&mut allocator), [PAGE, 2 * PAGE, 3 * PAGE]);
    assert_eq!(
        allocator.free(Frame::containing(0)),
        Err(FrameError::NotManaged)
    );
}

#[test]
fn only_usable_unreserved_frames_are_handed_out() {
    // Overlapping, unsorted firmware entries plus kernel reservations.
    let map = map_of(
        &[
            (0x10_0000, 0x80_0000, RegionKind::Usable),
            (0x0, 0x9_fc00, RegionKind::Usable),
            (0x9_f000, 0x10_0000, RegionKind::Reserved),
            (0x40_0000, 0x40_3000, RegionKind::AcpiNvs),
            (0x7f_f800, 0x90_0000, RegionKind::Usable),
        ],
        &[
            (0, 0x10_0000),
            (0x10_0000, 0x23_4567),
            (0x60_0000, 0x60_0001),
        ],
    );
    let mut storage = storage_for(&map);
    let mut allocator = FrameAllocator::new(&map, &mut storage).expect("fits");
    let starts = drain(&mut allocator);
    assert_eq!(starts.len() as u64, map.total_usable() / PAGE);
    assert_eq!(allocator.total_count(), starts.len());
    assert_eq!(allocator.free_count(), 0);
    let forbidden = [
        (0, 0x23_5000),
        (0x40_0000, 0x40_3000),
        (0x60_0000, 0x60_1000),
        (0x90_0000, u64::MAX),
    ];
    for start in &starts {
        assert!(
            !forbidden.iter().any(|&(s, e)| s <= *start && *start < e),
            "{start:#x}"
        );
    }
    let unique: BTreeSet<u64> = starts.iter().copied().collect();
    assert_eq!(unique.len(), starts.len(), "no frame handed out twice");
    assert_eq!(unique.first(), Some(&0x23_5000));
    assert_eq!(unique.last(), Some(&(0x90_0000 - PAGE)));
}

#[test]
fn exhaustion_then_free_then_allocate_again() {
    let map = map_of(&[(PAGE, 200 * PAGE, RegionKind::Usable)], &[]);
    let mut storage = storage_for(&map);
    let mut allocator = FrameAllocator::new(&map, &mut storage).expect("fits");
    let starts = drain(&mut allocator);
    assert_eq!(starts.len(), 199);
    assert_eq!(allocator.allocate(), Err(FrameError::Exhausted));
    allocator
        .free(Frame::containing(77 * PAGE))
        .expect("was allocated");
    assert_eq!(allocator.free_count(), 1);
    assert_eq!(allocator.allocate().map(|f| f.start()), Ok(77 * PAGE));
    assert_eq!(allocator.allocate(), Err(FrameError::Exhausted));
}

#[test]
fn next_fit_does_not_reuse_a_just_freed_frame_first() {
    let map = map_of(&[(0, 300 * PAGE, RegionKind::Usable)], &[]);
    let mut storage = storage_for(&map);
    let mut allocator = FrameAllocator::new(&map, &mut storage).expect("fits");
    let first = allocator.allocate().expect("free");
    assert_eq!(first.start(), PAGE);
    for _ in 0..150 {
        allocator.allocate().expect("free");
    }
    allocator.free(first).expect("allocated");
    // The search continues after the last allocation rather than rescanning from the start...
    assert_eq!(allocator.allocate().map(|f| f.start()), Ok(152 * PAGE));
    // ...and wraps around to frame 1 once the tail is used up.
    let rest = drain(&mut allocator);
    assert_eq!(rest.last(), Some(&PAGE));
}

#[test]
fn errors_on_free() {
    let map = map_of(
        &[
            (0, 64 * PAGE, RegionKind::Usable),
            (64 * PAGE, 80 * PAGE, RegionKind::Reserved),
        ],
        &[(10 * PAGE, 12 * PAGE)],
    );
    let mut storage = storage_for(&map);
    let mut allocator = FrameAllocator::new(&map, &mut storage).expect("fits");
    let frame = allocator.allocate().expect("free");
    let start = frame.start();
    allocator.free(frame).expect("allocated");
    assert_eq!(
        allocator.free(Frame::containing(start)),
        Err(FrameError::DoubleFree)
    );
    assert_eq!(
        allocator.free(Frame::containing(40 * PAGE)),
        Err(FrameError::DoubleFree),
        "never allocated"
    );
    for not_ours in [
        10 * PAGE,
        11 * PAGE,
        64 * PAGE,
        79 * PAGE,
        1 << 40,
        u64::MAX,
    ] {
        assert_eq!(
            allocator.free(Frame::containing(not_ours)),
            Err(FrameError::NotManaged),
            "{not_ours:#x}"
        );
    }
    assert_eq!(allocator.free_count(), 63 - 2);
}

#[test]
fn contiguous_runs_respect_alignment_and_holes() {
    let map = map_of(
        &[(0, 1024 * PAGE, RegionKind::Usable)],
        &[(3 * PAGE, 4 * PAGE), (520 * PAGE, 521 * PAGE)],
    );
    let mut storage = storage_for(&map);
    let mut allocator = FrameAllocator::new(&map, &mut storage).expect("fits");
    let total = allocator.free_count();

    // Lowest fit: frames 1 and 2, before the hole at 3.
    assert_eq!(
        allocator.allocate_contiguous(2, 1).map(|f| f.start()),
        Ok(PAGE)
    );
    // Three frames do not fit before the hole; they start after it.
    assert_eq!(
        allocator.allocate_contiguous(3, 1).map(|f| f.start()),
        Ok(4 * PAGE)
    );
    // 2 MiB aligned run of 512 frames: frame 512 would cross the hole at 520.
    assert_eq!(
        allocator.allocate_contiguous(512, 512),
        Err(FrameError::Exhausted)
    );
    // 100 frames aligned to 64 crossing word boundaries: 64..164.
    let run = allocator.allocate_contiguous(100, 64).expect("fits");
    assert_eq!(run.start(), 64 * PAGE);
    assert_eq!(allocator.free_count(), total - 105);
    // Every frame of the run is now busy: freeing each works exactly once.
    for index in 64..164 {
        allocator
            .free(Frame::containing(index * PAGE))
            .expect("allocated");
    }
    assert_eq!(
        allocator.free(Frame::containing(64 * PAGE)),
        Err(FrameError::DoubleFree)
    );
    assert_eq!(
        allocator.allocate_contiguous(1, 1024),
        Err(FrameError::Exhausted),
        "frame 0 is the only 1024-aligned frame"
    );
}

#[test]
fn contiguous_rejects_bad_requests() {
    let map = map_of(&[(0, 64 * PAGE, RegionKind::Usable)], &[]);
    let mut storage = storage_for(&map);
    let mut allocator = FrameAllocator::new(&map, &mut storage).expect("fits");
    for (count, align) in [(0, 1), (1, 0), (1, 3), (4, 6)] {
        assert_eq!(
            allocator.allocate_contiguous(count, align),
            Err(FrameError::InvalidRequest),
            "{count} {align}"
        );
    }
    assert_eq!(
        allocator.allocate_contiguous(usize::MAX, 1),
        Err(FrameError::Exhausted)
    );
    assert_eq!(
        allocator.allocate_contiguous(63, 1).map(|f| f.start()),
        Ok(PAGE)
    );
    assert_eq!(allocator.allocate(), Err(FrameError::Exhausted));
}

#[test]
fn words_needed_never_grows_with_reservations() {
    let mut map = map_of(&[(0, 4096 * PAGE, RegionKind::Usable)], &[]);
    let before = FrameAllocator::words_needed(&map);
    let bitmap_bytes = before as u64 * 8;
    let at = map.find_free(bitmap_bytes, PAGE).expect("room");
    map.reserve(at, at + bitmap_bytes, "frame bitmap")
        .expect("fits");
    assert!(FrameAllocator::words_needed(&map) <= before);
    map.reserve(4000 * PAGE, 4096 * PAGE, "top").expect("fits");
    assert!(FrameAllocator::words_needed(&map) < before);
}

#[test]
fn large_map_allocates_quickly() {
    // 4 GiB: a million frames. Draining with next-fit touches each word a bounded number of
    // times, so this stays fast even in debug builds.
    let map = map_of(&[(0, 4 << 30, RegionKind::Usable)], &[(0, 16 << 20)]);
    let mut storage = storage_for(&map);
    let mut allocator = FrameAllocator::new(&map, &mut storage).expect("fits");
    let expected = (4 << 30) / PAGE as usize - 4096;
    assert_eq!(allocator.total_count(), expected);
    let mut count = 0;
    while allocator.allocate().is_ok() {
        count += 1;
    }
    assert_eq!(count, expected);
}

#[test]
fn error_display() {
    use alloc::string::ToString;
    assert_eq!(FrameError::DoubleFree.to_string(), "frame freed twice");
}

#[derive(Debug, Clone)]
enum Operation {
    Allocate,
    AllocateContiguous(usize, usize),
    FreeAllocated(usize),
    FreeAny(u64),
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        4 => Just(Operation::Allocate),
        1 => (1usize..6, 0u32..4).prop_map(|(n, shift)| Operation::AllocateContiguous(n, 1 << shift)),
        3 => any::<usize>().prop_map(Operation::FreeAllocated),
        1 => (0u64..140).prop_map(Operation::FreeAny),
    ]
}

fn usable_map() -> impl Strategy<Value = MemoryMap> {
    let region = (
        0u64..128,
        1u64..48,
        prop_oneof![3 => Just(RegionKind::Usable), 1 => Just(RegionKind::Reserved)],
    );
    let hole = (0u64..128, 1u64..8);
    (
        proptest::collection::vec(region, 1..6),
        proptest::collection::vec(hole, 0..3),
    )
        .prop_map(|(regions, holes)| {
            let regions: Vec<_> = regions
                .into_iter()
                .map(|(start, len, kind)| (start * PAGE + 0x800, (start + len) * PAGE, kind))
                .collect();
            let holes: Vec<_> = holes
                .into_iter()
                .map(|(start, len)| (start * PAGE, (start + len) * PAGE - 1))
                .collect();
            map_of(&regions, &holes)
        })
}

proptest! {
    /// The allocator agrees with a model that is just a set of free frame numbers.
    #[test]
    fn matches_set_model(map in usable_map(), operations in proptest::collection::vec(operation(), 0..80)) {
        let managed: BTreeSet<u64> = map
            .usable()
            .flat_map(|r| r.start / PAGE..r.end / PAGE)
            .filter(|&n| n != 0)
            .collect();
        let mut free = managed.clone();
        let mut allocated: Vec<u64> = Vec::new();
        let mut storage = storage_for(&map);
        let mut allocator = FrameAllocator::new(&map, &mut storage).expect("fits");
        prop_assert_eq!(allocator.total_count(), managed.len());

        for operation in operations {
            match operation {
                Operation::Allocate => match allocator.allocate() {
                    Ok(frame) => {
                        prop_assert!(free.remove(&frame.number()), "{:#x} not free", frame.start());
                        allocated.push(frame.number());
                    }
                    Err(error) => {
                        prop_assert_eq!(error, FrameError::Exhausted);
                        prop_assert!(free.is_empty());
                    }
                },
                Operation::AllocateContiguous(count, align) => {
                    let lowest = free
                        .iter()
                        .copied()
                        .filter(|n| n % align as u64 == 0)
                        .find(|&n| (n..n + count as u64).all(|m| free.contains(&m)));
                    let result = allocator.allocate_contiguous(count, align).map(|f| f.number());
                    prop_assert_eq!(result, lowest.ok_or(FrameError::Exhausted));
                    if let Some(first) = lowest {
                        for n in first..first + count as u64 {
                            free.remove(&n);
                            allocated.push(n);
                        }
                    }
                }
                Operation::FreeAllocated(pick) => {
                    if !allocated.is_empty() {
                        let n = allocated.swap_remove(pick % allocated.len());
                        prop_assert_eq!(allocator.free(Frame::containing(n * PAGE)), Ok(()));
                        free.insert(n);
                    }
                }
                Operation::FreeAny(n) => {
                    let expected = if !managed.contains(&n) {
                        Err(FrameError::NotManaged)
                    } else if free.contains(&n) {
                        Err(FrameError::DoubleFree)
                    } else {
                        allocated.retain(|&m| m != n);
                        free.insert(n);
                        Ok(())
                    };
                    prop_assert_eq!(allocator.free(Frame::containing(n * PAGE)), expected);
                }
            }
            prop_assert_eq!(allocator.free_count(), free.len());
        }
    }
}
