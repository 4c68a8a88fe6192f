//! Address spaces as the table sees them: who owns each one and how many mappings it
//! carries.
//!
//! Mappings belong to the address space, not to the devices attached to it (iommufd's IOAS
//! model): detach does not need the space to be empty, a device attached again sees the same
//! mappings, and destroying a space drops its mappings with it (the kernel unmaps and flushes
//! before freeing the domain). What the table guards is who may touch a space: only its owner
//! maps, unmaps, attaches to or destroys it, and no space is destroyed while attached.

use super::{AddressSpaceId, OwnerId, OwnershipError, OwnershipTable, table::SpaceRecord};

impl OwnershipTable {
    /// Records a new, empty address space `space` owned by `owner`.
    pub fn create_address_space(
        &mut self,
        space: AddressSpaceId,
        owner: OwnerId,
    ) -> Result<(), OwnershipError> {
        if self.spaces.contains_key(&space) {
            return Err(OwnershipError::AddressSpaceExists);
        }
        self.spaces
            .insert(space, SpaceRecord { owner, mappings: 0 });
        Ok(())
    }

    /// Forgets `space` and its mappings. `Busy` while a device is attached to it.
    pub fn destroy_address_space(
        &mut self,
        owner: OwnerId,
        space: AddressSpaceId,
    ) -> Result<(), OwnershipError> {
        self.owned_space(owner, space)?;
        if self
            .devices
            .values()
            .any(|device| device.state.address_space() == Some(space))
        {
            return Err(OwnershipError::Busy);
        }
        self.spaces.remove(&space);
        Ok(())
    }

    /// Counts one more mapping in `space`.
    pub fn map(&mut self, owner: OwnerId, space: AddressSpaceId) -> Result<(), OwnershipError> {
        let record = self.owned_space(owner, space)?;
        record.mappings = record
            .mappings
            .checked_add(1)
            .ok_or(OwnershipError::CountOverflow)?;
        Ok(())
    }

    /// Counts one mapping fewer in `space`; `NotMapped` if it has none.
    pub fn unmap(&mut self, owner: OwnerId, space: AddressSpaceId) -> Result<(), OwnershipError> {
        let record = self.owned_space(owner, space)?;
        record.mappings = record
            .mappings
            .checked_sub(1)
            .ok_or(OwnershipError::NotMapped)?;
        Ok(())
    }

    fn owned_space(
        &mut self,
        owner: OwnerId,
        space: AddressSpaceId,
    ) -> Result<&mut SpaceRecord, OwnershipError> {
        let record = self
            .spaces
            .get_mut(&space)
            .ok_or(OwnershipError::NoSuchAddressSpace)?;
        if record.owner != owner {
            return Err(OwnershipError::WrongOwner);
        }
        Ok(record)
    }
}
