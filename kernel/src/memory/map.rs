//! The physical memory map: firmware regions plus the kernel's own reservations, kept in
//! fixed-capacity arrays (it is built before the heap exists) and always normalized.
//!
//! Firmware maps are unsorted and overlap. The normalized view is sorted and non-overlapping;
//! where inputs overlap the more restrictive kind wins, reservations beat every kind, adjacent
//! regions of one kind merge, and usable regions shrink inward to whole 4 KiB frames.

use core::fmt;

use super::FRAME_SIZE;

/// How many firmware regions a [`MemoryMap`] holds.
pub const MAX_REGIONS: usize = 128;
/// How many kernel reservations (holes) a [`MemoryMap`] holds.
pub const MAX_RESERVATIONS: usize = 16;
/// Every input contributes at most two boundaries, so the normalized view has fewer pieces.
const MAX_NORMALIZED: usize = 2 * (MAX_REGIONS + MAX_RESERVATIONS);

/// What a range of physical memory is, as reported by firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegionKind {
    /// RAM the kernel may use (e820 type 1).
    Usable,
    /// Must not be used (e820 type 2, and any type this kernel does not know).
    Reserved,
    /// Holds ACPI tables; reusable once they are no longer needed (e820 type 3).
    AcpiReclaimable,
    /// ACPI non-volatile storage, kept by firmware across sleep states (e820 type 4).
    AcpiNvs,
    /// RAM with detected errors (e820 type 5).
    Unusable,
    /// Firmware code or data (e.g. UEFI runtime services), reported by non-e820 sources.
    Firmware,
}

impl RegionKind {
    /// Converts an e820 / multiboot2 memory type; unknown types are treated as reserved.
    pub const fn from_e820(kind: u32) -> RegionKind {
        match kind {
            1 => RegionKind::Usable,
            2 => RegionKind::Reserved,
            3 => RegionKind::AcpiReclaimable,
            4 => RegionKind::AcpiNvs,
            5 => RegionKind::Unusable,
            _ => RegionKind::Reserved,
        }
    }

    /// Which kind wins where firmware regions overlap: higher is more restrictive, ordered by
    /// how long the memory must stay untouched. Usable always loses.
    const fn precedence(self) -> u8 {
        match self {
            RegionKind::Usable => 0,
            RegionKind::AcpiReclaimable => 1,
            RegionKind::Firmware => 2,
            RegionKind::AcpiNvs => 3,
            RegionKind::Reserved => 4,
            RegionKind::Unusable => 5,
        }
    }
}

/// A half-open physical address range `[start, end)` of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region {
    /// First byte of the region.
    pub start: u64,
    /// One past the last byte (exclusive).
    pub end: u64,
    /// What the memory is.
    pub kind: RegionKind,
}

impl Region {
    /// A region from `start` (inclusive) to `end` (exclusive).
    pub const fn new(start: u64, end: u64, kind: RegionKind) -> Region {
        Region { start, end, kind }
    }

    /// A region from an e820-style base and length, failing if the end would overflow.
    pub const fn from_base_length(
        base: u64,
        length: u64,
        kind: RegionKind,
    ) -> Result<Region, MapError> {
        match base.checked_add(length) {
            Some(end) => Ok(Region::new(base, end, kind)),
            None => Err(MapError::AddressOverflow),
        }
    }

    /// Length in bytes (zero for an empty or inverted region).
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the region contains no bytes (`end <= start`).
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Whether `address` lies inside the region.
    pub const fn contains(&self, address: u64) -> bool {
        self.start <= address && address < self.end
    }
}

/// A range the kernel carved out of the map (kernel image, boot info, frame bitmap, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// First byte reserved.
    pub start: u64,
    /// One past the last byte reserved (exclusive).
    pub end: u64,
    /// Why, for the boot report (e.g. "kernel image").
    pub why: &'static str,
}

