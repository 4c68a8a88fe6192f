//! Unmapping a range of IOVAs from a [`PageTable`], collecting the tables that became empty.

use alloc::vec::Vec;
use core::ops::Range;

use crate::entries::{Iova, PageSize, PhysAddr, SlPte};

use super::table::{ENTRIES, PendingUnmap, entry_shift, is_leaf};
use super::{PageTable, TableMemory, UnmapError, UnmapFlush};

/// What one unmap walk removed.
struct Removed {
    /// Start of the first and end of the last leaf removed (`start > end` while none).
    start: u64,
    end: u64,
    freed: Vec<PhysAddr>,
    freed_regions: Vec<(u64, u64)>,
}

/// Whether a table still holds entries after the walk cleared some of it.
#[derive(PartialEq, Eq)]
enum TableState {
    InUse,
    Emptied,
}

impl<M: TableMemory> PageTable<M> {
    /// Unmaps every mapping inside `range` (4 KiB aligned, half-open).
    ///
    /// A superpage only partly inside the range is an error and nothing changes: superpages are
    /// not split behind the caller's back. Tables left empty are unlinked and carried by the
    /// returned token, which asks for one invalidation covering the whole unmapped span, however
    /// many pages it held. Until the token completes, the span cannot be mapped again.
    pub fn unmap(&mut self, range: Range<Iova>) -> Result<UnmapFlush, UnmapError> {
        let (start, end) = (range.start.as_u64(), range.end.as_u64());
        if start > end {
            return Err(UnmapError::InvalidRange);
        }
        if !range.start.is_aligned(PageSize::Size4K) || !range.end.is_aligned(PageSize::Size4K) {
            return Err(UnmapError::Misaligned);
        }
        if end > self.geometry.iova_end() {
            return Err(UnmapError::BeyondAddressWidth);
        }
        if start == end {
            return Ok(UnmapFlush::new(self.id, None, None, Vec::new()));
        }
        // A superpage partly inside the range must contain its first or its last page.
        for probe in [start, end - 1] {
            if let Some(leaf) = self.find_leaf(probe)
                && (leaf.base < start || leaf.base + leaf.size.bytes() > end)
            {
                return Err(UnmapError::PartialSuperpage {
                    start: Iova::new_truncate(leaf.base),
                    size: leaf.size,
                });
            }
        }

        let mut removed = Removed {
            start: u64::MAX,
            end: 0,
            freed: Vec::new(),
            freed_regions: Vec::new(),
        };
        let (root, top) = (self.root, self.levels().count());
        // The root is never freed, even when it becomes empty.
        self.clear(root, top, 0, (start, end), &mut removed);

        if removed.start >= removed.end {
            return Ok(UnmapFlush::new(self.id, None, None, removed.freed));
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.pending.push(PendingUnmap {
            ticket,
            span: (removed.start, removed.end),
            freed_regions: removed.freed_regions,
        });
        Ok(UnmapFlush::new(
            self.id,
            Some(ticket),
            Some(removed.start..removed.end),
            removed.freed,
        ))
    }

    /// Clears the part of `range` that `table` (at `level`, first IOVA `base`) covers.
    fn clear(
        &mut self,
        table: PhysAddr,
        level: u8,
        base: u64,
        range: (u64, u64),
        removed: &mut Removed,
    ) -> TableState {
        let (start, end) = range;
        let shift = entry_shift(level);
        let first = (start.saturating_sub(base) >> shift) as usize;
        let last = (((end - 1).saturating_sub(base) >> shift) as usize).min(ENTRIES - 1);
        let mut cleared = false;
        for index in first..=last {
            let entry = SlPte::from_raw(self.memory.read(table, index));
            if !entry.is_present() {
                continue;
            }
            let entry_start = base + ((index as u64) << shift);
            let entry_end = entry_start + (1 << shift);
            if is_leaf(entry, level) {
                // The boundary check in `unmap` rejected every partly covered leaf.
                assert!(
                    start <= entry_start && entry_end <= end,
                    "partial leaf in unmap walk"
                );
                self.memory.write(table, index, SlPte::NOT_PRESENT.raw());
                removed.start = removed.start.min(entry_start);
                removed.end = removed.end.max(entry_end);
                cleared = true;
            } else {
                let child = entry.address();
                let state = self.clear(child, level - 1, entry_start, range, removed);
                if state == TableState::Emptied {
                    self.memory.write(table, index, SlPte::NOT_PRESENT.raw());
                    removed.freed.push(child);
                    removed.freed_regions.push((entry_start, entry_end));
                    cleared = true;
                }
            }
        }
        if cleared && self.is_empty(table) {
            TableState::Emptied
        } else {
            TableState::InUse
        }
    }
}
