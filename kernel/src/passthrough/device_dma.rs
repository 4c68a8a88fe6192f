//! A driver's DMA memory under strict translation: every buffer the device sees is a fresh
//! [`DmaBuffer`] mapped into the driver's own address space for one request, and retired after
//! it. Retired buffers wait in a per-driver queue and are unmapped together, with one ranged
//! IOTLB invalidation per batch; only after that invalidation completed are their frames
//! returned to the allocator.
//!
//! What the batch window means: between `retire` and the batch's invalidation, the device can
//! still reach the retired buffers (their translations stay until the batch is unmapped). Those
//! buffers are still the driver's own memory, nobody else's, and never reused for anything
//! before the invalidation, so no other owner and no kernel memory is ever exposed; what the
//! window does allow is a misbehaving device writing into the driver's own finished requests.
//!
//! Pass-through (`iommu.passthrough=`, the benchmark's yardstick only): the device's group
//! translates nothing, so a buffer is not mapped anywhere; the device is given the buffer's
//! physical address as its DMA address (the one place a physical address leaves the kernel,
//! and only as that device's DMA address), nothing is invalidated, and a retired buffer is
//! freed at once. Such a device reaches all of memory anyway; there is no isolation to keep.

use crate::dma::{DmaBuffer, OutOfBounds};
use crate::vtd::{IoAddressSpace, Translation, VtdError};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use moat_iommu::entries::{Access, Iova};

/// Why a DMA operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DmaError {
    /// No physical memory for the buffer.
    OutOfMemory,
    /// Mapping the buffer failed.
    Map(VtdError),
    /// Unmapping a batch failed; the space keeps the buffers (a device might still reach them).
    Unmap(VtdError),
    /// The mapping is not in this driver's space (it was retired, or is another driver's).
    NotMapped(u64),
    /// An access outside the mapping.
    OutOfBounds(OutOfBounds),
}

/// Counters of one driver's DMA (for reports and the benchmark).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmaStats {
    /// Buffers mapped.
    pub maps: u64,
    /// Buffers retired.
    pub retired: u64,
    /// Batches unmapped (each one ranged IOTLB invalidation).
    pub flushes: u64,
    /// Retired buffers still waiting for their batch's invalidation.
    pub pending: usize,
}

/// One buffer mapped into a driver's space: its IOVA is what the device is given. Not `Clone`:
/// retiring consumes it, so nothing names the IOVA after it goes back.
#[derive(Debug)]
#[must_use = "a mapping is retired explicitly, or the buffer stays mapped until the space goes"]
pub struct DmaMapping {
    iova: Iova,
    len: u64,
}

impl DmaMapping {
    /// The device address of the first byte: an IOVA of the driver's space, or, for a device
    /// in pass-through, the buffer's physical address.
    pub fn iova(&self) -> u64 {
        self.iova.as_u64()
    }

    /// Length in bytes (whole pages).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never empty (at least one page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A driver's DMA: its address space plus the queue of retired buffers.
#[derive(Debug)]
pub struct DeviceDma {
    space: IoAddressSpace,
    retired: Vec<Iova>,
    batch: usize,
    stats: DmaStats,
    translation: Translation,
    /// Pass-through only: the live buffers by physical address (nothing maps them).
    unmapped: BTreeMap<u64, DmaBuffer>,
}

impl DeviceDma {
    /// DMA through `space`, unmapping retired buffers `batch` at a time (1: every retire is
    /// invalidated at once); with `translation` [`Translation::PassThrough`] (the device's
    /// group passes DMA through) buffers are handed out unmapped, by physical address.
    pub fn new(space: IoAddressSpace, batch: usize, translation: Translation) -> Self {
        let batch = batch.max(1);
        Self {
            space,
            retired: Vec::with_capacity(batch),
            batch,
            stats: DmaStats::default(),
            translation,
            unmapped: BTreeMap::new(),
        }
    }

    /// How the device's DMA is translated (what [`DmaMapping::iova`] means).
    pub fn translation(&self) -> Translation {
        self.translation
    }

    /// The driver's address space, inside the kernel only: its `unmap` would free buffers
    /// the driver (or the virtio HAL's rings) still uses. Others get the read-only views below.
    pub(crate) fn space(&self) -> &IoAddressSpace {
        &self.space
    }

    /// The space's number (for reports).
    pub fn space_id(&self) -> u32 {
        self.space.id()
    }

    /// Every buffer mapped in the space as (IOVA, length), in IOVA order (for reports and the
    /// isolation scenarios).
    pub fn mappings(&self) -> Vec<(u64, u64)> {
        self.space.mappings()
    }

