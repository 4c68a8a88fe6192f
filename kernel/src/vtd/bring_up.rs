//! Bring-up in the spec's order: every unit prepared (root table, invalidation interface,
//! translation still off), every IOMMU group pointed at its unit's blocking domain, the groups
//! of RMRR devices attached to identity-mapped address spaces, fault reporting installed, and
//! only then translation turned on, unit by unit. A device that firmware lets DMA into its
//! RMRR (USB legacy emulation, a GPU's stolen memory) so finds its context entry from the first
//! translated request on instead of faulting in between.
//!
//! Everything is built on a local [`State`], installed for the rest of the kernel only once
//! every unit translates. On any failure every unit is turned off again and the reason returned.

use super::groups::{self, GroupContext, GroupPlacement, point_group};
use super::hw::{KernelTables, MmioRegisters};
use super::{
    IoAddressSpace, ReservedRegion, STATE, State, Summary, Unit, UnitDescription, VtdError,
    context_for, domain_ids::DomainIds, faults, interrupt_remapping, pass_through,
};
use crate::cmdline::{CommandLine, InvalidationChoice};
use crate::time::Monotonic;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use moat_iommu::Bdf;
use moat_iommu::engine::{InvalidationMode, RemappingUnit};
use moat_iommu::paging::PageTable;

/// Brings up remapping. `units` come from the DMAR's DRHDs, `groups` say which unit translates
/// for each IOMMU group and with which requester IDs, `reserved` are the DMAR's RMRRs.
///
/// On any failure every unit already touched is turned off again, so "remapping off" is
/// true of the whole machine, and the reason is returned.
///
/// The composition root's alone, once: a second call is refused.
pub fn init(
    _root: &crate::privilege::Privileged,
    options: &CommandLine,
    units: &[UnitDescription],
    groups: Vec<GroupPlacement>,
    reserved: Vec<ReservedRegion>,
) -> Result<Summary, String> {
    if STATE.lock().is_some() || super::OFF_REASON.get().is_some() {
        return Err(
            "remapping was brought up (or turned off) already; a second init is refused".into(),
        );
    }
    let mut state = State {
        units: Vec::new(),
        groups: BTreeMap::new(),
        device_groups: BTreeMap::new(),
    };
    match bring_up(options, units, groups, reserved, &mut state) {
        Ok(summary) => {
            *STATE.lock() = Some(state);
            Ok(summary)
        }
        Err(reason) => {
            abandon(state);
            Err(reason)
        }
    }
}

/// The steps of bring-up, in order, on `state`.
fn bring_up(
    options: &CommandLine,
    units: &[UnitDescription],
    groups: Vec<GroupPlacement>,
    reserved: Vec<ReservedRegion>,
    state: &mut State,
) -> Result<Summary, String> {
    for (index, description) in units.iter().enumerate() {
        prepare_unit(options, index, description, state)?;
    }
    let blocked = block_groups(groups, state)?;
    let pass_through = pass_through::select(state, &options.passthrough);
    let mut identity_mapped = Vec::new();
    // One identity space per group, whatever the number of RMRRs naming its devices.
    let mut spaces = alloc::collections::BTreeMap::new();
    for region in reserved {
        let devices = identity_map_reserved(state, &mut spaces, &region).map_err(|error| {
            format!(
                "RMRR {:#x}..{:#x}: {error:?}",
                region.range.start, region.range.end
            )
        })?;
        if !devices.is_empty() {
            identity_mapped.push(ReservedRegion {
                range: region.range,
                devices,
            });
        }
    }
    install_fault_reporting(state)?;
    // Every context entry is in place: only now may DMA be translated.
    for (index, unit) in state.units.iter_mut().enumerate() {
        unit.engine.enable_translation(&Monotonic).map_err(|e| {
            format!(
                "unit {index} at {:#x}: enabling translation: {e}",
                unit.description.base
            )
        })?;
    }
    interrupt_remapping::enable(state);
    Ok(Summary {
        units: state
            .units
            .iter()
            .map(|u| (u.description, u.engine.summary()))
            .collect(),
        blocked,
        identity_mapped,
        pass_through,
    })
}

