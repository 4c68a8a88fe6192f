//! DMA remapping on the running machine: brings up every DRHD unit from the DMAR, points every
//! device (and every requester ID it may use: its DMA aliases) at a blocking domain, reports
//! faults, and lets the kernel create domains, map and unmap memory in them and attach devices.
//! If remapping cannot be enabled (no or bad DMAR, a unit that does not answer, `iommu=off`),
//! the reason is recorded and DMA isolation is unavailable.

mod domain;
pub mod faults;
pub mod hw;
pub mod topology;

use crate::cmdline::{CommandLine, InvalidationChoice};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;
use hw::{KernelClock, KernelTables, MmioRegisters};
use moat_iommu::Bdf;
use moat_iommu::engine::{InvalidationMode, RemappingUnit, UnitSummary};
use moat_iommu::entries::{
    Access, ContextEntry, ContextTranslation, DomainId, DomainIdAllocator, FaultProcessing, Iova,
    PageSize, PhysAddr, SourceId,
};
use moat_iommu::paging::{MapError, PageTable, UnmapError};
use spin::Mutex;

pub use domain::Domain;

/// A device the remapping code must place: its BDF, the unit that translates for it, and every
/// requester ID its DMA may carry (its own, then aliases from bridges above it).
#[derive(Clone, Debug)]
pub struct Placement {
    /// The device.
    pub bdf: Bdf,
    /// Index of its unit in the DMAR's DRHD list.
    pub unit: usize,
    /// Requester IDs, own first.
    pub sources: Vec<u16>,
}

/// A remapping unit as the DMAR describes it.
#[derive(Clone, Copy, Debug)]
pub struct UnitDescription {
    /// Register base.
    pub base: u64,
    /// Register window length.
    pub length: u64,
    /// PCI segment.
    pub segment: u16,
}

/// An RMRR: memory `range` that `devices` must keep reaching (identity-mapped).
#[derive(Clone, Debug)]
pub struct ReservedRegion {
    /// Physical range.
    pub range: Range<u64>,
    /// The devices in its scope.
    pub devices: Vec<Bdf>,
}

/// Why a remapping operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VtdError {
    /// Remapping is off; the string says why.
    Off(String),
    /// The device is not behind any remapping unit.
    NotTranslated(Bdf),
    /// The domain belongs to another unit than the device.
    WrongUnit,
    /// Domain IDs exhausted.
    NoDomainIds,
    /// No frames for tables.
    OutOfMemory,
    /// The hardware failed an operation.
    Hardware(String),
    /// A mapping change was refused.
    Map(MapError),
    /// An unmap was refused.
    Unmap(UnmapError),
}

pub(crate) struct Unit {
    description: UnitDescription,
    engine: RemappingUnit<MmioRegisters>,
    tables: KernelTables,
    blocking: PageTable<KernelTables>,
    blocking_id: DomainId,
}

pub(crate) struct State {
    units: Vec<Unit>,
    /// Domain IDs: from 1, each below its unit's CAP.ND limit, never wrapping.
    next_domain: DomainIdAllocator,
    devices: BTreeMap<Bdf, Placement>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
static OFF_REASON: spin::Once<String> = spin::Once::new();

/// What `init` did, for the boot report.
#[derive(Debug)]
pub struct Summary {
    /// Per unit: base, segment and engine summary.
    pub units: Vec<(UnitDescription, UnitSummary)>,
    /// Devices placed in the blocking domain, with their requester IDs.
    pub blocked: Vec<Placement>,
    /// RMRR identity maps made.
    pub identity_mapped: Vec<ReservedRegion>,
}

pub(crate) fn with_state<T>(
    f: impl FnOnce(&mut State) -> Result<T, VtdError>,
) -> Result<T, VtdError> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut guard = STATE.lock();
        match guard.as_mut() {
            Some(state) => f(state),
            None => Err(VtdError::Off(
                off_reason().unwrap_or("remapping not initialised").into(),
            )),
        }
    })
}

/// Why remapping is off, if it is.
pub fn off_reason() -> Option<&'static str> {
    OFF_REASON.get().map(String::as_str)
}

/// Whether DMA isolation is available (remapping enabled on every unit).
pub fn isolation_available() -> bool {
    STATE.lock().is_some()
}

/// Records that remapping is off and says so in one line.
pub fn turn_off(reason: String) {
    crate::error!(
        "dmar",
        "DMA remapping off: {reason}; DMA isolation unavailable"
    );
    OFF_REASON.call_once(|| reason);
}

