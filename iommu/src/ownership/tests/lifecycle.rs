//! The per-device state machine: open, bind, attach, detach, release, reset, removal.

use super::*;

#[test]
fn ownership_one_parked_handle_at_a_time() {
    let mut table = table();
    table.open(first()).expect("open");
    assert_eq!(state(&table, first()), DeviceState::Parked);
    assert_eq!(
        refused(&mut table, |t| t.open(first())),
        OwnershipError::Busy
    );
    table.close(first()).expect("close");
    assert_eq!(state(&table, first()), DeviceState::Registered);
    assert_eq!(
        refused(&mut table, |t| t.close(first())),
        OwnershipError::NotOpen
    );
    bound(&mut table, ALICE, first());
    assert_eq!(
        refused(&mut table, |t| t.open(first())),
        OwnershipError::Busy
    );
    table.release(ALICE, first()).expect("release");
    assert_eq!(
        refused(&mut table, |t| t.open(first())),
        OwnershipError::Busy
    );
}

#[test]
fn ownership_bind_needs_a_parked_handle() {
    let mut table = table();
    assert_eq!(
        refused(&mut table, |t| t.bind(ALICE, first())),
        OwnershipError::NotOpen
    );
    bound(&mut table, ALICE, first());
    assert_eq!(
        refused(&mut table, |t| t.bind(ALICE, first())),
        OwnershipError::WrongState {
            found: DeviceState::Bound { owner: ALICE }
        }
    );
    assert_eq!(
        refused(&mut table, |t| t.close(first())),
        OwnershipError::WrongState {
            found: DeviceState::Bound { owner: ALICE }
        }
    );
}

#[test]
fn ownership_attach_once_detach_and_attach_again() {
    let mut table = table();
    bound(&mut table, ALICE, first());
    table.attach(ALICE, first(), SPACE_A).expect("attach");
    let attached = DeviceState::Attached {
        owner: ALICE,
        space: SPACE_A,
    };
    assert_eq!(state(&table, first()), attached);
    assert_eq!(
        refused(&mut table, |t| t.attach(ALICE, first(), SPACE_A2)),
        OwnershipError::WrongState { found: attached }
    );
    assert_eq!(
        refused(&mut table, |t| t.attach(ALICE, first(), SPACE_A)),
        OwnershipError::WrongState { found: attached }
    );
    table.detach(ALICE, first()).expect("detach");
    assert_eq!(state(&table, first()), DeviceState::Bound { owner: ALICE });
    let bound_state = DeviceState::Bound { owner: ALICE };
    assert_eq!(
        refused(&mut table, |t| t.detach(ALICE, first())),
        OwnershipError::WrongState { found: bound_state }
    );
    table
        .attach(ALICE, first(), SPACE_A2)
        .expect("attach again");
}

#[test]
fn ownership_attach_checks_owner_space_and_group() {
    let mut table = table();
    assert_eq!(
        refused(&mut table, |t| t.attach(ALICE, first(), SPACE_A)),
        OwnershipError::WrongState {
            found: DeviceState::Registered
        }
    );
    bound(&mut table, ALICE, first());
    bound(&mut table, ALICE, second());
    assert_eq!(
        refused(&mut table, |t| t.attach(BOB, first(), SPACE_B)),
        OwnershipError::WrongOwner
    );
    assert_eq!(
        refused(&mut table, |t| t.attach(ALICE, first(), SPACE_B)),
        OwnershipError::WrongOwner
    );
    let missing = AddressSpaceId::new(99);
    assert_eq!(
        refused(&mut table, |t| t.attach(ALICE, first(), missing)),
        OwnershipError::NoSuchAddressSpace
    );
    table.attach(ALICE, first(), SPACE_A).expect("attach");
    assert_eq!(
        refused(&mut table, |t| t.attach(ALICE, second(), SPACE_A2)),
        OwnershipError::GroupAttachedElsewhere { space: SPACE_A }
    );
    table.attach(ALICE, second(), SPACE_A).expect("same space");
    assert_eq!(
        refused(&mut table, |t| t.detach(BOB, first())),
        OwnershipError::WrongOwner
    );
}

#[test]
fn ownership_release_never_fails_for_the_holder() {
    let mut table = table();
    bound(&mut table, ALICE, first());
    bound(&mut table, ALICE, second());
    table.attach(ALICE, second(), SPACE_A).expect("attach");
    assert_eq!(
        refused(&mut table, |t| t.release(BOB, first())),
        OwnershipError::WrongOwner
    );
    table.release(ALICE, first()).expect("release bound");
    table.release(ALICE, second()).expect("release attached");
    assert_eq!(table.address_space(SPACE_A).map(|s| s.attached), Some(0));
    let releasing = DeviceState::Releasing { owner: Some(ALICE) };
    assert_eq!(
        refused(&mut table, |t| t.release(ALICE, first())),
        OwnershipError::WrongState { found: releasing }
    );
    assert_eq!(
        refused(&mut table, |t| t.release(ALICE, lone())),
        OwnershipError::WrongState {
            found: DeviceState::Registered
        }
    );
    assert_eq!(
        refused(&mut table, |t| t
            .release_finished(lone(), ResetOutcome::Passed)),
        OwnershipError::WrongState {
            found: DeviceState::Registered
        }
    );
}

#[test]
fn ownership_clear_quarantine_only_once_released() {
    let mut table = table();
    assert_eq!(
        refused(&mut table, |t| t.clear_quarantine(first())),
        OwnershipError::WrongState {
            found: DeviceState::Registered
        }
    );
    bound(&mut table, ALICE, first());
    for now in 0..3 {
        table.fault(first(), now);
    }
    let quarantined = DeviceState::Quarantined { owner: Some(ALICE) };
    assert_eq!(state(&table, first()), quarantined);
    assert_eq!(
        refused(&mut table, |t| t.clear_quarantine(first())),
        OwnershipError::Busy
    );
    assert_eq!(
        refused(&mut table, |t| t.remove(first())),
        OwnershipError::Busy
    );
    assert_eq!(
        refused(&mut table, |t| t.open(first())),
        OwnershipError::WrongState { found: quarantined }
    );
    table.release(ALICE, first()).expect("release");
    table.clear_quarantine(first()).expect("clear");
    assert_eq!(
        state(&table, first()),
        DeviceState::Releasing { owner: None }
    );
    table
        .release_finished(first(), ResetOutcome::Failed)
        .expect("finished");
    assert_eq!(
        state(&table, first()),
        DeviceState::Quarantined { owner: None }
    );
    table.clear_quarantine(first()).expect("clear");
    table
        .release_finished(first(), ResetOutcome::Passed)
        .expect("finished");
    table.open(first()).expect("usable again");
}

#[test]
fn ownership_removed_is_final() {
    let mut table = table();
    table.open(first()).expect("open");
    assert_eq!(
        refused(&mut table, |t| t.remove(first())),
        OwnershipError::Busy
    );
    table.close(first()).expect("close");
    table.remove(first()).expect("remove");
    let removed = OwnershipError::WrongState {
        found: DeviceState::Removed,
    };
    assert_eq!(refused(&mut table, |t| t.remove(first())), removed);
    assert_eq!(refused(&mut table, |t| t.open(first())), removed);
    assert_eq!(
        refused(&mut table, |t| t.claim_kernel_dma(first())),
        removed
    );
    assert_eq!(
        refused(&mut table, |t| t.register(first(), PAIR)),
        OwnershipError::AlreadyRegistered
    );
    assert_eq!(table.fault(first(), 0), FaultOutcome::Stray);
}
