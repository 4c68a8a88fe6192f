//! Tests for the memory map on hand-written inputs: realistic firmware maps, overlap rules,
//! reservations, capacity limits and `find_free`.

use super::*;
use RegionKind::{AcpiNvs, AcpiReclaimable, Firmware, Reserved, Unusable, Usable};

const MIB: u64 = 1 << 20;

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

/// The e820 map SeaBIOS gives a 512 MiB QEMU q35 guest, in firmware order.
fn qemu_e820() -> [(u64, u64, u32); 6] {
    [
        (0x0, 0x9fc00, 1),
        (0x9fc00, 0x400, 2),
        (0xf0000, 0x10000, 2),
        (0x10_0000, 0x1fee_0000, 1),
        (0x1ffe_0000, 0x2_0000, 2),
        (0xfffc_0000, 0x4_0000, 2),
    ]
}

#[test]
fn qemu_map_with_kernel_reservations() {
    let mut map = MemoryMap::new();
    for (base, length, kind) in qemu_e820() {
        let r = Region::from_base_length(base, length, RegionKind::from_e820(kind));
        map.push(r.expect("no overflow")).expect("fits");
    }
    map.reserve(0, MIB, "low memory").expect("fits");
    map.reserve(MIB, 0x0034_5678, "kernel image").expect("fits");
    map.reserve(0x0040_0000, 0x0040_0100, "boot info")
        .expect("fits");

    assert_eq!(
        map.regions(),
        &[
            // Low memory, the EBDA and the BIOS area all merge into one reserved run.
            region(0, 0xa0000, Reserved),
            region(0xf0000, 0x0034_5678, Reserved),
            region(0x0034_6000, 0x0040_0000, Usable),
            region(0x0040_0000, 0x0040_0100, Reserved),
            region(0x0040_1000, 0x1ffe_0000, Usable),
            region(0x1ffe_0000, 0x2000_0000, Reserved),
            region(0xfffc_0000, 0x1_0000_0000, Reserved),
        ]
    );
    assert_eq!(map.raw().len(), 6);
    assert_eq!(map.reservations().len(), 3);
    assert_eq!(map.reservations()[1].why, "kernel image");
    assert_eq!(
        map.total_usable(),
        (0x0040_0000 - 0x0034_6000) + (0x1ffe_0000 - 0x0040_1000)
    );
    assert_eq!(map.highest_usable_end(), Some(0x1ffe_0000));
    assert_eq!(map.usable().count(), 2);
}

#[test]
fn e820_types() {
    let kinds = [
        (1, Usable),
        (2, Reserved),
        (3, AcpiReclaimable),
        (4, AcpiNvs),
        (5, Unusable),
        (0, Reserved),
        (6, Reserved),
        (12, Reserved),
        (u32::MAX, Reserved),
    ];
    for (raw, kind) in kinds {
        assert_eq!(RegionKind::from_e820(raw), kind, "type {raw}");
    }
}

#[test]
fn order_of_input_does_not_matter() {
    let regions = [
        region(0x5000, 0x9000, Reserved),
        region(0x0, 0x10000, Usable),
        region(0x8000, 0xc000, AcpiNvs),
        region(0x20000, 0x30000, Usable),
        region(0x2_8000, 0x2_9000, AcpiReclaimable),
    ];
    let forward = map_of(&regions);
    let mut reversed = regions;
    reversed.reverse();
    assert_eq!(forward.regions(), map_of(&reversed).regions());
    assert_eq!(
        forward.regions(),
        &[
            region(0x0, 0x5000, Usable),
            // Reserved is more restrictive than ACPI NVS, so it keeps the overlap.
            region(0x5000, 0x9000, Reserved),
            region(0x9000, 0xc000, AcpiNvs),
            region(0xc000, 0x10000, Usable),
            region(0x20000, 0x28000, Usable),
            region(0x28000, 0x29000, AcpiReclaimable),
            region(0x29000, 0x30000, Usable),
        ]
    );
}

#[test]
fn more_restrictive_kind_wins_in_either_order() {
    let ladder = [
        Usable,
        AcpiReclaimable,
        Firmware,
        AcpiNvs,
        Reserved,
        Unusable,
    ];
    for (weaker_index, &weaker) in ladder.iter().enumerate() {
        for &stronger in &ladder[weaker_index + 1..] {
            for swap in [false, true] {
                let (a, b) = (region(0, 0x4000, weaker), region(0x1000, 0x3000, stronger));
                let map = if swap {
                    map_of(&[b, a])
                } else {
                    map_of(&[a, b])
                };
                let middle = map
                    .regions()
                    .iter()
                    .find(|r| r.contains(0x2000))
                    .map(|r| r.kind);
                assert_eq!(middle, Some(stronger), "{weaker:?} vs {stronger:?}");
            }
        }
    }
}

