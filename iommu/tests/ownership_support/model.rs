//! The independent model: a list of devices with their state, and nothing else stored. A
//! group's owner, its `owner_cnt`, its kernel users and what blocks it are all recomputed by
//! scanning the devices, where the table keeps counters; each operation is written as "the
//! refusal, if any, else the change", straight from the rules in the issue.

use std::collections::{BTreeMap, BTreeSet};

use moat_iommu::Bdf;
use moat_iommu::ownership::{
    AddressSpaceId, DeviceEvent, DeviceState, DeviceView, EventBatch, FaultOutcome, GroupId,
    GroupState, OwnerId, OwnershipError, ResetOutcome, SpaceView,
};

use super::{CAPACITY, THRESHOLD, WINDOW};

use OwnershipError::*;

/// One device as the model sees it.
#[derive(Clone, Debug)]
pub(crate) struct Device {
    pub(crate) bdf: Bdf,
    pub(crate) group: GroupId,
    pub(crate) state: DeviceState,
    pub(crate) kernel_users: u32,
    recent: Vec<u64>,
    queue: Vec<DeviceEvent>,
    lost: u64,
    owned: u64,
    stray: u64,
}

/// Devices, address spaces (owner, mappings) and faults from unknown addresses.
#[derive(Clone, Debug, Default)]
pub(crate) struct Model {
    pub(crate) devices: Vec<Device>,
    pub(crate) spaces: BTreeMap<AddressSpaceId, (OwnerId, u64)>,
    pub(crate) unknown_faults: u64,
}

type Step = Result<(), OwnershipError>;

impl Model {
    pub(crate) fn add(&mut self, bdf: Bdf, group: GroupId) {
        self.devices.push(Device {
            bdf,
            group,
            state: DeviceState::Registered,
            kernel_users: 0,
            recent: Vec::new(),
            queue: Vec::new(),
            lost: 0,
            owned: 0,
            stray: 0,
        });
    }

    fn in_group(&self, group: GroupId) -> impl Iterator<Item = &Device> {
        self.devices
            .iter()
            .filter(move |device| device.group == group)
    }

    /// Owners holding some device of the group (the invariants say: at most one).
    fn holders(&self, group: GroupId) -> BTreeSet<OwnerId> {
        self.in_group(group)
            .filter_map(|d| holder(d.state))
            .collect()
    }

    /// Whether `claimant` (an owner, or the kernel for `None`) may claim the group now.
    fn may_claim(&self, group: GroupId, claimant: Option<OwnerId>) -> bool {
        let holders = self.holders(group);
        if let Some(owner) = claimant
            && holders.contains(&owner)
        {
            return true;
        }
        let unsettled = self.in_group(group).any(|d| unsettled(d.state));
        let kernel = self.in_group(group).any(|d| d.kernel_users > 0);
        holders.is_empty() && !unsettled && (claimant.is_none() || !kernel)
    }

    /// What the table should say about the group.
    pub(crate) fn group_state(&self, group: GroupId) -> GroupState {
        if let Some(&owner) = self.holders(group).first() {
            let devices = self
                .in_group(group)
                .filter(|d| holder(d.state) == Some(owner))
                .count();
            return GroupState::Owned {
                owner,
                devices: devices as u32,
            };
        }
        let users: u32 = self.in_group(group).map(|d| d.kernel_users).sum();
        if users > 0 {
            return GroupState::Kernel { users };
        }
        let unsettled = self.in_group(group).filter(|d| unsettled(d.state)).count();
        GroupState::Blocked {
            unsettled: unsettled as u32,
        }
    }

    pub(crate) fn view(&self, index: usize) -> DeviceView {
        let d = &self.devices[index];
        DeviceView {
            bdf: d.bdf,
            group: d.group,
            state: d.state,
            kernel_users: d.kernel_users,
            queued_events: d.queue.len(),
            lost_events: d.lost,
            owned_faults: d.owned,
            stray_faults: d.stray,
        }
    }

    pub(crate) fn space(&self, space: AddressSpaceId) -> Option<SpaceView> {
        let &(owner, mappings) = self.spaces.get(&space)?;
        let attached = self
            .devices
            .iter()
            .filter(|d| matches!(d.state, DeviceState::Attached { space: s, .. } if s == space))
            .count();
        Some(SpaceView {
            owner,
            mappings,
            attached,
        })
    }

