//! I/O address spaces: one second-level page table, its IOVA allocator and the DMA buffers
//! mapped into it. A space is separate from the hardware domain: every group attached to it
//! gets a domain ID of its own on its unit (see `groups.rs`), and every invalidation fans out
//! to all of those attachments before the proof that completes a flush token is minted.
//!
//! Buffers move into the space when mapped and come back from `unmap` only after the IOTLB
//! invalidation covering them completed, so a buffer a device may still reach can be neither
//! freed nor mapped elsewhere. The table, its frames and any buffer still mapped are freed
//! when the last reference goes: the owner's handle and every attached group.

use super::hw::KernelTables;
use super::iova::IovaAllocator;
use super::{INVALIDATIONS, State, VtdError, with_state};
use crate::dma::DmaBuffer;
use crate::time::Monotonic;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use moat_iommu::entries::{Access, DomainId, Iova, PageSize, PhysAddr};
use moat_iommu::paging::{
    CachingMode, InvalidationDone, MapError, PageSelectiveSupport, PageTable, RequiredInvalidation,
    UnmapFlush,
};
use spin::Mutex;

mod mapping;

/// Lowest IOVA handed out: page 0 and the first MiB stay unmapped so that a device told
/// "address 0" (or a small offset) by a buggy driver faults instead of hitting a buffer.
const IOVA_FLOOR: u64 = 0x10_0000;

static NEXT_SPACE: AtomicU32 = AtomicU32::new(1);

/// One buffer mapped into a space (the permissions live in the table's leaves).
#[derive(Debug)]
struct Mapped {
    buffer: DmaBuffer,
}

/// The state behind an [`IoAddressSpace`], shared with the groups attached to it.
#[derive(Debug)]
pub(crate) struct SpaceInner {
    pub(super) id: u32,
    pub(super) unit: usize,
    /// `None` only while being destroyed.
    table: Option<PageTable<KernelTables>>,
    caching_mode: CachingMode,
    psi: PageSelectiveSupport,
    /// (group, domain ID on `unit`) for every attached group.
    pub(super) attachments: Vec<(u32, DomainId)>,
    buffers: BTreeMap<u64, Mapped>,
    iovas: IovaAllocator,
    /// Buffers whose unmap could not be invalidated: reachable by a device, so held until
    /// every attachment is gone (the detach invalidated the whole domain).
    stranded_buffers: Vec<DmaBuffer>,
    /// Unmaps whose invalidation failed: their IOVAs stay reserved until destruction.
    stranded_flushes: Vec<UnmapFlush>,
}

pub(crate) type SharedSpace = Arc<Mutex<SpaceInner>>;

/// An I/O address space: IOVA -> buffer, with permissions. Not `Clone`: its owner maps and
/// unmaps; groups attached to it keep it alive until they are detached.
#[derive(Debug)]
pub struct IoAddressSpace {
    shared: SharedSpace,
}

/// A failed map: why, and the buffer handed back (`None` only if a device might still reach
/// it, in which case the space keeps it until it is destroyed).
#[derive(Debug)]
pub struct MapFailure {
    /// Why the map failed.
    pub error: VtdError,
    /// The buffer, if it is safe to reuse.
    pub buffer: Option<DmaBuffer>,
}

impl IoAddressSpace {
    /// An empty space on the first remapping unit whose IOVAs stay below `2^dma_bits` (the
    /// device's DMA mask; the table's own limit applies too). Groups of other units cannot
    /// attach to it (`WrongUnit`): use [`for_unit_of`](Self::for_unit_of) on machines with
    /// several remapping units.
    pub fn new(dma_bits: u8) -> Result<Self, VtdError> {
        with_state(|state| Self::new_in(state, 0, dma_bits))
    }

    /// An empty space on the remapping unit that translates for `device` (its table has that
    /// unit's geometry), IOVAs below `2^dma_bits`.
    pub fn for_unit_of(device: moat_iommu::Bdf, dma_bits: u8) -> Result<Self, VtdError> {
        with_state(|state| {
            let group = state
                .device_groups
                .get(&device)
                .ok_or(VtdError::NotTranslated(device))?;
            let unit = state.groups[group].unit;
            Self::new_in(state, unit, dma_bits)
        })
    }