pub(crate) fn allocate_domain(
    ids: &mut DomainIdAllocator,
    limit: moat_iommu::entries::DomainLimit,
) -> Result<DomainId, VtdError> {
    ids.allocate(limit).map_err(|_| VtdError::NoDomainIds)
}

pub(crate) fn context_for(table: &PageTable<KernelTables>, domain: DomainId) -> ContextEntry {
    let Ok(entry) = ContextEntry::new(
        ContextTranslation::MultiLevel {
            table: table.root(),
        },
        table.levels().context_address_width(),
        domain,
        FaultProcessing::Report,
    ) else {
        unreachable!("table roots are 4 KiB aligned frames");
    };
    entry
}

/// Brings up remapping. `units` come from the DMAR's DRHDs, `placements` say which unit
/// translates for each device and with which requester IDs.
///
/// On any failure every unit already enabled is turned off again, so "remapping off" is
/// true of the whole machine, and the reason is returned.
pub fn init(
    options: &CommandLine,
    units: &[UnitDescription],
    placements: Vec<Placement>,
    reserved: Vec<ReservedRegion>,
) -> Result<Summary, String> {
    let mut state = State {
        units: Vec::new(),
        next_domain: DomainIdAllocator::new(),
        devices: BTreeMap::new(),
    };
    let mut summary = match bring_up(options, units, placements, &mut state) {
        Ok(summary) => summary,
        Err(reason) => {
            abandon(state);
            return Err(reason);
        }
    };
    *STATE.lock() = Some(state);
    for region in reserved {
        if let Err(error) = identity_map_reserved(&region) {
            if let Some(state) = STATE.lock().take() {
                abandon(state);
            }
            return Err(format!(
                "RMRR {:#x}..{:#x}: {error:?}",
                region.range.start, region.range.end
            ));
        }
        summary.identity_mapped.push(region);
    }
    Ok(summary)
}

/// Turns every unit of `state` off (best effort; a unit that does not answer is logged).
fn abandon(mut state: State) {
    for unit in &mut state.units {
        if let Err(error) = unit.engine.disable(&KernelClock) {
            crate::error!(
                "dmar",
                "unit at {:#x} could not be turned off: {error}",
                unit.description.base
            );
        }
    }
}

/// Enables every unit, blocks every placed device and installs fault reporting.
fn bring_up(
    options: &CommandLine,
    units: &[UnitDescription],
    placements: Vec<Placement>,
    state: &mut State,
) -> Result<Summary, String> {
    let clock = KernelClock;
    for (index, description) in units.iter().enumerate() {
        crate::arch::paging::map_mmio(description.base, description.length.max(4096)).map_err(
            |e| {
                format!(
                    "unit {index} at {:#x}: cannot map registers: {e:?}",
                    description.base
                )
            },
        )?;
        // SAFETY: just mapped uncached; the DMAR says a remapping unit lives there and only
        // this module touches it.
        let registers = unsafe { MmioRegisters::new(description.base) };
        let mut engine = RemappingUnit::probe(registers)
            .map_err(|e| format!("unit {index} at {:#x}: {e}", description.base))?;
        let mode = match options.invalidation {
            Some(InvalidationChoice::Register) => InvalidationMode::Register,
            Some(InvalidationChoice::Queued) => InvalidationMode::Queued,
            None if engine.extended_capability().queued_invalidation() => InvalidationMode::Queued,
            None => InvalidationMode::Register,
        };
        let mut tables = KernelTables {
            coherent: engine.extended_capability().coherent(),
        };
        let blocking = PageTable::new(tables, engine.geometry(), engine.superpages())
            .map_err(|_| format!("unit {index}: no frame for the blocking domain"))?;
        let blocking_id = allocate_domain(&mut state.next_domain, engine.domain_limit())
            .map_err(|e| format!("{e:?}"))?;
        engine.enable(&mut tables, &clock, mode).map_err(|e| {
            format!(
                "unit {index} at {:#x}: enabling translation: {e}",
                description.base
            )
        })?;
        state.units.push(Unit {
            description: *description,
            engine,
            tables,
            blocking,
            blocking_id,
        });
    }
    let mut summary = Summary {
        units: Vec::new(),
        blocked: Vec::new(),
        identity_mapped: Vec::new(),
    };
    for placement in placements {
        if placement.unit >= state.units.len() {
            continue;
        }
        state.devices.insert(placement.bdf, placement.clone());
        point_device(state, placement.bdf, Target::Blocking)
            .map_err(|e| format!("blocking {}: {e:?}", placement.bdf))?;
        summary.blocked.push(placement);
    }
    let reporters = state
        .units
        .iter_mut()
        .filter_map(|unit| {
            let reporter = unit.engine.take_fault_reporter()?;
            Some((unit.description.segment, reporter))
        })
        .collect();
    faults::install(reporters).map_err(|e| format!("fault vector: {e:?}"))?;
    let apic_id = u32::from(crate::arch::apic::id());
    for unit in &state.units {
        unit.engine.enable_fault_interrupt(
            0xfee0_0000 | (apic_id << 12),
            u16::from(faults::FAULT_VECTOR),
        );
    }
    summary.units = state
        .units
        .iter()
        .map(|u| (u.description, u.engine.summary()))
        .collect();
    Ok(summary)
}

