//! One DMA-remapping unit (a DRHD): probing its capabilities, enabling translation with a root
//! table and the chosen invalidation interface, writing context entries with the invalidations
//! the spec requires, and IOTLB invalidation for domains.

use super::fault::FaultReporter;
use super::invalidate::{InvalidationError, InvalidationMode, Invalidator};
use super::registers::{self, Capability, ECAP, ExtendedCapability, GCMD, GSTS, Global, RTADDR};
use super::{COMMAND_BUDGET_US, Clock, PollTimeout, Registers, poll};
use crate::entries::{
    ContextCacheScope, ContextEntry, DomainId, DomainLimit, Drain, FunctionMask, IotlbScope,
    PhysAddr, RootEntry, SourceId,
};
use crate::paging::{Geometry, Levels, SuperpageSupport, TableMemory};

/// Why a unit could not be brought up or changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnitError {
    /// CAP/ECAP read as all ones or zero: nothing answers at the register base.
    NoRegisters,
    /// No supported page-table format (CAP.SAGAW / MGAW).
    UnsupportedWidth {
        /// CAP.SAGAW.
        sagaw: u8,
        /// CAP.MGAW in bits.
        mgaw: u8,
    },
    /// CAP.FRO/NFR or ECAP.IRO put registers outside the 4 KiB window.
    RegistersOutOfWindow,
    /// CAP.ND is reserved.
    BadDomainCount,
    /// Queued invalidation was asked for but ECAP.QI is 0.
    QueuedUnavailable,
    /// No frame for a table.
    OutOfMemory,
    /// A status bit did not follow its command.
    Timeout(PollTimeout),
    /// An invalidation failed.
    Invalidation(InvalidationError),
    /// The unit is not enabled.
    NotEnabled,
}

impl From<PollTimeout> for UnitError {
    fn from(timeout: PollTimeout) -> Self {
        Self::Timeout(timeout)
    }
}

impl From<InvalidationError> for UnitError {
    fn from(error: InvalidationError) -> Self {
        Self::Invalidation(error)
    }
}

impl core::fmt::Display for UnitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRegisters => write!(f, "no remapping unit answers at the register base"),
            Self::UnsupportedWidth { sagaw, mgaw } => {
                write!(
                    f,
                    "no supported table format (SAGAW {sagaw:#x}, MGAW {mgaw} bits)"
                )
            }
            Self::RegistersOutOfWindow => {
                write!(f, "CAP.FRO/NFR or ECAP.IRO point outside the register page")
            }
            Self::BadDomainCount => write!(f, "CAP.ND is reserved"),
            Self::QueuedUnavailable => write!(f, "queued invalidation requested but ECAP.QI is 0"),
            Self::OutOfMemory => write!(f, "out of frames for remapping tables"),
            Self::Timeout(timeout) => write!(f, "{timeout}"),
            Self::Invalidation(InvalidationError::Timeout(timeout)) => write!(f, "{timeout}"),
            Self::Invalidation(InvalidationError::QueueError { head }) => {
                write!(f, "invalidation queue error at descriptor {head}")
            }
            Self::Invalidation(InvalidationError::NotPerformed) => {
                write!(f, "the IOTLB invalidation was not performed")
            }
            Self::NotEnabled => write!(f, "the unit is not enabled"),
        }
    }
}

/// What the boot report shows about a unit.
#[derive(Clone, Copy, Debug)]
pub struct UnitSummary {
    /// VER_REG major.minor.
    pub version: (u8, u8),
    /// Raw CAP.
    pub capability: Capability,
    /// Raw ECAP.
    pub extended: ExtendedCapability,
    /// Page-table geometry in use.
    pub geometry: Geometry,
    /// Invalidation interface in use (None before enable).
    pub invalidation: Option<InvalidationMode>,
    /// GSTS.TES.
    pub translating: bool,
}

/// A remapping unit.
#[derive(Debug)]
pub struct RemappingUnit<R: Registers> {
    registers: R,
    capability: Capability,
    extended: ExtendedCapability,
    version: u32,
    geometry: Geometry,
    root: Option<PhysAddr>,
    invalidator: Option<Invalidator>,
}

