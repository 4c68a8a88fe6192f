//! Host-side [`TableMemory`] for unit tests: frames in a `HashMap`, never reused, so any access
//! to a freed frame panics instead of reading stale data.

use std::collections::HashMap;

use super::{OutOfMemory, PhysAddr, TableMemory};

#[derive(Debug, Default)]
pub(super) struct HostMemory {
    tables: HashMap<u64, [u64; 512]>,
    next_frame: u64,
    pub(super) allocations: usize,
    pub(super) frees: usize,
    /// `Some(n)`: only `n` more allocations succeed.
    pub(super) budget: Option<usize>,
    /// Hand out a misaligned frame next (a broken allocator).
    pub(super) misalign_next: bool,
}

impl HostMemory {
    pub(super) fn new() -> Self {
        Self {
            next_frame: 0x10_0000,
            ..Self::default()
        }
    }

    pub(super) fn live(&self) -> usize {
        self.tables.len()
    }

    pub(super) fn is_live(&self, frame: PhysAddr) -> bool {
        self.tables.contains_key(&frame.as_u64())
    }
}

impl TableMemory for HostMemory {
    fn alloc_table(&mut self) -> Result<PhysAddr, OutOfMemory> {
        if let Some(budget) = self.budget.as_mut() {
            if *budget == 0 {
                return Err(OutOfMemory);
            }
            *budget -= 1;
        }
        let mut frame = self.next_frame;
        self.next_frame += 0x1000;
        if self.misalign_next {
            self.misalign_next = false;
            frame += 0x800;
        }
        self.tables.insert(frame, [0; 512]);
        self.allocations += 1;
        Ok(PhysAddr::new(frame).expect("test frames are small"))
    }

    fn free_table(&mut self, table: PhysAddr) {
        assert!(
            self.tables.remove(&table.as_u64()).is_some(),
            "double or foreign free {table:?}"
        );
        self.frees += 1;
    }

    fn read(&self, table: PhysAddr, index: usize) -> u64 {
        self.tables
            .get(&table.as_u64())
            .expect("read of a dead frame")[index]
    }

    fn write(&mut self, table: PhysAddr, index: usize, value: u64) {
        self.tables
            .get_mut(&table.as_u64())
            .expect("write to a dead frame")[index] = value;
    }
}
