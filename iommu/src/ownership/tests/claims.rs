//! Group DMA ownership: one owner or the kernel per group, counted per device, changing
//! hands only through blocked.

use super::*;

#[test]
fn ownership_groups_start_blocked() {
    let table = table();
    assert_eq!(group(&table, PAIR), GroupState::Blocked { unsettled: 0 });
    assert_eq!(group(&table, SINGLE), GroupState::Blocked { unsettled: 0 });
}

#[test]
fn ownership_same_owner_counts_each_device_of_its_group() {
    let mut table = table();
    bound(&mut table, ALICE, first());
    let one = GroupState::Owned {
        owner: ALICE,
        devices: 1,
    };
    assert_eq!(group(&table, PAIR), one);
    bound(&mut table, ALICE, second());
    let two = GroupState::Owned {
        owner: ALICE,
        devices: 2,
    };
    assert_eq!(group(&table, PAIR), two);
    assert_eq!(group(&table, SINGLE), GroupState::Blocked { unsettled: 0 });
}

#[test]
fn ownership_bind_by_another_owner_is_busy_and_first_owner_keeps_the_group() {
    let mut table = table();
    bound(&mut table, ALICE, first());
    table.open(second()).expect("open");
    assert_eq!(
        refused(&mut table, |t| t.bind(BOB, second())),
        OwnershipError::Busy
    );
    assert_eq!(state(&table, second()), DeviceState::Parked);
    assert_eq!(state(&table, first()), DeviceState::Bound { owner: ALICE });
    // Bob can still use another group.
    bound(&mut table, BOB, lone());
}

#[test]
fn ownership_bind_is_busy_while_the_kernel_uses_any_device_of_the_group() {
    let mut table = table();
    table.claim_kernel_dma(second()).expect("kernel");
    table.claim_kernel_dma(second()).expect("kernel, twice");
    assert_eq!(group(&table, PAIR), GroupState::Kernel { users: 2 });
    table.open(first()).expect("open");
    assert_eq!(
        refused(&mut table, |t| t.bind(ALICE, first())),
        OwnershipError::Busy
    );
    table.release_kernel_dma(second()).expect("release");
    assert_eq!(
        refused(&mut table, |t| t.bind(ALICE, first())),
        OwnershipError::Busy
    );
    table.release_kernel_dma(second()).expect("release");
    assert_eq!(group(&table, PAIR), GroupState::Blocked { unsettled: 0 });
    table
        .bind(ALICE, first())
        .expect("bind once the kernel let go");
}

#[test]
fn ownership_kernel_claim_is_busy_on_an_owned_group_or_a_held_device() {
    let mut table = table();
    bound(&mut table, ALICE, first());
    assert_eq!(
        refused(&mut table, |t| t.claim_kernel_dma(second())),
        OwnershipError::Busy
    );
    assert_eq!(
        refused(&mut table, |t| t.claim_kernel_dma(first())),
        OwnershipError::Busy
    );
    table.open(lone()).expect("open");
    assert_eq!(
        refused(&mut table, |t| t.claim_kernel_dma(lone())),
        OwnershipError::Busy
    );
    table.close(lone()).expect("close");
    table.claim_kernel_dma(lone()).expect("kernel");
    assert_eq!(
        refused(&mut table, |t| t.open(lone())),
        OwnershipError::Busy
    );
    assert_eq!(
        refused(&mut table, |t| t.remove(lone())),
        OwnershipError::Busy
    );
}

#[test]
fn ownership_kernel_release_without_claim_is_refused() {
    let mut table = table();
    assert_eq!(
        refused(&mut table, |t| t.release_kernel_dma(first())),
        OwnershipError::NotClaimed
    );
}

#[test]
fn ownership_group_is_free_only_after_every_release_finished() {
    let mut table = table();
    bound(&mut table, ALICE, first());
    bound(&mut table, ALICE, second());
    table.release(ALICE, first()).expect("release");
    table.release(ALICE, second()).expect("release");
    let releasing = DeviceState::Releasing { owner: Some(ALICE) };
    assert_eq!(state(&table, first()), releasing);
    // Both still count: nobody else may take the group, not even the kernel.
    let two = GroupState::Owned {
        owner: ALICE,
        devices: 2,
    };
    assert_eq!(group(&table, PAIR), two);
    table
        .release_finished(first(), ResetOutcome::Passed)
        .expect("finished");
    assert_eq!(state(&table, first()), DeviceState::Registered);
    let one = GroupState::Owned {
        owner: ALICE,
        devices: 1,
    };
    assert_eq!(group(&table, PAIR), one);
    table.open(first()).expect("open");
    assert_eq!(
        refused(&mut table, |t| t.bind(BOB, first())),
        OwnershipError::Busy
    );
    assert_eq!(
        refused(&mut table, |t| t.claim_kernel_dma(second())),
        OwnershipError::Busy
    );
    table
        .release_finished(second(), ResetOutcome::Passed)
        .expect("finished");
    assert_eq!(group(&table, PAIR), GroupState::Blocked { unsettled: 0 });
    table
        .bind(BOB, first())
        .expect("the group changed hands through blocked");
}

#[test]
fn ownership_owner_may_bind_more_while_its_own_release_is_pending() {
    let mut table = table();
    bound(&mut table, ALICE, first());
    table.release(ALICE, first()).expect("release");
    bound(&mut table, ALICE, second());
    let two = GroupState::Owned {
        owner: ALICE,
        devices: 2,
    };
    assert_eq!(group(&table, PAIR), two);
}

#[test]
fn ownership_failed_reset_keeps_the_group_from_everyone_new() {
    let mut table = table();
    bound(&mut table, ALICE, first());
    table.release(ALICE, first()).expect("release");
    table
        .release_finished(first(), ResetOutcome::Failed)
        .expect("finished");
    assert_eq!(
        state(&table, first()),
        DeviceState::Quarantined { owner: None }
    );
    assert_eq!(group(&table, PAIR), GroupState::Blocked { unsettled: 1 });
    table.open(second()).expect("open");
    assert_eq!(
        refused(&mut table, |t| t.bind(ALICE, second())),
        OwnershipError::Busy
    );
    table.close(second()).expect("close");
    assert_eq!(
        refused(&mut table, |t| t.claim_kernel_dma(second())),
        OwnershipError::Busy
    );
    // Clearing resets it again; the group is free once that reset is checked.
    table.clear_quarantine(first()).expect("clear");
    assert_eq!(group(&table, PAIR), GroupState::Blocked { unsettled: 1 });
    assert_eq!(
        refused(&mut table, |t| t.claim_kernel_dma(second())),
        OwnershipError::Busy
    );
    table
        .release_finished(first(), ResetOutcome::Passed)
        .expect("finished");
    assert_eq!(group(&table, PAIR), GroupState::Blocked { unsettled: 0 });
    table.claim_kernel_dma(second()).expect("kernel");
}

#[test]
fn ownership_removing_a_quarantined_device_frees_its_group() {
    let mut table = table();
    bound(&mut table, ALICE, first());
    table.release(ALICE, first()).expect("release");
    table
        .release_finished(first(), ResetOutcome::Failed)
        .expect("finished");
    table.remove(first()).expect("remove");
    assert_eq!(group(&table, PAIR), GroupState::Blocked { unsettled: 0 });
    bound(&mut table, BOB, second());
}