/// Why a region or reservation was not added to a [`MemoryMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapError {
    /// All [`MAX_REGIONS`] region slots are used.
    Full,
    /// All [`MAX_RESERVATIONS`] reservation slots are used.
    TooManyReservations,
    /// The range is empty or inverted (`end <= start`).
    EmptyRegion {
        /// The rejected start.
        start: u64,
        /// The rejected end.
        end: u64,
    },
    /// `base + length` does not fit in 64 bits.
    AddressOverflow,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::Full => write!(f, "memory map full ({MAX_REGIONS} regions)"),
            MapError::TooManyReservations => {
                write!(f, "too many reservations ({MAX_RESERVATIONS})")
            }
            MapError::EmptyRegion { start, end } => {
                write!(f, "empty or inverted region {start:#x}..{end:#x}")
            }
            MapError::AddressOverflow => write!(f, "region end overflows 64 bits"),
        }
    }
}

const NO_REGION: Region = Region::new(0, 0, RegionKind::Reserved);
const NO_RESERVATION: Reservation = Reservation {
    start: 0,
    end: 0,
    why: "",
};

/// The physical memory map, with fixed capacity and no heap.
///
/// The normalized view ([`regions`](MemoryMap::regions) and the queries) is recomputed on every
/// [`push`](MemoryMap::push) and [`reserve`](MemoryMap::reserve), so it is never stale; the
/// firmware's own entries stay available through [`raw`](MemoryMap::raw).
#[derive(Debug, Clone)]
pub struct MemoryMap {
    raw: [Region; MAX_REGIONS],
    raw_len: usize,
    reservations: [Reservation; MAX_RESERVATIONS],
    reservation_len: usize,
    normalized: [Region; MAX_NORMALIZED],
    normalized_len: usize,
}

impl Default for MemoryMap {
    fn default() -> Self {
        MemoryMap::new()
    }
}

impl MemoryMap {
    /// An empty map.
    pub const fn new() -> MemoryMap {
        MemoryMap {
            raw: [NO_REGION; MAX_REGIONS],
            raw_len: 0,
            reservations: [NO_RESERVATION; MAX_RESERVATIONS],
            reservation_len: 0,
            normalized: [NO_REGION; MAX_NORMALIZED],
            normalized_len: 0,
        }
    }

    /// Adds a firmware region. Regions may come in any order and may overlap.
    pub fn push(&mut self, region: Region) -> Result<(), MapError> {
        if region.is_empty() {
            return Err(MapError::EmptyRegion {
                start: region.start,
                end: region.end,
            });
        }
        let slot = self.raw.get_mut(self.raw_len).ok_or(MapError::Full)?;
        *slot = region;
        self.raw_len += 1;
        self.normalize();
        Ok(())
    }

    /// Carves `[start, end)` out of the map: wherever it overlaps a region, that part becomes
    /// [`RegionKind::Reserved`] whatever its kind. It does not create memory where the firmware
    /// reported none.
    pub fn reserve(&mut self, start: u64, end: u64, why: &'static str) -> Result<(), MapError> {
        if end <= start {
            return Err(MapError::EmptyRegion { start, end });
        }
        let slot = self
            .reservations
            .get_mut(self.reservation_len)
            .ok_or(MapError::TooManyReservations)?;
        *slot = Reservation { start, end, why };
        self.reservation_len += 1;
        self.normalize();
        Ok(())
    }

    /// The normalized regions: sorted, non-overlapping, non-empty, adjacent regions of one kind
    /// merged, usable regions 4 KiB aligned at both ends.
    pub fn regions(&self) -> &[Region] {
        self.normalized.get(..self.normalized_len).unwrap_or(&[])
    }

    /// The firmware regions as pushed, unsorted and possibly overlapping.
    pub fn raw(&self) -> &[Region] {
        self.raw.get(..self.raw_len).unwrap_or(&[])
    }

    /// The kernel's reservations, in the order they were made.
    pub fn reservations(&self) -> &[Reservation] {
        self.reservations.get(..self.reservation_len).unwrap_or(&[])
    }

