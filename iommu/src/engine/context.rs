//! Context entries of one unit: reading them, and pointing a requester ID at a domain (or
//! blocking it) with the invalidations the spec requires around the change (VT-d spec 6.5.3.3;
//! with CAP.CM, 6.1).

use super::unit::{RemappingUnit, UnitError};
use super::{Clock, Registers};
use crate::entries::{
    ContextCacheScope, ContextEntry, DomainId, FunctionMask, IotlbScope, RootEntry, SourceId,
};
use crate::paging::TableMemory;

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
    /// A present `entry` must carry a DID this unit accepts (1 up to CAP.ND's limit); otherwise
    /// nothing is changed and [`UnitError::InvalidDomainId`] is returned.
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
}
