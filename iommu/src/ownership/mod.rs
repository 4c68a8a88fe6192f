//! DMA ownership and the device lifecycle, as pure logic: which party may use each IOMMU
//! group's DMA (the kernel's DMA API, nobody, or exactly one owner), and where each device is
//! between registration and removal. The kernel keeps one [`OwnershipTable`] behind one lock
//! as its device registry and does the hardware work each transition calls for.
//!
//! The rules, after Linux VFIO/iommufd (DESIGN.md, "What the seeds teach"):
//!
//! - A device is opened parked (one handle at a time), then bound, which claims its group's
//!   DMA for the owner; the claim fails with `Busy` if another owner or the kernel's DMA API
//!   uses the group. The group's count is per device (`owner_cnt`), not nesting: the same
//!   owner may bind more devices of its group.
//! - Claims and their release go through one function each (`claim`, `release_claim` in
//!   `table.rs`), for owners and kernel DMA-API users alike; releasing never fails.
//! - The owner captured at bind and the address space captured at attach are part of the
//!   device's state and stay fixed until detach or release.
//! - Release passes through `Releasing`: the device keeps counting in its owner's claim
//!   until the kernel reports its reset checked, so a group only changes hands through the
//!   blocked state. A failed reset quarantines the device. Splitting release from
//!   [`OwnershipTable::release_finished`] lets the kernel run the reset from deferred work,
//!   off the registry lock (seeds/002: the final put does not run on the locked path).
//! - Faults on a held device go to its owner through a bounded queue (overflow counted);
//!   faults on other devices are counted as stray. Past the policy threshold the device is
//!   quarantined: its owner keeps the dead device until it releases it, and the device
//!   stays quarantined — nobody can open it, and its group takes no new owner or kernel user
//!   (a device left unreset could leak its last owner's data to a group sibling) — until
//!   [`OwnershipTable::clear_quarantine`] resets it or it is removed.
//!
//! ```
//! use core::num::{NonZeroU32, NonZeroUsize};
//! use moat_iommu::Bdf;
//! use moat_iommu::ownership::*;
//!
//! let policy = FaultPolicy::new(NonZeroU32::new(8).unwrap(), 1000, NonZeroUsize::new(16).unwrap());
//! let mut table = OwnershipTable::new(policy);
//! let edu: Bdf = "0000:00:04.0".parse().unwrap();
//! let (alice, bob) = (OwnerId::new(1), OwnerId::new(2));
//! table.register(edu, GroupId::new(3))?;
//!
//! table.open(edu)?;
//! table.bind(alice, edu)?;
//! table.create_address_space(AddressSpaceId::new(1), alice)?;
//! table.attach(alice, edu, AddressSpaceId::new(1))?;
//! assert_eq!(table.claim_kernel_dma(edu), Err(OwnershipError::Busy));
//!
//! table.release(alice, edu)?; // bus master off, blocking domain, reset...
//! assert_eq!(table.group_state(GroupId::new(3)), Some(GroupState::Owned { owner: alice, devices: 1 }));
//! table.release_finished(edu, ResetOutcome::Passed)?;
//! assert_eq!(table.group_state(GroupId::new(3)), Some(GroupState::Blocked { unsettled: 0 }));
//!
//! table.open(edu)?;
//! table.bind(bob, edu)?;
//! assert_eq!(table.to_string(), "0000:00:04.0 group=3 state=bound owner=2 space=- \
//!     kernel-users=0 faults=0 stray=0 queued=0 lost=0\n");
//! # Ok::<(), OwnershipError>(())
//! ```
#![forbid(unsafe_code)]

mod error;
mod fault;
mod ids;
mod lifecycle;
mod listing;
mod space;
mod state;
mod table;

#[cfg(test)]
mod tests;

pub use error::OwnershipError;
pub use fault::{DeviceEvent, EventBatch, FaultOutcome, FaultPolicy};
pub use ids::{AddressSpaceId, GroupId, OwnerId};
pub use state::{DeviceState, DeviceView, GroupState, ResetOutcome, SpaceView};
pub use table::OwnershipTable;
