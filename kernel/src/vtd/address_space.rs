//! I/O address spaces: one second-level page table, its IOVA allocator and the DMA buffers
//! mapped into it. A space is separate from the hardware domain: every group attached to it
//! gets a domain ID of its own on its unit (see `groups.rs`), and every invalidation fans out
//! to all of those attachments before the proof that completes a flush token is minted.
//!
//! Buffers move into the space when mapped and come back from `unmap` only after the IOTLB
//! invalidation covering them completed, so a buffer a device may still reach can be neither
//! freed nor mapped elsewhere. The table, its frames and any buffer still mapped are freed
//! when the last reference goes: the owner's handle and every attached group.

use super::hw::{KernelClock, KernelTables};
use super::iova::IovaAllocator;
use super::{INVALIDATIONS, State, VtdError, with_state};
use crate::dma::DmaBuffer;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use moat_iommu::entries::{Access, DomainId, Iova, PageSize, PhysAddr};
use moat_iommu::paging::{
    CachingMode, InvalidationDone, MapError, MapFlush, PageSelectiveSupport, PageTable,
    RequiredInvalidation, UnmapFlush,
};
use spin::Mutex;

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

/// Figures for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpaceStats {
    /// The space's number.
    pub id: u32,
    /// Buffers mapped.
    pub buffers: usize,
    /// Bytes mapped.
    pub mapped_bytes: u64,
    /// Groups attached.
    pub attachments: usize,
}

impl IoAddressSpace {
    /// An empty space on the first remapping unit whose IOVAs stay below `2^dma_bits` (the
    /// device's DMA mask; the table's own limit applies too).
    pub fn new(dma_bits: u8) -> Result<Self, VtdError> {
        with_state(|state| Self::new_in(state, 0, dma_bits))
    }

    /// An empty space on unit `unit` of `state`: bring-up builds the RMRR spaces on the state
    /// it is assembling, before that state is installed, on the unit of the device's group.
    pub(super) fn new_in(state: &State, unit: usize, dma_bits: u8) -> Result<Self, VtdError> {
        let id = NEXT_SPACE.fetch_add(1, Ordering::Relaxed);
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
            let proof = inner.invalidate_in(state, required)?;
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

    /// What `iova` translates to (for reports and tests).
    pub fn translate(&self, iova: Iova) -> Option<moat_iommu::paging::Translation> {
        self.shared.lock().table().translate(iova)
    }

    /// Figures for the report.
    pub fn stats(&self) -> SpaceStats {
        self.shared.lock().stats()
    }
}

impl SpaceInner {
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

    pub(super) fn stats(&self) -> SpaceStats {
        SpaceStats {
            id: self.id,
            buffers: self.buffers.len(),
            mapped_bytes: self.buffers.values().map(|m| m.buffer.len()).sum(),
            attachments: self.attachments.len(),
        }
    }