#[test]
fn identical_and_nested_duplicates_collapse() {
    let map = map_of(&[
        region(0x1000, 0x9000, Usable),
        region(0x1000, 0x9000, Usable),
        region(0x2000, 0x3000, Usable),
        region(0x1000, 0x9000, Reserved),
    ]);
    assert_eq!(map.regions(), &[region(0x1000, 0x9000, Reserved)]);
    assert_eq!(map.total_usable(), 0);
    assert_eq!(map.highest_usable_end(), None);
    assert_eq!(map.find_free(1, 1), None);
}

#[test]
fn adjacent_regions_merge_only_with_the_same_kind() {
    let map = map_of(&[
        region(0x3000, 0x4000, Usable),
        region(0x1000, 0x2000, Usable),
        region(0x2000, 0x3000, Usable),
        region(0x4000, 0x5000, AcpiNvs),
        region(0x5000, 0x6000, AcpiNvs),
        region(0x6000, 0x7000, Reserved),
    ]);
    assert_eq!(
        map.regions(),
        &[
            region(0x1000, 0x4000, Usable),
            region(0x4000, 0x6000, AcpiNvs),
            region(0x6000, 0x7000, Reserved),
        ]
    );
}

#[test]
fn usable_regions_shrink_to_whole_frames() {
    let map = map_of(&[
        region(0x0800, 0x3800, Usable), // -> [0x1000, 0x3000)
        region(0x5001, 0x5fff, Usable), // less than a frame: dropped
        region(0x8800, 0x9000, Usable), // these two pieces make the frame at 0x9000 whole
        region(0x9000, 0x9800, Usable), // ... but only with each other: [0x9000,...) needs 0xa000
        region(0x9800, 0xa000, Usable),
        region(0xb100, 0xb200, Reserved), // non-usable regions keep their exact bounds
    ]);
    assert_eq!(
        map.regions(),
        &[
            region(0x1000, 0x3000, Usable),
            region(0x9000, 0xa000, Usable),
            region(0xb100, 0xb200, Reserved),
        ]
    );
}

#[test]
fn usable_split_by_unaligned_reserved_loses_partial_frames() {
    let map = map_of(&[
        region(0x0, 0x10000, Usable),
        region(0x4800, 0x4900, Reserved),
    ]);
    assert_eq!(
        map.regions(),
        &[
            region(0x0, 0x4000, Usable),
            region(0x4800, 0x4900, Reserved),
            region(0x5000, 0x10000, Usable),
        ]
    );
}

#[test]
fn reservations_beat_every_kind_but_create_no_memory() {
    let mut map = map_of(&[
        region(0x1000, 0x3000, Usable),
        region(0x3000, 0x4000, Unusable),
        region(0x8000, 0x9000, AcpiNvs),
    ]);
    map.reserve(0x2000, 0x3800, "bitmap").expect("fits");
    map.reserve(0x5000, 0x7000, "in a gap").expect("fits");
    assert_eq!(
        map.regions(),
        &[
            region(0x1000, 0x2000, Usable),
            region(0x2000, 0x3800, Reserved),
            region(0x3800, 0x4000, Unusable),
            region(0x8000, 0x9000, AcpiNvs),
        ]
    );
    // A reservation that covers everything leaves nothing usable.
    map.reserve(0, u64::MAX, "all").expect("fits");
    assert_eq!(map.total_usable(), 0);
    assert!(map.regions().iter().all(|r| r.kind == Reserved));
}

#[test]
fn reservation_in_the_middle_splits_usable_memory() {
    let mut map = map_of(&[region(0, 64 * MIB, Usable)]);
    map.reserve(16 * MIB, 16 * MIB + 1, "one byte")
        .expect("fits");
    assert_eq!(
        map.regions(),
        &[
            region(0, 16 * MIB, Usable),
            region(16 * MIB, 16 * MIB + 1, Reserved),
            region(16 * MIB + 0x1000, 64 * MIB, Usable),
        ]
    );
}

