//! An IOMMU domain: one second-level table and a domain ID on one remapping unit; mapping
//! and unmapping with their flush tokens completed by the unit's invalidation, and attaching
//! every requester ID of a device.

use super::hw::{KernelClock, KernelTables};
use super::{
    INVALIDATIONS, Target, VtdError, allocate_domain, context_for, set_device_context, with_state,
};
use alloc::format;
use core::ops::Range;
use moat_iommu::Bdf;
use moat_iommu::entries::{Access, DomainId, Iova, PageSize, PhysAddr};
use moat_iommu::paging::{
    CachingMode, InvalidationDone, MapFlush, PageSelectiveSupport, PageTable, RequiredInvalidation,
    Translation, UnmapFlush,
};

/// An IOMMU domain: one second-level table and a domain ID on one unit.
#[derive(Debug)]
pub struct Domain {
    id: DomainId,
    unit: usize,
    table: PageTable<KernelTables>,
    caching_mode: CachingMode,
    psi: PageSelectiveSupport,
}

impl Domain {
    /// An empty domain on `unit`.
    pub fn new(unit: usize) -> Result<Self, VtdError> {
        with_state(|state| {
            let limit = state
                .units
                .get(unit)
                .ok_or(VtdError::WrongUnit)?
                .engine
                .domain_limit();
            let id = allocate_domain(&mut state.next_domain, limit)?;
            let unit_state = &state.units[unit];
            let cap = unit_state.engine.capability();
            let table = PageTable::new(
                unit_state.tables,
                unit_state.engine.geometry(),
                unit_state.engine.superpages(),
            )
            .map_err(|_| VtdError::OutOfMemory)?;
            Ok(Self {
                id,
                unit,
                table,
                caching_mode: CachingMode::from_cap(u8::from(cap.caching_mode())),
                psi: PageSelectiveSupport::from_cap(u8::from(cap.psi()), cap.mamv()),
            })
        })
    }

    /// The domain ID.
    pub fn id(&self) -> u16 {
        self.id.get()
    }

    /// Maps `size` at `iova` to `phys`. Complete the token with [`Domain::complete_map`].
    pub fn map(
        &mut self,
        iova: Iova,
        phys: PhysAddr,
        size: PageSize,
        access: Access,
    ) -> Result<MapFlush, VtdError> {
        self.table
            .map(iova, phys, size, access)
            .map_err(VtdError::Map)
    }

    /// Unmaps everything inside `range`. Complete the token with [`Domain::complete_unmap`].
    pub fn unmap(&mut self, range: Range<Iova>) -> Result<UnmapFlush, VtdError> {
        self.table.unmap(range).map_err(VtdError::Unmap)
    }

    /// What `iova` translates to.
    pub fn translate(&self, iova: Iova) -> Option<Translation> {
        self.table.translate(iova)
    }

    /// Performs the invalidation a token of domain `id` on `unit` asks for.
    fn invalidate(
        unit: usize,
        id: DomainId,
        required: RequiredInvalidation,
    ) -> Result<InvalidationDone, VtdError> {
        with_state(|state| {
            let unit = &mut state.units[unit];
            let clock = KernelClock;
            match required.iotlb_scope(id) {
                Some(scope) => unit
                    .engine
                    .invalidate_iotlb(&mut unit.tables, &clock, scope),
                None => unit.engine.flush_write_buffer(&clock),
            }
            .map_err(|e| VtdError::Hardware(format!("{e}")))?;
            INVALIDATIONS.fetch_add(
                u64::from(required.iotlb_scope(id).is_some()),
                core::sync::atomic::Ordering::Relaxed,
            );
            // SAFETY: the one unit this domain lives on has completed the invalidation the
            // token asked for (or the write-buffer flush a map without caching mode needs);
            // domains are never attached to devices of another unit; table writes were
            // flushed by KernelTables when the unit does not snoop.
            Ok(unsafe { InvalidationDone::assume_invalidated() })
        })
    }

    /// Makes a map visible to the hardware (invalidating where caching mode requires it). If
    /// that fails the mapping is taken out of the table again, and the error says whether that
    /// removal was invalidated too (see `MapCompletionError`); either way nothing stays mapped.
    pub fn complete_map(&mut self, flush: MapFlush) -> Result<(), VtdError> {
        let (unit, id) = (self.unit, self.id);
        self.table
            .complete_map(flush, self.caching_mode, self.psi, |required| {
                Self::invalidate(unit, id, required)
            })
            .map_err(|error| VtdError::Hardware(format!("{error}")))
    }

    /// Invalidates what an unmap changed (one ranged invalidation for the whole batch), then
    /// releases the freed table frames and the IOVAs.
    pub fn complete_unmap(&mut self, flush: UnmapFlush) -> Result<(), VtdError> {
        let proof = Self::invalidate(self.unit, self.id, flush.invalidation(self.psi))?;
        self.table
            .complete_unmap(flush, proof)
            .map_err(|_| VtdError::WrongUnit)
    }

    /// Points every requester ID of `bdf` at this domain.
    pub fn attach(&self, bdf: Bdf) -> Result<(), VtdError> {
        let entry = context_for(&self.table, self.id);
        set_device_context(
            bdf,
            Target::Domain {
                unit: self.unit,
                entry,
            },
        )
    }
}
