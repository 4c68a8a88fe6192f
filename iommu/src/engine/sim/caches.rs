//! The simulated unit's translation caches, as far as the rules under test need them: a context
//! cache and an IOTLB, both keyed by requester ID and tagged with a domain ID, filled by
//! simulated DMA lookups and emptied by the invalidations the unit processes through either
//! interface. Every invalidation is recorded with its DID, and DIDs the rules forbid are
//! recorded as violations.
//!
//! The caching-mode rule (VT-d spec 6.1): with CAP.CM = 1 the unit may cache a not-present
//! context entry, and what it caches then is tagged with domain ID 0. An invalidation naming
//! the entry's new DID does not reach it; only DID 0 (or a global invalidation) does.

use std::collections::HashMap;

/// Which cache an invalidation was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cache {
    Context,
    Iotlb,
}

/// One invalidation as the unit performed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Invalidation {
    pub(crate) cache: Cache,
    /// 1 global, 2 domain, 3 device (context) or page (IOTLB).
    pub(crate) granularity: u8,
    pub(crate) domain: u16,
    /// Requester ID (device-selective context invalidations only).
    pub(crate) source: u16,
    /// FM (device-selective context invalidations only).
    pub(crate) function_mask: u8,
}

/// What a simulated DMA request from one requester ID ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// No present context entry (possibly a cached one): the request faults.
    Blocked,
    /// Translated through the context entry with this DID.
    Translated { domain: u16 },
    /// Passed through untranslated (TT = 2) by the context entry with this DID.
    PassThrough { domain: u16 },
}

#[derive(Clone, Copy, Debug)]
struct Cached {
    tag: u16,
    lookup: Lookup,
}

/// The caches and the record of what the unit did to them.
#[derive(Debug, Default)]
pub(crate) struct Caches {
    context: HashMap<u16, Cached>,
    iotlb: HashMap<u16, Cached>,
    pub(crate) invalidations: Vec<Invalidation>,
    pub(crate) violations: Vec<String>,
}

impl Caches {
    /// A lookup for `source`: the IOTLB first (QEMU consults it before the context entry),
    /// then the context cache, then `walk` (reading the tables), whose result is cached:
    /// present entries under their DID, not-present ones only in caching mode, under DID 0.
    pub(crate) fn lookup(
        &mut self,
        source: u16,
        caching_mode: bool,
        walk: impl FnOnce() -> Lookup,
    ) -> Lookup {
        if let Some(hit) = self.iotlb.get(&source).or(self.context.get(&source)) {
            return hit.lookup;
        }
        let found = walk();
        let tag = match found {
            Lookup::Translated { domain } | Lookup::PassThrough { domain } => domain,
            Lookup::Blocked if caching_mode => 0,
            Lookup::Blocked => return found,
        };
        let cached = Cached { tag, lookup: found };
        self.context.insert(source, cached);
        self.iotlb.insert(source, cached);
        found
    }

    /// Performs and records a context-cache invalidation. A device-selective one drops the
    /// entries of the matching requester IDs only if they carry the DID it names.
    pub(crate) fn invalidate_context(
        &mut self,
        granularity: u8,
        domain: u16,
        source: u16,
        function_mask: u8,
    ) {
        self.record(Invalidation {
            cache: Cache::Context,
            granularity,
            domain,
            source,
            function_mask,
        });
        // FM masks the low 1, 2 or 3 bits of the function number.
        let ignored: u16 = match function_mask {
            0 => 0,
            1 => 0b100,
            2 => 0b110,
            _ => 0b111,
        };
        self.context
            .retain(|&cached_source, cached| match granularity {
                1 => false,
                2 => cached.tag != domain,
                _ => cached.tag != domain || (cached_source | ignored) != (source | ignored),
            });
    }

    /// Performs and records an IOTLB invalidation (a page-selective one drops the whole domain
    /// here: the model keeps no addresses).
    pub(crate) fn invalidate_iotlb(&mut self, granularity: u8, domain: u16) {
        self.record(Invalidation {
            cache: Cache::Iotlb,
            granularity,
            domain,
            source: 0,
            function_mask: 0,
        });
        self.iotlb
            .retain(|_, cached| granularity != 1 && cached.tag != domain);
    }

    fn record(&mut self, invalidation: Invalidation) {
        if invalidation.granularity == 0 {
            self.violations
                .push(format!("invalidation with granularity 0: {invalidation:?}"));
        }
        self.invalidations.push(invalidation);
    }
}
