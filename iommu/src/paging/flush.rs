//! Flush tokens: what a table change obliges the caller to invalidate before the change is
//! complete (VT-d spec 6.1, 6.5). Table frames that an unmap emptied stay inside the token until
//! the invalidation is proven done, so neither the frames nor the IOVAs are reused while a
//! device may still reach them through the IOTLB or the paging-structure caches.

use alloc::vec::Vec;
use core::ops::Range;

use crate::entries::{
    DomainId, InvalidationHint, IotlbScope, Iova, PageSelective, PageSize, PhysAddr,
};

/// Proof that the remapping hardware no longer caches anything a flush token describes.
///
/// Only the kernel's invalidation code creates it, through the `unsafe`
/// [`assume_invalidated`](Self::assume_invalidated): the engine here invalidates one unit at a
/// time, and only the kernel knows every unit a table is attached to, so there is no safe
/// constructor.
#[derive(Debug)]
pub struct InvalidationDone {
    _private: (),
}

impl InvalidationDone {
    /// Marks an invalidation as completed.
    ///
    /// # Safety
    ///
    /// Before calling this, the caller must have, for every remapping unit that may have cached
    /// translations of the table:
    /// * for an [`UnmapFlush`]: issued the invalidation [`UnmapFlush::invalidation`] reports (or a
    ///   wider one: domain-selective for the table's domain, or global) and seen it complete
    ///   (a wait descriptor's status write, or IVT clear);
    /// * for a [`MapFlush`]: done the same for [`MapFlush::invalidation`] when it asks for one,
    ///   and otherwise flushed the write buffer if CAP.RWBF is set;
    /// * for [`PageTable::destroy`](super::PageTable::destroy): cleared every context entry that
    ///   points at the table, then invalidated the context cache and the IOTLB for its domain
    ///   and seen both complete;
    /// * in every case made the table writes visible to the hardware (cache-line flushes when
    ///   ECAP.C is clear).
    ///
    /// A false proof lets table frames and IOVAs be reused while a device can still reach the
    /// old memory through cached translations: DMA into memory Rust considers owned elsewhere.
    pub unsafe fn assume_invalidated() -> Self {
        Self { _private: () }
    }
}

/// CAP.CM (bit 7): whether the hardware may cache not-present and erroneous entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachingMode {
    /// CM = 0: a not-present to present change needs only a write-buffer flush.
    Disabled,
    /// CM = 1 (QEMU `caching-mode=on`, virtual IOMMUs): every change needs an invalidation.
    Enabled,
}

impl CachingMode {
    /// Decodes the CM bit (shifted down).
    pub const fn from_cap(cm: u8) -> Self {
        if cm & 1 == 1 {
            Self::Enabled
        } else {
            Self::Disabled
        }
    }
}

/// Whether page-selective IOTLB invalidation exists (CAP.PSI, bit 39) and its largest address
/// mask (CAP.MAMV, bits 53:48).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSelectiveSupport {
    /// CAP.PSI = 0: only domain-selective and global invalidation.
    Unsupported,
    /// CAP.PSI = 1 with this MAMV.
    UpToOrder(u8),
}

impl PageSelectiveSupport {
    /// Decodes CAP.PSI and CAP.MAMV (both shifted down).
    pub const fn from_cap(psi: u8, mamv: u8) -> Self {
        if psi & 1 == 1 {
            Self::UpToOrder(mamv & 0x3F)
        } else {
            Self::Unsupported
        }
    }
}

/// The one IOTLB invalidation a flush token asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequiredInvalidation {
    /// Nothing changed that the hardware could have cached.
    None,
    /// One page-selective invalidation of the table's domain covering every change.
    PageSelective {
        /// The address-masked range.
        range: PageSelective,
        /// IH: whether non-leaf entries were left untouched.
        hint: InvalidationHint,
    },
    /// The range would need a mask above MAMV (or PSI is missing): invalidate the whole domain.
    DomainSelective,
}

impl RequiredInvalidation {
    /// The smallest invalidation covering `start..end` (bytes, `start < end`).
    fn covering(start: u64, end: u64, hint: InvalidationHint, psi: PageSelectiveSupport) -> Self {
        let range = PageSelective::covering(Iova::new_truncate(start), Iova::new_truncate(end - 1));
        match psi {
            PageSelectiveSupport::UpToOrder(max) if range.address_mask_order() <= max => {
                Self::PageSelective { range, hint }
            }
            _ => Self::DomainSelective,
        }
    }

    /// The IOTLB scope to pass to an invalidation descriptor or IOTLB_REG for `domain`.
    pub const fn iotlb_scope(self, domain: DomainId) -> Option<IotlbScope> {
        match self {
            Self::None => None,
            Self::PageSelective { range, hint } => Some(IotlbScope::Pages {
                domain,
                range,
                hint,
            }),
            Self::DomainSelective => Some(IotlbScope::Domain(domain)),
        }
    }
}

/// One page a [`MapFlush`] covers: enough to take exactly that mapping out again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct MappedPage {
    pub(super) start: u64,
    pub(super) size: PageSize,
    pub(super) phys: PhysAddr,
}

