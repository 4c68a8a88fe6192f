//! Context entries per IOMMU group: a group's de-duplicated requester IDs (its members' own IDs
//! and the aliases bridges substitute) always point at one target together, the blocking domain
//! or the domain of the one address space the group is attached to. Devices behind one
//! PCIe-to-PCI bridge share an alias, so writing entries per device would move a sibling's DMA.
//!
//! Every change follows the spec's order per requester ID (the engine clears the present entry,
//! invalidates the context cache and the IOTLB for the old domain ID, then writes the new one).
//! A change that fails part-way puts the IDs it touched back where they were (the engine's
//! `set_group_context`), so a group is never split between two targets; if even that fails the
//! group is reported as inconsistent.

use super::address_space::{IoAddressSpace, SharedSpace, SpaceInner};
use super::domain_ids::Retired;
use super::pass_through::{self, Translation};
use super::{State, VtdError, context_for, with_state};
use crate::time::Monotonic;
use alloc::format;
use alloc::vec::Vec;
use moat_iommu::Bdf;
use moat_iommu::engine::{GroupContextError, GroupRollback};
use moat_iommu::entries::{ContextEntry, DomainId, SourceId};

/// One group as remapping sees it.
#[derive(Debug)]
pub(crate) struct GroupContext {
    pub(super) unit: usize,
    pub(super) members: Vec<Bdf>,
    pub(super) requester_ids: Vec<u16>,
    /// The space the group is attached to and the domain ID it got for it.
    pub(super) attached: Option<(SharedSpace, DomainId, u32)>,
    /// An RMRR identity map keeps the group attached for good (firmware uses that memory).
    pub(super) reserved_memory: bool,
    /// A change failed half-way and could not be undone: the group's requester IDs may name
    /// different targets, so it is refused from then on (and reported).
    pub(super) inconsistent: bool,
    /// Strict, or pass-through when attached (`iommu.passthrough=`, the benchmark yardstick).
    pub(super) translation: Translation,
}

/// A group to place at bring-up: its number, unit, members and requester IDs.
#[derive(Clone, Debug)]
pub struct GroupPlacement {
    /// The group's number (as in the boot report).
    pub id: u32,
    /// Index of its unit in the DMAR's DRHD list.
    pub unit: usize,
    /// Its devices.
    pub members: Vec<Bdf>,
    /// Every requester ID its members' DMA may carry, de-duplicated.
    pub requester_ids: Vec<u16>,
}

/// Points every requester ID of `group` at `entry`, restoring the IDs already moved if one
/// fails (the engine's `set_group_context`).
pub(super) fn point_group(
    state: &mut State,
    group: u32,
    entry: ContextEntry,
) -> Result<(), VtdError> {
    let context = state
        .groups
        .get(&group)
        .ok_or(VtdError::NoSuchGroup(group))?;
    let unit = state
        .units
        .get_mut(context.unit)
        .ok_or(VtdError::WrongUnit)?;
    let sources: Vec<SourceId> = context
        .requester_ids
        .iter()
        .map(|&raw| SourceId::from_raw(raw))
        .collect();
    let Err(GroupContextError {
        source,
        error,
        rollback,
    }) = unit
        .engine
        .set_group_context(&mut unit.tables, &Monotonic, &sources, entry)
    else {
        return Ok(());
    };
    let restored = rollback == GroupRollback::Restored;
    crate::error!(
        "dmar",
        "group {group}: writing the context entry of {source:?} failed ({error}); {}",
        if restored {
            "the requester IDs already moved were restored"
        } else {
            "restoring the others failed too: the group is INCONSISTENT"
        }
    );
    if !restored {
        return Err(VtdError::Inconsistent(group));
    }
    Err(VtdError::Hardware(format!("{error}")))
}

/// Attaches `group` to `space`: a fresh domain ID on the group's unit, then every requester ID
/// of the group pointed at the space's table.
pub(crate) fn attach(group: u32, space: &IoAddressSpace) -> Result<DomainId, VtdError> {
    let shared = space.shared().clone();
    let mut inner = shared.lock();
    with_state(|state| attach_locked(state, group, space, &mut inner))
}

/// [`attach`] on `state` as given: bring-up attaches the RMRR devices' groups on the state it
/// is building, before translation is on.
pub(super) fn attach_in(
    state: &mut State,
    group: u32,
    space: &IoAddressSpace,
) -> Result<DomainId, VtdError> {
    let mut inner = space.shared().lock();
    attach_locked(state, group, space, &mut inner)
}

