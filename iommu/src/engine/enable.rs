//! Turning a unit on and off, in two steps so that context entries can be written before
//! translation starts: [`prepare`](RemappingUnit::prepare) installs a fresh root table and the
//! invalidation interface with translation still off, the caller writes the context entries
//! every device must find at once (the blocking domain, RMRR identity maps), and only then
//! [`enable_translation`](RemappingUnit::enable_translation) sets GCMD.TE. A device that
//! firmware lets DMA into its RMRR therefore never meets a root table without its entry.

use super::invalidate::{InvalidationMode, Invalidator};
use super::registers::{GCMD, GSTS, Global, RTADDR};
use super::unit::{RemappingUnit, UnitError};
use super::{COMMAND_BUDGET_US, Clock, Registers, poll};
use crate::entries::{ContextCacheScope, IotlbScope};
use crate::paging::TableMemory;

impl<R: Registers> RemappingUnit<R> {
    pub(super) fn status(&self) -> Global {
        Global::from_bits_retain(self.registers.read32(GSTS))
    }

    /// Writes GCMD with the persistent enables kept and `set`/`clear` applied, then waits for
    /// GSTS to show `expect` in the bits of `watch`.
    pub(super) fn command(
        &self,
        clock: &dyn Clock,
        what: &'static str,
        set: Global,
        clear: Global,
        watch: Global,
        expect: Global,
    ) -> Result<(), UnitError> {
        let current = self.status() & Global::PERSISTENT;
        self.registers
            .write32(GCMD, ((current | set) - clear).bits());
        poll(clock, what, COMMAND_BUDGET_US, || {
            (self.status() & watch == expect).then_some(())
        })?;
        Ok(())
    }

    /// Makes the unit ready for context entries with translation still off: translation and
    /// the queue as firmware left them turned off, a fresh root table (every device blocked:
    /// no context entries) latched with GCMD.SRTP, the invalidation interface `mode`, then the
    /// global context-cache and IOTLB invalidations the spec asks for after SRTP (GCMD, 11.4.4).
    ///
    /// Afterwards [`set_context`](Self::set_context) works (its invalidations too: they need
    /// the interface, not translation), and [`enable_translation`](Self::enable_translation)
    /// turns translation on over the entries written meanwhile. GCMD.TE stays clear.
    pub fn prepare(
        &mut self,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        mode: InvalidationMode,
    ) -> Result<(), UnitError> {
        if mode == InvalidationMode::Queued && !self.extended.queued_invalidation() {
            return Err(UnitError::QueuedUnavailable);
        }
        // Firmware may have left translation or the queue on: turn both off first.
        self.disable(clock)?;
        let root = memory.alloc_table().map_err(|_| UnitError::OutOfMemory)?;
        self.registers.write64(RTADDR, root.as_u64());
        self.command(
            clock,
            "root table pointer (GSTS.RTPS)",
            Global::SRTP,
            Global::empty(),
            Global::SRTP,
            Global::SRTP,
        )?;
        self.root = Some(root);
        let invalidator = match mode {
            InvalidationMode::Register => Invalidator::register(self.extended.iro()),
            InvalidationMode::Queued => {
                let queue = memory.alloc_table().map_err(|_| UnitError::OutOfMemory)?;
                let status = memory.alloc_table().map_err(|_| UnitError::OutOfMemory)?;
                let invalidator = Invalidator::queued(&self.registers, queue, status);
                self.command(
                    clock,
                    "queued invalidation enable (GSTS.QIES)",
                    Global::QIE,
                    Global::empty(),
                    Global::QIE,
                    Global::QIE,
                )?;
                invalidator
            }
        };
        self.invalidator = Some(invalidator);
        self.invalidate_context(memory, clock, ContextCacheScope::Global)?;
        self.invalidate_iotlb(memory, clock, IotlbScope::Global)?;
        Ok(())
    }

    /// Turns translation on (GCMD.TE until GSTS.TES) over the context entries written since
    /// [`prepare`](Self::prepare), after flushing the write buffer where CAP.RWBF asks for it.
    /// [`UnitError::NotEnabled`] if the unit was not prepared.
    pub fn enable_translation(&mut self, clock: &dyn Clock) -> Result<(), UnitError> {
        if self.root.is_none() || self.invalidator.is_none() {
            return Err(UnitError::NotEnabled);
        }
        self.flush_write_buffer(clock)?;
        self.command(
            clock,
            "translation enable (GSTS.TES)",
            Global::TE,
            Global::empty(),
            Global::TE,
            Global::TE,
        )
    }

    /// [`prepare`](Self::prepare) then [`enable_translation`](Self::enable_translation), for
    /// callers with no context entry to write before translation starts (every device is
    /// blocked until one is written).
    pub fn enable(
        &mut self,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        mode: InvalidationMode,
    ) -> Result<(), UnitError> {
        self.prepare(memory, clock, mode)?;
        self.enable_translation(clock)
    }

    /// Turns interrupt remapping, translation and the invalidation queue off again (used when
    /// bring-up of another unit fails and remapping as a whole is declared off, so no unit is
    /// left half-on).
    pub fn disable(&mut self, clock: &dyn Clock) -> Result<(), UnitError> {
        // Interrupt remapping first: it needs the queue for its invalidations.
        self.disable_interrupt_remapping(clock)?;
        if self.status().contains(Global::TE) {
            self.command(
                clock,
                "translation disable (GSTS.TES)",
                Global::empty(),
                Global::TE,
                Global::TE,
                Global::empty(),
            )?;
        }
        if self.status().contains(Global::QIE) {
            self.command(
                clock,
                "queue disable (GSTS.QIES)",
                Global::empty(),
                Global::QIE,
                Global::QIE,
                Global::empty(),
            )?;
        }
        self.invalidator = None;
        Ok(())
    }
}
