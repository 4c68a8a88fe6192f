//! Context entries of one unit: reading them, and pointing a requester ID at a domain (or
//! blocking it) with the invalidations the spec requires around the change (VT-d spec 6.5.3.3;
//! with CAP.CM, 6.1). An IOMMU group's requester IDs are pointed together, and put back together
//! if one of them fails, so a group never names two targets.

use super::unit::{RemappingUnit, UnitError};
use super::{Clock, Registers};
use crate::entries::{
    ContextCacheScope, ContextEntry, DomainId, FunctionMask, IotlbScope, RootEntry, SourceId,
    TranslationType,
};
use crate::paging::TableMemory;
use alloc::vec::Vec;

/// Why [`RemappingUnit::set_group_context`] failed, and the state it left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupContextError {
    /// The requester ID whose context entry could not be written.
    pub source: SourceId,
    /// Why writing it failed.
    pub error: UnitError,
    /// Whether the requester IDs changed so far (the failing one included) were put back.
    pub rollback: GroupRollback,
}

/// What a failed [`RemappingUnit::set_group_context`] did about the requester IDs it had
/// already changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupRollback {
    /// Every requester ID names the entry it named before the call: the group is whole.
    Restored,
    /// Putting `source` back failed too: the group's requester IDs may name different targets.
    /// The other restores were still tried; this is the first one that failed.
    Inconsistent {
        /// A requester ID that may still name the new entry, or none.
        source: SourceId,
        /// Why putting it back failed.
        error: UnitError,
    },
}

impl<R: Registers> RemappingUnit<R> {
    /// The context entry for `source`, if its bus has a context table.
    pub fn context_entry(
        &self,
        memory: &dyn TableMemory,
        source: SourceId,
    ) -> Option<ContextEntry> {
        let root = self.root?;
        let bus = usize::from(source.get() >> 8);
        let root_entry =
            RootEntry::from_raw(memory.read(root, bus * 2), memory.read(root, bus * 2 + 1));
        let table = root_entry.context_table()?;
        let index = usize::from(source.get() & 0xff) * 2;
        Some(ContextEntry::from_raw(
            memory.read(table, index),
            memory.read(table, index + 1),
        ))
    }

    /// Drops what the unit may cache for `source` in `domain`: its context entry (device-
    /// selective), then the domain's IOTLB entries, in the spec's order.
    fn invalidate_device(
        &mut self,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        source: SourceId,
        domain: DomainId,
    ) -> Result<(), UnitError> {
        let scope = ContextCacheScope::Device {
            domain,
            source,
            function_mask: FunctionMask::Exact,
        };
        self.invalidate_context(memory, clock, scope)?;
        self.invalidate_iotlb(memory, clock, IotlbScope::Domain(domain))
    }

    /// Drops what a unit in caching mode may have cached for `source` while its context entry
    /// was not present: such entries are tagged with DID 0 (VT-d spec 6.1), so the device-
    /// selective context-cache invalidation and the domain-selective IOTLB invalidation both
    /// name DID 0, not the DID of the entry just written.
    fn invalidate_not_present(
        &mut self,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        source: SourceId,
    ) -> Result<(), UnitError> {
        let scope = ContextCacheScope::NotPresentDevice {
            source,
            function_mask: FunctionMask::Exact,
        };
        self.invalidate_context(memory, clock, scope)?;
        self.invalidate_iotlb(memory, clock, IotlbScope::NotPresent)
    }

    /// Points `source` at `entry` (or blocks it with `ContextEntry::NOT_PRESENT`), with the
    /// spec's order: a present entry is first cleared and invalidated (context cache for the
    /// device, then the IOTLB of its old domain), the new one is written with P last, and with
    /// CAP.CM the not-present-to-present change is invalidated too, under DID 0.
    ///
    /// A present `entry` must carry a DID this unit accepts (1 up to CAP.ND's limit) and a
    /// translation type it offers (pass-through only with ECAP.PT, device-TLB only with
    /// ECAP.DT); otherwise nothing is changed and [`UnitError::InvalidDomainId`] or
    /// [`UnitError::UnsupportedTranslationType`] is returned.
    pub fn set_context(
        &mut self,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        source: SourceId,
        entry: ContextEntry,
    ) -> Result<(), UnitError> {
        let root = self.root.ok_or(UnitError::NotEnabled)?;
        if entry.is_present() && DomainId::new(entry.domain_id(), self.domain_limit()).is_err() {
            return Err(UnitError::InvalidDomainId {
                domain: entry.domain_id(),
            });
        }
        if entry.is_present() {
            self.check_translation_type(entry)?;
        }
        let bus = usize::from(source.get() >> 8);
        let root_entry =
            RootEntry::from_raw(memory.read(root, bus * 2), memory.read(root, bus * 2 + 1));
        let table = match root_entry.context_table() {
            Some(table) => table,
            None => {
                if !entry.is_present() {
                    return Ok(());
                }
                let table = memory.alloc_table().map_err(|_| UnitError::OutOfMemory)?;
                let Ok(new_root) = RootEntry::present(table) else {
                    unreachable!("frames from alloc_table are 4 KiB aligned");
                };
                memory.write(root, bus * 2 + 1, new_root.hi());
                memory.write(root, bus * 2, new_root.lo());
                table
            }
        };
        let index = usize::from(source.get() & 0xff) * 2;
        let old = ContextEntry::from_raw(memory.read(table, index), memory.read(table, index + 1));
        if old.is_present() {
            memory.write(table, index, 0);
            let old_domain = DomainId::new(old.domain_id(), self.domain_limit()).ok();
            match old_domain {
                Some(domain) => self.invalidate_device(memory, clock, source, domain)?,
                None => {
                    self.invalidate_context(memory, clock, ContextCacheScope::Global)?;
                    self.invalidate_iotlb(memory, clock, IotlbScope::Global)?;
                }
            }
        }
        if !entry.is_present() {
            memory.write(table, index + 1, 0);
            return Ok(());
        }
        memory.write(table, index + 1, entry.hi());
        memory.write(table, index, entry.lo());
        if self.capability.caching_mode() {
            // CM = 1: the unit may have cached the entry while it was not present (before this
            // call, or between clearing the old entry above and writing this one).
            self.invalidate_not_present(memory, clock, source)?;
        } else {
            self.flush_write_buffer(clock)?;
        }
        Ok(())
    }

