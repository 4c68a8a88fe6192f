//! The states a device and a group can be in, and the read-only views the table hands out.

use core::fmt;

use super::{AddressSpaceId, GroupId, OwnerId};
use crate::Bdf;

/// Where a device is in its life.
///
/// The owner captured at bind and the address space captured at attach are part of the
/// state, so nothing can change them behind the holder's back: they change only by the
/// transitions that end them (detach, release, quarantine).
///
/// ```text
///   Registered --open--> Parked --bind--> Bound --attach--> Attached
///      ^   ^   <--close--             ^        <--detach--    |
///      |   |                          +---------release-------+
///      |   |                                      v
///      |   +---------reset passed------------ Releasing <--clear-- Quarantined (no owner)
///      |                                          +------reset failed------^
///   Bound/Attached --faults past the policy--> Quarantined (owner) --release--^
///   Registered, Quarantined (no owner) --remove--> Removed
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceState {
    /// Known, no handle open, blocked unless the kernel's DMA API uses it.
    Registered,
    /// One parked handle is open; it can only bind or close.
    Parked,
    /// Held by `owner`, counted in its claim on the group, not attached.
    Bound {
        /// The holder, fixed until release.
        owner: OwnerId,
    },
    /// Held by `owner` and attached to `space`.
    Attached {
        /// The holder, fixed until release.
        owner: OwnerId,
        /// The address space, fixed until detach or release.
        space: AddressSpaceId,
    },
    /// Bus mastering off, blocking domain, reset under way. A released device still counts in
    /// `owner`'s claim on the group until the reset is checked, so nobody else can take the
    /// group meanwhile; `owner` is `None` when a quarantine is being cleared.
    Releasing {
        /// The owner whose claim ends when the reset is checked.
        owner: Option<OwnerId>,
    },
    /// Bus mastering off, blocking domain, after too many faults or a failed reset. Nobody
    /// can open it until [`clear_quarantine`](super::OwnershipTable::clear_quarantine)
    /// resets it, and while it is here its group takes no new owner and no kernel user.
    /// `owner` is the holder that still has to release it (`None` once released, or after
    /// a failed reset).
    Quarantined {
        /// The owner still holding the dead device, if any.
        owner: Option<OwnerId>,
    },
    /// Gone from the bus. Final: the record stays for the report.
    Removed,
}

impl DeviceState {
    /// The owner this state ties the device to: it counts in that owner's claim on the group.
    pub const fn owner(self) -> Option<OwnerId> {
        match self {
            Self::Bound { owner } | Self::Attached { owner, .. } => Some(owner),
            Self::Releasing { owner } | Self::Quarantined { owner } => owner,
            Self::Registered | Self::Parked | Self::Removed => None,
        }
    }

    /// The address space the device is attached to.
    pub const fn address_space(self) -> Option<AddressSpaceId> {
        match self {
            Self::Attached { space, .. } => Some(space),
            _ => None,
        }
    }

    /// Whether the device keeps its group from taking a new owner or kernel user: a reset
    /// still to be checked, or a quarantine not yet cleared.
    pub const fn is_unsettled(self) -> bool {
        matches!(self, Self::Releasing { .. } | Self::Quarantined { .. })
    }

    /// One lowercase word for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Parked => "parked",
            Self::Bound { .. } => "bound",
            Self::Attached { .. } => "attached",
            Self::Releasing { .. } => "releasing",
            Self::Quarantined { .. } => "quarantined",
            Self::Removed => "removed",
        }
    }
}

impl fmt::Display for DeviceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who may use a group's DMA, derived from its devices: the table stores only the owner and
/// its device count (Linux's `owner_cnt`) and each device's kernel-user count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    /// No owner; the kernel's DMA API uses `users` times some device of the group.
    Kernel {
        /// Kernel DMA-API uses, summed over the group's devices.
        users: u32,
    },
    /// No owner and no kernel user: every device is blocked. `unsettled` devices (releasing
    /// or quarantined) keep it that way: until it is 0, claims fail with `Busy`.
    Blocked {
        /// Devices whose reset is unchecked or whose quarantine is not cleared.
        unsettled: u32,
    },
    /// Claimed by `owner`, who holds `devices` of the group (bound, attached, releasing or
    /// quarantined before release).
    Owned {
        /// The one owner.
        owner: OwnerId,
        /// How many devices of the group it holds (`owner_cnt`), at least 1.
        devices: u32,
    },
}

impl fmt::Display for GroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kernel { users } => write!(f, "kernel users={users}"),
            Self::Blocked { unsettled } => write!(f, "blocked unsettled={unsettled}"),
            Self::Owned { owner, devices } => write!(f, "owned owner={owner} devices={devices}"),
        }
    }
}

/// What the reset at the end of a release showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetOutcome {
    /// The device was reset and the reset checked: it may go to a new owner.
    Passed,
    /// The reset failed or could not be checked: the device is quarantined for good.
    Failed,
}

/// A device's record, copied out of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceView {
    /// Its address.
    pub bdf: Bdf,
    /// Its group, fixed at registration.
    pub group: GroupId,
    /// Its state.
    pub state: DeviceState,
    /// Kernel DMA-API uses of this device.
    pub kernel_users: u32,
    /// Events waiting for the owner.
    pub queued_events: usize,
    /// Events that did not fit in the queue since the owner last took them.
    pub lost_events: u64,
    /// Faults while bound or attached, over the device's life.
    pub owned_faults: u64,
    /// Faults while nobody held it (counted, reported to nobody), over its life.
    pub stray_faults: u64,
}

/// An address space's record, copied out of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpaceView {
    /// The owner that created it; only its devices attach to it.
    pub owner: OwnerId,
    /// Mappings it carries (they survive detach and re-attach).
    pub mappings: u64,
    /// Devices attached to it.
    pub attached: usize,
}