    pub(crate) fn open(&mut self, i: usize) -> Step {
        let d = &mut self.devices[i];
        match d.state {
            DeviceState::Registered if d.kernel_users == 0 => d.state = DeviceState::Parked,
            DeviceState::Quarantined { .. } | DeviceState::Removed => {
                return Err(WrongState { found: d.state });
            }
            _ => return Err(Busy),
        }
        Ok(())
    }

    pub(crate) fn close(&mut self, i: usize) -> Step {
        let d = &mut self.devices[i];
        match d.state {
            DeviceState::Parked => d.state = DeviceState::Registered,
            DeviceState::Registered => return Err(NotOpen),
            found => return Err(WrongState { found }),
        }
        Ok(())
    }

    pub(crate) fn bind(&mut self, owner: OwnerId, i: usize) -> Step {
        match self.devices[i].state {
            DeviceState::Parked => {}
            DeviceState::Registered => return Err(NotOpen),
            found => return Err(WrongState { found }),
        }
        if !self.may_claim(self.devices[i].group, Some(owner)) {
            return Err(Busy);
        }
        self.devices[i].state = DeviceState::Bound { owner };
        Ok(())
    }

    pub(crate) fn attach(&mut self, owner: OwnerId, i: usize, space: AddressSpaceId) -> Step {
        let d = &self.devices[i];
        check_holder(d.state, owner)?;
        if d.state != (DeviceState::Bound { owner }) {
            return Err(WrongState { found: d.state });
        }
        match self.spaces.get(&space) {
            None => return Err(NoSuchAddressSpace),
            Some(&(space_owner, _)) if space_owner != owner => return Err(WrongOwner),
            Some(_) => {}
        }
        for other in self.in_group(d.group) {
            if let DeviceState::Attached { space: used, .. } = other.state
                && used != space
            {
                return Err(GroupAttachedElsewhere { space: used });
            }
        }
        self.devices[i].state = DeviceState::Attached { owner, space };
        Ok(())
    }

    pub(crate) fn detach(&mut self, owner: OwnerId, i: usize) -> Step {
        let d = &mut self.devices[i];
        check_holder(d.state, owner)?;
        match d.state {
            DeviceState::Attached { .. } => d.state = DeviceState::Bound { owner },
            found => return Err(WrongState { found }),
        }
        Ok(())
    }

    pub(crate) fn release(&mut self, owner: OwnerId, i: usize) -> Step {
        let d = &mut self.devices[i];
        check_holder(d.state, owner)?;
        d.state = match d.state {
            DeviceState::Bound { .. } | DeviceState::Attached { .. } => {
                DeviceState::Releasing { owner: Some(owner) }
            }
            DeviceState::Quarantined { owner: Some(_) } => DeviceState::Quarantined { owner: None },
            found => return Err(WrongState { found }),
        };
        d.recent.clear();
        d.queue.clear();
        d.lost = 0;
        Ok(())
    }

    pub(crate) fn release_finished(&mut self, i: usize, outcome: ResetOutcome) -> Step {
        let d = &mut self.devices[i];
        let DeviceState::Releasing { .. } = d.state else {
            return Err(WrongState { found: d.state });
        };
        d.state = match outcome {
            ResetOutcome::Passed => DeviceState::Registered,
            ResetOutcome::Failed => DeviceState::Quarantined { owner: None },
        };
        Ok(())
    }

    pub(crate) fn clear_quarantine(&mut self, i: usize) -> Step {
        let d = &mut self.devices[i];
        match d.state {
            DeviceState::Quarantined { owner: None } => {
                d.state = DeviceState::Releasing { owner: None }
            }
            DeviceState::Quarantined { owner: Some(_) } => return Err(Busy),
            found => return Err(WrongState { found }),
        }
        Ok(())
    }

    pub(crate) fn remove(&mut self, i: usize) -> Step {
        let d = &mut self.devices[i];
        match d.state {
            DeviceState::Registered if d.kernel_users == 0 => d.state = DeviceState::Removed,
            DeviceState::Quarantined { owner: None } => d.state = DeviceState::Removed,
            DeviceState::Removed => return Err(WrongState { found: d.state }),
            _ => return Err(Busy),
        }
        Ok(())
    }

    pub(crate) fn claim_kernel_dma(&mut self, i: usize) -> Step {
        match self.devices[i].state {
            DeviceState::Registered => {}
            found @ (DeviceState::Quarantined { .. } | DeviceState::Removed) => {
                return Err(WrongState { found });
            }
            _ => return Err(Busy),
        }
        if !self.may_claim(self.devices[i].group, None) {
            return Err(Busy);
        }
        self.devices[i].kernel_users += 1;
        Ok(())
    }

