//! The kernel's side of two of the remapping engine's traits: VT-d registers through uncached
//! MMIO, table frames from the frame allocator (with cache-line flushes when the unit does not
//! snoop). The engine's clock is the kernel's `time::Monotonic`.

use crate::arch::io::{self, Mmio};
use crate::physmem;
use moat_iommu::engine::{Offset32, Offset64, Registers};
use moat_iommu::entries::PhysAddr;
use moat_iommu::paging::{OutOfMemory, TableMemory};

/// A unit's register window, mapped uncached by `vtd::init` before any access.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MmioRegisters {
    base: usize,
}

impl MmioRegisters {
    /// Registers at `base`.
    ///
    /// # Safety
    ///
    /// `base` must be a VT-d unit's register page, identity-mapped uncached, used by nothing
    /// but the remapping code.
    pub(crate) const unsafe fn new(base: u64) -> Self {
        Self {
            base: base as usize,
        }
    }
}

impl Registers for MmioRegisters {
    fn read32(&self, offset: Offset32) -> u32 {
        // SAFETY: `new`'s contract; the offset type guarantees a 32-bit register.
        unsafe { Mmio::<u32>::new(self.base + usize::from(offset.get())) }.read()
    }

    fn write32(&self, offset: Offset32, value: u32) {
        // SAFETY: as for read32.
        unsafe { Mmio::<u32>::new(self.base + usize::from(offset.get())) }.write(value);
    }

    fn read64(&self, offset: Offset64) -> u64 {
        // SAFETY: `new`'s contract; the offset type guarantees a 64-bit register.
        unsafe { Mmio::<u64>::new(self.base + usize::from(offset.get())) }.read()
    }

    fn write64(&self, offset: Offset64, value: u64) {
        // SAFETY: as for read64.
        unsafe { Mmio::<u64>::new(self.base + usize::from(offset.get())) }.write(value);
    }
}

/// Remapping-table frames from the kernel's frame allocator. Only the remapping code makes
/// one: its `write` stores to whatever frame it is given, so it must never be reachable from
/// outside the kernel's VT-d module.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KernelTables {
    /// ECAP.C: the unit snoops CPU caches, so no flushes are needed.
    coherent: bool,
}

impl KernelTables {
    /// Table memory for a unit that does (`coherent`) or does not snoop CPU caches.
    pub(crate) const fn new(coherent: bool) -> Self {
        Self { coherent }
    }
}

impl TableMemory for KernelTables {
    fn alloc_table(&mut self) -> Result<PhysAddr, OutOfMemory> {
        let frame = physmem::allocate_zeroed().ok_or(OutOfMemory)?;
        if !self.coherent {
            for line in (frame..frame + 4096).step_by(64) {
                io::flush_cache_line(line);
            }
        }
        PhysAddr::new(frame).map_err(|_| OutOfMemory)
    }

    fn free_table(&mut self, table: PhysAddr) {
        if let Err(error) = physmem::free(table.as_u64()) {
            crate::error!(
                "vtd",
                "freeing table frame {:#x}: {error:?}",
                table.as_u64()
            );
        }
    }

    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        // SAFETY: `table` is a frame from `alloc_table` (the engine's contract) and index < 512.
        unsafe { io::read_u64(table.as_u64() + (index as u64 % 512) * 8) }
    }

    fn write(&mut self, table: PhysAddr, index: usize, value: u64) {
        let address = table.as_u64() + (index as u64 % 512) * 8;
        // SAFETY: as for read.
        unsafe { io::write_u64(address, value) };
        if !self.coherent {
            io::flush_cache_line(address);
        }
    }
}
