//! The calls a run makes and how they are drawn.
//!
//! Half the calls are aimed: before running, [`Op::aim`] points them at a device (and owner,
//! and address space) for which they can make progress — bind a parked device, attach a bound
//! one to a space of its holder, fault a held one — so that deep states (several devices of a
//! group held, attached groups, quarantine, queue overflow) come up often. The other half
//! keep their random targets, which mostly exercises refusals.

use moat_iommu::ownership::{DeviceState, ResetOutcome};
use proptest::prelude::*;

use super::model::{Device, Model, holder};

/// Device index that names an address nobody registered.
pub(crate) const UNREGISTERED: usize = 9;

/// One call. Devices are indices (modulo the device count; [`UNREGISTERED`] names none),
/// owners are 1..=3, address spaces 1..=4.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    Open(usize),
    Close(usize),
    Bind(u32, usize),
    Attach(u32, usize, u32),
    Detach(u32, usize),
    Release(u32, usize),
    Finish(usize, ResetOutcome),
    Clear(usize),
    Remove(usize),
    KernelClaim(usize),
    KernelRelease(usize),
    CreateSpace(u32, u32),
    DestroySpace(u32, u32),
    Map(u32, u32),
    Unmap(u32, u32),
    /// A fault after `delta` time units.
    Fault(usize, u64),
    TakeEvents(u32, usize),
}

/// How often each call is drawn, in the order [`op`] decodes them: open, close, bind,
/// attach, detach, release, reset finished, clear quarantine, remove, kernel claim, kernel
/// release, create space, destroy space, map, unmap, fault, take events.
const WEIGHTS: [u32; 17] = [4, 1, 6, 5, 1, 2, 3, 1, 1, 1, 2, 3, 1, 2, 1, 4, 1];

/// A call and whether to aim it. The strategy is one flat tuple of numbers decoded here:
/// nested `prop_oneof!` strategies generate several times slower in a debug build, and the
/// test runs 10,000 cases.
pub(crate) fn op() -> impl Strategy<Value = (Op, bool)> {
    let total: u32 = WEIGHTS.iter().sum();
    let numbers = (0..total, 0usize..=UNREGISTERED, 1u32..=3, 1u32..=4, 0u64..6);
    (numbers, 0u8..4, any::<bool>()).prop_map(|((pick, d, o, s, delta), reset, aim)| {
        let mut left = pick;
        let kind = WEIGHTS
            .iter()
            .position(|&weight| {
                let here = left < weight;
                left = left.saturating_sub(weight);
                here
            })
            .unwrap_or(0);
        let reset = if reset == 0 {
            ResetOutcome::Failed
        } else {
            ResetOutcome::Passed
        };
        let op = match kind {
            0 => Op::Open(d),
            1 => Op::Close(d),
            2 => Op::Bind(o, d),
            3 => Op::Attach(o, d, s),
            4 => Op::Detach(o, d),
            5 => Op::Release(o, d),
            6 => Op::Finish(d, reset),
            7 => Op::Clear(d),
            8 => Op::Remove(d),
            9 => Op::KernelClaim(d),
            10 => Op::KernelRelease(d),
            11 => Op::CreateSpace(o, s),
            12 => Op::DestroySpace(o, s),
            13 => Op::Map(o, s),
            14 => Op::Unmap(o, s),
            15 => Op::Fault(d, delta),
            _ => Op::TakeEvents(o, d),
        };
        (op, aim)
    })
}

impl Op {
    /// The device index the call names, if any.
    pub(crate) fn device(self) -> Option<usize> {
        match self {
            Op::Open(d)
            | Op::Close(d)
            | Op::Bind(_, d)
            | Op::Attach(_, d, _)
            | Op::Detach(_, d)
            | Op::Release(_, d)
            | Op::Finish(d, _)
            | Op::Clear(d)
            | Op::Remove(d)
            | Op::KernelClaim(d)
            | Op::KernelRelease(d)
            | Op::Fault(d, _)
            | Op::TakeEvents(_, d) => Some(d),
            Op::CreateSpace(..) | Op::DestroySpace(..) | Op::Map(..) | Op::Unmap(..) => None,
        }
    }

