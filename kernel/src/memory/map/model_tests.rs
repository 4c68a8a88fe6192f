//! Property tests for the memory map: random overlapping maps compared with a simple model that
//! decides the kind of every byte (or every small cell) on its own.

use super::tests::check_invariants;
use super::*;
use RegionKind::{AcpiNvs, AcpiReclaimable, Firmware, Reserved, Unusable, Usable};
use alloc::vec::Vec;
use proptest::prelude::*;

fn region(start: u64, end: u64, kind: RegionKind) -> Region {
    Region::new(start, end, kind)
}

fn map_of(regions: &[Region]) -> MemoryMap {
    let mut map = MemoryMap::new();
    for &r in regions {
        map.push(r).expect("test map fits");
    }
    map
}

/// Model precedence, written independently of the implementation's table.
fn model_rank(kind: RegionKind) -> u8 {
    [
        Usable,
        AcpiReclaimable,
        Firmware,
        AcpiNvs,
        Reserved,
        Unusable,
    ]
    .iter()
    .position(|&k| k == kind)
    .map_or(0, |p| p as u8)
}

/// The kind of every `unit`-sized cell of `[0, cells * unit)`, computed cell by cell.
fn model(
    regions: &[Region],
    holes: &[(u64, u64)],
    unit: u64,
    cells: u64,
) -> Vec<Option<RegionKind>> {
    let cover = |r: (u64, u64), a: u64| r.0 <= a && a < r.1;
    let mut kinds: Vec<Option<RegionKind>> = (0..cells)
        .map(|cell| {
            let a = cell * unit;
            let kind = regions
                .iter()
                .filter(|r| cover((r.start, r.end), a))
                .map(|r| r.kind)
                .max_by_key(|&k| model_rank(k))?;
            Some(if holes.iter().any(|&h| cover(h, a)) {
                Reserved
            } else {
                kind
            })
        })
        .collect();
    // A usable cell stays usable only if its whole frame is usable.
    let per_frame = (FRAME_SIZE / unit) as usize;
    for frame in kinds.chunks_mut(per_frame) {
        let whole = frame.len() == per_frame && frame.iter().all(|&k| k == Some(Usable));
        for cell in frame.iter_mut().filter(|k| **k == Some(Usable)) {
            if !whole {
                *cell = None;
            }
        }
    }
    kinds
}

fn rendered(map: &MemoryMap, unit: u64, cells: u64) -> Vec<Option<RegionKind>> {
    (0..cells)
        .map(|cell| {
            let a = cell * unit;
            map.regions().iter().find(|r| r.contains(a)).map(|r| r.kind)
        })
        .collect()
}

fn kind() -> impl Strategy<Value = RegionKind> {
    prop_oneof![
        4 => Just(Usable),
        1 => Just(Reserved),
        1 => Just(AcpiReclaimable),
        1 => Just(AcpiNvs),
        1 => Just(Unusable),
        1 => Just(Firmware),
    ]
}

/// A random map on `[0, cells * unit)` with boundaries on multiples of `unit`.
fn random_map(unit: u64, cells: u64) -> impl Strategy<Value = (Vec<Region>, Vec<(u64, u64)>)> {
    let span = (0..cells, 1..=cells / 2);
    let regions = proptest::collection::vec((span.clone(), kind()), 0..10).prop_map(move |v| {
        v.into_iter()
            .map(|((start, len), kind)| region(start * unit, (start + len).min(cells) * unit, kind))
            .filter(|r| !r.is_empty())
            .collect::<Vec<_>>()
    });
    let holes = proptest::collection::vec(span, 0..4).prop_map(move |v| {
        v.into_iter()
            .map(|(start, len)| (start * unit, (start + len).min(cells) * unit))
            .filter(|(s, e)| s < e)
            .collect::<Vec<_>>()
    });
    (regions, holes)
}

fn check_against_model(regions: &[Region], holes: &[(u64, u64)], unit: u64, cells: u64) {
    let mut map = map_of(regions);
    for &(start, end) in holes {
        map.reserve(start, end, "hole").expect("fits");
    }
    check_invariants(&map);
    let expected = model(regions, holes, unit, cells);
    assert_eq!(rendered(&map, unit, cells), expected);
    let usable_cells = expected.iter().filter(|&&k| k == Some(Usable)).count() as u64;
    assert_eq!(map.total_usable(), usable_cells * unit);
    // find_free against brute force over the model, for a few shapes.
    for (len, align) in [
        (1, 1),
        (FRAME_SIZE, FRAME_SIZE),
        (3 * FRAME_SIZE, 2 * FRAME_SIZE),
    ] {
        let fits = |a: u64| {
            (a..a + len)
                .step_by(unit as usize)
                .all(|b| expected.get((b / unit) as usize) == Some(&Some(Usable)))
        };
        // Usable memory starts on frame boundaries, so stepping by a whole cell loses nothing.
        let step = align.max(unit);
        let brute = (FRAME_SIZE.next_multiple_of(step)..cells * unit)
            .step_by(step as usize)
            .find(|&a| fits(a));
        assert_eq!(
            map.find_free(len, align),
            brute,
            "len {len:#x} align {align:#x}"
        );
    }
}

proptest! {
    /// Page-granular-ish: boundaries on 256-byte steps over 32 frames.
    #[test]
    fn normalize_matches_cell_model((regions, holes) in random_map(256, 512)) {
        check_against_model(&regions, &holes, 256, 512);
    }

    /// Byte-granular: arbitrary byte boundaries over three frames.
    #[test]
    fn normalize_matches_byte_model((regions, holes) in random_map(1, 3 * FRAME_SIZE)) {
        check_against_model(&regions, &holes, 1, 3 * FRAME_SIZE);
    }

    /// Insertion order never changes the result.
    #[test]
    fn normalize_ignores_order(
        (regions, holes) in random_map(512, 64),
        rotation in 0usize..10,
    ) {
        let mut rotated = regions.clone();
        if !rotated.is_empty() {
            let by = rotation % rotated.len();
            rotated.rotate_left(by);
        }
        let mut a = map_of(&regions);
        let mut b = map_of(&rotated);
        for &(start, end) in &holes {
            a.reserve(start, end, "hole").expect("fits");
        }
        for &(start, end) in holes.iter().rev() {
            b.reserve(start, end, "hole").expect("fits");
        }
        prop_assert_eq!(a.regions(), b.regions());
    }
}