    /// An empty space on unit `unit` of `state`: bring-up builds the RMRR spaces on the state
    /// it is assembling, before that state is installed, on the unit of the device's group.
    pub(super) fn new_in(state: &State, unit: usize, dma_bits: u8) -> Result<Self, VtdError> {
        let id = NEXT_SPACE
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |id| id.checked_add(1))
            .map_err(|_| VtdError::NoSpaceIds)?;
        let hardware = state.units.get(unit).ok_or(VtdError::WrongUnit)?;
        let cap = hardware.engine.capability();
        let table = PageTable::new(
            hardware.tables,
            hardware.engine.geometry(),
            hardware.engine.superpages(),
        )
        .map_err(|_| VtdError::OutOfMemory)?;
        let limit = table
            .geometry()
            .iova_end()
            .min(1u64.checked_shl(u32::from(dma_bits)).unwrap_or(u64::MAX));
        let inner = SpaceInner {
            id,
            unit,
            table: Some(table),
            caching_mode: CachingMode::from_cap(u8::from(cap.caching_mode())),
            psi: PageSelectiveSupport::from_cap(u8::from(cap.psi()), cap.mamv()),
            attachments: Vec::new(),
            buffers: BTreeMap::new(),
            iovas: IovaAllocator::new(IOVA_FLOOR..limit),
            stranded_buffers: Vec::new(),
            stranded_flushes: Vec::new(),
        };
        Ok(Self {
            shared: Arc::new(Mutex::new(inner)),
        })
    }

    pub(crate) fn shared(&self) -> &SharedSpace {
        &self.shared
    }

    /// The space's number (for reports).
    pub fn id(&self) -> u32 {
        self.shared.lock().id
    }

    /// Maps `buffer` with `access` and returns its IOVA. 2 MiB pages are used where the buffer
    /// is 2 MiB aligned and sized. On failure the buffer comes back with the error.
    pub fn map(&self, buffer: DmaBuffer, access: Access) -> Result<Iova, MapFailure> {
        let mut inner = self.shared.lock();
        inner.map(buffer, access)
    }

    /// Unmaps the buffer at `iova` and returns it once the invalidation completed.
    pub fn unmap(&self, iova: Iova) -> Result<DmaBuffer, VtdError> {
        let mut inner = self.shared.lock();
        let mut back = inner.unmap_many(&[iova])?;
        back.pop().ok_or(VtdError::NotMapped)
    }

    /// Unmaps several buffers with one ranged invalidation; returns them in order.
    pub fn unmap_many(&self, iovas: &[Iova]) -> Result<Vec<DmaBuffer>, VtdError> {
        self.shared.lock().unmap_many(iovas)
    }

    /// Identity-maps the physical `range` (an RMRR the firmware keeps using) read/write. Only
    /// bring-up calls this, on the `state` it is building, for memory the firmware table names;
    /// it is never freed.
    pub(super) fn map_identity(
        &self,
        state: &mut State,
        range: core::ops::Range<u64>,
    ) -> Result<(), VtdError> {
        let mut inner = self.shared.lock();
        let mut address = range.start & !0xfff;
        while address < range.end {
            let iova =
                Iova::new(address).map_err(|_| VtdError::Map(MapError::BeyondAddressWidth))?;
            let phys =
                PhysAddr::new(address).map_err(|_| VtdError::Map(MapError::BeyondAddressWidth))?;
            let flush = inner
                .table_mut()
                .map(iova, phys, PageSize::Size4K, Access::ReadWrite)
                .map_err(VtdError::Map)?;
            let required = flush.invalidation(inner.caching_mode, inner.psi);
            let proof = invalidate_in(state, inner.unit, &inner.attachments, required)?;
            flush.complete(proof);
            address += 4096;
        }
        Ok(())
    }

    /// Runs `f` on the buffer mapped at `iova` (CPU access to its contents).
    pub fn with_buffer<T>(&self, iova: Iova, f: impl FnOnce(&DmaBuffer) -> T) -> Option<T> {
        let inner = self.shared.lock();
        inner.buffers.get(&iova.as_u64()).map(|m| f(&m.buffer))
    }

    /// Every mapped buffer as (IOVA, length), in IOVA order (for reports and tests: the
    /// isolation scenarios aim other devices at exactly these).
    pub fn mappings(&self) -> Vec<(u64, u64)> {
        let inner = self.shared.lock();
        inner
            .buffers
            .iter()
            .map(|(iova, mapped)| (*iova, mapped.buffer.len()))
            .collect()
    }

    /// What `iova` translates to (for reports and tests).
    pub fn translate(&self, iova: Iova) -> Option<moat_iommu::paging::Translation> {
        self.shared.lock().table().translate(iova)
    }
}