    /// The same call pointed at something it can make progress on in `model`, if there is
    /// such a thing; the drawn device number picks among the candidates.
    pub(crate) fn aim(self, model: &Model) -> Op {
        let pick = |d: usize, wanted: fn(&Device) -> bool| {
            let found: Vec<usize> = (0..model.devices.len())
                .filter(|&i| wanted(&model.devices[i]))
                .collect();
            (!found.is_empty()).then(|| found[d % found.len()])
        };
        let holder_of = |i: usize| holder(model.devices[i].state).map_or(1, |o| o.get());
        fn held(d: &Device) -> bool {
            matches!(
                d.state,
                DeviceState::Bound { .. } | DeviceState::Attached { .. }
            )
        }
        let aimed = match self {
            Op::Open(d) => pick(d, |d| d.state == DeviceState::Registered).map(Op::Open),
            Op::Close(d) => pick(d, |d| d.state == DeviceState::Parked).map(Op::Close),
            Op::Bind(o, d) => pick(d, |d| d.state == DeviceState::Parked).map(|i| {
                // Mostly the owner already in the group, to grow owner_cnt past 1.
                let group = model.devices[i].group;
                let inside = model.devices.iter().filter(|m| m.group == group);
                let current = inside.filter_map(|m| holder(m.state)).next();
                Op::Bind(current.map_or(o, |c| if o == 3 { o } else { c.get() }), i)
            }),
            Op::Attach(_, d, s) => {
                // Half the time a device whose group is attached already, when there is one.
                let beside_attached = |i: usize| {
                    let group = model.devices[i].group;
                    let siblings = model.devices.iter().filter(|m| m.group == group);
                    siblings
                        .clone()
                        .any(|m| matches!(m.state, DeviceState::Attached { .. }))
                };
                let bound: Vec<usize> = (0..model.devices.len())
                    .filter(|&i| matches!(model.devices[i].state, DeviceState::Bound { .. }))
                    .collect();
                let crowded: Vec<usize> = bound
                    .iter()
                    .copied()
                    .filter(|&i| beside_attached(i))
                    .collect();
                let found = if s % 2 == 0 && !crowded.is_empty() {
                    crowded
                } else {
                    bound
                };
                (!found.is_empty())
                    .then(|| found[d % found.len()])
                    .map(|i| {
                        let owner = holder_of(i);
                        let own = model.spaces.iter().filter(|(_, (o, _))| o.get() == owner);
                        let spaces: Vec<u32> = own.map(|(space, _)| space.get()).collect();
                        let space = if spaces.is_empty() {
                            s
                        } else {
                            spaces[(s as usize / 2) % spaces.len()]
                        };
                        Op::Attach(owner, i, space)
                    })
            }
            Op::Detach(_, d) => pick(d, |d| matches!(d.state, DeviceState::Attached { .. }))
                .map(|i| Op::Detach(holder_of(i), i)),
            Op::Release(_, d) => pick(d, |d| {
                held(d) || matches!(d.state, DeviceState::Quarantined { owner: Some(_) })
            })
            .map(|i| Op::Release(holder_of(i), i)),
            Op::Finish(d, r) => pick(d, |d| matches!(d.state, DeviceState::Releasing { .. }))
                .map(|i| Op::Finish(i, r)),
            Op::Clear(d) => {
                pick(d, |d| d.state == DeviceState::Quarantined { owner: None }).map(Op::Clear)
            }
            Op::KernelRelease(d) => pick(d, |d| d.kernel_users > 0).map(Op::KernelRelease),
            Op::Fault(d, delta) => pick(d, held).map(|i| Op::Fault(i, delta)),
            Op::TakeEvents(_, d) => {
                pick(d, |d| holder(d.state).is_some()).map(|i| Op::TakeEvents(holder_of(i), i))
            }
            Op::DestroySpace(_, s) | Op::Map(_, s) | Op::Unmap(_, s) => {
                let owner = model
                    .spaces
                    .iter()
                    .find(|(space, _)| space.get() == s)
                    .map(|(_, (o, _))| o.get());
                owner.map(|o| match self {
                    Op::DestroySpace(..) => Op::DestroySpace(o, s),
                    Op::Map(..) => Op::Map(o, s),
                    _ => Op::Unmap(o, s),
                })
            }
            Op::CreateSpace(_, s) => {
                // A free id, for a holder with fewer than two spaces (two, so that devices of
                // one group can be sent to different spaces).
                let spaces_of = |o: u32| {
                    model
                        .spaces
                        .values()
                        .filter(|(owner, _)| owner.get() == o)
                        .count()
                };
                let free = (0..4)
                    .map(|k| (s + k - 1) % 4 + 1)
                    .find(|&id| !model.spaces.keys().any(|space| space.get() == id));
                let holders = model.devices.iter().filter_map(|d| holder(d.state));
                let needy = holders.map(|o| o.get()).find(|&o| spaces_of(o) < 2);
                free.zip(needy).map(|(id, o)| Op::CreateSpace(o, id))
            }
            Op::Remove(_) | Op::KernelClaim(_) => None,
        };
        aimed.unwrap_or(self)
    }
}
