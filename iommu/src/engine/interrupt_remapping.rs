//! Interrupt remapping on one unit (VT-d spec 5.1): the interrupt remapping table and which of
//! its entries are in use, registering it (IRTA_REG, then GCMD.SIRTP until GSTS.IRTPS), the
//! interrupt entry cache invalidation (6.5.2.7), and GCMD.IRE until GSTS.IRES.
//!
//! GCMD.CFI is never set, so compatibility-format interrupts stay blocked where the hardware
//! honours it (QEMU 7.2 does not emulate CFI and passes them through regardless).
//!
//! The interrupt entry cache has no register-based invalidation: only the queue's type-4
//! descriptor reaches it (and ECAP.IR implies ECAP.QI). A unit running register-based
//! invalidation is therefore refused rather than enabled with a note: an entry freed without
//! that invalidation could keep delivering from the cache, and a table whose freed entries may
//! still be live is no isolation.

use super::invalidate::InvalidationMode;
use super::registers::{GSTS, Global, IRTA};
use super::unit::{RemappingUnit, UnitError};
use super::{Clock, Registers};
use crate::entries::{
    InterruptEntry, InterruptEntryScope, InterruptIndex, InterruptTableAddress, InterruptTableSize,
    InvalidationDescriptor, PhysAddr, RemappedInterrupt,
};
use crate::paging::TableMemory;

/// Why interrupt remapping could not be set up or changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptRemappingError {
    /// ECAP.IR is 0: the unit cannot remap interrupts.
    Unsupported,
    /// The unit uses register-based invalidation; the interrupt entry cache needs the queue.
    QueueRequired,
    /// No frame for the table.
    OutOfMemory,
    /// Every entry of the table is in use.
    Exhausted,
    /// The index is not an allocated entry of this table.
    NotAllocated(InterruptIndex),
    /// A command did not complete, an invalidation failed, or the unit is not enabled.
    Unit(UnitError),
}

impl From<UnitError> for InterruptRemappingError {
    fn from(error: UnitError) -> Self {
        Self::Unit(error)
    }
}

impl core::fmt::Display for InterruptRemappingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unsupported => write!(f, "the unit lacks ECAP.IR"),
            Self::QueueRequired => write!(
                f,
                "the unit uses register-based invalidation, and the interrupt entry cache can \
                 only be invalidated through the queue"
            ),
            Self::OutOfMemory => write!(f, "no frame for the interrupt remapping table"),
            Self::Exhausted => write!(f, "every interrupt remapping entry is in use"),
            Self::NotAllocated(index) => {
                write!(
                    f,
                    "interrupt remapping entry {} is not allocated",
                    index.get()
                )
            }
            Self::Unit(error) => write!(f, "{error}"),
        }
    }
}

/// 64-bit words per 128-bit entry.
const WORDS_PER_ENTRY: usize = 2;

/// An enabled interrupt remapping table on one unit, and which of its entries are in use.
///
/// Dropping it leaves remapping on with the table in place (the kernel keeps it for the whole
/// run); [`InterruptRemapping::disable`] turns it off and frees the table.
#[derive(Debug)]
pub struct InterruptRemapping {
    table: PhysAddr,
    size: InterruptTableSize,
    /// Bit i: entry i is allocated (or was left reserved by a failed invalidation).
    used: [u64; 4],
}

impl<R: Registers> RemappingUnit<R> {
    /// GSTS.IRES: interrupt remapping is on.
    pub fn interrupt_remapping_enabled(&self) -> bool {
        Global::from_bits_retain(self.registers().read32(GSTS)).contains(Global::IRE)
    }

    /// Turns interrupt remapping off if it is on (GCMD.IRE = 0 until GSTS.IRES = 0), keeping
    /// the other enables.
    pub fn disable_interrupt_remapping(&self, clock: &dyn Clock) -> Result<(), UnitError> {
        if !self.interrupt_remapping_enabled() {
            return Ok(());
        }
        self.command(
            clock,
            "interrupt remapping disable (GSTS.IRES)",
            Global::empty(),
            Global::IRE | Global::CFI,
            Global::IRE,
            Global::empty(),
        )
    }
}

impl InterruptRemapping {
    /// Enables interrupt remapping on `unit` (already enabled with queued invalidation) with a
    /// fresh table of `size` entries, all not present: IRTA_REG = table | S with EIME = 0,
    /// GCMD.SIRTP until GSTS.IRTPS, a global interrupt entry cache invalidation, then GCMD.IRE
    /// until GSTS.IRES. Every GCMD write keeps TE and QIE and leaves CFI clear.
    ///
    /// Once IRTA_REG holds the table, a failure leaves the table allocated (the unit may have
    /// latched its address).
    pub fn enable<R: Registers>(
        unit: &mut RemappingUnit<R>,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        size: InterruptTableSize,
    ) -> Result<Self, InterruptRemappingError> {
        if !unit.extended_capability().interrupt_remapping() {
            return Err(InterruptRemappingError::Unsupported);
        }
        match unit.invalidator().1.map(|invalidator| invalidator.mode()) {
            None => return Err(UnitError::NotEnabled.into()),
            Some(InvalidationMode::Register) => {
                return Err(InterruptRemappingError::QueueRequired);
            }
            Some(InvalidationMode::Queued) => {}
        }
        // Firmware or an earlier kernel may have left remapping on with a table of its own.
        unit.disable_interrupt_remapping(clock)?;
        let table = memory
            .alloc_table()
            .map_err(|_| InterruptRemappingError::OutOfMemory)?;
        let Ok(address) = InterruptTableAddress::xapic(table, size) else {
            unreachable!("frames from alloc_table are 4 KiB aligned");
        };
        unit.registers().write64(IRTA, address.raw());
        unit.command(
            clock,
            "interrupt remapping table pointer (GSTS.IRTPS)",
            Global::SIRTP,
            Global::CFI,
            Global::SIRTP,
            Global::SIRTP,
        )?;
        let remapping = Self {
            table,
            size,
            used: [0; 4],
        };
        // The unit may cache entries of whatever table it had before.
        invalidate(unit, memory, clock, InterruptEntryScope::Global)?;
        unit.command(
            clock,
            "interrupt remapping enable (GSTS.IRES)",
            Global::IRE,
            Global::CFI,
            Global::IRE,
            Global::IRE,
        )?;
        Ok(remapping)
    }

