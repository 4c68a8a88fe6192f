//! Property test: random sequences of open, close, bind, attach, map/unmap, detach, release,
//! reset completion (passed or failed), quarantine clearing, removal, faults, event taking
//! and kernel DMA-API claims, by three owners over one to three groups of one to three
//! devices, run against the ownership table and an independent model side by side.
//!
//! After every step: the table's answer equals the model's (the same error, for a refusal);
//! a refused step left the table equal to its clone from before the step; a release by the
//! holder succeeded; every device, group and address space reads as the model says; and the
//! invariants of `ownership_support::invariants` hold. At the end everything is released and
//! every group must be free again.

mod ownership_support;

use core::num::{NonZeroU32, NonZeroUsize};

use moat_iommu::Bdf;
use moat_iommu::ownership::{
    AddressSpaceId, DeviceState, DeviceView, EventBatch, FaultOutcome, FaultPolicy, GroupId,
    GroupState, OwnerId, OwnershipError, OwnershipTable, ResetOutcome,
};
use ownership_support::model::{Model, holder};
use ownership_support::ops::{Op, UNREGISTERED, op};
use ownership_support::{CAPACITY, THRESHOLD, WINDOW, invariants};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const SPACES: [u32; 4] = [1, 2, 3, 4];

/// What a call answered.
#[derive(Clone, Debug, PartialEq)]
enum Answer {
    Step(Result<(), OwnershipError>),
    Fault(FaultOutcome),
    Events(Result<EventBatch, OwnershipError>),
}

fn policy() -> FaultPolicy {
    FaultPolicy::new(
        NonZeroU32::new(THRESHOLD).expect("threshold"),
        WINDOW,
        NonZeroUsize::new(CAPACITY).expect("capacity"),
    )
}

/// Group `g` (1-based) holds functions 0.. of device 0 on bus `g`.
fn setup(sizes: &[usize]) -> (OwnershipTable, Model) {
    let mut table = OwnershipTable::new(policy());
    let mut model = Model::default();
    for (g, &size) in sizes.iter().enumerate() {
        let group = GroupId::new(g as u32 + 1);
        for function in 0..size {
            let bdf = Bdf::new(0, g as u8 + 1, 0, function as u8).expect("address");
            table.register(bdf, group).expect("register");
            model.add(bdf, group);
        }
    }
    (table, model)
}

/// Runs one call on the table and the model and checks: the same answer; a refusal changed
/// nothing; a release by the holder (of a device, a reset, a kernel use) succeeded.
/// Returns the address the call named.
fn step(
    table: &mut OwnershipTable,
    model: &mut Model,
    op: Op,
    now: &mut u64,
) -> Result<Option<Bdf>, TestCaseError> {
    let count = model.devices.len();
    let index = op
        .device()
        .and_then(|d| (d != UNREGISTERED).then_some(d % count));
    let nobody = Bdf::new(0xff, 0xff, 31, 7).expect("address");
    let bdf = index.map_or(nobody, |i| model.devices[i].bdf);
    let found = index.map(|i| (model.devices[i].state, model.devices[i].kernel_users));
    let owner = OwnerId::new;
    let space = AddressSpaceId::new;

    macro_rules! on_device {
        (|$i:ident| $table:expr, $model:expr) => {{
            let got = $table;
            let expected = match index {
                Some($i) => $model,
                None => Err(OwnershipError::NoSuchDevice),
            };
            (Answer::Step(got), Answer::Step(expected))
        }};
    }

    let must_succeed = match (op, found) {
        (Op::Release(releaser, _), Some((state, _))) => matches!(
            state,
            DeviceState::Bound { owner: o } | DeviceState::Attached { owner: o, .. }
                | DeviceState::Quarantined { owner: Some(o) } if o == owner(releaser)
        ),
        (Op::Finish(..), Some((state, _))) => matches!(state, DeviceState::Releasing { .. }),
        (Op::KernelRelease(_), Some((_, users))) => users > 0,
        _ => false,
    };

    let before = table.clone();
    let (got, expected) = match op {
        Op::Open(_) => on_device!(|i| table.open(bdf), model.open(i)),
        Op::Close(_) => on_device!(|i| table.close(bdf), model.close(i)),
        Op::Bind(o, _) => on_device!(|i| table.bind(owner(o), bdf), model.bind(owner(o), i)),
        Op::Attach(o, _, s) => on_device!(
            |i| table.attach(owner(o), bdf, space(s)),
            model.attach(owner(o), i, space(s))
        ),
        Op::Detach(o, _) => on_device!(|i| table.detach(owner(o), bdf), model.detach(owner(o), i)),
        Op::Release(o, _) => {
            on_device!(|i| table.release(owner(o), bdf), model.release(owner(o), i))
        }
        Op::Finish(_, outcome) => on_device!(
            |i| table.release_finished(bdf, outcome),
            model.release_finished(i, outcome)
        ),
        Op::Clear(_) => on_device!(|i| table.clear_quarantine(bdf), model.clear_quarantine(i)),
        Op::Remove(_) => on_device!(|i| table.remove(bdf), model.remove(i)),
        Op::KernelClaim(_) => {
            on_device!(|i| table.claim_kernel_dma(bdf), model.claim_kernel_dma(i))
        }
        Op::KernelRelease(_) => {
            on_device!(
                |i| table.release_kernel_dma(bdf),
                model.release_kernel_dma(i)
            )
        }
        Op::CreateSpace(o, s) => (
            Answer::Step(table.create_address_space(space(s), owner(o))),
            Answer::Step(model.create_space(space(s), owner(o))),
        ),
        Op::DestroySpace(o, s) => (
            Answer::Step(table.destroy_address_space(owner(o), space(s))),
            Answer::Step(model.destroy_space(owner(o), space(s))),
        ),
        Op::Map(o, s) => (
            Answer::Step(table.map(owner(o), space(s))),
            Answer::Step(model.map(owner(o), space(s))),
        ),
        Op::Unmap(o, s) => (
            Answer::Step(table.unmap(owner(o), space(s))),
            Answer::Step(model.unmap(owner(o), space(s))),
        ),
        Op::Fault(_, delta) => {
            *now += delta;
            (
                Answer::Fault(table.fault(bdf, *now)),
                Answer::Fault(model.fault(index, *now)),
            )
        }
        Op::TakeEvents(o, _) => {
            let got = table.take_events(owner(o), bdf);
            let expected = match index {
                Some(i) => model.take_events(owner(o), i),
                None => Err(OwnershipError::NoSuchDevice),
            };
            (Answer::Events(got), Answer::Events(expected))
        }
    };
    prop_assert_eq!(&got, &expected, "{:?} on {}", op, bdf);
    if matches!(got, Answer::Step(Err(_)) | Answer::Events(Err(_))) {
        prop_assert_eq!(&*table, &before, "refused {:?} changed the table", op);
    }
    if must_succeed {
        prop_assert_eq!(got, Answer::Step(Ok(())), "a release failed: {:?}", op);
    }
    Ok(index.map(|_| bdf))
}