    fn map(&mut self, buffer: DmaBuffer, access: Access) -> Result<Iova, MapFailure> {
        let len = buffer.len();
        let phys = buffer.physical_address();
        let size = if len.is_multiple_of(2 << 20)
            && phys.is_multiple_of(2 << 20)
            && self.table().superpages().supports(PageSize::Size2M)
        {
            PageSize::Size2M
        } else {
            PageSize::Size4K
        };
        let fail = |error, buffer| MapFailure {
            error,
            buffer: Some(buffer),
        };
        let Some(start) = self.iovas.allocate(len, size.bytes()) else {
            return Err(fail(VtdError::NoIovaSpace, buffer));
        };
        let mut flush: Option<MapFlush> = None;
        let mut offset = 0;
        let mut error = None;
        while offset < len {
            let step = (|| {
                let iova = Iova::new(start + offset).map_err(|_| VtdError::NoIovaSpace)?;
                let page = PhysAddr::new(phys + offset).map_err(|_| VtdError::OutOfMemory)?;
                self.table_mut()
                    .map(iova, page, size, access)
                    .map_err(VtdError::Map)
            })();
            match step {
                Ok(token) => match flush.as_mut() {
                    None => flush = Some(token),
                    Some(all) => {
                        if let Err(token) = all.merge(token) {
                            unreachable!("tokens of one table merge: {token:?}");
                        }
                    }
                },
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
            offset += size.bytes();
        }
        let iova = Iova::new_truncate(start);
        let completed = match flush {
            Some(flush) if error.is_none() => {
                let required = flush.invalidation(self.caching_mode, self.psi);
                match self.invalidate(required) {
                    Ok(proof) => {
                        flush.complete(proof);
                        Ok(())
                    }
                    Err(e) => {
                        // The leaves are written but may be invisible: take them out again.
                        error = Some(e);
                        flush.complete(self.proof_for_unseen_map());
                        Err(())
                    }
                }
            }
            Some(flush) => {
                flush.complete(self.proof_for_unseen_map());
                Err(())
            }
            None => Err(()),
        };
        if completed.is_ok() {
            self.buffers.insert(start, Mapped { buffer });
            return Ok(iova);
        }
        let error = error.unwrap_or(VtdError::NoIovaSpace);
        // Undo the part that was mapped; the buffer is safe to hand back only if that undo
        // was invalidated.
        let end = Iova::new_truncate(start + offset);
        match self.table_mut().unmap(iova..end) {
            Ok(undo) => match self.invalidate(undo.invalidation(self.psi)) {
                Ok(proof) => {
                    if let Err(foreign) = self.table_mut().complete_unmap(undo, proof) {
                        unreachable!("our own token: {foreign:?}");
                    }
                    self.iovas.release(start, len);
                    Err(fail(error, buffer))
                }
                Err(_) => {
                    crate::error!(
                        "vtd",
                        "space {}: undoing a failed map at {start:#x} could not be invalidated; the buffer stays held",
                        self.id
                    );
                    self.stranded_buffers.push(buffer);
                    self.stranded_flushes.push(undo);
                    Err(MapFailure {
                        error,
                        buffer: None,
                    })
                }
            },
            Err(unmap_error) => {
                crate::error!(
                    "vtd",
                    "space {}: undoing a failed map at {start:#x}: {unmap_error:?}; the buffer stays held",
                    self.id
                );
                self.buffers.insert(start, Mapped { buffer });
                Err(MapFailure {
                    error,
                    buffer: None,
                })
            }
        }
    }

    /// A map that is being undone before anyone was told its IOVA: no device was given the
    /// address, and the undo is invalidated before the frames or IOVAs are reused.
    fn proof_for_unseen_map(&self) -> InvalidationDone {
        // SAFETY: the map token only records that leaves were written; it guards no frame or
        // IOVA. The caller unmaps the same range next and completes that unmap with a real
        // invalidation before anything is reused.
        unsafe { InvalidationDone::assume_invalidated() }
    }

    fn unmap_many(&mut self, iovas: &[Iova]) -> Result<Vec<DmaBuffer>, VtdError> {
        if iovas
            .iter()
            .any(|i| !self.buffers.contains_key(&i.as_u64()))
        {
            return Err(VtdError::NotMapped);
        }
        let mut flush: Option<UnmapFlush> = None;
        let mut taken = Vec::new();
        for iova in iovas {
            let Some(mapped) = self.buffers.remove(&iova.as_u64()) else {
                continue;
            };
            let end = Iova::new_truncate(iova.as_u64() + mapped.buffer.len());
            let token = match self.table_mut().unmap(*iova..end) {
                Ok(token) => token,
                Err(e) => {
                    self.buffers.insert(iova.as_u64(), mapped);
                    return Err(self.finish_partial(flush, taken, VtdError::Unmap(e)));
                }
            };
            match flush.as_mut() {
                None => flush = Some(token),
                Some(all) => {
                    if let Err(token) = all.merge(token) {
                        unreachable!("tokens of one table merge: {token:?}");
                    }
                }
            }
            taken.push((iova.as_u64(), mapped.buffer));
        }
        let Some(flush) = flush else {
            return Ok(Vec::new());
        };
        match self.invalidate(flush.invalidation(self.psi)) {
            Ok(proof) => {
                if let Err(foreign) = self.table_mut().complete_unmap(flush, proof) {
                    unreachable!("our own token: {foreign:?}");
                }
                Ok(taken
                    .into_iter()
                    .map(|(start, buffer)| {
                        self.iovas.release(start, buffer.len());
                        buffer
                    })
                    .collect())
            }
            Err(e) => {
                crate::error!(
                    "vtd",
                    "space {}: unmap invalidation failed ({e:?}); {} buffer(s) held until the space is destroyed",
                    self.id,
                    taken.len()
                );
                self.stranded_buffers
                    .extend(taken.into_iter().map(|(_, b)| b));
                self.stranded_flushes.push(flush);
                Err(e)
            }
        }
    }

    /// An unmap failed half-way: invalidate what was unmapped so far and keep those buffers
    /// mapped-equivalent (held) if that fails too; returns `error`.
    fn finish_partial(
        &mut self,
        flush: Option<UnmapFlush>,
        taken: Vec<(u64, DmaBuffer)>,
        error: VtdError,
    ) -> VtdError {
        if let Some(flush) = flush {
            match self.invalidate(flush.invalidation(self.psi)) {
                Ok(proof) => {
                    if let Err(foreign) = self.table_mut().complete_unmap(flush, proof) {
                        unreachable!("our own token: {foreign:?}");
                    }
                    for (start, buffer) in taken {
                        self.iovas.release(start, buffer.len());
                        drop(buffer);
                    }
                }
                Err(_) => {
                    self.stranded_buffers
                        .extend(taken.into_iter().map(|(_, b)| b));
                    self.stranded_flushes.push(flush);
                }
            }
        }
        error
    }

    /// Issues `required` for every attachment (each group's domain ID on the unit) and waits;
    /// the proof is minted only when all of them completed. With no attachment nothing can
    /// cache this table (a detach invalidated its whole domain).
    fn invalidate(&self, required: RequiredInvalidation) -> Result<InvalidationDone, VtdError> {
        with_state(|state| self.invalidate_in(state, required))
    }

    /// [`invalidate`](Self::invalidate) on `state` as given (bring-up's, not yet installed).
    fn invalidate_in(
        &self,
        state: &mut State,
        required: RequiredInvalidation,
    ) -> Result<InvalidationDone, VtdError> {
        let unit = state.units.get_mut(self.unit).ok_or(VtdError::WrongUnit)?;
        let clock = KernelClock;
        for &(_, domain) in &self.attachments {
            match required.iotlb_scope(domain) {
                Some(scope) => {
                    unit.engine
                        .invalidate_iotlb(&mut unit.tables, &clock, scope)
                        .map_err(|e| VtdError::Hardware(alloc::format!("{e}")))?;
                    INVALIDATIONS.fetch_add(1, Ordering::Relaxed);
                }
                None => unit
                    .engine
                    .flush_write_buffer(&clock)
                    .map_err(|e| VtdError::Hardware(alloc::format!("{e}")))?,
            }
        }
        // SAFETY: every domain this table is attached under (one per attached group, all
        // on this unit: attach refuses other units) has completed the invalidation the
        // token asked for, or the write-buffer flush a map without caching mode needs;
        // without attachments no context entry points at the table and the detach that
        // removed the last one invalidated its domain. KernelTables flushed the writes.
        Ok(unsafe { InvalidationDone::assume_invalidated() })
    }
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