/// The attach itself, with the space locked (always before the remapping state).
fn attach_locked(
    state: &mut State,
    group: u32,
    space: &IoAddressSpace,
    inner: &mut SpaceInner,
) -> Result<DomainId, VtdError> {
    let context = state
        .groups
        .get(&group)
        .ok_or(VtdError::NoSuchGroup(group))?;
    if context.attached.is_some() {
        return Err(VtdError::AlreadyAttached(group));
    }
    if context.inconsistent {
        return Err(VtdError::Inconsistent(group));
    }
    if context.unit != inner.unit {
        return Err(VtdError::WrongUnit);
    }
    let unit = &mut state.units[context.unit];
    let domain = unit.domain_ids.allocate().ok_or(VtdError::NoDomainIds)?;
    let entry = pass_through::entry_for(context, inner.table(), domain);
    match point_group(state, group, entry) {
        Ok(()) => {}
        Err(VtdError::Inconsistent(group)) => {
            // Some requester IDs may still name the new domain. Record the group as attached
            // (so the space, its table and its buffers stay alive, unmaps invalidate this
            // domain too, and a later detach tries to block it again), keep the ID out of
            // reuse, and refuse new attaches of the group.
            if let Some(context) = state.groups.get_mut(&group) {
                context.inconsistent = true;
                context.attached = Some((space.shared().clone(), domain, inner.id));
            }
            inner.attachments.push((group, domain));
            return Err(VtdError::Inconsistent(group));
        }
        Err(error) => {
            // No entry names the ID (the group was restored), and nothing was ever cached
            // under it: it can be reused at once.
            state.units[state.groups[&group].unit]
                .domain_ids
                .release(Retired::after_invalidation(domain));
            return Err(error);
        }
    }
    if let Some(context) = state.groups.get_mut(&group) {
        context.attached = Some((space.shared().clone(), domain, inner.id));
    }
    inner.attachments.push((group, domain));
    Ok(domain)
}

/// Returns `group` to the blocking domain and retires its domain ID. A group not attached is
/// left alone.
pub(crate) fn detach(group: u32) -> Result<(), VtdError> {
    let Some(shared) = with_state(|state| {
        Ok(state
            .groups
            .get(&group)
            .ok_or(VtdError::NoSuchGroup(group))?
            .attached
            .as_ref()
            .map(|(space, _, _)| space.clone()))
    })?
    else {
        return Ok(());
    };
    let mut inner = shared.lock();
    let released = with_state(|state| {
        let unit_index = state.groups[&group].unit;
        let unit = &state.units[unit_index];
        let blocking = context_for(&unit.blocking, unit.blocking_id);
        point_group(state, group, blocking)?;
        let Some(context) = state.groups.get_mut(&group) else {
            return Err(VtdError::NoSuchGroup(group));
        };
        let Some((space, domain, _)) = context.attached.take() else {
            return Err(VtdError::NoSuchGroup(group));
        };
        // Every ID names the blocking domain again: a group left inconsistent by a failed
        // attach is whole again.
        context.inconsistent = false;
        // Every requester ID of the group now names the blocking domain, and moving each one
        // invalidated the context cache for it and the IOTLB for `domain` (engine order).
        state.units[unit_index]
            .domain_ids
            .release(Retired::after_invalidation(domain));
        Ok(space)
    })?;
    inner.attachments.retain(|(g, _)| *g != group);
    drop(inner);
    drop(released);
    Ok(())
}

/// The group `bdf` belongs to, if remapping places it.
pub fn group_of(bdf: Bdf) -> Option<u32> {
    with_state(|state| Ok(state.device_groups.get(&bdf).copied()))
        .ok()
        .flatten()
}

/// The requester IDs of `group`.
pub fn requester_ids(group: u32) -> Result<Vec<u16>, VtdError> {
    with_state(|state| {
        state
            .groups
            .get(&group)
            .map(|c| c.requester_ids.clone())
            .ok_or(VtdError::NoSuchGroup(group))
    })
}

/// The members of `group`.
pub fn members(group: u32) -> Result<Vec<Bdf>, VtdError> {
    with_state(|state| {
        state
            .groups
            .get(&group)
            .map(|c| c.members.clone())
            .ok_or(VtdError::NoSuchGroup(group))
    })
}

/// (space number, domain ID) of `group`'s attachment, if any.
pub fn attachment(group: u32) -> Option<(u32, u16)> {
    with_state(|state| {
        Ok(state
            .groups
            .get(&group)
            .and_then(|c| c.attached.as_ref())
            .map(|(_, domain, space)| (*space, domain.get())))
    })
    .ok()
    .flatten()
}

/// The group whose requester IDs in `segment` include `rid` (a device's own ID or a bridge
/// alias).
pub fn group_of_requester(segment: u16, rid: u16) -> Option<u32> {
    with_state(|state| {
        Ok(state
            .groups
            .iter()
            .find(|(_, c)| {
                state.units[c.unit].description.segment == segment && c.requester_ids.contains(&rid)
            })
            .map(|(id, _)| *id))
    })
    .ok()
    .flatten()
}
