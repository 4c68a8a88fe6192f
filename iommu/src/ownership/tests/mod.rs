//! Unit tests of the ownership table, one rule at a time. Every refusal goes through
//! [`refused`], which also checks that the table did not change.

mod claims;
mod faults;
mod lifecycle;
mod spaces;

use core::num::{NonZeroU32, NonZeroUsize};

use super::*;
use crate::Bdf;

const ALICE: OwnerId = OwnerId::new(1);
const BOB: OwnerId = OwnerId::new(2);
const SPACE_A: AddressSpaceId = AddressSpaceId::new(10);
const SPACE_A2: AddressSpaceId = AddressSpaceId::new(11);
const SPACE_B: AddressSpaceId = AddressSpaceId::new(20);
const PAIR: GroupId = GroupId::new(1);
const SINGLE: GroupId = GroupId::new(2);

fn bdf(text: &str) -> Bdf {
    text.parse().expect("test address")
}

/// Two functions of one device in group 1.
fn first() -> Bdf {
    bdf("0000:03:00.0")
}
fn second() -> Bdf {
    bdf("0000:03:00.1")
}
/// A device alone in group 2.
fn lone() -> Bdf {
    bdf("0000:00:04.0")
}

fn policy(threshold: u32, window: u64, capacity: usize) -> FaultPolicy {
    FaultPolicy::new(
        NonZeroU32::new(threshold).expect("threshold"),
        window,
        NonZeroUsize::new(capacity).expect("capacity"),
    )
}

/// Groups 1 (`first`, `second`) and 2 (`lone`); Alice owns spaces A and A2, Bob space B;
/// quarantine at 3 faults within 10, 2 events queued.
fn table() -> OwnershipTable {
    let mut table = OwnershipTable::new(policy(3, 10, 2));
    table.register(first(), PAIR).expect("register");
    table.register(second(), PAIR).expect("register");
    table.register(lone(), SINGLE).expect("register");
    table.create_address_space(SPACE_A, ALICE).expect("space");
    table.create_address_space(SPACE_A2, ALICE).expect("space");
    table.create_address_space(SPACE_B, BOB).expect("space");
    table
}

/// Opens and binds `device` for `owner`.
fn bound(table: &mut OwnershipTable, owner: OwnerId, device: Bdf) {
    table.open(device).expect("open");
    table.bind(owner, device).expect("bind");
}

fn state(table: &OwnershipTable, device: Bdf) -> DeviceState {
    table.device(device).expect("registered").state
}

fn group(table: &OwnershipTable, group: GroupId) -> GroupState {
    table.group_state(group).expect("group")
}

/// Runs `operation`, which must be refused, and checks it changed nothing.
fn refused<T: core::fmt::Debug>(
    table: &mut OwnershipTable,
    operation: impl FnOnce(&mut OwnershipTable) -> Result<T, OwnershipError>,
) -> OwnershipError {
    let before = table.clone();
    let error = operation(table).expect_err("operation must be refused");
    assert_eq!(
        *table, before,
        "refused operation ({error:?}) changed the table"
    );
    error
}

#[test]
fn ownership_listing_shows_group_state_owner_and_space() {
    let mut table = table();
    bound(&mut table, ALICE, first());
    table.attach(ALICE, first(), SPACE_A).expect("attach");
    table.claim_kernel_dma(lone()).expect("kernel");
    table.fault(lone(), 0);
    let text = alloc::format!("{table}");
    assert_eq!(
        text,
        "0000:00:04.0 group=2 state=registered owner=- space=- kernel-users=1 faults=0 stray=1 queued=0 lost=0\n\
         0000:03:00.0 group=1 state=attached owner=1 space=10 kernel-users=0 faults=0 stray=0 queued=0 lost=0\n\
         0000:03:00.1 group=1 state=registered owner=- space=- kernel-users=0 faults=0 stray=0 queued=0 lost=0\n"
    );
    let groups: alloc::vec::Vec<_> = table
        .groups()
        .map(|(id, state)| alloc::format!("{id} {state}"))
        .collect();
    assert_eq!(groups, ["1 owned owner=1 devices=1", "2 kernel users=1"]);
}

#[test]
fn ownership_errors_display() {
    assert_eq!(
        alloc::format!(
            "{}",
            OwnershipError::WrongState {
                found: DeviceState::Removed
            }
        ),
        "device is removed"
    );
    assert_eq!(
        alloc::format!(
            "{}",
            OwnershipError::GroupAttachedElsewhere { space: SPACE_A }
        ),
        "group is attached to address space 10"
    );
}

#[test]
fn ownership_unknown_device_is_refused_everywhere() {
    let mut table = table();
    let nobody = bdf("0000:09:00.0");
    let none = OwnershipError::NoSuchDevice;
    assert_eq!(refused(&mut table, |t| t.open(nobody)), none);
    assert_eq!(refused(&mut table, |t| t.close(nobody)), none);
    assert_eq!(refused(&mut table, |t| t.bind(ALICE, nobody)), none);
    assert_eq!(
        refused(&mut table, |t| t.attach(ALICE, nobody, SPACE_A)),
        none
    );
    assert_eq!(refused(&mut table, |t| t.detach(ALICE, nobody)), none);
    assert_eq!(refused(&mut table, |t| t.release(ALICE, nobody)), none);
    let passed = ResetOutcome::Passed;
    assert_eq!(
        refused(&mut table, |t| t.release_finished(nobody, passed)),
        none
    );
    assert_eq!(refused(&mut table, |t| t.clear_quarantine(nobody)), none);
    assert_eq!(refused(&mut table, |t| t.remove(nobody)), none);
    assert_eq!(refused(&mut table, |t| t.claim_kernel_dma(nobody)), none);
    assert_eq!(refused(&mut table, |t| t.release_kernel_dma(nobody)), none);
    assert_eq!(refused(&mut table, |t| t.take_events(ALICE, nobody)), none);
    assert_eq!(table.device(nobody), None);
    assert_eq!(table.group_state(GroupId::new(99)), None);
}

#[test]
fn ownership_register_twice_is_refused() {
    let mut table = table();
    let error = refused(&mut table, |t| t.register(first(), SINGLE));
    assert_eq!(error, OwnershipError::AlreadyRegistered);
}
