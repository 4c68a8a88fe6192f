//! The second-level page table of one domain: creation, lookup, completion of unmaps and
//! teardown. Mapping and unmapping live in `map.rs` and `unmap.rs`.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::entries::{Access, Iova, PageSize, PhysAddr, SlPte};

use super::{
    ForeignFlush, Geometry, InvalidationDone, Levels, SuperpageSupport, TableAllocError,
    TableMemory, UnmapFlush,
};

/// Entries in one 4 KiB table.
pub(super) const ENTRIES: usize = 512;

/// Source of table identities, so a flush token is only ever completed on its own table.
static NEXT_TABLE_ID: AtomicU64 = AtomicU64::new(1);

/// log2 of the bytes one entry at `level` (1 = lowest) covers.
pub(super) const fn entry_shift(level: u8) -> u32 {
    12 + 9 * (level as u32 - 1)
}

/// Index of the entry at `level` that translates `iova`.
pub(super) const fn entry_index(iova: u64, level: u8) -> usize {
    ((iova >> entry_shift(level)) & (ENTRIES as u64 - 1)) as usize
}

/// Whether `entry` (present) at `level` is a leaf: always at level 1, with PS at levels 2 and 3.
/// PS is reserved at level 4 and never set there.
pub(super) const fn is_leaf(entry: SlPte, level: u8) -> bool {
    level == 1 || (level <= 3 && entry.is_superpage())
}

/// Whether two half-open byte ranges intersect.
pub(super) const fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// An unmap whose flush token has not completed yet.
#[derive(Debug)]
pub(super) struct PendingUnmap {
    pub(super) ticket: u64,
    /// Unmapped IOVAs: not mappable until completion.
    pub(super) span: (u64, u64),
    /// IOVA regions of freed tables: cached non-leaf entries may still point at them.
    pub(super) freed_regions: Vec<(u64, u64)>,
}

/// A translation found by [`PageTable::translate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The physical address the IOVA translates to (page plus offset).
    pub phys: PhysAddr,
    /// Size of the page that maps it.
    pub size: PageSize,
    /// What the device may do there.
    pub access: Access,
}

/// A leaf found by a walk.
#[derive(Clone, Copy, Debug)]
pub(super) struct Leaf {
    pub(super) base: u64,
    pub(super) size: PageSize,
    pub(super) entry: SlPte,
    /// R and W of every entry on the walk combined; `None` if no access survives.
    pub(super) access: Option<Access>,
}

/// The access both `a` and `b` allow.
const fn intersect(a: Access, b: Access) -> Option<Access> {
    match (
        a.allows_read() && b.allows_read(),
        a.allows_write() && b.allows_write(),
    ) {
        (true, true) => Some(Access::ReadWrite),
        (true, false) => Some(Access::Read),
        (false, true) => Some(Access::Write),
        (false, false) => None,
    }
}

/// The second-level table of one domain (VT-d spec 3.7, 9.8), with its frames from `M`.
///
/// Every change returns a flush token; see [`MapFlush`](super::MapFlush) and [`UnmapFlush`].
/// Invariant: every table linked below the root has at least one present entry, so emptied
/// tables are found and handed over while unmapping.
#[derive(Debug)]
pub struct PageTable<M: TableMemory> {
    pub(super) memory: M,
    pub(super) root: PhysAddr,
    pub(super) geometry: Geometry,
    pub(super) superpages: SuperpageSupport,
    pub(super) id: u64,
    pub(super) next_ticket: u64,
    pub(super) pending: Vec<PendingUnmap>,
}

impl<M: TableMemory> PageTable<M> {
    /// An empty table (just a zeroed root frame). `geometry` is a [`Geometry`] or simply
    /// [`Levels`]; `superpages` usually comes from [`SuperpageSupport::from_sllps`]. On failure
    /// the memory is handed back.
    pub fn new(
        mut memory: M,
        geometry: impl Into<Geometry>,
        superpages: SuperpageSupport,
    ) -> Result<Self, (M, TableAllocError)> {
        let root = match alloc_table(&mut memory) {
            Ok(root) => root,
            Err(error) => return Err((memory, error)),
        };
        Ok(Self {
            memory,
            root,
            geometry: geometry.into(),
            superpages,
            id: NEXT_TABLE_ID.fetch_add(1, Ordering::Relaxed),
            next_ticket: 0,
            pending: Vec::new(),
        })
    }

