//! One DMA-remapping unit (a DRHD): probing its capabilities, its invalidation interface and
//! IOTLB invalidation for domains. Turning it on and off is in `enable.rs`, context entries in
//! `context.rs`.

use super::fault::FaultReporter;
use super::invalidate::{InvalidationError, InvalidationMode, Invalidator};
use super::queue::InvalidationErrorCounts;
use super::registers::{self, Capability, ECAP, ExtendedCapability, GSTS, Global};
use super::{Clock, PollTimeout, Registers};
use crate::entries::{
    ContextCacheScope, DomainLimit, Drain, IotlbScope, PhysAddr, TranslationType,
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
    /// The unit was not prepared: no root table or invalidation interface yet.
    NotEnabled,
    /// A context entry names a domain ID this unit does not accept: 0 (reserved) or not below
    /// CAP.ND's limit.
    InvalidDomainId {
        /// The DID field of the entry.
        domain: u16,
    },
    /// A context entry asks for a translation type the unit does not offer: pass-through
    /// (TT = 2) without ECAP.PT, device-TLB (TT = 1) without ECAP.DT, or the reserved TT = 3
    /// (VT-d spec 9.3; QEMU faults such an entry with reason 3 at the first DMA).
    UnsupportedTranslationType {
        /// The TT field of the entry (`None`: the reserved value 3).
        translation_type: Option<TranslationType>,
    },
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
            Self::Invalidation(error) => write!(f, "{error}"),
            Self::NotEnabled => write!(f, "the unit is not prepared"),
            Self::InvalidDomainId { domain } => {
                write!(f, "domain ID {domain} is reserved or beyond CAP.ND")
            }
            Self::UnsupportedTranslationType { translation_type } => match translation_type {
                Some(kind) => write!(
                    f,
                    "context translation type {kind:?} is not offered by this unit \
                     (pass-through needs ECAP.PT, device-TLB needs ECAP.DT)"
                ),
                None => write!(f, "context translation type 3 is reserved"),
            },
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
    pub(super) registers: R,
    pub(super) capability: Capability,
    pub(super) extended: ExtendedCapability,
    pub(super) version: u32,
    pub(super) geometry: Geometry,
    pub(super) root: Option<PhysAddr>,
    pub(super) invalidator: Option<Invalidator>,
    pub(super) fault_reporter_taken: bool,
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
            fault_reporter_taken: false,
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

    /// The fault reporter for this unit's recording registers: handed out once, so there is one
    /// drainer per unit (`None` on later calls). See [`fault`](super::fault) for why.
    pub fn take_fault_reporter(&mut self) -> Option<FaultReporter<R>>
    where
        R: Clone,
    {
        if self.fault_reporter_taken {
            return None;
        }
        self.fault_reporter_taken = true;
        Some(FaultReporter::new(
            self.registers.clone(),
            self.capability.fro(),
            self.capability.fault_records(),
        ))
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

    /// The root table's frame, once translation was set up.
    pub fn root_table(&self) -> Option<PhysAddr> {
        self.root
    }

    /// Invalidation-queue errors (FSTS.IQE, ITE, ICE) the unit reported and the engine cleared
    /// since translation was enabled; all zero with the register interface or before enable.
    pub fn invalidation_errors(&self) -> InvalidationErrorCounts {
        self.invalidator
            .as_ref()
            .map_or(InvalidationErrorCounts::default(), Invalidator::errors)
    }

    /// Turns on fault interrupts: the MSI address and data the unit sends, then FECTL.IM = 0.
    pub fn enable_fault_interrupt(&self, address: u32, data: u16) {
        self.registers.write32(registers::FEDATA, u32::from(data));
        self.registers.write32(registers::FEADDR, address);
        self.registers.write32(registers::FEUADDR, 0);
        self.registers.write32(registers::FECTL, 0);
    }
}
