//! Fault attribution, the owner's bounded event queue, and quarantine by policy.

use super::*;

#[test]
fn ownership_faults_are_queued_for_the_holder() {
    let mut table = table();
    bound(&mut table, ALICE, first());
    assert_eq!(
        table.fault(first(), 5),
        FaultOutcome::Reported { owner: ALICE }
    );
    assert_eq!(
        refused(&mut table, |t| t.take_events(BOB, first())),
        OwnershipError::WrongOwner
    );
    let batch = table.take_events(ALICE, first()).expect("take");
    assert_eq!(batch.events, [DeviceEvent::Fault { at: 5 }]);
    assert_eq!(batch.lost, 0);
    assert_eq!(table.take_events(ALICE, first()), Ok(EventBatch::default()));
    assert_eq!(table.device(first()).map(|d| d.owned_faults), Some(1));
}

#[test]
fn ownership_queue_overflow_is_counted_and_reported() {
    let mut table = table();
    bound(&mut table, ALICE, first());
    // Capacity 2, threshold 3 within 10: space the faults out so none quarantines.
    assert_eq!(
        table.fault(first(), 0),
        FaultOutcome::Reported { owner: ALICE }
    );
    assert_eq!(
        table.fault(first(), 20),
        FaultOutcome::Reported { owner: ALICE }
    );
    assert_eq!(
        table.fault(first(), 40),
        FaultOutcome::Overflowed { owner: ALICE }
    );
    assert_eq!(
        table.fault(first(), 60),
        FaultOutcome::Overflowed { owner: ALICE }
    );
    let view = table.device(first()).expect("device");
    assert_eq!((view.queued_events, view.lost_events), (2, 2));
    let batch = table.take_events(ALICE, first()).expect("take");
    assert_eq!(batch.events.len(), 2);
    assert_eq!(batch.lost, 2);
    assert_eq!(table.device(first()).map(|d| d.lost_events), Some(0));
}

#[test]
fn ownership_faults_on_unheld_devices_are_stray() {
    let mut table = table();
    assert_eq!(table.fault(first(), 0), FaultOutcome::Stray);
    table.open(first()).expect("open");
    assert_eq!(table.fault(first(), 0), FaultOutcome::Stray);
    table.bind(ALICE, first()).expect("bind");
    table.release(ALICE, first()).expect("release");
    assert_eq!(table.fault(first(), 0), FaultOutcome::Stray);
    assert_eq!(
        refused(&mut table, |t| t.take_events(ALICE, first())),
        OwnershipError::WrongState {
            found: DeviceState::Releasing { owner: Some(ALICE) }
        }
    );
    let view = table.device(first()).expect("device");
    assert_eq!(
        (view.stray_faults, view.owned_faults, view.queued_events),
        (3, 0, 0)
    );
    assert_eq!(
        table.fault(bdf("0000:09:00.0"), 0),
        FaultOutcome::UnknownDevice
    );
    assert_eq!(table.unknown_faults(), 1);
}

#[test]
fn ownership_threshold_within_the_window_quarantines() {
    let mut table = table();
    bound(&mut table, ALICE, lone());
    table.attach(ALICE, lone(), SPACE_A).expect("attach");
    // 3 faults, but never 3 within 10 time units.
    for now in [0, 5, 11, 22] {
        assert_ne!(
            table.fault(lone(), now),
            FaultOutcome::Quarantined { owner: ALICE }
        );
        table.take_events(ALICE, lone()).expect("drain");
    }
    assert_eq!(
        table.fault(lone(), 27),
        FaultOutcome::Reported { owner: ALICE }
    );
    // 22, 27, 32: the third within 10 of the first.
    assert_eq!(
        table.fault(lone(), 32),
        FaultOutcome::Quarantined { owner: ALICE }
    );
    assert_eq!(
        state(&table, lone()),
        DeviceState::Quarantined { owner: Some(ALICE) }
    );
    assert_eq!(table.address_space(SPACE_A).map(|s| s.attached), Some(0));
    // The owner still holds it: it learns why and must release it.
    let batch = table.take_events(ALICE, lone()).expect("take");
    assert_eq!(
        batch.events,
        [DeviceEvent::Fault { at: 27 }, DeviceEvent::Fault { at: 32 }]
    );
    assert_eq!(batch.lost, 1, "the quarantine notice did not fit");
    assert_eq!(table.fault(lone(), 33), FaultOutcome::Stray);
    let owned = GroupState::Owned {
        owner: ALICE,
        devices: 1,
    };
    assert_eq!(group(&table, SINGLE), owned);
    table.release(ALICE, lone()).expect("release");
    assert_eq!(group(&table, SINGLE), GroupState::Blocked { unsettled: 1 });
}

#[test]
fn ownership_quarantine_notice_is_queued_when_there_is_room() {
    let mut table = OwnershipTable::new(policy(1, 0, 4));
    table.register(lone(), SINGLE).expect("register");
    bound(&mut table, BOB, lone());
    assert_eq!(
        table.fault(lone(), 7),
        FaultOutcome::Quarantined { owner: BOB }
    );
    let batch = table.take_events(BOB, lone()).expect("take");
    assert_eq!(
        batch.events,
        [
            DeviceEvent::Fault { at: 7 },
            DeviceEvent::Quarantined { at: 7 }
        ]
    );
}

#[test]
fn ownership_events_do_not_outlive_the_session() {
    let mut table = table();
    bound(&mut table, ALICE, lone());
    table.fault(lone(), 0);
    table.fault(lone(), 1);
    table.fault(lone(), 50);
    table.release(ALICE, lone()).expect("release");
    table
        .release_finished(lone(), ResetOutcome::Passed)
        .expect("finished");
    bound(&mut table, BOB, lone());
    let view = table.device(lone()).expect("device");
    assert_eq!((view.queued_events, view.lost_events), (0, 0));
    // The old fault window is gone too: two new faults do not reach the threshold.
    table.fault(lone(), 51);
    assert_eq!(
        table.fault(lone(), 52),
        FaultOutcome::Reported { owner: BOB }
    );
}
