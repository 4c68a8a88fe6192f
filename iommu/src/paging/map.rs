//! Mapping one page (4 KiB, 2 MiB or 1 GiB) into a [`PageTable`].

use alloc::vec::Vec;

use crate::entries::{Access, Iova, PageSize, PhysAddr, SlPte};

use super::flush::MappedPage;
use super::table::{alloc_table, entry_index, is_leaf, overlaps};
use super::{MapError, MapFlush, PageTable, TableMemory};

impl<M: TableMemory> PageTable<M> {
    /// Maps `size` bytes at `iova` to `phys` with `access`.
    ///
    /// Checks, in this order: superpage support, alignment of both addresses, the IOVA limit,
    /// pending unmaps, overlap with any existing mapping at any level; then allocates every
    /// missing intermediate table before linking any of them, so running out of memory leaves
    /// the table unchanged. Intermediate entries carry R|W; the leaf's permission governs.
    /// New intermediate tables are filled in first and linked by a single final write.
    pub fn map(
        &mut self,
        iova: Iova,
        phys: PhysAddr,
        size: PageSize,
        access: Access,
    ) -> Result<MapFlush, MapError> {
        if !self.superpages.supports(size) {
            return Err(MapError::SuperpageUnsupported);
        }
        if !iova.is_aligned(size) || !phys.is_aligned(size) {
            return Err(MapError::Misaligned);
        }
        let start = iova.as_u64();
        let end = start + size.bytes();
        if end > self.geometry.iova_end() {
            return Err(MapError::BeyondAddressWidth);
        }
        if self
            .pending
            .iter()
            .any(|pending| overlaps(pending.span, (start, end)))
        {
            return Err(MapError::PendingInvalidation);
        }
        let leaf = SlPte::leaf(phys, size, access).map_err(|_| MapError::Misaligned)?;
        let target = size.level();

        let mut table = self.root;
        let mut level = self.levels().count();
        loop {
            let index = entry_index(start, level);
            let entry = SlPte::from_raw(self.memory.read(table, index));
            if level == target {
                if entry.is_present() {
                    return Err(MapError::AlreadyMapped);
                }
                self.memory.write(table, index, leaf.raw());
                break;
            }
            if !entry.is_present() {
                let subtree = self.build_chain(start, level - 1, target, leaf)?;
                self.memory.write(table, index, subtree.raw());
                break;
            }
            if is_leaf(entry, level) {
                return Err(MapError::AlreadyMapped);
            }
            table = entry.address();
            level -= 1;
        }

        let stale = self.pending.iter().any(|pending| {
            pending
                .freed_regions
                .iter()
                .any(|&region| overlaps(region, (start, end)))
        });
        let page = MappedPage { start, size, phys };
        Ok(MapFlush::new(self.id, page, stale))
    }

    /// Builds new tables for levels `top` down to `target`, holding `leaf` for `iova`, and
    /// returns the entry that links the chain. All frames are allocated before any is written;
    /// on failure the ones already allocated are freed (the hardware never saw them).
    fn build_chain(
        &mut self,
        iova: u64,
        top: u8,
        target: u8,
        leaf: SlPte,
    ) -> Result<SlPte, MapError> {
        // (frame, entry linking it), lowest level first. Linking entries are built here so
        // that nothing can fail once writing starts.
        let mut frames: Vec<(PhysAddr, SlPte)> = Vec::with_capacity(usize::from(top - target + 1));
        for _ in target..=top {
            let allocated = alloc_table(&mut self.memory)
                .map_err(MapError::from)
                .and_then(|frame| {
                    SlPte::table(frame).map(|link| (frame, link)).map_err(|_| {
                        self.memory.free_table(frame);
                        MapError::MisalignedTableFrame
                    })
                });
            match allocated {
                Ok(pair) => frames.push(pair),
                Err(error) => {
                    for (frame, _) in frames {
                        self.memory.free_table(frame);
                    }
                    return Err(error);
                }
            }
        }
        let mut link = leaf;
        for (&(frame, frame_link), level) in frames.iter().zip(target..=top) {
            self.memory
                .write(frame, entry_index(iova, level), link.raw());
            link = frame_link;
        }
        Ok(link)
    }
}
