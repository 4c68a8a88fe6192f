//! The simulated DMA memory: regions at IOVAs with a guard page between them, the direction
//! the device may use each in, and a record of every device access that no live region
//! allowed (what an IOMMU would have faulted).

use crate::platform::{Direction, DmaError, DmaRegion};
use std::collections::BTreeMap;

/// Where the first region goes: high, so a driver that confused offsets with IOVAs is seen.
const FIRST_IOVA: u64 = 0x10_0000_0000;
const PAGE: u64 = 4096;

/// A simulated region handle (not Clone, like the kernel's mapping).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SimRegion {
    iova: u64,
    len: usize,
}

impl DmaRegion for SimRegion {
    fn iova(&self) -> u64 {
        self.iova
    }
    fn len(&self) -> usize {
        self.len
    }
}

struct Region {
    bytes: Vec<u8>,
    direction: Direction,
}

/// The memory and its counters.
#[derive(Default)]
pub(crate) struct Memory {
    regions: BTreeMap<u64, Region>,
    next: u64,
    /// Regions allocated so far.
    pub(crate) allocated: usize,
    /// Regions retired so far.
    pub(crate) retired: usize,
    /// Device accesses no live region allowed: (IOVA, length, was a write).
    pub(crate) faults: Vec<(u64, usize, bool)>,
    /// Sizes of the regions allocated, in order.
    pub(crate) sizes: Vec<(usize, Direction)>,
}

impl Memory {
    /// Regions allocated and not retired.
    pub(crate) fn live(&self) -> usize {
        self.regions.len()
    }

    pub(crate) fn allocate(
        &mut self,
        len: usize,
        direction: Direction,
    ) -> Result<SimRegion, DmaError> {
        if len == 0 {
            return Err(DmaError::Allocate { len });
        }
        if self.next == 0 {
            self.next = FIRST_IOVA;
        }
        let iova = self.next;
        self.next += (len as u64).div_ceil(PAGE) * PAGE + PAGE;
        self.regions.insert(
            iova,
            Region {
                bytes: vec![0; len],
                direction,
            },
        );
        self.allocated += 1;
        self.sizes.push((len, direction));
        Ok(SimRegion { iova, len })
    }

    fn region(&mut self, handle: &SimRegion) -> &mut Region {
        self.regions
            .get_mut(&handle.iova)
            .expect("the driver used a region it had retired")
    }

    pub(crate) fn cpu_read(
        &mut self,
        handle: &SimRegion,
        offset: usize,
        out: &mut [u8],
    ) -> Result<(), DmaError> {
        let bytes = &self.region(handle).bytes;
        let range = offset..offset + out.len();
        let source = bytes.get(range).ok_or(DmaError::OutOfBounds {
            offset,
            len: out.len(),
        })?;
        out.copy_from_slice(source);
        Ok(())
    }

    pub(crate) fn cpu_write(
        &mut self,
        handle: &SimRegion,
        offset: usize,
        data: &[u8],
    ) -> Result<(), DmaError> {
        let bytes = &mut self.region(handle).bytes;
        let target = bytes
            .get_mut(offset..offset + data.len())
            .ok_or(DmaError::OutOfBounds {
                offset,
                len: data.len(),
            })?;
        target.copy_from_slice(data);
        Ok(())
    }

    pub(crate) fn retire(&mut self, handle: SimRegion) {
        self.regions.remove(&handle.iova).expect("retired twice");
        self.retired += 1;
    }

    /// The live region holding `iova..iova + len`, if the device may access it that way.
    fn device_region(
        &mut self,
        iova: u64,
        len: usize,
        write: bool,
    ) -> Option<(&mut Region, usize)> {
        let (&base, region) = self.regions.range_mut(..=iova).next_back()?;
        let offset = (iova - base) as usize;
        let allowed = match region.direction {
            Direction::ToDevice => !write,
            Direction::FromDevice => write,
        };
        (allowed && offset + len <= region.bytes.len()).then_some((region, offset))
    }

    /// A device read; `None` (and a recorded fault) if no live region allows it.
    pub(crate) fn device_read(&mut self, iova: u64, len: usize) -> Option<Vec<u8>> {
        match self.device_region(iova, len, false) {
            Some((region, offset)) => Some(region.bytes[offset..offset + len].to_vec()),
            None => {
                self.faults.push((iova, len, false));
                None
            }
        }
    }

    /// A device write; `false` (and a recorded fault) if no live region allows it.
    pub(crate) fn device_write(&mut self, iova: u64, data: &[u8]) -> bool {
        match self.device_region(iova, data.len(), true) {
            Some((region, offset)) => {
                region.bytes[offset..offset + data.len()].copy_from_slice(data);
                true
            }
            None => {
                self.faults.push((iova, data.len(), true));
                false
            }
        }
    }
}