/// Every device, group and address space reads as the model says.
fn compare(table: &OwnershipTable, model: &Model) -> Result<(), TestCaseError> {
    let devices: Vec<DeviceView> = table.devices().collect();
    let mut expected: Vec<DeviceView> = (0..model.devices.len()).map(|i| model.view(i)).collect();
    expected.sort_by_key(|view| view.bdf);
    prop_assert_eq!(devices, expected);
    for device in &model.devices {
        prop_assert_eq!(
            table.group_state(device.group),
            Some(model.group_state(device.group))
        );
    }
    for s in SPACES {
        let space = AddressSpaceId::new(s);
        prop_assert_eq!(
            table.address_space(space),
            model.space(space),
            "space {}",
            s
        );
    }
    prop_assert_eq!(table.unknown_faults(), model.unknown_faults);
    Ok(())
}

/// Lets go of everything as the kernel would on shutdown; nothing may refuse, and every
/// group must end free (blocked, nothing unsettled) and claimable.
fn teardown(table: &mut OwnershipTable, model: &Model) -> Result<(), TestCaseError> {
    let addresses: Vec<Bdf> = model.devices.iter().map(|d| d.bdf).collect();
    for &bdf in &addresses {
        let view = table.device(bdf).expect("registered");
        match view.state {
            DeviceState::Parked => table.close(bdf)?,
            state => {
                if let Some(owner) = holder(state)
                    && !matches!(state, DeviceState::Releasing { .. })
                {
                    table.release(owner, bdf)?;
                }
            }
        }
        for _ in 0..view.kernel_users {
            table.release_kernel_dma(bdf)?;
        }
        if table.device(bdf).map(|d| d.state) == Some(DeviceState::Quarantined { owner: None }) {
            table.clear_quarantine(bdf)?;
        }
        if let Some(DeviceState::Releasing { .. }) = table.device(bdf).map(|d| d.state) {
            table.release_finished(bdf, ResetOutcome::Passed)?;
        }
        let state = table.device(bdf).map(|d| d.state);
        prop_assert!(
            matches!(state, Some(DeviceState::Registered | DeviceState::Removed)),
            "{} left {:?}",
            bdf,
            state
        );
    }
    for (group, state) in table.groups().collect::<Vec<_>>() {
        prop_assert_eq!(
            state,
            GroupState::Blocked { unsettled: 0 },
            "group {}",
            group
        );
    }
    for s in SPACES {
        if let Some(view) = table.address_space(AddressSpaceId::new(s)) {
            table.destroy_address_space(view.owner, AddressSpaceId::new(s))?;
        }
    }
    let newcomer = OwnerId::new(7);
    for &bdf in &addresses {
        if table.device(bdf).map(|d| d.state) == Some(DeviceState::Registered) {
            table.open(bdf)?;
            table.bind(newcomer, bdf)?;
        }
    }
    Ok(())
}

fn run(sizes: &[usize], ops: &[(Op, bool)]) -> Result<(), TestCaseError> {
    let (mut table, mut model) = setup(sizes);
    let spaces: Vec<AddressSpaceId> = SPACES.iter().map(|&s| AddressSpaceId::new(s)).collect();
    let mut now = 0;
    for &(op, aim) in ops {
        let op = if aim { op.aim(&model) } else { op };
        let previous: Vec<DeviceView> = table.devices().collect();
        let target = step(&mut table, &mut model, op, &mut now)?;
        compare(&table, &model)?;
        invariants::check(&table, &previous, target, &spaces)?;
    }
    teardown(&mut table, &model)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn ownership_table_matches_the_model(sizes in vec(1usize..=3, 1..=3), ops in vec(op(), 1..40)) {
        run(&sizes, &ops)?;
    }
}