    /// Turns interrupt remapping off on `unit` and frees the table. On failure the table stays
    /// allocated: the unit may still read it.
    pub fn disable<R: Registers>(
        self,
        unit: &mut RemappingUnit<R>,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
    ) -> Result<(), InterruptRemappingError> {
        unit.disable_interrupt_remapping(clock)?;
        memory.free_table(self.table);
        Ok(())
    }

    /// Number of entries in the table.
    pub fn entries(&self) -> u32 {
        self.size.entries()
    }

    /// Entries allocated now.
    pub fn in_use(&self) -> u32 {
        self.used.iter().map(|word| word.count_ones()).sum()
    }

    /// The entry at `index` as the unit would read it; `None` past the table's end.
    pub fn entry(&self, memory: &dyn TableMemory, index: InterruptIndex) -> Option<InterruptEntry> {
        let slot = self.slot(index)?;
        Some(InterruptEntry::from_raw(
            memory.read(self.table, slot),
            memory.read(self.table, slot + 1),
        ))
    }

    /// Writes a present entry for `interrupt` into a free slot and invalidates that slot in
    /// the interrupt entry cache (the unit may have cached it as not present). Returns the
    /// index the device's message must name.
    ///
    /// If the invalidation fails, the entry stays written and reserved (never handed out
    /// again), and the error is returned.
    pub fn allocate<R: Registers>(
        &mut self,
        unit: &mut RemappingUnit<R>,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        interrupt: RemappedInterrupt,
    ) -> Result<InterruptIndex, InterruptRemappingError> {
        let index = (0..self.size.entries())
            .map(|raw| InterruptIndex::new(raw as u16))
            .find(|index| !self.is_used(*index))
            .ok_or(InterruptRemappingError::Exhausted)?;
        let Some(slot) = self.slot(index) else {
            unreachable!("free indices come from inside the table");
        };
        let entry = InterruptEntry::remapped(interrupt);
        // P is in the low word: write the high word (the source check) first, so the unit
        // never sees a present entry with another entry's source.
        memory.write(self.table, slot + 1, entry.hi());
        memory.write(self.table, slot, entry.lo());
        self.set_used(index, true);
        invalidate(unit, memory, clock, InterruptEntryScope::Entry(index))?;
        Ok(index)
    }

    /// Clears the entry at `index` (P first) and invalidates it in the interrupt entry cache;
    /// only then is the index free for reuse. If the invalidation fails, the index stays
    /// reserved and the error is returned.
    pub fn release<R: Registers>(
        &mut self,
        unit: &mut RemappingUnit<R>,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        index: InterruptIndex,
    ) -> Result<(), InterruptRemappingError> {
        let slot = match self.slot(index) {
            Some(slot) if self.is_used(index) => slot,
            _ => return Err(InterruptRemappingError::NotAllocated(index)),
        };
        memory.write(self.table, slot, InterruptEntry::NOT_PRESENT.lo());
        memory.write(self.table, slot + 1, InterruptEntry::NOT_PRESENT.hi());
        invalidate(unit, memory, clock, InterruptEntryScope::Entry(index))?;
        self.set_used(index, false);
        Ok(())
    }

    fn slot(&self, index: InterruptIndex) -> Option<usize> {
        (u32::from(index.get()) < self.size.entries())
            .then_some(usize::from(index.get()) * WORDS_PER_ENTRY)
    }

    fn is_used(&self, index: InterruptIndex) -> bool {
        let raw = usize::from(index.get());
        raw < 256 && self.used[raw / 64] & (1 << (raw % 64)) != 0
    }

    fn set_used(&mut self, index: InterruptIndex, used: bool) {
        let raw = usize::from(index.get());
        let bit = 1 << (raw % 64);
        if used {
            self.used[raw / 64] |= bit;
        } else {
            self.used[raw / 64] &= !bit;
        }
    }
}

/// Invalidates `scope` in `unit`'s interrupt entry cache through the queue and waits.
fn invalidate<R: Registers>(
    unit: &mut RemappingUnit<R>,
    memory: &mut dyn TableMemory,
    clock: &dyn Clock,
    scope: InterruptEntryScope,
) -> Result<(), InterruptRemappingError> {
    let (registers, invalidator) = unit.invalidator();
    let queue = invalidator
        .ok_or(UnitError::NotEnabled)?
        .queue()
        .ok_or(InterruptRemappingError::QueueRequired)?;
    let descriptor = InvalidationDescriptor::interrupt_entry_cache(scope);
    queue
        .submit(registers, memory, clock, &[descriptor])
        .map_err(|error| UnitError::Invalidation(error).into())
}

#[cfg(test)]
mod tests;
