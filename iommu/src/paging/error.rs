//! Errors of the page-table engine, one small enum per operation.

use crate::entries::{Iova, PageSize};

use super::{MapFlush, UnmapFlush};

/// Why a table could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableAllocError {
    /// [`TableMemory`](super::TableMemory) had no frame.
    OutOfMemory,
    /// [`TableMemory`](super::TableMemory) returned a frame that is not 4 KiB aligned (a broken
    /// allocator; the frame was handed back).
    MisalignedFrame,
}

/// Why [`PageTable::map`](super::PageTable::map) changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The page size is a superpage that CAP.SLLPS does not offer.
    SuperpageUnsupported,
    /// The IOVA or the physical address is not aligned to the page size.
    Misaligned,
    /// The page does not end at or below the table's IOVA limit.
    BeyondAddressWidth,
    /// Part of the page was unmapped by an [`UnmapFlush`] that has not completed yet: a device
    /// may still reach the old page through the IOTLB.
    PendingInvalidation,
    /// Part of the page is already mapped, at any level (a 4 KiB page inside a superpage, a
    /// superpage over 4 KiB pages, or the same page twice).
    AlreadyMapped,
    /// Not enough frames for the intermediate tables; none were linked.
    OutOfMemory,
    /// [`TableMemory`](super::TableMemory) returned a misaligned frame; it was handed back.
    MisalignedTableFrame,
}

impl From<TableAllocError> for MapError {
    fn from(error: TableAllocError) -> Self {
        match error {
            TableAllocError::OutOfMemory => Self::OutOfMemory,
            TableAllocError::MisalignedFrame => Self::MisalignedTableFrame,
        }
    }
}

/// Why [`PageTable::unmap`](super::PageTable::unmap) changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnmapError {
    /// `start > end`.
    InvalidRange,
    /// Start or end is not 4 KiB aligned.
    Misaligned,
    /// The range ends above the table's IOVA limit.
    BeyondAddressWidth,
    /// The range covers only part of a superpage. Superpages are never split silently: unmap
    /// the whole superpage and map the part to keep.
    PartialSuperpage {
        /// First IOVA of the superpage.
        start: Iova,
        /// Its size.
        size: PageSize,
    },
}

/// An [`UnmapFlush`] was given to a table that did not produce it; here it is back.
#[derive(Debug)]
pub struct ForeignFlush {
    flush: UnmapFlush,
}

impl ForeignFlush {
    pub(super) fn new(flush: UnmapFlush) -> Self {
        Self { flush }
    }

    /// The token, still to be completed on its own table.
    pub fn into_flush(self) -> UnmapFlush {
        self.flush
    }
}

/// Why [`PageTable::complete_map`](super::PageTable::complete_map) did not complete a map, and
/// the state it left. In every case the mapping is out of the table; whether the hardware can
/// still use it is what the variants tell apart.
#[derive(Debug)]
pub enum MapCompletionError<E> {
    /// The token came from another table. Nothing was done; here it is back.
    Foreign(MapFlush),
    /// The invalidation (or write-buffer flush) the map needed failed with `error`. The mapping
    /// was taken out of the table again and that removal was invalidated: the table is as it
    /// was before the map, and the memory that was mapped is unreachable for the device.
    RolledBack {
        /// Why the map's invalidation failed.
        error: E,
    },
    /// The map's invalidation failed with `error`, the mapping was taken out of the table, and
    /// the invalidation for that removal failed too (`rollback_error`). The hardware may still
    /// use the mapping through its caches: `flush` owes that invalidation. Until it completes
    /// (through [`PageTable::complete_unmap`](super::PageTable::complete_unmap)) the IOVAs stay
    /// blocked and the memory that was mapped must not be reused; dropping `flush` keeps the
    /// IOVAs blocked for good, which is safe.
    RollbackPending {
        /// Why the map's invalidation failed.
        error: E,
        /// Why the invalidation of the removal failed.
        rollback_error: E,
        /// The removal, still to be invalidated (boxed: it keeps the error small).
        flush: alloc::boxed::Box<UnmapFlush>,
    },
}

impl<E: core::fmt::Debug> core::fmt::Display for MapCompletionError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Foreign(_) => write!(f, "the map token belongs to another table"),
            Self::RolledBack { error } => write!(
                f,
                "the map could not be made visible ({error:?}); it was removed again"
            ),
            Self::RollbackPending {
                error,
                rollback_error,
                ..
            } => write!(
                f,
                "the map could not be made visible ({error:?}) and its removal could not be \
                 invalidated ({rollback_error:?}): the IOVAs stay blocked and the memory must \
                 not be reused"
            ),
        }
    }
}