impl<R: Registers> RemappingUnit<R> {
    /// Reads and validates the unit's capabilities. Touches no state.
    pub fn probe(registers: R) -> Result<Self, UnitError> {
        let capability = Capability(registers.read64(registers::CAP));
        let extended = ExtendedCapability(registers.read64(ECAP));
        let version = registers.read32(registers::VER);
        if capability.0 == u64::MAX || extended.0 == u64::MAX || capability.0 == 0 {
            return Err(UnitError::NoRegisters);
        }
        let fault_end = (u32::from(capability.fro()) + u32::from(capability.fault_records())) * 16;
        let iotlb_end = (u32::from(extended.iro()) + 1) * 16;
        if u64::from(fault_end) > registers::REGISTER_WINDOW
            || u64::from(iotlb_end) > registers::REGISTER_WINDOW
        {
            return Err(UnitError::RegistersOutOfWindow);
        }
        DomainLimit::from_nd(capability.nd()).ok_or(UnitError::BadDomainCount)?;
        let mgaw = capability.mgaw();
        let geometry = Geometry::from_cap(capability.sagaw(), mgaw - 1, mgaw).ok_or(
            UnitError::UnsupportedWidth {
                sagaw: capability.sagaw(),
                mgaw,
            },
        )?;
        Ok(Self {
            registers,
            capability,
            extended,
            version,
            geometry,
            root: None,
            invalidator: None,
        })
    }

    /// CAP.
    pub fn capability(&self) -> Capability {
        self.capability
    }

    /// ECAP.
    pub fn extended_capability(&self) -> ExtendedCapability {
        self.extended
    }

    /// Table geometry every domain on this unit must use.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Levels of that geometry.
    pub fn levels(&self) -> Levels {
        self.geometry.levels()
    }

    /// Superpage sizes usable in this unit's tables (CAP.SLLPS).
    pub fn superpages(&self) -> SuperpageSupport {
        SuperpageSupport::from_bits_truncate(self.capability.sllps())
    }

    /// Domain IDs this unit accepts (CAP.ND).
    pub fn domain_limit(&self) -> DomainLimit {
        DomainLimit::from_nd(self.capability.nd())
            .unwrap_or(DomainLimit::from_nd(0).expect("ND 0 is valid"))
    }

    /// The register access, for the fault reporter.
    pub fn registers(&self) -> &R {
        &self.registers
    }

    /// A fault reporter for this unit's recording registers.
    pub fn fault_reporter(&self) -> FaultReporter<R>
    where
        R: Clone,
    {
        FaultReporter::new(
            self.registers.clone(),
            self.capability.fro(),
            self.capability.fault_records(),
        )
    }

    /// Summary for the boot report.
    pub fn summary(&self) -> UnitSummary {
        UnitSummary {
            version: ((self.version >> 4) as u8 & 0xf, self.version as u8 & 0xf),
            capability: self.capability,
            extended: self.extended,
            geometry: self.geometry,
            invalidation: self.invalidator.as_ref().map(Invalidator::mode),
            translating: Global::from_bits_retain(self.registers.read32(GSTS)).contains(Global::TE),
        }
    }