    pub(crate) fn release_kernel_dma(&mut self, i: usize) -> Step {
        let d = &mut self.devices[i];
        if d.kernel_users == 0 {
            return Err(NotClaimed);
        }
        d.kernel_users -= 1;
        Ok(())
    }

    pub(crate) fn create_space(&mut self, space: AddressSpaceId, owner: OwnerId) -> Step {
        if self.spaces.contains_key(&space) {
            return Err(AddressSpaceExists);
        }
        self.spaces.insert(space, (owner, 0));
        Ok(())
    }

    pub(crate) fn destroy_space(&mut self, owner: OwnerId, space: AddressSpaceId) -> Step {
        self.space_of(owner, space)?;
        if self.space(space).is_some_and(|view| view.attached > 0) {
            return Err(Busy);
        }
        self.spaces.remove(&space);
        Ok(())
    }

    pub(crate) fn map(&mut self, owner: OwnerId, space: AddressSpaceId) -> Step {
        self.space_of(owner, space)?.1 += 1;
        Ok(())
    }

    pub(crate) fn unmap(&mut self, owner: OwnerId, space: AddressSpaceId) -> Step {
        let entry = self.space_of(owner, space)?;
        if entry.1 == 0 {
            return Err(NotMapped);
        }
        entry.1 -= 1;
        Ok(())
    }

    fn space_of(
        &mut self,
        owner: OwnerId,
        space: AddressSpaceId,
    ) -> Result<&mut (OwnerId, u64), OwnershipError> {
        match self.spaces.get_mut(&space) {
            None => Err(NoSuchAddressSpace),
            Some(entry) if entry.0 != owner => Err(WrongOwner),
            Some(entry) => Ok(entry),
        }
    }

    pub(crate) fn fault(&mut self, index: Option<usize>, now: u64) -> FaultOutcome {
        let Some(i) = index else {
            self.unknown_faults += 1;
            return FaultOutcome::UnknownDevice;
        };
        let d = &mut self.devices[i];
        let owner = match d.state {
            DeviceState::Bound { owner } | DeviceState::Attached { owner, .. } => owner,
            _ => {
                d.stray += 1;
                return FaultOutcome::Stray;
            }
        };
        d.owned += 1;
        let queued = d.push(DeviceEvent::Fault { at: now });
        d.recent.retain(|&at| now - at <= WINDOW);
        d.recent.push(now);
        if d.recent.len() >= THRESHOLD as usize {
            d.recent.clear();
            d.push(DeviceEvent::Quarantined { at: now });
            d.state = DeviceState::Quarantined { owner: Some(owner) };
            return FaultOutcome::Quarantined { owner };
        }
        if queued {
            FaultOutcome::Reported { owner }
        } else {
            FaultOutcome::Overflowed { owner }
        }
    }

    pub(crate) fn take_events(
        &mut self,
        owner: OwnerId,
        i: usize,
    ) -> Result<EventBatch, OwnershipError> {
        let d = &mut self.devices[i];
        check_holder(d.state, owner)?;
        match d.state {
            DeviceState::Bound { .. }
            | DeviceState::Attached { .. }
            | DeviceState::Quarantined { owner: Some(_) } => {}
            found => return Err(WrongState { found }),
        }
        let batch = EventBatch {
            events: std::mem::take(&mut d.queue),
            lost: d.lost,
        };
        d.lost = 0;
        Ok(batch)
    }
}

impl Device {
    fn push(&mut self, event: DeviceEvent) -> bool {
        if self.queue.len() < CAPACITY {
            self.queue.push(event);
            true
        } else {
            self.lost += 1;
            false
        }
    }
}

/// The owner a state ties a device to, written out rather than taken from the table.
pub(crate) fn holder(state: DeviceState) -> Option<OwnerId> {
    match state {
        DeviceState::Bound { owner } | DeviceState::Attached { owner, .. } => Some(owner),
        DeviceState::Releasing { owner } | DeviceState::Quarantined { owner } => owner,
        DeviceState::Registered | DeviceState::Parked | DeviceState::Removed => None,
    }
}

/// A reset to be checked or a quarantine to be cleared.
pub(crate) fn unsettled(state: DeviceState) -> bool {
    matches!(
        state,
        DeviceState::Releasing { .. } | DeviceState::Quarantined { .. }
    )
}

fn check_holder(state: DeviceState, owner: OwnerId) -> Step {
    match holder(state) {
        Some(held_by) if held_by != owner => Err(WrongOwner),
        _ => Ok(()),
    }
}