    /// The root frame, for SLPTPTR in the context entry.
    pub fn root(&self) -> PhysAddr {
        self.root
    }

    /// Levels and IOVA limit.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Level count (its [`Levels::context_address_width`] goes into the context entry).
    pub fn levels(&self) -> Levels {
        self.geometry.levels()
    }

    /// The superpage sizes `map` accepts.
    pub fn superpages(&self) -> SuperpageSupport {
        self.superpages
    }

    /// Read access to the table memory (for inspection and accounting).
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// Number of unmaps whose flush tokens have not completed.
    pub fn pending_unmaps(&self) -> usize {
        self.pending.len()
    }

    /// Looks `iova` up the way the hardware walks the table: superpages end the walk, and the
    /// access is what R and W allow at every level (VT-d checks each level, not just the leaf).
    pub fn translate(&self, iova: Iova) -> Option<Translation> {
        let leaf = self.find_leaf(iova.as_u64())?;
        let offset = iova.as_u64() - leaf.base;
        Some(Translation {
            phys: PhysAddr::new_truncate(leaf.entry.address().as_u64() + offset),
            size: leaf.size,
            access: leaf.access?,
        })
    }

    /// The leaf that translates `iova`, if any.
    pub(super) fn find_leaf(&self, iova: u64) -> Option<Leaf> {
        if iova >= self.geometry.iova_end() {
            return None;
        }
        let mut table = self.root;
        let mut level = self.levels().count();
        let mut access = Some(Access::ReadWrite);
        loop {
            let entry = SlPte::from_raw(self.memory.read(table, entry_index(iova, level)));
            let entry_access = entry.access()?;
            access = access.and_then(|access| intersect(access, entry_access));
            if is_leaf(entry, level) {
                let size = PageSize::from_level(level)?;
                let base = iova & !(size.bytes() - 1);
                return Some(Leaf {
                    base,
                    size,
                    entry,
                    access,
                });
            }
            table = entry.address();
            level -= 1;
        }
    }

    /// Finishes an unmap: frees the frames the unmap emptied and makes its IOVAs mappable
    /// again. A token from another table is handed back untouched.
    pub fn complete_unmap(
        &mut self,
        flush: UnmapFlush,
        _proof: InvalidationDone,
    ) -> Result<(), ForeignFlush> {
        if flush.table_id != self.id {
            return Err(ForeignFlush::new(flush));
        }
        let UnmapFlush { tickets, freed, .. } = flush;
        self.pending
            .retain(|pending| !tickets.contains(&pending.ticket));
        for frame in freed {
            self.memory.free_table(frame);
        }
        Ok(())
    }

    /// Frees every table frame, root included, and returns the memory. The proof must cover
    /// detaching the table from all context entries (see
    /// [`InvalidationDone::assume_invalidated`]). Frames held by flush tokens that were not
    /// completed before are leaked.
    pub fn destroy(mut self, _proof: InvalidationDone) -> M {
        let (root, top) = (self.root, self.levels().count());
        self.free_subtree(root, top);
        self.memory
    }

    fn free_subtree(&mut self, table: PhysAddr, level: u8) {
        if level > 1 {
            for index in 0..ENTRIES {
                let entry = SlPte::from_raw(self.memory.read(table, index));
                if entry.is_present() && !is_leaf(entry, level) {
                    self.free_subtree(entry.address(), level - 1);
                }
            }
        }
        self.memory.free_table(table);
    }

    /// Whether no entry of `table` is present.
    pub(super) fn is_empty(&self, table: PhysAddr) -> bool {
        (0..ENTRIES).all(|index| !SlPte::from_raw(self.memory.read(table, index)).is_present())
    }
}

/// A frame from `memory`, checked to be 4 KiB aligned.
pub(super) fn alloc_table<M: TableMemory>(memory: &mut M) -> Result<PhysAddr, TableAllocError> {
    let frame = memory
        .alloc_table()
        .map_err(|_| TableAllocError::OutOfMemory)?;
    if frame.is_aligned(PageSize::Size4K) {
        Ok(frame)
    } else {
        memory.free_table(frame);
        Err(TableAllocError::MisalignedFrame)
    }
}