/// Gives the devices of an RMRR a domain of their own with the region identity-mapped
/// read/write: firmware may keep using it; nothing else becomes reachable for them.
fn identity_map_reserved(region: &ReservedRegion) -> Result<(), VtdError> {
    for &bdf in &region.devices {
        let Ok(unit) = unit_of(bdf) else { continue };
        let mut domain = Domain::new(unit)?;
        let mut address = region.range.start & !0xfff;
        while address < region.range.end {
            let iova =
                Iova::new(address).map_err(|_| VtdError::Map(MapError::BeyondAddressWidth))?;
            let phys =
                PhysAddr::new(address).map_err(|_| VtdError::Map(MapError::BeyondAddressWidth))?;
            let flush = domain.map(iova, phys, PageSize::Size4K, Access::ReadWrite)?;
            domain.complete_map(flush)?;
            address += 4096;
        }
        domain.attach(bdf)?;
        // The domain lives as long as the kernel: firmware owns that memory for good.
        core::mem::forget(domain);
    }
    Ok(())
}

/// The unit that translates for `bdf`.
pub fn unit_of(bdf: Bdf) -> Result<usize, VtdError> {
    with_state(|state| {
        state
            .devices
            .get(&bdf)
            .map(|p| p.unit)
            .ok_or(VtdError::NotTranslated(bdf))
    })
}

/// The requester IDs `bdf`'s DMA may carry (own first, then aliases).
pub fn sources_of(bdf: Bdf) -> Result<Vec<u16>, VtdError> {
    with_state(|state| {
        state
            .devices
            .get(&bdf)
            .map(|p| p.sources.clone())
            .ok_or(VtdError::NotTranslated(bdf))
    })
}

/// Points every requester ID of `bdf` back at the blocking domain.
pub fn block(bdf: Bdf) -> Result<(), VtdError> {
    set_device_context(bdf, Target::Blocking)
}

/// Where a device's context entries should point.
pub(crate) enum Target {
    /// A domain on `unit`, through `entry`.
    Domain { unit: usize, entry: ContextEntry },
    /// The device's unit's blocking domain.
    Blocking,
}

/// Writes the context entry for `target` for every requester ID of `bdf`.
pub(crate) fn set_device_context(bdf: Bdf, target: Target) -> Result<(), VtdError> {
    with_state(|state| point_device(state, bdf, target))
}

/// Points every requester ID of the placed device `bdf` at `target` on its unit.
fn point_device(state: &mut State, bdf: Bdf, target: Target) -> Result<(), VtdError> {
    let placement = state
        .devices
        .get(&bdf)
        .ok_or(VtdError::NotTranslated(bdf))?;
    let unit = &mut state.units[placement.unit];
    let entry = match target {
        Target::Domain {
            unit: wanted,
            entry,
        } if wanted == placement.unit => entry,
        Target::Domain { .. } => return Err(VtdError::WrongUnit),
        Target::Blocking => context_for(&unit.blocking, unit.blocking_id),
    };
    for &source in &placement.sources {
        unit.engine
            .set_context(
                &mut unit.tables,
                &KernelClock,
                SourceId::from_raw(source),
                entry,
            )
            .map_err(|e| VtdError::Hardware(format!("{e}")))?;
    }
    Ok(())
}

pub(crate) static INVALIDATIONS: core::sync::atomic::AtomicU64 =
    core::sync::atomic::AtomicU64::new(0);

/// IOTLB invalidations issued for domain changes since boot (for the benchmark).
pub fn invalidations() -> u64 {
    INVALIDATIONS.load(core::sync::atomic::Ordering::Relaxed)
}
