//! Why the ownership table refused a transition. A refusal changes nothing.

use core::fmt;

use super::{AddressSpaceId, DeviceState};

/// Why an [`OwnershipTable`](super::OwnershipTable) operation was refused. Every refusal
/// leaves the table exactly as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnershipError {
    /// No device is registered at that address.
    NoSuchDevice,
    /// A device is already registered at that address (removed devices keep their address).
    AlreadyRegistered,
    /// Someone else holds what was asked for: the device is already open, bound, being
    /// released or used by the kernel, or its group is claimed by another owner, has kernel
    /// DMA-API users, or has a device whose release or quarantine is not settled.
    Busy,
    /// The device has no parked handle: open it before binding or closing it.
    NotOpen,
    /// The device is not in a state that allows the operation.
    WrongState {
        /// The state it is in.
        found: DeviceState,
    },
    /// The device or address space is held by another owner.
    WrongOwner,
    /// No address space has that id.
    NoSuchAddressSpace,
    /// An address space with that id exists already.
    AddressSpaceExists,
    /// Another device of the group is attached to a different address space; a group has one
    /// address space at a time, because its devices can reach each other's DMA anyway.
    GroupAttachedElsewhere {
        /// The address space the group uses.
        space: AddressSpaceId,
    },
    /// The kernel released a DMA-API use of the device that it had not claimed.
    NotClaimed,
    /// The address space has no mapping to unmap.
    NotMapped,
    /// A use or mapping counter would overflow.
    CountOverflow,
}

impl fmt::Display for OwnershipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchDevice => f.write_str("no such device"),
            Self::AlreadyRegistered => f.write_str("device already registered"),
            Self::Busy => f.write_str("device or group busy"),
            Self::NotOpen => f.write_str("device not open"),
            Self::WrongState { found } => write!(f, "device is {found}"),
            Self::WrongOwner => f.write_str("held by another owner"),
            Self::NoSuchAddressSpace => f.write_str("no such address space"),
            Self::AddressSpaceExists => f.write_str("address space exists"),
            Self::GroupAttachedElsewhere { space } => {
                write!(f, "group is attached to address space {space}")
            }
            Self::NotClaimed => f.write_str("no kernel DMA-API use to release"),
            Self::NotMapped => f.write_str("nothing mapped"),
            Self::CountOverflow => f.write_str("counter overflow"),
        }
    }
}

impl core::error::Error for OwnershipError {}
