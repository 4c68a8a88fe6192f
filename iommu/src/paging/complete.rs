//! Completing a map with the invalidation it needs, and taking the mapping out again when that
//! fails, so a failed map never leaves a page mapped that its caller believes unmapped.

use alloc::vec::Vec;

use crate::entries::Iova;

use super::flush::MappedPage;
use super::{
    CachingMode, InvalidationDone, MapCompletionError, MapFlush, PageSelectiveSupport, PageTable,
    RequiredInvalidation, TableMemory, UnmapFlush,
};

impl<M: TableMemory> PageTable<M> {
    /// Completes `flush`: asks `invalidate` for the invalidation it needs under `caching_mode`
    /// and `psi` ([`MapFlush::invalidation`]), and ends the token with the proof.
    ///
    /// `invalidate` must perform the [`RequiredInvalidation`] it is given on every unit the
    /// table is attached to, wait for it, and only then return the proof (for
    /// [`RequiredInvalidation::None`]: flush the write buffer where CAP.RWBF asks for it); see
    /// [`InvalidationDone::assume_invalidated`].
    ///
    /// If it fails, the pages of the token that are still mapped as the token mapped them are
    /// unmapped again and `invalidate` is asked for that removal's invalidation. The error says
    /// which state that left: [`MapCompletionError::RolledBack`] (the table is as before the
    /// map) or [`MapCompletionError::RollbackPending`] (the removal's token is handed back).
    pub fn complete_map<E>(
        &mut self,
        flush: MapFlush,
        caching_mode: CachingMode,
        psi: PageSelectiveSupport,
        mut invalidate: impl FnMut(RequiredInvalidation) -> Result<InvalidationDone, E>,
    ) -> Result<(), MapCompletionError<E>> {
        if flush.table_id != self.id {
            return Err(MapCompletionError::Foreign(flush));
        }
        let error = match invalidate(flush.invalidation(caching_mode, psi)) {
            Ok(proof) => {
                flush.complete(proof);
                return Ok(());
            }
            Err(error) => error,
        };
        let removal = self.revert(flush);
        if removal.unmapped_span().is_none() && removal.freed_tables().is_empty() {
            // Nothing of the map was left to remove (its pages were unmapped, and mapped anew,
            // through other tokens): the empty removal owes nothing.
            return Err(MapCompletionError::RolledBack { error });
        }
        match invalidate(removal.invalidation(psi)) {
            Ok(proof) => {
                if self.complete_unmap(removal, proof).is_err() {
                    unreachable!("the removal was made on this table");
                }
                Err(MapCompletionError::RolledBack { error })
            }
            Err(rollback_error) => Err(MapCompletionError::RollbackPending {
                error,
                rollback_error,
                flush: alloc::boxed::Box::new(removal),
            }),
        }
    }

    /// Unmaps the pages `flush` mapped, where each is still the leaf the map wrote (a page
    /// unmapped and mapped again meanwhile belongs to someone else and is left alone).
    fn revert(&mut self, flush: MapFlush) -> UnmapFlush {
        let MapFlush { first, merged, .. } = flush;
        let mut removal = UnmapFlush::new(self.id, None, None, Vec::new());
        for page in core::iter::once(first).chain(merged) {
            if !self.still_maps(page) {
                continue;
            }
            let range =
                Iova::new_truncate(page.start)..Iova::new_truncate(page.start + page.size.bytes());
            // The range is exactly one present leaf inside the table's width: unmap accepts it.
            if let Ok(unmapped) = self.unmap(range)
                && let Err(_foreign) = removal.merge(unmapped)
            {
                unreachable!("both tokens come from this table");
            }
        }
        removal
    }

