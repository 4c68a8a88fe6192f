//! Mapping and unmapping in an address space: buffers in, IOVAs out; buffers back only after
//! the invalidation that covers them; every failure left in a state that is reported and
//! safe (a buffer a device might still reach is held, never handed back).

use super::{MapFailure, Mapped, SpaceInner};
use crate::dma::DmaBuffer;
use crate::vtd::VtdError;
use alloc::vec::Vec;
use moat_iommu::entries::{Access, Iova, PageSize, PhysAddr};
use moat_iommu::paging::{MapCompletionError, MapFlush, UnmapFlush};

impl SpaceInner {
    pub(super) fn map(&mut self, buffer: DmaBuffer, access: Access) -> Result<Iova, MapFailure> {
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
        let Some(flush) = flush else {
            // Nothing was mapped: nothing to take out or invalidate.
            self.iovas.release(start, len);
            return Err(fail(error.unwrap_or(VtdError::NoIovaSpace), buffer));
        };
        // A map that failed part-way is abandoned before anyone was told its IOVA: its own
        // invalidation is declined (with the map's error), so `complete_map` takes the pages
        // out again and invalidates that removal for real.
        let mut abandon = error.clone();
        let (unit, caching_mode, psi) = (self.unit, self.caching_mode, self.psi);
        let attachments = &self.attachments;
        let table = self
            .table
            .as_mut()
            .expect("the table exists until the space is dropped");
        let completed =
            table.complete_map(flush, caching_mode, psi, |required| match abandon.take() {
                Some(error) => Err(error),
                None => super::invalidate(unit, attachments, required),
            });
        match completed {
            Ok(()) => {
                self.buffers.insert(start, Mapped { buffer });
                Ok(iova)
            }
            Err(MapCompletionError::RolledBack { error: failure }) => {
                self.iovas.release(start, len);
                Err(fail(error.unwrap_or(failure), buffer))
            }
            Err(MapCompletionError::RollbackPending {
                error: failure,
                flush,
                ..
            }) => {
                crate::error!(
                    "vtd",
                    "space {}: undoing a failed map at {start:#x} could not be invalidated; the buffer stays held",
                    self.id
                );
                self.stranded_buffers.push(buffer);
                self.stranded_flushes.push(*flush);
                Err(MapFailure {
                    error: error.unwrap_or(failure),
                    buffer: None,
                })
            }
            Err(MapCompletionError::Foreign(token)) => {
                unreachable!("a token of this space's own table: {token:?}")
            }
        }
    }

    pub(super) fn unmap_many(&mut self, iovas: &[Iova]) -> Result<Vec<DmaBuffer>, VtdError> {
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
}
