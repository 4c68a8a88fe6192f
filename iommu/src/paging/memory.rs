//! Where table frames come from: the engine asks a [`TableMemory`] for zeroed 4 KiB frames and
//! reads and writes their 512 entries through it, so the same code runs against a `HashMap` on
//! the host and against the direct map in the kernel.

use crate::entries::PhysAddr;

/// The table-memory allocator is exhausted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory;

/// Frames for second-level tables and access to their entries.
///
/// Contract (the engine relies on it; a broken implementation corrupts translations, it cannot
/// make the engine read outside a frame because indices are always below 512):
/// * `alloc_table` returns a 4 KiB-aligned frame whose 512 entries are all zero, not in use by
///   anything else, and below the remapping unit's host address width.
/// * `read`/`write` access entry `index` (`< 512`) of a frame returned by `alloc_table` and not
///   yet freed. A kernel implementation must make writes visible to the IOMMU (ECAP.C = 0 means
///   the hardware does not snoop: flush the cache line before completing a flush token).
/// * `free_table` receives each allocated frame at most once; the engine calls it only after the
///   hardware can no longer reach the frame.
pub trait TableMemory {
    /// A zeroed 4 KiB frame.
    fn alloc_table(&mut self) -> Result<PhysAddr, OutOfMemory>;
    /// Gives back a frame from [`alloc_table`](Self::alloc_table).
    fn free_table(&mut self, table: PhysAddr);
    /// Entry `index` of `table`.
    fn read(&self, table: PhysAddr, index: usize) -> u64;
    /// Stores `value` in entry `index` of `table`.
    fn write(&mut self, table: PhysAddr, index: usize, value: u64);
}

impl<T: TableMemory + ?Sized> TableMemory for &mut T {
    fn alloc_table(&mut self) -> Result<PhysAddr, OutOfMemory> {
        (**self).alloc_table()
    }

    fn free_table(&mut self, table: PhysAddr) {
        (**self).free_table(table);
    }

    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        (**self).read(table, index)
    }

    fn write(&mut self, table: PhysAddr, index: usize, value: u64) {
        (**self).write(table, index, value);
    }
}
