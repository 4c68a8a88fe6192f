//! VT-d second-level page tables (VT-d spec 3.7, 9.8): a table engine generic over where its
//! frames live ([`TableMemory`]), so the same code runs on the host in tests and in the kernel.
//!
//! Every change returns a `#[must_use]` flush token ([`MapFlush`], [`UnmapFlush`]) that says
//! which single IOTLB invalidation the change needs and completes only with an
//! [`InvalidationDone`] proof. Frames emptied by an unmap are released only by that completion.
//!
//! ```
//! use std::collections::HashMap;
//! use moat_iommu::paging::*;
//!
//! #[derive(Default)]
//! struct Frames { tables: HashMap<u64, [u64; 512]>, next: u64 }
//!
//! impl TableMemory for Frames {
//!     fn alloc_table(&mut self) -> Result<PhysAddr, OutOfMemory> {
//!         self.next += 0x1000;
//!         self.tables.insert(self.next, [0; 512]);
//!         PhysAddr::new(self.next).map_err(|_| OutOfMemory)
//!     }
//!     fn free_table(&mut self, table: PhysAddr) { self.tables.remove(&table.as_u64()); }
//!     fn read(&self, table: PhysAddr, index: usize) -> u64 { self.tables[&table.as_u64()][index] }
//!     fn write(&mut self, table: PhysAddr, index: usize, value: u64) {
//!         self.tables.get_mut(&table.as_u64()).unwrap()[index] = value;
//!     }
//! }
//!
//! // QEMU aw-bits=39: SAGAW 0x2, MGAW 38, SLLPS 0b11, CM 0, PSI 1 with MAMV 18.
//! let geometry = Geometry::from_cap(0x2, 38, 39).unwrap();
//! let superpages = SuperpageSupport::from_sllps(0b11);
//! let psi = PageSelectiveSupport::from_cap(1, 18);
//! let mut table = PageTable::new(Frames::default(), geometry, superpages).ok().unwrap();
//!
//! let iova = Iova::new(0x20_0000).unwrap();
//! let flush = table.map(iova, PhysAddr::new(0x4000_0000).unwrap(), PageSize::Size2M, Access::Read)?;
//! assert!(!flush.needs_invalidation(CachingMode::from_cap(0)));
//! // The kernel flushes the write buffer (CAP.RWBF) here, then:
//! // SAFETY: an example; no remapping hardware is involved.
//! flush.complete(unsafe { InvalidationDone::assume_invalidated() });
//! assert_eq!(table.translate(iova).map(|found| found.size), Some(PageSize::Size2M));
//!
//! let flush = table.unmap(iova..Iova::new(0x40_0000).unwrap()).unwrap();
//! let RequiredInvalidation::PageSelective { range, .. } = flush.invalidation(psi) else { panic!() };
//! assert_eq!(range.address_mask_order(), 9); // one invalidation for all 512 pages
//! // The kernel issues it and waits for completion, then:
//! // SAFETY: an example; no remapping hardware is involved.
//! let done = unsafe { InvalidationDone::assume_invalidated() };
//! table.complete_unmap(flush, done).unwrap();
//! # Ok::<(), MapError>(())
//! ```

mod complete;
mod error;
mod flush;
mod geometry;
mod map;
mod memory;
mod table;
mod unmap;

#[cfg(test)]
mod host_memory;
#[cfg(test)]
mod tests;

pub use crate::entries::{Access, Iova, PageSize, PhysAddr};
pub use error::{ForeignFlush, MapCompletionError, MapError, TableAllocError, UnmapError};
pub use flush::{
    CachingMode, InvalidationDone, MapFlush, PageSelectiveSupport, RequiredInvalidation, UnmapFlush,
};
pub use geometry::{Geometry, Levels, SuperpageSupport};
pub use memory::{OutOfMemory, TableMemory};
pub use table::{PageTable, Translation};
