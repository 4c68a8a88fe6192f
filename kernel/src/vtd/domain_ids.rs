//! Per-unit domain-ID allocation. IDs start at 1 (0 is reserved: with CAP.CM the hardware tags
//! cached not-present entries with it) and stay below the CAP.ND limit. An ID comes back only
//! with a [`Retired`] proof, which only the detach path mints after the context entries that
//! used the ID were cleared and the context cache and IOTLB for it were invalidated.

use alloc::collections::BTreeSet;
use moat_iommu::entries::{DomainId, DomainIdAllocator, DomainLimit};

/// Proof that no context entry names a domain ID any more and that the unit holds nothing
/// cached for it. Created only by the detach path in this module's parent.
#[derive(Debug)]
pub(super) struct Retired {
    id: DomainId,
}

impl Retired {
    /// Marks `id` as no longer referenced or cached.
    ///
    /// Callers (the detach path only) must have written every context entry that named `id`
    /// to another domain and completed a context-cache and a domain-selective IOTLB
    /// invalidation for `id` on its unit.
    pub(super) fn after_invalidation(id: DomainId) -> Self {
        Self { id }
    }
}

/// The domain IDs of one unit.
#[derive(Debug)]
pub(super) struct DomainIds {
    limit: DomainLimit,
    /// IDs never handed out yet, from 1 below the limit.
    fresh: DomainIdAllocator,
    /// Handed out, then retired: reused lowest first.
    returned: BTreeSet<u16>,
    in_use: usize,
}

impl DomainIds {
    /// Every ID of a unit with `limit` free.
    pub(super) fn new(limit: DomainLimit) -> Self {
        Self {
            limit,
            fresh: DomainIdAllocator::new(),
            returned: BTreeSet::new(),
            in_use: 0,
        }
    }

    /// A free ID, or `None` when every ID of the unit is in use.
    pub(super) fn allocate(&mut self) -> Option<DomainId> {
        let id = match self.returned.pop_first() {
            Some(raw) => DomainId::new(raw, self.limit).ok()?,
            None => self.fresh.allocate(self.limit).ok()?,
        };
        self.in_use += 1;
        Some(id)
    }

    /// Takes a retired ID back.
    pub(super) fn release(&mut self, retired: Retired) {
        self.returned.insert(retired.id.get());
        self.in_use -= 1;
    }

    /// IDs handed out and not yet retired.
    pub(super) fn in_use(&self) -> usize {
        self.in_use
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_start_at_one_stay_below_the_limit_and_are_reused_after_retirement() {
        let limit = DomainLimit::from_nd(0).unwrap();
        let mut ids = DomainIds::new(limit);
        let all: alloc::vec::Vec<u16> = (0..15).map(|_| ids.allocate().unwrap().get()).collect();
        assert_eq!(all, (1..16).collect::<alloc::vec::Vec<u16>>());
        assert_eq!(ids.allocate(), None, "16 IDs on ND=0, and 0 is reserved");
        let seven = DomainId::new(7, limit).unwrap();
        ids.release(Retired::after_invalidation(seven));
        assert_eq!(ids.in_use(), 14);
        assert_eq!(ids.allocate(), Some(seven));
        assert_eq!(ids.allocate(), None);
    }
}