/// Maps unit `index`'s registers, probes it, gives it a blocking domain and prepares it
/// (root table and invalidation interface, translation off). The unit joins `state` before
/// `prepare` touches it, so a failure there is turned off with the rest.
fn prepare_unit(
    options: &CommandLine,
    index: usize,
    description: &UnitDescription,
    state: &mut State,
) -> Result<(), String> {
    crate::arch::paging::map_mmio(description.base, description.length.max(4096)).map_err(|e| {
        format!(
            "unit {index} at {:#x}: cannot map registers: {e:?}",
            description.base
        )
    })?;
    // SAFETY: just mapped uncached; the DMAR says a remapping unit lives there and only
    // this module touches it.
    let registers = unsafe { MmioRegisters::new(description.base) };
    let engine = RemappingUnit::probe(registers)
        .map_err(|e| format!("unit {index} at {:#x}: {e}", description.base))?;
    let mode = match options.invalidation {
        Some(InvalidationChoice::Register) => InvalidationMode::Register,
        Some(InvalidationChoice::Queued) => InvalidationMode::Queued,
        None if engine.extended_capability().queued_invalidation() => InvalidationMode::Queued,
        None => InvalidationMode::Register,
    };
    let tables = KernelTables::new(engine.extended_capability().coherent());
    let blocking = PageTable::new(tables, engine.geometry(), engine.superpages())
        .map_err(|_| format!("unit {index}: no frame for the blocking domain"))?;
    let mut domain_ids = DomainIds::new(engine.domain_limit());
    let blocking_id = domain_ids.allocate().ok_or(format!(
        "unit {index}: no domain ID for the blocking domain"
    ))?;
    state.units.push(Unit {
        description: *description,
        engine,
        tables,
        blocking,
        blocking_id,
        domain_ids,
    });
    let Some(unit) = state.units.last_mut() else {
        unreachable!("the unit was just pushed");
    };
    unit.engine
        .prepare(&mut unit.tables, &Monotonic, mode)
        .map_err(|e| {
            format!(
                "unit {index} at {:#x}: preparing translation: {e}",
                description.base
            )
        })
}

/// Records every placed group and points its requester IDs at its unit's blocking domain.
/// Returns the groups placed.
fn block_groups(
    groups: Vec<GroupPlacement>,
    state: &mut State,
) -> Result<Vec<GroupPlacement>, String> {
    let mut blocked = Vec::new();
    let mut owners: BTreeMap<u16, u32> = BTreeMap::new();
    for placement in groups {
        if placement.unit >= state.units.len() {
            continue;
        }
        for &rid in &placement.requester_ids {
            if let Some(other) = owners.insert(rid, placement.id) {
                return Err(format!(
                    "groups {other} and {} both use requester ID {rid:#06x}: {:?}",
                    placement.id,
                    VtdError::SharedRequesterId(rid)
                ));
            }
        }
        for &bdf in &placement.members {
            state.device_groups.insert(bdf, placement.id);
        }
        state.groups.insert(
            placement.id,
            GroupContext {
                unit: placement.unit,
                members: placement.members.clone(),
                requester_ids: placement.requester_ids.clone(),
                attached: None,
                reserved_memory: false,
                inconsistent: false,
                translation: super::Translation::Strict,
            },
        );
        let unit = &state.units[placement.unit];
        let blocking = context_for(&unit.blocking, unit.blocking_id);
        point_group(state, placement.id, blocking)
            .map_err(|e| format!("blocking group {}: {e:?}", placement.id))?;
        blocked.push(placement);
    }
    Ok(blocked)
}

/// Gives the groups of an RMRR's devices an address space of their own, on their unit, with
/// the region identity-mapped read/write: firmware may keep using it; nothing else becomes
/// reachable for them. Returns the devices actually covered (a device remapping does not
/// place is skipped and not reported as mapped).
fn identity_map_reserved(
    state: &mut State,
    spaces: &mut alloc::collections::BTreeMap<u32, IoAddressSpace>,
    region: &ReservedRegion,
) -> Result<Vec<Bdf>, VtdError> {
    let mut mapped = Vec::new();
    let mut done_groups = Vec::new();
    for &bdf in &region.devices {
        let Some(&group) = state.device_groups.get(&bdf) else {
            continue;
        };
        if !done_groups.contains(&group) {
            if let Some(space) = spaces.get(&group) {
                // A second RMRR for a group that has its identity space: map it there too.
                space.map_identity(state, region.range.clone())?;
            } else {
                let unit = state.groups[&group].unit;
                let space = IoAddressSpace::new_in(state, unit, 64)?;
                space.map_identity(state, region.range.clone())?;
                groups::attach_in(state, group, &space)?;
                if let Some(context) = state.groups.get_mut(&group) {
                    context.reserved_memory = true;
                }
                spaces.insert(group, space);
            }
            done_groups.push(group);
            crate::warn!(
                "dmar",
                "group {group} keeps an RMRR identity map {:#x}..{:#x}: it cannot be bound by an owner",
                region.range.start,
                region.range.end
            );
        }
        mapped.push(bdf);
    }
    Ok(mapped)
}

/// Hands each unit's fault reporter to the fault handler and turns fault interrupts on, so
/// faults from the moment translation starts are reported.
fn install_fault_reporting(state: &mut State) -> Result<(), String> {
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
    Ok(())
}

/// Turns every unit of `state` off (best effort; a unit that does not answer is logged). The
/// RMRR spaces are let go of only if every unit is off: one still translating may walk their
/// tables, so then their frames are never reused.
fn abandon(mut state: State) {
    let mut all_off = true;
    for unit in &mut state.units {
        if let Err(error) = unit.engine.disable(&Monotonic) {
            all_off = false;
            crate::error!(
                "dmar",
                "unit at {:#x} could not be turned off: {error}",
                unit.description.base
            );
        }
    }
    for context in state.groups.values_mut() {
        if let Some((space, _, _)) = context.attached.take() {
            space.lock().attachments.clear();
            if !all_off {
                core::mem::forget(space);
            }
        }
    }
}
