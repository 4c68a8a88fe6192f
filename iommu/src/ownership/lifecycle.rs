//! Device transitions: open, close, bind, attach, detach, release and its completion,
//! quarantine clearing, removal, and the kernel DMA API's per-device uses.
//!
//! Each method checks, in this order, that the device exists, that the caller's owner id
//! matches the holder (`WrongOwner`), that the device's state allows the step, and finally
//! that the group allows it; only then does it change anything.

use super::table::Claimant;
use super::{AddressSpaceId, DeviceState, OwnerId, OwnershipError, OwnershipTable, ResetOutcome};
use crate::Bdf;

impl OwnershipTable {
    /// Opens the device's one parked handle: `Registered -> Parked`.
    ///
    /// `Busy` if it is already open, bound, attached or releasing, or the kernel's DMA API
    /// uses it; `WrongState` if it is quarantined or removed. Whether the group can be
    /// claimed is decided by [`bind`](Self::bind) (try and fail).
    pub fn open(&mut self, bdf: Bdf) -> Result<(), OwnershipError> {
        let device = self.record(bdf)?;
        match device.state {
            DeviceState::Registered if device.kernel_users == 0 => {}
            DeviceState::Registered
            | DeviceState::Parked
            | DeviceState::Bound { .. }
            | DeviceState::Attached { .. }
            | DeviceState::Releasing { .. } => return Err(OwnershipError::Busy),
            found @ (DeviceState::Quarantined { .. } | DeviceState::Removed) => {
                return Err(OwnershipError::WrongState { found });
            }
        }
        self.set_state(bdf, DeviceState::Parked);
        Ok(())
    }

    /// Closes the parked handle without binding: `Parked -> Registered`.
    pub fn close(&mut self, bdf: Bdf) -> Result<(), OwnershipError> {
        match self.record(bdf)?.state {
            DeviceState::Parked => {}
            DeviceState::Registered => return Err(OwnershipError::NotOpen),
            found => return Err(OwnershipError::WrongState { found }),
        }
        self.set_state(bdf, DeviceState::Registered);
        Ok(())
    }

    /// Binds the parked device to `owner`, claiming its group: `Parked -> Bound`.
    ///
    /// `NotOpen` if no handle is parked, `Busy` if the group cannot be claimed (another
    /// owner, kernel DMA-API users, an unsettled device). The same owner may bind more
    /// devices of a group it holds.
    pub fn bind(&mut self, owner: OwnerId, bdf: Bdf) -> Result<(), OwnershipError> {
        match self.record(bdf)?.state {
            DeviceState::Parked => {}
            DeviceState::Registered => return Err(OwnershipError::NotOpen),
            found => return Err(OwnershipError::WrongState { found }),
        }
        self.claim(bdf, Claimant::Owner(owner))?;
        self.set_state(bdf, DeviceState::Bound { owner });
        Ok(())
    }

    /// Attaches the bound device to `space`: `Bound -> Attached`.
    ///
    /// `WrongState` if it is not bound (an attached device must detach first),
    /// `NoSuchAddressSpace`, `WrongOwner` if `owner` does not hold the device or the space,
    /// `GroupAttachedElsewhere` if another device of the group is attached to another space.
    pub fn attach(
        &mut self,
        owner: OwnerId,
        bdf: Bdf,
        space: AddressSpaceId,
    ) -> Result<(), OwnershipError> {
        let device = self.held(owner, bdf)?;
        if device.state != (DeviceState::Bound { owner }) {
            return Err(OwnershipError::WrongState {
                found: device.state,
            });
        }
        let group = device.group;
        let record = self
            .spaces
            .get(&space)
            .ok_or(OwnershipError::NoSuchAddressSpace)?;
        if record.owner != owner {
            return Err(OwnershipError::WrongOwner);
        }
        let other = self
            .members(group)
            .find_map(|member| member.state.address_space().filter(|&used| used != space));
        if let Some(used) = other {
            return Err(OwnershipError::GroupAttachedElsewhere { space: used });
        }
        self.set_state(bdf, DeviceState::Attached { owner, space });
        Ok(())
    }

    /// Detaches the device from its address space: `Attached -> Bound`. The space keeps its
    /// mappings; the device may attach again.
    pub fn detach(&mut self, owner: OwnerId, bdf: Bdf) -> Result<(), OwnershipError> {
        match self.held(owner, bdf)?.state {
            DeviceState::Attached { .. } => {}
            found => return Err(OwnershipError::WrongState { found }),
        }
        self.set_state(bdf, DeviceState::Bound { owner });
        Ok(())
    }

