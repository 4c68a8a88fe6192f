//! DMA buffers and device register windows: the safe surface drivers use. A buffer is
//! physically contiguous, zeroed RAM accessed with volatile reads and writes (a device may
//! change it at any time); a register window is one BAR of one device, bounds-checked, and
//! only the passthrough layer (a bound device handle) makes one.

use crate::arch::io::{self, Mmio};
use crate::physmem::{self, PhysmemError};

/// Physically contiguous memory for device DMA.
///
/// A device reaches a buffer only through an IOVA of an address space it is mapped into; while
/// mapped, the address space holds it, and `unmap` hands it back only after the IOTLB
/// invalidation completed. So whoever holds a `DmaBuffer` holds memory no device can reach, and
/// dropping it returns the frames to the allocator.
#[derive(Debug)]
pub struct DmaBuffer {
    phys: u64,
    len: u64,
}

/// An access outside a buffer or window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds {
    /// The offset asked for.
    pub offset: u64,
    /// The length asked for.
    pub len: u64,
}

impl DmaBuffer {
    /// `len` bytes (rounded up to 4 KiB), aligned to `align` bytes (a power of two >= 4 KiB).
    pub fn new(len: u64, align: u64) -> Result<Self, PhysmemError> {
        let frames = len.div_ceil(4096).max(1) as usize;
        let align_frames = (align / 4096).max(1) as usize;
        let phys = physmem::allocate_contiguous(frames, align_frames)?;
        Ok(Self {
            phys,
            len: frames as u64 * 4096,
        })
    }

    /// Physical address of the first byte, for reports and tests. Nothing takes a physical
    /// address back: devices are given IOVAs from an address space.
    pub fn physical_address(&self) -> u64 {
        self.phys
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the buffer is empty (never: at least one frame).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, offset: u64, len: usize) -> Result<u64, OutOfBounds> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.len => Ok(self.phys + offset),
            _ => Err(OutOfBounds {
                offset,
                len: len as u64,
            }),
        }
    }

    /// Copies bytes out of the buffer.
    pub fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), OutOfBounds> {
        let at = self.check(offset, out.len())?;
        // SAFETY: the range is inside frames this buffer owns, which are mapped RAM.
        unsafe { io::read_physical(at, out) };
        Ok(())
    }

    /// Copies bytes into the buffer.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), OutOfBounds> {
        let at = self.check(offset, data.len())?;
        // SAFETY: the range is inside frames this buffer owns, which are mapped RAM that no
        // reference aliases (devices reach them only through DMA).
        unsafe { io::write_physical(at, data) };
        Ok(())
    }

    /// Sets every byte to `value`.
    pub fn fill(&self, value: u8) {
        for offset in (0..self.len).step_by(4096) {
            let _ = self.write(offset, &[value; 4096]);
        }
    }
}

impl Drop for DmaBuffer {
    fn drop(&mut self) {
        for frame in (self.phys..self.phys + self.len).step_by(4096) {
            if let Err(error) = physmem::free(frame) {
                crate::error!("dma", "freeing buffer frame {frame:#x}: {error:?}");
            }
        }
    }
}

/// One device BAR, mapped uncached, with bounds-checked register access.
#[derive(Debug)]
pub struct RegisterWindow {
    base: u64,
    len: u64,
}

impl RegisterWindow {
    /// Maps `[base, base+len)`: a memory BAR the passthrough layer took from the device's
    /// config space for the handle that owns the device.
    pub(crate) fn map(base: u64, len: u64) -> Result<Self, crate::arch::paging::PagingError> {
        crate::arch::paging::map_mmio(base, len)?;
        Ok(Self { base, len })
    }

    /// Maps `[base, base+len)` for the composition root (its scenarios poke devices that no
    /// owner holds).
    pub fn map_privileged(
        _root: &crate::privilege::Privileged,
        base: u64,
        len: u64,
    ) -> Result<Self, crate::arch::paging::PagingError> {
        Self::map(base, len)
    }

    /// Length of the window (the BAR's size) in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the window is empty (never: a BAR is at least 16 bytes).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `[address, address + len)` lies inside this window's BAR (physical, identity
    /// mapped): for the virtio HAL's MMIO check, kernel-internal.
    pub(crate) fn contains_physical(&self, address: u64, len: u64) -> bool {
        address >= self.base
            && address
                .checked_add(len)
                .is_some_and(|end| end <= self.base + self.len)
    }

    fn at(&self, offset: u64, width: u64) -> Result<usize, OutOfBounds> {
        if !offset.is_multiple_of(width)
            || offset.checked_add(width).is_none_or(|end| end > self.len)
        {
            return Err(OutOfBounds { offset, len: width });
        }
        Ok((self.base + offset) as usize)
    }

    /// Reads an 8-bit register (virtio's device status, say) with one 1-byte access.
    pub fn read8(&self, offset: u64) -> Result<u8, OutOfBounds> {
        // SAFETY: inside the mapped, uncached BAR (checked).
        Ok(unsafe { Mmio::<u8>::new(self.at(offset, 1)?) }.read())
    }

    /// Writes an 8-bit register with one 1-byte access.
    pub fn write8(&self, offset: u64, value: u8) -> Result<(), OutOfBounds> {
        // SAFETY: as for read8.
        unsafe { Mmio::<u8>::new(self.at(offset, 1)?) }.write(value);
        Ok(())
    }

    /// Reads a 16-bit register with one 2-byte access.
    pub fn read16(&self, offset: u64) -> Result<u16, OutOfBounds> {
        // SAFETY: inside the mapped, uncached BAR; 2-byte aligned (checked).
        Ok(unsafe { Mmio::<u16>::new(self.at(offset, 2)?) }.read())
    }

    /// Writes a 16-bit register with one 2-byte access.
    pub fn write16(&self, offset: u64, value: u16) -> Result<(), OutOfBounds> {
        // SAFETY: as for read16.
        unsafe { Mmio::<u16>::new(self.at(offset, 2)?) }.write(value);
        Ok(())
    }

    /// Reads a 32-bit register.
    pub fn read32(&self, offset: u64) -> Result<u32, OutOfBounds> {
        // SAFETY: inside the mapped, uncached BAR; aligned (checked).
        Ok(unsafe { Mmio::<u32>::new(self.at(offset, 4)?) }.read())
    }

    /// Writes a 32-bit register.
    pub fn write32(&self, offset: u64, value: u32) -> Result<(), OutOfBounds> {
        // SAFETY: as for read32.
        unsafe { Mmio::<u32>::new(self.at(offset, 4)?) }.write(value);
        Ok(())
    }

    /// Reads a 64-bit register with one 8-byte access.
    pub fn read64(&self, offset: u64) -> Result<u64, OutOfBounds> {
        // SAFETY: as for read32, 8-byte aligned.
        Ok(unsafe { Mmio::<u64>::new(self.at(offset, 8)?) }.read())
    }

    /// Writes a 64-bit register with one 8-byte access.
    pub fn write64(&self, offset: u64, value: u64) -> Result<(), OutOfBounds> {
        // SAFETY: as for read64.
        unsafe { Mmio::<u64>::new(self.at(offset, 8)?) }.write(value);
        Ok(())
    }
}

impl AsRef<RegisterWindow> for RegisterWindow {
    fn as_ref(&self) -> &RegisterWindow {
        self
    }
}