    /// What `iova` translates to in the space (for reports and the isolation scenarios).
    pub fn translate(&self, iova: Iova) -> Option<moat_iommu::paging::Translation> {
        self.space.translate(iova)
    }

    /// A zeroed buffer of `len` bytes (whole pages), mapped with `access`.
    pub fn map(&mut self, len: u64, access: Access) -> Result<DmaMapping, DmaError> {
        let buffer = DmaBuffer::new(len, 4096).map_err(|_| DmaError::OutOfMemory)?;
        let len = buffer.len();
        if self.translation == Translation::PassThrough {
            let phys = buffer.physical_address();
            let iova = Iova::new(phys).map_err(|_| DmaError::OutOfMemory)?;
            self.unmapped.insert(phys, buffer);
            self.stats.maps += 1;
            return Ok(DmaMapping { iova, len });
        }
        let iova = self
            .space
            .map(buffer, access)
            .map_err(|failure| DmaError::Map(failure.error))?;
        self.stats.maps += 1;
        Ok(DmaMapping { iova, len })
    }

    /// The CPU address (identity-mapped physical) of a mapping's first byte, for memory the
    /// CPU and the device share in place (virtqueue rings). Kernel-internal: the virtio HAL
    /// hands it to the `virtio-drivers` crate, which accesses the ring through it.
    pub(crate) fn cpu_address(&self, mapping: &DmaMapping) -> Option<u64> {
        if let Some(buffer) = self.unmapped.get(&mapping.iova()) {
            return Some(buffer.physical_address());
        }
        self.space
            .with_buffer(mapping.iova, |buffer| buffer.physical_address())
    }

    /// Copies bytes out of a mapping.
    pub fn read(&self, mapping: &DmaMapping, offset: u64, out: &mut [u8]) -> Result<(), DmaError> {
        if let Some(buffer) = self.unmapped.get(&mapping.iova()) {
            return buffer.read(offset, out).map_err(DmaError::OutOfBounds);
        }
        self.space
            .with_buffer(mapping.iova, |buffer| buffer.read(offset, out))
            .ok_or(DmaError::NotMapped(mapping.iova()))?
            .map_err(DmaError::OutOfBounds)
    }

    /// Copies bytes into a mapping.
    pub fn write(&self, mapping: &DmaMapping, offset: u64, data: &[u8]) -> Result<(), DmaError> {
        if let Some(buffer) = self.unmapped.get(&mapping.iova()) {
            return buffer.write(offset, data).map_err(DmaError::OutOfBounds);
        }
        self.space
            .with_buffer(mapping.iova, |buffer| buffer.write(offset, data))
            .ok_or(DmaError::NotMapped(mapping.iova()))?
            .map_err(DmaError::OutOfBounds)
    }

    /// Hands a mapping back: it joins the queue, and a full queue is unmapped with one
    /// invalidation.
    pub fn retire(&mut self, mapping: DmaMapping) -> Result<(), DmaError> {
        if self.translation == Translation::PassThrough {
            // Nothing maps it, so nothing is invalidated: the frames go back at once.
            self.unmapped
                .remove(&mapping.iova())
                .ok_or(DmaError::NotMapped(mapping.iova()))?;
            self.stats.retired += 1;
            return Ok(());
        }
        self.retired.push(mapping.iova);
        self.stats.retired += 1;
        if self.retired.len() >= self.batch {
            self.flush()?;
        }
        Ok(())
    }

    /// Unmaps every retired buffer with one ranged invalidation, then frees them.
    pub fn flush(&mut self) -> Result<(), DmaError> {
        if self.retired.is_empty() {
            return Ok(());
        }
        let result = self.space.unmap_many(&self.retired);
        // On failure the space keeps whatever it could not prove unreachable; retrying the
        // same IOVAs would only fail again.
        self.retired.clear();
        let buffers = result.map_err(DmaError::Unmap)?;
        self.stats.flushes += 1;
        // The invalidation completed: the frames go back to the allocator here.
        drop(buffers);
        Ok(())
    }

    /// The driver's DMA counters.
    pub fn stats(&self) -> DmaStats {
        DmaStats {
            pending: self.retired.len(),
            ..self.stats
        }
    }
}

impl Drop for DeviceDma {
    fn drop(&mut self) {
        // `flush` empties the queue whatever happens: count first.
        let retired = self.retired.len();
        if let Err(error) = self.flush() {
            crate::error!(
                "dma",
                "space {}: unmapping {retired} retired buffer(s) failed: {error:?}; the space keeps them",
                self.space.id(),
            );
        }
    }
}
