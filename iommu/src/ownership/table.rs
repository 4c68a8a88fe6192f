//! The table itself: its records, registration, read-only queries, and the one claim and one
//! release of a group's DMA ownership that every transition goes through.

use alloc::collections::BTreeMap;

use super::fault::{FaultLog, FaultPolicy};
use super::{
    AddressSpaceId, DeviceState, DeviceView, GroupId, GroupState, OwnerId, OwnershipError,
    SpaceView,
};
use crate::Bdf;

/// Every device's DMA ownership and lifecycle state, every group's claim, every address
/// space's owner: the logic of the kernel's device registry, with no hardware and no globals.
///
/// The kernel keeps one behind one lock and does the hardware work each transition asks for
/// (context entries, bus mastering, reset) while holding it. Every method either makes its
/// whole change or returns an [`OwnershipError`] and changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnershipTable {
    pub(super) devices: BTreeMap<Bdf, DeviceRecord>,
    pub(super) groups: BTreeMap<GroupId, GroupRecord>,
    pub(super) spaces: BTreeMap<AddressSpaceId, SpaceRecord>,
    pub(super) policy: FaultPolicy,
    pub(super) unknown_faults: u64,
}

/// One device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct DeviceRecord {
    pub(super) group: GroupId,
    pub(super) state: DeviceState,
    pub(super) kernel_users: u32,
    pub(super) faults: FaultLog,
}

/// One group's claim by an owner. Kernel users are counted on the devices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct GroupRecord {
    pub(super) owner: Option<OwnerId>,
    /// Devices of the group that `owner` holds (Linux's `owner_cnt`); 0 exactly when `owner`
    /// is `None`.
    pub(super) owner_count: u32,
}

/// One address space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SpaceRecord {
    pub(super) owner: OwnerId,
    pub(super) mappings: u64,
}

/// Who claims a group's DMA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Claimant {
    /// The kernel's DMA API, for one more use of one device.
    Kernel,
    /// An owner, for one more device.
    Owner(OwnerId),
}

impl OwnershipTable {
    /// An empty table that quarantines devices as `policy` says.
    pub fn new(policy: FaultPolicy) -> Self {
        Self {
            devices: BTreeMap::new(),
            groups: BTreeMap::new(),
            spaces: BTreeMap::new(),
            policy,
            unknown_faults: 0,
        }
    }

    /// Adds `bdf`, a member of `group`, in state [`Registered`](DeviceState::Registered).
    /// Fails with `AlreadyRegistered` if the address is taken, even by a removed device.
    pub fn register(&mut self, bdf: Bdf, group: GroupId) -> Result<(), OwnershipError> {
        if self.devices.contains_key(&bdf) {
            return Err(OwnershipError::AlreadyRegistered);
        }
        self.groups.entry(group).or_default();
        self.devices.insert(
            bdf,
            DeviceRecord {
                group,
                state: DeviceState::Registered,
                kernel_users: 0,
                faults: FaultLog::default(),
            },
        );
        Ok(())
    }

    /// The device at `bdf`.
    pub fn device(&self, bdf: Bdf) -> Option<DeviceView> {
        self.devices.get(&bdf).map(|record| view(bdf, record))
    }

