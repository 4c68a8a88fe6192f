//! Domain identifiers (DID) and the limit CAP.ND puts on them (VT-d spec 10.4.2, 9.3).

/// How many domain IDs the remapping unit supports: `2^(4 + 2 * CAP.ND)` (VT-d spec 10.4.2,
/// CAP bits 2:0). ND = 7 is reserved and rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainLimit(u32);

impl DomainLimit {
    /// Decodes the CAP.ND field (bits 2:0 of the capability register, already shifted down).
    pub const fn from_nd(nd: u8) -> Option<Self> {
        if nd <= 6 {
            Some(Self(1 << (4 + 2 * nd as u32)))
        } else {
            None
        }
    }

    /// Number of domain IDs, including the ID 0 that Moat never hands out.
    pub const fn count(self) -> u32 {
        self.0
    }
}

/// Why a number is not a usable domain ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainIdError {
    /// Domain ID 0 is reserved: with CAP.CM = 1 the hardware uses it for invalid translations,
    /// and Moat never uses it at all.
    Zero,
    /// The ID is not below the number of domains the unit supports.
    AboveLimit,
}

/// A domain ID as written to context entries (DID, bits 87:72 of the entry) and invalidations.
/// Always in `1..DomainLimit::count()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainId(u16);

impl DomainId {
    /// Validates `raw` against the unit's domain limit.
    pub const fn new(raw: u16, limit: DomainLimit) -> Result<Self, DomainIdError> {
        if raw == 0 {
            Err(DomainIdError::Zero)
        } else if raw as u32 >= limit.count() {
            Err(DomainIdError::AboveLimit)
        } else {
            Ok(Self(raw))
        }
    }

    /// The ID as a number.
    pub const fn get(self) -> u16 {
        self.0
    }
}

/// Hands out the domain IDs of remapping units: 1, 2, 3, and so on, each checked against the
/// limit of the unit it is for (CAP.ND), never 0 (reserved: with CAP.CM = 1 it tags cached
/// not-present entries) and never wrapping around. IDs are not reused: reusing one would first
/// need every translation cached under it invalidated.
#[derive(Debug)]
pub struct DomainIdAllocator {
    next: u32,
}

impl DomainIdAllocator {
    /// An allocator whose first ID is 1.
    pub const fn new() -> Self {
        Self { next: 1 }
    }

    /// The next ID, if it is below `limit`; on failure nothing is used up.
    pub fn allocate(&mut self, limit: DomainLimit) -> Result<DomainId, DomainIdError> {
        if self.next >= limit.count() {
            return Err(DomainIdError::AboveLimit);
        }
        let raw = u16::try_from(self.next).map_err(|_| DomainIdError::AboveLimit)?;
        let id = DomainId::new(raw, limit)?;
        self.next += 1;
        Ok(id)
    }
}

impl Default for DomainIdAllocator {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_from_nd() {
        assert_eq!(DomainLimit::from_nd(0).map(DomainLimit::count), Some(16));
        assert_eq!(DomainLimit::from_nd(2).map(DomainLimit::count), Some(256));
        // QEMU reports ND = 6: 16-bit domain IDs.
        assert_eq!(DomainLimit::from_nd(6).map(DomainLimit::count), Some(65536));
        assert_eq!(DomainLimit::from_nd(7), None);
    }

    #[test]
    fn domain_id_validation() {
        let sixteen = DomainLimit::from_nd(0).unwrap();
        assert_eq!(DomainId::new(0, sixteen), Err(DomainIdError::Zero));
        assert_eq!(DomainId::new(1, sixteen).map(DomainId::get), Ok(1));
        assert_eq!(DomainId::new(15, sixteen).map(DomainId::get), Ok(15));
        assert_eq!(DomainId::new(16, sixteen), Err(DomainIdError::AboveLimit));
        let all = DomainLimit::from_nd(6).unwrap();
        assert_eq!(
            DomainId::new(u16::MAX, all).map(DomainId::get),
            Ok(u16::MAX)
        );
    }

    #[test]
    fn allocated_ids_start_at_one_and_stay_below_the_limit() {
        let sixteen = DomainLimit::from_nd(0).unwrap();
        let mut ids = DomainIdAllocator::new();
        let handed_out: Vec<u16> = core::iter::from_fn(|| ids.allocate(sixteen).ok())
            .map(DomainId::get)
            .collect();
        assert_eq!(handed_out, (1..16).collect::<Vec<u16>>());
        assert_eq!(ids.allocate(sixteen), Err(DomainIdError::AboveLimit));
        // A unit with more IDs can still be served from the same allocator.
        let all = DomainLimit::from_nd(6).unwrap();
        assert_eq!(ids.allocate(all).map(DomainId::get), Ok(16));
    }

    #[test]
    fn the_last_sixteen_bit_id_is_handed_out_once_and_nothing_wraps() {
        let all = DomainLimit::from_nd(6).unwrap();
        let mut ids = DomainIdAllocator {
            next: u32::from(u16::MAX),
        };
        assert_eq!(ids.allocate(all).map(DomainId::get), Ok(u16::MAX));
        assert_eq!(ids.allocate(all), Err(DomainIdError::AboveLimit));
        assert_eq!(ids.allocate(all), Err(DomainIdError::AboveLimit));
    }
}