#[test]
fn regions_at_the_top_of_the_address_space() {
    let top = u64::MAX - 0xfff; // start of the last frame
    let map = map_of(&[
        region(top - 0x2000, u64::MAX, Usable),
        region(top - 0x3000, top - 0x2800, Usable),
    ]);
    // The last frame cannot be whole with an exclusive u64 end, so it is dropped.
    assert_eq!(map.regions(), &[region(top - 0x2000, top, Usable)]);
    assert_eq!(map.find_free(0x1000, 0x1000), Some(top - 0x2000));
    assert_eq!(map.find_free(0x2000, 0x2000), None);
    assert_eq!(map.find_free(u64::MAX, 1), None);
    assert_eq!(
        Region::from_base_length(top, 0x1000, Usable),
        Err(MapError::AddressOverflow)
    );
    assert_eq!(
        Region::from_base_length(top, 0xfff, Usable),
        Ok(region(top, u64::MAX, Usable))
    );
}

#[test]
fn empty_or_inverted_input_is_rejected() {
    let mut map = MemoryMap::new();
    assert_eq!(
        map.push(region(5, 5, Usable)),
        Err(MapError::EmptyRegion { start: 5, end: 5 })
    );
    assert_eq!(
        map.push(region(9, 5, Usable)),
        Err(MapError::EmptyRegion { start: 9, end: 5 })
    );
    assert_eq!(
        map.reserve(0x2000, 0x1000, "inverted"),
        Err(MapError::EmptyRegion {
            start: 0x2000,
            end: 0x1000
        })
    );
    assert!(map.raw().is_empty() && map.reservations().is_empty() && map.regions().is_empty());
}

#[test]
fn capacity_limits_and_failed_push_changes_nothing() {
    let mut map = MemoryMap::new();
    // Alternate kinds so nothing merges: the worst case for the normalized view.
    for i in 0..MAX_REGIONS as u64 {
        let kind = if i % 2 == 0 { Usable } else { AcpiNvs };
        map.push(region(i * 0x2000, i * 0x2000 + 0x3000, kind))
            .expect("fits");
    }
    for i in 0..MAX_RESERVATIONS as u64 {
        map.reserve(i * 0x8000 + 0x800, i * 0x8000 + 0x900, "hole")
            .expect("fits");
    }
    let before = map.regions().to_vec();
    assert_eq!(map.push(region(0, 1, Usable)), Err(MapError::Full));
    assert_eq!(
        map.reserve(0, 1, "one too many"),
        Err(MapError::TooManyReservations)
    );
    assert_eq!(map.regions(), &before[..]);
    assert_eq!(map.raw().len(), MAX_REGIONS);
    check_invariants(&map);
}

#[test]
fn find_free_respects_alignment_reservations_and_the_first_frame() {
    let mut map = map_of(&[
        region(0, 0x8000, Usable),
        region(0x10_0000, 0x40_0000, Usable),
    ]);
    assert_eq!(
        map.find_free(0x1000, 0x1000),
        Some(0x1000),
        "frame 0 is skipped"
    );
    assert_eq!(map.find_free(1, 1), Some(0x1000));
    assert_eq!(map.find_free(0x7000, 0x1000), Some(0x1000));
    assert_eq!(map.find_free(0x7001, 0x1000), Some(0x10_0000));
    assert_eq!(map.find_free(0x1000, 0x20_0000), Some(0x20_0000));
    map.reserve(0x10_0000, 0x10_0001, "kernel").expect("fits");
    assert_eq!(map.find_free(0x8000, 1), Some(0x10_1000));
    assert_eq!(
        map.find_free(0x30_0000, 1),
        None,
        "reservation splits the run"
    );
    assert_eq!(map.find_free(0, 0x1000), None);
    assert_eq!(map.find_free(0x1000, 0), None);
    assert_eq!(
        map.find_free(0x1000, 0x3000),
        None,
        "align must be a power of two"
    );
}

#[test]
fn display_of_errors() {
    use alloc::string::ToString;
    assert_eq!(
        MapError::EmptyRegion { start: 16, end: 8 }.to_string(),
        "empty or inverted region 0x10..0x8"
    );
    assert_eq!(MapError::Full.to_string(), "memory map full (128 regions)");
}

/// Structural guarantees of the normalized view.
pub(super) fn check_invariants(map: &MemoryMap) {
    let regions = map.regions();
    for r in regions {
        assert!(r.start < r.end, "{r:?} empty");
        if r.kind == Usable {
            assert!(
                r.start % FRAME_SIZE == 0 && r.end % FRAME_SIZE == 0,
                "{r:?}"
            );
        }
    }
    for pair in regions.windows(2) {
        assert!(pair[0].end <= pair[1].start, "{pair:?} overlap or unsorted");
        assert!(
            !(pair[0].end == pair[1].start && pair[0].kind == pair[1].kind),
            "{pair:?} not merged"
        );
    }
}