    /// Every device, in address order.
    pub fn devices(&self) -> impl Iterator<Item = DeviceView> + '_ {
        self.devices.iter().map(|(&bdf, record)| view(bdf, record))
    }

    /// Who may use `group`'s DMA, or `None` for a group with no registered device.
    pub fn group_state(&self, group: GroupId) -> Option<GroupState> {
        let record = self.groups.get(&group)?;
        if let Some(owner) = record.owner {
            return Some(GroupState::Owned {
                owner,
                devices: record.owner_count,
            });
        }
        let (users, unsettled) = self
            .members(group)
            .fold((0u32, 0u32), |(users, unsettled), d| {
                let unsettled = unsettled + u32::from(d.state.is_unsettled());
                (users.saturating_add(d.kernel_users), unsettled)
            });
        Some(if users > 0 {
            GroupState::Kernel { users }
        } else {
            GroupState::Blocked { unsettled }
        })
    }

    /// Every group with its state, in id order.
    pub fn groups(&self) -> impl Iterator<Item = (GroupId, GroupState)> + '_ {
        self.groups
            .keys()
            .filter_map(|&group| Some((group, self.group_state(group)?)))
    }

    /// The address space `space`.
    pub fn address_space(&self, space: AddressSpaceId) -> Option<SpaceView> {
        let record = self.spaces.get(&space)?;
        let attached = self
            .devices
            .values()
            .filter(|device| device.state.address_space() == Some(space))
            .count();
        Some(SpaceView {
            owner: record.owner,
            mappings: record.mappings,
            attached,
        })
    }

    /// Faults reported for addresses with no registered device.
    pub fn unknown_faults(&self) -> u64 {
        self.unknown_faults
    }

    /// The fault policy the table was made with.
    pub fn policy(&self) -> FaultPolicy {
        self.policy
    }

    /// The device at `bdf`, or `NoSuchDevice`.
    pub(super) fn record(&self, bdf: Bdf) -> Result<&DeviceRecord, OwnershipError> {
        self.devices.get(&bdf).ok_or(OwnershipError::NoSuchDevice)
    }

    /// The devices of `group`.
    pub(super) fn members(&self, group: GroupId) -> impl Iterator<Item = &DeviceRecord> + '_ {
        self.devices.values().filter(move |d| d.group == group)
    }

    /// The one place a group's DMA is claimed, for one more device (an owner) or one more
    /// DMA-API use of `bdf` (the kernel). The caller has checked the device's own state.
    ///
    /// `Busy` if another owner holds the group; for a group nobody owns, also if a device of
    /// the group is unsettled (releasing or quarantined), and for an owner, if the kernel uses
    /// any device of the group. An owner that already holds the group may always add devices.
    pub(super) fn claim(&mut self, bdf: Bdf, claimant: Claimant) -> Result<(), OwnershipError> {
        let group = self.record(bdf)?.group;
        let current = self.groups.get(&group).and_then(|record| record.owner);
        let mut kernel_users = false;
        let mut unsettled = false;
        for device in self.members(group) {
            kernel_users |= device.kernel_users > 0;
            unsettled |= device.state.is_unsettled();
        }
        match (current, claimant) {
            (Some(holder), Claimant::Owner(owner)) if holder == owner => {}
            (Some(_), _) => return Err(OwnershipError::Busy),
            (None, _) if unsettled => return Err(OwnershipError::Busy),
            (None, Claimant::Owner(_)) if kernel_users => return Err(OwnershipError::Busy),
            (None, _) => {}
        }
        match claimant {
            Claimant::Kernel => {
                let device = self
                    .devices
                    .get_mut(&bdf)
                    .ok_or(OwnershipError::NoSuchDevice)?;
                device.kernel_users = device
                    .kernel_users
                    .checked_add(1)
                    .ok_or(OwnershipError::CountOverflow)?;
            }
            Claimant::Owner(owner) => {
                let record = self.groups.entry(group).or_default();
                record.owner_count = record
                    .owner_count
                    .checked_add(1)
                    .ok_or(OwnershipError::CountOverflow)?;
                record.owner = Some(owner);
            }
        }
        Ok(())
    }

    /// The one place a claim is given back; it cannot fail. The caller has checked that
    /// `claimant` holds the claim (a device it holds, a kernel use it made). When an owner's
    /// count reaches 0 the group has no owner again, and is the kernel's or blocked by what
    /// its devices say; an owner's last device is released only once its reset is checked,
    /// so a group never changes owner without passing through blocked.
    pub(super) fn release_claim(&mut self, bdf: Bdf, claimant: Claimant) {
        let Some(device) = self.devices.get_mut(&bdf) else {
            return;
        };
        match claimant {
            Claimant::Kernel => device.kernel_users = device.kernel_users.saturating_sub(1),
            Claimant::Owner(owner) => {
                if let Some(record) = self.groups.get_mut(&device.group) {
                    debug_assert_eq!(record.owner, Some(owner), "release by a non-holder");
                    record.owner_count = record.owner_count.saturating_sub(1);
                    if record.owner_count == 0 {
                        record.owner = None;
                    }
                }
            }
        }
    }
}

fn view(bdf: Bdf, record: &DeviceRecord) -> DeviceView {
    DeviceView {
        bdf,
        group: record.group,
        state: record.state,
        kernel_users: record.kernel_users,
        queued_events: record.faults.queued(),
        lost_events: record.faults.lost(),
        owned_faults: record.faults.owned(),
        stray_faults: record.faults.stray(),
    }
}