    /// Whether this unit offers the translation type `entry` asks for (VT-d spec 9.3: TT = 1
    /// needs ECAP.DT, TT = 2 needs ECAP.PT, TT = 3 is reserved).
    fn check_translation_type(&self, entry: ContextEntry) -> Result<(), UnitError> {
        let offered = match entry.translation_type() {
            Some(TranslationType::MultiLevel) => true,
            Some(TranslationType::DeviceTlb) => self.extended_capability().device_tlb(),
            Some(TranslationType::PassThrough) => self.extended_capability().pass_through(),
            None => false,
        };
        if offered {
            Ok(())
        } else {
            Err(UnitError::UnsupportedTranslationType {
                translation_type: entry.translation_type(),
            })
        }
    }

    /// Whether context entries on this unit may pass DMA through untranslated (ECAP.PT): the
    /// benchmark's yardstick, never an isolation mode.
    pub fn offers_pass_through(&self) -> bool {
        self.extended_capability().pass_through()
    }

    /// Points every requester ID in `sources` at `entry` together: an IOMMU group's de-
    /// duplicated requester IDs (its members' own IDs and the aliases bridges substitute) always
    /// name one target, the blocking domain or the domain of the group's address space. Each ID
    /// is changed with [`set_context`](Self::set_context), in the spec's order; an ID repeated in
    /// `sources` is written once.
    ///
    /// If one ID fails, that ID and the ones already changed are put back, latest first, at the
    /// entries they had (each again in the spec's order), so the group is never split between
    /// two targets. The error names the failing ID and its [`UnitError`], and says whether the
    /// group was [restored](GroupRollback::Restored) or may now be
    /// [inconsistent](GroupRollback::Inconsistent).
    pub fn set_group_context(
        &mut self,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        sources: &[SourceId],
        entry: ContextEntry,
    ) -> Result<(), GroupContextError> {
        // Each ID changed so far with the entry it had before.
        let mut changed: Vec<(SourceId, ContextEntry)> = Vec::with_capacity(sources.len());
        for (index, &source) in sources.iter().enumerate() {
            if sources[..index].contains(&source) {
                continue;
            }
            let old = self
                .context_entry(memory, source)
                .unwrap_or(ContextEntry::NOT_PRESENT);
            // Recorded before the write: a failed write may have cleared the old entry (or, with
            // CAP.CM, written the new one) before its invalidation failed.
            changed.push((source, old));
            if let Err(error) = self.set_context(memory, clock, source, entry) {
                let rollback = self.restore(memory, clock, &changed);
                return Err(GroupContextError {
                    source,
                    error,
                    rollback,
                });
            }
        }
        Ok(())
    }

    /// Puts each `(source, old)` of `changed` back at `old`, latest first. An ID whose entry
    /// already reads `old` (its write failed before changing anything) is left alone.
    fn restore(
        &mut self,
        memory: &mut dyn TableMemory,
        clock: &dyn Clock,
        changed: &[(SourceId, ContextEntry)],
    ) -> GroupRollback {
        let mut rollback = GroupRollback::Restored;
        for &(source, old) in changed.iter().rev() {
            let current = self
                .context_entry(memory, source)
                .unwrap_or(ContextEntry::NOT_PRESENT);
            if current == old {
                continue;
            }
            if let Err(error) = self.set_context(memory, clock, source, old)
                && rollback == GroupRollback::Restored
            {
                rollback = GroupRollback::Inconsistent { source, error };
            }
        }
        rollback
    }
}