    fn status(&self) -> Global {
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

    /// Enables translation: a fresh root table (every device blocked: no context entries),
    /// the invalidation interface `mode`, global invalidations, then GCMD.TE.
    pub fn enable(
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

    /// The registers and, once enabled, the invalidation interface, for the interrupt
    /// remapping half of the engine (interrupt_remapping.rs).
    pub(super) fn invalidator(&mut self) -> (&R, Option<&mut Invalidator>) {
        (&self.registers, self.invalidator.as_mut())
    }

    /// Flushes the write buffer when CAP.RWBF asks for it (10.4.4, WBF).
    pub fn flush_write_buffer(&self, clock: &dyn Clock) -> Result<(), UnitError> {
        if self.capability.rwbf() {
            self.command(
                clock,
                "write-buffer flush (GSTS.WBFS)",
                Global::WBF,
                Global::empty(),
                Global::WBF,
                Global::empty(),
            )?;
        }
        Ok(())
    }

    fn drain(&self) -> Drain {
        let mut drain = Drain::empty();
        if self.capability.drd() {
            drain |= Drain::READS;
        }
        if self.capability.dwd() {
            drain |= Drain::WRITES;
        }
        drain
    }

    /// Invalidates the context cache.
    pub fn invalidate_context(
        &mut self,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        scope: ContextCacheScope,
    ) -> Result<(), UnitError> {
        let invalidator = self.invalidator.as_mut().ok_or(UnitError::NotEnabled)?;
        invalidator.context(&self.registers, memory, clock, scope)?;
        Ok(())
    }

    /// Invalidates the IOTLB (with read/write draining where the unit supports it).
    pub fn invalidate_iotlb(
        &mut self,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        scope: IotlbScope,
    ) -> Result<(), UnitError> {
        let drain = self.drain();
        let invalidator = self.invalidator.as_mut().ok_or(UnitError::NotEnabled)?;
        invalidator.iotlb(&self.registers, memory, clock, scope, drain)?;
        Ok(())
    }

    /// The context entry for `source`, if its bus has a context table.
    pub fn context_entry(
        &self,
        memory: &dyn TableMemory,
        source: SourceId,
    ) -> Option<ContextEntry> {
        let root = self.root?;
        let bus = usize::from(source.get() >> 8);
        let root_entry =
            RootEntry::from_raw(memory.read(root, bus * 2), memory.read(root, bus * 2 + 1));
        let table = root_entry.context_table()?;
        let index = usize::from(source.get() & 0xff) * 2;
        Some(ContextEntry::from_raw(
            memory.read(table, index),
            memory.read(table, index + 1),
        ))
    }

    /// Drops what the unit may cache for `source` in `domain`: its context entry (device-
    /// selective), then the domain's IOTLB entries, in the spec's order.
    fn invalidate_device(
        &mut self,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        source: SourceId,
        domain: DomainId,
    ) -> Result<(), UnitError> {
        let scope = ContextCacheScope::Device {
            domain,
            source,
            function_mask: FunctionMask::Exact,
        };
        self.invalidate_context(memory, clock, scope)?;
        self.invalidate_iotlb(memory, clock, IotlbScope::Domain(domain))
    }

    /// Points `source` at `entry` (or blocks it with `ContextEntry::NOT_PRESENT`), with the
    /// spec's order: a present entry is first cleared and invalidated (context cache for the
    /// device, then the IOTLB of its old domain), the new one is written with P last, and with
    /// CAP.CM the not-present-to-present change is invalidated too.
    pub fn set_context(
        &mut self,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        source: SourceId,
        entry: ContextEntry,
    ) -> Result<(), UnitError> {
        let root = self.root.ok_or(UnitError::NotEnabled)?;
        let bus = usize::from(source.get() >> 8);
        let root_entry =
            RootEntry::from_raw(memory.read(root, bus * 2), memory.read(root, bus * 2 + 1));
        let table = match root_entry.context_table() {
            Some(table) => table,
            None => {
                if !entry.is_present() {
                    return Ok(());
                }
                let table = memory.alloc_table().map_err(|_| UnitError::OutOfMemory)?;
                let Ok(new_root) = RootEntry::present(table) else {
                    unreachable!("frames from alloc_table are 4 KiB aligned");
                };
                memory.write(root, bus * 2 + 1, new_root.hi());
                memory.write(root, bus * 2, new_root.lo());
                table
            }
        };
        let index = usize::from(source.get() & 0xff) * 2;
        let old = ContextEntry::from_raw(memory.read(table, index), memory.read(table, index + 1));
        if old.is_present() {
            memory.write(table, index, 0);
            let old_domain = DomainId::new(old.domain_id(), self.domain_limit()).ok();
            match old_domain {
                Some(domain) => self.invalidate_device(memory, clock, source, domain)?,
                None => {
                    self.invalidate_context(memory, clock, ContextCacheScope::Global)?;
                    self.invalidate_iotlb(memory, clock, IotlbScope::Global)?;
                }
            }
        }
        if !entry.is_present() {
            memory.write(table, index + 1, 0);
            return Ok(());
        }
        memory.write(table, index + 1, entry.hi());
        memory.write(table, index, entry.lo());
        if self.capability.caching_mode() {
            // CM = 1: the unit may have cached the not-present entry.
            let domain = DomainId::new(entry.domain_id(), self.domain_limit())
                .map_err(|_| UnitError::BadDomainCount)?;
            self.invalidate_device(memory, clock, source, domain)?;
        } else {
            self.flush_write_buffer(clock)?;
        }
        Ok(())
    }

    /// Turns on fault interrupts: the MSI address and data the unit sends, then FECTL.IM = 0.
    pub fn enable_fault_interrupt(&self, address: u32, data: u16) {
        self.registers.write32(registers::FEDATA, u32::from(data));
        self.registers.write32(registers::FEADDR, address);
        self.registers.write32(registers::FEUADDR, 0);
        self.registers.write32(registers::FECTL, 0);
    }
}
