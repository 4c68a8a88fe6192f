//! DMA faults: attributed to the device's holder, queued for it in a bounded per-device queue
//! (overflow counted), and past the policy threshold the device is quarantined.

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::num::{NonZeroU32, NonZeroUsize};

use super::{DeviceState, OwnerId, OwnershipError, OwnershipTable};
use crate::Bdf;

/// When a held device is quarantined, and how many events wait for its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultPolicy {
    threshold: NonZeroU32,
    window: u64,
    queue_capacity: NonZeroUsize,
}

impl FaultPolicy {
    /// Quarantine a bound or attached device at its `threshold`-th fault within `window`
    /// time units (a fault at `t` counts at `now` while `now - t <= window`); keep at most
    /// `queue_capacity` events per device for its owner.
    pub const fn new(threshold: NonZeroU32, window: u64, queue_capacity: NonZeroUsize) -> Self {
        Self {
            threshold,
            window,
            queue_capacity,
        }
    }

    /// Faults within the window that quarantine the device.
    pub const fn threshold(self) -> NonZeroU32 {
        self.threshold
    }

    /// The window, in the caller's time units.
    pub const fn window(self) -> u64 {
        self.window
    }

    /// Events kept per device.
    pub const fn queue_capacity(self) -> NonZeroUsize {
        self.queue_capacity
    }
}

/// Something that happened to a held device, for its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceEvent {
    /// A DMA fault at time `at`.
    Fault {
        /// When the fault was reported.
        at: u64,
    },
    /// The device was quarantined at time `at`; the owner should release it.
    Quarantined {
        /// When.
        at: u64,
    },
}

/// The events an owner took from one device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventBatch {
    /// Queued events, oldest first.
    pub events: Vec<DeviceEvent>,
    /// Events that did not fit in the queue since the last take.
    pub lost: u64,
}

/// What the table did with a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOutcome {
    /// Queued for `owner`.
    Reported {
        /// The device's holder.
        owner: OwnerId,
    },
    /// `owner`'s queue was full; the event was counted as lost.
    Overflowed {
        /// The device's holder.
        owner: OwnerId,
    },
    /// The policy threshold was reached: the device is now quarantined and the kernel must
    /// turn its bus mastering off and block it. `owner` still holds it and must release it.
    Quarantined {
        /// The device's holder.
        owner: OwnerId,
    },
    /// Nobody held the device (not bound or attached): counted as stray.
    Stray,
    /// No device is registered at that address: counted in
    /// [`unknown_faults`](OwnershipTable::unknown_faults).
    UnknownDevice,
}

/// A device's fault history and its owner's event queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct FaultLog {
    /// Times of the faults in the current window, at most `threshold` of them.
    recent: VecDeque<u64>,
    queue: VecDeque<DeviceEvent>,
    lost: u64,
    owned: u64,
    stray: u64,
}

impl FaultLog {
    pub(super) fn queued(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn lost(&self) -> u64 {
        self.lost
    }

    pub(super) fn owned(&self) -> u64 {
        self.owned
    }

    pub(super) fn stray(&self) -> u64 {
        self.stray
    }

    /// Forgets the holder's session: its queue, lost count and fault window.
    pub(super) fn end_session(&mut self) {
        self.recent.clear();
        self.queue.clear();
        self.lost = 0;
    }

    /// Queues `event`, or counts it lost if the queue is full. Returns whether it was queued.
    fn push(&mut self, event: DeviceEvent, policy: FaultPolicy) -> bool {
        if self.queue.len() < policy.queue_capacity.get() {
            self.queue.push_back(event);
            true
        } else {
            self.lost = self.lost.saturating_add(1);
            false
        }
    }

    /// Records a fault at `now`; returns whether the window now holds `threshold` faults.
    fn note(&mut self, now: u64, policy: FaultPolicy) -> bool {
        self.recent
            .retain(|&at| now.saturating_sub(at) <= policy.window);
        self.recent.push_back(now);
        self.recent.len() >= policy.threshold.get() as usize
    }
}

impl OwnershipTable {
    /// Attributes a DMA fault from `bdf` at time `now` (any monotonic unit the policy's
    /// window is in). Never fails: every fault is queued, counted lost, or counted stray.
    pub fn fault(&mut self, bdf: Bdf, now: u64) -> FaultOutcome {
        let policy = self.policy;
        let Some(device) = self.devices.get_mut(&bdf) else {
            self.unknown_faults = self.unknown_faults.saturating_add(1);
            return FaultOutcome::UnknownDevice;
        };
        let owner = match device.state {
            DeviceState::Bound { owner } | DeviceState::Attached { owner, .. } => owner,
            _ => {
                device.faults.stray = device.faults.stray.saturating_add(1);
                return FaultOutcome::Stray;
            }
        };
        let log = &mut device.faults;
        log.owned = log.owned.saturating_add(1);
        let queued = log.push(DeviceEvent::Fault { at: now }, policy);
        if log.note(now, policy) {
            log.recent.clear();
            log.push(DeviceEvent::Quarantined { at: now }, policy);
            device.state = DeviceState::Quarantined { owner: Some(owner) };
            return FaultOutcome::Quarantined { owner };
        }
        if queued {
            FaultOutcome::Reported { owner }
        } else {
            FaultOutcome::Overflowed { owner }
        }
    }

    /// Takes the events queued for `owner` on the device it holds (bound, attached, or
    /// quarantined and not yet released), with the count of events lost since the last take.
    pub fn take_events(&mut self, owner: OwnerId, bdf: Bdf) -> Result<EventBatch, OwnershipError> {
        let device = self
            .devices
            .get_mut(&bdf)
            .ok_or(OwnershipError::NoSuchDevice)?;
        match device.state.owner() {
            Some(holder) if holder != owner => return Err(OwnershipError::WrongOwner),
            Some(_) if !matches!(device.state, DeviceState::Releasing { .. }) => {}
            _ => {
                return Err(OwnershipError::WrongState {
                    found: device.state,
                });
            }
        }
        let log = &mut device.faults;
        let batch = EventBatch {
            events: log.queue.drain(..).collect(),
            lost: log.lost,
        };
        log.lost = 0;
        Ok(batch)
    }
}