    /// Whether `page` is mapped exactly as a map wrote it.
    fn still_maps(&self, page: MappedPage) -> bool {
        self.find_leaf(page.start).is_some_and(|leaf| {
            leaf.base == page.start && leaf.size == page.size && leaf.entry.address() == page.phys
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::host_memory::HostMemory;
    use super::super::{Geometry, Levels, SuperpageSupport};
    use super::*;
    use crate::entries::{Access, InvalidationHint, PageSelective, PageSize, PhysAddr};

    const PSI: PageSelectiveSupport = PageSelectiveSupport::UpToOrder(18);

    fn table() -> PageTable<HostMemory> {
        PageTable::new(
            HostMemory::new(),
            Geometry::from(Levels::Three),
            SuperpageSupport::all(),
        )
        .unwrap()
    }

    fn map(table: &mut PageTable<HostMemory>, at: u64) -> MapFlush {
        table
            .map(
                Iova::new(at).unwrap(),
                PhysAddr::new(0x8000_0000 + at).unwrap(),
                PageSize::Size4K,
                Access::Read,
            )
            .unwrap()
    }

    fn proof() -> InvalidationDone {
        // SAFETY: a host test; no remapping hardware caches anything.
        unsafe { InvalidationDone::assume_invalidated() }
    }

    fn mapped(table: &PageTable<HostMemory>, at: u64) -> bool {
        table.translate(Iova::new(at).unwrap()).is_some()
    }

    #[test]
    fn merged_tokens_roll_back_their_own_pages_only() {
        let mut table = table();
        let mut first = map(&mut table, 0x1000);
        let other = map(&mut table, 0x3000);
        other.complete(proof());
        first.merge(map(&mut table, 0x5000)).unwrap();
        // Without caching mode the map needs only the write-buffer flush; it fails, and the
        // removal of pages 1 and 5 asks for one page-selective invalidation covering both.
        let mut asked = Vec::new();
        let result = table.complete_map(first, CachingMode::Disabled, PSI, |required| {
            asked.push(required);
            if asked.len() == 1 {
                Err("flush failed")
            } else {
                Ok(proof())
            }
        });
        assert!(
            matches!(
                result,
                Err(MapCompletionError::RolledBack {
                    error: "flush failed"
                })
            ),
            "{result:?}"
        );
        let covering = PageSelective::new(Iova::new(0).unwrap(), 3).unwrap();
        assert_eq!(
            asked,
            vec![
                RequiredInvalidation::None,
                RequiredInvalidation::PageSelective {
                    range: covering,
                    hint: InvalidationHint::LeafEntriesOnly,
                },
            ]
        );
        assert!(!mapped(&table, 0x1000) && !mapped(&table, 0x5000));
        assert!(
            mapped(&table, 0x3000),
            "a page the token did not map was removed"
        );
        assert_eq!(table.pending_unmaps(), 0);
    }

    #[test]
    fn a_page_mapped_anew_since_is_left_alone() {
        let mut table = table();
        let stale = map(&mut table, 0x1000);
        // Someone unmaps the page and maps it elsewhere before the first token completes.
        let unmapped = table
            .unmap(Iova::new(0x1000).unwrap()..Iova::new(0x2000).unwrap())
            .unwrap();
        table.complete_unmap(unmapped, proof()).unwrap();
        table
            .map(
                Iova::new(0x1000).unwrap(),
                PhysAddr::new(0x9000_0000).unwrap(),
                PageSize::Size4K,
                Access::Read,
            )
            .unwrap()
            .complete(proof());
        let mut asked = 0;
        let result = table.complete_map(stale, CachingMode::Enabled, PSI, |_| {
            asked += 1;
            Err(())
        });
        assert!(matches!(
            result,
            Err(MapCompletionError::RolledBack { error: () })
        ));
        assert_eq!(asked, 1, "an empty removal needs no invalidation");
        let kept = table.translate(Iova::new(0x1000).unwrap()).unwrap();
        assert_eq!(kept.phys.as_u64(), 0x9000_0000);
    }

    #[test]
    fn a_token_of_another_table_is_handed_back_untouched() {
        let mut one = table();
        let mut two = table();
        let flush = map(&mut one, 0x1000);
        let result = two.complete_map(flush, CachingMode::Enabled, PSI, |_| -> Result<_, ()> {
            panic!("nothing is invalidated for a foreign token")
        });
        let Err(MapCompletionError::Foreign(flush)) = result else {
            panic!("{result:?}");
        };
        assert!(mapped(&one, 0x1000));
        one.complete_map(flush, CachingMode::Enabled, PSI, |_| Ok::<_, ()>(proof()))
            .unwrap();
        assert!(mapped(&one, 0x1000));
    }
}
