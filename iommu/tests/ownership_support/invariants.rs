//! The invariants, checked on the table alone after every step (the model comparison checks
//! the rest). They hold whatever sequence of calls the kernel makes.

use std::collections::{BTreeMap, BTreeSet};

use moat_iommu::Bdf;
use moat_iommu::ownership::{
    AddressSpaceId, DeviceState, DeviceView, GroupId, GroupState, OwnerId, OwnershipTable,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::CAPACITY;
use super::model::{holder, unsettled};

/// Checks every invariant of `table`, given the devices as they were before the step and the
/// device the step named (the only one that may have changed).
pub(crate) fn check(
    table: &OwnershipTable,
    previous: &[DeviceView],
    target: Option<Bdf>,
    spaces: &[AddressSpaceId],
) -> Result<(), TestCaseError> {
    let devices: Vec<DeviceView> = table.devices().collect();
    let mut groups: BTreeMap<GroupId, Vec<DeviceView>> = BTreeMap::new();
    for device in &devices {
        groups.entry(device.group).or_default().push(*device);
    }
    for (&group, members) in &groups {
        check_group(table, group, members)?;
    }
    for device in &devices {
        check_device(table, device, &groups[&device.group])?;
    }
    for &space in spaces {
        if let Some(view) = table.address_space(space) {
            let attached = devices
                .iter()
                .filter(|d| d.state.address_space() == Some(space))
                .count();
            prop_assert_eq!(view.attached, attached, "space {} attach count", space);
        } else {
            prop_assert!(
                devices
                    .iter()
                    .all(|d| d.state.address_space() != Some(space)),
                "a device is attached to destroyed space {}",
                space
            );
        }
    }
    prop_assert_eq!(
        devices.len(),
        previous.len(),
        "devices appeared or vanished"
    );
    for (before, after) in previous.iter().zip(&devices) {
        check_step(before, after, target)?;
    }
    Ok(())
}

/// At most one owner; `owner_cnt` equals its held devices; kernel users only without owner
/// or unsettled devices; the reported state follows from the devices; one address space.
fn check_group(
    table: &OwnershipTable,
    group: GroupId,
    members: &[DeviceView],
) -> Result<(), TestCaseError> {
    let owners: BTreeSet<OwnerId> = members.iter().filter_map(|d| holder(d.state)).collect();
    prop_assert!(owners.len() <= 1, "group {} has owners {:?}", group, owners);
    let users: u32 = members.iter().map(|d| d.kernel_users).sum();
    let unsettled_count = members.iter().filter(|d| unsettled(d.state)).count() as u32;
    let expected = match owners.first() {
        Some(&owner) => GroupState::Owned {
            owner,
            devices: members
                .iter()
                .filter(|d| holder(d.state) == Some(owner))
                .count() as u32,
        },
        None if users > 0 => GroupState::Kernel { users },
        None => GroupState::Blocked {
            unsettled: unsettled_count,
        },
    };
    prop_assert_eq!(table.group_state(group), Some(expected), "group {}", group);
    if users > 0 {
        prop_assert!(
            owners.is_empty(),
            "kernel DMA users on owned group {}",
            group
        );
        prop_assert_eq!(
            unsettled_count,
            0,
            "kernel DMA users beside an unsettled device"
        );
    }
    let spaces: BTreeSet<AddressSpaceId> = members
        .iter()
        .filter_map(|d| d.state.address_space())
        .collect();
    prop_assert!(
        spaces.len() <= 1,
        "group {} attached to {:?}",
        group,
        spaces
    );
    Ok(())
}

/// Kernel users only on registered devices; attached only inside its owner's group and
/// space; events only for a holder, within the queue's capacity.
fn check_device(
    table: &OwnershipTable,
    device: &DeviceView,
    members: &[DeviceView],
) -> Result<(), TestCaseError> {
    if device.kernel_users > 0 {
        prop_assert_eq!(device.state, DeviceState::Registered);
    }
    if let DeviceState::Attached { owner, space } = device.state {
        let group = table.group_state(device.group);
        prop_assert!(
            matches!(group, Some(GroupState::Owned { owner: o, .. }) if o == owner),
            "{} attached for {} in a group {:?}",
            device.bdf,
            owner,
            group
        );
        let space_owner = table.address_space(space).map(|view| view.owner);
        prop_assert_eq!(
            space_owner,
            Some(owner),
            "{} attached to a foreign space",
            device.bdf
        );
    }
    let reachable = matches!(
        device.state,
        DeviceState::Bound { .. }
            | DeviceState::Attached { .. }
            | DeviceState::Quarantined { owner: Some(_) }
    );
    prop_assert!(device.queued_events <= CAPACITY);
    if !reachable {
        prop_assert_eq!((device.queued_events, device.lost_events), (0, 0));
    }
    prop_assert!(members.iter().any(|m| m.bdf == device.bdf));
    Ok(())
}

/// One step changes only the device it names; an owner or address space, once captured,
/// is never swapped for another in a step; removed is final.
fn check_step(
    before: &DeviceView,
    after: &DeviceView,
    target: Option<Bdf>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(before.bdf, after.bdf);
    prop_assert_eq!(before.group, after.group, "{} changed group", after.bdf);
    if target != Some(after.bdf) {
        prop_assert_eq!(before, after, "a step changed a device it did not name");
        return Ok(());
    }
    if before.state == DeviceState::Removed {
        prop_assert_eq!(after.state, DeviceState::Removed, "removed is not final");
    }
    if let (Some(old), Some(new)) = (holder(before.state), holder(after.state)) {
        prop_assert_eq!(old, new, "{} changed owner in one step", after.bdf);
    }
    if let (Some(old), Some(new)) = (before.state.address_space(), after.state.address_space()) {
        prop_assert_eq!(old, new, "{} changed address space in one step", after.bdf);
    }
    Ok(())
}