impl SpaceInner {
    /// [`invalidate`] for this space's attachments.
    fn invalidate(&self, required: RequiredInvalidation) -> Result<InvalidationDone, VtdError> {
        invalidate(self.unit, &self.attachments, required)
    }

    pub(super) fn table(&self) -> &PageTable<KernelTables> {
        self.table
            .as_ref()
            .expect("the table exists until the space is dropped")
    }

    fn table_mut(&mut self) -> &mut PageTable<KernelTables> {
        self.table
            .as_mut()
            .expect("the table exists until the space is dropped")
    }
}

/// Issues `required` for every attachment (each group's domain ID on `unit`) and waits; the
/// proof is minted only when all of them completed. With no attachment nothing can cache the
/// table (a detach invalidated its whole domain).
fn invalidate(
    unit: usize,
    attachments: &[(u32, DomainId)],
    required: RequiredInvalidation,
) -> Result<InvalidationDone, VtdError> {
    with_state(|state| invalidate_in(state, unit, attachments, required))
}

/// [`invalidate`] on `state` as given (bring-up's, not yet installed).
fn invalidate_in(
    state: &mut State,
    unit: usize,
    attachments: &[(u32, DomainId)],
    required: RequiredInvalidation,
) -> Result<InvalidationDone, VtdError> {
    let unit = state.units.get_mut(unit).ok_or(VtdError::WrongUnit)?;
    for &(_, domain) in attachments {
        match required.iotlb_scope(domain) {
            Some(scope) => {
                unit.engine
                    .invalidate_iotlb(&mut unit.tables, &Monotonic, scope)
                    .map_err(|e| VtdError::Hardware(alloc::format!("{e}")))?;
                INVALIDATIONS.fetch_add(1, Ordering::Relaxed);
            }
            None => unit
                .engine
                .flush_write_buffer(&Monotonic)
                .map_err(|e| VtdError::Hardware(alloc::format!("{e}")))?,
        }
    }
    // SAFETY: every domain this table is attached under (one per attached group, all on this
    // unit: attach refuses other units) has completed the invalidation the token asked for,
    // or the write-buffer flush a map without caching mode needs; without attachments no
    // context entry points at the table and the detach that removed the last one invalidated
    // its domain. KernelTables flushed the writes.
    Ok(unsafe { InvalidationDone::assume_invalidated() })
}

impl Drop for SpaceInner {
    fn drop(&mut self) {
        debug_assert!(self.attachments.is_empty(), "attachments hold a reference");
        let Some(mut table) = self.table.take() else {
            return;
        };
        for flush in self.stranded_flushes.drain(..) {
            // SAFETY: the last reference is gone, so no group is attached: every detach
            // pointed the group's requester IDs elsewhere and invalidated the context cache
            // and the IOTLB for its domain ID. Nothing can reach or cache this table.
            let proof = unsafe { InvalidationDone::assume_invalidated() };
            let _ = table.complete_unmap(flush, proof);
        }
        // SAFETY: as above.
        let proof = unsafe { InvalidationDone::assume_invalidated() };
        let _ = table.destroy(proof);
        self.stranded_buffers.clear();
        self.buffers.clear();
    }
}