    /// The usable normalized regions, lowest first.
    pub fn usable(&self) -> impl Iterator<Item = &Region> + '_ {
        self.regions()
            .iter()
            .filter(|region| region.kind == RegionKind::Usable)
    }

    /// Total bytes of usable memory (a multiple of 4 KiB).
    pub fn total_usable(&self) -> u64 {
        self.usable().map(Region::len).sum()
    }

    /// End (exclusive) of the highest usable region, or `None` if nothing is usable.
    pub fn highest_usable_end(&self) -> Option<u64> {
        self.usable().last().map(|region| region.end)
    }

    /// The lowest address `a` with `a % align == 0` such that `[a, a + len)` lies inside one
    /// usable region (so outside every reservation).
    ///
    /// Never returns anything in the first frame: address 0 would be a null pointer under the
    /// kernel's identity mapping. Returns `None` if `len` is zero, `align` is not a power of
    /// two, or nothing fits.
    pub fn find_free(&self, len: u64, align: u64) -> Option<u64> {
        if len == 0 || !align.is_power_of_two() {
            return None;
        }
        self.usable().find_map(|region| {
            let start = region
                .start
                .max(FRAME_SIZE)
                .checked_next_multiple_of(align)?;
            let end = start.checked_add(len)?;
            (end <= region.end).then_some(start)
        })
    }

    /// Recomputes the normalized view from the raw regions and reservations.
    ///
    /// A sweep over every boundary point: each elementary interval between two consecutive
    /// boundaries has one kind (the most restrictive covering region, or reserved under a
    /// reservation), so the result is exact. `O(n^2)` with `n <= 288`, no heap.
    fn normalize(&mut self) {
        let mut out_len: usize = 0;
        let mut point = self.boundaries().min();
        while let Some(start) = point {
            let end = self.boundaries().filter(|&b| b > start).min();
            let (Some(end), Some(kind)) = (end, self.kind_at(start)) else {
                point = end;
                continue;
            };
            let previous = out_len
                .checked_sub(1)
                .and_then(|last| self.normalized.get_mut(last));
            match previous {
                Some(last) if last.end == start && last.kind == kind => last.end = end,
                _ => {
                    if let Some(slot) = self.normalized.get_mut(out_len) {
                        *slot = Region::new(start, end, kind);
                        out_len += 1;
                    }
                }
            }
            point = Some(end);
        }
        self.normalized_len = shrink_usable(self.normalized.get_mut(..out_len).unwrap_or(&mut []));
    }

    /// Every start and end of a raw region or reservation.
    fn boundaries(&self) -> impl Iterator<Item = u64> + '_ {
        let regions = self.raw().iter().flat_map(|r| [r.start, r.end]);
        let holes = self.reservations().iter().flat_map(|r| [r.start, r.end]);
        regions.chain(holes)
    }

    /// The kind of the byte at `address` after resolving overlaps, or `None` in a gap.
    fn kind_at(&self, address: u64) -> Option<RegionKind> {
        let kind = self
            .raw()
            .iter()
            .filter(|region| region.contains(address))
            .map(|region| region.kind)
            .max_by_key(|kind| kind.precedence())?;
        let reserved = self
            .reservations()
            .iter()
            .any(|hole| hole.start <= address && address < hole.end);
        Some(if reserved { RegionKind::Reserved } else { kind })
    }
}

/// Shrinks usable regions inward to whole frames, drops the ones that become empty, compacts the
/// slice in place and returns the new length.
fn shrink_usable(regions: &mut [Region]) -> usize {
    let mut kept = 0;
    for index in 0..regions.len() {
        let Some(mut region) = regions.get(index).copied() else {
            break;
        };
        if region.kind == RegionKind::Usable {
            region.end -= region.end % FRAME_SIZE;
            match region.start.checked_next_multiple_of(FRAME_SIZE) {
                Some(start) if start < region.end => region.start = start,
                _ => continue,
            }
        }
        if let Some(slot) = regions.get_mut(kept) {
            *slot = region;
            kept += 1;
        }
    }
    kept
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