    /// Gives the device up. For the holder of a bound, attached or quarantined device it
    /// never fails (errors only name a caller that holds nothing here).
    ///
    /// `Bound`/`Attached -> Releasing`: the kernel turns bus mastering off, points the device
    /// at the blocking domain and resets it, then calls
    /// [`release_finished`](Self::release_finished); until then the device still counts in
    /// the owner's claim, so nobody else can take the group. Events still queued are dropped
    /// with the session. `Quarantined` held by `owner` -> `Quarantined` with no owner: the
    /// claim ends now, the device stays quarantined.
    pub fn release(&mut self, owner: OwnerId, bdf: Bdf) -> Result<(), OwnershipError> {
        let next = match self.held(owner, bdf)?.state {
            DeviceState::Bound { .. } | DeviceState::Attached { .. } => {
                DeviceState::Releasing { owner: Some(owner) }
            }
            DeviceState::Quarantined { owner: Some(_) } => {
                self.release_claim(bdf, Claimant::Owner(owner));
                DeviceState::Quarantined { owner: None }
            }
            found => return Err(OwnershipError::WrongState { found }),
        };
        self.set_state(bdf, next);
        if let Some(device) = self.devices.get_mut(&bdf) {
            device.faults.end_session();
        }
        Ok(())
    }

    /// The reset of a releasing device is done: `Releasing -> Registered` if it passed,
    /// `-> Quarantined` (no owner) if it failed. Either way the owner's claim on the device
    /// ends here, and if it was the owner's last device of the group the group has no owner.
    pub fn release_finished(
        &mut self,
        bdf: Bdf,
        outcome: ResetOutcome,
    ) -> Result<(), OwnershipError> {
        let owner = match self.record(bdf)?.state {
            DeviceState::Releasing { owner } => owner,
            found => return Err(OwnershipError::WrongState { found }),
        };
        self.set_state(
            bdf,
            match outcome {
                ResetOutcome::Passed => DeviceState::Registered,
                ResetOutcome::Failed => DeviceState::Quarantined { owner: None },
            },
        );
        if let Some(owner) = owner {
            self.release_claim(bdf, Claimant::Owner(owner));
        }
        Ok(())
    }

    /// Starts clearing a quarantine: `Quarantined` (released by its owner) -> `Releasing`
    /// with no owner; the kernel resets the device and calls
    /// [`release_finished`](Self::release_finished). `Busy` while an owner still holds it.
    pub fn clear_quarantine(&mut self, bdf: Bdf) -> Result<(), OwnershipError> {
        match self.record(bdf)?.state {
            DeviceState::Quarantined { owner: None } => {}
            DeviceState::Quarantined { owner: Some(_) } => return Err(OwnershipError::Busy),
            found => return Err(OwnershipError::WrongState { found }),
        }
        self.set_state(bdf, DeviceState::Releasing { owner: None });
        Ok(())
    }

    /// The device left the bus: `Registered` (with no kernel user) or `Quarantined` (with no
    /// owner) -> `Removed`, for good. `Busy` while anyone holds it: a parked handle, an owner,
    /// a kernel DMA-API user or a reset under way must let go first.
    pub fn remove(&mut self, bdf: Bdf) -> Result<(), OwnershipError> {
        let device = self.record(bdf)?;
        match device.state {
            DeviceState::Registered if device.kernel_users == 0 => {}
            DeviceState::Quarantined { owner: None } => {}
            DeviceState::Removed => {
                return Err(OwnershipError::WrongState {
                    found: DeviceState::Removed,
                });
            }
            _ => return Err(OwnershipError::Busy),
        }
        self.set_state(bdf, DeviceState::Removed);
        Ok(())
    }

    /// One more kernel DMA-API use of a registered device (its driver probes).
    ///
    /// `Busy` if the device has a parked handle, an owner or a reset under way, or its group
    /// is owned or has an unsettled device; `WrongState` if it is quarantined or removed.
    pub fn claim_kernel_dma(&mut self, bdf: Bdf) -> Result<(), OwnershipError> {
        match self.record(bdf)?.state {
            DeviceState::Registered => {}
            found @ (DeviceState::Quarantined { .. } | DeviceState::Removed) => {
                return Err(OwnershipError::WrongState { found });
            }
            _ => return Err(OwnershipError::Busy),
        }
        self.claim(bdf, Claimant::Kernel)
    }

    /// Ends one kernel DMA-API use of the device; never fails for a use that was claimed.
    /// `NotClaimed` if the kernel has none.
    pub fn release_kernel_dma(&mut self, bdf: Bdf) -> Result<(), OwnershipError> {
        if self.record(bdf)?.kernel_users == 0 {
            return Err(OwnershipError::NotClaimed);
        }
        self.release_claim(bdf, Claimant::Kernel);
        Ok(())
    }

    /// The device, checked to be not held by an owner other than `owner`.
    fn held(
        &self,
        owner: OwnerId,
        bdf: Bdf,
    ) -> Result<&super::table::DeviceRecord, OwnershipError> {
        let device = self.record(bdf)?;
        match device.state.owner() {
            Some(holder) if holder != owner => Err(OwnershipError::WrongOwner),
            _ => Ok(device),
        }
    }

    pub(super) fn set_state(&mut self, bdf: Bdf, state: DeviceState) {
        if let Some(device) = self.devices.get_mut(&bdf) {
            device.state = state;
        }
    }
}