/// What [`PageTable::map`](super::PageTable::map) changed. Complete it with
/// [`PageTable::complete_map`](super::PageTable::complete_map), which takes the mapping out
/// again if the invalidation fails, or with [`complete`](Self::complete) once the hardware sees
/// the mapping.
#[must_use = "a mapping is usable only after its flush token completed"]
#[derive(Debug)]
pub struct MapFlush {
    pub(super) table_id: u64,
    start: u64,
    end: u64,
    stale_paging_structures: bool,
    /// The first page mapped, and the pages of tokens merged into this one.
    pub(super) first: MappedPage,
    pub(super) merged: Vec<MappedPage>,
}

impl MapFlush {
    pub(super) fn new(table_id: u64, page: MappedPage, stale_paging_structures: bool) -> Self {
        Self {
            table_id,
            start: page.start,
            end: page.start + page.size.bytes(),
            stale_paging_structures,
            first: page,
            merged: Vec::new(),
        }
    }

    /// The IOVAs mapped (covering all merged maps).
    pub fn mapped(&self) -> Range<Iova> {
        Iova::new_truncate(self.start)..Iova::new_truncate(self.end)
    }

    /// Whether an IOTLB invalidation is needed. Without caching mode a not-present entry is
    /// never cached, so a map needs only a write-buffer flush, except where an unmap whose
    /// token is still pending freed a table on the walk: a cached non-leaf entry may still
    /// point at the old table.
    pub fn needs_invalidation(&self, caching_mode: CachingMode) -> bool {
        caching_mode == CachingMode::Enabled || self.stale_paging_structures
    }

    /// The invalidation to issue before [`complete`](Self::complete), if any. New non-leaf
    /// entries may have been linked, so the hint is always [`InvalidationHint::AllEntries`].
    pub fn invalidation(
        &self,
        caching_mode: CachingMode,
        psi: PageSelectiveSupport,
    ) -> RequiredInvalidation {
        if self.needs_invalidation(caching_mode) {
            RequiredInvalidation::covering(self.start, self.end, InvalidationHint::AllEntries, psi)
        } else {
            RequiredInvalidation::None
        }
    }

    /// Folds `other` into `self` so one invalidation covers both. Fails (handing `other` back)
    /// if it came from a different table.
    pub fn merge(&mut self, other: MapFlush) -> Result<(), MapFlush> {
        if other.table_id != self.table_id {
            return Err(other);
        }
        self.start = self.start.min(other.start);
        self.end = self.end.max(other.end);
        self.stale_paging_structures |= other.stale_paging_structures;
        self.merged.push(other.first);
        self.merged.extend(other.merged);
        Ok(())
    }

    /// Ends the obligation.
    pub fn complete(self, proof: InvalidationDone) {
        let InvalidationDone { _private: () } = proof;
    }
}

/// What [`PageTable::unmap`](super::PageTable::unmap) changed: the span whose translations the
/// hardware may still cache and the table frames that became empty.
///
/// The frames go back to the table's memory only through
/// [`PageTable::complete_unmap`](super::PageTable::complete_unmap) with an
/// [`InvalidationDone`]; until then the unmapped span cannot be mapped again. Dropping the token
/// leaks the frames and blocks the span forever, which is safe.
#[must_use = "unmapped memory is reachable by the device until the flush token completed"]
#[derive(Debug)]
pub struct UnmapFlush {
    pub(super) table_id: u64,
    pub(super) tickets: Vec<u64>,
    span: Option<(u64, u64)>,
    pub(super) freed: Vec<PhysAddr>,
}

impl UnmapFlush {
    pub(super) fn new(
        table_id: u64,
        ticket: Option<u64>,
        span: Option<Range<u64>>,
        freed: Vec<PhysAddr>,
    ) -> Self {
        Self {
            table_id,
            tickets: ticket.into_iter().collect(),
            span: span.map(|span| (span.start, span.end)),
            freed,
        }
    }

    /// From the start of the first unmapped page to the end of the last (covering all merged
    /// unmaps); `None` if nothing was mapped in the range.
    pub fn unmapped_span(&self) -> Option<Range<Iova>> {
        self.span
            .map(|(start, end)| Iova::new_truncate(start)..Iova::new_truncate(end))
    }

    /// Table frames that became empty; they are freed by the completion, not before.
    pub fn freed_tables(&self) -> &[PhysAddr] {
        &self.freed
    }

    /// The single invalidation covering every page unmapped, however many there were: a
    /// page-selective range if its mask fits `psi`, otherwise domain-selective. The hint is
    /// "leaf entries only" unless a table was freed.
    pub fn invalidation(&self, psi: PageSelectiveSupport) -> RequiredInvalidation {
        let hint = if self.freed.is_empty() {
            InvalidationHint::LeafEntriesOnly
        } else {
            InvalidationHint::AllEntries
        };
        match self.span {
            Some((start, end)) => RequiredInvalidation::covering(start, end, hint, psi),
            None => RequiredInvalidation::None,
        }
    }

    /// Folds `other` into `self` so one invalidation covers both. Fails (handing `other` back)
    /// if it came from a different table.
    pub fn merge(&mut self, other: UnmapFlush) -> Result<(), UnmapFlush> {
        if other.table_id != self.table_id {
            return Err(other);
        }
        let UnmapFlush {
            tickets,
            span,
            freed,
            ..
        } = other;
        self.tickets.extend(tickets);
        self.freed.extend(freed);
        self.span = match (self.span, span) {
            (Some((a_start, a_end)), Some((b_start, b_end))) => {
                Some((a_start.min(b_start), a_end.max(b_end)))
            }
            (one, other) => one.or(other),
        };
        Ok(())
    }
}
